//! `/readyz` while a member is recovered: the array is `recovering` and
//! takes writes, so the probe stays 200 (a load balancer that dropped every
//! recovering zeoraid would drop a whole fleet at once). Real `runzeo`
//! members; the recovery is throttled so that it is seen in progress.
//!
//! Every wait is bounded and polls for its condition.

mod common;

use common::array::{Array, ArrayOptions, Probe};
use common::http::{request, Answer};
use serde_json::Value as Json;
use std::thread;
use std::time::{Duration, Instant};

/// Bound for the recovery to start and to end (12 transactions at 4 a
/// second take about 3 s).
const RECOVERY_WAIT: Duration = Duration::from_secs(30);

/// Transactions zeo2 misses while disabled: what the recovery copies.
const MISSED: usize = 12;

fn get(array: &Array, path: &str) -> Answer {
    request(array.http_addr(), "GET", path, None)
}

fn member_state(details: &Json, name: &str) -> String {
    details["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["name"] == name))
        .and_then(|m| m["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn readyz_stays_ready_while_a_member_recovers() {
    let mut options = ArrayOptions::new(2);
    // No automatic recovery (the test starts it), and slow enough to watch.
    options.tables = "[recovery]\nauto = false\nmax_transactions_per_second = 4\n".to_string();
    let mut array = Array::start_with(options);
    assert_eq!(get(&array, "/readyz").code, 200, "{}", array.context());

    let answer = request(array.http_addr(), "POST", "/members/zeo2/disable", None);
    assert_eq!(answer.code, 200, "{}\n{}", answer.body, array.context());
    let probes: Vec<Probe> = (0..MISSED).map(|_| array.commit_probe()).collect();
    let answer = request(array.http_addr(), "POST", "/members/zeo2/recover", None);
    assert_eq!(answer.code, 200, "{}\n{}", answer.body, array.context());

    // Poll /readyz against /details until zeo2 is optimal again: every
    // answer while the array is recovering is 200 and says so.
    let deadline = Instant::now() + RECOVERY_WAIT;
    let mut ready_while_recovering = 0;
    let mut committed_while_recovering = None;
    loop {
        let details = get(&array, "/details").json();
        let ready = get(&array, "/readyz");
        let body = ready.json();
        if body["status"] == "recovering" {
            assert_eq!(
                ready.code,
                200,
                "readyz while recovering: {body}\n{}",
                array.context()
            );
            assert_eq!(body["ready"], true, "{body}");
            ready_while_recovering += 1;
            if committed_while_recovering.is_none() {
                // Writes really work meanwhile.
                committed_while_recovering = Some(array.commit_probe());
                let status = get(&array, "/status").json();
                assert_eq!(status["status"], "recovering", "{status}");
            }
        }
        if member_state(&details, "zeo2") == "optimal" && body["status"] == "optimal" {
            assert_eq!(ready.code, 200, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "zeo2 not optimal within {RECOVERY_WAIT:?}: {details}\n{}",
            array.context()
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        ready_while_recovering >= 3,
        "the throttled recovery was seen {ready_while_recovering} time(s) only\n{}",
        array.context()
    );
    let during = committed_while_recovering.expect("a commit while recovering");
    let mut earlier: Vec<&Probe> = probes.iter().collect();
    earlier.push(&during);
    array.assert_serving(&earlier);
}
