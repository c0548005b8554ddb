//! The commit family (`zeo/src/methods/commit.rs`): the client's
//! transaction is buffered here from `tpc_begin` to `vote` (blob uploads
//! spooled to disk), as a ZEO server buffers it; at the vote it goes to the
//! controller, which holds the commit lock, and the controller's answers
//! (`Voted`, `Finished`, `Aborted`) come back in this session's mailbox, in
//! order with the invalidations. New oids come from the controller too.

use super::dispatch::Refusal;
use super::*;
use crate::controller as ctl;
use crate::tid;
use crate::transaction::{Record, TxnOp};
use std::time::SystemTime;
use zeo::methods::{Request, StoreBlobEnd, TpcBegin, TxnId};
use zeo::reply::{Reply, VoteResult};

impl ClientSession {
    /// The asynchronous calls of a transaction: buffered until the vote.
    pub(super) fn on_transaction_call(&mut self, request: Request) -> Result<(), Refusal> {
        match request {
            Request::TpcBegin(b) => self.tpc_begin(&b),
            Request::Storea(s) => self.buffer(
                &s.id,
                TxnOp::Store {
                    oid: s.oid,
                    serial: s.serial,
                    data: Record::Held(s.data),
                },
            ),
            Request::Restorea(r) => {
                let op = TxnOp::Restore {
                    oid: r.oid,
                    serial: r.serial,
                    data: r.data.map(Record::Held),
                    prev_txn: r.prev_txn,
                };
                self.buffer(&r.id, op)
            }
            Request::CheckCurrentSerialInTransaction(c) => self.buffer(
                &c.id,
                TxnOp::CheckCurrent {
                    oid: c.oid,
                    serial: c.serial,
                },
            ),
            Request::DeleteObject(d) => self.buffer(
                &d.id,
                TxnOp::Delete {
                    oid: d.oid,
                    serial: d.serial,
                },
            ),
            Request::Undoa(u) => self.buffer(&u.id, TxnOp::Undo { trans_id: u.trans_id }),
            Request::StoreBlobStart => self.store_blob_start(),
            Request::StoreBlobChunk(c) => self.store_blob_chunk(&c.chunk),
            Request::StoreBlobEnd(e) => self.store_blob_end(e),
            Request::StoreBlobShared(_) => {
                let problem = "storeBlobShared needs a blob directory shared with the server; zeoraid's \
                               members each have their own: configure the client without shared_blob_dir";
                Err(Refusal::new(ZeoError::ValueError(problem.into()), problem))
            }
            other => Err(Refusal::not_async(&other)),
        }
    }

    fn tpc_begin(&mut self, begin: &TpcBegin) -> Result<(), Refusal> {
        if self.read_only {
            return Err(Refusal::new(
                ZeoError::ReadOnlyError,
                "tpc_begin on a read-only connection",
            ));
        }
        match &self.txn {
            Some((txn, _)) if txn.id == begin.id => {}
            Some(_) => {
                let problem = "Multiple simultaneous tpc_begin requests from one client.";
                return Err(Refusal::transaction(problem));
            }
            None => self.txn = Some((TxnBuffer::begin(begin), Phase::Buffering)),
        }
        Ok(())
    }

    /// Adds an operation to the open transaction (its records spilled to
    /// the spool dir past `[limits] transaction_memory`).
    fn buffer(&mut self, id: &TxnId, op: TxnOp) -> Result<(), Refusal> {
        let settings = &self.settings;
        match &mut self.txn {
            Some((txn, Phase::Buffering)) if &txn.id == id => txn
                .push(op, settings.transaction_memory, &settings.spool_dir)
                .map_err(|e| {
                    let problem = format!("cannot spool a record in {}: {e}", settings.spool_dir.display());
                    Refusal::new(ZeoError::unavailable(&problem), &problem)
                }),
            _ => Err(Refusal::transaction(&format!(
                "store for transaction {id}, which is not open"
            ))),
        }
    }

    fn store_blob_start(&mut self) -> Result<(), Refusal> {
        let spool = SpooledBlob::create(&self.settings.spool_dir).map_err(|e| {
            let problem = format!(
                "cannot spool a blob in {}: {e}",
                self.settings.spool_dir.display()
            );
            Refusal::new(ZeoError::unavailable(&problem), &problem)
        })?;
        self.blob_spool = Some(spool);
        Ok(())
    }

    fn store_blob_chunk(&mut self, chunk: &[u8]) -> Result<(), Refusal> {
        let Some(spool) = &mut self.blob_spool else {
            return Err(Refusal::transaction("storeBlobChunk without storeBlobStart"));
        };
        spool.append(chunk).map_err(|e| {
            let problem = format!("cannot spool a blob chunk: {e}");
            Refusal::new(ZeoError::unavailable(&problem), &problem)
        })
    }

    fn store_blob_end(&mut self, end: StoreBlobEnd) -> Result<(), Refusal> {
        let Some(spool) = self.blob_spool.take() else {
            return Err(Refusal::transaction("storeBlobEnd without storeBlobStart"));
        };
        let op = TxnOp::Blob {
            oid: end.oid,
            serial: end.serial,
            data: end.data,
            blob: Arc::new(spool),
        };
        self.buffer(&end.id, op)
    }

    pub(super) fn new_oids(&mut self, ctx: &mut Context<Self>, msgid: MsgId, n: Option<i64>) {
        if self.read_only {
            return self.error(msgid, ZeoError::ReadOnlyError);
        }
        let n = n.unwrap_or(100).clamp(1, 100) as usize;
        let fut = self.controller.send(ctl::NewOids { n });
        self.ask(ctx, msgid, fut, |oids| {
            oids.map(|oids| Reply::NewOids(oids).to_value())
        });
    }

    pub(super) fn new_oid(&self, msgid: MsgId) {
        let error = ZeoError::Other {
            class: "builtins.AttributeError".into(),
            payload: Value::tuple([Value::str("new_oid is not implemented; use new_oids")]),
        };
        self.error(msgid, error);
    }

    pub(super) fn vote(&mut self, msgid: MsgId, id: TxnId) {
        let current = self.txn.as_ref().map(|(t, p)| (t.id.clone(), *p));
        match current {
            Some((current, Phase::Buffering)) if current == id => {
                let (txn, phase) = self.txn.as_mut().expect("checked above");
                if let Some(problem) = begin_refusal(txn, self.settings.explicit_tid_skew) {
                    let error = ZeoError::StorageTransactionError(vec![Value::Str(problem)]);
                    return self.error(msgid, error);
                }
                *phase = Phase::Voting;
                let vote = ctl::Vote {
                    session: self.id,
                    msgid,
                    txn: txn.clone(),
                };
                self.controller.do_send(vote);
            }
            Some((current, _)) if current == id => self.error(
                msgid,
                ZeoError::StorageTransactionError(vec![Value::str("Already voting")]),
            ),
            other => {
                let current = other.map_or(Value::None, |(current, _)| current.into_value());
                let error = ZeoError::StorageTransactionError(vec![current, id.into_value()]);
                self.error(msgid, error)
            }
        }
    }

    pub(super) fn tpc_finish(&mut self, msgid: MsgId, id: TxnId) {
        match &self.txn {
            Some((txn, Phase::Voted)) if txn.id == id => {
                self.controller.do_send(ctl::Finish {
                    session: self.id,
                    msgid,
                    txn: id,
                });
            }
            // ZEO answers None for a transaction that is not current.
            _ => self.reply(msgid, Value::None),
        }
    }

    pub(super) fn tpc_abort(&mut self, msgid: MsgId, id: TxnId) {
        match self.txn.take() {
            Some((txn, Phase::Voting | Phase::Voted)) if txn.id == id => {
                self.controller.do_send(ctl::Abort {
                    session: self.id,
                    msgid: Some(msgid),
                    txn: id,
                });
            }
            Some((txn, Phase::Buffering)) if txn.id == id => {
                self.blob_spool = None;
                self.reply(msgid, Value::None)
            }
            other => {
                self.txn = other;
                self.reply(msgid, Value::None)
            }
        }
    }

    pub(super) fn on_voted(&mut self, msgid: MsgId, result: Result<VoteResult, ZeoError>) {
        if let Some((_, phase)) = &mut self.txn {
            *phase = match &result {
                // Conflicts for the client to resolve: it stores the
                // resolutions and votes again.
                Ok(VoteResult::Conflicts(c)) if !c.is_empty() => Phase::Buffering,
                Ok(_) => Phase::Voted,
                Err(_) => Phase::Buffering,
            };
        }
        self.answer(msgid, result.map(|v| Reply::Vote(v).to_value()));
    }

    pub(super) fn on_finished(&mut self, msgid: MsgId, result: Result<(Tid, Value), ZeoError>) {
        self.txn = None;
        match result {
            Ok((tid, info)) => {
                self.saw(tid);
                if matches!(&info, Value::Dict(d) if !d.is_empty()) {
                    self.callback(Callback::Info(info));
                }
                self.reply(msgid, Value::bytes(tid.0.to_vec()));
            }
            Err(e) => self.error(msgid, e),
        }
    }

    pub(super) fn on_aborted(&mut self, msgid: MsgId) {
        self.blob_spool = None;
        self.reply(msgid, Value::None)
    }
}

/// Statuses a client may give `tpc_begin`: `' '` for a normal transaction
/// and `'p'` for one restored from packed history. FileStorage's iterator
/// stops at a `'c'` (checkpoint) transaction and skips a `'u'` one, so
/// either would end every later backup and recovery there, or be missing
/// from them.
const ACCEPTED_STATUSES: [&str; 2] = [" ", "p"];

/// Why the vote of `txn` is refused before anything reaches a member, for
/// what its `tpc_begin` asked (`tpc_begin` is asynchronous: its refusal
/// can only be the vote's answer); `None` when it is acceptable.
fn begin_refusal(txn: &TxnBuffer, explicit_tid_skew: std::time::Duration) -> Option<String> {
    if !ACCEPTED_STATUSES.contains(&txn.status.as_str()) {
        return Some(format!(
            "tpc_begin with transaction status {:?} refused: only ' ' and 'p' (a restore of \
             packed history) are accepted",
            txn.status
        ));
    }
    let asked = txn.tid?;
    let latest = tid::latest_explicit(SystemTime::now(), explicit_tid_skew);
    (asked > latest).then(|| {
        format!(
            "tpc_begin asked for tid {asked}, more than [limits] explicit_tid_skew ({}s) in the \
             future: refused, every later commit would need a higher tid",
            explicit_tid_skew.as_secs()
        )
    })
}
