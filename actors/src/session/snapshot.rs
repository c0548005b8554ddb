//! A client session's observable state, for the debug view.

use super::*;
use crate::controller::{SessionSnapshot, SessionSnapshotRequest};

impl Handler<SessionSnapshotRequest> for ClientSession {
    type Result = MessageResult<SessionSnapshotRequest>;

    fn handle(&mut self, _: SessionSnapshotRequest, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(SessionSnapshot {
            id: self.id.0,
            peer: self.peer.to_string(),
            label: self.label.clone(),
            protocol: self.encoding.map(|e| match e {
                Encoding::Pickle => "Z5",
                Encoding::Msgpack => "M5",
            }),
            registered: self.registered,
            read_only: self.read_only,
            transaction: self.txn.as_ref().map(|(_, phase)| match phase {
                Phase::Buffering => "buffering",
                Phase::Voting => "voting",
                Phase::Voted => "voted",
            }),
            buffered_ops: self.txn.as_ref().map_or(0, |(t, _)| t.ops.len()),
            loads_in_flight: self.loads.len(),
            backlog_bytes: self.backlog.bytes(),
            iterators: self.iterators.len(),
            last_seen_tid: self.last_seen.to_hex(),
            readers: self.readers.len(),
            serving: match &self.serving {
                Serving::ReadWrite => "read-write".to_string(),
                Serving::ReadOnly(reason) => format!("read-only: {reason}"),
                Serving::Closed(reason) => format!("closed: {reason}"),
            },
            connected_since: self.connected_since,
        })
    }
}
