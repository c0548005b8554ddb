//! Prometheus metrics: one registry for the process, its metric handles as
//! statics, and [`render`] for `GET /metrics` (text format 0.0.4).
//!
//! The actors update the metrics where the counted thing happens (one line
//! each): the controller for member and array state, commits, clients and
//! degradations; the member actor for its calls and restarts; sessions for
//! loads; the frame reader and writer tasks (`wire.rs`) for bytes. Nothing
//! here owns state the actors need: the metrics are a write-only copy for
//! monitoring.
//!
//! | metric | type | labels | updated in |
//! |---|---|---|---|
//! | `zeoraid_array_status` | gauge | `status` | controller: every state change |
//! | `zeoraid_member_state` | gauge | `member`, `state` | controller: every state change |
//! | `zeoraid_member_connected` | gauge | `member` | controller: member state events |
//! | `zeoraid_commits_total` | counter | `outcome` | controller `commit.rs` |
//! | `zeoraid_commit_duration_seconds` | histogram | | controller `commit.rs` |
//! | `zeoraid_loads_total` | counter | `outcome` | session `dispatch.rs`, `voted_read.rs` |
//! | `zeoraid_member_calls_total` | counter | `member`, `outcome` | member actor |
//! | `zeoraid_member_call_duration_seconds` | histogram | `member`, `method` | member actor |
//! | `zeoraid_degradations_total` | counter | `member`, `kind` | controller `degrade` |
//! | `zeoraid_member_restarts_total` | counter | `member` | member actor `fail` |
//! | `zeoraid_bytes_total` | counter | `direction`, `peer` | `wire.rs`, member handshake |
//! | `zeoraid_clients` | gauge | | controller `Register`/`SessionClosed` |
//! | `zeoraid_client_connections_total` | counter | | session start |
//! | `zeoraid_cluster_role` | gauge | `role` | the HTTP endpoint, from the election's view |
//! | `zeoraid_cluster_epoch` | gauge | | the HTTP endpoint, from the election's view |
//! | `zeoraid_cluster_takeovers_total` | counter | | the takeover, once it finished |
//!
//! Label sets that are known up front (outcomes, directions, every kind of
//! a member as soon as the controller has it) are created at 0, so a
//! series exists before its first event and `rate()` sees the first one.
//! A member removed by a reload loses its state and connection gauges; its
//! counters stay (they are history, and bounded by the names ever
//! configured). The `zeoraid_cluster_*` series exist only with `[cluster]`:
//! they are created by the first [`cluster`] call.
//!
//! The build, the process, each member's lag, a recovery's bytes and rate
//! and the reloads' outcomes are in `operations.rs` (its own table).

mod operations;

pub use operations::{build_info, positions, reloaded};

use crate::cluster::Role;
use crate::recovery::Progress;
use crate::status::{ArrayState, DegradeKind, MemberState};
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Every metric of the process is registered here.
static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("metric names and labels are fixed and unique");
    c
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

/// Commit latency: 0.5 ms (a commit on local members) to 10 s (the commit
/// deadline's range).
const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Member call latency: 100 µs (a load from a local member's cache) to 60 s
/// (a pack or a long iteration).
const CALL_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

static ARRAY_STATUS: LazyLock<GaugeVec> = LazyLock::new(|| {
    let g = gauge_vec(
        "zeoraid_array_status",
        "The array's status: 1 for the current one (optimal: every member optimal; degraded: some \
         member is not; failed: fewer optimal members than the cluster mode's quorum), 0 for the others",
        &["status"],
    );
    for status in ArrayState::ALL {
        g.with_label_values(&[status.as_str()]).set(0.0);
    }
    g
});

static MEMBER_STATE: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_member_state",
        "Each member's RAID state: 1 for its current state (optimal: gets reads and writes; \
         degraded: gets neither until recovered), 0 for the others",
        &["member", "state"],
    )
});

static MEMBER_CONNECTED: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_member_connected",
        "1 while zeoraid's connection to the member is ready (registered), 0 otherwise",
        &["member"],
    )
});

static COMMITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = counter_vec(
        "zeoraid_commits_total",
        "Transactions clients voted, by how they ended: committed \
         (tpc_finish confirmed by the members), conflict (the members voted a ConflictError), aborted \
         (another error answer to the vote, or the client aborted or disconnected after voting), failed \
         (refused or not completed because of the array: no quorum, members failed or disagreed, \
         shutting down, a tid out of order)",
        &["outcome"],
    );
    for o in [
        CommitOutcome::Committed,
        CommitOutcome::Conflict,
        CommitOutcome::Aborted,
        CommitOutcome::Failed,
    ] {
        c.with_label_values(&[o.as_str()]);
    }
    c
});

static COMMIT_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "zeoraid_commit_duration_seconds",
        "Time of each committed transaction from taking the commit lock (the vote is sent to the \
         members) to the last member's tpc_finish answer",
    )
    .buckets(COMMIT_BUCKETS.to_vec());
    register(Histogram::with_opts(opts).expect("valid metric"))
});

static LOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = counter_vec(
        "zeoraid_loads_total",
        "Clients' loadBefore calls, by how they were answered: ok (by the first member asked, or by \
         the majority in coop mode), failed_over (by another member after a member failed), error (the \
         client got an error: no member to read from, an error answer, members that disagree)",
        &["outcome"],
    );
    for o in [LoadOutcome::Ok, LoadOutcome::FailedOver, LoadOutcome::Error] {
        c.with_label_values(&[o.as_str()]);
    }
    c
});

static MEMBER_CALLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "zeoraid_member_calls_total",
        "Calls zeoraid made to each member (asynchronous calls without a reply not included), by \
         outcome: ok (a reply), error (an error reply or a protocol error), timeout (no reply within \
         the call's deadline), disconnected (the member was not connected or the connection was lost)",
        &["member", "outcome"],
    )
});

static MEMBER_CALL_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "zeoraid_member_call_duration_seconds",
        "Time from sending a call to a member to its reply (replies and error replies; timeouts and \
         lost connections are not observed), by ZEO method",
    )
    .buckets(CALL_BUCKETS.to_vec());
    register(HistogramVec::new(opts, &["member", "method"]).expect("valid metric"))
});

static DEGRADATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "zeoraid_degradations_total",
        "Times a member was taken out of the array (optimal to degraded), by kind: failed \
         (disconnected, timed out, a failed call), behind (missing transactions), diverged (answered \
         differently from the majority), slow (far slower than its peers), disabled (by an operator), \
         added (by a configuration reload)",
        &["member", "kind"],
    )
});

static RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "zeoraid_member_restarts_total",
        "Restarts of each member's connection as the restart policy counts them: a ready connection \
         lost, or a reconnect attempt failed (failed probes of a parked member are not counted)",
        &["member"],
    )
});

static BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = counter_vec(
        "zeoraid_bytes_total",
        "ZEO frame bytes (with their 4-byte length headers) read (in) and written (out), on client \
         connections and on member connections",
        &["direction", "peer"],
    );
    for direction in ["in", "out"] {
        for peer in [Peer::Client, Peer::Member] {
            c.with_label_values(&[direction, peer.as_str()]);
        }
    }
    c
});

static CLIENTS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "zeoraid_clients",
            "Client sessions currently registered with the array (they get invalidations)",
        )
        .expect("valid metric"),
    )
});

static CLIENT_CONNECTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "zeoraid_client_connections_total",
            "Client connections accepted on the ZEO listener (ruok probes included)",
        )
        .expect("valid metric"),
    )
});

static CLIENT_REFUSALS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "zeoraid_client_connections_refused_total",
            "Client connections closed as soon as they were accepted because [limits] \
             max_client_connections sessions were open",
        )
        .expect("valid metric"),
    )
});

static CLUSTER_ROLE: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_cluster_role",
        "This zeoraid's part in the cluster: 1 for the current role (leader: elected, serves the \
         clients; standby: another zeoraid leads; candidate: no leader known; deposed: no longer \
         sure it leads, about to restart as a standby), 0 for the others",
        &["role"],
    )
});

static CLUSTER_EPOCH: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "zeoraid_cluster_epoch",
            "The current leader's epoch (the etcd revision that elected it; rises with every new \
             leader), 0 while no leader is known",
        )
        .expect("valid metric"),
    )
});

static TAKEOVERS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "zeoraid_cluster_takeovers_total",
            "Takeovers this process finished (elected, members fenced and reconciled, client \
             address opened)",
        )
        .expect("valid metric"),
    )
});

/// Every role, for the role gauge's label set.
const ROLES: [Role; 4] = [Role::Leader, Role::Standby, Role::Candidate, Role::Deposed];

/// The members the state gauges currently have series for.
static PUBLISHED_MEMBERS: LazyLock<Mutex<BTreeSet<String>>> = LazyLock::new(Default::default);

/// Creates every metric, so all families are registered (and those without
/// labels rendered) before the first event.
fn init() {
    LazyLock::force(&ARRAY_STATUS);
    LazyLock::force(&MEMBER_STATE);
    LazyLock::force(&MEMBER_CONNECTED);
    LazyLock::force(&COMMITS);
    LazyLock::force(&COMMIT_DURATION);
    LazyLock::force(&LOADS);
    LazyLock::force(&MEMBER_CALLS);
    LazyLock::force(&MEMBER_CALL_DURATION);
    LazyLock::force(&DEGRADATIONS);
    LazyLock::force(&RESTARTS);
    LazyLock::force(&BYTES);
    LazyLock::force(&CLIENTS);
    LazyLock::force(&CLIENT_CONNECTIONS);
    LazyLock::force(&CLIENT_REFUSALS);
    operations::init();
    LazyLock::force(&SCRUB_TRANSACTIONS);
    LazyLock::force(&SCRUB_MISMATCHES);
    LazyLock::force(&SCRUB_RUNNING);
}

/// Every metric in Prometheus text exposition format 0.0.4, for `GET /metrics`
/// (content type [`CONTENT_TYPE`]).
pub fn render() -> String {
    init();
    let mut out = Vec::new();
    // Encoding into a Vec fails only for malformed families, which the
    // fixed definitions above cannot produce.
    let _ = TextEncoder::new().encode(&REGISTRY.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ----- what the actors call ------------------------------------------------

/// How a transaction that reached the commit lock ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CommitOutcome {
    Committed,
    Conflict,
    Aborted,
    Failed,
}

impl CommitOutcome {
    fn as_str(self) -> &'static str {
        match self {
            CommitOutcome::Committed => "committed",
            CommitOutcome::Conflict => "conflict",
            CommitOutcome::Aborted => "aborted",
            CommitOutcome::Failed => "failed",
        }
    }
}

pub(crate) fn commit(outcome: CommitOutcome) {
    COMMITS.with_label_values(&[outcome.as_str()]).inc();
}

/// A transaction committed `took` after it took the commit lock.
pub(crate) fn committed(took: Duration) {
    commit(CommitOutcome::Committed);
    COMMIT_DURATION.observe(took.as_secs_f64());
}

/// How a client's `loadBefore` was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoadOutcome {
    Ok,
    FailedOver,
    Error,
}

impl LoadOutcome {
    fn as_str(self) -> &'static str {
        match self {
            LoadOutcome::Ok => "ok",
            LoadOutcome::FailedOver => "failed_over",
            LoadOutcome::Error => "error",
        }
    }
}

/// The three load counters, looked up once: a label lookup hashes its
/// values under a lock, and this is counted on every relayed load.
static LOAD_COUNTERS: LazyLock<[IntCounter; 3]> = LazyLock::new(|| {
    [LoadOutcome::Ok, LoadOutcome::FailedOver, LoadOutcome::Error]
        .map(|o| LOADS.with_label_values(&[o.as_str()]))
});

pub(crate) fn load(outcome: LoadOutcome) {
    LOAD_COUNTERS[outcome as usize].inc();
}

/// How a call to a member ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    /// A reply.
    Ok,
    /// An error reply: the member answered.
    ErrorReply,
    /// A protocol error or a refused registration: no answer to time.
    Broken,
    /// No reply within the call's deadline.
    Timeout,
    /// The member was not connected or the connection was lost.
    Disconnected,
}

/// The `outcome` labels of `zeoraid_member_calls_total`.
const CALL_OUTCOMES: [&str; 4] = ["ok", "error", "timeout", "disconnected"];

impl CallOutcome {
    /// Its label's index in [`CALL_OUTCOMES`].
    fn label_index(self) -> usize {
        match self {
            CallOutcome::Ok => 0,
            CallOutcome::ErrorReply | CallOutcome::Broken => 1,
            CallOutcome::Timeout => 2,
            CallOutcome::Disconnected => 3,
        }
    }

    /// The member answered (a reply or an error reply): the call is timed.
    fn answered(self) -> bool {
        matches!(self, CallOutcome::Ok | CallOutcome::ErrorReply)
    }
}

/// One member's call metrics, each series looked up once (by the member
/// actor, the only one that counts its calls): two label lookups per call
/// were 4 % of a relayed load's instructions.
pub(crate) struct MemberCalls {
    member: Arc<str>,
    /// By [`CALL_OUTCOMES`].
    outcomes: [IntCounter; 4],
    durations: foldhash::HashMap<String, Histogram>,
}

impl MemberCalls {
    pub(crate) fn new(member: Arc<str>) -> MemberCalls {
        let outcomes = CALL_OUTCOMES.map(|outcome| MEMBER_CALLS.with_label_values(&[&member, outcome]));
        MemberCalls {
            member,
            outcomes,
            durations: foldhash::HashMap::default(),
        }
    }

    /// A call to the member ended (`outcome`), `took` after it was sent.
    pub(crate) fn ended(&mut self, method: &str, took: Duration, outcome: CallOutcome) {
        self.outcomes[outcome.label_index()].inc();
        if outcome.answered() {
            let seconds = took.as_secs_f64();
            match self.durations.get(method) {
                Some(histogram) => histogram.observe(seconds),
                None => {
                    let histogram = MEMBER_CALL_DURATION.with_label_values(&[&*self.member, method]);
                    histogram.observe(seconds);
                    self.durations.insert(method.to_owned(), histogram);
                }
            }
        }
    }
}

/// The controller took `member` out of the array.
pub(crate) fn degraded(member: &str, kind: DegradeKind) {
    DEGRADATIONS.with_label_values(&[member, kind.as_str()]).inc();
}

/// The restart policy counted a restart of `member`'s connection.
pub(crate) fn member_restart(member: &str) {
    RESTARTS.with_label_values(&[member]).inc();
}

/// Which side of zeoraid a connection is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    Client,
    Member,
}

impl Peer {
    fn as_str(self) -> &'static str {
        match self {
            Peer::Client => "client",
            Peer::Member => "member",
        }
    }
}

/// The counter of bytes read from `peer` connections.
pub(crate) fn bytes_in(peer: Peer) -> IntCounter {
    BYTES.with_label_values(&["in", peer.as_str()])
}

/// The counter of bytes written to `peer` connections.
pub(crate) fn bytes_out(peer: Peer) -> IntCounter {
    BYTES.with_label_values(&["out", peer.as_str()])
}

/// The length header every frame has on the wire.
pub(crate) const FRAME_HEADER: u64 = 4;

static RECOVERY_COPIED: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_recovery_copied_transactions",
        "Transactions the running recovery of a member has copied onto it so far (no series while \
         none runs)",
        &["member"],
    )
});

static RECOVERY_DONE: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_recovery_fraction_done",
        "How much of the history a running recovery has to copy is copied, 0 to 1 (by commit time)",
        &["member"],
    )
});

static RECOVERY_BLOCK: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "zeoraid_recovery_final_step_seconds",
                "How long commits waited for one slice of a recovery's final step (the tail copied under the commit lock)",
            )
            .buckets(COMMIT_BUCKETS.to_vec()),
        )
        .expect("valid metric"),
    )
});

/// A recovery's progress.
pub(crate) fn recovery_progress(member: &str, progress: &Progress) {
    RECOVERY_COPIED
        .with_label_values(&[member])
        .set(progress.copied_transactions as f64);
    RECOVERY_DONE
        .with_label_values(&[member])
        .set(progress.fraction_done);
    operations::recovery_progress(member, progress);
}

/// A recovery ended (done or not): its series go.
pub(crate) fn recovery_ended(member: &str) {
    let _ = RECOVERY_COPIED.remove_label_values(&[member]);
    let _ = RECOVERY_DONE.remove_label_values(&[member]);
    operations::recovery_ended(member);
}

/// A recovery's final step held the commit lock this long.
pub(crate) fn recovery_final_step(blocked: Duration) {
    RECOVERY_BLOCK.observe(blocked.as_secs_f64());
}

static SCRUB_TRANSACTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "zeoraid_scrub_transactions_total",
            "Transactions the scrub compared across the optimal members",
        )
        .expect("valid metric"),
    )
});

static SCRUB_MISMATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "zeoraid_scrub_mismatches_total",
            "Differences the scrub found between members (a member outvoted and degraded as \
             diverged, or no majority: the array inconsistent)",
        )
        .expect("valid metric"),
    )
});

static SCRUB_RUNNING: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("zeoraid_scrub_running", "1 while a scrub runs, else 0").expect("valid metric"))
});

/// The scrub compared `n` more transactions.
pub(crate) fn scrub_transactions(n: u64) {
    SCRUB_TRANSACTIONS.inc_by(n);
}

/// The scrub found a difference.
pub(crate) fn scrub_mismatch() {
    SCRUB_MISMATCHES.inc();
}

/// A scrub started or ended.
pub(crate) fn scrub_running(running: bool) {
    SCRUB_RUNNING.set(i64::from(running));
}

/// The number of registered client sessions.
pub(crate) fn clients(n: usize) {
    CLIENTS.set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// A client connection was accepted.
pub(crate) fn client_connected() {
    CLIENT_CONNECTIONS.inc();
}

/// A client connection was refused over the connection limit.
pub fn client_refused() {
    CLIENT_REFUSALS.inc();
}

/// Publishes this zeoraid's role and the leader's epoch (`None`: no
/// leader known) as the election's view says them.
pub fn cluster(role: Role, epoch: Option<i64>) {
    for r in ROLES {
        CLUSTER_ROLE
            .with_label_values(&[r.as_str()])
            .set(if r == role { 1.0 } else { 0.0 });
    }
    CLUSTER_EPOCH.set(epoch.unwrap_or(0));
    LazyLock::force(&TAKEOVERS);
}

/// This process finished a takeover: it serves the clients from now on.
pub fn takeover() {
    TAKEOVERS.inc();
}

/// Publishes the array's status and every member's state and connection
/// (`(name, state, connected)`).
/// Members that are gone since the last call lose their state series; new
/// ones get every per-member counter series at 0.
pub(crate) fn array<'a>(status: ArrayState, members: impl IntoIterator<Item = (&'a str, MemberState, bool)>) {
    for s in ArrayState::ALL {
        ARRAY_STATUS
            .with_label_values(&[s.as_str()])
            .set(if *s == status { 1.0 } else { 0.0 });
    }
    let mut published = PUBLISHED_MEMBERS.lock().unwrap_or_else(|p| p.into_inner());
    let mut now = BTreeSet::new();
    for (name, state, connected) in members {
        if !published.contains(name) {
            for kind in DegradeKind::ALL {
                DEGRADATIONS.with_label_values(&[name, kind.as_str()]);
            }
            for outcome in CALL_OUTCOMES {
                MEMBER_CALLS.with_label_values(&[name, outcome]);
            }
            RESTARTS.with_label_values(&[name]);
        }
        for s in MemberState::ALL {
            MEMBER_STATE
                .with_label_values(&[name, s.as_str()])
                .set(if *s == state { 1.0 } else { 0.0 });
        }
        MEMBER_CONNECTED
            .with_label_values(&[name])
            .set(if connected { 1.0 } else { 0.0 });
        now.insert(name.to_owned());
    }
    for gone in published.difference(&now) {
        for s in MemberState::ALL {
            let _ = MEMBER_STATE.remove_label_values(&[gone.as_str(), s.as_str()]);
        }
        let _ = MEMBER_CONNECTED.remove_label_values(&[gone.as_str()]);
    }
    *published = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_parse::{Sample, Scrape, Value};

    /// [`array`] publishes the whole member set: tests that call it take turns.
    static ARRAY_TESTS: Mutex<()> = Mutex::new(());

    fn scrape() -> Scrape {
        let text = render();
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition")
    }

    fn sample<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    }

    fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        match sample(scrape, name, labels).map(|s| &s.value) {
            Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
            Some(Value::Histogram(_) | Value::Summary(_)) => panic!("{name} is not a scalar"),
            None => 0.0,
        }
    }

    fn histogram_count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        // prometheus-parse folds `_count` into the histogram sample's
        // buckets; the `+Inf` bucket is the count.
        match sample(scrape, name, labels).map(|s| &s.value) {
            Some(Value::Histogram(buckets)) => buckets
                .iter()
                .find(|b| b.less_than == f64::INFINITY)
                .map_or(0.0, |b| b.count),
            _ => 0.0,
        }
    }

    #[test]
    fn every_family_is_rendered_with_help_and_type() {
        let text = render();
        for (name, kind) in [
            ("zeoraid_array_status", "gauge"),
            ("zeoraid_commits_total", "counter"),
            ("zeoraid_commit_duration_seconds", "histogram"),
            ("zeoraid_loads_total", "counter"),
            ("zeoraid_bytes_total", "counter"),
            ("zeoraid_clients", "gauge"),
            ("zeoraid_client_connections_total", "counter"),
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "no TYPE {kind} for {name}:\n{text}"
            );
        }
        // Known outcomes exist at 0 before their first event.
        for outcome in ["committed", "conflict", "aborted", "failed"] {
            assert!(text.contains(&format!("zeoraid_commits_total{{outcome=\"{outcome}\"}}")));
        }
        for outcome in ["ok", "failed_over", "error"] {
            assert!(text.contains(&format!("zeoraid_loads_total{{outcome=\"{outcome}\"}}")));
        }
    }

    #[test]
    fn counters_and_histograms_move() {
        let before = scrape();
        commit(CommitOutcome::Conflict);
        committed(Duration::from_millis(3));
        committed(Duration::from_millis(30));
        load(LoadOutcome::FailedOver);
        bytes_in(Peer::Client).inc_by(100);
        client_connected();
        let after = scrape();
        let grew =
            |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
        // Other tests in this process may count too: at least, not exactly.
        assert!(grew("zeoraid_commits_total", &[("outcome", "committed")]) >= 2.0);
        assert!(grew("zeoraid_commits_total", &[("outcome", "conflict")]) >= 1.0);
        assert!(grew("zeoraid_loads_total", &[("outcome", "failed_over")]) >= 1.0);
        assert!(grew("zeoraid_bytes_total", &[("direction", "in"), ("peer", "client")]) >= 100.0);
        assert!(grew("zeoraid_client_connections_total", &[]) >= 1.0);
        let name = "zeoraid_commit_duration_seconds";
        assert!(histogram_count(&after, name, &[]) - histogram_count(&before, name, &[]) >= 2.0);
    }

    #[test]
    fn member_calls_are_counted_by_outcome_and_timed_when_answered() {
        let m = "metrics-test-calls";
        let mut calls = MemberCalls::new(Arc::from(m));
        let (load, vote) = ("loadBefore", "vote");
        calls.ended(load, Duration::from_micros(300), CallOutcome::Ok);
        calls.ended(load, Duration::from_millis(2), CallOutcome::ErrorReply);
        calls.ended(vote, Duration::from_secs(1), CallOutcome::Timeout);
        calls.ended(vote, Duration::ZERO, CallOutcome::Disconnected);
        let s = scrape();
        for outcome in ["ok", "error", "timeout", "disconnected"] {
            let v = value(
                &s,
                "zeoraid_member_calls_total",
                &[("member", m), ("outcome", outcome)],
            );
            assert_eq!(v, 1.0, "{outcome}");
        }
        let name = "zeoraid_member_call_duration_seconds";
        let load = [("member", m), ("method", "loadBefore")];
        assert_eq!(histogram_count(&s, name, &load), 2.0);
        assert!(
            sample(&s, name, &[("member", m), ("method", "vote")]).is_none(),
            "timeouts and lost connections are not timed"
        );
    }

    #[test]
    fn member_state_follows_the_array_and_removed_members_disappear() {
        // Names of their own: other tests share the registry.
        let _turn = ARRAY_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = ("metrics-test-a", "metrics-test-b");
        array(
            ArrayState::Degraded,
            [(a, MemberState::Optimal, true), (b, MemberState::Degraded, false)],
        );
        degraded(b, DegradeKind::Failed);
        member_restart(b);
        let s = scrape();
        let state =
            |s: &Scrape, m: &str, st: &str| value(s, "zeoraid_member_state", &[("member", m), ("state", st)]);
        assert_eq!(state(&s, a, "optimal"), 1.0);
        assert_eq!(state(&s, a, "degraded"), 0.0);
        assert_eq!(state(&s, b, "optimal"), 0.0);
        assert_eq!(state(&s, b, "degraded"), 1.0);
        assert_eq!(value(&s, "zeoraid_member_connected", &[("member", b)]), 0.0);
        assert_eq!(value(&s, "zeoraid_member_connected", &[("member", a)]), 1.0);
        let kind = |k: &str| value(&s, "zeoraid_degradations_total", &[("member", b), ("kind", k)]);
        assert_eq!(kind("failed"), 1.0);
        assert!(
            sample(
                &s,
                "zeoraid_degradations_total",
                &[("member", a), ("kind", "slow")]
            )
            .is_some(),
            "every kind exists at 0 for a new member"
        );
        assert_eq!(value(&s, "zeoraid_member_restarts_total", &[("member", b)]), 1.0);

        // `b` removed by a reload: its state series go, its counters stay.
        array(ArrayState::Optimal, [(a, MemberState::Optimal, true)]);
        let s = scrape();
        assert!(sample(&s, "zeoraid_member_state", &[("member", b)]).is_none());
        assert!(sample(&s, "zeoraid_member_connected", &[("member", b)]).is_none());
        assert!(sample(&s, "zeoraid_degradations_total", &[("member", b)]).is_some());
    }

    #[test]
    fn cluster_role_epoch_and_takeovers() {
        cluster(Role::Standby, Some(7));
        let s = scrape();
        let role = |s: &Scrape, r: &str| value(s, "zeoraid_cluster_role", &[("role", r)]);
        assert_eq!(role(&s, "standby"), 1.0);
        for other in ["leader", "candidate", "deposed"] {
            assert!(sample(&s, "zeoraid_cluster_role", &[("role", other)]).is_some());
            assert_eq!(role(&s, other), 0.0, "{other}");
        }
        assert_eq!(value(&s, "zeoraid_cluster_epoch", &[]), 7.0);
        let before = value(&s, "zeoraid_cluster_takeovers_total", &[]);
        assert!(sample(&s, "zeoraid_cluster_takeovers_total", &[]).is_some());

        cluster(Role::Leader, Some(9));
        takeover();
        let s = scrape();
        assert_eq!(role(&s, "leader"), 1.0);
        assert_eq!(role(&s, "standby"), 0.0);
        assert_eq!(value(&s, "zeoraid_cluster_epoch", &[]), 9.0);
        assert_eq!(value(&s, "zeoraid_cluster_takeovers_total", &[]), before + 1.0);

        cluster(Role::Candidate, None);
        assert_eq!(value(&scrape(), "zeoraid_cluster_epoch", &[]), 0.0);
    }

    #[test]
    fn array_status_has_exactly_one_current_status() {
        let _turn = ARRAY_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        array(ArrayState::Failed, std::iter::empty());
        let s = scrape();
        let status = |st: &str| value(&s, "zeoraid_array_status", &[("status", st)]);
        assert_eq!(status("failed"), 1.0);
        assert_eq!(status("optimal"), 0.0);
        assert_eq!(status("degraded"), 0.0);
    }
}
