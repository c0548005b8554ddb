//! The end of a transaction: `tpc_finish` on every member that voted (the
//! lock goes on to the next vote at once), its outcome judged member by
//! member; or `tpc_abort`.

use super::fanout::{Answered, Timed};
use super::lock::Commit;
use super::lock::FinishTimes;
use super::*;
use crate::member::Call;
use crate::metrics::{self, CommitOutcome};
use zeo::exceptions::ZeoError;
use zeo::message::MsgId;
use zeo::methods::{self, Request};
use zeo::reply::Reply;
use zeo::types::Oid;

impl Handler<Finish> for Controller {
    type Result = ();

    fn handle(&mut self, msg: Finish, ctx: &mut Context<Self>) {
        if self.lock.take_expired(msg.session, &msg.txn) {
            let result = Err(self.expired_error());
            let msgid = msg.msgid;
            return self.reply(msg.session, ToSession::Finished { msgid, result });
        }
        let current = self
            .lock
            .commit()
            .filter(|c| c.session == msg.session && c.client_txn == msg.txn && c.voted);
        let Some(commit) = current else {
            let problem = format!("tpc_finish for {} without a successful vote", msg.txn);
            let result = Err(ZeoError::StorageTransactionError(vec![Value::Str(problem)]));
            let msgid = msg.msgid;
            return self.reply(msg.session, ToSession::Finished { msgid, result });
        };
        if let Some(refusal) = self.leadership_refusal() {
            // Not finished anywhere: the members abort it, the client hears
            // why, and the lock goes on (to be refused the same way).
            metrics::commit(CommitOutcome::Failed);
            let msgid = msg.msgid;
            self.abort_locked(ctx, None);
            return self.reply(
                msg.session,
                ToSession::Finished {
                    msgid,
                    result: Err(refusal),
                },
            );
        }
        let finish = Request::TpcFinish(methods::TpcFinish {
            id: commit.member_txn.clone(),
        });
        if self.root_serial.is_some() && commit.oids.contains(&Oid::ZERO) {
            // The next vote may go out before this finish is answered, and
            // the members check it after this commit: it must expect the
            // root serial this commit gives.
            self.root_serial = Some(commit.tid);
        }
        // A member degraded since the vote (a session saw it fail) gets
        // no more writes: its vote is aborted instead.
        let voters = commit.participants.clone();
        let finishing: Vec<MemberId> = voters
            .iter()
            .copied()
            .filter(|&id| self.index_of(id).is_some_and(|i| self.members[i].optimal()))
            .collect();
        self.abort_on(ctx, &voters, &finishing);
        let answers = self.fan_out(&finishing, Call(finish));
        // At most one commit finishes at a time: the next one's vote is
        // judged (and so its client can ask to finish) only once this is.
        let mut commit = self.lock.finish_sent().expect("a voted commit holds the lock");
        Self::disarm_expiry(ctx, &mut commit);
        commit.participants = finishing;
        let msgid = msg.msgid;
        ctx.spawn(answers.into_actor(self).map(move |results, act, ctx| {
            act.finished(ctx, commit, msgid, results);
        }));
        self.run_next(ctx);
    }
}

impl Handler<Abort> for Controller {
    type Result = ();

    fn handle(&mut self, msg: Abort, ctx: &mut Context<Self>) {
        if self
            .lock
            .commit()
            .is_some_and(|c| c.session == msg.session && c.client_txn == msg.txn)
        {
            metrics::commit(CommitOutcome::Aborted);
            return self.abort_locked(ctx, msg.msgid);
        }
        self.lock.withdraw_vote(msg.session, &msg.txn);
        // Aborting a transaction that expired ends it: nothing to tell.
        self.lock.take_expired(msg.session, &msg.txn);
        if let Some(msgid) = msg.msgid {
            self.reply(msg.session, ToSession::Aborted { msgid });
        }
    }
}

impl Controller {
    /// Every member answered `tpc_finish` (or failed): the members that
    /// committed the chosen tid stay, the others are degraded with it as
    /// their first missed transaction; then the other sessions are told to
    /// invalidate, then the committer gets its tid; then the vote held back
    /// behind this commit is judged.
    fn finished(
        &mut self,
        ctx: &mut Context<Self>,
        commit: Commit,
        msgid: MsgId,
        results: Vec<(MemberId, Timed)>,
    ) {
        let (confirmed, finish_took) = self.confirm_finish(&commit, results);
        let held_back = self.lock.finish_answered(finish_took);
        // Whatever happened, no later transaction may reuse or undercut this tid.
        self.last_tid = self.last_tid.max(commit.tid);
        if !confirmed.is_empty() {
            self.note_missed(commit.tid, &confirmed);
            self.judge_slowness();
        }
        let result = if confirmed.is_empty() {
            metrics::commit(CommitOutcome::Failed);
            Err(ZeoError::unavailable(
                "no member confirmed tpc_finish: the array has failed",
            ))
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
            let refusal = self.leadership_refusal();
            match &self.state_failure {
                // What this commit changed (a member degraded, a first
                // missed transaction) is not on disk: a restart would not
                // know it, so the commit is not acknowledged (it is in
                // doubt, as if zeoraid had stopped before answering).
                Some(failure) => Err(ZeoError::unavailable(&format!(
                    "the transaction reached the members but is not acknowledged: {failure}"
                ))),
                // The lease ran out while the members finished: a new
                // leader may be taking over, so this is not acknowledged
                // (in doubt, as if zeoraid had stopped before answering).
                None if refusal.is_some() => Err(refusal.expect("checked")),
                None => Ok((commit.tid, self.last_info.clone())),
            }
        };
        self.reply(commit.session, ToSession::Finished { msgid, result });
        if let Some(answers) = held_back {
            self.judge_vote(ctx, answers);
        }
        self.run_next(ctx);
    }

    /// The members that committed the chosen tid (the others are
    /// degraded), and each member's time to finish: for the slow-member
    /// policy, and for the commit sent behind this one (its vote's time
    /// includes it).
    fn confirm_finish(
        &mut self,
        commit: &Commit,
        results: Vec<(MemberId, Timed)>,
    ) -> (Vec<usize>, FinishTimes) {
        let answered = self.sort_answers(results, "tpc_finish", finished_tid, Some(commit.tid));
        let mut confirmed = Vec::new();
        let mut finish_took = Vec::with_capacity(answered.len());
        for a in answered {
            finish_took.push((a.member, a.took));
            if self.committed(&a, commit.tid) {
                confirmed.push(a.index);
                let voting = commit
                    .vote_took
                    .iter()
                    .find(|(m, _)| *m == a.member)
                    .map(|(_, d)| *d);
                self.slow.record(a.index, a.took + voting.unwrap_or_default());
            }
        }
        (confirmed, finish_took)
    }

    /// Whether a member's answer to `tpc_finish` committed `tid`: then its
    /// last tid is `tid`; else it is degraded (diverged if it committed
    /// another tid, failed if the call failed) with `tid` as its first
    /// missed transaction. For client commits and the takeover's fence.
    pub(super) fn committed(&mut self, answer: &Answered<Tid>, tid: Tid) -> bool {
        let i = answer.index;
        match &answer.answer {
            Ok(t) if *t == tid => {
                self.members[i].last_tid = Some(tid);
                return true;
            }
            Ok(t) => {
                let reason = format!("tpc_finish committed tid {t}, not the chosen {tid}");
                self.degrade(i, DegradeKind::Diverged, reason, Some(tid));
            }
            Err(e) => {
                let reason = format!("tpc_finish failed: {e}");
                self.degrade(i, DegradeKind::Failed, reason, Some(tid));
            }
        }
        false
    }
}

/// The tid of a `tpc_finish` reply (for [`Controller::sort_answers`]).
pub(super) fn finished_tid(reply: Reply) -> Result<Tid, Box<Reply>> {
    match reply {
        Reply::TpcFinish(Some(t)) => Ok(t),
        other => Err(Box::new(other)),
    }
}
