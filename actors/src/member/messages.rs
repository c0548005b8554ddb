//! The member actor's API. Every call returns a typed result; none waits
//! longer than its deadline.

use super::error::MemberError;
use super::events::MemberEvent;
use super::snapshot::MemberSnapshot;
use crate::transaction::{SpoolFault, TxnBuffer};
use actix::{MailboxError, Message, Recipient};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;
use zeo::methods::{Request, TxnId};
use zeo::reply::Reply;
use zeo::types::{Oid, Tid};

/// A synchronous ZEO call; pipelined with any other calls in flight.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<Reply, MemberError>")]
pub struct Call(pub Request);

/// An asynchronous ZEO call (`tpc_begin`, `storea`, ...): written in order
/// with the other calls and never answered. Fails only when the member is
/// not connected.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), MemberError>")]
pub struct Oneway(pub Request);

/// Asynchronous calls followed by one synchronous call, in one mailbox
/// hop: a transaction's `tpc_begin` and stores, then its `vote`. The result
/// is the synchronous call's.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<Reply, MemberError>")]
pub struct CallAfter {
    pub oneways: Oneways,
    pub call: Request,
}

/// The asynchronous calls of a [`CallAfter`].
#[derive(Clone)]
pub enum Oneways {
    /// Made already (recovery batches its own, flushed by size).
    Requests(Vec<Request>),
    /// A client's transaction, replayed as the connection takes it: its
    /// blobs are read from the spool chunk by chunk, never whole.
    Replay {
        txn: Arc<TxnBuffer>,
        id: TxnId,
        tid: Tid,
        /// The root object's serial the leader of a cluster expects: the
        /// member refuses the vote if it moved (`transaction::Replay`).
        fence: Option<Tid>,
        /// Where the replay reports a spool it cannot read back.
        fault: SpoolFault,
    },
}

impl std::fmt::Debug for Oneways {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Oneways::Requests(requests) => write!(f, "{} request(s)", requests.len()),
            Oneways::Replay { txn, tid, .. } => {
                write!(f, "replay of {} operation(s) as {}", txn.ops.len(), tid.to_hex())
            }
        }
    }
}

/// `sendBlob(oid, serial)`: the member streams the blob through
/// `receiveBlobChunk` callbacks, which are routed into `sink` as they
/// arrive; the call completes after the last chunk.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), MemberError>")]
pub struct SendBlob {
    pub oid: Oid,
    pub serial: Tid,
    pub sink: mpsc::UnboundedSender<Bytes>,
}

/// One connection of a member. Each connection the member actor makes is
/// another one: what lives on a connection (an iterator, whose id the
/// server numbers per connection) means nothing on the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionId(pub(super) u64);

/// A synchronous call that must run on `connection` or not at all: it is
/// answered [`MemberError::ConnectionGone`] without being sent once the
/// member has reconnected (an iterator id sent on the new connection could
/// name another client's iterator there).
#[derive(Debug, Message)]
#[rtype(result = "Result<Reply, MemberError>")]
pub struct CallOn {
    pub connection: ConnectionId,
    pub request: Request,
}

/// The member's ready connection, if it has one: what [`CallOn`] binds to.
#[derive(Debug, Message)]
#[rtype(result = "Option<ConnectionId>")]
pub struct CurrentConnection;

/// An asynchronous call (`iterator_gc`) that must go to `connection` or
/// nowhere, as [`CallOn`].
#[derive(Debug, Message)]
#[rtype(result = "Result<(), MemberError>")]
pub struct OnewayOn {
    pub connection: ConnectionId,
    pub request: Request,
}

#[derive(Debug, Message)]
#[rtype(result = "MemberSnapshot")]
pub struct Snapshot;

/// Register the recipient of callbacks and state changes (one at a time:
/// the controller).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<MemberEvent>);

/// Reconnect now instead of when the restart policy would: an operator
/// asked to recover the member and should not wait out its backoff (up to
/// `backoff_max`) or its park probe interval. Only a member that is
/// backing off or parked starts an attempt; one that is connected or
/// connecting already ignores it. The attempt is like any other: its
/// failure counts as a restart, and a parked member stays parked until it
/// succeeds.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReconnectNow {
    /// Who asked, for the log.
    pub reason: String,
}

/// Close the connection and stop: the member was removed from the
/// configuration, or zeoraid is shutting down. Calls in flight fail.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub reason: String,
}

/// A synchronous call answered by a [`Relayed`] message to the caller
/// instead of through the handler's future: the session's read path. A
/// `Call`'s answer travels member actor → oneshot → a spawned task →
/// actix's reply channel → the caller's future; with `Relay` it is one
/// mailbox message (callgrind: the future, its task and its channels were
/// a fifth of a relayed load's instructions, docs/performance.md).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Relay {
    pub request: Request,
    pub answer: AnswerSlot,
}

/// The answer to a [`Relay`], tagged as the caller asked. The outer error
/// is what `Addr::send` would have given: the member actor stopped (or
/// was gone) before it answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Relayed {
    pub tag: u64,
    /// The connection the call was sent on, if it was sent.
    pub connection: Option<ConnectionId>,
    pub result: Result<Result<Reply, MemberError>, MailboxError>,
}

/// Where a [`Relay`]'s answer goes. It answers exactly once: dropped
/// unanswered (the member actor stopped with the message in its mailbox
/// or in flight), it answers `MailboxError::Closed`, so a caller never
/// waits for a member actor that is gone.
pub struct AnswerSlot {
    to: Option<Recipient<Relayed>>,
    tag: u64,
}

impl AnswerSlot {
    pub fn new(to: Recipient<Relayed>, tag: u64) -> AnswerSlot {
        AnswerSlot { to: Some(to), tag }
    }

    pub(super) fn answer(mut self, connection: Option<ConnectionId>, result: Result<Reply, MemberError>) {
        self.send(connection, Ok(result));
    }

    fn send(
        &mut self,
        connection: Option<ConnectionId>,
        result: Result<Result<Reply, MemberError>, MailboxError>,
    ) {
        if let Some(to) = self.to.take() {
            to.do_send(Relayed {
                tag: self.tag,
                connection,
                result,
            });
        }
    }
}

impl Drop for AnswerSlot {
    fn drop(&mut self) {
        self.send(None, Err(MailboxError::Closed));
    }
}
