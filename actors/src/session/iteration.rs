//! The iteration family (`zeo/src/methods/iteration.rs`): an iterator lives
//! on the member that started it, so the session maps its client's iterator
//! ids (one counter for transaction and record iterators, as ZEO has) to
//! that member and the member's own id.

use super::answers::{failure, member_answer};
use super::reads::Shape;
use super::*;
use crate::controller::DegradeKind;
use crate::member::{Call, Oneway};
use zeo::methods::{IteratorGc, IteratorNext, IteratorRecordNext, IteratorRecordStart, Request};
use zeo::reply::Reply;

impl ClientSession {
    pub(super) fn iterator_start(&mut self, ctx: &mut Context<Self>, msgid: MsgId, request: Request) {
        const NEW_ITERATOR: Shape = ClientSession::new_iterator;
        self.read(ctx, msgid, request, None, NEW_ITERATOR, Vec::new())
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

    pub(super) fn iterator_next(&mut self, ctx: &mut Context<Self>, msgid: MsgId, iid: i64) {
        self.iterate(ctx, msgid, iid, |iid| Request::IteratorNext(IteratorNext { iid }))
    }

    pub(super) fn iterator_record_next(&mut self, ctx: &mut Context<Self>, msgid: MsgId, riid: i64) {
        self.iterate(ctx, msgid, riid, |riid| {
            Request::IteratorRecordNext(IteratorRecordNext { riid })
        })
    }

    pub(super) fn iterator_record_start(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        txn_iid: i64,
        tid: Tid,
    ) {
        self.iterate(ctx, msgid, txn_iid, move |txn_iid| {
            Request::IteratorRecordStart(IteratorRecordStart { txn_iid, tid })
        })
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

    /// `iterator_gc`: the client is done with these iterators; each
    /// member frees its own.
    pub(super) fn iterator_gc(&mut self, iids: Vec<i64>) {
        for iid in iids {
            if let Some((member, member_iid)) = self.iterators.remove(&iid) {
                member.do_send(Oneway(Request::IteratorGc(IteratorGc {
                    iids: vec![member_iid],
                })));
            }
        }
    }
}
