//! `GET /metrics` against a running zeoraid with real `runzeo`
//! members: the answer parses as Prometheus text exposition (with a
//! parser, and every sample line accounted for), every family has its
//! HELP and TYPE, and the numbers follow what really happened: commits,
//! a conflict, loads, bytes, clients, and a member killed with -9; the
//! build, the process, a member's lag, a recovery's bytes and rate, and
//! the reloads' outcomes.

mod common;

use common::array::{Array, ArrayOptions, LOG_WAIT};
use common::http;
use common::rawclient::RawClient;
use common::records::ROOT_RECORD;
use prometheus_parse::{Sample, Scrape, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use zeo::exceptions::ZeoError;
use zeo::methods::{Request, TpcAbort};
use zeo::types::{Oid, Tid};

/// Bound for the metrics to show a change that happens asynchronously
/// (a member's death, a client's disconnect).
const METRICS_WAIT: Duration = Duration::from_secs(15);

/// Every family zeoraid exports, with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("zeoraid_array_status", "gauge"),
    ("zeoraid_member_state", "gauge"),
    ("zeoraid_member_connected", "gauge"),
    ("zeoraid_commits_total", "counter"),
    ("zeoraid_commit_duration_seconds", "histogram"),
    ("zeoraid_loads_total", "counter"),
    ("zeoraid_member_calls_total", "counter"),
    ("zeoraid_member_call_duration_seconds", "histogram"),
    ("zeoraid_degradations_total", "counter"),
    ("zeoraid_member_restarts_total", "counter"),
    ("zeoraid_bytes_total", "counter"),
    ("zeoraid_clients", "gauge"),
    ("zeoraid_client_connections_total", "counter"),
    ("zeoraid_build_info", "gauge"),
    ("zeoraid_array_last_tid_timestamp_seconds", "gauge"),
    ("zeoraid_member_lag_transactions", "gauge"),
    ("zeoraid_member_lag_seconds", "gauge"),
    ("zeoraid_reloads_total", "counter"),
    ("zeoraid_last_reload_timestamp_seconds", "gauge"),
    ("zeoraid_last_reload_success", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_open_fds", "gauge"),
];

/// One scrape of `/metrics`, parsed.
struct Metrics {
    scrape: Scrape,
    text: String,
}

impl Metrics {
    fn get(addr: SocketAddr) -> Metrics {
        let answer = http::get(addr, "/metrics");
        assert_eq!(answer.code, 200, "GET /metrics: {}", answer.body);
        let content_type = answer.content_type;
        let text = answer.body;
        assert!(
            content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
            "GET /metrics: content type {content_type:?}"
        );
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"));
        let metrics = Metrics { scrape, text };
        metrics.assert_every_line_parsed();
        metrics
    }

    /// The parser skips lines it does not understand: every sample line
    /// must have become (part of) a parsed sample, and every line be a
    /// sample, a HELP or a TYPE.
    fn assert_every_line_parsed(&self) {
        let mut sample_lines = 0;
        for line in self.text.lines().filter(|l| !l.trim().is_empty()) {
            if line.starts_with('#') {
                assert!(
                    line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                    "unexpected comment line {line:?}"
                );
            } else {
                sample_lines += 1;
            }
        }
        let parsed: usize = self
            .scrape
            .samples
            .iter()
            .map(|s| match &s.value {
                Value::Histogram(buckets) => buckets.len(),
                Value::Summary(quantiles) => quantiles.len(),
                _ => 1,
            })
            .sum();
        assert_eq!(parsed, sample_lines, "lines the parser skipped:\n{}", self.text);
    }

    fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.scrape
            .samples
            .iter()
            .filter(move |s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    }

    /// The value of the one scalar sample `name{labels}`; panics if there is
    /// none or more than one.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.samples(name, labels).collect();
        assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}\n{}", self.text);
        match found[0].value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{name}{labels:?} is not a scalar: {other:?}"),
        }
    }

    /// The sum over every sample `name{labels}` (other labels summed away).
    fn total(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels)
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                other => panic!("{name} is not a scalar: {other:?}"),
            })
            .sum()
    }

    /// The observation count of histogram `name{labels}` (its `+Inf`
    /// bucket), summed over the other labels; also checked against `_count`.
    fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut count = 0.0;
        for s in self.samples(name, labels) {
            let Value::Histogram(buckets) = &s.value else {
                panic!("{name} is not a histogram: {s:?}");
            };
            let inf = buckets
                .iter()
                .find(|b| b.less_than == f64::INFINITY)
                .unwrap_or_else(|| panic!("{name}: no +Inf bucket: {s:?}"));
            assert!(
                buckets.windows(2).all(|w| w[0].count <= w[1].count),
                "{name}: buckets not cumulative: {s:?}"
            );
            count += inf.count;
        }
        let counted = self.total(&format!("{name}_count"), labels);
        assert_eq!(
            count, counted,
            "{name}: +Inf bucket and _count differ\n{}",
            self.text
        );
        count
    }

    fn assert_families(&self) {
        for (name, kind) in FAMILIES {
            assert!(
                self.scrape.docs.get(*name).is_some_and(|h| !h.is_empty()),
                "{name}: no HELP\n{}",
                self.text
            );
            assert!(
                self.text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}: no TYPE {kind}\n{}",
                self.text
            );
            let mut samples = self.samples(name, &[]).peekable();
            assert!(samples.peek().is_some(), "{name}: no samples\n{}", self.text);
            for s in samples {
                let right = matches!(
                    (&s.value, *kind),
                    (Value::Counter(_), "counter")
                        | (Value::Gauge(_), "gauge")
                        | (Value::Histogram(_), "histogram")
                );
                assert!(right, "{name} should be a {kind}: {s:?}");
            }
        }
    }
}

/// Waits (bounded) until a scrape satisfies `ok`; returns it.
fn wait_for_metrics(addr: SocketAddr, what: &str, ok: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + METRICS_WAIT;
    loop {
        let m = Metrics::get(addr);
        if ok(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {METRICS_WAIT:?}\n{}",
            m.text
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn new_object(client: &mut RawClient) -> (Oid, Tid) {
    let oid = client.new_oid();
    let tid = client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    (oid, tid)
}

#[test]
fn metrics_parse_and_follow_traffic_and_a_member_failure() {
    let mut array = Array::start(2);
    array.wait_all_members_up(LOG_WAIT);
    let http = array.http_addr();

    let before = Metrics::get(http);
    before.assert_families();
    for member in ["zeo1", "zeo2"] {
        let optimal = [("member", member), ("state", "optimal")];
        assert_eq!(before.value("zeoraid_member_state", &optimal), 1.0);
        let degraded = [("member", member), ("state", "degraded")];
        assert_eq!(before.value("zeoraid_member_state", &degraded), 0.0);
        assert_eq!(
            before.value("zeoraid_member_connected", &[("member", member)]),
            1.0
        );
    }
    assert_eq!(
        before.value("zeoraid_array_status", &[("status", "optimal")]),
        1.0
    );
    assert_eq!(
        before.value("zeoraid_array_status", &[("status", "degraded")]),
        0.0
    );
    assert_eq!(before.value("zeoraid_array_status", &[("status", "failed")]), 0.0);

    // Traffic: N commits, a conflict, M loads, from two clients.
    const COMMITS: usize = 5;
    const LOADS: usize = 8;
    let mut client = array.client();
    let other = array.client();
    let objects: Vec<(Oid, Tid)> = (0..COMMITS).map(|_| new_object(&mut client)).collect();
    let (oid, _) = objects[0];
    let txn = client.begin();
    client.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
    match client.vote(&txn) {
        Err(e @ ZeoError::ConflictError(_)) => assert!(e.is_conflict()),
        other => panic!("a store on a stale serial should conflict: {other:?}"),
    }
    client
        .call(Request::TpcAbort(TpcAbort { id: txn }))
        .expect("tpc_abort after the conflict");
    for i in 0..LOADS {
        let (oid, tid) = objects[i % COMMITS];
        match client.load(oid) {
            Ok(Some(r)) => assert_eq!(r.start, tid),
            other => panic!("load of {oid}: {other:?}"),
        }
    }

    let after = Metrics::get(http);
    after.assert_families();
    let grew = |name: &str, labels: &[(&str, &str)]| after.total(name, labels) - before.total(name, labels);
    let committed = grew("zeoraid_commits_total", &[("outcome", "committed")]);
    assert!(committed >= COMMITS as f64, "committed grew by {committed}");
    let conflicts = grew("zeoraid_commits_total", &[("outcome", "conflict")]);
    assert_eq!(conflicts, 1.0, "one conflict");
    let loads = grew("zeoraid_loads_total", &[("outcome", "ok")]);
    assert!(loads >= LOADS as f64, "loads ok grew by {loads}");
    let name = "zeoraid_commit_duration_seconds";
    let timed = after.histogram_count(name, &[]) - before.histogram_count(name, &[]);
    assert!(timed >= COMMITS as f64, "commit durations observed: {timed}");
    for member in ["zeo1", "zeo2"] {
        let name = "zeoraid_member_call_duration_seconds";
        let votes = [("member", member), ("method", "vote")];
        let timed = after.histogram_count(name, &votes) - before.histogram_count(name, &votes);
        assert!(timed >= (COMMITS + 1) as f64, "{member}: votes timed {timed}");
        let finishes = [("member", member), ("method", "tpc_finish")];
        let timed = after.histogram_count(name, &finishes) - before.histogram_count(name, &finishes);
        assert!(timed >= COMMITS as f64, "{member}: tpc_finish timed {timed}");
        let ok = grew(
            "zeoraid_member_calls_total",
            &[("member", member), ("outcome", "ok")],
        );
        assert!(ok >= (2 * COMMITS) as f64, "{member}: calls ok grew by {ok}");
    }
    // Every load went to one member; the two members served them all.
    let load_calls = after.histogram_count(
        "zeoraid_member_call_duration_seconds",
        &[("method", "loadBefore")],
    ) - before.histogram_count(
        "zeoraid_member_call_duration_seconds",
        &[("method", "loadBefore")],
    );
    assert!(load_calls >= LOADS as f64, "loadBefore calls timed: {load_calls}");
    // Each commit's records went in and out; every frame has at least a header.
    for (direction, peer) in [
        ("in", "client"),
        ("out", "client"),
        ("in", "member"),
        ("out", "member"),
    ] {
        let bytes = grew("zeoraid_bytes_total", &[("direction", direction), ("peer", peer)]);
        let least = (COMMITS * ROOT_RECORD.len()) as f64;
        assert!(
            bytes >= least,
            "bytes {direction} {peer} grew by {bytes}, less than {least}"
        );
    }
    assert_eq!(after.value("zeoraid_clients", &[]), 2.0, "two registered clients");
    let connections = grew("zeoraid_client_connections_total", &[]);
    assert!(connections >= 2.0, "client connections grew by {connections}");

    // A client that leaves is no longer counted.
    drop(other);
    wait_for_metrics(http, "zeoraid_clients back to 1", |m| {
        m.value("zeoraid_clients", &[]) == 1.0
    });

    // Member zeo2 dies: degraded (kind failed), disconnected, restarting.
    array.members_mut()[1].kill9();
    let zeo2_degraded = [("member", "zeo2"), ("state", "degraded")];
    let failed = [("member", "zeo2"), ("kind", "failed")];
    let down = wait_for_metrics(http, "zeo2 degraded", |m| {
        m.value("zeoraid_member_state", &zeo2_degraded) == 1.0
            && m.value("zeoraid_member_restarts_total", &[("member", "zeo2")]) >= 1.0
    });
    down.assert_families();
    assert_eq!(
        down.value(
            "zeoraid_member_state",
            &[("member", "zeo2"), ("state", "optimal")]
        ),
        0.0
    );
    assert_eq!(down.value("zeoraid_member_connected", &[("member", "zeo2")]), 0.0);
    assert_eq!(
        down.value("zeoraid_degradations_total", &failed)
            - before.value("zeoraid_degradations_total", &failed),
        1.0,
        "one degradation of zeo2, kind failed"
    );
    let zeo1 = [("member", "zeo1")];
    assert_eq!(
        down.total("zeoraid_degradations_total", &zeo1),
        0.0,
        "zeo1 was never degraded"
    );
    assert_eq!(
        down.value(
            "zeoraid_member_state",
            &[("member", "zeo1"), ("state", "optimal")]
        ),
        1.0
    );
    assert_eq!(down.value("zeoraid_array_status", &[("status", "degraded")]), 1.0);
    assert_eq!(down.value("zeoraid_array_status", &[("status", "optimal")]), 0.0);

    // The array still commits on zeo1, and the metrics say so.
    let mut client = array.client();
    new_object(&mut client);
    let last = Metrics::get(http);
    let committed = last.value("zeoraid_commits_total", &[("outcome", "committed")])
        - down.value("zeoraid_commits_total", &[("outcome", "committed")]);
    assert_eq!(committed, 1.0, "the commit after the failure");
    // zeo2 stays degraded, however often its connection is retried.
    assert_eq!(last.value("zeoraid_member_state", &zeo2_degraded), 1.0);
    assert_eq!(
        last.value("zeoraid_degradations_total", &failed),
        down.value("zeoraid_degradations_total", &failed)
    );
}

/// `POST path` on the endpoint (no token).
fn post(array: &Array, path: &str) -> http::Answer {
    http::request(array.http_addr(), "POST", path, None)
}

/// Transactions zeo2 misses while disabled.
const MISSED: usize = 12;

#[test]
fn build_process_lag_recovery_and_reload_metrics() {
    let mut options = ArrayOptions::new(2);
    // The test starts the recovery; throttled so that it is seen copying.
    options.tables = "[recovery]\nauto = false\nmax_transactions_per_second = 4\n".to_string();
    let array = Array::start_with(options);
    let addr = array.http_addr();
    let start = Metrics::get(addr);

    // The build: the version, and the commit `zeoraid --version` names.
    let version = std::process::Command::new(env!("CARGO_BIN_EXE_zeoraid"))
        .arg("--version")
        .output()
        .expect("zeoraid --version");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let info: Vec<&Sample> = start.samples("zeoraid_build_info", &[]).collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    let commit = info[0].labels.get("commit").expect("a commit label");
    assert!(
        !commit.is_empty() && version.contains(&format!("(commit {commit})")),
        "build_info commit {commit:?}, --version {version:?}"
    );
    assert_eq!(start.value("zeoraid_build_info", &[]), 1.0);

    // The process: its resident memory and descriptors as /proc says them.
    let pid = array.zeoraid_pid().expect("zeoraid runs");
    let rss = start.value("process_resident_memory_bytes", &[]);
    let proc_rss = array.zeoraid_rss_kib().expect("VmRSS") as f64 * 1024.0;
    assert!(
        rss > proc_rss / 2.0 && rss < proc_rss * 2.0,
        "process_resident_memory_bytes {rss}, /proc says {proc_rss}"
    );
    let fds = start.value("process_open_fds", &[]);
    let proc_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count() as f64;
    assert!(
        (fds - proc_fds).abs() <= 4.0,
        "process_open_fds {fds}, /proc/{pid}/fd has {proc_fds}"
    );
    assert!(start.value("process_cpu_seconds_total", &[]) >= 0.0);

    // An empty storage's tid (zero) has no commit time: no series.
    assert!(start
        .samples("zeoraid_member_last_tid_timestamp_seconds", &[])
        .next()
        .is_none());

    // zeo2 disabled (after a first commit both have) misses MISSED
    // commits: its lag says so.
    array.commit_probe();
    assert_eq!(post(&array, "/members/zeo2/disable").code, 200);
    for _ in 0..MISSED {
        array.commit_probe();
    }
    let behind = Metrics::get(addr);
    let zeo1 = [("member", "zeo1")];
    let zeo2 = [("member", "zeo2")];
    assert_eq!(
        behind.value("zeoraid_member_lag_transactions", &zeo2),
        MISSED as f64
    );
    assert_eq!(behind.value("zeoraid_member_lag_transactions", &zeo1), 0.0);
    assert!(
        behind.value("zeoraid_member_lag_seconds", &zeo2) > 0.0,
        "{}",
        behind.text
    );
    assert_eq!(behind.value("zeoraid_member_lag_seconds", &zeo1), 0.0);
    let array_last = behind.value("zeoraid_array_last_tid_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!(
        (now - array_last).abs() < 60.0,
        "last tid at {array_last}, now {now}"
    );
    assert_eq!(
        behind.value("zeoraid_member_last_tid_timestamp_seconds", &zeo1),
        array_last
    );
    assert!(behind.value("zeoraid_member_last_tid_timestamp_seconds", &zeo2) < array_last);
    assert!(behind
        .samples("zeoraid_recovery_copied_bytes", &[])
        .next()
        .is_none());

    // Recovered (throttled): bytes copied and a rate while it runs.
    assert_eq!(post(&array, "/members/zeo2/recover").code, 200);
    let copying = wait_for_metrics(addr, "zeo2's recovery copying", |m| {
        m.samples("zeoraid_recovery_copied_bytes", &zeo2)
            .next()
            .is_some_and(|_| m.value("zeoraid_recovery_copied_bytes", &zeo2) > 0.0)
            && m.value("zeoraid_recovery_rate_bytes_per_second", &zeo2) > 0.0
    });
    assert!(copying.value("zeoraid_recovery_rate_transactions_per_second", &zeo2) > 0.0);
    wait_for_metrics(addr, "zeo2 caught up", |m| {
        m.value("zeoraid_member_lag_transactions", &zeo2) == 0.0
            && m.samples("zeoraid_recovery_copied_bytes", &zeo2).next().is_none()
    });

    // Reloads: one applied, one rejected (an invalid file), by result.
    assert_eq!(
        start.value("zeoraid_reloads_total", &[("result", "applied")]),
        0.0
    );
    assert_eq!(start.value("zeoraid_last_reload_timestamp_seconds", &[]), 0.0);
    assert_eq!(post(&array, "/reload").code, 200);
    let applied = Metrics::get(addr);
    assert_eq!(
        applied.value("zeoraid_reloads_total", &[("result", "applied")]),
        1.0
    );
    assert_eq!(applied.value("zeoraid_last_reload_success", &[]), 1.0);
    let reloaded_at = applied.value("zeoraid_last_reload_timestamp_seconds", &[]);
    assert!(
        (now - reloaded_at).abs() < 120.0,
        "reloaded at {reloaded_at}, now {now}"
    );
    let config = std::fs::read_to_string(array.config_path()).expect("config");
    std::fs::write(array.config_path(), "listen = [not toml").expect("write config");
    let refused = post(&array, "/reload");
    std::fs::write(array.config_path(), config).expect("restore config");
    assert_eq!(refused.code, 422, "{}", refused.body);
    let rejected = Metrics::get(addr);
    assert_eq!(
        rejected.value("zeoraid_reloads_total", &[("result", "rejected")]),
        1.0
    );
    assert_eq!(
        rejected.value("zeoraid_reloads_total", &[("result", "applied")]),
        1.0
    );
    assert_eq!(rejected.value("zeoraid_last_reload_success", &[]), 0.0);
    rejected.assert_families();
    // CPU: /proc/PID/stat's utime + stime, which the process collector
    // counts in whole seconds.
    let before = proc_cpu_seconds(pid);
    let cpu = Metrics::get(addr).value("process_cpu_seconds_total", &[]);
    let after = proc_cpu_seconds(pid);
    assert!(
        cpu >= before.floor() && cpu <= after,
        "process_cpu_seconds_total {cpu}, /proc says {before} before and {after} after"
    );
}

/// User and system CPU time of process `pid` from `/proc/PID/stat`
/// (fields 14 and 15, in ticks of 1/100 s on Linux).
fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name (field 2) may hold spaces: count from after it.
    let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}
