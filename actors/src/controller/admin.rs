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

/// A drain in progress.
pub(super) struct Draining {
    pub reply: Option<oneshot::Sender<DrainOutcome>>,
    pub aborted: usize,
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
        if self.drain.is_some() {
            return Box::pin(async { Err(AdminError::ShuttingDown) });
        }
        let (reply, answer) = oneshot::channel();
        self.reloads.push_back(QueuedReload { msg, reply });
        self.next_vote(ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(AdminError::ShuttingDown)) })
    }
}

impl Handler<Drain> for Controller {
    type Result = ResponseFuture<DrainOutcome>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        info!(self.log, "draining"; "commit_lock_held" => self.lock.is_some(),
            "votes_waiting" => self.waiting.len(), "within_ms" => msg.within.as_millis() as u64);
        self.drain = Some(Draining {
            reply: Some(reply),
            aborted: 0,
        });
        for queued in self.reloads.drain(..) {
            let _ = queued.reply.send(Err(AdminError::ShuttingDown));
        }
        ctx.run_later(msg.within, |act, ctx| {
            if act.lock.is_some() || !act.waiting.is_empty() {
                warn!(act.log, "shutdown deadline: aborting what has not finished";
                    "commit_lock_held" => act.lock.is_some(), "votes_waiting" => act.waiting.len());
                let error = ZeoError::unavailable("zeoraid is shutting down");
                for vote in std::mem::take(&mut act.waiting) {
                    act.refuse_vote(vote.session, vote.msgid, error.clone());
                    act.count_drain_abort();
                }
                if let Some(commit) = act.lock.as_ref() {
                    let unanswered_vote =
                        (!commit.voted).then_some((commit.session, commit.vote_msgid.clone()));
                    crate::metrics::commit(crate::metrics::CommitOutcome::Aborted);
                    act.count_drain_abort();
                    act.abort_locked(ctx, None);
                    if let Some((session, msgid)) = unanswered_vote {
                        act.reply(
                            session,
                            ToSession::Voted {
                                msgid,
                                result: Err(error),
                            },
                        );
                    }
                }
            }
            if act.finishing.is_some() {
                // Its tpc_finish is out: it cannot be aborted any more, and
                // closing the members now would leave its outcome unknown.
                // It ends within the commit deadline; `finished` then
                // completes the drain.
                info!(
                    act.log,
                    "shutdown deadline: waiting for the commit whose tpc_finish was sent"
                );
                return;
            }
            act.finish_drain();
        });
        self.check_drained();
        Box::pin(async move { answer.await.unwrap_or(DrainOutcome { aborted: 0 }) })
    }
}

impl Controller {
    fn count_drain_abort(&mut self) {
        if let Some(d) = self.drain.as_mut() {
            d.aborted += 1;
        }
    }

    /// Called whenever the commit lock is free: a drain with nothing left
    /// to finish is over.
    pub(super) fn check_drained(&mut self) {
        if self.drain.is_some()
            && self.lock.is_none()
            && self.finishing.is_none()
            && self.waiting.is_empty()
            && !self.packing
            && !self.recovery_final
        {
            self.finish_drain();
        }
    }

    /// Closes every member and answers the drain (once).
    fn finish_drain(&mut self) {
        let Some(reply) = self.drain.as_mut().and_then(|d| d.reply.take()) else {
            return;
        };
        let aborted = self.drain.as_ref().map_or(0, |d| d.aborted);
        for slot in &mut self.members {
            if let Some(recovery) = slot.recovery.take() {
                // It finishes or aborts the transaction in flight on the
                // member; a later recovery resumes from there.
                recovery.addr.do_send(crate::recovery::Stop {
                    reason: "zeoraid is shutting down".into(),
                });
            }
            if let Some(addr) = &slot.addr {
                addr.do_send(Shutdown {
                    reason: "zeoraid is shutting down".into(),
                });
            }
        }
        info!(self.log, "drained"; "aborted" => aborted);
        let _ = reply.send(DrainOutcome { aborted });
    }

    /// Applies a reload; runs only while no transaction holds the commit
    /// lock (member indexes change).
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
        for slot in self.members.iter().filter(|s| gone.iter().any(|g| *g == *s.name)) {
            if let Some(recovery) = &slot.recovery {
                recovery.addr.do_send(crate::recovery::Stop {
                    reason: "removed from the configuration".into(),
                });
            }
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
            let mut slot = Slot::new(settings.clone());
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
        self.pushed = None;
        self.push_serving();
        info!(self.log, "configuration reloaded"; "added" => ?outcome.added, "removed" => ?outcome.removed,
            "replaced" => ?outcome.replaced, "settings_changed" => ?outcome.settings_changed,
            "status" => self.array_status());
        Ok(outcome)
    }
}
