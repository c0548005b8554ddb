//! The validated configuration the rest of zeoraid works with.
//!
//! `config::load*` produces these only after every check passed, so
//! consumers never re-validate: a loaded `Config` means every address
//! parsed, every member name is unique and every restart policy is
//! coherent. Defaults are already filled in, so no consumer needs to know
//! which keys were optional; the defaults themselves live here.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

/// Default ZEO address clients connect to.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8100";
/// Default address of the status / admin HTTP endpoint.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8101";
/// ZEO's own default storage name.
pub const DEFAULT_STORAGE: &str = "1";
/// Large enough for the biggest object record a client stores in one call,
/// small enough that a corrupt length prefix cannot make us allocate
/// gigabytes.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 256 * 1024 * 1024;
/// The floor: a blob chunk (ZEO sends and takes blobs in chunks of
/// [`BLOB_CHUNK`] bytes, one per frame, a size neither side can be asked
/// to change) with room for its envelope. Below it, a member's
/// `receiveBlobChunk` callback would be over the limit (a callback answers
/// no call, so it cannot fail alone: the member's connection would be
/// dropped on every blob download) and a client's blob upload would close
/// its connection: such a configuration is refused at load instead.
pub const MIN_MAX_FRAME_SIZE: u64 = 64 * 1024;
const _: () = assert!(MIN_MAX_FRAME_SIZE >= BLOB_CHUNK as u64 + 1024);
/// ZEO frames carry a 4-byte big-endian length, so nothing larger can be
/// expressed on the wire.
pub const MAX_MAX_FRAME_SIZE: u64 = u32::MAX as u64;

/// Pack gets hours because packing a large FileStorage legitimately takes
/// that long; a short limit would abandon packs that were progressing.
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    call: Duration::from_secs(60),
    commit: Duration::from_secs(120),
    pack: Duration::from_secs(6 * 3600),
    transaction: Duration::from_secs(30),
    handshake: Duration::from_secs(10),
};

/// What one client may hold of zeoraid: enough for any real application
/// server, far from the process's descriptors and memory. ZEO clients ask
/// for a tid only to restore or copy history, i.e. tids in the past; an
/// hour leaves room for a source whose clock runs ahead.
pub const DEFAULT_LIMITS: Limits = Limits {
    max_client_connections: 1000,
    client_backlog: 16 * 1024 * 1024,
    transaction_memory: 16 * 1024 * 1024,
    explicit_tid_skew: Duration::from_secs(3600),
    blob_downloads_per_session: 16,
};
/// Descriptors kept for members, the HTTP endpoint, the state and spool
/// files beyond the client connections.
pub const RESERVED_DESCRIPTORS: u64 = 64;
/// A client connection is a descriptor and a session: more than this is a
/// typo, not a deployment.
pub const MAX_CLIENT_CONNECTIONS: u64 = 1_000_000;
/// A floor that catches a unit mistake (16 meant as MiB).
pub const MIN_CLIENT_BACKLOG: u64 = 64 * 1024;
/// Each blob download in flight holds a spool file (a descriptor): more
/// than this per client is a typo, not a need (ClientStorage asks for one
/// blob at a time per thread).
pub const MAX_BLOB_DOWNLOADS_PER_SESSION: u64 = 1024;

pub const DEFAULT_RESTART: RestartPolicy = RestartPolicy::DEFAULT;

// `restart_policy` only checks backoff pairs the operator touched, which
// is sound only while the defaults themselves are coherent.
const _: () = assert!(
    DEFAULT_RESTART.max_restarts >= 1
        && DEFAULT_RESTART.backoff_initial.as_nanos() <= DEFAULT_RESTART.backoff_max.as_nanos()
);

pub const DEFAULT_RECOVERY: Recovery = Recovery {
    max_transactions_per_second: None,
    max_bytes_per_second: None,
    auto: true,
    stable_for: Duration::from_secs(30),
    final_step_slice: Duration::from_millis(50),
    final_step_timeout: Duration::from_secs(10),
};

/// Conservative on purpose: degrading a healthy member costs a recovery,
/// so only a member that makes commits visibly slow is judged.
pub const DEFAULT_SLOW_MEMBER: SlowPolicy = SlowPolicy::DEFAULT;
/// Below this a p99 is mostly one or two stalls: nearest rank over fewer
/// than 10 commits is simply the slowest commit.
pub const MIN_SLOW_MEMBER_WINDOW: u64 = 10;
/// The detector keeps `window` latencies per member; this bounds that
/// memory (16 bytes a sample) and the time to compute a p99 per commit.
pub const MAX_SLOW_MEMBER_WINDOW: u64 = 100_000;

pub const DEFAULT_LOG: LogSettings = LogSettings {
    format: LogFormat::Term,
    level: LogLevel::Info,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// ZEO address clients connect to: TCP or a Unix socket path.
    pub listen: ListenAddress,
    /// The permissions `chmod`ed onto a Unix socket `listen` once bound
    /// (`None`: as the umask leaves them). Only set with a Unix `listen`.
    pub listen_mode: Option<u32>,
    /// Storage name clients register with; also the name registered on
    /// every member.
    pub storage: String,
    pub cluster_mode: ClusterMode,
    pub fail_mode: FailMode,
    /// Whether the front server offers the M5 (msgpack) protocol besides Z5.
    pub msgpack: bool,
    /// Largest ZEO frame accepted from clients or members, in bytes.
    pub max_frame_size: usize,
    /// Where transaction data is spooled while a commit is in flight.
    pub spool_dir: PathBuf,
    /// Where the array's durable state is kept (relative paths are
    /// relative to the configuration file's directory once loaded from a
    /// file; default `state` there).
    pub state_dir: PathBuf,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// Global restart policy; each member carries its effective (merged)
    /// copy in `Member::restart`, so consumers should read that one.
    pub restart: RestartPolicy,
    pub recovery: Recovery,
    /// `[scrub]`: the scrub's throttle and schedule.
    pub scrub: ScrubPolicy,
    /// When a member far slower than its peers at committing is degraded.
    pub slow_member: SlowPolicy,
    pub http: Http,
    /// Which `raid_*` management calls ZEO clients may make.
    pub zeo_admin_calls: ZeoAdminCalls,
    pub log: LogSettings,
    /// `[cluster]`: several zeoraids elect a leader on etcd; `None`: this
    /// zeoraid serves alone with its state file.
    pub cluster: Option<Cluster>,
    pub members: Vec<Member>,
    /// `[tls]`: the client listener speaks TLS; `None`: plain TCP.
    pub tls: Option<FrontTls>,
}

/// `[tls]`, validated (relative paths are relative to the configuration
/// file's directory once loaded from a file). The files are read when the
/// daemon starts and on every reload, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontTls {
    pub identity: Identity,
    /// Clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

/// `[members.tls]`, validated (paths as for [`FrontTls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTlsFiles {
    /// The member's certificate must be signed by this CA.
    pub ca: PathBuf,
    /// The client certificate a ZEO server's `<ssl> authenticate` asks for.
    pub identity: Option<Identity>,
    /// The name the member's certificate must carry (default: the host of
    /// its address).
    pub server_name: String,
}

/// A certificate file and its key file: the TLS module's own type.
pub use zeoraid_actors::tls::Identity;

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// etcd client URLs (`http://host:port`).
    pub etcd: Vec<String>,
    /// This zeoraid's name, unique among the zeoraids of the array.
    pub name: String,
    pub lease_ttl: Duration,
    /// The etcd key prefix of this array.
    pub prefix: String,
}

/// A leader that stops renewing is replaced about this long after; etcd
/// counts leases in whole seconds.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// etcd's own floor for a lease (1.5 election timeouts, rounded up, with
/// its default timing).
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
pub const DEFAULT_CLUSTER_PREFIX: &str = "/zeoraid";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (and ZEO handshake) to a member.
    pub connect: Duration,
    /// Any ordinary call to a member.
    pub call: Duration,
    /// Each step of the two-phase commit on a member (vote, finish).
    pub commit: Duration,
    /// A pack on a member, which can legitimately take very long.
    pub pack: Duration,
    /// How long a client that voted may take to send `tpc_finish`: it
    /// holds the commit lock meanwhile, so after this its transaction is
    /// aborted on every member and the next writer goes on.
    pub transaction: Duration,
    /// How long a new client connection may take to send its protocol
    /// handshake before it is closed.
    pub handshake: Duration,
}

/// Bounds on what clients may hold and ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Client connections served at once; more are closed at once (the
    /// HTTP endpoint and the members' connections are not counted).
    pub max_client_connections: usize,
    /// Bytes queued for a client beyond the frame being written: a client
    /// whose backlog passes it and that reads nothing for a while is
    /// disconnected.
    pub client_backlog: usize,
    /// Record data one transaction may hold in memory until its vote; the
    /// records past it are spooled to `spool_dir`.
    pub transaction_memory: usize,
    /// How far past the present a tid a client asks for in `tpc_begin`
    /// may lie: every later commit must get a higher tid, so one far in
    /// the future would pin the array's tids there (and near 2^64 leave
    /// none).
    pub explicit_tid_skew: Duration,
    /// Blob downloads (`sendBlob`) one client may have in flight, each
    /// holding a spool file until the client has read the blob; past it
    /// zeoraid reads nothing more from the client until one is done.
    pub blob_downloads_per_session: usize,
}

/// Which management calls the ZEO port answers: the session's own type.
pub use zeoraid_actors::controller::ScrubPolicy;
/// How reads are served, what clients get once the array has failed, and
/// when a slow member is degraded: the controller's own types, so config
/// and actors share one definition and one set of defaults.
pub use zeoraid_actors::controller::{ClusterMode, FailMode, SlowPolicy};
/// How a failed member connection is restarted before the member is parked
/// (degraded) and only probed occasionally: the member actor's own policy
/// type, so config and actors share one definition and one set of defaults.
pub use zeoraid_actors::member::RestartPolicy;
pub use zeoraid_actors::session::ZeoAdminCalls;
use zeoraid_actors::transaction::BLOB_CHUNK;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Cap on transactions copied per second while recovering a member;
    /// `None` is unthrottled.
    pub max_transactions_per_second: Option<NonZeroU64>,
    /// Cap on bytes copied per second while recovering; `None` is
    /// unthrottled.
    pub max_bytes_per_second: Option<NonZeroU64>,
    /// Start recovery without an operator once a member is back.
    pub auto: bool,
    /// How long a returning member must stay connected before automatic
    /// recovery starts, so a flapping member does not thrash.
    pub stable_for: Duration,
    /// The longest stretch commits wait while the final step of a
    /// recovery copies under the commit lock; a longer tail is copied in
    /// slices with the waiting commits let through between them.
    pub final_step_slice: Duration,
    /// The longest one slice of the final step may hold the commit lock
    /// whatever happens (a hung source or target, one huge transaction, a
    /// long oid catch-up): past it the step is abandoned, the commits go
    /// on, and the recovery is tried again later.
    pub final_step_timeout: Duration,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Http {
    pub listen: SocketAddr,
    /// Bearer token required for admin requests; `None` leaves them open
    /// (only sensible when `listen` is loopback).
    pub token: Option<String>,
    /// The `GET` routes need the token too, except `/healthz` and
    /// `/readyz` (probes of load balancers and service managers).
    pub token_for_reads: bool,
}

// Hand-written so the token never ends up in a log line or panic message.
impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_for_reads", &self.token_for_reads)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: LogLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Term,
    /// One JSON object per line, for log shippers.
    Json,
    /// Plain lines with the priority prefix journald reads (`<3>` for
    /// errors...), so `journalctl -p err` selects by level. Chosen by
    /// itself instead of `Term` when stderr is journald's stream.
    Journald,
}

/// slog's levels, named as operators write them in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn to_slog(self) -> slog::Level {
        match self {
            LogLevel::Critical => slog::Level::Critical,
            LogLevel::Error => slog::Level::Error,
            LogLevel::Warning => slog::Level::Warning,
            LogLevel::Info => slog::Level::Info,
            LogLevel::Debug => slog::Level::Debug,
            LogLevel::Trace => slog::Level::Trace,
        }
    }

    /// The `log` crate has no critical level, so critical maps to error.
    pub fn to_log(self) -> log::Level {
        match self {
            LogLevel::Critical | LogLevel::Error => log::Level::Error,
            LogLevel::Warning => log::Level::Warn,
            LogLevel::Info => log::Level::Info,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Trace => log::Level::Trace,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Unique, used in logs and (later) admin URLs.
    pub name: String,
    pub address: MemberAddress,
    /// Speak M5 (msgpack) to this member when it offers it; otherwise Z5.
    pub msgpack: bool,
    /// The global `[restart]` policy with this member's overrides applied.
    pub restart: RestartPolicy,
    /// The storage name zeoraid registers with on this member (the name in
    /// its server's `<filestorage NAME>` section): the array's `storage`
    /// unless the member serves it under another name.
    pub storage: String,
    pub tls: Option<MemberTlsFiles>,
}

/// Where zeoraid listens for ZEO clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// Resolved when the configuration is read: one socket is bound, and
    /// an address that moved needs a restart anyway.
    Tcp(SocketAddr),
    /// A socket file zeoraid creates (replacing one a crashed zeoraid
    /// left behind) and removes when it stops.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(addr) => write!(f, "{addr}"),
            ListenAddress::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Where a member ZEO server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemberAddress {
    /// Kept as host and port rather than a `SocketAddr` so host names are
    /// resolved at connect time, following DNS changes across restarts.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

impl fmt::Display for MemberAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberAddress::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            MemberAddress::Tcp { host, port } => write!(f, "{host}:{port}"),
            MemberAddress::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Term => "term",
            LogFormat::Json => "json",
            LogFormat::Journald => "journald",
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Critical => "critical",
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        })
    }
}

impl Config {
    /// One line describing what this config will do, shared by
    /// `check-config` and the startup log so both show the same facts.
    pub fn summary(&self) -> String {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{} at {}", m.name, m.address))
            .collect();
        format!(
            "{} member{} ({}), listen {}, storage {:?}, cluster_mode {}, fail_mode {}, http {}",
            self.members.len(),
            if self.members.len() == 1 { "" } else { "s" },
            members.join(", "),
            self.listen,
            self.storage,
            self.cluster_mode,
            self.fail_mode,
            self.http.listen,
        )
    }
}
