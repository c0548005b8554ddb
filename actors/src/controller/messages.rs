//! What the controller is asked (by client sessions and the daemon), and
//! what it tells sessions.
//!
//! Replies whose order matters to a ZEO client (`register`, `vote`,
//! `tpc_finish`, `tpc_abort`) are sent back as [`ToSession`] messages into
//! the session's mailbox rather than as futures: the controller also sends
//! invalidations there, and actix keeps the order of one sender's messages
//! in one mailbox, but not between a response future and a mailbox message
//! (rust-stack-notes P4). That is what guarantees protocol doc §4.4.2: a
//! client sees `invalidateTransaction(T)` before its own vote reply for a
//! transaction that commits after T.

use super::SlowPolicy;
use super::{ClusterMode, FailMode};
use crate::member::{MemberActor, MemberSettings};
use crate::session::transaction::TxnBuffer;
use crate::session::{ClientSession, SessionId};
use actix::{Addr, Message};
use std::time::Duration;
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
}

/// Resolves once every member connected or failed a first attempt, or
/// after `within`; members not connected then start degraded (they would
/// miss writes). With none connected the array starts `failed` and
/// clients get a clear error on every call.
#[derive(Debug, Message)]
#[rtype(result = "Result<ArrayReady, String>")]
pub struct WaitReady {
    pub within: Duration,
}

#[derive(Clone, Debug)]
pub struct ArrayReady {
    pub status: &'static str,
    pub last_tid: Tid,
    pub optimal: usize,
    pub members: usize,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub session: SessionId,
    pub addr: Addr<ClientSession>,
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
/// management plane of issue 7).
#[derive(Debug, Message)]
#[rtype(result = "ArrayStatus")]
pub struct Status;

#[derive(Clone, Debug, serde::Serialize)]
pub struct ArrayStatus {
    /// `optimal`, `degraded` or `failed`.
    pub status: &'static str,
    /// Why the array has failed, when it has.
    pub reason: Option<String>,
    pub cluster_mode: String,
    pub fail_mode: String,
    pub last_tid: String,
    pub members: Vec<MemberStatus>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct MemberStatus {
    pub name: String,
    /// `optimal` or `degraded`.
    pub state: &'static str,
    /// Why it was degraded, in one word: `failed`, `behind`, `diverged`, `slow`.
    pub kind: Option<&'static str>,
    pub reason: Option<String>,
    /// When it was degraded (seconds since the Unix epoch).
    pub degraded_since: Option<f64>,
    /// The first transaction a degraded member did not get.
    pub first_missed_tid: Option<String>,
    pub connected: bool,
    pub last_tid: Option<String>,
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
    pub kind: super::DegradeKind,
    pub reason: String,
}
