//! The HTTP management endpoint: status, debug view, metrics,
//! health probes and the operator's admin calls.
//!
//! It runs inside the daemon's actix system (actix-web; one worker thread,
//! since every request is a message to an actor and the answer is small),
//! bound to `[http] listen` (loopback by default). Every answer is JSON
//! except `/metrics` (Prometheus text format 0.0.4) and the status page at
//! `/` (HTML); every error is
//! `{"error": "message"}` with a status code that says what kind it is.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the status page for browsers (HTML; `page.rs`) |
//! | `GET /status` | `{"status", "summary"}`, `status` one of `optimal`, `degraded`, `recovering`, `failed`; always 200 when the daemon answers |
//! | `GET /details` | the controller's `ArrayStatus`: array and every member |
//! | `GET /actors` | the debug view: controller, members, client sessions (and the election's view) |
//! | `GET /metrics` | Prometheus text exposition |
//! | `GET /healthz` | 200 `{"alive": true, "version"}`: the process answers |
//! | `GET /readyz` | 200 when the array takes writes (optimal, degraded or recovering), else 503 |
//! | `POST /members/{name}/disable` | degrade the member now ("disabled by operator") |
//! | `POST /members/{name}/recover[?full=true]` | start recovering a degraded member |
//! | `POST /members/{name}/force-optimal[?confirm=true]` | disaster override: go on from this member (without `confirm`: 409, what may be lost) |
//! | `POST /reload` | re-read the configuration file, apply the member list |
//! | `POST /scrub[?from=TID&to=TID]` | start comparing the optimal members' histories (TIDs in 16 hex digits) |
//!
//! With `[cluster]` (`cluster.rs`), `/status` and `/details` also carry
//! `"role"`, `"epoch"` and `"leader"` (`/details` also this zeoraid's
//! `"name"`, the leader's `"leader_http"` and `"leader_listen"`, and
//! `"role_reason"`); without it these keys are absent. A standby's endpoint
//! ([`start_standby`]) has no controller: `/status` and `/details` answer
//! `{"status": "standby", "summary", "role", "epoch", "leader", ...}` from
//! the election's view, `/readyz` is 503 (no client may be sent to a
//! standby), `/healthz` and `/metrics` as usual, `POST /reload` checks the
//! configuration file it will lead with (as SIGHUP does), and every other
//! `POST` is 409 with `"leader"` and `"leader_http"` added to the error body.
//!
//! Mutating calls (every `POST`) need `Authorization: Bearer TOKEN` when
//! `[http] token` is set (401 otherwise; the token is compared in constant
//! time and never logged). Reads need it only with `[http]
//! token_for_reads`, and `/healthz` and `/readyz` never (see `status.rs`).
//!
//! Route handlers live one file per family: `status.rs` (reads) and
//! `admin.rs` (mutations); the query strings they take are in `query.rs`,
//! the cluster's fields and a standby's answers in `cluster.rs`.
//! This file has the server, the shared state, the token check and the
//! error type.

mod admin;
mod cluster;
mod page;
mod query;
mod status;

pub use admin::{MemberActionDone, ScrubStarted};
pub use cluster::{
    http_url, ClusterDetails, ClusterLine, Details, NotLeader, StandbyAnswer, StandbyReload, StandbyReloaded,
    StandbyStatus,
};
pub use status::StatusLine;

use actix::Recipient;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use slog::{info, warn, Logger};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use zeoraid_actors::cluster::{ClusterView, LeaseClock, Role};
use zeoraid_actors::controller::{Controller, ReloadConfiguration};
use zeoraid_actors::token::Token;

/// How long a read route waits for the controller before it answers 503.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a graceful stop waits for requests in flight.
const STOP_TIMEOUT_SECS: u64 = 5;

/// What the endpoint needs from the daemon.
pub struct Settings {
    pub listen: SocketAddr,
    pub token: Option<Token>,
    /// The read routes need the token too (not `/healthz`, `/readyz`).
    pub token_for_reads: bool,
    /// Answers `POST /reload`.
    pub reloader: Recipient<ReloadConfiguration>,
    /// How long an admin call may wait for the controller: a reload waits
    /// for the commit lock, so the commit deadline plus some slack.
    pub admin_timeout: Duration,
}

/// What a standby's endpoint needs from the daemon: a standby has no
/// controller and no reloader (its admin calls are refused).
pub struct StandbySettings {
    pub listen: SocketAddr,
    pub token: Option<Token>,
    /// The read routes need the token too (not `/healthz`, `/readyz`).
    pub token_for_reads: bool,
}

/// Shared by every request.
pub(crate) struct State {
    mode: Mode,
    token: Option<Token>,
    token_for_reads: bool,
    /// Set when the daemon starts shutting down: `/readyz` answers 503.
    draining: Arc<AtomicBool>,
    log: Logger,
}

/// Whether this endpoint serves the array.
enum Mode {
    /// A leader, or a zeoraid without `[cluster]` (no view then).
    Serving {
        array: ArrayHandles,
        cluster: Option<ClusterFeed>,
    },
    /// A standby: no controller; the election's view says who leads.
    /// `reloads` reach the standby's own loop, which owns the
    /// configuration it will lead with.
    Standby {
        cluster: watch::Receiver<ClusterView>,
        reloads: tokio::sync::mpsc::Sender<StandbyReload>,
    },
}

/// A leader's view of the cluster: the election's view, and the lease's
/// proof, which outruns the view. A leader frozen past its lease answers
/// the first requests after it resumes before the election actor has
/// published that it was deposed; the proof says so at once.
pub struct ClusterFeed {
    pub view: watch::Receiver<ClusterView>,
    pub lease: LeaseClock,
}

impl ClusterFeed {
    fn view(&self) -> ClusterView {
        let mut view = self.view.borrow().clone();
        if view.role == Role::Leader && !self.lease.proven() {
            view.role = Role::Deposed;
            view.reason = Some("the etcd lease is no longer proven".to_string());
        }
        view
    }
}

/// The actors that serve the array, which the routes ask.
pub(crate) struct ArrayHandles {
    controller: actix::Addr<Controller>,
    reloader: Recipient<ReloadConfiguration>,
    admin_timeout: Duration,
}

/// The running endpoint.
pub struct HttpEndpoint {
    addr: SocketAddr,
    handle: ServerHandle,
    draining: Arc<AtomicBool>,
    /// Keeps the cluster metrics at the election's view (with `[cluster]`).
    metrics_follower: Option<actix_rt::task::JoinHandle<()>>,
    log: Logger,
}

impl HttpEndpoint {
    /// Where it really listens (the port when `listen` asked for 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The daemon is shutting down: `/readyz` answers 503 from now on; the
    /// other routes keep answering until [`HttpEndpoint::stop`].
    pub fn begin_shutdown(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Stops accepting and closes; `graceful`: lets requests in flight
    /// finish first (bounded by a few seconds). Once it returned the
    /// address is free again (a standby's endpoint gives it to the
    /// leader's).
    pub async fn stop(self, graceful: bool) {
        if let Some(follower) = &self.metrics_follower {
            follower.abort();
        }
        self.handle.stop(graceful).await;
        info!(self.log, "http endpoint stopped"; "http" => %self.addr);
    }
}

/// Binds `[http] listen` and serves the array (a leader, or a zeoraid
/// without `[cluster]`: `cluster` is `None` then, and the answers carry
/// no cluster field) on the current actix system; fails (with the OS
/// error) when the address cannot be bound.
pub fn start(
    settings: Settings,
    controller: actix::Addr<Controller>,
    cluster: Option<ClusterFeed>,
    log: &Logger,
) -> io::Result<HttpEndpoint> {
    let array = ArrayHandles {
        controller,
        reloader: settings.reloader,
        admin_timeout: settings.admin_timeout,
    };
    let access = StandbySettings {
        listen: settings.listen,
        token: settings.token,
        token_for_reads: settings.token_for_reads,
    };
    serve(access, Mode::Serving { array, cluster }, log)
}

/// Binds `[http] listen` for a standby: `/status`, `/details`, `/healthz`
/// and `/metrics` answer from the election's view, `/readyz` is 503 (no
/// client may be sent here) and every admin call is refused with 409
/// naming the leader.
pub fn start_standby(
    settings: StandbySettings,
    cluster: watch::Receiver<ClusterView>,
    reloads: tokio::sync::mpsc::Sender<StandbyReload>,
    log: &Logger,
) -> io::Result<HttpEndpoint> {
    serve(settings, Mode::Standby { cluster, reloads }, log)
}

fn serve(settings: StandbySettings, mode: Mode, log: &Logger) -> io::Result<HttpEndpoint> {
    let draining = Arc::new(AtomicBool::new(false));
    let log = log.new(slog::o!("component" => "http"));
    zeoraid_actors::metrics::build_info(
        env!("CARGO_PKG_VERSION"),
        option_env!("ZEORAID_COMMIT").unwrap_or("unknown"),
    );
    let token_required = settings.token.is_some();
    let view = match &mode {
        Mode::Serving { cluster, .. } => cluster.as_ref().map(|c| c.view.clone()),
        Mode::Standby { cluster, .. } => Some(cluster.clone()),
    };
    let standby = matches!(mode, Mode::Standby { .. });
    let state = web::Data::new(State {
        mode,
        token: settings.token,
        token_for_reads: settings.token_for_reads,
        draining: Arc::clone(&draining),
        log: log.clone(),
    });
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
        .workers(1)
        // The daemon owns SIGTERM/SIGINT/SIGHUP and stops the endpoint itself.
        .disable_signals()
        .shutdown_timeout(STOP_TIMEOUT_SECS)
        .bind(settings.listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("bound to no address"))?;
    let server: Server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    info!(log, "http endpoint started"; "http" => %addr, "token_required" => token_required,
        "standby" => standby);
    Ok(HttpEndpoint {
        addr,
        handle,
        draining,
        metrics_follower: view.map(cluster::follow_metrics),
        log,
    })
}

/// The route table. Every path but `/` and `/metrics` answers JSON; anything else is a JSON 404,
/// and a known path with the wrong method a JSON 405.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/", page::page))
        .service(get("/status", status::status))
        .service(get("/details", status::details))
        .service(get("/actors", status::actors).app_data(query::config()))
        .service(get("/metrics", status::metrics))
        .service(get("/healthz", status::healthz))
        .service(get("/readyz", status::readyz))
        .service(post("/members/{name}/disable", admin::disable))
        .service(post("/members/{name}/recover", admin::recover))
        .service(post("/members/{name}/force-optimal", admin::force_optimal).app_data(query::config()))
        .service(post("/reload", admin::reload))
        .service(post("/scrub", admin::scrub).app_data(query::config()))
        .default_service(web::to(not_found));
}

fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler))
        .default_service(web::to(method_not_allowed))
}

fn post<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(method_not_allowed))
}

async fn not_found(req: HttpRequest) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", req.method(), req.path()),
    )
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allowed = if matches!(req.path(), "/reload") || req.path().starts_with("/members/") {
        Method::POST
    } else {
        Method::GET
    };
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} {} is not allowed; use {allowed}", req.method(), req.path()),
    )
    .error_response();
    if let Ok(value) = header::HeaderValue::from_str(allowed.as_str()) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The body of an error answer, which `zeoraid ctl` reads back.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// On a refusal because this zeoraid does not serve the array (a
    /// standby): `"role"`, `"leader"`, `"leader_http"`.
    #[serde(flatten)]
    pub not_leader: Option<NotLeader>,
}

/// An error answer: [`ErrorBody`] with its status code.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    not_leader: Option<NotLeader>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            not_leader: None,
        }
    }

    fn with_not_leader(self, not_leader: NotLeader) -> ApiError {
        ApiError {
            not_leader: Some(not_leader),
            ..self
        }
    }

    /// An actor that did not answer (its mailbox closed or the bound passed).
    pub(crate) fn unreachable(what: &str, e: actix::MailboxError) -> ApiError {
        let why = match e {
            actix::MailboxError::Timeout => "did not answer in time".to_string(),
            actix::MailboxError::Closed => "is not running".to_string(),
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the {what} {why}"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"zeoraid\""));
        }
        response.json(ErrorBody {
            error: self.message.clone(),
            not_leader: self.not_leader.clone(),
        })
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

impl State {
    /// The election's view, with `[cluster]`.
    pub(crate) fn cluster_view(&self) -> Option<ClusterView> {
        match &self.mode {
            Mode::Serving { cluster, .. } => cluster.as_ref().map(ClusterFeed::view),
            Mode::Standby { cluster, .. } => Some(cluster.borrow().clone()),
        }
    }

    /// The array's actors; on a standby, the election's view instead.
    pub(crate) fn serving(&self) -> Result<&ArrayHandles, Box<ClusterView>> {
        match &self.mode {
            Mode::Serving { array, .. } => Ok(array),
            Mode::Standby { cluster, .. } => Err(Box::new(cluster.borrow().clone())),
        }
    }

    /// The array's actors, for `what` only the leader does; on a standby
    /// a 409 naming the leader.
    pub(crate) fn leader_only(&self, what: &str) -> Result<&ArrayHandles, ApiError> {
        self.serving().map_err(|view| cluster::not_leader(&view, what))
    }

    /// Checks the bearer token of a read, when `token_for_reads` is set.
    pub(crate) fn authorize_read(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if self.token_for_reads {
            self.authorize(req)
        } else {
            Ok(())
        }
    }

    /// Checks the bearer token of a request, when one is configured. The
    /// comparison takes the same time wherever the given token differs; a
    /// refusal is logged without the token.
    pub(crate) fn authorize(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let why = match given {
            Some(given) if expected.accepts(given) => return Ok(()),
            Some(_) => "wrong bearer token",
            None => "missing bearer token (Authorization: Bearer TOKEN)",
        };
        warn!(self.log, "admin request refused"; "reason" => why,
            "method" => %req.method(), "path" => req.path(),
            "peer" => req.peer_addr().map(|a| a.to_string()).unwrap_or_default());
        Err(ApiError::new(StatusCode::UNAUTHORIZED, why))
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (scheme
/// case-insensitive, as RFC 7235 says).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
