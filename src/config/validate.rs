//! Turns the raw settings into a `Config`, applying defaults and collecting
//! every problem rather than stopping at the first.
//!
//! Reporting everything at once matters for a config that is usually edited
//! on a production host: one round trip of `check-config` should show all
//! the mistakes. To keep going after a bad value, each check records the
//! problem and substitutes the default, and the half-built `Config` is
//! thrown away at the end if anything was recorded.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use super::duration::{parse_duration, HumanDuration};
use super::model::*;
use super::raw::{
    RawCluster, RawConfig, RawHttp, RawLimits, RawMember, RawRecovery, RawRestart, RawScrub, RawSlowMember,
    RawTimeouts,
};
use zeoraid_actors::recovery::Throttle;

/// One thing wrong with the settings, located by its key path
/// (`members[1].address`, `restart.jitter`, `ZEORAID_LOG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Longest Unix socket path the kernel accepts (`sun_path` is 108 bytes
/// including the terminating NUL); longer paths only fail at connect time,
/// long after the operator has moved on.
pub(super) const MAX_UNIX_PATH: usize = 107;

#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// Validates `raw`; `log_env` is the value of `ZEORAID_LOG`, which wins
/// over `[log]` because it is the operator's quickest knob when debugging.
///
/// Each setting or table is checked by its own step; problems are reported
/// in the order of the steps here, which tests rely on.
pub fn validate(raw: RawConfig, log_env: Option<&str>) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();

    // `None` when invalid: comparisons against `listen` below would
    // otherwise be made against the substituted default and mislead.
    let valid_listen = super::listen::address(&mut p, raw.listen.as_deref());
    let listen = (valid_listen.clone()).unwrap_or_else(|| ListenAddress::Tcp(default_addr(DEFAULT_LISTEN)()));
    let listen_mode = super::listen::mode(&mut p, raw.listen_mode.as_deref(), valid_listen.as_ref());
    let storage = storage_name(&mut p, raw.storage);
    let cluster_mode = cluster_mode(&mut p, raw.cluster_mode.as_deref());
    let fail_mode = fail_mode(&mut p, raw.fail_mode.as_deref());
    let max_frame_size = max_frame_size(&mut p, raw.max_frame_size);
    let spool_dir = spool_dir(&mut p, raw.spool_dir);
    let state_dir = state_dir(&mut p, raw.state_dir);
    let timeouts = timeouts(&mut p, raw.timeouts.unwrap_or_default());
    let limits = limits(&mut p, raw.limits.unwrap_or_default());
    let restart = restart_policy(
        &mut p,
        "restart",
        &raw.restart.unwrap_or_default(),
        &DEFAULT_RESTART,
        None,
    );
    let recovery = recovery(&mut p, raw.recovery.unwrap_or_default());
    let scrub = scrub(&mut p, raw.scrub.unwrap_or_default());
    let slow_member = slow_member_policy(&mut p, raw.slow_member.unwrap_or_default());
    let valid_tcp_listen = match valid_listen {
        Some(ListenAddress::Tcp(addr)) => Some(addr),
        _ => None,
    };
    let http = http(&mut p, raw.http.unwrap_or_default(), valid_tcp_listen);
    let zeo_admin_calls = zeo_admin_calls(&mut p, raw.zeo_admin_calls.as_deref());
    let log = log_settings(&mut p, raw.log.unwrap_or_default(), log_env);
    let cluster = raw.cluster.map(|raw| cluster(&mut p, raw));
    let members = members(
        &mut p,
        raw.members.unwrap_or_default(),
        &restart,
        valid_listen.clone(),
        &storage,
    );
    super::listen::refuse_tls_on_unix(&mut p, valid_listen.as_ref(), raw.tls.is_some());
    let tls = raw.tls.map(|raw| super::tls::front(&mut p, raw));

    let config = Config {
        listen,
        listen_mode,
        storage,
        cluster_mode,
        fail_mode,
        msgpack: raw.msgpack.unwrap_or(false),
        max_frame_size,
        spool_dir,
        state_dir,
        timeouts,
        limits,
        restart,
        recovery,
        scrub,
        slow_member,
        http,
        zeo_admin_calls,
        log,
        cluster,
        members,
        tls,
    };
    if p.0.is_empty() {
        Ok(config)
    } else {
        Err(p.0)
    }
}

fn storage_name(p: &mut Problems, raw: Option<String>) -> String {
    storage_name_or(p, "storage", raw, DEFAULT_STORAGE)
}

fn storage_name_or(p: &mut Problems, key: &str, raw: Option<String>, default: &str) -> String {
    match raw {
        Some(s) if s.is_empty() => {
            p.push(key, "must not be empty");
            default.to_owned()
        }
        Some(s) => s,
        None => default.to_owned(),
    }
}

fn cluster_mode(p: &mut Problems, raw: Option<&str>) -> ClusterMode {
    match raw {
        None | Some("single") => ClusterMode::Single,
        Some("coop") => ClusterMode::Coop,
        Some(other) => {
            p.push(
                "cluster_mode",
                format!("expected \"single\" or \"coop\", got {other:?}"),
            );
            ClusterMode::Single
        }
    }
}

fn zeo_admin_calls(p: &mut Problems, raw: Option<&str>) -> ZeoAdminCalls {
    match raw {
        None => ZeoAdminCalls::default(),
        Some(text) => ZeoAdminCalls::parse(text).unwrap_or_else(|| {
            p.push(
                "zeo_admin_calls",
                format!("expected {}, got {text:?}", ZeoAdminCalls::NAMES),
            );
            ZeoAdminCalls::default()
        }),
    }
}

fn fail_mode(p: &mut Problems, raw: Option<&str>) -> FailMode {
    match raw {
        None | Some("close") => FailMode::Close,
        Some("read-only") => FailMode::ReadOnly,
        Some(other) => {
            p.push(
                "fail_mode",
                format!("expected \"close\" or \"read-only\", got {other:?}"),
            );
            FailMode::Close
        }
    }
}

fn max_frame_size(p: &mut Problems, raw: Option<u64>) -> usize {
    match raw {
        None => DEFAULT_MAX_FRAME_SIZE,
        Some(n) if (MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&n) => n as usize,
        Some(n) => {
            p.push(
                "max_frame_size",
                format!(
                    "must be between {MIN_MAX_FRAME_SIZE} and {MAX_MAX_FRAME_SIZE} bytes \
                     (at least a ZEO blob chunk with its envelope; frames have a 32-bit \
                     length), got {n}"
                ),
            );
            DEFAULT_MAX_FRAME_SIZE
        }
    }
}

fn spool_dir(p: &mut Problems, raw: Option<PathBuf>) -> PathBuf {
    match raw {
        Some(dir) if dir.as_os_str().is_empty() => {
            p.push(
                "spool_dir",
                "must not be empty (remove the key to use the system temporary directory)",
            );
            std::env::temp_dir()
        }
        Some(dir) => dir,
        None => std::env::temp_dir(),
    }
}

fn state_dir(p: &mut Problems, raw: Option<PathBuf>) -> PathBuf {
    match raw {
        Some(dir) if dir.as_os_str().is_empty() => {
            p.push(
                "state_dir",
                "must not be empty (remove the key to keep the state in `state` next to the configuration file)",
            );
            PathBuf::from(DEFAULT_STATE_DIR)
        }
        Some(dir) => dir,
        None => PathBuf::from(DEFAULT_STATE_DIR),
    }
}

/// The array state's directory when `state_dir` is not set: `state`, next
/// to the configuration file.
pub const DEFAULT_STATE_DIR: &str = "state";

fn timeouts(p: &mut Problems, raw: RawTimeouts) -> Timeouts {
    Timeouts {
        connect: positive_duration(
            p,
            "timeouts.connect",
            raw.connect.as_deref(),
            DEFAULT_TIMEOUTS.connect,
        ),
        call: positive_duration(p, "timeouts.call", raw.call.as_deref(), DEFAULT_TIMEOUTS.call),
        commit: positive_duration(
            p,
            "timeouts.commit",
            raw.commit.as_deref(),
            DEFAULT_TIMEOUTS.commit,
        ),
        pack: positive_duration(p, "timeouts.pack", raw.pack.as_deref(), DEFAULT_TIMEOUTS.pack),
        transaction: positive_duration(
            p,
            "timeouts.transaction",
            raw.transaction.as_deref(),
            DEFAULT_TIMEOUTS.transaction,
        ),
        handshake: positive_duration(
            p,
            "timeouts.handshake",
            raw.handshake.as_deref(),
            DEFAULT_TIMEOUTS.handshake,
        ),
    }
}

fn limits(p: &mut Problems, raw: RawLimits) -> Limits {
    Limits {
        max_client_connections: count(
            p,
            "limits.max_client_connections",
            raw.max_client_connections,
            1..=MAX_CLIENT_CONNECTIONS,
            DEFAULT_LIMITS.max_client_connections,
        ),
        client_backlog: count(
            p,
            "limits.client_backlog",
            raw.client_backlog,
            MIN_CLIENT_BACKLOG..=usize::MAX as u64,
            DEFAULT_LIMITS.client_backlog,
        ),
        transaction_memory: count(
            p,
            "limits.transaction_memory",
            raw.transaction_memory,
            0..=usize::MAX as u64,
            DEFAULT_LIMITS.transaction_memory,
        ),
        explicit_tid_skew: duration(
            p,
            "limits.explicit_tid_skew",
            raw.explicit_tid_skew.as_deref(),
            DEFAULT_LIMITS.explicit_tid_skew,
        ),
        blob_downloads_per_session: count(
            p,
            "limits.blob_downloads_per_session",
            raw.blob_downloads_per_session,
            1..=MAX_BLOB_DOWNLOADS_PER_SESSION,
            DEFAULT_LIMITS.blob_downloads_per_session,
        ),
    }
}

/// A number (of connections, of bytes) within `range`, or `default` when
/// the key is left out.
fn count(
    p: &mut Problems,
    key: &str,
    value: Option<u64>,
    range: RangeInclusive<u64>,
    default: usize,
) -> usize {
    match value {
        None => default,
        Some(n) if range.contains(&n) => n as usize,
        Some(n) => {
            let (min, max) = range.into_inner();
            p.push(key, format!("must be between {min} and {max}, got {n}"));
            default
        }
    }
}

fn recovery(p: &mut Problems, raw: RawRecovery) -> Recovery {
    let recovery = Recovery {
        max_transactions_per_second: raw.max_transactions_per_second.and_then(NonZeroU64::new),
        max_bytes_per_second: raw.max_bytes_per_second.and_then(NonZeroU64::new),
        auto: raw.auto.unwrap_or(DEFAULT_RECOVERY.auto),
        stable_for: duration(
            p,
            "recovery.stable_for",
            raw.stable_for.as_deref(),
            DEFAULT_RECOVERY.stable_for,
        ),
        final_step_slice: positive_duration(
            p,
            "recovery.final_step_slice",
            raw.final_step_slice.as_deref(),
            DEFAULT_RECOVERY.final_step_slice,
        ),
        final_step_timeout: positive_duration(
            p,
            "recovery.final_step_timeout",
            raw.final_step_timeout.as_deref(),
            DEFAULT_RECOVERY.final_step_timeout,
        ),
    };
    if recovery.final_step_timeout <= recovery.final_step_slice {
        p.push(
            "recovery.final_step_timeout",
            "must be longer than recovery.final_step_slice (it bounds a slice that overran its budget)",
        );
    }
    recovery
}

/// `[scrub]`: rates as `[recovery]`'s (0 = unthrottled), and an optional
/// schedule (absent or "0s": only operators start a scrub).
fn scrub(p: &mut Problems, raw: RawScrub) -> ScrubPolicy {
    let default = ScrubPolicy::default();
    let rate = |value: Option<u64>, default: Option<NonZeroU64>| value.map_or(default, NonZeroU64::new);
    let interval = duration(p, "scrub.interval", raw.interval.as_deref(), Duration::ZERO);
    ScrubPolicy {
        throttle: Throttle {
            max_transactions_per_second: rate(
                raw.max_transactions_per_second,
                default.throttle.max_transactions_per_second,
            ),
            max_bytes_per_second: rate(raw.max_bytes_per_second, default.throttle.max_bytes_per_second),
        },
        interval: (!interval.is_zero()).then_some(interval),
    }
}

/// `[cluster]`: at least one etcd URL (plain `http://`: the etcd client
/// is built without TLS), a lease of whole seconds no shorter than etcd
/// grants, a name (the host's by default).
fn cluster(p: &mut Problems, raw: RawCluster) -> Cluster {
    let etcd = raw.etcd.unwrap_or_default();
    if etcd.is_empty() {
        p.push(
            "cluster.etcd",
            "must list at least one etcd client URL, e.g. [\"http://127.0.0.1:2379\"]",
        );
    }
    for url in &etcd {
        let Some(hostport) = url.strip_prefix("http://") else {
            p.push(
                "cluster.etcd",
                format!("expected http://host:port, got {url:?} (https is not supported yet)"),
            );
            continue;
        };
        if hostport.is_empty() || hostport.contains('/') {
            p.push("cluster.etcd", format!("expected http://host:port, got {url:?}"));
        }
    }
    let lease_ttl = positive_duration(
        p,
        "cluster.lease_ttl",
        raw.lease_ttl.as_deref(),
        DEFAULT_LEASE_TTL,
    );
    if lease_ttl < MIN_LEASE_TTL || lease_ttl.subsec_nanos() != 0 {
        p.push(
            "cluster.lease_ttl",
            format!(
                "must be whole seconds, at least {}s (etcd grants leases in seconds, none shorter)",
                MIN_LEASE_TTL.as_secs()
            ),
        );
    }
    let name = match raw.name {
        Some(name) if name.trim().is_empty() => {
            p.push(
                "cluster.name",
                "must not be empty (remove the key to use the host name)",
            );
            String::new()
        }
        Some(name) => name,
        None => host_name(),
    };
    let prefix = match raw.prefix {
        Some(prefix) if prefix.is_empty() || prefix.ends_with('/') => {
            p.push(
                "cluster.prefix",
                format!("must be a non-empty key prefix without a trailing '/', got {prefix:?}"),
            );
            DEFAULT_CLUSTER_PREFIX.to_owned()
        }
        Some(prefix) => prefix,
        None => DEFAULT_CLUSTER_PREFIX.to_owned(),
    };
    Cluster {
        etcd,
        name,
        lease_ttl,
        prefix,
    }
}

/// The host's name, the default name of a zeoraid in a cluster.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "zeoraid".to_owned())
}

/// `[http]`; `valid_listen` is the ZEO listen address when it is valid,
/// which the HTTP endpoint must not share.
fn http(p: &mut Problems, raw: RawHttp, valid_listen: Option<SocketAddr>) -> Http {
    let http_listen = socket_addr(
        p,
        "http.listen",
        TCP_EXPECTED,
        raw.listen.as_deref(),
        DEFAULT_HTTP_LISTEN,
    );
    let http = Http {
        listen: http_listen.unwrap_or_else(default_addr(DEFAULT_HTTP_LISTEN)),
        token: match raw.token {
            Some(t) if t.trim().is_empty() => {
                p.push(
                    "http.token",
                    "must not be empty when set (remove the key to disable authentication)",
                );
                None
            }
            other => other,
        },
        token_for_reads: raw.token_for_reads.unwrap_or(false),
    };
    if http.token_for_reads && http.token.is_none() {
        p.push(
            "http.token_for_reads",
            "needs http.token (the token the reads must carry)",
        );
    }
    // Port 0 asks the OS for a free port: the two never collide.
    if http_listen.is_some() && http_listen == valid_listen && valid_listen.is_some_and(|l| l.port() != 0) {
        p.push(
            "http.listen",
            format!("{} is also the ZEO listen address", http.listen),
        );
    }
    http
}

/// What a TCP listen address may be.
const TCP_EXPECTED: &str = "host:port (an IP address or a host name)";

/// `None` if `value` is set but invalid (the problem is recorded, saying
/// the value was `expected`).
pub(super) fn socket_addr(
    p: &mut Problems,
    key: &str,
    expected: &str,
    value: Option<&str>,
    default: &'static str,
) -> Option<SocketAddr> {
    match value {
        None => Some(default_addr(default)()),
        Some(text) => match text.parse().map_err(|_| resolve_listen(text)) {
            Ok(addr) | Err(Ok(addr)) => Some(addr),
            Err(Err(why)) => {
                p.push(
                    key,
                    format!("expected {expected} such as \"{default}\", got {text:?}{why}"),
                );
                None
            }
        },
    }
}

/// A listen address given by host name ("localhost:8100", the host's own
/// name) is resolved once, when the configuration is read: zeoraid binds
/// one socket, and an address that moved needs a restart anyway. Of
/// several addresses, the first IPv4 one is taken (what "localhost" means
/// to most clients), else the first. The error is a suffix for the message.
fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let (host, port) = text.rsplit_once(':').ok_or_else(String::new)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(String::new());
    }
    let addrs: Vec<SocketAddr> = text.to_socket_addrs().map_err(|e| format!(": {e}"))?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!(": {host} has no address"))
}

fn default_addr(text: &'static str) -> impl Fn() -> SocketAddr {
    move || text.parse().expect("built-in default address parses")
}

fn duration(p: &mut Problems, key: &str, value: Option<&str>, default: Duration) -> Duration {
    match value.map(parse_duration) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.push(key, e.to_string());
            default
        }
    }
}

/// For settings where zero would mean "never wait" or "spin", which is
/// never what an operator wants from a timeout or interval.
fn positive_duration(p: &mut Problems, key: &str, value: Option<&str>, default: Duration) -> Duration {
    let before = p.0.len();
    let d = duration(p, key, value, default);
    if d.is_zero() && p.0.len() == before {
        p.push(key, "must be greater than 0s");
        return default;
    }
    d
}

/// Builds the effective restart policy for `prefix` (`restart` or
/// `members[i].restart`) by laying `raw` over `base`.
///
/// `inherited_from` names the table `base` came from. A member's override
/// is only blamed for problems it causes: values it inherits were already
/// checked under `restart`, so repeating those problems per member would
/// bury the real one.
fn restart_policy(
    p: &mut Problems,
    prefix: &str,
    raw: &RawRestart,
    base: &RestartPolicy,
    inherited_from: Option<&str>,
) -> RestartPolicy {
    let key = |name: &str| format!("{prefix}.{name}");
    let mut policy = *base;

    if let Some(n) = raw.max_restarts {
        if n == 0 {
            p.push(
                key("max_restarts"),
                "must be at least 1 (0 would park the member on its first failure)",
            );
        } else {
            policy.max_restarts = n;
        }
    }
    if let Some(j) = raw.jitter {
        if j.is_finite() && (0.0..=1.0).contains(&j) {
            policy.jitter = j;
        } else {
            p.push(key("jitter"), format!("must be between 0.0 and 1.0, got {j}"));
        }
    }
    policy.restart_window = positive_duration(
        p,
        &key("restart_window"),
        raw.restart_window.as_deref(),
        base.restart_window,
    );
    policy.backoff_initial = positive_duration(
        p,
        &key("backoff_initial"),
        raw.backoff_initial.as_deref(),
        base.backoff_initial,
    );
    policy.backoff_max = positive_duration(
        p,
        &key("backoff_max"),
        raw.backoff_max.as_deref(),
        base.backoff_max,
    );
    policy.park_probe_interval = positive_duration(
        p,
        &key("park_probe_interval"),
        raw.park_probe_interval.as_deref(),
        base.park_probe_interval,
    );

    // Checked whenever either end comes from this table: the defaults
    // themselves are coherent, so an incoherent pair always involves a
    // value the operator wrote here.
    let touched = raw.backoff_initial.is_some() || raw.backoff_max.is_some();
    if touched && policy.backoff_initial > policy.backoff_max {
        let (blamed, other, other_set) = if raw.backoff_initial.is_some() {
            ("backoff_initial", "backoff_max", raw.backoff_max.is_some())
        } else {
            ("backoff_max", "backoff_initial", false)
        };
        let origin = match (other_set, inherited_from) {
            (false, Some(from)) => format!(" (inherited from {from}.{other})"),
            (false, None) => " (the default)".to_owned(),
            (true, _) => String::new(),
        };
        p.push(
            key(blamed),
            format!(
                "backoff_initial {} is greater than backoff_max {}{origin}",
                HumanDuration(policy.backoff_initial),
                HumanDuration(policy.backoff_max),
            ),
        );
    }
    policy
}

/// `[slow_member]`. The bounds keep the detector meaningful rather than
/// merely safe (it accepts any value): a window that can hold a p99, and a
/// factor above 1, without which the slower of two healthy members would
/// be "slow" as soon as it passed `min_latency`.
fn slow_member_policy(p: &mut Problems, raw: RawSlowMember) -> SlowPolicy {
    let mut policy = DEFAULT_SLOW_MEMBER;
    if let Some(enabled) = raw.enabled {
        policy.enabled = enabled;
    }
    if let Some(n) = raw.window {
        match usize::try_from(n) {
            Ok(window) if (MIN_SLOW_MEMBER_WINDOW..=MAX_SLOW_MEMBER_WINDOW).contains(&n) => {
                policy.window = window;
            }
            _ => p.push(
                "slow_member.window",
                format!(
                    "must be between {MIN_SLOW_MEMBER_WINDOW} and {MAX_SLOW_MEMBER_WINDOW} commits \
                     (over fewer, the p99 is just the slowest commit), got {n}"
                ),
            ),
        }
    }
    if let Some(f) = raw.factor {
        if f.is_finite() && f > 1.0 {
            policy.factor = f;
        } else {
            p.push(
                "slow_member.factor",
                format!("must be a number greater than 1.0, got {f}"),
            );
        }
    }
    policy.min_latency = positive_duration(
        p,
        "slow_member.min_latency",
        raw.min_latency.as_deref(),
        DEFAULT_SLOW_MEMBER.min_latency,
    );
    policy
}

fn log_settings(p: &mut Problems, raw: super::raw::RawLog, log_env: Option<&str>) -> LogSettings {
    let mut log = DEFAULT_LOG;
    if let Some(text) = raw.format.as_deref() {
        match parse_log_format(text) {
            Some(f) => log.format = f,
            None => p.push(
                "log.format",
                format!("expected \"term\", \"json\" or \"journald\", got {text:?}"),
            ),
        }
    }
    if let Some(text) = raw.level.as_deref() {
        match parse_log_level(text) {
            Some(l) => log.level = l,
            None => p.push("log.level", format!("expected {LEVELS}, got {text:?}")),
        }
    }
    if let Some(value) = log_env {
        apply_log_env(p, &mut log, value);
    }
    log
}

const LEVELS: &str = "\"trace\", \"debug\", \"info\", \"warning\", \"error\" or \"critical\"";

pub fn parse_log_level(text: &str) -> Option<LogLevel> {
    Some(match text.to_ascii_lowercase().as_str() {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        // "warn" is what `log`, RUST_LOG and most tools call it.
        "warning" | "warn" => LogLevel::Warning,
        "error" => LogLevel::Error,
        "critical" => LogLevel::Critical,
        _ => return None,
    })
}

pub fn parse_log_format(text: &str) -> Option<LogFormat> {
    Some(match text.to_ascii_lowercase().as_str() {
        "term" => LogFormat::Term,
        "json" => LogFormat::Json,
        "journald" => LogFormat::Journald,
        _ => return None,
    })
}

/// `ZEORAID_LOG` is a comma-separated list of at most one level and at
/// most one format, in any order ("debug", "json", "json,debug"), so the
/// common case of just raising verbosity stays a one-word setting.
fn apply_log_env(p: &mut Problems, log: &mut LogSettings, value: &str) {
    let mut level = None;
    let mut format = None;
    for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if let Some(l) = parse_log_level(token) {
            if level.replace(l).is_some() {
                p.push("ZEORAID_LOG", format!("more than one level in {value:?}"));
            }
        } else if let Some(f) = parse_log_format(token) {
            if format.replace(f).is_some() {
                p.push("ZEORAID_LOG", format!("more than one format in {value:?}"));
            }
        } else {
            p.push(
                "ZEORAID_LOG",
                format!("{token:?} is neither a level ({LEVELS}) nor a format (\"term\", \"json\" or \"journald\")"),
            );
        }
    }
    if let Some(l) = level {
        log.level = l;
    }
    if let Some(f) = format {
        log.format = f;
    }
}

fn members(
    p: &mut Problems,
    raw: Vec<RawMember>,
    global_restart: &RestartPolicy,
    listen: Option<ListenAddress>,
    array_storage: &str,
) -> Vec<Member> {
    if raw.is_empty() {
        p.push(
            "members",
            "at least one member is required (add a [[members]] table with name and address)",
        );
        return Vec::new();
    }
    let mut seen = SeenMembers {
        listen,
        ..SeenMembers::default()
    };
    let mut out = Vec::with_capacity(raw.len());
    for (i, m) in raw.into_iter().enumerate() {
        let prefix = format!("members[{i}]");
        let name = seen.name(p, &prefix, i, m.name);
        let address = seen.address(p, &prefix, i, m.address.as_deref());
        let restart = match &m.restart {
            None => *global_restart,
            Some(over) => restart_policy(
                p,
                &format!("{prefix}.restart"),
                over,
                global_restart,
                Some("restart"),
            ),
        };
        let tls = m
            .tls
            .map(|raw| super::tls::member(p, &prefix, raw, address.as_ref()));
        out.push(Member {
            name,
            // Only reached with a `None` when a problem was recorded, in
            // which case the whole config is discarded.
            address: address.unwrap_or_else(|| MemberAddress::Unix(PathBuf::new())),
            msgpack: m.msgpack.unwrap_or(true),
            restart,
            storage: storage_name_or(p, &format!("{prefix}.storage"), m.storage, array_storage),
            tls,
        });
    }
    out
}

/// The names and addresses of the members checked so far (by index), so
/// a duplicate names the member that had it first.
#[derive(Default)]
struct SeenMembers {
    names: HashMap<String, usize>,
    addresses: HashMap<MemberAddress, usize>,
    /// zeoraid's own ZEO listen address, when valid: no member may be it.
    listen: Option<ListenAddress>,
}

impl SeenMembers {
    /// The name of member `i`; empty when missing (the problem is recorded).
    fn name(&mut self, p: &mut Problems, prefix: &str, i: usize, raw: Option<String>) -> String {
        let Some(name) = raw else {
            p.push(format!("{prefix}.name"), "missing");
            return String::new();
        };
        if let Err(why) = check_member_name(&name) {
            p.push(format!("{prefix}.name"), why);
        } else if let Some(first) = self.names.get(&name) {
            p.push(
                format!("{prefix}.name"),
                format!("{name:?} is already used by members[{first}]"),
            );
        } else {
            self.names.insert(name.clone(), i);
        }
        name
    }

    /// The address of member `i`; `None` when missing or invalid (the
    /// problem is recorded).
    fn address(
        &mut self,
        p: &mut Problems,
        prefix: &str,
        i: usize,
        raw: Option<&str>,
    ) -> Option<MemberAddress> {
        let Some(text) = raw else {
            p.push(
                format!("{prefix}.address"),
                "missing (expected host:port or a Unix socket path)",
            );
            return None;
        };
        let address = match parse_member_address(text) {
            Ok(address) => address,
            Err(why) => {
                p.push(format!("{prefix}.address"), why);
                return None;
            }
        };
        if let Some(first) = self.addresses.get(&address) {
            p.push(
                format!("{prefix}.address"),
                format!("{text:?} is already used by members[{first}]"),
            );
        } else if self
            .listen
            .as_ref()
            .is_some_and(|l| is_own_listen_address(&address, l))
        {
            p.push(
                format!("{prefix}.address"),
                format!("{text:?} is zeoraid's own listen address"),
            );
        } else {
            self.addresses.insert(address.clone(), i);
        }
        Some(address)
    }
}

/// Names end up in log keys and admin URLs, so keep them to characters
/// that need no quoting in either.
fn check_member_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "may contain only ASCII letters, digits, '.', '_' and '-', got {name:?}"
        ));
    }
    Ok(())
}

/// A member address is a Unix socket path when it contains a '/', which no
/// host:port can; everything else must be host:port.
pub fn parse_member_address(text: &str) -> Result<MemberAddress, String> {
    let expected = || format!("expected host:port or a Unix socket path, got {text:?}");
    if text.contains('/') {
        return unix_socket_path(text).map(MemberAddress::Unix);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("port must be 1-65535, got 0 in {text:?}"));
        }
        return Ok(MemberAddress::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
    if !is_host_name(host) || port.is_empty() {
        return Err(expected());
    }
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok(MemberAddress::Tcp {
            host: host.to_ascii_lowercase(),
            port,
        }),
        _ => Err(format!("port must be 1-65535, got {port:?} in {text:?}")),
    }
}

/// A Unix socket path the kernel accepts.
pub(super) fn unix_socket_path(text: &str) -> Result<PathBuf, String> {
    if text.len() > MAX_UNIX_PATH {
        return Err(format!(
            "Unix socket path is {} bytes, longer than the {MAX_UNIX_PATH} the kernel accepts: {text:?}",
            text.len()
        ));
    }
    Ok(PathBuf::from(text))
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with(['-', '.'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn is_own_listen_address(address: &MemberAddress, listen: &ListenAddress) -> bool {
    match (address, listen) {
        (MemberAddress::Tcp { host, port }, ListenAddress::Tcp(listen)) => {
            *port == listen.port() && host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip == listen.ip())
        }
        (MemberAddress::Unix(path), ListenAddress::Unix(listen)) => path == listen,
        _ => false,
    }
}
