//! The iteration family (`zeo/src/methods/iteration.rs`): an iterator lives
//! on the member connection that started it, so the session maps its
//! client's iterator ids (one counter for transaction and record
//! iterators, as ZEO has) to that member, that connection and the member's
//! own id. A ZEO server numbers iterators per connection from 0 again, so
//! once the member reconnected, the same id may name another client's or a
//! recovery's iterator on the shared connection: calls are bound to the
//! connection ([`CallOn`], [`OnewayOn`]) and the client gets an error
//! instead.

use super::answers::{failure, member_answer};
use super::reads::Shape;
use super::*;
use crate::controller::DegradeKind;
use crate::member::{CallOn, ConnectionId, MemberError, OnewayOn};
use zeo::methods::{IteratorGc, IteratorNext, IteratorRecordNext, IteratorRecordStart, Request};
use zeo::reply::Reply;

/// Where a client's iterator lives.
#[derive(Clone)]
pub(super) struct MemberIterator {
    member: Addr<MemberActor>,
    connection: ConnectionId,
    /// The member's id for it, valid on `connection` only.
    iid: i64,
}

impl ClientSession {
    pub(super) fn iterator_start(&mut self, ctx: &mut Context<Self>, msgid: MsgId, request: Request) {
        const NEW_ITERATOR: Shape = ClientSession::new_iterator;
        self.read(ctx, msgid, request, None, NEW_ITERATOR, Vec::new())
    }

    /// Iterators live on the member connection that started them: later
    /// calls go there.
    fn new_iterator(
        &mut self,
        member: &Addr<MemberActor>,
        connection: Option<ConnectionId>,
        reply: Reply,
    ) -> Result<Value, ZeoError> {
        let (Reply::IteratorStart(iid), Some(connection)) = (&reply, connection) else {
            return Err(ZeoError::unavailable(&format!(
                "unexpected iterator_start answer {reply:?}"
            )));
        };
        let iterator = MemberIterator {
            member: member.clone(),
            connection,
            iid: *iid,
        };
        Ok(Value::Int(self.add_iterator(iterator)))
    }

    fn add_iterator(&mut self, iterator: MemberIterator) -> i64 {
        let iid = self.next_iid;
        self.next_iid += 1;
        self.iterators.insert(iid, iterator);
        iid
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

    /// An iterator call, on the member connection that holds the iterator.
    fn iterate(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        iid: i64,
        request: impl FnOnce(i64) -> Request,
    ) {
        let Some(iterator) = self.iterators.get(&iid).cloned() else {
            return self.error(msgid, ZeoError::KeyError(Value::Int(iid)));
        };
        let request = request(iterator.iid);
        let name = request.name().to_string();
        let fut = iterator.member.send(CallOn {
            connection: iterator.connection,
            request,
        });
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            if let Some(reason) = failure(&result) {
                act.report(
                    &iterator.member,
                    DegradeKind::Failed,
                    format!("{name} failed: {reason}"),
                );
            }
            if let Ok(Err(MemberError::ConnectionGone { .. })) = &result {
                act.iterators.remove(&iid);
                let reason = format!(
                    "iterator {iid} is gone: the member connection it was read from was re-established \
                     (start the iteration again)"
                );
                return act.error(msgid, ZeoError::unavailable(&reason));
            }
            let result = match member_answer(result) {
                Ok(Reply::IteratorRecordStart(member_riid)) => {
                    let record_iterator = MemberIterator {
                        iid: member_riid,
                        ..iterator
                    };
                    Ok(Value::Int(act.add_iterator(record_iterator)))
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
    /// member frees its own, if the connection they live on is still there.
    pub(super) fn iterator_gc(&mut self, iids: Vec<i64>) {
        for iid in iids {
            if let Some(iterator) = self.iterators.remove(&iid) {
                iterator.member.do_send(OnewayOn {
                    connection: iterator.connection,
                    request: Request::IteratorGc(IteratorGc {
                        iids: vec![iterator.iid],
                    }),
                });
            }
        }
    }
}
