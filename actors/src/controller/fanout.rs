//! The one way the controller asks several members the same thing: send to
//! each at once, collect every answer with the time it took, and sort the
//! answers into replies, application errors and replies over
//! `max_frame_size` (the members' verdict, for the
//! caller to judge) and failures (the member is degraded here, with the
//! reason, so no caller forgets to).

use super::{Controller, DegradeKind, MemberId};
use crate::member::{MemberActor, MemberError};
use actix::dev::ToEnvelope;
use actix::{Addr, Handler, MailboxError, Message};
use futures::future::join_all;
use slog::debug;
use std::future::Future;
use std::time::{Duration, Instant};
use zeo::exceptions::ZeoError;
use zeo::reply::Reply;
use zeo::types::Tid;

/// What a member actor answered, or why it could not.
pub(super) type MemberResult = Result<Result<Reply, MemberError>, MailboxError>;

/// A member's answer and how long it took (for the slow-member policy).
pub(super) type Timed = (MemberResult, Duration);

/// One member's sorted answer: a reply or the member's application error.
pub(super) struct Answered<T> {
    pub member: MemberId,
    /// Where the member is in `members` when its answer is sorted: valid
    /// until the handler that sorted it returns (a reload may move it).
    pub index: usize,
    pub answer: Result<T, ZeoError>,
    pub took: Duration,
}

/// Times a call from the moment it is sent.
fn timed<F: Future>(call: F) -> impl Future<Output = (F::Output, Duration)> {
    let sent = Instant::now();
    async move {
        let answer = call.await;
        (answer, sent.elapsed())
    }
}

impl Controller {
    /// A fresh `Addr` each time: `Addr::send` on a fresh sender queues the
    /// message at once (only a sender parked by an earlier send waits to be
    /// polled), so the order of the controller's sends is the order on the
    /// member's connection, which the pipelined commit relies on.
    pub(super) fn member(&self, id: MemberId) -> Option<Addr<MemberActor>> {
        let slot = self.members.iter().find(|m| m.id == id)?;
        slot.addr.clone()
    }

    /// Sends `msg` to each of `members` now (the last one takes `msg`
    /// itself, the others a clone: the vote's requests are value trees) and
    /// resolves with each member's answer, timed. A member without an
    /// actor is left out of the answers.
    pub(super) fn fan_out<M>(
        &self,
        members: &[MemberId],
        msg: M,
    ) -> impl Future<Output = Vec<(MemberId, Timed)>>
    where
        M: Message<Result = Result<Reply, MemberError>> + Clone + Send + 'static,
        MemberActor: Handler<M>,
        <MemberActor as actix::Actor>::Context: ToEnvelope<MemberActor, M>,
    {
        let reachable: Vec<(MemberId, Addr<MemberActor>)> = members
            .iter()
            .filter_map(|&id| Some((id, self.member(id)?)))
            .collect();
        let mut calls = Vec::with_capacity(reachable.len());
        let mut ids = Vec::with_capacity(reachable.len());
        if let Some(((last_id, last), others)) = reachable.split_last() {
            for (id, member) in others {
                ids.push(*id);
                calls.push(timed(member.send(msg.clone())));
            }
            ids.push(*last_id);
            calls.push(timed(last.send(msg)));
        }
        async move { ids.into_iter().zip(join_all(calls).await).collect() }
    }

    /// Sorts fanned-out answers: `expect` takes the reply it wants (and
    /// hands back any other, formatted only then: formatting every reply
    /// cost 2 % of the commit path's CPU); a member that failed, or gave a
    /// reply `expect` does not take, is degraded as failed with "`what`
    /// failed: reason" and `first_missed`, and is left out of the result.
    /// The answer of a member that a reload removed meanwhile is dropped:
    /// the caller judges as if that member had not been asked.
    pub(super) fn sort_answers<T>(
        &mut self,
        answers: Vec<(MemberId, Timed)>,
        what: &str,
        expect: impl Fn(Reply) -> Result<T, Box<Reply>>,
        first_missed: Option<Tid>,
    ) -> Vec<Answered<T>> {
        let mut sorted = Vec::with_capacity(answers.len());
        for (member, (result, took)) in answers {
            let Some(index) = self.index_of(member) else {
                debug!(self.log, "answer of a member removed meanwhile dropped"; "call" => what,
                    "member_id" => member.0);
                continue;
            };
            let failure = match result {
                Ok(Ok(reply)) => match expect(reply) {
                    Ok(value) => {
                        sorted.push(Answered {
                            member,
                            index,
                            answer: Ok(value),
                            took,
                        });
                        continue;
                    }
                    Err(reply) => format!("unexpected answer to {what}: {reply:?}"),
                },
                // An error reply, or a reply larger than max_frame_size (an
                // `undo` whose vote lists more oids than a frame holds): the
                // call's answer, for the caller to judge. `tpc_finish`
                // answers with a tid, so its caller takes an oversized one
                // for the failure it is (`Controller::committed`).
                Ok(Err(e)) => match e.as_answer() {
                    Some(error) => {
                        sorted.push(Answered {
                            member,
                            index,
                            answer: Err(error),
                            took,
                        });
                        continue;
                    }
                    None => e.to_string(),
                },
                Err(e) => format!("member actor unreachable: {e}"),
            };
            let reason = format!("{what} failed: {failure}");
            self.degrade(index, DegradeKind::Failed, reason, first_missed);
        }
        sorted
    }
}
