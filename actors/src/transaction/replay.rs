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
//!
//! The spool is zeoraid's own disk: when it cannot be read back (an I/O
//! error, a file cut short under zeoraid), that is zeoraid's fault, not the
//! member's. The replay then records the error in its [`SpoolFault`], ends
//! a blob it was sending with its `storeBlobEnd` (a ZEO server keeps a
//! half-received blob open until then, and refuses the next one), and
//! sends no more operations; the vote still goes out on a connection in
//! good order, and the controller, seeing the fault, aborts the
//! transaction everywhere and refuses the vote. Failing the connection
//! instead would degrade every member for one unreadable file.

use super::{BlobChunks, TxnBuffer, TxnOp};
use std::io;
use std::sync::{Arc, OnceLock};
use zeo::methods::{
    CheckCurrentSerialInTransaction, DeleteObject, Request, Restorea, StoreBlobChunk, StoreBlobEnd, Storea,
    TpcBegin, TxnId, Undoa,
};
use zeo::types::{Oid, Tid};

/// Why a transaction's spool could not be read back during one of its
/// replays: the first such error of any member's replay, shared by all.
#[derive(Clone, Debug, Default)]
pub struct SpoolFault(Arc<OnceLock<String>>);

impl SpoolFault {
    fn record(&self, error: &io::Error) {
        let _ = self
            .0
            .set(format!("zeoraid could not read its spool file back: {error}"));
    }

    /// The error, if a replay met one.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

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
    /// A blob operation's index and its chunks, while they go out.
    blob: Option<(usize, BlobChunks)>,
    /// Where a spool read error is reported.
    fault: SpoolFault,
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
            fault: SpoolFault::default(),
        }
    }

    /// Reports a spool read error to `fault` (see the module's doc).
    pub fn reporting_to(mut self, fault: SpoolFault) -> Replay {
        self.fault = fault;
        self
    }

    /// The spool cannot be read: the error is reported, and no further
    /// operation is sent.
    fn give_up(&mut self, error: &io::Error) {
        self.fault.record(error);
        self.next_op = self.txn.ops.len();
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

    /// The next chunk of the blob going out, or its `storeBlobEnd` (also
    /// right after a chunk that could not be read).
    fn blob_chunk(&mut self) -> Request {
        let (index, chunks) = self.blob.as_mut().expect("a blob is going out");
        let index = *index;
        match chunks.next() {
            Some(Ok(chunk)) => return Request::StoreBlobChunk(StoreBlobChunk { chunk }),
            Some(Err(error)) => self.give_up(&error),
            None => {}
        }
        self.blob = None;
        let TxnOp::Blob {
            oid, serial, data, ..
        } = &self.txn.ops[index]
        else {
            unreachable!("only a blob operation has chunks");
        };
        Request::StoreBlobEnd(StoreBlobEnd {
            oid: *oid,
            serial: *serial,
            data: data.clone(),
            id: self.id.clone(),
        })
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
                self.blob = Some((self.next_op - 1, blob.chunks()?));
                Request::StoreBlobStart
            }
        })
    }
}

impl Iterator for Replay {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        if !self.begun {
            self.begun = true;
            return Some(self.begin());
        }
        if let Some(check) = self.fence_check() {
            return Some(check);
        }
        if self.blob.is_some() {
            return Some(self.blob_chunk());
        }
        if self.next_op == self.txn.ops.len() {
            return None;
        }
        match self.operation() {
            Ok(request) => Some(request),
            Err(error) => {
                self.give_up(&error);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::Record;
    use bytes::Bytes;

    use crate::transaction::tests::txn;

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
        assert_eq!(
            kinds,
            [false, false, true, true],
            "two records and their operations fit in 2500 bytes"
        );
        let replay = Replay::new(Arc::new(txn), TxnId::from_i64(7), Tid::from_u64(5));
        let stores: Vec<(Oid, Bytes)> = replay
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
        let requests: Vec<Request> = replay.collect();
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

    /// Cuts every spool file in `dir` to `len` bytes, as a disk error or
    /// a careless cleaner would leave it under zeoraid.
    fn truncate_spools(dir: &std::path::Path, len: u64) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(entry.unwrap().path());
            file.unwrap().set_len(len).unwrap();
        }
    }

    #[test]
    fn an_unreadable_spilled_record_is_reported_and_ends_the_operations() {
        let dir = tempfile::tempdir().unwrap();
        let mut txn = txn();
        for n in 1..=3 {
            txn.push(store(n, 1000), 1500, dir.path()).unwrap();
        }
        truncate_spools(dir.path(), 0);
        let fault = SpoolFault::default();
        let replay =
            Replay::new(Arc::new(txn), TxnId::from_i64(7), Tid::from_u64(5)).reporting_to(fault.clone());
        let names: Vec<String> = replay.map(|r| r.name().to_owned()).collect();
        assert_eq!(
            names,
            ["tpc_begin", "storea"],
            "only the record held in memory goes out"
        );
        let error = fault.get().expect("the fault is reported");
        assert!(error.contains("could not read its spool file back"), "{error}");
    }

    #[test]
    fn a_blob_cut_short_in_the_spool_still_ends_with_its_store_blob_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut blob = crate::transaction::SpooledBlob::create(dir.path()).unwrap();
        blob.append(&vec![7; 3 * crate::transaction::spool::BLOB_CHUNK])
            .unwrap();
        let mut txn = txn();
        let blob_op = TxnOp::Blob {
            oid: Oid::from_u64(9),
            serial: Tid::ZERO,
            data: Bytes::from_static(b"record"),
            blob: Arc::new(blob),
        };
        txn.push(blob_op, 1 << 20, dir.path()).unwrap();
        txn.push(store(1, 10), 1 << 20, dir.path()).unwrap();
        truncate_spools(dir.path(), crate::transaction::spool::BLOB_CHUNK as u64 + 10);
        let fault = SpoolFault::default();
        let replay =
            Replay::new(Arc::new(txn), TxnId::from_i64(7), Tid::from_u64(5)).reporting_to(fault.clone());
        let names: Vec<String> = replay.map(|r| r.name().to_owned()).collect();
        assert_eq!(
            names,
            ["tpc_begin", "storeBlobStart", "storeBlobChunk", "storeBlobEnd"],
            "the blob is closed on the member and nothing follows"
        );
        assert!(fault.get().is_some());
    }
}
