//! What the controller is asked (by client sessions and the daemon), and
//! what it tells sessions.
//!
//! Replies whose order matters to a ZEO client (`register`, `vote`,
//! `tpc_finish`, `tpc_abort`) are sent back as [`ToSession`] messages into
//! the session's mailbox rather than as futures: the controller also sends
//! invalidations there, and actix keeps the order of one sender's messages
//! in one mailbox, but not between a response future and a mailbox message
//! (`docs/invariants.md#mailbox-order`). That is what guarantees
//! `docs/invariants.md#invalidations-before-vote`: a
//! client sees `invalidateTransaction(T)` before its own vote reply for a
//! transaction that commits after T.

use super::{ClusterMode, FailMode, SlowPolicy};
use crate::member::{ConnState, MemberActor, MemberSettings};
use crate::status::{ArrayState, DegradeKind, MemberState};
use crate::transaction::TxnBuffer;
use actix::{Addr, Message, Recipient};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use zeo::exceptions::ZeoError;
use zeo::message::MsgId;
use zeo::methods::TxnId;
use zeo::reply::VoteResult;
use zeo::types::{Oid, Tid};
use zeo::Value;

#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// The storage name clients must register with.
    pub storage: String,
    pub members: Vec<MemberSettings>,
    pub cluster_mode: ClusterMode,
    pub fail_mode: FailMode,
    /// When a member that answers commits far slower than its peers is
    /// degraded; a slow member holds back every commit, since a commit
    /// waits for every optimal member.
    pub slow: SlowPolicy,
    pub recovery: super::RecoveryPolicy,
    /// How long a client that voted may take to send `tpc_finish` before
    /// its transaction is aborted on every member (it holds the commit lock
    /// meanwhile).
    pub transaction_timeout: std::time::Duration,
    /// Set when this zeoraid leads a cluster: its commits are fenced and
    /// acknowledged only while its lease is proven.
    pub leading: Option<Leading>,
    /// `[scrub]`: its throttle and schedule.
    pub scrub: super::ScrubPolicy,
}

/// What a cluster's leader needs on the commit path (ARCHITECTURE.md §9).
#[derive(Clone, Debug)]
pub struct Leading {
    /// The etcd revision that elected it, written into the takeover
    /// transaction's extension.
    pub epoch: i64,
    /// This zeoraid's name in the cluster.
    pub name: String,
    /// Nothing is acknowledged while this is not proven.
    pub lease: crate::cluster::LeaseClock,
    /// Told why, when the controller finds it may no longer lead (its fence
    /// moved on the members, its state write was refused): the daemon then
    /// steps down.
    pub step_down: tokio::sync::mpsc::UnboundedSender<String>,
}

/// A new leader's takeover: under every optimal member's lock, the root
/// object is rewritten unchanged (the fence every later commit checks),
/// members that lack a transaction of the old leader are degraded, the
/// state is written under the leader's epoch, then the fence commits.
/// Answered on `reply` (the work waits for the commit lock).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Takeover {
    pub reply: oneshot::Sender<Result<TakenOver, String>>,
}

/// A takeover that committed.
#[derive(Clone, Debug)]
pub struct TakenOver {
    /// The fence's tid: above every member's last tid.
    pub tid: Tid,
    /// The members that committed it.
    pub fenced: Vec<String>,
    /// The members degraded by the takeover (behind, or refusing the fence).
    pub degraded: Vec<String>,
}

/// Resolves once every member connected or failed a first attempt, or
/// after `within`; members not connected then start degraded (they would
/// miss writes). With none connected the array starts `failed` and
/// clients get a clear error on every call. So it never fails: its error
/// type is `Infallible`.
#[derive(Debug, Message)]
#[rtype(result = "Result<ArrayReady, std::convert::Infallible>")]
pub struct WaitReady {
    pub within: Duration,
}

#[derive(Clone, Debug)]
pub struct ArrayReady {
    pub status: ArrayState,
    pub last_tid: Tid,
    pub optimal: usize,
    pub members: usize,
}

/// A client session, as the controller and the debug view name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

impl SessionId {
    /// A new id, never given out before in this process.
    pub fn next() -> SessionId {
        SessionId(NEXT_SESSION.fetch_add(1, Ordering::Relaxed))
    }
}

/// How the controller reaches a registered session: by the messages it
/// sends one, not by the session's actor type (sessions sit above the
/// controller).
#[derive(Clone)]
pub struct SessionHandle {
    pub to_session: Recipient<ToSession>,
    pub snapshot: Recipient<SessionSnapshotRequest>,
}

impl SessionHandle {
    pub fn do_send(&self, msg: ToSession) {
        self.to_session.do_send(msg);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub session: SessionId,
    pub handle: SessionHandle,
    pub msgid: MsgId,
    pub read_only: bool,
}

/// The client voted: take the commit lock (queued while another
/// transaction holds it), choose the tid, replay the buffer on every
/// optimal member and vote there.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Vote {
    pub session: SessionId,
    pub msgid: MsgId,
    pub txn: TxnBuffer,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Finish {
    pub session: SessionId,
    pub msgid: MsgId,
    pub txn: TxnId,
}

/// `tpc_abort`, or a session that went away (`msgid: None`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Abort {
    pub session: SessionId,
    pub msgid: Option<MsgId>,
    pub txn: TxnId,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionClosed {
    pub session: SessionId,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Oid>, ZeoError>")]
pub struct NewOids {
    pub n: usize,
}

/// The `get_info` dict clients see: what every member supports.
#[derive(Debug, Message)]
#[rtype(result = "Value")]
pub struct GetInfo;

/// `server_status()`: ZEO's keys, zeoraid's numbers.
#[derive(Debug, Message)]
#[rtype(result = "Value")]
pub struct ServerStatus;

/// Pack every optimal member. Like ZEO, every client then gets an `info`
/// callback with the new size, and the packing client gets it before its
/// reply ([`ToSession::Packed`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Pack {
    pub session: SessionId,
    pub msgid: MsgId,
    pub t: f64,
    pub wait: Value,
}

#[derive(Debug, Message)]
#[rtype(result = "Tid")]
pub struct LastTid;

/// The array as a whole and each member, for status reads (`ruok`, and the
/// management plane).
#[derive(Debug, Message)]
#[rtype(result = "ArrayStatus")]
pub struct Status;

/// Also `GET /details`' answer, which `zeoraid ctl details` reads back.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ArrayStatus {
    pub status: ArrayState,
    /// The longest time commits waited for a recovery's final step, in ms.
    pub longest_recovery_block_ms: u64,
    /// The array state: where it lives and how many times it was written.
    pub state_location: String,
    pub state_generation: u64,
    /// One line for humans and Nagios, e.g. "degraded: 2 of 3 members
    /// optimal (zeo3 failed)".
    pub summary: String,
    /// Why the array has failed, when it has.
    pub reason: Option<String>,
    pub cluster_mode: String,
    pub fail_mode: String,
    /// Optimal members, and how many the cluster mode needs for writes.
    pub optimal: usize,
    pub quorum: usize,
    /// Transactions committed, aborted, and votes that conflicted, since start.
    pub commits: u64,
    pub aborts: u64,
    pub conflicts: u64,
    /// Registered client connections.
    pub clients: usize,
    pub last_tid: String,
    pub members: Vec<MemberStatus>,
    /// Set when a scrub found members that differ with no majority to
    /// tell which is right: who differs where. Nobody was degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconsistent: Option<String>,
    /// The scrub: running or not, progress and ETA, the last result.
    #[serde(default)]
    pub scrub: super::ScrubStatus,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    pub name: String,
    pub address: String,
    pub state: MemberState,
    /// The recovery in progress: source, start, progress.
    pub recovery: Option<super::RecoveryStatus>,
    /// How the last recovery of this member ended.
    pub last_recovery: Option<String>,
    /// Why it was degraded.
    pub kind: Option<DegradeKind>,
    pub reason: Option<String>,
    /// When it was degraded (seconds since the Unix epoch).
    pub degraded_since: Option<f64>,
    /// The first transaction a degraded member did not get.
    pub first_missed_tid: Option<String>,
    pub connected: bool,
    /// The member actor's connection state.
    pub connection: ConnState,
    pub last_tid: Option<String>,
    /// Transactions committed since it was degraded.
    pub lag_transactions: u64,
    /// How much older its last transaction is than the array's, in
    /// seconds (`None` for an empty or never connected member).
    pub lag_seconds: Option<f64>,
    /// Failures of this member the controller heard of.
    pub failures: u64,
}

/// From the controller into a session's mailbox, in order.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ToSession {
    Registered {
        msgid: MsgId,
        result: Result<Tid, ZeoError>,
    },
    Voted {
        msgid: MsgId,
        result: Result<VoteResult, ZeoError>,
    },
    /// `info` (sizes) is written before the tid, as ZEO does.
    Finished {
        msgid: MsgId,
        result: Result<(Tid, Value), ZeoError>,
    },
    Aborted {
        msgid: MsgId,
    },
    Packed {
        msgid: MsgId,
        result: Result<(), ZeoError>,
    },
    /// An `info` callback (sizes after a pack).
    Info(Value),
    Invalidate {
        tid: Tid,
        oids: Vec<Oid>,
    },
    /// Where reads may go and what the session serves; sent at
    /// registration and whenever either changes.
    Serving {
        readers: Vec<Addr<MemberActor>>,
        serving: Serving,
        cluster_mode: ClusterMode,
    },
}

/// What a session serves, from the array's state and the fail mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serving {
    ReadWrite,
    /// The array has failed (the reason) in `read-only` fail mode: reads go
    /// on, writes get `ReadOnlyError` (from the controller).
    ReadOnly(String),
    /// The array has failed (the reason) in `close` fail mode: every call
    /// gets a `ClientStorageError` with the reason.
    Closed(String),
}

/// A session saw a member fail a read (`Failed`) or answer a voted read
/// differently from the majority (`Diverged`): the controller degrades it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberMisbehaved {
    pub member: Addr<MemberActor>,
    pub kind: DegradeKind,
    pub reason: String,
}

/// What an operator asked that could not be done; the management plane
/// shows the message and maps the kind to a status code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("no member named {0:?}")]
    UnknownMember(String),
    /// Refused: the array would fail (fewer optimal members than its quorum).
    #[error("{0}")]
    WouldFail(String),
    #[error("zeoraid is shutting down")]
    ShuttingDown,
    /// Refused for a reason of the member's or the array's state.
    #[error("{0}")]
    Refused(String),
    /// Not done: it may lose acknowledged transactions and was not
    /// confirmed. The message says what may be lost; nothing changed.
    #[error("{0}")]
    Unconfirmed(String),
}

/// Take a member out of the array now (reason "disabled by operator"). It
/// stays connected, gets no more reads or writes, and waits for recovery.
/// Refused when it would leave the array failed. Answers what happened.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, AdminError>")]
pub struct DisableMember {
    pub name: String,
}

/// The disaster override, in the spirit of `mdadm --assemble --force`:
/// the members holding every acknowledged transaction are gone for good,
/// so the connected degraded member `name` becomes the array's only source
/// and the array goes on from its last tid. Refused while any member is
/// optimal. Without `confirm` it changes nothing and answers
/// [`AdminError::Unconfirmed`] with the transactions that may be lost;
/// with it, the force is written to the array state (its `forced` history)
/// and logged at error level, and every member that may hold more than
/// `name` is marked diverged.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, AdminError>")]
pub struct ForceOptimal {
    pub name: String,
    pub confirm: bool,
}

/// A reloaded configuration's member list and modes. Members are matched
/// by name: a new name is added (degraded "added": its data is unknown
/// until recovery), a missing one is closed and removed, one whose address
/// changed is replaced (closed, then added back degraded "added"; it may
/// be another server now). Other changed member settings (deadlines,
/// restart policy) need a restart of zeoraid; the reloader reports them. Applied between
/// transactions (it waits for the commit lock). Refused, with the array
/// untouched, when it would leave the array failed.
#[derive(Debug, Message)]
#[rtype(result = "Result<ReloadOutcome, AdminError>")]
pub struct ReloadMembers {
    pub members: Vec<MemberSettings>,
    pub cluster_mode: ClusterMode,
    pub fail_mode: FailMode,
    pub slow: SlowPolicy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReloadOutcome {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub replaced: Vec<String>,
    pub unchanged: Vec<String>,
    /// Settings that changed (cluster mode, fail mode, slow-member policy).
    pub settings_changed: Vec<String>,
}

/// Shutting down: refuse new votes, let the transactions already voting or
/// waiting for the commit lock finish (bounded by `within`, then the one
/// holding the lock is aborted on every member), then close every member.
#[derive(Debug, Message)]
#[rtype(result = "DrainOutcome")]
pub struct Drain {
    pub within: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Transactions that were aborted because they did not finish in time.
    pub aborted: usize,
}

/// Every actor's state for the debug view (`GET /actors`).
#[derive(Debug, Message)]
#[rtype(result = "ActorsView")]
pub struct ActorsSnapshot {
    /// How long each actor may take to answer before it is reported as
    /// not answering (its mailbox is stuck or very deep).
    pub within: Duration,
}

#[derive(Debug, serde::Serialize)]
pub struct ActorsView {
    pub controller: ControllerView,
    pub members: Vec<ActorReport<crate::member::MemberSnapshot>>,
    pub sessions: Vec<ActorReport<SessionSnapshot>>,
}

/// A client session's observable state, for the debug view.
#[derive(Debug, Message)]
#[rtype(result = "SessionSnapshot")]
pub struct SessionSnapshotRequest;

#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionSnapshot {
    pub id: u64,
    pub peer: String,
    pub label: Option<String>,
    /// `Z5` or `M5`, once the client's handshake arrived.
    pub protocol: Option<&'static str>,
    pub registered: bool,
    pub read_only: bool,
    /// `buffering`, `voting` or `voted`: where the client's transaction is.
    pub transaction: Option<&'static str>,
    /// Operations buffered in that transaction.
    pub buffered_ops: usize,
    pub loads_in_flight: usize,
    /// Bytes queued for the client and not written to it yet: a client
    /// that stops reading shows here before `[limits] client_backlog`
    /// disconnects it.
    pub backlog_bytes: usize,
    pub iterators: usize,
    /// The newest transaction the client has been told about.
    pub last_seen_tid: String,
    pub readers: usize,
    pub serving: String,
    pub connected_since: std::time::SystemTime,
}

/// One actor's answer to a snapshot request. actix does not expose a
/// mailbox's length, so the time the actor took to answer stands for its
/// mailbox depth: a deep mailbox answers late, a stuck actor not at all.
#[derive(Debug, serde::Serialize)]
pub struct ActorReport<T> {
    pub name: String,
    pub answered_in_us: Option<u64>,
    pub snapshot: Option<T>,
    pub error: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct ControllerView {
    pub uptime_seconds: f64,
    pub status: ArrayState,
    pub last_tid: String,
    /// The transaction holding the commit lock.
    pub commit_lock: Option<LockView>,
    /// The transaction whose `tpc_finish` is on its way to the members.
    pub finishing_tid: Option<String>,
    pub votes_waiting: usize,
    pub packs_waiting: usize,
    pub packing: bool,
    pub reloads_waiting: usize,
    pub draining: bool,
    pub sessions: usize,
    /// The controller is never restarted: a panic in it ends the process
    /// (restarts of member connections are in each member's snapshot).
    pub restarts: u64,
    /// The slow-member policy's current p99 per member, in microseconds
    /// (`None` until a member's window is full).
    pub commit_p99_us: Vec<(String, Option<u64>)>,
}

#[derive(Debug, serde::Serialize)]
pub struct LockView {
    pub session: u64,
    pub tid: String,
    pub voted: bool,
    pub participants: Vec<String>,
    pub held_for_ms: u64,
}

/// Re-read the configuration file and apply what can change at runtime
/// (answered by the daemon's reloader; sessions forward `raid_reload`).
#[derive(Debug, Message)]
#[rtype(result = "Result<ReloadReport, ReloadError>")]
pub struct ReloadConfiguration {
    /// Who asked: "SIGHUP", "http", "zeo".
    pub source: &'static str,
}

/// Why a reload changed nothing. The texts are what operators read (the
/// HTTP answer, the `raid_reload` error, the log); the HTTP endpoint picks
/// its status code by variant.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load or does not validate: every problem, as the
    /// daemon's configuration error words them.
    #[error("reload rejected, nothing changed: {0}")]
    Rejected(String),
    /// The controller refused the new member list (it would leave the
    /// array failed, or zeoraid is shutting down).
    #[error("reload refused, nothing changed: {0}")]
    Refused(#[source] AdminError),
    #[error("reload failed: controller unreachable: {0}")]
    ControllerUnreachable(#[source] actix::MailboxError),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReloadReport {
    #[serde(flatten)]
    pub outcome: ReloadOutcome,
    /// Changed settings that take effect only when zeoraid restarts.
    pub needs_restart: Vec<String>,
}
