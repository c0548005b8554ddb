//! The settings exactly as written in the TOML file and `ZEORAID_*`
//! variables, before validation.
//!
//! Everything that can be wrong in more than one way (addresses, enums,
//! durations) is kept as a string here and interpreted in `validate`, so a
//! file with several mistakes reports all of them at once instead of serde
//! stopping at the first. Only the shape (unknown keys, a string where a
//! number belongs) is enforced by serde, and `deny_unknown_fields` turns a
//! misspelt key into an error rather than a silently ignored setting.

use std::path::PathBuf;

use serde::Deserialize;

/// The fields of `RawConfig`, i.e. the names a `ZEORAID_<NAME>` variable
/// may start with. The `ZEORAID_` prefix is shared with other tools (the
/// test scripts' `ZEORAID_PYTHON`), so variables outside this list are
/// ignored rather than rejected as unknown keys. A unit test keeps this
/// list in step with the struct.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "listen_mode",
    "storage",
    "cluster_mode",
    "fail_mode",
    "msgpack",
    "max_frame_size",
    "spool_dir",
    "state_dir",
    "timeouts",
    "limits",
    "restart",
    "recovery",
    "scrub",
    "slow_member",
    "http",
    "zeo_admin_calls",
    "log",
    "cluster",
    "members",
    "tls",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub listen_mode: Option<String>,
    pub storage: Option<String>,
    pub cluster_mode: Option<String>,
    pub fail_mode: Option<String>,
    pub msgpack: Option<bool>,
    pub max_frame_size: Option<u64>,
    pub spool_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub timeouts: Option<RawTimeouts>,
    pub limits: Option<RawLimits>,
    pub restart: Option<RawRestart>,
    pub recovery: Option<RawRecovery>,
    pub scrub: Option<RawScrub>,
    pub slow_member: Option<RawSlowMember>,
    pub http: Option<RawHttp>,
    pub zeo_admin_calls: Option<String>,
    pub log: Option<RawLog>,
    pub cluster: Option<RawCluster>,
    pub members: Option<Vec<RawMember>>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<String>,
    pub call: Option<String>,
    pub commit: Option<String>,
    pub pack: Option<String>,
    pub transaction: Option<String>,
    pub handshake: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_client_connections: Option<u64>,
    pub client_backlog: Option<u64>,
    pub transaction_memory: Option<u64>,
    pub explicit_tid_skew: Option<String>,
    pub blob_downloads_per_session: Option<u64>,
}

/// Used both for the global `[restart]` table and for a member's
/// `[members.restart]` override, where every key left out is inherited.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestart {
    pub max_restarts: Option<u32>,
    pub restart_window: Option<String>,
    pub backoff_initial: Option<String>,
    pub backoff_max: Option<String>,
    pub jitter: Option<f64>,
    pub park_probe_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecovery {
    pub max_transactions_per_second: Option<u64>,
    pub max_bytes_per_second: Option<u64>,
    pub auto: Option<bool>,
    pub stable_for: Option<String>,
    pub final_step_slice: Option<String>,
    pub final_step_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrub {
    pub interval: Option<String>,
    pub max_transactions_per_second: Option<u64>,
    pub max_bytes_per_second: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlowMember {
    pub enabled: Option<bool>,
    pub window: Option<u64>,
    pub factor: Option<f64>,
    pub min_latency: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub token_for_reads: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub etcd: Option<Vec<String>>,
    pub name: Option<String>,
    pub lease_ttl: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    pub name: Option<String>,
    pub address: Option<String>,
    pub msgpack: Option<bool>,
    pub restart: Option<RawRestart>,
    pub storage: Option<String>,
    pub tls: Option<RawMemberTls>,
}

/// `[tls]`: the client listener speaks TLS.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
}

/// `[members.tls]`: this member speaks TLS.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMemberTls {
    pub ca: Option<PathBuf>,
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}
