//! What a member actor needs to know, decoupled from the daemon's config
//! file format (the actors layer knows no files): the daemon maps its
//! validated `Config` onto these.

use super::policy::RestartPolicy;
use crate::tls::Reloadable;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::path::PathBuf;
use std::time::Duration;

/// Where a member listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberAddress {
    /// `host:port`; the host is resolved at every connect, so a member that
    /// moved (DNS) is found again after a reconnect.
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for MemberAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberAddress::Tcp(hostport) => f.write_str(hostport),
            MemberAddress::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// How long a call may take before the member counts as failing. Nothing
/// waits forever: a hung member (SIGSTOP, a dead network) must be noticed
/// by a deadline, since no error will ever arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// TCP connect plus handshake plus `register`/`get_info`.
    pub connect: Duration,
    /// Ordinary calls (loads, `new_oids`, `ping`, ...).
    pub call: Duration,
    /// The two-phase commit calls (`vote` may wait for the member's commit lock).
    pub commit: Duration,
    /// `pack`, undo logs and iteration, which a member may legitimately take long over.
    pub long: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            connect: Duration::from_secs(5),
            call: Duration::from_secs(60),
            commit: Duration::from_secs(120),
            long: Duration::from_secs(6 * 3600),
        }
    }
}

/// Compared on a reload: a member whose settings changed is replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberSettings {
    pub name: String,
    pub address: MemberAddress,
    /// The storage name to `register` with.
    pub storage: String,
    pub read_only: bool,
    /// Answer `M5` when the member announces msgpack; otherwise always `Z5`
    /// (a ZEO server follows the client's letter).
    pub allow_msgpack: bool,
    pub deadlines: Deadlines,
    /// How often a ready connection sends ZEO's heartbeat frame (ClientStorage: 60 s).
    pub heartbeat_interval: Duration,
    /// Largest frame accepted from the member.
    pub max_frame: usize,
    pub restart: RestartPolicy,
    /// TLS to the member (a runzeo with an `<ssl>` section); `None`: plain.
    pub tls: Option<MemberTls>,
}

/// How a member connection speaks TLS. A reload that keeps the member
/// replaces the certificates inside `config`, not the settings, so the
/// member keeps its connection and the next one uses them.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberTls {
    /// The name the member's certificate must carry.
    pub server_name: ServerName<'static>,
    pub config: Reloadable<ClientConfig>,
}

impl MemberSettings {
    /// Settings with defaults for everything but the identity.
    pub fn new(name: impl Into<String>, address: MemberAddress, storage: impl Into<String>) -> Self {
        MemberSettings {
            name: name.into(),
            address,
            storage: storage.into(),
            read_only: false,
            allow_msgpack: true,
            deadlines: Deadlines::default(),
            heartbeat_interval: Duration::from_secs(60),
            max_frame: zeo::framing::DEFAULT_MAX_FRAME,
            restart: RestartPolicy::default(),
            tls: None,
        }
    }
}
