//! The management plane against a running daemon with real
//! `runzeo` members: the HTTP endpoint's routes and their JSON, `zeoraid
//! ctl` and its Nagios exit codes, disabling a member under write load,
//! reloading the configuration (HTTP and SIGHUP), the bearer token.
//!
//! Everything listens on loopback; every wait is bounded and polls for its
//! condition.

mod common;

use common::array::{without_member, Array, ArrayOptions, LOG_WAIT};
use common::ctl::ctl;
use common::http::{request, Answer};
use common::rawclient::RawClient;
use common::records::ROOT_RECORD;
use common::runzeo::{free_port, RunZeo, RunZeoOptions};
use serde_json::Value as Json;
use std::fs;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use zeo::types::{Oid, Tid};

/// Bound for zeoraid's status to show what a test waits for.
const STATUS_WAIT: Duration = Duration::from_secs(15);

// ----- HTTP and ctl helpers --------------------------------------------------

fn get(array: &Array, path: &str) -> Answer {
    request(array.http_addr(), "GET", path, None)
}

fn post(array: &Array, path: &str, token: Option<&str>) -> Answer {
    request(array.http_addr(), "POST", path, token)
}

/// `GET /details`, which must answer 200.
fn details(array: &Array) -> Json {
    let answer = get(array, "/details");
    assert_eq!(answer.code, 200, "{}\n{}", answer.body, array.context());
    answer.json()
}

fn member<'a>(details: &'a Json, name: &str) -> &'a Json {
    details["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no member {name} in {details}"))
}

fn member_names(details: &Json) -> Vec<String> {
    details["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["name"].as_str().expect("name").to_string())
        .collect()
}

/// Polls `GET /details` until `done` holds; panics with it and the log.
fn wait_details(array: &Array, what: &str, done: impl Fn(&Json) -> bool) -> Json {
    let deadline = Instant::now() + STATUS_WAIT;
    loop {
        let d = details(array);
        if done(&d) {
            return d;
        }
        if Instant::now() >= deadline {
            panic!("{what} not seen within {STATUS_WAIT:?}: {d}\n{}", array.context());
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The Nagios line of `ctl status`'s one line of output, without its perfdata.
fn status_line(stdout: &str) -> &str {
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    stdout.trim_end().split(" | ").next().unwrap_or_default()
}

fn url(array: &Array) -> String {
    format!("http://{}", array.http_addr())
}

fn assert_keys(json: &Json, keys: &[&str]) {
    for key in keys {
        assert!(json.get(key).is_some(), "no {key:?} in {json}");
    }
}

// ----- the routes ------------------------------------------------------------

#[test]
fn every_route_answers_its_documented_json() {
    let mut array = Array::start(2);
    let mut client = array.client();
    let oid = client.new_oid();
    let tid = client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);

    // /status: status and summary only, 200.
    let answer = get(&array, "/status");
    assert_eq!(answer.code, 200);
    assert!(
        answer.content_type.starts_with("application/json"),
        "{}",
        answer.content_type
    );
    assert_eq!(
        answer.json(),
        serde_json::json!({"status": "optimal", "summary": "optimal: 2 of 2 members optimal"})
    );

    // /details: the array and every member.
    let d = details(&array);
    assert_keys(
        &d,
        &[
            "status",
            "summary",
            "reason",
            "cluster_mode",
            "fail_mode",
            "last_tid",
            "optimal",
            "quorum",
            "commits",
            "aborts",
            "conflicts",
            "clients",
            "members",
        ],
    );
    assert_eq!(d["status"], "optimal");
    assert_eq!(d["reason"], Json::Null);
    assert_eq!(d["cluster_mode"], "single");
    assert_eq!(d["fail_mode"], "close");
    assert_eq!(d["last_tid"], tid.to_hex());
    assert_eq!(d["optimal"], 2);
    assert_eq!(d["quorum"], 1);
    assert!(d["commits"].as_u64().expect("commits") >= 1, "{d}");
    assert!(d["clients"].as_u64().expect("clients") >= 1, "{d}");
    assert_eq!(member_names(&d), ["zeo1", "zeo2"]);
    for (i, m) in d["members"].as_array().expect("members").iter().enumerate() {
        assert_keys(
            m,
            &[
                "name",
                "address",
                "state",
                "kind",
                "reason",
                "degraded_since",
                "first_missed_tid",
                "connected",
                "connection",
                "last_tid",
                "lag_transactions",
                "lag_seconds",
                "failures",
            ],
        );
        assert_eq!(m["address"], array.members()[i].addr().to_string());
        assert_eq!(m["state"], "optimal");
        assert_eq!(m["kind"], Json::Null);
        assert_eq!(m["connected"], true);
        assert_eq!(m["connection"], "ready");
        assert_eq!(m["last_tid"], tid.to_hex());
        assert_eq!(m["lag_transactions"], 0);
        assert_eq!(m["failures"], 0);
    }

    // /actors: the controller, every member, every client session.
    let answer = get(&array, "/actors");
    assert_eq!(answer.code, 200, "{}", answer.body);
    let actors = answer.json();
    let controller = &actors["controller"];
    assert_keys(
        controller,
        &[
            "uptime_seconds",
            "status",
            "last_tid",
            "commit_lock",
            "votes_waiting",
            "sessions",
            "restarts",
            "draining",
        ],
    );
    assert_eq!(controller["status"], "optimal");
    assert_eq!(controller["draining"], false);
    let members = actors["members"].as_array().expect("members");
    assert_eq!(
        members
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["zeo1", "zeo2"]
    );
    for m in members {
        assert_eq!(m["error"], Json::Null, "{m}");
        assert!(m["answered_in_us"].is_u64(), "{m}");
        let snapshot = &m["snapshot"];
        assert_keys(
            snapshot,
            &[
                "state",
                "restarts_in_window",
                "total_restarts",
                "last_error",
                "in_flight",
                "last_tid",
            ],
        );
        assert_eq!(snapshot["state"], "ready", "{m}");
    }
    let sessions = actors["sessions"].as_array().expect("sessions");
    assert_eq!(
        sessions.len() as u64,
        controller["sessions"].as_u64().unwrap(),
        "{actors}"
    );
    let peer = client.local_addr().to_string();
    let mine = sessions
        .iter()
        .find(|s| s["snapshot"]["peer"] == peer.as_str())
        .unwrap_or_else(|| panic!("no session of {peer} in {actors}"));
    assert_eq!(mine["error"], Json::Null);
    assert_eq!(mine["snapshot"]["registered"], true);
    assert_eq!(mine["snapshot"]["last_seen_tid"], tid.to_hex());
    assert_eq!(get(&array, "/actors?within_ms=500").code, 200);
    let bad = get(&array, "/actors?within_ms=soon");
    assert_eq!(bad.code, 400);
    assert!(bad.error().contains("within_ms"));

    // /metrics: Prometheus text (its content is tested with the metrics).
    let answer = get(&array, "/metrics");
    assert_eq!(answer.code, 200);
    assert!(
        answer.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        answer.content_type
    );
    assert!(answer.body.contains("zeoraid_"), "{}", answer.body);

    // /healthz and /readyz.
    let answer = get(&array, "/healthz");
    assert_eq!(answer.code, 200);
    assert_eq!(answer.json()["alive"], true);
    let answer = get(&array, "/readyz");
    assert_eq!(answer.code, 200);
    let ready = answer.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["status"], "optimal");
    assert_eq!(ready["summary"], "optimal: 2 of 2 members optimal");

    // Unknown routes, wrong methods, refused recoveries: JSON errors.
    let answer = get(&array, "/nothing-here");
    assert_eq!(answer.code, 404);
    assert!(answer.error().contains("/nothing-here"));
    // Recovering an optimal member is refused with the reason.
    let answer = post(&array, "/members/zeo2/recover", None);
    assert_eq!(answer.code, 409);
    assert!(answer.error().contains("it is optimal"), "{}", answer.error());
    let answer = post(&array, "/members/nobody/recover", None);
    assert_eq!(answer.code, 404);
    let answer = get(&array, "/reload");
    assert_eq!(answer.code, 405);
    assert!(answer.error().contains("POST"));
    let answer = request(array.http_addr(), "DELETE", "/status", None);
    assert_eq!(answer.code, 405);
    answer.error();
    let answer = post(&array, "/members/zeo9/disable", None);
    assert_eq!(answer.code, 404);
    assert!(answer.error().contains("zeo9"));

    // The array fails: /status still answers 200, /readyz 503.
    drop(client);
    for m in array.members_mut() {
        m.kill9();
    }
    wait_details(&array, "the array failed", |d| d["status"] == "failed");
    let answer = get(&array, "/status");
    assert_eq!(answer.code, 200);
    assert_eq!(answer.json()["status"], "failed");
    let answer = get(&array, "/readyz");
    assert_eq!(answer.code, 503, "{}", answer.body);
    let ready = answer.json();
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["status"], "failed");
    assert!(
        ready["summary"].as_str().unwrap().starts_with("failed"),
        "{ready}"
    );
    let d = details(&array);
    assert!(d["reason"].is_string(), "{d}");
    for m in d["members"].as_array().unwrap() {
        assert_eq!(m["state"], "degraded", "{d}");
        assert_eq!(m["connected"], false, "{d}");
    }
    assert_eq!(get(&array, "/healthz").code, 200);
    array.assert_zeoraid_alive();
}

// ----- ctl and its exit codes ------------------------------------------------

#[test]
fn ctl_status_exit_codes_follow_nagios() {
    let mut array = Array::start(2);
    let url = url(&array);

    let run = ctl(&["--url", &url, "status"], &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The line, then the perfdata (tests/ctl_nagios.rs checks those).
    assert_eq!(
        status_line(&run.stdout),
        "ZEORAID OK - optimal: 2 of 2 members optimal"
    );
    let run = ctl(&["--url", &url, "status", "--json"], &[]);
    assert_eq!(run.code, 0);
    let json: Json = serde_json::from_str(&run.stdout).expect("--json status parses");
    assert_eq!(json["status"], "optimal");
    // The URL from the environment.
    let run = ctl(&["status"], &[("ZEORAID_URL", &url)]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    // Disable one: WARNING.
    let run = ctl(&["--url", &url, "disable", "zeo2"], &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "zeo2 disabled\n");
    let run = ctl(&["--url", &url, "status"], &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        status_line(&run.stdout),
        "ZEORAID WARNING - degraded: 1 of 2 members optimal (zeo2 disabled)"
    );
    let run = ctl(&["--url", &url, "details"], &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ZEORAID WARNING - degraded"),
        "{}",
        run.stdout
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with("zeo2 "))
        .unwrap_or_else(|| panic!("no zeo2 row: {}", run.stdout));
    assert!(
        row.contains("degraded (disabled)") && row.contains("disabled by operator"),
        "{row}"
    );
    let run = ctl(&["--url", &url, "--json", "details"], &[]);
    assert_eq!(run.code, 1);
    let json: Json = serde_json::from_str(&run.stdout).expect("--json details parses");
    assert_eq!(member(&json, "zeo2")["kind"], "disabled");

    // Refused: the last optimal member, and an unknown one.
    let run = ctl(&["--url", &url, "disable", "zeo1"], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("HTTP 409") && run.stderr.contains("refused"),
        "{}",
        run.stderr
    );
    let run = ctl(&["--url", &url, "disable", "zeo7"], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("HTTP 404"), "{}", run.stderr);

    // Every member gone: CRITICAL.
    for m in array.members_mut() {
        m.kill9();
    }
    wait_details(&array, "the array failed", |d| d["status"] == "failed");
    let run = ctl(&["--url", &url, "status"], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("ZEORAID CRITICAL - failed"),
        "{}",
        run.stdout
    );

    // The daemon down: UNKNOWN, for every command.
    array.kill_zeoraid();
    let run = ctl(&["--url", &url, "status"], &[]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("ZEORAID UNKNOWN - cannot reach zeoraid"),
        "{}",
        run.stdout
    );
    assert_eq!(ctl(&["--url", &url, "details"], &[]).code, 3);
    assert_eq!(ctl(&["--url", &url, "reload"], &[]).code, 3);
    assert_eq!(ctl(&["--url", &url, "disable", "zeo1"], &[]).code, 3);
}

// ----- disable under write load ----------------------------------------------

/// What one writer committed through zeoraid.
type Commits = Vec<(Oid, Tid)>;

#[test]
fn disable_under_write_load_loses_nothing_and_stops_writes_to_the_member() {
    const WRITERS: usize = 3;
    const BEFORE: usize = 20;
    const AFTER: usize = 30;
    const MAX_PER_WRITER: usize = 400;
    let array = Array::start(2);
    let addr = array.addr();
    let committed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let committed = Arc::clone(&committed);
            let stop = Arc::clone(&stop);
            thread::spawn(move || -> Commits {
                // RawClient::commit panics on any error: a writer's panic
                // is a client error.
                let mut client = RawClient::connect_registered(addr);
                let mut mine = Vec::new();
                while !stop.load(Ordering::SeqCst) && mine.len() < MAX_PER_WRITER {
                    let oid = client.new_oid();
                    let tid = client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
                    mine.push((oid, tid));
                    committed.fetch_add(1, Ordering::SeqCst);
                }
                mine
            })
        })
        .collect();
    let wait_commits = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while committed.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "only {} commits within 60 s\n{}",
                committed.load(Ordering::SeqCst),
                array.context()
            );
            thread::sleep(Duration::from_millis(5));
        }
    };
    wait_commits(BEFORE);
    let answer = post(&array, "/members/zeo2/disable", None);
    assert_eq!(answer.code, 200, "{}", answer.body);
    assert_eq!(
        answer.json(),
        serde_json::json!({"member": "zeo2", "message": "zeo2 disabled"})
    );
    let at_disable = committed.load(Ordering::SeqCst);
    wait_commits(at_disable + AFTER);
    stop.store(true, Ordering::SeqCst);
    let mut all: Commits = Vec::new();
    for writer in writers {
        match writer.join() {
            Ok(mine) => all.extend(mine),
            Err(_) => panic!("a writer got an error (see its panic above)\n{}", array.context()),
        }
    }
    all.sort_by_key(|(_, tid)| *tid);

    let d = details(&array);
    let zeo2 = member(&d, "zeo2");
    assert_eq!(d["status"], "degraded", "{d}");
    assert_eq!(zeo2["state"], "degraded", "{d}");
    assert_eq!(zeo2["kind"], "disabled", "{d}");
    assert_eq!(zeo2["reason"], "disabled by operator", "{d}");
    assert!(
        zeo2["connected"] == true,
        "a disabled member stays connected: {d}"
    );
    assert!(zeo2["degraded_since"].is_f64(), "{d}");

    // Nothing lost: every acknowledged commit is on zeo1, and through zeoraid.
    let mut direct = array.member_client(0);
    let mut through = array.client();
    for (oid, tid) in &all {
        for (what, client) in [("zeo1", &mut direct), ("zeoraid", &mut through)] {
            match client.load(*oid) {
                Ok(Some(r)) if r.start == *tid => {}
                other => panic!(
                    "{what} lost {oid} committed in {tid}: {other:?}\n{}",
                    array.context()
                ),
            }
        }
    }
    // zeo2 got nothing after it was disabled: its last transaction is
    // behind, it has exactly the commits up to there, and it stays put
    // while the others advance.
    let last_2 = array.members()[1].last_transaction();
    let last_1 = array.members()[0].last_transaction();
    assert_eq!(last_1, all.last().unwrap().1.to_hex());
    assert!(last_2 < last_1, "zeo2 {last_2} is not behind zeo1 {last_1}");
    let missed: Vec<_> = all.iter().filter(|(_, tid)| tid.to_hex() > last_2).collect();
    // Commits acknowledged after the disable answer: each writer may have
    // had one in flight then, which zeo2 may still have finished.
    let after_answer = all.len() - at_disable;
    assert!(
        missed.len() + WRITERS >= after_answer,
        "zeo2 got {} of the {after_answer} commits acknowledged after it was disabled",
        after_answer - missed.len().min(after_answer)
    );
    // The controller counts what commits after the degradation, which
    // includes a commit in flight at that moment that zeo2 still finished.
    let lag = zeo2["lag_transactions"].as_u64().unwrap();
    assert!(
        lag == missed.len() as u64 || lag == missed.len() as u64 + 1,
        "{lag} vs {}: {d}",
        missed.len()
    );
    let first_missed = zeo2["first_missed_tid"].as_str().unwrap();
    assert!(*first_missed <= *missed[0].1.to_hex(), "{d}");
    let mut on_2 = array.member_client(1);
    for (oid, tid) in &all {
        let there = matches!(on_2.load(*oid), Ok(Some(r)) if r.start == *tid);
        assert_eq!(
            there,
            tid.to_hex() <= last_2,
            "zeo2 and {oid} committed in {tid} (zeo2's last: {last_2})"
        );
    }
    array.commit_probe();
    assert_eq!(array.members()[1].last_transaction(), last_2);
    assert_ne!(array.members()[0].last_transaction(), last_1);
}

// ----- reload ----------------------------------------------------------------

/// The config with the `[[members]]` table of `name` removed.
fn with_member(config: &str, name: &str, addr: SocketAddr) -> String {
    format!(
        "{}\n[[members]]\nname = \"{name}\"\naddress = \"{addr}\"\n",
        config.trim_end()
    )
}

#[test]
fn reload_adds_removes_and_rejects() {
    let mut array = Array::start(2);
    let probe = array.commit_probe();
    let path = array.config_path().to_path_buf();
    let original = fs::read_to_string(&path).expect("read the config");

    // Add a third member: it comes in degraded "added". Its server is not
    // up yet, so nothing else can have changed that when we look.
    let port = free_port().expect("a free port");
    let zeo3_addr = SocketAddr::from(([127, 0, 0, 1], port));
    fs::write(&path, with_member(&original, "zeo3", zeo3_addr)).expect("write the config");
    let answer = post(&array, "/reload", None);
    assert_eq!(answer.code, 200, "{}\n{}", answer.body, array.context());
    let report = answer.json();
    assert_eq!(
        report,
        serde_json::json!({"added": ["zeo3"], "removed": [], "replaced": [], "unchanged": ["zeo1", "zeo2"],
                           "settings_changed": [], "needs_restart": []})
    );
    let d = details(&array);
    assert_eq!(member_names(&d), ["zeo1", "zeo2", "zeo3"]);
    let m3 = member(&d, "zeo3");
    assert_eq!(m3["state"], "degraded", "{d}");
    assert_eq!(m3["kind"], "added", "{d}");
    assert_eq!(m3["reason"], "added", "{d}");
    assert_eq!(m3["address"], zeo3_addr.to_string());
    assert_eq!(d["status"], "degraded");
    assert_eq!(d["summary"], "degraded: 2 of 3 members optimal (zeo3 added)");
    // Its server comes up (empty): zeoraid connects, and it stays degraded
    // (an empty member is behind the array: the controller says so).
    let zeo3 = RunZeo::start(RunZeoOptions::new().blobs().port(port));
    let d = wait_details(&array, "zeo3 connected", |d| {
        member(d, "zeo3")["connected"] == true
    });
    assert_eq!(member(&d, "zeo3")["state"], "degraded", "{d}");
    assert_eq!(zeo3.ruok()["1"]["connections"], 1);
    assert_eq!(
        zeo3.last_transaction(),
        common::runzeo::NO_TRANSACTION,
        "nothing was written to zeo3"
    );

    // Remove zeo2: gone from the array and its connection closed.
    assert_eq!(array.members()[1].ruok()["1"]["connections"], 1);
    let current = fs::read_to_string(&path).unwrap();
    fs::write(&path, without_member(&current, "zeo2")).expect("write the config");
    let answer = post(&array, "/reload", None);
    assert_eq!(answer.code, 200, "{}\n{}", answer.body, array.context());
    let report = answer.json();
    assert_eq!(report["removed"], serde_json::json!(["zeo2"]));
    assert_eq!(report["unchanged"], serde_json::json!(["zeo1", "zeo3"]));
    let d = details(&array);
    assert_eq!(member_names(&d), ["zeo1", "zeo3"]);
    let deadline = Instant::now() + STATUS_WAIT;
    while array.members()[1].ruok()["1"]["connections"] != 0 {
        assert!(
            Instant::now() < deadline,
            "zeoraid's connection to the removed zeo2 is still open: {}",
            array.members()[1].ruok()
        );
        thread::sleep(Duration::from_millis(20));
    }
    array.wait_for_log(0, LOG_WAIT, "member removed", |l| {
        l["msg"] == "member removed" && l["member"] == "zeo2"
    });

    // A broken config is rejected with the reason; nothing changes.
    let before = details(&array);
    let good = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        format!(
            "{}\n[[members]]\nname = \"zeo 4\"\naddress = \"nowhere\"\n",
            good.trim_end()
        ),
    )
    .unwrap();
    let answer = post(&array, "/reload", None);
    assert_eq!(answer.code, 422, "{}", answer.body);
    let error = answer.error();
    assert!(
        error.contains("nothing changed") && error.contains("members[2]"),
        "{error}"
    );
    let after = details(&array);
    assert_eq!(member_names(&after), member_names(&before));
    assert_eq!(after["status"], before["status"]);
    let run = ctl(&["--url", &url(&array), "reload"], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("HTTP 422"), "{}", run.stderr);

    // SIGHUP reloads too: zeo2 comes back (as "added": its data is unknown).
    fs::write(&path, with_member(&good, "zeo2", array.members()[1].addr())).unwrap();
    let mark = array.log_mark();
    array.signal_zeoraid(libc::SIGHUP);
    array.wait_for_log(mark, LOG_WAIT, "reload applied (SIGHUP)", |l| {
        l["msg"] == "reload applied" && l["source"] == "SIGHUP"
    });
    let d = details(&array);
    assert_eq!(member_names(&d), ["zeo1", "zeo3", "zeo2"]);
    assert_eq!(member(&d, "zeo2")["kind"], "added");
    array.assert_zeoraid_alive();

    // ctl reload with nothing changed.
    let run = ctl(&["--url", &url(&array), "reload"], &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        "reload applied: added -; removed -; replaced -; unchanged zeo1, zeo3, zeo2\n"
    );

    // The array kept serving throughout; zeo1 has everything.
    let mut direct = array.member_client(0);
    assert!(matches!(direct.load(probe.oid), Ok(Some(r)) if r.start == probe.tid));
    let probe2 = array.commit_probe();
    assert!(matches!(array.member_client(0).load(probe2.oid), Ok(Some(r)) if r.start == probe2.tid));
}

// ----- the token ---------------------------------------------------------------

#[test]
fn mutating_calls_need_the_token() {
    const TOKEN: &str = "s3cret-t0ken";
    let mut options = ArrayOptions::new(3);
    options.http_token = Some(TOKEN.to_string());
    let array = Array::start_with(options);
    let mark = array.log_mark();

    for token in [None, Some("wrong"), Some("s3cret-t0ke"), Some("s3cret-t0ken2")] {
        for path in ["/reload", "/members/zeo3/disable"] {
            let answer = post(&array, path, token);
            assert_eq!(answer.code, 401, "{path} with {token:?}: {}", answer.body);
            let error = answer.error();
            assert!(error.contains("bearer token"), "{error}");
        }
    }
    let d = details(&array);
    assert_eq!(d["status"], "optimal", "a refused call changed nothing: {d}");
    // The token never shows in the log.
    assert!(
        array.log_lines().iter().all(|l| !l.to_string().contains(TOKEN)),
        "the token is in the log"
    );
    assert!(array
        .find_log(mark, |l| l["msg"] == "admin request refused")
        .is_some());

    // Reads need no token.
    for path in [
        "/status", "/details", "/actors", "/metrics", "/healthz", "/readyz",
    ] {
        assert_eq!(get(&array, path).code, 200, "{path}");
    }

    // With it: done.
    let answer = post(&array, "/members/zeo3/disable", Some(TOKEN));
    assert_eq!(answer.code, 200, "{}", answer.body);
    let answer = post(&array, "/reload", Some(TOKEN));
    assert_eq!(answer.code, 200, "{}", answer.body);

    // ctl: refused without it, works with --token or $ZEORAID_TOKEN.
    let url = url(&array);
    let run = ctl(&["--url", &url, "disable", "zeo2"], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("HTTP 401"), "{}", run.stderr);
    let run = ctl(&["--url", &url, "--token", TOKEN, "disable", "zeo2"], &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = ctl(&["--url", &url, "reload", "--json"], &[("ZEORAID_TOKEN", TOKEN)]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: Json = serde_json::from_str(&run.stdout).expect("--json reload parses");
    assert_eq!(report["unchanged"], serde_json::json!(["zeo1", "zeo2", "zeo3"]));
    let run = ctl(&["--url", &url, "status"], &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
}

// ----- shutdown ----------------------------------------------------------------

#[test]
fn sigterm_closes_the_http_endpoint_after_draining() {
    let mut array = Array::start(1);
    let http = array.http_addr();
    let mark = array.log_mark();
    array.wait_for_log(0, LOG_WAIT, "http endpoint started", |l| {
        l["msg"] == "http endpoint started" && l["http"] == http.to_string().as_str()
    });
    assert_eq!(get(&array, "/readyz").code, 200);
    array.signal_zeoraid(libc::SIGTERM);
    let status = array.wait_zeoraid_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", array.context());
    let lines = array.log_lines();
    let at = |msg: &str| {
        lines
            .iter()
            .skip(mark)
            .position(|l| l["msg"] == msg)
            .unwrap_or_else(|| panic!("no {msg:?} line\n{}", array.context()))
    };
    assert!(at("shutting down") < at("drained"));
    assert!(at("drained") < at("http endpoint stopped"));
    assert!(at("http endpoint stopped") < at("zeoraid stopped"));
    assert!(
        std::net::TcpStream::connect_timeout(&http, Duration::from_secs(2)).is_err(),
        "the http endpoint still accepts connections"
    );
}
