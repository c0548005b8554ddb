//! A client's transaction as buffered between `tpc_begin` and `vote`, as
//! a ZEO server buffers it: nothing reaches a member before the vote, when
//! the controller holds the commit lock and has chosen the tid.
//!
//! The session fills the buffer, the controller replays it on the members
//! (a [`Replay`] each), and recovery spools the blobs it copies
//! the same way ([`SpooledBlob`]); this module imports none of them.

mod replay;
mod spool;

pub use replay::{Replay, SpoolFault};
pub use spool::{is_stale_spool, BlobChunks, BlobDigest, BlobHasher, SpooledBlob, BLOB_CHUNK, SPOOL_PREFIX};

use bytes::Bytes;
use std::io;
use std::path::Path;
use std::sync::Arc;
use zeo::methods::{TpcBegin, TxnId};
use zeo::types::{Oid, Tid};
use zeo::Value;

/// A record's data: in memory, or in its transaction's spool file once
/// the transaction held more than `[limits] transaction_memory` in memory
/// (as a ZEO server writes every transaction to a temporary commit log).
#[derive(Clone, Debug)]
pub enum Record {
    Held(Bytes),
    Spooled { at: u64, len: usize },
}

/// One buffered operation, in the order the client sent it.
#[derive(Clone, Debug)]
pub enum TxnOp {
    Store {
        oid: Oid,
        serial: Tid,
        data: Record,
    },
    Restore {
        oid: Oid,
        serial: Tid,
        data: Option<Record>,
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

/// What one buffered operation costs in memory besides its record data,
/// a fixed estimate: the operation in the buffer (its enum with an oid and
/// a serial), the `Bytes` and allocator bookkeeping of its data, and the
/// operation's share of the buffer's spare capacity. An operation is never
/// spooled, so a transaction of many small operations (thousands of
/// `checkCurrentSerialInTransaction` or deletes) counts against
/// `[limits] transaction_memory` too, and its records spool sooner.
pub const OP_OVERHEAD: usize = 160;
const _: () = assert!(std::mem::size_of::<TxnOp>() * 2 <= OP_OVERHEAD);

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
    /// Memory held so far: record data kept in memory, plus
    /// [`OP_OVERHEAD`] per operation.
    held: usize,
    /// Where records go once `held` would pass the limit: appended while
    /// the client stores, shared (read only) by the members' replays.
    spill: Option<Arc<SpooledBlob>>,
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
            held: 0,
            spill: None,
        }
    }

    /// Adds an operation. A record that would take the memory held past
    /// `limit` bytes (record data and [`OP_OVERHEAD`] per operation) is
    /// appended to the transaction's spool file (created in `spool_dir`
    /// when first needed) instead, so the records of a transaction of any
    /// size cost zeoraid at most `limit` of memory.
    pub fn push(&mut self, mut op: TxnOp, limit: usize, spool_dir: &Path) -> io::Result<()> {
        self.held += OP_OVERHEAD;
        let data = match &mut op {
            TxnOp::Store { data, .. } | TxnOp::Restore { data: Some(data), .. } => Some(data),
            TxnOp::Blob { data, .. } => {
                // A blob's record stays in memory (its content is spooled).
                self.held += data.len();
                None
            }
            _ => None,
        };
        if let Some(record) = data {
            if let Record::Held(bytes) = record {
                if self.held + bytes.len() > limit {
                    *record = self.spill(bytes, spool_dir)?;
                } else {
                    self.held += bytes.len();
                }
            }
        }
        self.ops.push(op);
        Ok(())
    }

    fn spill(&mut self, bytes: &[u8], spool_dir: &Path) -> io::Result<Record> {
        if self.spill.is_none() {
            self.spill = Some(Arc::new(SpooledBlob::create(spool_dir)?));
        }
        let spool = self.spill.as_mut().and_then(Arc::get_mut);
        let spool = spool.ok_or_else(|| io::Error::other("the transaction was already handed to a vote"))?;
        let at = spool.size();
        spool.append(bytes)?;
        Ok(Record::Spooled { at, len: bytes.len() })
    }

    /// A record's data, read back from the spool file if it was spilled.
    pub fn record(&self, record: &Record) -> io::Result<Bytes> {
        match record {
            Record::Held(bytes) => Ok(bytes.clone()),
            Record::Spooled { at, len } => {
                let spool = self
                    .spill
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no spool file"))?;
                spool.read_at(*at, *len)
            }
        }
    }

    /// Opens every spooled blob once, so that a spool file gone missing
    /// refuses the vote here, before anything goes to a member (one that
    /// fails later, halfway through the [`Replay`]s, is a [`SpoolFault`]).
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
    /// Whether this transaction reads (`checkCurrentSerialInTransaction`)
    /// or changes `oid`; an undo may change any object, so it counts.
    pub fn touches(&self, oid: Oid) -> bool {
        self.ops.iter().any(|op| match op {
            TxnOp::Store { oid: o, .. }
            | TxnOp::Restore { oid: o, .. }
            | TxnOp::Delete { oid: o, .. }
            | TxnOp::Blob { oid: o, .. }
            | TxnOp::CheckCurrent { oid: o, .. } => *o == oid,
            TxnOp::Undo { .. } => true,
        })
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty transaction, as a client begins one.
    pub(super) fn txn() -> TxnBuffer {
        TxnBuffer::begin(&TpcBegin {
            id: TxnId::from_i64(1),
            user: Value::bytes(&b""[..]),
            description: Value::bytes(&b""[..]),
            extension: Value::Dict(vec![]),
            tid: None,
            status: " ".into(),
        })
    }

    #[test]
    fn many_small_operations_count_against_the_memory_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut txn = txn();
        let limit = 10 * OP_OVERHEAD;
        for n in 0..10 {
            let check = TxnOp::CheckCurrent {
                oid: Oid::from_u64(n),
                serial: Tid::ZERO,
            };
            txn.push(check, limit, dir.path()).unwrap();
        }
        let store = TxnOp::Store {
            oid: Oid::from_u64(99),
            serial: Tid::ZERO,
            data: Record::Held(Bytes::from_static(b"a small record")),
        };
        txn.push(store, limit, dir.path()).unwrap();
        assert!(
            matches!(
                txn.ops.last(),
                Some(TxnOp::Store {
                    data: Record::Spooled { .. },
                    ..
                })
            ),
            "ten operations took the whole limit: the record is spooled, {:?}",
            txn.ops.last()
        );
        assert!(txn.record(&Record::Spooled { at: 0, len: 14 }).unwrap() == b"a small record"[..]);
    }
}
