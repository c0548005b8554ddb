//! A client's transaction as buffered between `tpc_begin` and `vote`, as
//! a ZEO server buffers it: nothing reaches a member before the vote, when
//! the controller holds the commit lock and has chosen the tid.
//!
//! The session fills the buffer, the controller replays it on the members
//! ([`TxnBuffer::member_requests`]), and recovery spools the blobs it copies
//! the same way ([`SpooledBlob`]); this module imports none of them.

mod spool;

pub use spool::{BlobChunks, BlobDigest, BlobHasher, SpooledBlob, SPOOL_PREFIX};

use bytes::Bytes;
use std::sync::Arc;
use zeo::methods::{
    CheckCurrentSerialInTransaction, DeleteObject, Request, Restorea, StoreBlobChunk, StoreBlobEnd, Storea,
    TpcBegin, TxnId, Undoa,
};
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

    /// The asynchronous calls that replay this transaction on one member:
    /// `tpc_begin` with the tid zeoraid chose (so every member commits the
    /// same tid), then the operations in order. `id` is zeoraid's own
    /// transaction id on that member connection. Spooled blobs are read
    /// back here, once for all members (their chunks are shared buffers).
    pub fn member_requests(&self, id: &TxnId, tid: Tid) -> std::io::Result<Vec<Request>> {
        let mut out = Vec::with_capacity(self.ops.len() + 1);
        out.push(Request::TpcBegin(TpcBegin {
            id: id.clone(),
            user: self.user.clone(),
            description: self.description.clone(),
            extension: self.extension.clone(),
            tid: Some(tid),
            status: self.status.clone(),
        }));
        for op in &self.ops {
            let id = id.clone();
            match op {
                TxnOp::Store { oid, serial, data } => out.push(Request::Storea(Storea {
                    oid: *oid,
                    serial: *serial,
                    data: data.clone(),
                    id,
                })),
                TxnOp::Restore {
                    oid,
                    serial,
                    data,
                    prev_txn,
                } => out.push(Request::Restorea(Restorea {
                    oid: *oid,
                    serial: *serial,
                    data: data.clone(),
                    prev_txn: *prev_txn,
                    id,
                })),
                TxnOp::CheckCurrent { oid, serial } => out.push(Request::CheckCurrentSerialInTransaction(
                    CheckCurrentSerialInTransaction {
                        oid: *oid,
                        serial: *serial,
                        id,
                    },
                )),
                TxnOp::Delete { oid, serial } => out.push(Request::DeleteObject(DeleteObject {
                    oid: *oid,
                    serial: *serial,
                    id,
                })),
                TxnOp::Undo { trans_id } => out.push(Request::Undoa(Undoa {
                    trans_id: trans_id.clone(),
                    id,
                })),
                TxnOp::Blob {
                    oid,
                    serial,
                    data,
                    blob,
                } => {
                    out.push(Request::StoreBlobStart);
                    for chunk in blob.chunks()? {
                        out.push(Request::StoreBlobChunk(StoreBlobChunk { chunk: chunk? }));
                    }
                    out.push(Request::StoreBlobEnd(StoreBlobEnd {
                        oid: *oid,
                        serial: *serial,
                        data: data.clone(),
                        id,
                    }));
                }
            }
        }
        Ok(out)
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
