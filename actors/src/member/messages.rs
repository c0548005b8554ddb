//! The member actor's API. Every call returns a typed result; none waits
//! longer than its deadline.

use super::error::MemberError;
use super::events::MemberEvent;
use super::snapshot::MemberSnapshot;
use actix::{Message, Recipient};
use bytes::Bytes;
use tokio::sync::mpsc;
use zeo::methods::Request;
use zeo::reply::Reply;
use zeo::types::{Oid, Tid};

/// A synchronous ZEO call; pipelined with any other calls in flight.
#[derive(Debug, Message)]
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
#[derive(Debug, Message)]
#[rtype(result = "Result<Reply, MemberError>")]
pub struct CallAfter {
    pub oneways: Vec<Request>,
    pub call: Request,
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

#[derive(Debug, Message)]
#[rtype(result = "MemberSnapshot")]
pub struct Snapshot;

/// Register the recipient of callbacks and state changes (one at a time:
/// the controller).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<MemberEvent>);

/// Close the connection and stop: the member was removed from the
/// configuration, or zeoraid is shutting down. Calls in flight fail.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub reason: String,
}
