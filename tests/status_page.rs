//! The status page at `GET /` of the HTTP endpoint, loaded in a real
//! headless browser (Debian's `chromium`, installed by
//! scripts/system-packages) against zeoraid with real runzeo members: the
//! DOM the page's script drew from `/details` shows every member with its
//! state, a degraded member's reason and a recovering member's progress
//! bar; with `[http] token_for_reads` it shows nothing without the token
//! and everything with it; a standby shows its state and the leader.
//!
//! Each test saves a screenshot of what it checked under
//! `target/test-output/status_page/` (next to Cargo's `target/tmp`), for a
//! human to look at; the test asserts the PNG is there and not empty.

mod common;

use common::array::{Array, ArrayOptions};
use common::cluster::{Cluster, ClusterOptions};
use common::faults::wait_until;
use common::http::{get, request};
use serde_json::Value as Json;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Bound for one run of the browser (a cold start takes a few seconds).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// Virtual time the page's script gets before the DOM is taken: enough for
/// its first `/details` and one refresh (every two seconds).
const SCRIPT_BUDGET_MS: u32 = 5000;

/// Bound for the array to reach the state a test looks at.
const STATE_WAIT: Duration = Duration::from_secs(30);

const TOKEN: &str = "page-test-token";

/// Where the screenshots go: `target/test-output/status_page/`.
fn output_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp");
    let dir = target.join("test-output").join("status_page");
    fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// Runs `chromium --headless` on `url` with `action` (`--dump-dom` or
/// `--screenshot=FILE`) in a fresh profile; returns its stdout. Panics when
/// it fails or does not end within [`BROWSER_TIMEOUT`] (then it is killed).
fn chromium(url: &str, action: &str) -> String {
    let profile = tempfile::Builder::new()
        .prefix("zeoraid-chromium-")
        .tempdir()
        .expect("create a browser profile directory");
    let stdout_path = profile.path().join("stdout");
    let stderr_path = profile.path().join("stderr");
    let mut child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg("--no-first-run")
        .arg("--window-size=1280,720")
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(format!("--virtual-time-budget={SCRIPT_BUDGET_MS}"))
        .arg(action)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("create stdout file"))
        .stderr(File::create(&stderr_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("run chromium ({e}): scripts/system-packages installs it"));
    let mut status = None;
    let ended = wait_until(BROWSER_TIMEOUT, || {
        status = child.try_wait().expect("wait for chromium");
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        ended,
        "chromium {action} {url} did not end within {BROWSER_TIMEOUT:?}\n{stderr}"
    );
    let status = status.expect("ended");
    assert!(status.success(), "chromium {action} {url}: {status}\n{stderr}");
    fs::read_to_string(&stdout_path).expect("read chromium's stdout")
}

/// The DOM of the page at `url` once its script ran.
fn page_dom(url: &str) -> String {
    let dom = chromium(url, "--dump-dom");
    assert!(dom.contains("<h1>zeoraid</h1>"), "not the status page: {dom}");
    dom
}

/// Saves a screenshot of the page at `url` as `name`.png in
/// [`output_dir`]; panics unless a non-empty PNG was written.
fn save_screenshot(url: &str, name: &str) -> PathBuf {
    let path = output_dir().join(format!("{name}.png"));
    let _ = fs::remove_file(&path);
    chromium(url, &format!("--screenshot={}", path.display()));
    let png = fs::read(&path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "{} is no PNG",
        path.display()
    );
    path
}

/// The page's table row of member `name` (`<tr data-member="NAME" ...>`
/// to its `</tr>`); panics when the page shows no such row.
fn member_row<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr data-member=\"{name}\""))
        .unwrap_or_else(|| panic!("no row for {name} in {dom}"));
    let end = dom[start..].find("</tr>").expect("the row ends") + start;
    &dom[start..end]
}

/// The `data-state` of the page's array badge.
fn array_badge(dom: &str) -> &str {
    let start = dom.find("id=\"array-state\"").expect("the array badge");
    let state = &dom[start..];
    let state = &state[state.find("data-state=\"").expect("badge has a state") + "data-state=\"".len()..];
    &state[..state.find('"').expect("attribute ends")]
}

fn page_url(http: SocketAddr) -> String {
    format!("http://{http}/")
}

fn details(http: SocketAddr, token: Option<&str>) -> Json {
    let answer = request(http, "GET", "/details", token);
    assert_eq!(answer.code, 200, "{}", answer.body);
    answer.json()
}

fn member<'a>(details: &'a Json, name: &str) -> &'a Json {
    details["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no member {name} in {details}"))
}

#[test]
fn the_page_is_html_with_no_external_asset() {
    let array = Array::start(1);
    let answer = get(array.http_addr(), "/");
    assert_eq!(answer.code, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "text/html; charset=utf-8");
    assert!(answer.body.starts_with("<!DOCTYPE html>"), "{}", answer.body);
    for external in ["src=\"http", "href=\"http", "@import", "url("] {
        assert!(!answer.body.contains(external), "the page loads {external}...");
    }
}

#[test]
fn shows_every_member_with_state_reason_and_recovery_progress() {
    let mut options = ArrayOptions::new(3);
    // Throttled so that zeo2's recovery lasts long enough to be seen.
    options.tables = "[recovery]\nmax_transactions_per_second = 2\n".to_string();
    let array = Array::start_with(options);
    let http = array.http_addr();
    // A history before zeo2 leaves: its recovery's fraction is measured
    // from its last transaction on.
    array.commit_probe();
    assert_eq!(request(http, "POST", "/members/zeo2/disable", None).code, 200);
    for _ in 0..60 {
        array.commit_probe();
    }
    assert_eq!(request(http, "POST", "/members/zeo3/disable", None).code, 200);
    assert_eq!(request(http, "POST", "/members/zeo2/recover", None).code, 200);
    let copying = wait_until(STATE_WAIT, || {
        let d = details(http, None);
        member(&d, "zeo2")["recovery"]["progress"]["phase"] == "copying"
    });
    assert!(
        copying,
        "zeo2 is not copying: {}\n{}",
        details(http, None),
        array.context()
    );

    let dom = page_dom(&page_url(http));
    let still = details(http, None);
    assert_eq!(
        member(&still, "zeo2")["state"],
        "recovering",
        "zeo2 recovered too soon: {still}"
    );
    assert_eq!(array_badge(&dom), "recovering", "{dom}");
    let zeo1 = member_row(&dom, "zeo1");
    assert!(zeo1.contains("data-state=\"optimal\""), "{zeo1}");
    let zeo2 = member_row(&dom, "zeo2");
    assert!(zeo2.contains("data-state=\"recovering\""), "{zeo2}");
    assert!(zeo2.contains("role=\"progressbar\""), "no progress bar: {zeo2}");
    assert!(zeo2.contains("aria-valuenow=\""), "the bar has no value: {zeo2}");
    assert!(zeo2.contains("from zeo1: copying"), "{zeo2}");
    let zeo3 = member_row(&dom, "zeo3");
    assert!(zeo3.contains("data-state=\"degraded\""), "{zeo3}");
    assert!(zeo3.contains("disabled by operator"), "zeo3's reason: {zeo3}");
    let path = save_screenshot(&page_url(http), "recovering");
    eprintln!("screenshot: {}", path.display());
}

#[test]
fn with_token_for_reads_the_page_shows_nothing_without_the_token() {
    let mut options = ArrayOptions::new(2);
    options.http_token = Some(TOKEN.to_string());
    options.http_token_for_reads = true;
    let array = Array::start_with(options);
    let http = array.http_addr();
    // The page itself holds no data: it is served without the token.
    assert_eq!(get(http, "/").code, 200);
    assert_eq!(get(http, "/details").code, 401);

    let dom = page_dom(&page_url(http));
    assert!(dom.contains("token needed"), "{dom}");
    assert!(dom.contains("missing bearer token"), "{dom}");
    assert!(
        !dom.contains("data-member"),
        "members shown without the token: {dom}"
    );
    let dom = page_dom(&format!("{}#token=wrong", page_url(http)));
    assert!(dom.contains("wrong bearer token"), "{dom}");
    assert!(
        !dom.contains("data-member"),
        "members shown with a wrong token: {dom}"
    );

    let with_token = format!("{}#token={TOKEN}", page_url(http));
    let dom = page_dom(&with_token);
    assert_eq!(array_badge(&dom), "optimal", "{dom}");
    for name in ["zeo1", "zeo2"] {
        let row = member_row(&dom, name);
        assert!(row.contains("data-state=\"optimal\""), "{row}");
    }
    assert!(!dom.contains(TOKEN), "the token stays out of the page: {dom}");
    save_screenshot(&with_token, "token");
}

#[test]
fn a_standby_shows_its_state_and_the_leader() {
    let mut cluster = Cluster::start(ClusterOptions::new(2, 2));
    let leader = cluster.wait_leader(STATE_WAIT);
    let standby = 1 - leader;
    cluster.wait_role(standby, "standby", STATE_WAIT);
    let leader_name = cluster.zeoraid(leader).name.clone();
    let leader_http = cluster.zeoraid(leader).http;

    let url = page_url(cluster.zeoraid(standby).http);
    let dom = page_dom(&url);
    assert_eq!(array_badge(&dom), "standby", "{dom}");
    assert!(
        dom.contains(&format!("href=\"http://{leader_http}/\"")),
        "no link to the leader's page: {dom}"
    );
    assert!(dom.contains(&format!("leader {leader_name}")), "{dom}");
    assert!(
        !dom.contains("data-member"),
        "a standby has no members to show: {dom}"
    );
    save_screenshot(&url, "standby");

    let dom = page_dom(&page_url(leader_http));
    assert_eq!(array_badge(&dom), "optimal", "{dom}");
    for name in ["zeo1", "zeo2"] {
        assert!(member_row(&dom, name).contains("data-state=\"optimal\""), "{dom}");
    }
}
