//! The transaction path (design notes §5), all under the controller's
//! commit lock:
//!
//! 1. `vote`: choose the tid (strictly after the array's last tid and the
//!    finishing commit's, time-like),
//!    send `tpc_begin(tid)` + the buffered operations + `vote` to every
//!    optimal member in one mailbox hop each, in parallel.
//! 2. Compare the answers: equal application errors are the answer (the
//!    transaction is aborted everywhere); a member that failed is degraded
//!    (reason and first missed tid recorded) and the others go on.
//! 3. `tpc_finish` on every member that voted; the lock goes to the next
//!    client vote as soon as it is sent (it follows on each member
//!    connection, which a ZEO server serves in order); each returned tid
//!    is checked against the chosen one; then invalidations to every other
//!    session, then the committer's reply. The next vote is judged only
//!    after that, and a reload, pack or recovery slice waits for it.

use super::*;
use crate::member::{Call, CallAfter, MemberError};
use crate::metrics::{self, CommitOutcome};
use crate::tid::next_tid;
use crate::voting::{self, Rule, Verdict};
use futures::future::join_all;
use std::time::{Duration, Instant};
use zeo::exceptions::ZeoError;
use zeo::message::MsgId;
use zeo::methods::{self, Request, TxnId};
use zeo::reply::{Reply, VoteResult};
use zeo::types::Oid;

/// The transaction holding the commit lock.
pub(super) struct Commit {
    pub session: SessionId,
    pub client_txn: TxnId,
    pub tid: Tid,
    /// zeoraid's own transaction id on every member connection.
    pub member_txn: TxnId,
    /// Members taking part; shrinks when one fails.
    pub participants: Vec<usize>,
    /// Oids the other clients must invalidate.
    pub oids: Vec<Oid>,
    pub voted: bool,
    /// The client's `vote` call, answered when the vote is judged.
    pub vote_msgid: MsgId,
    /// Each participant's time to answer the vote, added to its
    /// `tpc_finish` time for the slow-member policy (one sample per commit).
    pub vote_took: Vec<(usize, Duration)>,
    /// Sent behind a finishing commit: each member's time to finish that
    /// one, which its vote's time includes and the slow-member policy
    /// must not count twice.
    pub behind: Option<Vec<(usize, Duration)>>,
    /// When it took the lock.
    pub since: Instant,
}

type MemberResult = Result<Result<Reply, MemberError>, MailboxError>;

/// A vote's answers that arrived while the commit before it was finishing.
pub(super) struct DeferredVote {
    member_txn: TxnId,
    msgid: MsgId,
    participants: Vec<usize>,
    results: Vec<Timed>,
}

/// A member's answer and how long it took (for the slow-member policy).
type Timed = (MemberResult, Duration);

/// Times a call from the moment it is sent.
fn timed<F: std::future::Future>(call: F) -> impl std::future::Future<Output = (F::Output, Duration)> {
    let sent = Instant::now();
    async move {
        let answer = call.await;
        (answer, sent.elapsed())
    }
}

/// Splits member answers into answers and member failures.
enum Answer<T> {
    Ok(T),
    Application(ZeoError),
    Failed(String),
}

/// `expect` hands back a reply it does not take, so that it is formatted
/// only then (formatting every reply cost 2 % of the commit path's CPU).
fn classify<T>(
    result: MemberResult,
    expect: impl FnOnce(Reply) -> Result<T, Box<Reply>>,
    what: &str,
) -> Answer<T> {
    match result {
        Ok(Ok(reply)) => match expect(reply) {
            Ok(value) => Answer::Ok(value),
            Err(reply) => Answer::Failed(format!("unexpected answer to {what}: {reply:?}")),
        },
        Ok(Err(MemberError::Application { error, .. })) => Answer::Application(error),
        Ok(Err(e)) => Answer::Failed(e.to_string()),
        Err(e) => Answer::Failed(format!("member actor unreachable: {e}")),
    }
}

impl Controller {
    /// A fresh `Addr` each time: `Addr::send` on a fresh sender queues the
    /// message at once (only a sender parked by an earlier send waits to be
    /// polled), so the order of the controller's sends is the order on the
    /// member's connection, which the pipelined commit relies on.
    fn member(&self, index: usize) -> Option<Addr<MemberActor>> {
        self.members[index].addr.clone()
    }

    fn session(&self, id: SessionId) -> Option<&SessionHandle> {
        self.sessions.get(&id)
    }

    pub(super) fn reply(&self, id: SessionId, msg: ToSession) {
        if let Some(session) = self.session(id) {
            session.do_send(msg);
        }
    }

    /// Answers a vote that never took the lock.
    pub(super) fn refuse_vote(&self, session: SessionId, msgid: MsgId, error: ZeoError) {
        metrics::commit(CommitOutcome::Failed);
        self.reply(
            session,
            ToSession::Voted {
                msgid,
                result: Err(error),
            },
        );
    }

    fn holds_lock(&self, member_txn: &TxnId) -> bool {
        self.lock.as_ref().is_some_and(|c| &c.member_txn == member_txn)
    }

    /// Hands the commit lock on: to a queued reload first, then a
    /// recovery's final step (its first slice, then each next slice once
    /// its share of the waiting votes has committed), then a pack, then
    /// the next waiting vote; with nothing left, a drain is over.
    pub(super) fn next_vote(&mut self, ctx: &mut Context<Self>) {
        while self.lock.is_none() && !self.packing && !self.recovery_final {
            if self.finishing.is_some() {
                // Only a client's vote may follow a `tpc_finish` still on
                // its way: the others need every member finished.
                if self.exclusive_work_waiting() {
                    return;
                }
            } else {
                if let Some(reload) = self.reloads.pop_front() {
                    self.apply_reload(ctx, reload);
                    continue;
                }
                if let Some(member) = self.recovery_finals.pop_front() {
                    self.finish_recovery(ctx, member);
                    continue;
                }
                if let Some(member) = self.next_final_slice() {
                    self.finish_recovery(ctx, member);
                    continue;
                }
                if let Some(pack) = self.packs.pop_front() {
                    if self.start_pack(ctx, pack) {
                        return;
                    }
                    // Refused: the queue goes on.
                    continue;
                }
            }
            // `check_drained` waits for a finishing commit by itself.
            let Some(vote) = self.waiting.pop_front() else {
                return self.check_drained();
            };
            self.vote_before_next_slices();
            self.start_vote(ctx, vote);
        }
    }

    /// A reload, recovery step or pack is waiting for the lock.
    fn exclusive_work_waiting(&self) -> bool {
        !self.reloads.is_empty()
            || !self.recovery_finals.is_empty()
            || !self.packs.is_empty()
            || self.final_slice_due().is_some()
    }

    /// The tid the next transaction must be after: the array's last, or
    /// the one finishing.
    fn tid_floor(&self) -> Tid {
        self.finishing.map_or(self.last_tid, |t| t.max(self.last_tid))
    }

    pub(super) fn start_vote(&mut self, ctx: &mut Context<Self>, vote: Vote) {
        if !self.sessions.contains_key(&vote.session) {
            return;
        }
        let floor = self.tid_floor();
        let tid = match vote.txn.tid {
            Some(asked) if asked <= floor => {
                // Not naming the floor: it may be a commit no client was
                // told about yet.
                let problem = format!(
                    "tpc_begin asked for tid {asked}, which is not after the last committed or \
                     committing tid: refused, a lower tid would commit out of order"
                );
                let error = ZeoError::StorageTransactionError(vec![Value::Str(problem)]);
                return self.refuse_vote(vote.session, vote.msgid, error);
            }
            Some(asked) => asked,
            None => next_tid(SystemTime::now(), floor),
        };
        if let Some(error) = self.write_refusal() {
            return self.refuse_vote(vote.session, vote.msgid, error);
        }
        let participants = self.writers();
        let member_txn = TxnId::from_i64(self.next_member_txn);
        self.next_member_txn += 1;
        let oneways = match vote.txn.member_requests(&member_txn, tid) {
            Ok(requests) => requests,
            Err(e) => {
                let error = ZeoError::unavailable(&format!("cannot read a spooled blob back: {e}"));
                return self.refuse_vote(vote.session, vote.msgid, error);
            }
        };
        let call = Request::Vote(methods::Vote {
            id: member_txn.clone(),
        });
        let members: Vec<_> = participants.iter().filter_map(|&i| self.member(i)).collect();
        // The last member takes the requests themselves: their clones
        // (value trees) were 3 % of a one-member commit's instructions.
        let mut calls = Vec::with_capacity(members.len());
        if let Some((last, others)) = members.split_last() {
            for m in others {
                let (oneways, call) = (oneways.clone(), call.clone());
                calls.push(timed(m.send(CallAfter { oneways, call })));
            }
            calls.push(timed(last.send(CallAfter { oneways, call })));
        }
        self.lock = Some(Commit {
            session: vote.session,
            client_txn: vote.txn.id.clone(),
            tid,
            member_txn: member_txn.clone(),
            participants: participants.clone(),
            oids: vote.txn.changed_oids(),
            voted: false,
            vote_msgid: vote.msgid.clone(),
            vote_took: Vec::new(),
            behind: self.finishing.map(|_| Vec::new()),
            since: Instant::now(),
        });
        let msgid = vote.msgid;
        ctx.spawn(join_all(calls).into_actor(self).map(move |results, act, ctx| {
            if !act.holds_lock(&member_txn) {
                return;
            }
            if act.finishing.is_some() {
                // Its members answered the commit before it first (one
                // connection each, served in order), but that commit's
                // answers may still be on their way through the actors.
                act.deferred_vote = Some(DeferredVote {
                    member_txn,
                    msgid,
                    participants,
                    results,
                });
                return;
            }
            act.voted(ctx, msgid, participants, results);
        }));
    }

    /// Decides a vote from the members' answers (design notes §4.6): a
    /// member that failed is degraded; of the answers given, the majority's
    /// is the client's (single mode: the largest group, a tie resolved for
    /// accepting; coop mode: a strict majority or nothing) and the members
    /// that answered otherwise are degraded as diverged. With no winner the
    /// transaction is aborted everywhere: a tie is never resolved by luck.
    fn voted(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        participants: Vec<usize>,
        results: Vec<Timed>,
    ) {
        let mut answers: Vec<(usize, Result<VoteResult, ZeoError>)> = Vec::new();
        let mut vote_took = Vec::new();
        let behind = self
            .lock
            .as_mut()
            .and_then(|c| c.behind.take())
            .unwrap_or_default();
        for (&i, (result, took)) in participants.iter().zip(results) {
            let finishing_before = behind.iter().find(|(m, _)| *m == i).map(|(_, d)| *d);
            let took = took.saturating_sub(finishing_before.unwrap_or_default());
            if !self.members[i].optimal() {
                // Degraded while voting (a session saw it fail a read): its
                // answer no longer counts.
                continue;
            }
            let vote = classify(
                result,
                |r| match r {
                    Reply::Vote(v) => Ok(v),
                    other => Err(Box::new(other)),
                },
                "vote",
            );
            match vote {
                Answer::Ok(v) => {
                    vote_took.push((i, took));
                    answers.push((i, Ok(v)))
                }
                Answer::Application(e) => answers.push((i, Err(e))),
                Answer::Failed(reason) => {
                    self.degrade(i, DegradeKind::Failed, format!("vote failed: {reason}"), None)
                }
            }
        }
        let session = self.lock.as_ref().map(|c| c.session).expect("lock held");
        let rule = match self.cluster_mode {
            ClusterMode::Single => Rule::Plurality,
            ClusterMode::Coop => Rule::StrictMajority,
        };
        let (answer, agreeing) = match voting::decide(answers, |a, b| a == b, rule, Result::is_ok) {
            Verdict::Winner {
                answer,
                agreeing,
                outvoted,
            } => {
                for (i, theirs) in outvoted {
                    let reason = format!("vote answered {theirs:?} where the majority answered {answer:?}");
                    self.degrade(i, DegradeKind::Diverged, reason, None);
                }
                (answer, agreeing)
            }
            Verdict::NoWinner(groups) if groups.is_empty() => {
                metrics::commit(CommitOutcome::Failed);
                let error = self
                    .write_refusal()
                    .unwrap_or_else(|| ZeoError::unavailable("no member could vote: the array has failed"));
                return self.abort_vote(ctx, session, msgid, error);
            }
            Verdict::NoWinner(groups) => {
                let answers: Vec<String> = groups
                    .iter()
                    .map(|g| format!("{} member(s): {:?}", g.len(), g[0].1))
                    .collect();
                error!(self.log, "members disagree on a vote and no majority decides: transaction aborted everywhere";
                    "answers" => ?answers, "cluster_mode" => %self.cluster_mode);
                metrics::commit(CommitOutcome::Failed);
                let error = ZeoError::unavailable(
                    "the members disagree on this transaction's vote and no majority decides; \
                     it was aborted on every member",
                );
                return self.abort_vote(ctx, session, msgid, error);
            }
        };
        let winner = match answer {
            Ok(winner) => winner,
            Err(error) => {
                if error.is_conflict() {
                    self.stats.conflicts += 1;
                    metrics::commit(CommitOutcome::Conflict);
                } else {
                    metrics::commit(CommitOutcome::Aborted);
                }
                return self.abort_vote(ctx, session, msgid, error);
            }
        };
        // Members that failed or were outvoted may have left too few for
        // the cluster mode: then nothing commits.
        if let Some(error) = self.write_refusal() {
            metrics::commit(CommitOutcome::Failed);
            return self.abort_vote(ctx, session, msgid, error);
        }
        if matches!(&winner, VoteResult::Conflicts(c) if !c.is_empty()) {
            // Members with `client-conflict-resolution` leave the conflicts
            // to the client, which resolves them, stores the results and
            // votes again in the same transaction (ZEO releases its lock
            // meanwhile). The member transactions end here and the lock is
            // released; the next vote replays the session's whole buffer,
            // resolved stores after the ones that conflicted, in a new
            // member transaction with a new tid, as a ZEO server replays
            // its transaction log.
            self.stats.conflicts += 1;
            metrics::commit(CommitOutcome::Conflict);
            self.abort_locked(ctx, None);
            return self.reply(
                session,
                ToSession::Voted {
                    msgid,
                    result: Ok(winner),
                },
            );
        }
        let finishing: Vec<usize> = agreeing.iter().map(|(i, _)| *i).collect();
        // Whoever voted but does not finish must not keep the transaction
        // (and its server's commit lock) open.
        self.abort_on(&participants, &finishing);
        let commit = self.lock.as_mut().expect("lock held");
        commit.participants = finishing;
        commit.voted = true;
        commit.vote_took = vote_took;
        if let VoteResult::Oids(undone) = &winner {
            for oid in undone {
                if !commit.oids.contains(oid) {
                    commit.oids.push(*oid);
                }
            }
        }
        self.reply(
            session,
            ToSession::Voted {
                msgid,
                result: Ok(winner),
            },
        );
    }

    /// The vote failed: the transaction is aborted on every member and the
    /// client gets `error`.
    fn abort_vote(&mut self, ctx: &mut Context<Self>, session: SessionId, msgid: MsgId, error: ZeoError) {
        self.abort_locked(ctx, None);
        self.reply(
            session,
            ToSession::Voted {
                msgid,
                result: Err(error),
            },
        );
    }

    /// Sends `tpc_abort` of the locked transaction to the members in
    /// `participants` that are not in `keep`.
    fn abort_on(&self, participants: &[usize], keep: &[usize]) {
        let Some(commit) = self.lock.as_ref() else { return };
        let abort = Request::TpcAbort(methods::TpcAbort {
            id: commit.member_txn.clone(),
        });
        for &i in participants.iter().filter(|i| !keep.contains(i)) {
            if let Some(member) = self.member(i) {
                member.do_send(Call(abort.clone()));
            }
        }
    }

    /// Aborts the locked transaction on its members and releases the lock.
    pub(super) fn abort_locked(&mut self, ctx: &mut Context<Self>, msgid: Option<MsgId>) {
        let Some(commit) = self.lock.take() else { return };
        let abort = Request::TpcAbort(methods::TpcAbort {
            id: commit.member_txn.clone(),
        });
        for &i in &commit.participants {
            if let Some(member) = self.member(i) {
                // Queued behind the vote on the member's connection, ahead
                // of the next transaction's tpc_begin.
                member.do_send(Call(abort.clone()));
            }
        }
        self.stats.aborts += 1;
        if let Some(msgid) = msgid {
            self.reply(commit.session, ToSession::Aborted { msgid });
        }
        self.next_vote(ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>, commit: Commit, msgid: MsgId, results: Vec<Timed>) {
        self.finishing = None;
        let mut confirmed = Vec::new();
        let mut finish_took = Vec::with_capacity(commit.participants.len());
        for (&i, (result, took)) in commit.participants.iter().zip(results) {
            finish_took.push((i, took));
            let finish = classify(
                result,
                |r| match r {
                    Reply::TpcFinish(Some(t)) => Ok(t),
                    other => Err(Box::new(other)),
                },
                "tpc_finish",
            );
            match finish {
                Answer::Ok(t) if t == commit.tid => {
                    confirmed.push(i);
                    let voting = commit.vote_took.iter().find(|(m, _)| *m == i).map(|(_, d)| *d);
                    self.slow.record(i, took + voting.unwrap_or_default());
                    self.members[i].last_tid = Some(t);
                }
                Answer::Ok(t) => {
                    let reason = format!("tpc_finish committed tid {t}, not the chosen {}", commit.tid);
                    self.degrade(i, DegradeKind::Diverged, reason, Some(commit.tid));
                }
                Answer::Application(e) => {
                    let reason = format!("tpc_finish failed: {e}");
                    self.degrade(i, DegradeKind::Failed, reason, Some(commit.tid))
                }
                Answer::Failed(reason) => {
                    let reason = format!("tpc_finish failed: {reason}");
                    self.degrade(i, DegradeKind::Failed, reason, Some(commit.tid))
                }
            }
        }
        if let Some(behind) = self.lock.as_mut().and_then(|next| next.behind.as_mut()) {
            *behind = finish_took;
        }
        // Whatever happened, no later transaction may reuse or undercut this tid.
        self.last_tid = self.last_tid.max(commit.tid);
        if !confirmed.is_empty() {
            self.note_missed(commit.tid, &confirmed);
            self.judge_slowness();
        }
        if confirmed.is_empty() {
            metrics::commit(CommitOutcome::Failed);
            let result = Err(ZeoError::unavailable(
                "no member confirmed tpc_finish: the array has failed",
            ));
            self.reply(commit.session, ToSession::Finished { msgid, result });
        } else {
            self.stats.commits += 1;
            metrics::committed(commit.since.elapsed());
            for (id, session) in &self.sessions {
                if *id != commit.session {
                    session.do_send(ToSession::Invalidate {
                        tid: commit.tid,
                        oids: commit.oids.clone(),
                    });
                }
            }
            let result = Ok((commit.tid, self.last_info.clone()));
            self.reply(commit.session, ToSession::Finished { msgid, result });
        }
        if let Some(deferred) = self.deferred_vote.take() {
            if self.holds_lock(&deferred.member_txn) {
                self.voted(ctx, deferred.msgid, deferred.participants, deferred.results);
            }
        }
        self.next_vote(ctx);
    }
}

impl Handler<Vote> for Controller {
    type Result = ();

    fn handle(&mut self, vote: Vote, ctx: &mut Context<Self>) {
        let problem = if self.lock.as_ref().is_some_and(|c| c.session == vote.session) {
            Some("Already voting (locked)")
        } else if self.waiting.iter().any(|v| v.session == vote.session) {
            Some("Already voting (waiting)")
        } else {
            None
        };
        if let Some(problem) = problem {
            let error = ZeoError::StorageTransactionError(vec![Value::str(problem)]);
            return self.refuse_vote(vote.session, vote.msgid, error);
        }
        if self.drain.is_some() {
            return self.refuse_vote(
                vote.session,
                vote.msgid,
                ZeoError::unavailable("zeoraid is shutting down"),
            );
        }
        self.waiting.push_back(vote);
        self.next_vote(ctx);
    }
}

impl Handler<Finish> for Controller {
    type Result = ();

    fn handle(&mut self, msg: Finish, ctx: &mut Context<Self>) {
        let current = self
            .lock
            .as_ref()
            .filter(|c| c.session == msg.session && c.client_txn == msg.txn && c.voted);
        let Some(commit) = current else {
            let problem = format!("tpc_finish for {} without a successful vote", msg.txn);
            let result = Err(ZeoError::StorageTransactionError(vec![Value::Str(problem)]));
            return self.reply(
                msg.session,
                ToSession::Finished {
                    msgid: msg.msgid,
                    result,
                },
            );
        };
        let finish = Request::TpcFinish(methods::TpcFinish {
            id: commit.member_txn.clone(),
        });
        // A member degraded since the vote (a session saw it fail) gets
        // no more writes: its vote is aborted instead.
        let voters = commit.participants.clone();
        let finishing: Vec<usize> = voters
            .iter()
            .copied()
            .filter(|&i| self.members[i].optimal())
            .collect();
        self.abort_on(&voters, &finishing);
        let calls: Vec<_> = finishing
            .iter()
            .filter_map(|&i| self.member(i))
            .map(|m| timed(m.send(Call(finish.clone()))))
            .collect();
        let mut commit = self.lock.take().expect("checked above");
        commit.participants = finishing;
        // At most one commit finishes at a time: the next one's vote is
        // judged (and so its client can ask to finish) only once this is.
        self.finishing = Some(commit.tid);
        let msgid = msg.msgid;
        ctx.spawn(join_all(calls).into_actor(self).map(move |results, act, ctx| {
            act.finished(ctx, commit, msgid, results);
        }));
        self.next_vote(ctx);
    }
}

impl Handler<Abort> for Controller {
    type Result = ();

    fn handle(&mut self, msg: Abort, ctx: &mut Context<Self>) {
        if self
            .lock
            .as_ref()
            .is_some_and(|c| c.session == msg.session && c.client_txn == msg.txn)
        {
            metrics::commit(CommitOutcome::Aborted);
            return self.abort_locked(ctx, msg.msgid);
        }
        self.waiting
            .retain(|v| !(v.session == msg.session && v.txn.id == msg.txn));
        if let Some(msgid) = msg.msgid {
            self.reply(msg.session, ToSession::Aborted { msgid });
        }
    }
}

impl Handler<NewOids> for Controller {
    type Result = ResponseActFuture<Self, Result<Vec<Oid>, ZeoError>>;

    /// Asks every optimal member, so their oid counters stay in step, and
    /// hands out the highest list: oids are never handed out twice,
    /// whichever member answered, and no member's counter lags behind one.
    fn handle(&mut self, msg: NewOids, _ctx: &mut Context<Self>) -> Self::Result {
        if let Some(error) = self.write_refusal() {
            return Box::pin(actix::fut::ready(Err(error)));
        }
        let writers: Vec<usize> = self
            .writers()
            .into_iter()
            .filter(|&i| self.members[i].connected)
            .collect();
        let request = Request::NewOids(methods::NewOids {
            n: Some(msg.n as i64),
        });
        let calls: Vec<_> = writers
            .iter()
            .filter_map(|&i| self.member(i))
            .map(|m| m.send(Call(request.clone())))
            .collect();
        Box::pin(join_all(calls).into_actor(self).map(move |results, act, _| {
            let mut best: Option<Vec<Oid>> = None;
            for (i, result) in writers.into_iter().zip(results) {
                let answer = classify(
                    result,
                    |r| match r {
                        Reply::NewOids(oids) => Ok(oids),
                        other => Err(Box::new(other)),
                    },
                    "new_oids",
                );
                match answer {
                    Answer::Ok(oids) if best.as_ref().is_none_or(|b| oids.last() > b.last()) => {
                        best = Some(oids)
                    }
                    Answer::Ok(_) => {}
                    Answer::Application(e) => return Err(e),
                    Answer::Failed(reason) => {
                        act.degrade(i, DegradeKind::Failed, format!("new_oids failed: {reason}"), None)
                    }
                }
            }
            if let Some(oids) = &best {
                act.note_oids(oids);
            }
            best.ok_or_else(|| ZeoError::unavailable("no member could allocate oids: the array has failed"))
        }))
    }
}

impl Handler<Pack> for Controller {
    type Result = ();

    fn handle(&mut self, msg: Pack, ctx: &mut Context<Self>) {
        self.packs.push_back(msg);
        self.next_vote(ctx);
    }
}

impl Controller {
    /// Every optimal member packs, with the client's time and under the
    /// commit lock: with no commit running meanwhile every member packs the
    /// same state (FileStorage's pack result depends on what commits while
    /// it runs, so members packing beside a stream of commits could come
    /// out different). Then the new size goes to every client.
    /// Whether the pack started (it holds the commit lock until done).
    fn start_pack(&mut self, ctx: &mut Context<Self>, msg: Pack) -> bool {
        if let Some(error) = self.write_refusal().or_else(|| self.pack_refusal()) {
            let result = Err(error);
            self.reply(
                msg.session,
                ToSession::Packed {
                    msgid: msg.msgid,
                    result,
                },
            );
            return false;
        }
        self.packing = true;
        // A pack time in the future (a client whose clock is ahead) packs
        // the same as now, but a member recovered later would be packed at
        // that time too, over transactions committed after this pack: so
        // the members are asked for no later than zeoraid's now.
        let pack_time = msg.t.min(unix_seconds(SystemTime::now()));
        info!(self.log, "pack started"; "pack_time" => pack_time, "asked_pack_time" => msg.t, "commits_waiting" => self.waiting.len());
        let writers = self.writers();
        let request = Request::Pack(methods::Pack {
            t: pack_time,
            wait: msg.wait,
        });
        let calls: Vec<_> = writers
            .iter()
            .filter_map(|&i| self.member(i))
            .map(|m| m.send(Call(request.clone())))
            .collect();
        let (session, msgid) = (msg.session, msg.msgid);
        ctx.spawn(join_all(calls).into_actor(self).then(move |results, act, _| {
            let mut outcome = Ok(());
            let mut packed = None;
            for (i, result) in writers.into_iter().zip(results) {
                match classify(result, Ok, "pack") {
                    Answer::Ok(_) => packed = packed.or(act.member(i)),
                    Answer::Application(e) => outcome = Err(e),
                    Answer::Failed(reason) => {
                        act.degrade(i, DegradeKind::Failed, format!("pack failed: {reason}"), None)
                    }
                }
            }
            let packed_somewhere = packed.is_some();
            let sizes = async move {
                let member = packed?;
                match member.send(Call(Request::GetInfo)).await {
                    Ok(Ok(Reply::GetInfo(info))) => Some(info),
                    _ => None,
                }
            };
            sizes.into_actor(act).map(move |info, act, ctx| {
                if let Some(info) = info {
                    let sizes: Vec<(Value, Value)> = ["length", "size"]
                        .into_iter()
                        .filter_map(|k| info.dict_get(k).map(|v| (Value::str(k), v.clone())))
                        .collect();
                    act.last_info = Value::Dict(sizes);
                    for s in act.sessions.values() {
                        s.do_send(ToSession::Info(act.last_info.clone()));
                    }
                }
                info!(act.log, "pack finished"; "ok" => outcome.is_ok());
                act.reply(
                    session,
                    ToSession::Packed {
                        msgid,
                        result: outcome,
                    },
                );
                if packed_somewhere {
                    // Every member not in step now (also one the pack
                    // itself degraded) missed it: its recovery must know.
                    for slot in act.members.iter_mut().filter(|m| !m.optimal()) {
                        slot.packed_while_degraded =
                            Some(slot.packed_while_degraded.map_or(pack_time, |t| t.max(pack_time)));
                    }
                }
                act.packing = false;
                act.next_vote(ctx);
            })
        }));
        true
    }
}

impl Controller {
    /// Degrades the member the slow-member policy finds far slower than
    /// its peers, unless that would leave the array below its quorum.
    fn judge_slowness(&mut self) {
        let Some(slow) = self.slow.verdict(&self.writers()) else {
            return;
        };
        let quorum = self.cluster_mode.quorum(self.members.len());
        if self.optimal_count() <= quorum {
            warn!(self.log, "member is slow, but the array needs it"; "member" => &*self.members[slow.member].name,
                "reason" => &slow.reason, "optimal" => self.optimal_count(), "quorum" => quorum);
            // Judged again only after a fresh window.
            self.slow.forget(slow.member);
            return;
        }
        self.degrade(slow.member, DegradeKind::Slow, slow.reason, None);
    }
}
