//! `recover` on a member that is not connected yet (its server was
//! restarted, zeoraid waits out a backoff or a park probe interval): the
//! request is accepted, the member reconnects at once and its recovery
//! starts once it is connected; `zeoraid ctl recover --wait` follows it to
//! the end. Real members; the restart policy's waits are a minute, far
//! longer than any test here waits, so only the request can reconnect them.
//!
//! Every wait is bounded and polls for its condition.

mod common;

use common::array::{Array, ArrayOptions, Probe};
use common::http::request;
use serde_json::Value as Json;
use std::process::Command;
use std::time::{Duration, Instant};

/// Bound for the array's status to show what a test waits for; well
/// below the restart policy's minute-long waits.
const STATUS_WAIT: Duration = Duration::from_secs(30);

/// Member `name` in the array status.
fn member_of<'a>(status: &'a Json, name: &str) -> Option<&'a Json> {
    status["members"].as_array()?.iter().find(|m| m["name"] == name)
}

fn member(array: &Array, name: &str) -> Json {
    let status = array.raid_status();
    member_of(&status, name)
        .cloned()
        .unwrap_or_else(|| panic!("no member {name} in {status}"))
}

/// Polls member `name` until `done` holds, at most [`STATUS_WAIT`].
fn wait_member(array: &Array, name: &str, what: &str, done: impl Fn(&Json) -> bool) -> Json {
    let what = format!("{name} {what}");
    let status = array.wait_status(&what, STATUS_WAIT, |s| member_of(s, name).is_some_and(&done));
    member_of(&status, name).cloned().expect("checked")
}

/// Two members (`[restart]` and further tables as given); zeo2 is killed,
/// misses `commits` commits, and is restarted while zeoraid waits `waits`
/// (the member's connection state) for a minute before it tries again.
fn array_with_zeo2_waiting(restart: &str, tables: &str, waits: &str, commits: usize) -> (Array, Vec<Probe>) {
    let mut options = ArrayOptions::new(2);
    options.restart = restart.to_string();
    options.tables = tables.to_string();
    let mut array = Array::start_with(options);
    array.members_mut()[1].kill9();
    wait_member(&array, "zeo2", waits, |m| {
        m["state"] == "degraded" && m["connection"] == waits
    });
    let probes = (0..commits).map(|_| array.commit_probe()).collect();
    array.members_mut()[1].restart();
    let m = member(&array, "zeo2");
    assert_eq!(m["connection"], waits, "zeoraid is still waiting: {m}");
    (array, probes)
}

#[test]
fn recover_reconnects_a_backing_off_member_and_recovers_it_once_connected() {
    let restart = "backoff_initial = \"60s\"\nbackoff_max = \"60s\"\njitter = 0.0\n";
    let (mut array, probes) = array_with_zeo2_waiting(restart, "", "backing-off", 3);
    let asked = Instant::now();
    let answer = request(array.http_addr(), "POST", "/members/zeo2/recover", None);
    assert_eq!(answer.code, 200, "{}\n{}", answer.body, array.context());
    let message = answer.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(
        message.contains("reconnects now") && message.contains("once it is connected"),
        "{message}"
    );
    let m = wait_member(&array, "zeo2", "optimal", |m| m["state"] == "optimal");
    assert!(asked.elapsed() < STATUS_WAIT, "{m}");
    assert!(
        m["last_recovery"]
            .as_str()
            .unwrap_or_default()
            .starts_with("recovered from zeo1"),
        "{m}"
    );
    // Everything committed while it was away is on it, and it takes writes again.
    let earlier: Vec<&Probe> = probes.iter().collect();
    array.assert_serving(&earlier);
}

#[test]
fn ctl_recover_wait_follows_a_parked_member_until_it_is_optimal() {
    // The first failure retries at once; the second parks zeo2 for a minute.
    let restart = "max_restarts = 1\nbackoff_initial = \"50ms\"\nbackoff_max = \"50ms\"\n\
                   park_probe_interval = \"60s\"\n";
    // Throttled so that the copy takes a few seconds and shows as progress.
    let throttle = "[recovery]\nmax_transactions_per_second = 4\n";
    let (mut array, probes) = array_with_zeo2_waiting(restart, throttle, "parked", 12);
    let url = format!("http://{}", array.http_addr());
    let output = Command::new(env!("CARGO_BIN_EXE_zeoraid"))
        .args([
            "ctl",
            "--url",
            &url,
            "--timeout",
            "30",
            "recover",
            "zeo2",
            "--wait",
        ])
        .env_remove("ZEORAID_URL")
        .env_remove("ZEORAID_TOKEN")
        .output()
        .expect("run zeoraid ctl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        array.context()
    );
    assert_eq!(output.status.code(), Some(0), "{context}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("reconnects now"), "{context}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("zeo2: recovering from zeo1: copying") && l.contains("% done")),
        "{context}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("zeo2: optimal (recovered from zeo1")),
        "{context}"
    );
    let earlier: Vec<&Probe> = probes.iter().collect();
    array.assert_serving(&earlier);
}
