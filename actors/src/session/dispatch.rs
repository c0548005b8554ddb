//! What a session does with each ZEO method (protocol doc §3) and with
//! each message from the controller.

use super::*;
use crate::controller::{self as ctl, ToSession};
use crate::controller::{ClusterMode, DegradeKind, Serving};
use crate::member::{AnswerSlot, Call, MemberError, Oneway, Relay, Relayed, SendBlob};
use crate::metrics::{self, LoadOutcome};
use crate::transaction::TxnOp;
use zeo::methods::{IteratorGc, IteratorNext, IteratorRecordNext, IteratorRecordStart, Request};
use zeo::reply::{LoadBeforeResult, Reply};
use zeo::CodecError;

/// Why an asynchronous call was not taken: the error a sync caller gets,
/// and the reason logged when an async caller's connection is closed.
struct Refusal {
    error: ZeoError,
    reason: String,
}

impl Refusal {
    fn new(error: ZeoError, reason: &str) -> Refusal {
        Refusal {
            error,
            reason: reason.to_owned(),
        }
    }

    fn transaction(problem: &str) -> Refusal {
        Refusal::new(
            ZeoError::StorageTransactionError(vec![Value::str(problem)]),
            problem,
        )
    }
}

/// How a member answer is turned into the client's.
type Shape = fn(&mut ClientSession, &Addr<MemberActor>, Reply) -> Result<Value, ZeoError>;

/// A read relayed to a member, waiting for its `Relayed` answer: what
/// answering the client, or trying the next member, needs.
pub(super) struct PendingRead {
    msgid: MsgId,
    request: Request,
    load: Option<u64>,
    shape: Shape,
    member: Addr<MemberActor>,
    tried: Vec<Addr<MemberActor>>,
}

impl ClientSession {
    pub(super) fn on_call(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        oneway: bool,
        name: &str,
        args: &Value,
    ) {
        if !self.registered && name != "register" {
            return self.close(ctx, &format!("{name} called before register"));
        }
        // Nothing callable from a client reaches a member: the decoder
        // already refused every global but a few data classes; an object
        // node left over (other than the ZopeUndo.Prefix filter of undoInfo,
        // which zeoraid evaluates itself) is refused too.
        if forwards_an_object(name, args) {
            let problem = format!("{name}: pickled objects are not accepted in arguments");
            if oneway {
                return self.close(ctx, &problem);
            }
            return self.error(msgid, ZeoError::ValueError(problem));
        }
        let request = match Request::decode(name, args) {
            // Served whatever the array's state: operators need them most
            // when it has failed.
            Ok(Request::Raid { name, args }) if !oneway => {
                return self.on_management(ctx, msgid, &name, &args);
            }
            Ok(Request::Raid { .. }) | Err(CodecError::UnknownMethod(_)) => {
                return self.close(ctx, &format!("unknown method {name:?}"));
            }
            Ok(request) => request,
            Err(e) if oneway => return self.close(ctx, &format!("bad asynchronous call: {e}")),
            Err(e) => {
                let class = if matches!(e, CodecError::Arity { .. }) {
                    "TypeError"
                } else {
                    "ValueError"
                };
                let error = ZeoError::Other {
                    class: format!("builtins.{class}"),
                    payload: Value::tuple([Value::str(e.to_string())]),
                };
                return self.error(msgid, error);
            }
        };
        // Once the array has failed in `close` mode every call gets the
        // reason; only what ends a transaction still goes through (a vote
        // that succeeded must be finished or aborted on the members).
        if let Serving::Closed(reason) = &self.serving {
            let ends_a_transaction = matches!(
                request,
                Request::Register(_) | Request::TpcFinish(_) | Request::TpcAbort(_)
            );
            if !oneway && !ends_a_transaction {
                return self.error(msgid, ZeoError::unavailable(reason));
            }
        }
        if request.is_oneway() {
            // ZEO answers any sync call, even of a method clients send
            // asynchronously (tests do: `iterator_gc` through `_call`), and
            // closes the connection when an async call fails (no reply
            // possible).
            match self.on_async(request) {
                Ok(()) if !oneway => self.reply(msgid, Value::None),
                Ok(()) => {}
                Err(refusal) if oneway => self.close(ctx, &refusal.reason),
                Err(refusal) => self.error(msgid, refusal.error),
            }
        } else {
            self.on_request(ctx, msgid, request)
        }
    }

    /// The methods ZEO clients send asynchronously: buffered or applied at
    /// once, never answered themselves.
    fn on_async(&mut self, request: Request) -> Result<(), Refusal> {
        match request {
            Request::SetClientLabel(l) => {
                info!(self.log, "client label"; "label" => &l.label);
                self.label = Some(l.label);
            }
            Request::IteratorGc(gc) => {
                for iid in gc.iids {
                    if let Some((member, member_iid)) = self.iterators.remove(&iid) {
                        member.do_send(Oneway(Request::IteratorGc(IteratorGc {
                            iids: vec![member_iid],
                        })));
                    }
                }
            }
            Request::TpcBegin(b) => {
                if self.read_only {
                    return Err(Refusal::new(
                        ZeoError::ReadOnlyError,
                        "tpc_begin on a read-only connection",
                    ));
                }
                match &self.txn {
                    Some((txn, _)) if txn.id == b.id => {}
                    Some(_) => {
                        let problem = "Multiple simultaneous tpc_begin requests from one client.";
                        return Err(Refusal::transaction(problem));
                    }
                    None => self.txn = Some((TxnBuffer::begin(&b), Phase::Buffering)),
                }
            }
            Request::Storea(s) => self.buffer(
                &s.id,
                TxnOp::Store {
                    oid: s.oid,
                    serial: s.serial,
                    data: s.data,
                },
            )?,
            Request::Restorea(r) => {
                let op = TxnOp::Restore {
                    oid: r.oid,
                    serial: r.serial,
                    data: r.data,
                    prev_txn: r.prev_txn,
                };
                self.buffer(&r.id, op)?
            }
            Request::CheckCurrentSerialInTransaction(c) => self.buffer(
                &c.id,
                TxnOp::CheckCurrent {
                    oid: c.oid,
                    serial: c.serial,
                },
            )?,
            Request::DeleteObject(d) => self.buffer(
                &d.id,
                TxnOp::Delete {
                    oid: d.oid,
                    serial: d.serial,
                },
            )?,
            Request::Undoa(u) => self.buffer(&u.id, TxnOp::Undo { trans_id: u.trans_id })?,
            Request::StoreBlobStart => {
                let spool = SpooledBlob::create(&self.settings.spool_dir).map_err(|e| {
                    let problem = format!(
                        "cannot spool a blob in {}: {e}",
                        self.settings.spool_dir.display()
                    );
                    Refusal::new(ZeoError::unavailable(&problem), &problem)
                })?;
                self.blob_spool = Some(spool);
            }
            Request::StoreBlobChunk(c) => match &mut self.blob_spool {
                Some(spool) => spool.append(&c.chunk).map_err(|e| {
                    let problem = format!("cannot spool a blob chunk: {e}");
                    Refusal::new(ZeoError::unavailable(&problem), &problem)
                })?,
                None => return Err(Refusal::transaction("storeBlobChunk without storeBlobStart")),
            },
            Request::StoreBlobEnd(e) => {
                let Some(spool) = self.blob_spool.take() else {
                    return Err(Refusal::transaction("storeBlobEnd without storeBlobStart"));
                };
                let blob = std::sync::Arc::new(spool);
                self.buffer(
                    &e.id,
                    TxnOp::Blob {
                        oid: e.oid,
                        serial: e.serial,
                        data: e.data,
                        blob,
                    },
                )?
            }
            Request::StoreBlobShared(_) => {
                let problem = "storeBlobShared needs a blob directory shared with the server; zeoraid's \
                               members each have their own: configure the client without shared_blob_dir";
                return Err(Refusal::new(ZeoError::ValueError(problem.into()), problem));
            }
            other => {
                let problem = format!("{} is not an asynchronous method", other.name());
                return Err(Refusal::new(ZeoError::ValueError(problem.clone()), &problem));
            }
        }
        Ok(())
    }

    fn on_request(&mut self, ctx: &mut Context<Self>, msgid: MsgId, request: Request) {
        match request {
            Request::Register(r) => {
                if self.registered || self.registering {
                    return self.close(ctx, "register called twice");
                }
                if r.storage != self.settings.storage {
                    let error = ZeoError::ValueError(format!("unknown storage: {}", r.storage));
                    return self.error(msgid, error);
                }
                self.registering = true;
                self.read_only = r.read_only;
                let handle = ctl::SessionHandle {
                    to_session: ctx.address().recipient(),
                    snapshot: ctx.address().recipient(),
                };
                self.controller.do_send(ctl::Register {
                    session: self.id,
                    handle,
                    msgid,
                    read_only: r.read_only,
                });
            }
            Request::GetInfo => self.ask(ctx, msgid, self.controller.send(ctl::GetInfo), Ok),
            Request::LastTransaction => {
                let fut = self.controller.send(ctl::LastTid);
                ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
                    let result = result
                        .map_err(|e| ZeoError::unavailable(&format!("controller unreachable: {e}")))
                        .map(|tid| {
                            act.saw(tid);
                            Value::bytes(tid.0.to_vec())
                        });
                    act.answer(msgid, result);
                }));
            }
            Request::ServerStatus => self.ask(ctx, msgid, self.controller.send(ctl::ServerStatus), Ok),
            Request::Ping => self.reply(msgid, Value::None),
            Request::LoadBefore(mut load) => {
                // Never newer than what this client has been told about:
                // between a commit's first and last member finishing, the
                // members differ on the current revision, and a client must
                // not see a transaction on one member and then lose it on
                // the next (it is acknowledged only when all finished).
                let newest = Tid::from_u64(self.last_seen.as_u64().saturating_add(1));
                load.tid = load.tid.min(newest);
                let seq = self.next_load;
                self.next_load += 1;
                self.loads.insert(
                    seq,
                    InFlightLoad {
                        oid: load.oid,
                        invalidated_by: None,
                    },
                );
                let request = Request::LoadBefore(load);
                if self.cluster_mode == ClusterMode::Coop {
                    return self.read_voted(ctx, msgid, request, Some(seq));
                }
                let shape: Shape = |_, _, reply| Ok(reply.to_value());
                self.read(ctx, msgid, request, Some(seq), shape, Vec::new());
            }
            Request::LoadSerial(_) if self.cluster_mode == ClusterMode::Coop => {
                self.read_voted(ctx, msgid, request, None)
            }
            Request::UndoInfo(u) if matches!(&u.spec, Value::Dict(items) if !items.is_empty()) => {
                let Some(member) = self.pick_reader(&[]) else {
                    return self.error(
                        msgid,
                        ZeoError::unavailable("no member to read from: the array has failed"),
                    );
                };
                let fut = super::undo_filter::undo_info(member, u.first, u.last, u.spec);
                ctx.spawn(
                    fut.into_actor(self)
                        .map(move |result, act, _| act.answer(msgid, result)),
                );
            }
            Request::GetInvalidations(_)
            | Request::LoadSerial(_)
            | Request::GetTid(_)
            | Request::History(_)
            | Request::RecordIternext(_)
            | Request::UndoLog(_)
            | Request::UndoInfo(_) => self.read(
                ctx,
                msgid,
                request,
                None,
                |_, _, reply| Ok(reply.to_value()),
                Vec::new(),
            ),
            Request::SendBlob(s) => self.send_blob(ctx, msgid, s.oid, s.serial),
            Request::IteratorStart(_) => {
                self.read(ctx, msgid, request, None, ClientSession::new_iterator, Vec::new())
            }
            Request::IteratorNext(n) => self.iterate(ctx, msgid, n.iid, |iid| {
                Request::IteratorNext(IteratorNext { iid })
            }),
            Request::IteratorRecordNext(n) => self.iterate(ctx, msgid, n.riid, |riid| {
                Request::IteratorRecordNext(IteratorRecordNext { riid })
            }),
            Request::IteratorRecordStart(s) => {
                let tid = s.tid;
                self.iterate(ctx, msgid, s.txn_iid, move |txn_iid| {
                    Request::IteratorRecordStart(IteratorRecordStart { txn_iid, tid })
                })
            }
            Request::NewOids(n) => {
                if self.read_only {
                    return self.error(msgid, ZeoError::ReadOnlyError);
                }
                let n = n.n.unwrap_or(100).clamp(1, 100) as usize;
                let fut = self.controller.send(ctl::NewOids { n });
                self.ask(ctx, msgid, fut, |oids| {
                    oids.map(|oids| Reply::NewOids(oids).to_value())
                });
            }
            Request::NewOid(_) => {
                let error = ZeoError::Other {
                    class: "builtins.AttributeError".into(),
                    payload: Value::tuple([Value::str("new_oid is not implemented; use new_oids")]),
                };
                self.error(msgid, error);
            }
            Request::Pack(p) => {
                self.controller.do_send(ctl::Pack {
                    session: self.id,
                    msgid,
                    t: p.t,
                    wait: p.wait,
                });
            }
            Request::Vote(v) => {
                let current = self.txn.as_ref().map(|(t, p)| (t.id.clone(), *p));
                match current {
                    Some((id, Phase::Buffering)) if id == v.id => {
                        let (txn, phase) = self.txn.as_mut().expect("checked above");
                        *phase = Phase::Voting;
                        let vote = ctl::Vote {
                            session: self.id,
                            msgid,
                            txn: txn.clone(),
                        };
                        self.controller.do_send(vote);
                    }
                    Some((id, _)) if id == v.id => self.error(
                        msgid,
                        ZeoError::StorageTransactionError(vec![Value::str("Already voting")]),
                    ),
                    other => {
                        let current = other.map_or(Value::None, |(id, _)| id.into_value());
                        let error = ZeoError::StorageTransactionError(vec![current, v.id.into_value()]);
                        self.error(msgid, error)
                    }
                }
            }
            Request::TpcFinish(f) => match &self.txn {
                Some((txn, Phase::Voted)) if txn.id == f.id => {
                    self.controller.do_send(ctl::Finish {
                        session: self.id,
                        msgid,
                        txn: f.id,
                    });
                }
                // ZEO answers None for a transaction that is not current.
                _ => self.reply(msgid, Value::None),
            },
            Request::TpcAbort(a) => match self.txn.take() {
                Some((txn, Phase::Voting | Phase::Voted)) if txn.id == a.id => {
                    self.controller.do_send(ctl::Abort {
                        session: self.id,
                        msgid: Some(msgid),
                        txn: a.id,
                    });
                }
                Some((txn, Phase::Buffering)) if txn.id == a.id => {
                    self.blob_spool = None;
                    self.reply(msgid, Value::None)
                }
                other => {
                    self.txn = other;
                    self.reply(msgid, Value::None)
                }
            },
            // Asynchronous methods are handled by `on_async`.
            _ => {}
        }
    }

    /// Adds an operation to the open transaction.
    fn buffer(&mut self, id: &zeo::methods::TxnId, op: TxnOp) -> Result<(), Refusal> {
        match &mut self.txn {
            Some((txn, Phase::Buffering)) if &txn.id == id => {
                txn.ops.push(op);
                Ok(())
            }
            _ => Err(Refusal::transaction(&format!(
                "store for transaction {id}, which is not open"
            ))),
        }
    }

    /// Answers from a controller future.
    pub(super) fn ask<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        fut: impl std::future::Future<Output = Result<T, MailboxError>> + 'static,
        shape: fn(T) -> Result<Value, ZeoError>,
    ) {
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            let result = result
                .map_err(|e| ZeoError::unavailable(&format!("controller unreachable: {e}")))
                .and_then(shape);
            act.answer(msgid, result);
        }));
    }

    /// The next reader round-robin, skipping the members in `tried`.
    fn pick_reader(&mut self, tried: &[Addr<MemberActor>]) -> Option<Addr<MemberActor>> {
        for _ in 0..self.readers.len() {
            self.next_reader = (self.next_reader + 1) % self.readers.len();
            let candidate = &self.readers[self.next_reader];
            if !tried.contains(candidate) {
                return Some(candidate.clone());
            }
        }
        None
    }

    /// A read on one member; on a member failure, the same read on another
    /// reader of the current list that was not tried yet (the list may have
    /// changed meanwhile: the failed member has usually left it already).
    /// The answer comes back as a [`Relayed`] message ([`Self::on_relayed`]).
    fn read(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        request: Request,
        load: Option<u64>,
        shape: Shape,
        tried: Vec<Addr<MemberActor>>,
    ) {
        let Some(member) = self.pick_reader(&tried) else {
            if load.is_some() {
                metrics::load(LoadOutcome::Error);
            }
            self.finish_load(load);
            return self.error(
                msgid,
                ZeoError::unavailable("no member to read from: the array has failed"),
            );
        };
        let tag = self.next_read;
        self.next_read += 1;
        let answer = AnswerSlot::new(ctx.address().recipient(), tag);
        member.do_send(Relay {
            request: request.clone(),
            answer,
        });
        let read = PendingRead {
            msgid,
            request,
            load,
            shape,
            member,
            tried,
        };
        self.reads.insert(tag, read);
    }

    /// A member answered a relayed read (or failed to).
    pub(super) fn on_relayed(&mut self, ctx: &mut Context<Self>, relayed: Relayed) {
        let Some(read) = self.reads.remove(&relayed.tag) else {
            return;
        };
        let PendingRead {
            msgid,
            request,
            load,
            shape,
            member,
            mut tried,
        } = read;
        let result = relayed.result;
        if let Some(reason) = failure(&result) {
            self.report(
                &member,
                DegradeKind::Failed,
                format!("{} failed: {reason}", request.name()),
            );
        }
        if let Ok(Err(e)) = &result {
            let untried = self.readers.iter().any(|r| *r != member && !tried.contains(r));
            if e.is_member_failure() && untried {
                warn!(self.log, "read failed on a member, trying another"; "error" => %e);
                tried.push(member);
                return self.read(ctx, msgid, request, load, shape, tried);
            }
        }
        let result = member_answer(result);
        if load.is_some() {
            metrics::load(match (&result, tried.is_empty()) {
                (Err(_), _) => LoadOutcome::Error,
                (Ok(_), true) => LoadOutcome::Ok,
                (Ok(_), false) => LoadOutcome::FailedOver,
            });
        }
        let invalidated_by = self.finish_load(load);
        let result = result
            .map(|reply| fix_up_load(reply, invalidated_by, self.last_seen))
            .and_then(|r| shape(self, &member, r));
        self.answer(msgid, result);
    }

    /// The client has been told about `tid`.
    fn saw(&mut self, tid: Tid) {
        self.last_seen = self.last_seen.max(tid);
    }

    /// Tells the controller a member failed or was outvoted; it decides.
    pub(super) fn report(&self, member: &Addr<MemberActor>, kind: DegradeKind, reason: String) {
        self.controller.do_send(ctl::MemberMisbehaved {
            member: member.clone(),
            kind,
            reason,
        });
    }

    pub(super) fn finish_load(&mut self, load: Option<u64>) -> Option<Tid> {
        load.and_then(|seq| self.loads.remove(&seq))
            .and_then(|l| l.invalidated_by)
    }

    /// Iterators live on the member that started them: later calls go there.
    fn new_iterator(&mut self, member: &Addr<MemberActor>, reply: Reply) -> Result<Value, ZeoError> {
        let Reply::IteratorStart(member_iid) = reply else {
            return Err(ZeoError::unavailable(&format!(
                "unexpected iterator_start answer {reply:?}"
            )));
        };
        let member = member.clone();
        let iid = self.next_iid;
        self.next_iid += 1;
        self.iterators.insert(iid, (member, member_iid));
        Ok(Value::Int(iid))
    }

    /// An iterator call, on the member that holds the iterator.
    fn iterate(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        iid: i64,
        request: impl FnOnce(i64) -> Request,
    ) {
        let Some((member, member_iid)) = self.iterators.get(&iid).cloned() else {
            return self.error(msgid, ZeoError::KeyError(Value::Int(iid)));
        };
        let request = request(member_iid);
        let name = request.name().to_string();
        let fut = member.send(Call(request));
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            if let Some(reason) = failure(&result) {
                act.report(&member, DegradeKind::Failed, format!("{name} failed: {reason}"));
            }
            let result = match member_answer(result) {
                Ok(Reply::IteratorRecordStart(member_riid)) => {
                    let riid = act.next_iid;
                    act.next_iid += 1;
                    act.iterators.insert(riid, (member.clone(), member_riid));
                    Ok(Value::Int(riid))
                }
                Ok(reply @ (Reply::IteratorNext(None) | Reply::IteratorRecordNext(None))) => {
                    act.iterators.remove(&iid);
                    Ok(reply.to_value())
                }
                Ok(reply) => Ok(reply.to_value()),
                Err(error) => Err(error),
            };
            act.answer(msgid, result);
        }));
    }

    /// `sendBlob`: the blob streams from one member into this session, then
    /// to the client as `receiveBlobStart/Chunk/Stop`, then the reply.
    fn send_blob(&mut self, ctx: &mut Context<Self>, msgid: MsgId, oid: Oid, serial: Tid) {
        let Some(member) = self.pick_reader(&[]) else {
            return self.error(
                msgid,
                ZeoError::unavailable("no member to read from: the array has failed"),
            );
        };
        let (sink, mut chunks) = mpsc::unbounded_channel();
        let fut = member.send(SendBlob { oid, serial, sink });
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            if let Some(reason) = failure(&result) {
                act.report(&member, DegradeKind::Failed, format!("sendBlob failed: {reason}"));
            }
            match member_answer(result) {
                Ok(()) => {
                    act.callback(Callback::ReceiveBlobStart { oid, serial });
                    while let Ok(chunk) = chunks.try_recv() {
                        act.callback(Callback::ReceiveBlobChunk { oid, serial, chunk });
                    }
                    act.callback(Callback::ReceiveBlobStop { oid, serial });
                    act.reply(msgid, Value::None);
                }
                Err(error) => act.error(msgid, error),
            }
        }));
    }

    pub(super) fn on_controller(&mut self, msg: ToSession) {
        match msg {
            ToSession::Registered { msgid, result } => {
                if let Ok(tid) = &result {
                    self.saw(*tid);
                }
                self.registering = false;
                self.registered = result.is_ok();
                self.answer(msgid, result.map(|tid| Value::bytes(tid.0.to_vec())));
            }
            ToSession::Voted { msgid, result } => {
                if let Some((_, phase)) = &mut self.txn {
                    *phase = match &result {
                        // Conflicts for the client to resolve: it stores
                        // the resolutions and votes again.
                        Ok(zeo::reply::VoteResult::Conflicts(c)) if !c.is_empty() => Phase::Buffering,
                        Ok(_) => Phase::Voted,
                        Err(_) => Phase::Buffering,
                    };
                }
                self.answer(msgid, result.map(|v| Reply::Vote(v).to_value()));
            }
            ToSession::Finished { msgid, result } => {
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
            ToSession::Packed { msgid, result } => self.answer(msgid, result.map(|()| Value::None)),
            ToSession::Info(info) => {
                if self.registered {
                    self.callback(Callback::Info(info));
                }
            }
            ToSession::Aborted { msgid } => {
                self.blob_spool = None;
                self.reply(msgid, Value::None)
            }
            ToSession::Invalidate { tid, oids } => {
                self.saw(tid);
                for load in self.loads.values_mut() {
                    if load.invalidated_by.is_none() && oids.contains(&load.oid) {
                        load.invalidated_by = Some(tid);
                    }
                }
                if self.registered {
                    self.callback(Callback::InvalidateTransaction { tid, oids });
                }
            }
            ToSession::Serving {
                readers,
                serving,
                cluster_mode,
            } => {
                if serving != self.serving {
                    info!(self.log, "serving"; "now" => ?serving);
                }
                self.readers = readers;
                self.serving = serving;
                self.cluster_mode = cluster_mode;
            }
        }
    }
}

/// The member failure in a member's answer, if it is one (not an
/// application error, which is an answer).
pub(super) fn failure<T>(result: &Result<Result<T, MemberError>, MailboxError>) -> Option<String> {
    match result {
        Ok(Err(e)) if e.is_member_failure() => Some(e.to_string()),
        Err(e) => Some(format!("member actor unreachable: {e}")),
        _ => None,
    }
}

/// Whether a pickled object is in the arguments that could reach a member:
/// all of them, except an `undoInfo` dict spec, which zeoraid evaluates
/// itself (`undo_filter`).
fn forwards_an_object(name: &str, args: &Value) -> bool {
    match (name, args.as_seq()) {
        ("undoInfo", Some([first, last, Value::Dict(items)])) if !items.is_empty() => {
            contains_object(first) || contains_object(last)
        }
        _ => contains_object(args),
    }
}

fn contains_object(v: &Value) -> bool {
    match v {
        Value::Global { .. } | Value::Reduce { .. } | Value::Object { .. } => true,
        Value::Tuple(items) | Value::List(items) => items.iter().any(contains_object),
        Value::Dict(items) => items
            .iter()
            .any(|(k, v)| contains_object(k) || contains_object(v)),
        _ => false,
    }
}

/// A `loadBefore` answer as the client may see it, given the newest
/// transaction it has been told about (`last_seen`) and the first
/// invalidation of the object written to it while the load was in flight:
///
/// - answered "current" by a member that had not yet committed a
///   transaction the client has meanwhile been told about: the revision
///   ended at that transaction;
/// - ended by a transaction the client has not been told about yet (a
///   member finished it, zeoraid has not acknowledged it): "current", as a
///   ZEO server says until it sends the invalidation, which then ends the
///   cached revision.
pub(super) fn fix_up_load(reply: Reply, invalidated_by: Option<Tid>, last_seen: Tid) -> Reply {
    match (reply, invalidated_by) {
        (Reply::LoadBefore(Some(r)), Some(tid)) if r.end.is_none() && r.start < tid => {
            Reply::LoadBefore(Some(LoadBeforeResult { end: Some(tid), ..r }))
        }
        (Reply::LoadBefore(Some(r)), _) if r.end.is_some_and(|end| end > last_seen) => {
            Reply::LoadBefore(Some(LoadBeforeResult { end: None, ..r }))
        }
        (reply, _) => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> Value {
        Value::Object {
            class: Box::new(Value::Global {
                module: "ZopeUndo.Prefix".into(),
                name: "Prefix".into(),
            }),
            args: Box::new(Value::Tuple(vec![])),
            state: None,
        }
    }

    #[test]
    fn only_an_undo_info_dict_spec_may_hold_objects() {
        let spec = Value::Dict(vec![(Value::str("user_name"), prefix())]);
        let args = |spec: Value| Value::tuple([Value::Int(0), Value::Int(-20), spec]);
        assert!(!forwards_an_object("undoInfo", &args(spec.clone())));
        assert!(
            forwards_an_object("undoInfo", &args(Value::List(vec![prefix()]))),
            "not a dict spec"
        );
        assert!(forwards_an_object(
            "undoInfo",
            &Value::tuple([prefix(), Value::Int(-20), spec])
        ));
        assert!(forwards_an_object("ping", &Value::tuple([prefix()])));
        assert!(!forwards_an_object("ping", &Value::tuple([])));
    }
}
