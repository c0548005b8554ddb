//! The commit lock: what holds it, what waits for it, and what runs next.
//!
//! Everything that changes what the members hold runs one at a time, so
//! that every member sees the same changes in the same order: a client
//! transaction from its vote until its `tpc_finish` is sent, a pack, a
//! slice of a recovery's final step. A reload changes the members' indexes,
//! so it is applied only while nothing holds the lock and no commit is
//! finishing. Once a commit's `tpc_finish` is sent it no longer holds the
//! lock: the next client vote may go out behind it (each member serves its
//! connection in order), but its answers are judged only after the
//! finishing commit's, and everything else waits until that is answered.
//!
//! This type decides; the controller does the I/O for each decision
//! ([`Next`]) and tells the lock what happened. States that must not exist
//! cannot be written down: a pack and a commit cannot hold the lock
//! together, a vote's answers can be held back only behind a finishing
//! commit, and a pack or recovery slice never holds it while a commit is
//! finishing.
//!
//! | holder          | may start next                                      |
//! |-----------------|-----------------------------------------------------|
//! | free            | reload, then recovery step, then pack, then a vote; a drain ends |
//! | free, finishing | a vote (nothing else is waiting); others wait       |
//! | commit          | nothing                                             |
//! | pack            | nothing                                             |
//! | recovery slice  | nothing                                             |
//!
//! A recovery does not start while a pack holds the lock (the pack would
//! remove history the copy reads, and a member the pack missed would be
//! recovered without its pack time): one asked for then waits here
//! ([`RecoveryAfterPack`]) and starts once the pack has released the lock.

use super::admin::{Draining, QueuedReload};
use super::fanout::Timed;
use super::{MemberId, Pack, SessionId, Takeover, Vote};
use crate::transaction::SpoolFault;
use actix::SpawnHandle;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use zeo::message::MsgId;
use zeo::methods::TxnId;
use zeo::types::{Oid, Tid};

/// The transaction holding the commit lock, and then finishing.
pub(super) struct Commit {
    pub session: SessionId,
    pub client_txn: TxnId,
    pub tid: Tid,
    /// zeoraid's own transaction id on every member connection.
    pub member_txn: TxnId,
    /// Members taking part; shrinks when one fails.
    pub participants: Vec<MemberId>,
    /// Oids the other clients must invalidate.
    pub oids: Vec<Oid>,
    /// The client read or wrote the root object in this transaction: a
    /// conflict on it is the client's, not a moved fence.
    pub touches_root: bool,
    pub voted: bool,
    /// The client's `vote` call, answered when the vote is judged.
    pub vote_msgid: MsgId,
    /// Each participant's time to answer the vote, added to its
    /// `tpc_finish` time for the slow-member policy (one sample per commit).
    pub vote_took: Vec<(MemberId, Duration)>,
    /// When it took the lock.
    pub since: Instant,
    /// The timer that aborts it if its client, having voted, does not
    /// finish within `[timeouts] transaction`; cancelled when it leaves
    /// the lock (one pending timer, not one per commit).
    pub expiry: Option<SpawnHandle>,
    /// Set when a member's replay could not read the transaction's spool
    /// back: the vote is then refused, no member blamed.
    pub spool_fault: SpoolFault,
}

/// Who holds the commit lock.
enum Holder {
    /// Nothing holds it; `finishing` is the tid of a commit whose
    /// `tpc_finish` is sent and not yet answered by every member.
    Free { finishing: Option<Tid> },
    /// A client transaction between its vote and its `tpc_finish`, and
    /// what went on ahead of it on the member connections.
    Commit { commit: Box<Commit>, ahead: Ahead },
    /// A pack on every optimal member.
    Pack,
    /// A slice of the final step of a recovery: no transaction commits
    /// while it copies the tail.
    RecoverySlice,
    /// A new cluster leader's fence commit.
    Takeover,
}

/// What went on ahead of the commit holding the lock.
enum Ahead {
    /// Nothing: it was sent while no commit was finishing.
    Nothing,
    /// Its vote went out behind this commit, still finishing; its answers
    /// are held here until that one is judged (a client is told its vote
    /// only after the commit before it).
    Finishing { tid: Tid, answers: Option<VoteAnswers> },
    /// The commit ahead has finished, in this time on each member: its
    /// vote's time includes it, which the slow-member policy must not
    /// count twice.
    Finished { times: FinishTimes },
}

/// Each member's time to answer a call.
pub(super) type FinishTimes = Vec<(MemberId, Duration)>;

/// The members' answers to a vote, as the controller judges them.
pub(super) struct VoteAnswers {
    pub member_txn: TxnId,
    pub msgid: MsgId,
    /// Each participant and its answer.
    pub results: Vec<(MemberId, Timed)>,
}

/// What the controller does next, taken off its queue.
pub(super) enum Next {
    /// Apply a reload (nothing holds the lock, nothing is finishing).
    Reload(QueuedReload),
    /// Run a slice of the final step of this member's recovery.
    RecoverySlice(String),
    /// Start a pack (it holds the lock unless it is refused).
    Pack(Pack),
    /// Start a client's vote (it holds the lock unless it is refused);
    /// boxed: the buffered transaction is much larger than the others.
    Vote(Box<Vote>),
    /// Run a new cluster leader's takeover (before anything else).
    Takeover(Takeover),
    /// Draining and nothing is left: close the members, answer the drain.
    Drained,
}

/// A recovery asked for while a pack held the lock: it starts once the
/// pack has ended.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RecoveryAfterPack {
    pub member: String,
    pub full: bool,
    /// An operator asked (the outcome is shown to them), not the
    /// automatic-recovery timer.
    pub by_operator: bool,
}

/// A recovery whose final step copied part of the tail: its next slice is
/// due once `votes_before` of the votes that waited have had their turn (or
/// none waits), so commits and the final step take turns.
struct SliceDue {
    member: String,
    votes_before: usize,
}

pub(super) struct CommitLock {
    holder: Holder,
    votes: VecDeque<Vote>,
    packs: VecDeque<Pack>,
    /// A takeover asked for (once per term, and again if it must retry).
    takeover: Option<Takeover>,
    reloads: VecDeque<QueuedReload>,
    /// Recoveries that caught up: their first final slice.
    caught_up: VecDeque<String>,
    slices: Vec<SliceDue>,
    recoveries_after_pack: Vec<RecoveryAfterPack>,
    drain: Option<Draining>,
    /// Voted transactions aborted because their client did not finish in
    /// time: its later `tpc_finish` is told why (at most one per session,
    /// forgotten once the client finishes, aborts or goes away).
    expired: Vec<(SessionId, TxnId)>,
}

impl Default for CommitLock {
    fn default() -> Self {
        CommitLock {
            holder: Holder::Free { finishing: None },
            votes: VecDeque::new(),
            packs: VecDeque::new(),
            takeover: None,
            reloads: VecDeque::new(),
            caught_up: VecDeque::new(),
            slices: Vec::new(),
            recoveries_after_pack: Vec::new(),
            drain: None,
            expired: Vec::new(),
        }
    }
}

impl CommitLock {
    /// What runs next, if anything may start now. The order: a reload,
    /// a recovery's final step (its first slice, then a slice that is due),
    /// a pack, a client's vote; with nothing left while draining, the drain
    /// ends. Behind a finishing commit only a vote may start, and only when
    /// nothing else waits (the others need every member finished).
    pub fn next(&mut self) -> Option<Next> {
        let Holder::Free { finishing } = self.holder else {
            return None;
        };
        if finishing.is_none() {
            if let Some(next) = self.next_exclusive() {
                return Some(next);
            }
        } else if self.exclusive_work_waiting() {
            return None;
        }
        if let Some(vote) = self.votes.pop_front() {
            for slice in &mut self.slices {
                slice.votes_before = slice.votes_before.saturating_sub(1);
            }
            return Some(Next::Vote(Box::new(vote)));
        }
        let drained = finishing.is_none() && self.drain.as_ref().is_some_and(Draining::unanswered);
        drained.then_some(Next::Drained)
    }

    /// Work that needs every member finished, in its order.
    fn next_exclusive(&mut self) -> Option<Next> {
        if let Some(takeover) = self.takeover.take() {
            return Some(Next::Takeover(takeover));
        }
        if let Some(reload) = self.reloads.pop_front() {
            return Some(Next::Reload(reload));
        }
        if let Some(member) = self.caught_up.pop_front() {
            return Some(Next::RecoverySlice(member));
        }
        if let Some(due) = self.due_slice() {
            let slice = self.slices.remove(due);
            return Some(Next::RecoverySlice(slice.member));
        }
        self.packs.pop_front().map(Next::Pack)
    }

    fn exclusive_work_waiting(&self) -> bool {
        self.takeover.is_some()
            || !self.reloads.is_empty()
            || !self.caught_up.is_empty()
            || !self.packs.is_empty()
            || self.due_slice().is_some()
    }

    /// The recovery slice that is due now. None while draining: the drain
    /// stops recoveries once it is over (a later one resumes), so their
    /// later slices no longer hold back the waiting votes.
    fn due_slice(&self) -> Option<usize> {
        if self.drain.is_some() {
            return None;
        }
        let votes_waiting = self.votes.len();
        self.slices
            .iter()
            .position(|s| s.votes_before == 0 || votes_waiting == 0)
    }

    // --- what waits -------------------------------------------------------

    pub fn queue_vote(&mut self, vote: Vote) {
        self.votes.push_back(vote);
    }

    pub fn queue_pack(&mut self, pack: Pack) {
        self.packs.push_back(pack);
    }

    pub fn queue_takeover(&mut self, takeover: Takeover) {
        self.takeover = Some(takeover);
    }

    pub fn queue_reload(&mut self, reload: QueuedReload) {
        self.reloads.push_back(reload);
    }

    /// A recovery caught up: the rest is copied under the lock.
    pub fn recovery_caught_up(&mut self, member: String) {
        self.caught_up.push_back(member);
    }

    /// A final slice copied part of the tail: the next one is due after
    /// `votes` of those waiting now.
    pub fn next_slice_after(&mut self, member: String, votes: usize) {
        self.slices.push(SliceDue {
            member,
            votes_before: votes,
        });
    }

    /// The member's recovery ended: no final step of it is due any more
    /// (a new recovery of the same member starts from its own stream).
    pub fn forget_recovery(&mut self, member: &str) {
        self.caught_up.retain(|m| m != member);
        self.slices.retain(|s| s.member != member);
    }

    /// A recovery asked for while a pack holds the lock waits for it. A
    /// second request for the same member joins the first: one recovery
    /// starts, a full copy if either asked for one, shown to the operator
    /// if either was theirs.
    pub fn recover_after_pack(&mut self, request: RecoveryAfterPack) {
        match self
            .recoveries_after_pack
            .iter_mut()
            .find(|r| r.member == request.member)
        {
            Some(earlier) => {
                earlier.full |= request.full;
                earlier.by_operator |= request.by_operator;
            }
            None => self.recoveries_after_pack.push(request),
        }
    }

    /// The recoveries that waited for a pack, once no pack holds the lock
    /// (nothing while one does).
    pub fn take_recoveries_after_pack(&mut self) -> Vec<RecoveryAfterPack> {
        if self.packing() {
            return Vec::new();
        }
        std::mem::take(&mut self.recoveries_after_pack)
    }

    /// The session is gone: its waiting votes and packs go too.
    pub fn forget_session(&mut self, session: SessionId) {
        self.votes.retain(|v| v.session != session);
        self.packs.retain(|p| p.session != session);
        self.expired.retain(|(s, _)| *s != session);
    }

    /// The client aborted a transaction that is still waiting.
    pub fn withdraw_vote(&mut self, session: SessionId, txn: &TxnId) {
        self.votes.retain(|v| !(v.session == session && v.txn.id == *txn));
    }

    pub fn is_waiting(&self, session: SessionId) -> bool {
        self.votes.iter().any(|v| v.session == session)
    }

    /// Every waiting vote, taken out (a drain's deadline refuses them).
    pub fn take_votes(&mut self) -> VecDeque<Vote> {
        std::mem::take(&mut self.votes)
    }

    pub fn votes_waiting(&self) -> usize {
        self.votes.len()
    }

    pub fn packs_waiting(&self) -> usize {
        self.packs.len()
    }

    pub fn reloads_waiting(&self) -> usize {
        self.reloads.len()
    }

    // --- draining -----------------------------------------------------------

    /// Shutting down: no vote is queued any more, queued reloads are
    /// handed back to be refused.
    pub fn start_drain(&mut self, drain: Draining) -> VecDeque<QueuedReload> {
        self.drain = Some(drain);
        std::mem::take(&mut self.reloads)
    }

    pub fn draining(&self) -> bool {
        self.drain.is_some()
    }

    pub fn drain_mut(&mut self) -> Option<&mut Draining> {
        self.drain.as_mut()
    }

    // --- the holder -----------------------------------------------------------

    /// A client transaction takes the lock (from [`Next::Vote`]).
    pub fn hold_commit(&mut self, commit: Commit) {
        let Holder::Free { finishing } = self.holder else {
            unreachable!("a vote starts only while the lock is free");
        };
        let ahead = match finishing {
            Some(tid) => Ahead::Finishing { tid, answers: None },
            None => Ahead::Nothing,
        };
        self.holder = Holder::Commit {
            commit: Box::new(commit),
            ahead,
        };
    }

    /// A pack takes the lock (from [`Next::Pack`]).
    pub fn hold_pack(&mut self) {
        assert!(
            matches!(self.holder, Holder::Free { finishing: None }),
            "a pack starts only once every commit finished"
        );
        self.holder = Holder::Pack;
    }

    /// A takeover takes the lock (from [`Next::Takeover`]).
    pub fn hold_takeover(&mut self) {
        assert!(
            matches!(self.holder, Holder::Free { finishing: None }),
            "a takeover starts only once every commit finished"
        );
        self.holder = Holder::Takeover;
    }

    /// A recovery slice takes the lock (from [`Next::RecoverySlice`]).
    pub fn hold_recovery_slice(&mut self) {
        assert!(
            matches!(self.holder, Holder::Free { finishing: None }),
            "a recovery slice starts only once every commit finished"
        );
        self.holder = Holder::RecoverySlice;
    }

    /// The pack or recovery slice holding the lock is done.
    pub fn release_exclusive(&mut self) {
        assert!(
            matches!(
                self.holder,
                Holder::Pack | Holder::RecoverySlice | Holder::Takeover
            ),
            "only a pack, a recovery slice or a takeover releases the lock this way"
        );
        self.holder = Holder::Free { finishing: None };
    }

    /// The transaction holding the lock ends without committing (aborted,
    /// refused, or its client went away); a commit finishing ahead of it
    /// goes on finishing.
    pub fn release_commit(&mut self) -> Option<Commit> {
        let Holder::Commit { ahead, .. } = &self.holder else {
            return None;
        };
        let finishing = match ahead {
            Ahead::Finishing { tid, .. } => Some(*tid),
            Ahead::Nothing | Ahead::Finished { .. } => None,
        };
        match std::mem::replace(&mut self.holder, Holder::Free { finishing }) {
            Holder::Commit { commit, .. } => Some(*commit),
            _ => unreachable!("matched above"),
        }
    }

    /// The voted transaction `member_txn` still holds the lock and its
    /// client has not finished it in time: it leaves the lock (to be
    /// aborted on its members) and its client's `tpc_finish` will be
    /// refused ([`CommitLock::take_expired`]). `None` when that transaction
    /// no longer holds the lock or has not been voted yet.
    pub fn expire_commit(&mut self, member_txn: &TxnId) -> Option<Commit> {
        let held = self.commit()?;
        if held.member_txn != *member_txn || !held.voted {
            return None;
        }
        let commit = self.release_commit()?;
        self.expired.retain(|(s, _)| *s != commit.session);
        self.expired.push((commit.session, commit.client_txn.clone()));
        Some(commit)
    }

    /// Whether the client's transaction `txn` expired; it is forgotten
    /// here (the client's `tpc_finish` or `tpc_abort` ends it).
    pub fn take_expired(&mut self, session: SessionId, txn: &TxnId) -> bool {
        let before = self.expired.len();
        self.expired.retain(|(s, t)| !(*s == session && t == txn));
        self.expired.len() != before
    }

    /// The holder's `tpc_finish` is sent: it finishes while the lock is
    /// free for the next vote. Only a voted commit that is not itself
    /// behind a finishing one gets here (its vote was judged after it).
    pub fn finish_sent(&mut self) -> Option<Commit> {
        let Holder::Commit { commit, ahead } = &self.holder else {
            return None;
        };
        if !commit.voted || matches!(ahead, Ahead::Finishing { .. }) {
            return None;
        }
        let Holder::Commit { commit, .. } =
            std::mem::replace(&mut self.holder, Holder::Free { finishing: None })
        else {
            unreachable!("matched above");
        };
        self.holder = Holder::Free {
            finishing: Some(commit.tid),
        };
        Some(*commit)
    }

    /// The finishing commit was answered by every member, in `times`: the
    /// vote held back behind it, if any, is to be judged now.
    pub fn finish_answered(&mut self, times: FinishTimes) -> Option<VoteAnswers> {
        match &mut self.holder {
            Holder::Free { finishing } => {
                *finishing = None;
                None
            }
            Holder::Commit { ahead, .. } => match std::mem::replace(ahead, Ahead::Nothing) {
                Ahead::Finishing { answers, .. } => {
                    *ahead = Ahead::Finished { times };
                    answers
                }
                other => {
                    *ahead = other;
                    None
                }
            },
            Holder::Pack | Holder::RecoverySlice | Holder::Takeover => None,
        }
    }

    /// How long each member took to finish the commit ahead of the one
    /// holding the lock, if its vote went out behind one (taken once, when
    /// the vote is judged).
    pub fn take_finish_times_ahead(&mut self) -> FinishTimes {
        match &mut self.holder {
            Holder::Commit { ahead, .. } => match std::mem::replace(ahead, Ahead::Nothing) {
                Ahead::Finished { times } => times,
                other => {
                    *ahead = other;
                    Vec::new()
                }
            },
            _ => Vec::new(),
        }
    }

    /// A vote's answers arrived: to be judged now, unless the transaction
    /// no longer holds the lock (dropped) or a commit ahead of it is still
    /// finishing (held back until [`CommitLock::finish_answered`]).
    pub fn vote_answered(&mut self, answers: VoteAnswers) -> Option<VoteAnswers> {
        let Holder::Commit { commit, ahead } = &mut self.holder else {
            return None;
        };
        if commit.member_txn != answers.member_txn {
            return None;
        }
        match ahead {
            Ahead::Finishing { answers: held, .. } => {
                *held = Some(answers);
                None
            }
            Ahead::Nothing | Ahead::Finished { .. } => Some(answers),
        }
    }

    /// The transaction holding the lock, if a transaction does.
    pub fn commit(&self) -> Option<&Commit> {
        match &self.holder {
            Holder::Commit { commit, .. } => Some(commit),
            _ => None,
        }
    }

    pub fn commit_mut(&mut self) -> Option<&mut Commit> {
        match &mut self.holder {
            Holder::Commit { commit, .. } => Some(commit),
            _ => None,
        }
    }

    /// The tid of the commit whose `tpc_finish` is out, if one is.
    pub fn finishing(&self) -> Option<Tid> {
        match &self.holder {
            Holder::Free { finishing } => *finishing,
            Holder::Commit {
                ahead: Ahead::Finishing { tid, .. },
                ..
            } => Some(*tid),
            Holder::Commit { .. } => None,
            Holder::Pack | Holder::RecoverySlice | Holder::Takeover => None,
        }
    }

    /// A pack holds the lock: no recovery may start.
    pub fn packing(&self) -> bool {
        matches!(self.holder, Holder::Pack)
    }

    /// The tid the next transaction must be after: the array's last, or
    /// the finishing commit's.
    pub fn tid_floor(&self, last_tid: Tid) -> Tid {
        self.finishing().map_or(last_tid, |t| t.max(last_tid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::TxnBuffer;
    use std::time::Instant;
    use tokio::sync::oneshot;
    use zeo::methods::TpcBegin;
    use zeo::Value;

    fn vote(session: u64) -> Vote {
        let begin = TpcBegin {
            id: TxnId::from_i64(session as i64),
            user: Value::None,
            description: Value::None,
            extension: Value::None,
            tid: None,
            status: " ".into(),
        };
        Vote {
            session: SessionId(session),
            msgid: MsgId(Value::Int(session as i64)),
            txn: TxnBuffer::begin(&begin),
        }
    }

    fn pack(session: u64) -> Pack {
        Pack {
            session: SessionId(session),
            msgid: MsgId(Value::Int(1)),
            t: 0.0,
            wait: Value::None,
        }
    }

    fn reload() -> QueuedReload {
        let (reply, _) = oneshot::channel();
        QueuedReload {
            msg: super::super::ReloadMembers {
                members: Vec::new(),
                cluster_mode: super::super::ClusterMode::Single,
                fail_mode: super::super::FailMode::Close,
                slow: super::super::SlowPolicy::default(),
            },
            reply,
        }
    }

    fn commit(session: u64, tid: u64, member_txn: i64) -> Commit {
        Commit {
            session: SessionId(session),
            client_txn: TxnId::from_i64(session as i64),
            tid: Tid::from_u64(tid),
            member_txn: TxnId::from_i64(member_txn),
            participants: vec![MemberId(0)],
            oids: Vec::new(),
            touches_root: false,
            voted: false,
            vote_msgid: MsgId(Value::Int(1)),
            vote_took: Vec::new(),
            since: Instant::now(),
            expiry: None,
            spool_fault: SpoolFault::default(),
        }
    }

    fn answers(member_txn: i64) -> VoteAnswers {
        VoteAnswers {
            member_txn: TxnId::from_i64(member_txn),
            msgid: MsgId(Value::Int(1)),
            results: Vec::new(),
        }
    }

    /// What `next` hands out, as a word, until it hands out nothing (a
    /// drain is answered when it ends, as the controller does).
    fn drain_order(lock: &mut CommitLock) -> Vec<String> {
        let mut order = Vec::new();
        while let Some(next) = lock.next() {
            order.push(match next {
                Next::Reload(_) => "reload".to_string(),
                Next::RecoverySlice(m) => format!("slice {m}"),
                Next::Pack(p) => format!("pack {}", p.session.0),
                Next::Takeover(_) => "takeover".to_string(),
                Next::Vote(v) => format!("vote {}", v.session.0),
                Next::Drained => {
                    lock.drain_mut()
                        .and_then(Draining::take_reply)
                        .expect("answered once");
                    "drained".to_string()
                }
            });
            assert!(order.len() < 20, "next() never stops: {order:?}");
        }
        order
    }

    /// A voted commit of `session` whose tpc_finish is out.
    fn finishing(lock: &mut CommitLock, session: u64, tid: u64) {
        lock.hold_commit(commit(session, tid, session as i64));
        lock.commit_mut().unwrap().voted = true;
        lock.finish_sent().expect("a voted commit finishes");
    }

    #[test]
    fn a_reload_goes_before_a_pack_and_a_pack_before_votes() {
        let mut lock = CommitLock::default();
        lock.queue_vote(vote(1));
        lock.queue_pack(pack(2));
        lock.queue_reload(reload());
        assert_eq!(drain_order(&mut lock), ["reload", "pack 2", "vote 1"]);
    }

    #[test]
    fn nothing_starts_while_a_commit_a_pack_or_a_slice_holds_the_lock() {
        let mut lock = CommitLock::default();
        lock.queue_vote(vote(2));
        lock.hold_commit(commit(1, 10, 1));
        assert!(lock.next().is_none());
        lock.release_commit().expect("held");
        lock.hold_pack();
        assert!(lock.next().is_none());
        lock.release_exclusive();
        lock.hold_recovery_slice();
        assert!(lock.next().is_none());
        lock.release_exclusive();
        assert_eq!(drain_order(&mut lock), ["vote 2"]);
    }

    #[test]
    fn a_pack_waits_for_a_finishing_commit_and_votes_wait_behind_the_pack() {
        let mut lock = CommitLock::default();
        finishing(&mut lock, 1, 10);
        lock.queue_pack(pack(2));
        lock.queue_vote(vote(3));
        // The vote would overtake the pack: it waits too.
        assert!(lock.next().is_none());
        assert!(lock.finish_answered(Vec::new()).is_none());
        assert!(matches!(lock.next(), Some(Next::Pack(_))));
        lock.hold_pack();
        assert!(lock.next().is_none(), "a vote waits for the pack");
        lock.release_exclusive();
        assert_eq!(drain_order(&mut lock), ["vote 3"]);
    }

    #[test]
    fn a_vote_may_follow_a_finishing_commit_and_is_judged_after_it() {
        let mut lock = CommitLock::default();
        finishing(&mut lock, 1, 10);
        lock.queue_vote(vote(2));
        assert_eq!(drain_order(&mut lock), ["vote 2"]);
        lock.hold_commit(commit(2, 11, 2));
        assert_eq!(lock.finishing(), Some(Tid::from_u64(10)));
        assert_eq!(lock.tid_floor(Tid::from_u64(5)), Tid::from_u64(10));
        // Its answers come first; they wait for the finishing commit.
        assert!(lock.vote_answered(answers(2)).is_none());
        // Answers of a transaction that no longer holds the lock are dropped.
        assert!(lock.vote_answered(answers(7)).is_none());
        let held = lock.finish_answered(Vec::new()).expect("held back until now");
        assert_eq!(held.member_txn, TxnId::from_i64(2));
        assert_eq!(lock.finishing(), None);
        // Not voted yet: it cannot finish.
        assert!(lock.vote_answered(answers(2)).is_some());
    }

    #[test]
    fn a_commit_behind_a_finishing_one_cannot_finish_before_it() {
        let mut lock = CommitLock::default();
        finishing(&mut lock, 1, 10);
        lock.hold_commit(commit(2, 11, 2));
        lock.commit_mut().unwrap().voted = true;
        assert!(lock.finish_sent().is_none());
        lock.finish_answered(vec![(MemberId(0), Duration::from_millis(3))]);
        assert_eq!(
            lock.take_finish_times_ahead(),
            [(MemberId(0), Duration::from_millis(3))]
        );
        assert!(lock.take_finish_times_ahead().is_empty(), "taken once");
        assert_eq!(lock.finish_sent().map(|c| c.tid), Some(Tid::from_u64(11)));
        assert_eq!(lock.finishing(), Some(Tid::from_u64(11)));
    }

    #[test]
    fn an_aborted_commit_behind_a_finishing_one_leaves_it_finishing() {
        let mut lock = CommitLock::default();
        finishing(&mut lock, 1, 10);
        lock.hold_commit(commit(2, 11, 2));
        lock.vote_answered(answers(2));
        assert_eq!(lock.release_commit().map(|c| c.tid), Some(Tid::from_u64(11)));
        assert_eq!(lock.finishing(), Some(Tid::from_u64(10)));
        // Its held-back answers went with it.
        assert!(lock.finish_answered(Vec::new()).is_none());
        assert_eq!(lock.finishing(), None);
    }

    #[test]
    fn a_recovery_slice_is_due_after_its_share_of_the_waiting_votes() {
        let mut lock = CommitLock::default();
        for session in 1..=4 {
            lock.queue_vote(vote(session));
        }
        lock.recovery_caught_up("zeo2".into());
        assert_eq!(
            lock.next().map(|n| matches!(n, Next::RecoverySlice(_))),
            Some(true)
        );
        // The first slice copied part of the tail: two votes go first.
        lock.next_slice_after("zeo2".into(), 2);
        let order: Vec<String> = std::iter::from_fn(|| {
            let next = lock.next()?;
            Some(match next {
                Next::Vote(v) => format!("vote {}", v.session.0),
                Next::RecoverySlice(m) => {
                    // This slice finished the tail.
                    format!("slice {m}")
                }
                _ => "other".into(),
            })
        })
        .collect();
        assert_eq!(order, ["vote 1", "vote 2", "slice zeo2", "vote 3", "vote 4"]);
    }

    #[test]
    fn a_slice_is_due_at_once_when_no_vote_waits() {
        let mut lock = CommitLock::default();
        lock.next_slice_after("zeo2".into(), 3);
        assert_eq!(drain_order(&mut lock), ["slice zeo2"]);
    }

    #[test]
    fn an_ended_recovery_has_no_slice_due() {
        let mut lock = CommitLock::default();
        lock.recovery_caught_up("zeo2".into());
        lock.next_slice_after("zeo2".into(), 0);
        lock.recovery_caught_up("zeo3".into());
        lock.forget_recovery("zeo2");
        assert_eq!(drain_order(&mut lock), ["slice zeo3"]);
    }

    #[test]
    fn a_drain_ends_when_nothing_holds_the_lock() {
        let mut lock = CommitLock::default();
        lock.queue_vote(vote(1));
        lock.next_slice_after("zeo2".into(), 0);
        let (reply, _answer) = oneshot::channel();
        let refused = lock.start_drain(Draining::new(reply));
        assert!(refused.is_empty());
        // A waiting vote still commits; recovery slices stop.
        assert!(matches!(lock.next(), Some(Next::Vote(_))));
        lock.hold_commit(commit(1, 10, 1));
        assert!(lock.next().is_none(), "not while a commit holds the lock");
        lock.commit_mut().unwrap().voted = true;
        lock.finish_sent();
        assert!(lock.next().is_none(), "not while a commit is finishing");
        lock.finish_answered(Vec::new());
        assert_eq!(drain_order(&mut lock), ["drained"]);
        assert!(lock.next().is_none(), "a drain ends once");
    }

    fn after_pack(member: &str, full: bool, by_operator: bool) -> RecoveryAfterPack {
        RecoveryAfterPack {
            member: member.into(),
            full,
            by_operator,
        }
    }

    #[test]
    fn recoveries_asked_for_during_a_pack_are_handed_out_once_it_has_ended() {
        let mut lock = CommitLock::default();
        lock.hold_pack();
        lock.recover_after_pack(after_pack("zeo2", false, false));
        lock.recover_after_pack(after_pack("zeo3", false, true));
        lock.recover_after_pack(after_pack("zeo2", true, true));
        assert!(
            lock.take_recoveries_after_pack().is_empty(),
            "not while the pack holds the lock"
        );
        lock.release_exclusive();
        assert_eq!(
            lock.take_recoveries_after_pack(),
            [after_pack("zeo2", true, true), after_pack("zeo3", false, true)]
        );
        assert!(lock.take_recoveries_after_pack().is_empty(), "handed out once");
    }

    #[test]
    fn a_session_that_goes_away_leaves_no_vote_or_pack_behind() {
        let mut lock = CommitLock::default();
        lock.queue_vote(vote(1));
        lock.queue_vote(vote(2));
        lock.queue_pack(pack(1));
        assert!(lock.is_waiting(SessionId(1)));
        lock.forget_session(SessionId(1));
        assert!(!lock.is_waiting(SessionId(1)));
        lock.withdraw_vote(SessionId(2), &TxnId::from_i64(3));
        assert!(
            lock.is_waiting(SessionId(2)),
            "another transaction of that session"
        );
        lock.withdraw_vote(SessionId(2), &TxnId::from_i64(2));
        assert_eq!(drain_order(&mut lock), Vec::<String>::new());
    }

    #[test]
    fn an_expired_commit_frees_the_lock_and_is_remembered_for_its_client() {
        let mut lock = CommitLock::default();
        lock.queue_vote(vote(2));
        lock.hold_commit(commit(1, 10, 1));
        assert!(
            lock.expire_commit(&TxnId::from_i64(1)).is_none(),
            "not before its vote was judged"
        );
        lock.commit_mut().unwrap().voted = true;
        assert!(
            lock.expire_commit(&TxnId::from_i64(9)).is_none(),
            "another transaction"
        );
        let expired = lock
            .expire_commit(&TxnId::from_i64(1))
            .expect("voted and holding the lock");
        assert_eq!(expired.tid, Tid::from_u64(10));
        assert_eq!(drain_order(&mut lock), ["vote 2"], "the next voter goes on");
        assert!(!lock.take_expired(SessionId(1), &TxnId::from_i64(2)));
        assert!(lock.take_expired(SessionId(1), &TxnId::from_i64(1)));
        assert!(!lock.take_expired(SessionId(1), &TxnId::from_i64(1)), "told once");
        lock.hold_commit(commit(3, 11, 3));
        lock.commit_mut().unwrap().voted = true;
        lock.expire_commit(&TxnId::from_i64(3));
        lock.forget_session(SessionId(3));
        assert!(
            !lock.take_expired(SessionId(3), &TxnId::from_i64(3)),
            "its session went away"
        );
    }
}
