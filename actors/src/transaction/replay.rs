//! A buffered transaction replayed on one member, one request at a time:
//! `tpc_begin` with the tid zeoraid chose, then the client's operations in
//! order, a spooled blob read back chunk by chunk only as the member's
//! connection takes it. Each member gets its own [`Replay`] (its own
//! handles on the spool files), so a blob costs one chunk of memory per
//! member while it goes out, whatever its size.
//!
//! The leader of a cluster fences every transaction: right after
//! `tpc_begin` comes `checkCurrentSerialInTransaction(root, serial)`, with
//! the root object's serial as the leader last set it. A member checks it
//! in the vote, under its storage lock; once a newer leader rewrote the
//! root there (its takeover), a deposed leader's vote fails with
//! `ReadConflictError` on that member (ARCHITECTURE.md §9).

use super::{BlobChunks, TxnBuffer, TxnOp};
use std::io;
use std::sync::Arc;
use zeo::methods::{
    CheckCurrentSerialInTransaction, DeleteObject, Request, Restorea, StoreBlobChunk, StoreBlobEnd, Storea,
    TpcBegin, TxnId, Undoa,
};
use zeo::types::{Oid, Tid};

/// The requests that replay `txn` on one member as transaction `id` with
/// tid `tid`; an iterator, so nothing is made before it is sent.
pub struct Replay {
    txn: Arc<TxnBuffer>,
    id: TxnId,
    tid: Tid,
    /// The root serial to check right after `tpc_begin`, if fenced.
    fence: Option<Tid>,
    /// `tpc_begin` went out.
    begun: bool,
    /// The next operation to send.
    next_op: usize,
    /// The blob of operation `next_op - 1`, while its chunks go out.
    blob: Option<BlobChunks>,
}

impl Replay {
    pub fn new(txn: Arc<TxnBuffer>, id: TxnId, tid: Tid) -> Replay {
        Replay {
            txn,
            id,
            tid,
            fence: None,
            begun: false,
            next_op: 0,
            blob: None,
        }
    }

    /// Checks that the root object's serial is still `root_serial` (a
    /// cluster leader's fence), if given.
    pub fn fenced(mut self, root_serial: Option<Tid>) -> Replay {
        self.fence = root_serial;
        self
    }

    /// The fence's check, sent once right after `tpc_begin`.
    fn fence_check(&mut self) -> Option<Request> {
        let serial = self.fence.take()?;
        Some(Request::CheckCurrentSerialInTransaction(
            CheckCurrentSerialInTransaction {
                oid: Oid::ZERO,
                serial,
                id: self.id.clone(),
            },
        ))
    }

    fn begin(&self) -> Request {
        let txn = &self.txn;
        Request::TpcBegin(TpcBegin {
            id: self.id.clone(),
            user: txn.user.clone(),
            description: txn.description.clone(),
            extension: txn.extension.clone(),
            tid: Some(self.tid),
            status: txn.status.clone(),
        })
    }

    /// The next chunk of the blob going out, or its `storeBlobEnd`.
    fn blob_chunk(&mut self) -> io::Result<Request> {
        let chunks = self.blob.as_mut().expect("a blob is going out");
        if let Some(chunk) = chunks.next() {
            return Ok(Request::StoreBlobChunk(StoreBlobChunk { chunk: chunk? }));
        }
        self.blob = None;
        let TxnOp::Blob {
            oid, serial, data, ..
        } = &self.txn.ops[self.next_op - 1]
        else {
            unreachable!("only a blob operation has chunks");
        };
        Ok(Request::StoreBlobEnd(StoreBlobEnd {
            oid: *oid,
            serial: *serial,
            data: data.clone(),
            id: self.id.clone(),
        }))
    }

    /// The request for operation `next_op` (a blob's `storeBlobStart`,
    /// its chunks following).
    fn operation(&mut self) -> io::Result<Request> {
        let id = self.id.clone();
        let op = &self.txn.ops[self.next_op];
        self.next_op += 1;
        Ok(match op {
            TxnOp::Store { oid, serial, data } => Request::Storea(Storea {
                oid: *oid,
                serial: *serial,
                data: self.txn.record(data)?,
                id,
            }),
            TxnOp::Restore {
                oid,
                serial,
                data,
                prev_txn,
            } => Request::Restorea(Restorea {
                oid: *oid,
                serial: *serial,
                data: data.as_ref().map(|d| self.txn.record(d)).transpose()?,
                prev_txn: *prev_txn,
                id,
            }),
            TxnOp::CheckCurrent { oid, serial } => {
                Request::CheckCurrentSerialInTransaction(CheckCurrentSerialInTransaction {
                    oid: *oid,
                    serial: *serial,
                    id,
                })
            }
            TxnOp::Delete { oid, serial } => Request::DeleteObject(DeleteObject {
                oid: *oid,
                serial: *serial,
                id,
            }),
            TxnOp::Undo { trans_id } => Request::Undoa(Undoa {
                trans_id: trans_id.clone(),
                id,
            }),
            TxnOp::Blob { blob, .. } => {
                self.blob = Some(blob.chunks()?);
                Request::StoreBlobStart
            }
        })
    }
}

impl Iterator for Replay {
    type Item = io::Result<Request>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.begun {
            self.begun = true;
            return Some(Ok(self.begin()));
        }
        if let Some(check) = self.fence_check() {
            return Some(Ok(check));
        }
        let request = if self.blob.is_some() {
            self.blob_chunk()
        } else if self.next_op == self.txn.ops.len() {
            return None;
        } else {
            self.operation()
        };
        if request.is_err() {
            // Nothing more of this transaction can be sent right.
            self.blob = None;
            self.next_op = self.txn.ops.len();
        }
        Some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::Record;
    use bytes::Bytes;
    use zeo::Value;

    fn txn() -> TxnBuffer {
        TxnBuffer::begin(&TpcBegin {
            id: TxnId::from_i64(1),
            user: Value::bytes(&b""[..]),
            description: Value::bytes(&b""[..]),
            extension: Value::Dict(vec![]),
            tid: None,
            status: " ".into(),
        })
    }

    fn store(n: u8, len: usize) -> TxnOp {
        TxnOp::Store {
            oid: Oid::from_u64(u64::from(n)),
            serial: Tid::ZERO,
            data: Record::Held(Bytes::from(vec![n; len])),
        }
    }

    #[test]
    fn records_past_the_memory_limit_are_spooled_and_replayed_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let mut txn = txn();
        for n in 1..=4 {
            txn.push(store(n, 1000), 2500, dir.path()).unwrap();
        }
        let spooled = |op: &TxnOp| {
            matches!(
                op,
                TxnOp::Store {
                    data: Record::Spooled { .. },
                    ..
                }
            )
        };
        let kinds: Vec<bool> = txn.ops.iter().map(spooled).collect();
        assert_eq!(kinds, [false, false, true, true], "two records fit in 2500 bytes");
        let replay = Replay::new(Arc::new(txn), TxnId::from_i64(7), Tid::from_u64(5));
        let stores: Vec<(Oid, Bytes)> = replay
            .map(Result::unwrap)
            .filter_map(|r| match r {
                Request::Storea(s) => Some((s.oid, s.data)),
                _ => None,
            })
            .collect();
        let expected: Vec<(Oid, Bytes)> = (1..=4u8)
            .map(|n| (Oid::from_u64(u64::from(n)), Bytes::from(vec![n; 1000])))
            .collect();
        assert_eq!(stores, expected);
    }

    #[test]
    fn a_fenced_replay_checks_the_root_serial_right_after_tpc_begin() {
        let dir = tempfile::tempdir().unwrap();
        let mut txn = txn();
        txn.push(store(1, 10), 1 << 20, dir.path()).unwrap();
        let root_serial = Tid::from_u64(0x03e0_0000_0000_0009);
        let replay =
            Replay::new(Arc::new(txn), TxnId::from_i64(7), Tid::from_u64(5)).fenced(Some(root_serial));
        let requests: Vec<Request> = replay.map(Result::unwrap).collect();
        assert!(matches!(requests[0], Request::TpcBegin(_)), "{requests:?}");
        match &requests[1] {
            Request::CheckCurrentSerialInTransaction(check) => {
                assert_eq!((check.oid, check.serial), (Oid::ZERO, root_serial));
                assert_eq!(check.id, TxnId::from_i64(7));
            }
            other => panic!("expected the fence's check, got {other:?}"),
        }
        assert!(matches!(requests[2], Request::Storea(_)), "{requests:?}");
        assert_eq!(requests.len(), 3);
    }
}
