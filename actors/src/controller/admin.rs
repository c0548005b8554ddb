//! What operators change at runtime: disable a member, reload the member
//! list and modes, drain for shutdown. Each is one controller message, so
//! it is ordered with the transaction path like everything else the
//! controller owns.

use super::*;
use crate::member::Shutdown;

/// A reload waiting for the commit lock.
pub(super) struct QueuedReload {
    pub msg: ReloadMembers,
    pub reply: oneshot::Sender<Result<ReloadOutcome, AdminError>>,
}

/// A drain in progress: answered once nothing is left, with how many
/// transactions its deadline aborted.
pub(super) struct Draining {
    reply: Option<oneshot::Sender<DrainOutcome>>,
    aborted: usize,
}

impl Draining {
    pub fn new(reply: oneshot::Sender<DrainOutcome>) -> Draining {
        Draining {
            reply: Some(reply),
            aborted: 0,
        }
    }

    /// Not answered yet.
    pub fn unanswered(&self) -> bool {
        self.reply.is_some()
    }

    /// The answer to send, once.
    pub fn take_reply(&mut self) -> Option<(oneshot::Sender<DrainOutcome>, DrainOutcome)> {
        let aborted = self.aborted;
        self.reply.take().map(|reply| (reply, DrainOutcome { aborted }))
    }
}

impl Handler<DisableMember> for Controller {
    type Result = Result<String, AdminError>;

    fn handle(&mut self, msg: DisableMember, _ctx: &mut Context<Self>) -> Self::Result {
        let i = self
            .slot_index(&msg.name)
            .ok_or_else(|| AdminError::UnknownMember(msg.name.clone()))?;
        if self.members[i].recovery.is_some() {
            // The operator wants it out: its recovery stops (after the
            // transaction in flight) and it stays degraded as disabled.
            self.recovery_ended(i, "stopped: disabled by operator".into());
            if let Some(d) = self.members[i].degraded.as_mut() {
                d.kind = DegradeKind::Disabled;
                d.reason = "disabled by operator".into();
            }
            self.save_state();
            info!(self.log, "member disabled while recovering"; "member" => &msg.name);
            return Ok(format!("{} disabled (its recovery was stopped)", msg.name));
        }
        if let Some(d) = &self.members[i].degraded {
            return Ok(format!("{} is already degraded: {}", msg.name, d.reason));
        }
        let quorum = self.cluster_mode.quorum(self.members.len());
        if self.optimal_count() <= quorum {
            return Err(AdminError::WouldFail(format!(
                "refused: disabling {} would leave {} optimal member(s), the array needs {quorum} ({} mode)",
                msg.name,
                self.optimal_count() - 1,
                self.cluster_mode
            )));
        }
        self.degrade(i, DegradeKind::Disabled, "disabled by operator".into(), None);
        Ok(format!("{} disabled", msg.name))
    }
}

impl Handler<ReloadMembers> for Controller {
    type Result = ResponseFuture<Result<ReloadOutcome, AdminError>>;

    fn handle(&mut self, msg: ReloadMembers, ctx: &mut Context<Self>) -> Self::Result {
        if self.lock.draining() {
            return Box::pin(async { Err(AdminError::ShuttingDown) });
        }
        let (reply, answer) = oneshot::channel();
        self.lock.queue_reload(QueuedReload { msg, reply });
        self.run_next(ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(AdminError::ShuttingDown)) })
    }
}

impl Handler<Drain> for Controller {
    type Result = ResponseFuture<DrainOutcome>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        info!(self.log, "draining"; "commit_lock_held" => self.lock.commit().is_some(),
            "votes_waiting" => self.lock.votes_waiting(), "within_ms" => msg.within.as_millis() as u64);
        self.stop_scrub("zeoraid is shutting down");
        for queued in self.lock.start_drain(Draining::new(reply)) {
            let _ = queued.reply.send(Err(AdminError::ShuttingDown));
        }
        ctx.run_later(msg.within, |act, ctx| act.drain_deadline(ctx));
        self.run_next(ctx);
        Box::pin(async move { answer.await.unwrap_or(DrainOutcome { aborted: 0 }) })
    }
}

impl Controller {
    /// The drain's time is up: the waiting votes are refused and the
    /// transaction holding the lock is aborted; a commit whose
    /// `tpc_finish` is out is waited for (it cannot be aborted any more,
    /// and closing the members now would leave its outcome unknown; it ends
    /// within the commit deadline, and then the drain is over).
    fn drain_deadline(&mut self, ctx: &mut Context<Self>) {
        if self.lock.commit().is_some() || self.lock.votes_waiting() > 0 {
            warn!(self.log, "shutdown deadline: aborting what has not finished";
                "commit_lock_held" => self.lock.commit().is_some(), "votes_waiting" => self.lock.votes_waiting());
            let error = ZeoError::unavailable("zeoraid is shutting down");
            for vote in self.lock.take_votes() {
                self.refuse_vote(vote.session, vote.msgid, error.clone());
                self.count_drain_abort();
            }
            if let Some(commit) = self.lock.commit() {
                let unanswered_vote = (!commit.voted).then_some((commit.session, commit.vote_msgid.clone()));
                crate::metrics::commit(crate::metrics::CommitOutcome::Aborted);
                self.count_drain_abort();
                self.abort_locked(ctx, None);
                if let Some((session, msgid)) = unanswered_vote {
                    let result = Err(error);
                    self.reply(session, ToSession::Voted { msgid, result });
                }
            }
        }
        if self.lock.finishing().is_some() {
            info!(
                self.log,
                "shutdown deadline: waiting for the commit whose tpc_finish was sent"
            );
            return;
        }
        self.finish_drain();
    }

    fn count_drain_abort(&mut self) {
        if let Some(d) = self.lock.drain_mut() {
            d.aborted += 1;
        }
    }

    /// Closes every member and answers the drain (once).
    pub(super) fn finish_drain(&mut self) {
        let Some((reply, outcome)) = self.lock.drain_mut().and_then(Draining::take_reply) else {
            return;
        };
        for i in 0..self.members.len() {
            // It finishes or aborts the transaction in flight on the
            // member; a later recovery resumes from there.
            self.stop_recovery(i, "zeoraid is shutting down");
            if let Some(addr) = &self.members[i].addr {
                addr.do_send(Shutdown {
                    reason: "zeoraid is shutting down".into(),
                });
            }
        }
        info!(self.log, "drained"; "aborted" => outcome.aborted);
        let _ = reply.send(outcome);
    }

    /// Applies a reload; runs only while no transaction holds the commit
    /// lock. Member indexes change: calls still out (`new_oids`, a finish
    /// the lock no longer waits for) carry member ids, not indexes.
    pub(super) fn apply_reload(&mut self, ctx: &mut Context<Self>, queued: QueuedReload) {
        let result = self.reload(ctx, queued.msg);
        let _ = queued.reply.send(result);
    }

    fn reload(&mut self, ctx: &mut Context<Self>, msg: ReloadMembers) -> Result<ReloadOutcome, AdminError> {
        let mut outcome = ReloadOutcome::default();
        let mut keep = Vec::new();
        for slot in &self.members {
            match msg.members.iter().find(|m| m.name == *slot.name) {
                Some(new) if new.address == slot.settings.address => keep.push(slot.name.to_string()),
                Some(_) => outcome.replaced.push(slot.name.to_string()),
                None => outcome.removed.push(slot.name.to_string()),
            }
        }
        for m in &msg.members {
            if self.slot_index(&m.name).is_none() {
                outcome.added.push(m.name.clone());
            }
        }
        // Nothing is touched unless the array still takes writes afterwards.
        let optimal_after = self
            .members
            .iter()
            .filter(|m| m.optimal() && keep.iter().any(|k| *k == *m.name))
            .count();
        let quorum = msg.cluster_mode.quorum(msg.members.len());
        if optimal_after < quorum && optimal_after < self.optimal_count() {
            return Err(AdminError::WouldFail(format!(
                "refused: after the reload {optimal_after} member(s) would be optimal, the array needs {quorum} \
                 ({} mode); removed: {:?}, replaced: {:?}",
                msg.cluster_mode, outcome.removed, outcome.replaced
            )));
        }
        if msg.cluster_mode != self.cluster_mode {
            outcome.settings_changed.push("cluster_mode".into());
        }
        if msg.fail_mode != self.fail_mode {
            outcome.settings_changed.push("fail_mode".into());
        }
        if msg.slow != self.slow_policy {
            outcome.settings_changed.push("slow_member".into());
        }
        let gone: Vec<String> = outcome.removed.iter().chain(&outcome.replaced).cloned().collect();
        for i in 0..self.members.len() {
            if !gone.iter().any(|g| *g == *self.members[i].name) {
                continue;
            }
            self.stop_recovery(i, "removed from the configuration");
            let slot = &self.members[i];
            if let Some(addr) = &slot.addr {
                addr.do_send(Shutdown {
                    reason: "removed from the configuration".into(),
                });
            }
            info!(self.log, "member removed"; "member" => &*slot.name, "was_optimal" => slot.optimal());
        }
        self.members.retain(|s| !gone.iter().any(|g| *g == *s.name));
        let me = ctx.address().recipient();
        for settings in msg.members.iter().filter(|m| !keep.contains(&m.name)) {
            let mut slot = Slot::new(self.new_member_id(), settings.clone());
            slot.settled = true;
            slot.start_actor(me.clone(), &self.log);
            self.members.push(slot);
            let i = self.members.len() - 1;
            self.degrade(i, DegradeKind::Added, "added".into(), None);
        }
        // Configuration order, so status listings follow the file.
        self.members
            .sort_by_key(|s| msg.members.iter().position(|m| m.name == *s.name));
        self.cluster_mode = msg.cluster_mode;
        self.fail_mode = msg.fail_mode;
        // Member indexes changed or the policy did: a fresh window for all.
        self.slow_policy = msg.slow;
        self.slow = SlowDetector::new(msg.slow, self.members.len());
        outcome.unchanged = keep;
        self.save_state();
        self.pushed = None;
        self.push_serving();
        info!(self.log, "configuration reloaded"; "added" => ?outcome.added, "removed" => ?outcome.removed,
            "replaced" => ?outcome.replaced, "settings_changed" => ?outcome.settings_changed,
            "status" => self.array_status());
        Ok(outcome)
    }
}
