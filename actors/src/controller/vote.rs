//! A client's vote: it waits for the commit lock, replays the transaction
//! on every optimal member and votes there, and is judged by the members'
//! majority (`docs/invariants.md#majority-vote`).

use super::fanout::Answered;
use super::lock::Commit;
use super::lock::VoteAnswers;
use super::*;
use crate::member::{CallAfter, Oneways};
use crate::metrics::{self, CommitOutcome};
use crate::recovery::has_interface;
use crate::tid;
use crate::transaction::{SpoolFault, TxnBuffer, TxnOp};
use crate::voting::{self, Rule, Verdict};
use std::time::Instant;
use zeo::exceptions::ZeoError;
use zeo::message::MsgId;
use zeo::methods::{self, Request, TxnId};
use zeo::reply::{Reply, VoteResult};

impl Handler<Vote> for Controller {
    type Result = ();

    fn handle(&mut self, vote: Vote, ctx: &mut Context<Self>) {
        let problem = if self.lock.commit().is_some_and(|c| c.session == vote.session) {
            Some("Already voting (locked)")
        } else if self.lock.is_waiting(vote.session) {
            Some("Already voting (waiting)")
        } else {
            None
        };
        if let Some(problem) = problem {
            let error = ZeoError::StorageTransactionError(vec![Value::str(problem)]);
            return self.refuse_vote(vote.session, vote.msgid, error);
        }
        if self.lock.draining() {
            return self.refuse_vote(
                vote.session,
                vote.msgid,
                ZeoError::unavailable("zeoraid is shutting down"),
            );
        }
        self.lock.queue_vote(vote);
        self.run_next(ctx);
    }
}

/// How a vote ended, once judged.
enum Judged {
    /// The members agreed on this answer: these finish.
    Agreed {
        answer: VoteResult,
        agreeing: Vec<MemberId>,
    },
    /// The transaction is aborted everywhere; the client gets this error.
    Refused(ZeoError),
}

impl Controller {
    /// The tid for a transaction: the one the client asked for (restores,
    /// copies) if it is after every committed and committing tid, else the
    /// next time-like one after them. Either is at most
    /// [`tid::LAST_USABLE`]: when no such tid is left the commit is
    /// refused rather than given a tid that repeats or wraps.
    pub(super) fn choose_tid(&self, asked: Option<Tid>) -> Result<Tid, ZeoError> {
        let floor = self.lock.tid_floor(self.last_tid);
        // Not naming the floor: it may be a commit no client was told
        // about yet.
        let problem = match asked {
            Some(asked) if asked <= floor => format!(
                "tpc_begin asked for tid {asked}, which is not after the last committed or \
                 committing tid: refused, a lower tid would commit out of order"
            ),
            Some(asked) if asked > tid::LAST_USABLE => format!(
                "tpc_begin asked for tid {asked}, above the last usable tid {}: refused, \
                 ZODB clients cannot read a transaction there",
                tid::LAST_USABLE
            ),
            Some(asked) => return Ok(asked),
            None => match tid::next_tid(SystemTime::now(), floor) {
                Some(tid) => return Ok(tid),
                None => format!(
                    "no tid is left for a new transaction: the last committed or committing \
                     tid is at or past the last usable tid {}",
                    tid::LAST_USABLE
                ),
            },
        };
        Err(ZeoError::StorageTransactionError(vec![Value::Str(problem)]))
    }

    /// Why a transaction that stores blobs cannot go to `participants`: one
    /// of them has no blob support (its `get_info` lacks `IBlobStorage`).
    /// A ZEO server closes the connection on which a blob upload fails (the
    /// upload is asynchronous), so sending it would cost the array that
    /// member, and every other one that lacks blobs too, for one client's
    /// mistake.
    fn blob_refusal(&self, txn: &TxnBuffer, participants: &[usize]) -> Option<ZeoError> {
        if !txn.ops.iter().any(|op| matches!(op, TxnOp::Blob { .. })) {
            return None;
        }
        let without: Vec<&str> = participants
            .iter()
            .map(|&i| &self.members[i])
            .filter(|m| !m.info.as_ref().is_some_and(|i| has_interface(i, "IBlobStorage")))
            .map(|m| &*m.name)
            .collect();
        (!without.is_empty()).then(|| {
            ZeoError::unsupported(&format!(
                "this transaction stores blobs, but these members have no blob support: {}",
                without.join(", ")
            ))
        })
    }

    /// Takes the commit lock for `vote` and sends its transaction to every
    /// optimal member, or refuses it.
    pub(super) fn start_vote(&mut self, ctx: &mut Context<Self>, vote: Vote) {
        if !self.sessions.contains_key(&vote.session) {
            return;
        }
        let tid = match self.choose_tid(vote.txn.tid) {
            Ok(tid) => tid,
            Err(error) => return self.refuse_vote(vote.session, vote.msgid, error),
        };
        if let Some(error) = self.write_refusal() {
            return self.refuse_vote(vote.session, vote.msgid, error);
        }
        let writers = self.writers();
        if let Some(error) = self.blob_refusal(&vote.txn, &writers) {
            return self.refuse_vote(vote.session, vote.msgid, error);
        }
        let participants = self.ids(&writers);
        let member_txn = TxnId::from_i64(self.next_member_txn);
        self.next_member_txn += 1;
        if let Err(e) = vote.txn.check_spool() {
            let error = ZeoError::unavailable(&format!("cannot read a spooled blob back: {e}"));
            return self.refuse_vote(vote.session, vote.msgid, error);
        }
        let txn = Arc::new(vote.txn);
        let spool_fault = SpoolFault::default();
        let oneways = Oneways::Replay {
            txn: txn.clone(),
            id: member_txn.clone(),
            tid,
            fence: self.root_serial,
            fault: spool_fault.clone(),
        };
        let call = Request::Vote(methods::Vote {
            id: member_txn.clone(),
        });
        let answers = self.fan_out(&participants, CallAfter { oneways, call });
        self.lock.hold_commit(Commit {
            session: vote.session,
            client_txn: txn.id.clone(),
            tid,
            member_txn: member_txn.clone(),
            participants,
            oids: txn.changed_oids(),
            touches_root: txn.touches(zeo::types::Oid::ZERO),
            voted: false,
            vote_msgid: vote.msgid.clone(),
            vote_took: Vec::new(),
            since: Instant::now(),
            expiry: None,
            spool_fault,
        });
        let msgid = vote.msgid;
        ctx.spawn(answers.into_actor(self).map(move |results, act, ctx| {
            let answers = VoteAnswers {
                member_txn,
                msgid,
                results,
            };
            // Judged now, or once the commit finishing ahead of it is.
            if let Some(answers) = act.lock.vote_answered(answers) {
                act.judge_vote(ctx, answers);
            }
        }));
    }

    /// Decides a vote from the members' answers: a member that failed is
    /// degraded; of the answers given, the majority's is the client's
    /// (single mode: the largest group, a tie resolved for accepting; coop
    /// mode: a strict majority or nothing) and the members that answered
    /// otherwise are degraded as diverged. With no winner the transaction
    /// is aborted everywhere: a tie is never resolved by luck.
    pub(super) fn judge_vote(&mut self, ctx: &mut Context<Self>, answers: VoteAnswers) {
        let VoteAnswers {
            member_txn,
            msgid,
            results,
        } = answers;
        let Some(commit) = self.lock.commit().filter(|c| c.member_txn == member_txn) else {
            return;
        };
        let session = commit.session;
        let touches_root = commit.touches_root;
        if let Some(fault) = commit.spool_fault.get() {
            // zeoraid's own disk failed: the members voted on what they
            // got (less than the transaction) and are fine.
            error!(self.log, "a vote's spool could not be read back: transaction aborted everywhere, no member is blamed";
                "error" => fault);
            metrics::commit(CommitOutcome::Failed);
            let error = ZeoError::unavailable(fault);
            return self.abort_vote(ctx, session, msgid, error);
        }
        let ahead = self.lock.take_finish_times_ahead();
        // A member degraded while voting (a session saw it fail a read):
        // its answer no longer counts.
        let results: Vec<_> = results
            .into_iter()
            .filter(|(id, _)| self.index_of(*id).is_none_or(|i| self.members[i].optimal()))
            .collect();
        let mut answered = self.sort_answers(
            results,
            "vote",
            |r| match r {
                Reply::Vote(v) => Ok(v),
                other => Err(Box::new(other)),
            },
            None,
        );
        for a in answered.iter_mut() {
            let finishing_ahead = ahead.iter().find(|(m, _)| *m == a.member).map(|(_, d)| *d);
            a.took = a.took.saturating_sub(finishing_ahead.unwrap_or_default());
        }
        let errors: Vec<&ZeoError> = answered.iter().filter_map(|a| a.answer.as_ref().err()).collect();
        if errors.len() == answered.len() && self.fence_moved(touches_root, &errors) {
            self.step_down(
                "every member refused a vote: the root object's serial (this leader's fence) \
                 moved, so another zeoraid took over"
                    .into(),
            );
        }
        let vote_took = answered
            .iter()
            .filter(|a| a.answer.is_ok())
            .map(|a| (a.member, a.took))
            .collect();
        match self.majority(answered) {
            Judged::Refused(error) => self.abort_vote(ctx, session, msgid, error),
            Judged::Agreed { answer, agreeing } => {
                self.vote_agreed(ctx, session, msgid, answer, agreeing, vote_took)
            }
        }
    }

    /// The majority's answer, with the outvoted members degraded as
    /// diverged; or the error the client gets when there is none, or when
    /// the answer is an error or leaves too few members.
    fn majority(&mut self, answered: Vec<Answered<VoteResult>>) -> Judged {
        let rule = match self.cluster_mode {
            ClusterMode::Single => Rule::Plurality,
            ClusterMode::Coop => Rule::StrictMajority,
        };
        let answers = answered
            .into_iter()
            .map(|a| ((a.index, a.member), a.answer))
            .collect();
        let (answer, agreeing) = match voting::decide(answers, |a, b| a == b, rule, Result::is_ok) {
            Verdict::Winner {
                answer,
                agreeing,
                outvoted,
            } => {
                for ((i, _), theirs) in outvoted {
                    if answer.is_err() && theirs.is_err() {
                        // Refused everywhere: nothing was written, so the
                        // member's data cannot differ. Storages word their
                        // refusals differently (RelStorage's conflicts are
                        // its own classes).
                        warn!(self.log, "a member refused a vote with another error than the majority";
                            "member" => %self.members[i].name, "theirs" => ?theirs, "majority" => ?answer);
                        continue;
                    }
                    let reason = format!("vote answered {theirs:?} where the majority answered {answer:?}");
                    self.degrade(i, outvoted_kind(&theirs), reason, None);
                }
                (answer, agreeing)
            }
            Verdict::NoWinner(groups) if groups.is_empty() => {
                metrics::commit(CommitOutcome::Failed);
                let error = self
                    .write_refusal()
                    .unwrap_or_else(|| ZeoError::unavailable("no member could vote: the array has failed"));
                return Judged::Refused(error);
            }
            Verdict::NoWinner(groups) => {
                let answers: Vec<String> = groups
                    .iter()
                    .map(|g| format!("{} member(s): {:?}", g.len(), g[0].1))
                    .collect();
                if let Some(conflict) = refused_with_a_conflict(&groups).cloned() {
                    warn!(self.log, "members refused a vote with different errors, one a conflict: the client gets the conflict";
                        "answers" => ?answers);
                    self.stats.conflicts += 1;
                    metrics::commit(CommitOutcome::Conflict);
                    return Judged::Refused(conflict);
                }
                error!(self.log, "members disagree on a vote and no majority decides: transaction aborted everywhere";
                    "answers" => ?answers, "cluster_mode" => %self.cluster_mode);
                metrics::commit(CommitOutcome::Failed);
                return Judged::Refused(ZeoError::unavailable(
                    "the members disagree on this transaction's vote and no majority decides; \
                     it was aborted on every member",
                ));
            }
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                if error.is_conflict() {
                    self.stats.conflicts += 1;
                    metrics::commit(CommitOutcome::Conflict);
                } else {
                    metrics::commit(CommitOutcome::Aborted);
                }
                return Judged::Refused(error);
            }
        };
        // Members that failed or were outvoted may have left too few for
        // the cluster mode: then nothing commits.
        if let Some(error) = self.write_refusal() {
            metrics::commit(CommitOutcome::Failed);
            return Judged::Refused(error);
        }
        let agreeing = agreeing.into_iter().map(|((_, id), _)| id).collect();
        Judged::Agreed { answer, agreeing }
    }

    /// The members agreed: the client is told, and the transaction waits
    /// for its `tpc_finish` on the members that agreed.
    fn vote_agreed(
        &mut self,
        ctx: &mut Context<Self>,
        session: SessionId,
        msgid: MsgId,
        answer: VoteResult,
        agreeing: Vec<MemberId>,
        vote_took: Vec<(MemberId, std::time::Duration)>,
    ) {
        if matches!(&answer, VoteResult::Conflicts(c) if !c.is_empty()) {
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
            let result = Ok(answer);
            return self.reply(session, ToSession::Voted { msgid, result });
        }
        // Whoever voted but does not finish must not keep the transaction
        // (and its server's commit lock) open.
        let participants = self
            .lock
            .commit()
            .map(|c| c.participants.clone())
            .unwrap_or_default();
        self.abort_on(ctx, &participants, &agreeing);
        let commit = self.lock.commit_mut().expect("lock held");
        commit.participants = agreeing;
        commit.voted = true;
        commit.vote_took = vote_took;
        if let VoteResult::Oids(undone) = &answer {
            for oid in undone {
                if !commit.oids.contains(oid) {
                    commit.oids.push(*oid);
                }
            }
        }
        let result = Ok(answer);
        self.reply(session, ToSession::Voted { msgid, result });
        self.arm_expiry(ctx);
    }

    /// The vote failed: the transaction is aborted on every member and the
    /// client gets `error`.
    fn abort_vote(&mut self, ctx: &mut Context<Self>, session: SessionId, msgid: MsgId, error: ZeoError) {
        self.abort_locked(ctx, None);
        let result = Err(error);
        self.reply(session, ToSession::Voted { msgid, result });
    }

    /// Sends `tpc_abort` of the locked transaction to the members in
    /// `participants` that are not in `keep`.
    pub(super) fn abort_on(&self, ctx: &mut Context<Self>, participants: &[MemberId], keep: &[MemberId]) {
        if let Some(commit) = self.lock.commit() {
            self.abort_txn_on(ctx, &commit.member_txn, commit.tid, participants, keep);
        }
    }

    /// Sends `tpc_abort` of member transaction `member_txn`, voted as
    /// `tid`, to the members in `participants` that are not in `keep`,
    /// each checked for what it kept (`abort_check.rs`). Every abort of a
    /// transaction sent to members goes through here.
    pub(super) fn abort_txn_on(
        &self,
        ctx: &mut Context<Self>,
        member_txn: &TxnId,
        tid: Tid,
        participants: &[MemberId],
        keep: &[MemberId],
    ) {
        let abort = Request::TpcAbort(methods::TpcAbort {
            id: member_txn.clone(),
        });
        for &id in participants.iter().filter(|id| !keep.contains(id)) {
            self.abort_and_check(ctx, id, &abort, tid);
        }
    }

    /// Aborts the locked transaction on its members and releases the lock.
    pub(super) fn abort_locked(&mut self, ctx: &mut Context<Self>, msgid: Option<MsgId>) {
        let Some(commit) = self.lock.commit() else { return };
        let participants = commit.participants.clone();
        self.abort_on(ctx, &participants, &[]);
        let mut commit = self.lock.release_commit().expect("held");
        Self::disarm_expiry(ctx, &mut commit);
        self.stats.aborts += 1;
        if let Some(msgid) = msgid {
            self.reply(commit.session, ToSession::Aborted { msgid });
        }
        self.run_next(ctx);
    }
}

/// When every member refused the vote and one of them with a ZODB
/// conflict, that conflict: nothing was written anywhere, and the client
/// retries a conflict, as it would facing that member alone. Storages
/// refuse the same conflict with their own classes (RelStorage's
/// `CacheHasNewerTidError` where FileStorage raises `ReadConflictError`),
/// which no majority could reconcile.
fn refused_with_a_conflict<K>(groups: &[Vec<(K, Result<VoteResult, ZeoError>)>]) -> Option<&ZeoError> {
    let mut errors = groups.iter().map(|g| g[0].1.as_ref().err());
    if errors.clone().any(|e| e.is_none()) {
        return None;
    }
    errors.find_map(|e| e.filter(|e| e.is_conflict()))
}

/// How a member outvoted at the vote is degraded. An answer about the data
/// (a different serial, a conflict) says its history differs: diverged,
/// for an operator to look at. A server exception (e.g. RelStorage 4.3's
/// `undo` failing inside ZEO 6.2's server with a `TypeError`) says only
/// that it could not take this transaction: failed, and recovery, which
/// verifies its history before copying, brings it back.
fn outvoted_kind(theirs: &Result<VoteResult, ZeoError>) -> DegradeKind {
    match theirs {
        Err(error) if !error.is_application_error() => DegradeKind::Failed,
        _ => DegradeKind::Diverged,
    }
}
