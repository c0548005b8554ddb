//! `GET /`: the status page, for an operator with a browser. One HTML file
//! (`page.html`, compiled in) with a small script that reads `/details`
//! every two seconds and draws the array, each member's state, reason and
//! lag, and a progress bar while a member recovers; on a standby, the
//! standby state and a link to the leader's page. No build step, no
//! external assets.
//!
//! The page itself carries no data, so it is served to anyone, token or
//! not: the data comes from `/details`, which needs the token when `[http]
//! token_for_reads` is set, exactly as for a script. A browser cannot send
//! `Authorization` on a page load, so the page's script sends it on its
//! requests: the operator opens `http://HOST:PORT/#token=TOKEN` (a URL
//! fragment never reaches the server, so no access log or proxy sees it)
//! or types the token into the form the page shows when `/details` answers
//! 401; it is kept in the tab's `sessionStorage` only. With reads open the
//! page works without a token.

use actix_web::http::header;
use actix_web::HttpResponse;

/// The page, compiled into the binary.
const PAGE: &str = include_str!("page.html");

/// Only the page's own inline script and style run; the script may talk to
/// this endpoint alone, and no other site may frame the page.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the status page (HTML, never cached).
pub(super) async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(PAGE)
}
