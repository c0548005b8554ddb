//! A client's transaction as buffered between `tpc_begin` and `vote`, as
//! a ZEO server buffers it: nothing reaches a member before the vote, when
//! the controller holds the commit lock and has chosen the tid.
//!
//! The session fills the buffer, the controller replays it on the members
//! (a [`Replay`] each), and recovery spools the blobs it copies
//! the same way ([`SpooledBlob`]); this module imports none of them.

mod replay;
mod spool;

pub use replay::Replay;
pub use spool::{is_stale_spool, BlobChunks, BlobDigest, BlobHasher, SpooledBlob, SPOOL_PREFIX};

use bytes::Bytes;
use std::sync::Arc;
use zeo::methods::{TpcBegin, TxnId};
use zeo::types::{Oid, Tid};
use zeo::Value;

/// One buffered operation, in the order the client sent it.
#[derive(Clone, Debug)]
pub enum TxnOp {
    Store {
        oid: Oid,
        serial: Tid,
        data: Bytes,
    },
    Restore {
        oid: Oid,
        serial: Tid,
        data: Option<Bytes>,
        prev_txn: Option<Tid>,
    },
    CheckCurrent {
        oid: Oid,
        serial: Tid,
    },
    Delete {
        oid: Oid,
        serial: Tid,
    },
    Undo {
        trans_id: Value,
    },
    /// A blob store: the record plus the blob's content, spooled once to a
    /// file and sent to every member.
    Blob {
        oid: Oid,
        serial: Tid,
        data: Bytes,
        blob: Arc<SpooledBlob>,
    },
}

#[derive(Clone, Debug)]
pub struct TxnBuffer {
    /// The client's transaction id (`id(txn)` in its process).
    pub id: TxnId,
    pub user: Value,
    pub description: Value,
    pub extension: Value,
    /// A tid the client asked for (restores, `copyTransactionsFrom`).
    pub tid: Option<Tid>,
    pub status: String,
    pub ops: Vec<TxnOp>,
}

impl TxnBuffer {
    pub fn begin(begin: &TpcBegin) -> TxnBuffer {
        TxnBuffer {
            id: begin.id.clone(),
            user: begin.user.clone(),
            description: begin.description.clone(),
            extension: begin.extension.clone(),
            tid: begin.tid,
            status: begin.status.clone(),
            ops: Vec::new(),
        }
    }

    /// Opens every spooled blob once, so that a spool file gone missing
    /// refuses the vote here instead of failing the members' connections
    /// halfway through their [`Replay`]s.
    pub fn check_spool(&self) -> std::io::Result<()> {
        for op in &self.ops {
            if let TxnOp::Blob { blob, .. } = op {
                blob.chunks()?;
            }
        }
        Ok(())
    }

    /// The oids this transaction changes, for other clients' invalidations.
    /// Unlike ZEO (which leaves restored and deleted oids out) every changed
    /// oid is listed; undone oids come from the vote and are added there.
    pub fn changed_oids(&self) -> Vec<Oid> {
        let mut oids: Vec<Oid> = self
            .ops
            .iter()
            .filter_map(|op| match op {
                TxnOp::Store { oid, .. }
                | TxnOp::Restore { oid, .. }
                | TxnOp::Delete { oid, .. }
                | TxnOp::Blob { oid, .. } => Some(*oid),
                TxnOp::CheckCurrent { .. } | TxnOp::Undo { .. } => None,
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        oids.retain(|oid| seen.insert(*oid));
        oids
    }
}
