//! The metrics operators alert on beyond the array's own counters: which
//! build runs, the process (CPU, memory, descriptors), how far each member
//! is behind the array, how fast a recovery copies, and how reloads went.
//!
//! | metric | type | labels | updated in |
//! |---|---|---|---|
//! | `zeoraid_build_info` | gauge (always 1) | `version`, `commit` | [`build_info`], by the HTTP endpoint at start |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_virtual_memory_bytes`, `process_start_time_seconds`, `process_threads` | | | read from `/proc/self` at each scrape (the `prometheus` crate's process collector; it counts CPU in whole seconds) |
//! | `zeoraid_array_last_tid_timestamp_seconds` | gauge | | [`positions`], from the controller's status at each scrape |
//! | `zeoraid_member_last_tid_timestamp_seconds` | gauge | `member` | [`positions`] (no series while the member's last tid is unknown, or it holds no transaction) |
//! | `zeoraid_member_lag_transactions` | gauge | `member` | [`positions`]: transactions the member is missing behind the array's last tid |
//! | `zeoraid_member_lag_seconds` | gauge | `member` | [`positions`]: commit time of the array's last tid minus the member's |
//! | `zeoraid_recovery_copied_bytes` | gauge | `member` | controller, on each progress report of a running recovery |
//! | `zeoraid_recovery_rate_bytes_per_second` | gauge | `member` | the same |
//! | `zeoraid_recovery_rate_transactions_per_second` | gauge | `member` | the same |
//! | `zeoraid_reloads_total` | counter | `result` | [`reloaded`], by the reloader |
//! | `zeoraid_last_reload_timestamp_seconds` | gauge | | [`reloaded`] (0 before the first reload) |
//! | `zeoraid_last_reload_success` | gauge | | [`reloaded`]: 1 applied, 0 not (1 before the first reload) |
//!
//! A tid is a commit time, so the tid gauges are Unix times: `time() -
//! zeoraid_array_last_tid_timestamp_seconds` is how long ago the array
//! last committed. Timestamps of 64-bit tids do not fit a float exactly;
//! they are good to well under a millisecond, which is all a dashboard
//! needs.

use super::{counter_vec, gauge_vec, register, REGISTRY};
use crate::controller::{ArrayStatus, ReloadError, ReloadReport};
use crate::recovery::Progress;
use crate::tid;
use prometheus::{Gauge, GaugeVec, IntCounterVec, Opts};
use std::sync::LazyLock;
use std::time::SystemTime;
use zeo::types::Tid;

static BUILD_INFO: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_build_info",
        "Always 1: the version and the commit this zeoraid was built from",
        &["version", "commit"],
    )
});

/// Registers the process collector once (Linux: it reads `/proc/self`).
static PROCESS: LazyLock<()> = LazyLock::new(|| {
    let collector = prometheus::process_collector::ProcessCollector::for_self();
    REGISTRY
        .register(Box::new(collector))
        .expect("the process collector is registered once");
});

fn gauge(name: &str, help: &str) -> Gauge {
    register(Gauge::with_opts(Opts::new(name, help)).expect("valid metric"))
}

static ARRAY_LAST_TID: LazyLock<Gauge> = LazyLock::new(|| {
    gauge(
        "zeoraid_array_last_tid_timestamp_seconds",
        "The commit time of the array's last transaction, as a Unix time",
    )
});

static MEMBER_LAST_TID: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_member_last_tid_timestamp_seconds",
        "The commit time of each member's last transaction as zeoraid knows it, as a Unix time",
        &["member"],
    )
});

static MEMBER_LAG_TRANSACTIONS: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_member_lag_transactions",
        "Transactions each member is missing behind the array's last tid (0 for an optimal member)",
        &["member"],
    )
});

static MEMBER_LAG_SECONDS: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_member_lag_seconds",
        "How far each member is behind the array, as the difference of the commit times of the \
         array's last tid and the member's (0 for an optimal member)",
        &["member"],
    )
});

static RECOVERY_BYTES: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_recovery_copied_bytes",
        "Bytes of records the running recovery of a member has copied onto it so far (no series \
         while none runs)",
        &["member"],
    )
});

static RECOVERY_BYTE_RATE: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_recovery_rate_bytes_per_second",
        "How fast the running recovery of a member copies, in bytes per second",
        &["member"],
    )
});

static RECOVERY_TRANSACTION_RATE: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "zeoraid_recovery_rate_transactions_per_second",
        "How fast the running recovery of a member copies, in transactions per second",
        &["member"],
    )
});

/// The `result` labels of `zeoraid_reloads_total`.
const RELOAD_RESULTS: [&str; 4] = ["applied", "rejected", "refused", "failed"];

static RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = counter_vec(
        "zeoraid_reloads_total",
        "Configuration reloads (SIGHUP, POST /reload, raid_reload), by result: applied, rejected \
         (the file does not load or validate), refused (the controller refused the new member \
         list), failed (the controller did not answer)",
        &["result"],
    );
    for result in RELOAD_RESULTS {
        c.with_label_values(&[result]);
    }
    c
});

static LAST_RELOAD_TIME: LazyLock<Gauge> = LazyLock::new(|| {
    gauge(
        "zeoraid_last_reload_timestamp_seconds",
        "When the last reload ended, as a Unix time (0: none since zeoraid started)",
    )
});

static LAST_RELOAD_SUCCESS: LazyLock<Gauge> = LazyLock::new(|| {
    let g = gauge(
        "zeoraid_last_reload_success",
        "1 when the last reload was applied (or none was asked since zeoraid started), 0 when it \
         changed nothing",
    );
    g.set(1.0);
    g
});

/// Creates the families that exist from the start.
pub(super) fn init() {
    LazyLock::force(&PROCESS);
    LazyLock::force(&ARRAY_LAST_TID);
    LazyLock::force(&RELOADS);
    LazyLock::force(&LAST_RELOAD_TIME);
    LazyLock::force(&LAST_RELOAD_SUCCESS);
}

/// Publishes the build: `version` (the package's) and `commit` (the one
/// the binary was built from, or `unknown`).
pub fn build_info(version: &str, commit: &str) {
    BUILD_INFO.reset();
    BUILD_INFO.with_label_values(&[version, commit]).set(1.0);
}

/// A hex tid as the controller's status writes it; `None` also for the
/// zero tid of an empty storage, which has no commit time.
fn parse_tid(hex: &str) -> Option<Tid> {
    u64::from_str_radix(hex, 16)
        .ok()
        .filter(|raw| *raw != 0)
        .map(Tid::from_u64)
}

/// Publishes where the array and each member stand, from the controller's
/// status: the last tids' commit times and each member's lag. Members
/// absent from `status` (removed by a reload) lose their series.
pub fn positions(status: &ArrayStatus) {
    if let Some(last) = parse_tid(&status.last_tid) {
        ARRAY_LAST_TID.set(tid::unix_seconds(last));
    }
    MEMBER_LAST_TID.reset();
    MEMBER_LAG_TRANSACTIONS.reset();
    MEMBER_LAG_SECONDS.reset();
    for m in &status.members {
        let name = [m.name.as_str()];
        if let Some(last) = m.last_tid.as_deref().and_then(parse_tid) {
            MEMBER_LAST_TID
                .with_label_values(&name)
                .set(tid::unix_seconds(last));
        }
        MEMBER_LAG_TRANSACTIONS
            .with_label_values(&name)
            .set(m.lag_transactions as f64);
        MEMBER_LAG_SECONDS
            .with_label_values(&name)
            .set(m.lag_seconds.unwrap_or(0.0));
    }
}

/// A running recovery's bytes and rates.
pub(super) fn recovery_progress(member: &str, progress: &Progress) {
    RECOVERY_BYTES
        .with_label_values(&[member])
        .set(progress.copied_bytes as f64);
    RECOVERY_BYTE_RATE
        .with_label_values(&[member])
        .set(progress.rate_bytes_per_second);
    RECOVERY_TRANSACTION_RATE
        .with_label_values(&[member])
        .set(progress.rate_tps);
}

/// A recovery ended: its byte and rate series go.
pub(super) fn recovery_ended(member: &str) {
    for family in [
        &*RECOVERY_BYTES,
        &*RECOVERY_BYTE_RATE,
        &*RECOVERY_TRANSACTION_RATE,
    ] {
        let _ = family.remove_label_values(&[member]);
    }
}

/// A reload ended with `result`.
pub fn reloaded(result: &Result<ReloadReport, ReloadError>) {
    let label = match result {
        Ok(_) => "applied",
        Err(ReloadError::Rejected(_)) => "rejected",
        Err(ReloadError::Refused(_)) => "refused",
        Err(ReloadError::ControllerUnreachable(_)) => "failed",
    };
    RELOADS.with_label_values(&[label]).inc();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    LAST_RELOAD_TIME.set(now);
    LAST_RELOAD_SUCCESS.set(if result.is_ok() { 1.0 } else { 0.0 });
}
