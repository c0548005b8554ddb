//! Recovery as the controller runs it (`docs/invariants.md#recovery-prefix`): which member is
//! recovering from which source, the final step under the commit lock,
//! automatic recovery with flap damping. The copying itself is the
//! recovery actor's (`crate::recovery`); the controller owns what it means:
//! the member's state (degraded → recovering(progress) → optimal), the
//! commit lock, the oid counter, and when to start or give up.

use super::lock::RecoveryAfterPack;
use super::*;
use crate::member::ReconnectNow;
use crate::recovery::{
    CopyTail, Progress, RecoveryActor, RecoveryError, RecoveryEvent, RecoverySettings, Stop, SyncOids,
    TailCopied, Throttle,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zeo::types::Oid;

/// `[recovery]` from the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveryPolicy {
    pub throttle: Throttle,
    /// Recover a degraded member on its own once it is reachable again
    /// and stayed connected for `stable_for`.
    pub auto: bool,
    pub stable_for: Duration,
    /// Where blobs are spooled between download and upload.
    pub spool_dir: Option<PathBuf>,
    /// The longest the final step holds the commit lock at a time.
    pub final_step_slice: Duration,
    /// The hard bound on one slice of the final step, whatever hangs: past
    /// it the slice is abandoned and the recovery tried again later.
    pub final_step_timeout: Duration,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            throttle: Throttle::UNLIMITED,
            auto: false,
            stable_for: Duration::from_secs(30),
            spool_dir: None,
            final_step_slice: Duration::from_millis(50),
            final_step_timeout: Duration::from_secs(10),
        }
    }
}

/// A recovery in progress, owned by the target member's slot.
pub(super) struct Recovering {
    pub addr: Addr<RecoveryActor>,
    pub source: String,
    pub started: SystemTime,
    pub progress: Option<Progress>,
    /// How often the source failed and another one took over.
    pub source_changes: u32,
    /// The final step so far: slices copied under the commit lock, the
    /// transactions they copied, and the longest of them.
    pub final_slices: u32,
    pub final_transactions: u64,
    pub longest_slice: Duration,
    /// The target's oid counter was brought up to the array's before the
    /// final step (outside the commit lock), so that the step itself has
    /// only the oids handed out since to catch up with.
    pub oids_synced: bool,
}

/// The recovery of a member as shown in status.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RecoveryStatus {
    pub source: String,
    pub started: f64,
    pub progress: Option<Progress>,
}

/// Start recovering a degraded member now (`POST /members/NAME/recover`,
/// `zeoraid ctl recover`, `raid_recover`); one that is not connected
/// reconnects at once and recovers once it is connected; during a pack,
/// the recovery starts once the pack has ended. `full`: copy everything,
/// only allowed onto an empty member.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, AdminError>")]
pub struct RecoverMember {
    pub name: String,
    pub full: bool,
}

/// A source that fails is replaced this many times before the recovery
/// gives up (the member stays degraded; a later recovery resumes).
const MAX_SOURCE_CHANGES: u32 = 3;

/// Final steps abandoned in a row after which a member's recovery is no
/// longer retried by itself (an operator's `recover` still starts one).
const MAX_ABANDONED_FINAL_STEPS: u32 = 3;

/// An operator's request to recover a member that was not connected, kept
/// on its slot until the member's connection is ready.
#[derive(Clone, Copy, Debug)]
pub(super) struct RecoverWhenConnected {
    pub full: bool,
}

impl Handler<RecoverMember> for Controller {
    type Result = Result<String, AdminError>;

    fn handle(&mut self, msg: RecoverMember, ctx: &mut Context<Self>) -> Self::Result {
        let i = self
            .slot_index(&msg.name)
            .ok_or_else(|| AdminError::UnknownMember(msg.name.clone()))?;
        // An operator's request starts afresh after abandoned final steps.
        self.members[i].abandoned_final_steps = 0;
        if self.members[i].connected {
            self.request_recovery(ctx, i, msg.full, true)
        } else {
            self.recover_when_connected(i, msg.full)
        }
    }
}

/// A refusal to recover `name`, saying why.
fn refusal(name: &str, why: &str) -> AdminError {
    AdminError::Refused(format!("cannot recover {name}: {why}"))
}

/// What a recovery copies onto and from.
struct RecoveryPlan {
    target: Addr<MemberActor>,
    source_name: String,
    source_addr: Addr<MemberActor>,
}

/// Whether automatic recovery may bring this degraded member back: not
/// one an operator disabled, nor one that diverged (its history must be
/// looked at first).
fn auto_recovery_applies(slot: &Slot) -> bool {
    !matches!(
        slot.degraded_kind(),
        Some(DegradeKind::Disabled | DegradeKind::Diverged)
    )
}

impl Controller {
    /// Why member `i` cannot be recovered at all now, if it cannot:
    /// zeoraid is shutting down, or the member is optimal or recovering.
    fn recovery_refusal(&self, i: usize) -> Result<(), AdminError> {
        let slot = &self.members[i];
        if self.lock.draining() {
            return Err(AdminError::ShuttingDown);
        }
        if slot.optimal() {
            return Err(refusal(&slot.name, "it is optimal"));
        }
        if slot.recovery.is_some() {
            return Err(refusal(&slot.name, "it is already recovering"));
        }
        if slot.stopping_recovery.as_ref().is_some_and(Addr::connected) {
            return Err(refusal(
                &slot.name,
                "its previous recovery is still finishing the transaction it had begun on the member; \
                 try again shortly",
            ));
        }
        Ok(())
    }

    /// The member a recovery of member `i` copies from: an optimal,
    /// connected one.
    fn recovery_source(&self, i: usize) -> Result<(String, Addr<MemberActor>), AdminError> {
        self.members
            .iter()
            .filter(|m| m.optimal() && m.connected)
            .find_map(|m| Some((m.name.to_string(), m.addr.clone()?)))
            .ok_or_else(|| refusal(&self.members[i].name, "no optimal member to copy from"))
    }

    /// Member `i` is not connected: rather than refuse, it reconnects now
    /// (its backoff or park probe interval cut short) and its recovery
    /// starts once it is connected ([`Controller::recover_if_requested`]).
    /// The other refusals stand.
    fn recover_when_connected(&mut self, i: usize, full: bool) -> Result<String, AdminError> {
        self.recovery_refusal(i)?;
        let name = self.members[i].name.to_string();
        let Some(member) = self.members[i].addr.clone() else {
            return Err(refusal(&name, "its member actor is not running"));
        };
        self.recovery_source(i)?;
        member.do_send(ReconnectNow {
            reason: "an operator asked to recover it".into(),
        });
        let slot = &mut self.members[i];
        slot.recover_when_connected = Some(RecoverWhenConnected { full });
        // What `ctl recover --wait` watches: no outcome until this one's.
        slot.last_recovery = None;
        info!(self.log, "member recovery requested; reconnecting it now"; "member" => &name,
            "connection" => slot.conn_state.as_str(), "full" => full);
        Ok(format!(
            "{name} is not connected ({}): it reconnects now and its recovery starts once it is connected",
            slot.conn_state
        ))
    }

    /// Member `i`'s connection changed: if an operator asked to recover it
    /// while it was away and it is connected now, the recovery starts. The
    /// request waits while the member is still away, and lapses once the
    /// member is optimal or recovering anyway.
    pub(super) fn recover_if_requested(&mut self, ctx: &mut Context<Self>, i: usize) {
        let slot = &mut self.members[i];
        if !slot.connected {
            return;
        }
        let Some(request) = slot.recover_when_connected.take() else {
            return;
        };
        if slot.optimal() || slot.recovery.is_some() {
            return;
        }
        self.recover_as_requested(ctx, i, request.full, true);
    }

    /// Recovers member `i` as asked earlier (by an operator, or by the
    /// automatic-recovery timer): now, or after the pack running now. A
    /// request that cannot be met is logged, and an operator's says why in
    /// `last_recovery`.
    fn recover_as_requested(&mut self, ctx: &mut Context<Self>, i: usize, full: bool, by_operator: bool) {
        let Err(e) = self.request_recovery(ctx, i, full, by_operator) else {
            return;
        };
        let slot = &mut self.members[i];
        if by_operator {
            warn!(self.log, "requested recovery not started"; "member" => &*slot.name, "reason" => %e);
            slot.last_recovery = Some(format!("not started: {e}"));
        } else {
            warn!(self.log, "automatic recovery not started"; "member" => &*slot.name, "reason" => %e);
        }
    }

    /// Starts recovering member `i` now, or, while a pack holds the commit
    /// lock, once the pack has ended (the refusals that would stop it now
    /// stop it already): started during the pack, the copy would read
    /// history the pack removes, and a member the pack missed would be
    /// recovered without that pack.
    fn request_recovery(
        &mut self,
        ctx: &mut Context<Self>,
        i: usize,
        full: bool,
        by_operator: bool,
    ) -> Result<String, AdminError> {
        if !self.lock.packing() {
            return self.start_recovery(ctx, i, full, 0);
        }
        self.recovery_plan(i)?;
        let name = self.members[i].name.to_string();
        self.lock.recover_after_pack(RecoveryAfterPack {
            member: name.clone(),
            full,
            by_operator,
        });
        if by_operator {
            // What `ctl recover --wait` watches: no outcome until this one's.
            self.members[i].last_recovery = None;
        }
        info!(self.log, "member recovery waits for the pack running now"; "member" => &name,
            "full" => full, "by_operator" => by_operator);
        Ok(format!(
            "a pack is running: the recovery of {name} starts once it has finished"
        ))
    }

    /// The pack holding the commit lock has ended: the recoveries asked for
    /// meanwhile start (each one that still applies: an automatic one
    /// lapses once its member disconnected, as its timer would, or was
    /// disabled).
    pub(super) fn start_recoveries_after_pack(&mut self, ctx: &mut Context<Self>) {
        for request in self.lock.take_recoveries_after_pack() {
            let Some(i) = self.slot_index(&request.member) else {
                continue;
            };
            let slot = &self.members[i];
            let still_wanted = request.by_operator || (slot.connected && auto_recovery_applies(slot));
            if still_wanted && !slot.optimal() && slot.recovery.is_none() {
                self.recover_as_requested(ctx, i, request.full, request.by_operator);
            }
        }
    }

    /// What a recovery of member `i` would copy onto and from, or why it
    /// cannot be recovered: it must be degraded, not recovering, connected,
    /// and an optimal member must be there to copy from.
    fn recovery_plan(&self, i: usize) -> Result<RecoveryPlan, AdminError> {
        self.recovery_refusal(i)?;
        let slot = &self.members[i];
        if !slot.connected {
            return Err(refusal(
                &slot.name,
                &format!("it is not connected ({})", slot.conn_state),
            ));
        }
        let Some(target) = slot.addr.clone() else {
            return Err(refusal(&slot.name, "its member actor is not running"));
        };
        let (source_name, source_addr) = self.recovery_source(i)?;
        Ok(RecoveryPlan {
            target,
            source_name,
            source_addr,
        })
    }

    /// Starts the recovery actor for member `i` from an optimal source.
    /// Never while a pack holds the commit lock
    /// ([`Controller::request_recovery`] waits for it instead).
    fn start_recovery(
        &mut self,
        ctx: &mut Context<Self>,
        i: usize,
        full: bool,
        source_changes: u32,
    ) -> Result<String, AdminError> {
        let RecoveryPlan {
            target,
            source_name,
            source_addr,
        } = self.recovery_plan(i)?;
        let name = self.members[i].name.to_string();
        if self.lock.packing() {
            return Err(refusal(
                &name,
                "a pack is running; recover again when it has finished",
            ));
        }
        let mut settings = RecoverySettings::new(name.clone(), target, source_name.clone(), source_addr);
        settings.throttle = self.recovery_policy.throttle;
        settings.full = full;
        settings.spool_dir = self.recovery_policy.spool_dir.clone();
        // Not for a member that diverged: lenience before the pack time
        // could accept the very transaction it diverged with.
        let diverged = self.members[i].degraded_kind() == Some(DegradeKind::Diverged);
        settings.missed_pack = self.members[i].packed_while_degraded.filter(|_| !diverged);
        let actor = RecoveryActor::new(settings, ctx.address().recipient(), self.log.clone()).start();
        info!(self.log, "member recovering"; "member" => &name, "source" => &source_name, "full" => full,
            "source_changes" => source_changes);
        self.members[i].recovery = Some(Recovering {
            addr: actor,
            source: source_name.clone(),
            started: SystemTime::now(),
            progress: None,
            source_changes,
            final_slices: 0,
            final_transactions: 0,
            longest_slice: Duration::ZERO,
            oids_synced: false,
        });
        self.members[i].last_recovery = None;
        self.push_serving();
        Ok(format!("recovering '{name}' from '{source_name}'"))
    }

    /// The recovery of member `i` ended without making it optimal.
    pub(super) fn recovery_ended(&mut self, i: usize, outcome: String) {
        self.stop_recovery(i, &outcome);
        let slot = &mut self.members[i];
        warn!(self.log, "recovery ended"; "member" => &*slot.name, "outcome" => &outcome);
        slot.last_recovery = Some(outcome);
        metrics::recovery_ended(&slot.name);
        self.push_serving();
    }

    /// Ends member `i`'s recovery, if one runs: its actor stops (it
    /// finishes or aborts the transaction in flight on the member), and no
    /// final step of it is due any more.
    pub(super) fn stop_recovery(&mut self, i: usize, reason: &str) -> Option<Recovering> {
        let recovery = self.members[i].recovery.take()?;
        recovery.addr.do_send(Stop {
            reason: reason.to_string(),
        });
        self.members[i].stopping_recovery = Some(recovery.addr.clone());
        self.lock.forget_recovery(&self.members[i].name);
        Some(recovery)
    }

    /// One slice of the final step of the recovery of `name`, holding
    /// the commit lock (no transaction commits meanwhile): copy the tail
    /// up to the array's last tid for at most `final_step_slice`. Once a
    /// slice reaches that tid: bring the member's oid counter in step and
    /// mark it optimal. Otherwise some of the votes that waited go first
    /// ([`CommitLock::next_slice_after`](super::lock::CommitLock::next_slice_after)): at most half as many as the slice copied, at
    /// least one, so each round closes the gap by at least half a slice's
    /// worth whatever the number of writers, and none of them starves.
    pub(super) fn finish_recovery(&mut self, ctx: &mut Context<Self>, name: String) {
        let Some(i) = self.slot_index(&name) else { return };
        let Some((actor, first_slice)) = self.members[i]
            .recovery
            .as_ref()
            .map(|r| (r.addr.clone(), r.final_slices == 0))
        else {
            return;
        };
        self.lock.hold_recovery_slice();
        let until = self.last_tid;
        let at_least = self.max_oid;
        let budget = self.recovery_policy.final_step_slice;
        let locked = Instant::now();
        if first_slice {
            info!(self.log, "recovery final step: commits wait"; "member" => &name, "until" => until.to_hex(),
                "slice_ms" => budget.as_millis() as u64);
        }
        let this_recovery = actor.clone();
        let bound = self.recovery_policy.final_step_timeout;
        let step = async move {
            let tail = actor.send(CopyTail {
                until,
                budget: Some(budget),
            });
            let unreachable =
                |e: MailboxError| RecoveryError::Stopped(format!("recovery actor unreachable: {e}"));
            let tail = tail.await.map_err(unreachable)??;
            if !tail.complete {
                return Ok(tail);
            }
            actor.send(SyncOids { at_least }).await.map_err(unreachable)??;
            Ok(tail)
        };
        let step = tokio::time::timeout(bound, step);
        ctx.spawn(step.into_actor(self).map(move |result, act, ctx| {
            let blocked = locked.elapsed();
            act.lock.release_exclusive();
            act.longest_recovery_block = act.longest_recovery_block.max(blocked);
            metrics::recovery_final_step(blocked);
            // Still the recovery this slice was for (not ended, or ended
            // and started again meanwhile)?
            let recovering = act.slot_index(&name).filter(|&i| {
                act.members[i]
                    .recovery
                    .as_ref()
                    .is_some_and(|r| r.addr == this_recovery)
            });
            let result = match (result, recovering) {
                (Err(_elapsed), Some(i)) => {
                    act.final_step_abandoned(ctx, i, blocked);
                    return act.run_next(ctx);
                }
                (Err(_elapsed), None) => return act.run_next(ctx),
                (Ok(result), _) => result,
            };
            match (result, recovering) {
                (Ok(tail), Some(i)) => {
                    let waiting = act.lock.votes_waiting();
                    let recovery = act.members[i].recovery.as_mut().expect("checked");
                    recovery.final_slices += 1;
                    recovery.final_transactions += tail.transactions;
                    recovery.longest_slice = recovery.longest_slice.max(blocked);
                    if tail.complete {
                        act.recovered(i, &tail);
                    } else {
                        let half = usize::try_from(tail.transactions / 2).unwrap_or(usize::MAX);
                        act.lock.next_slice_after(name, waiting.min(half.max(1)));
                    }
                }
                // The source failed between or during slices: another one
                // takes over, as during the stream.
                (Err(RecoveryError::Source { reason, resume_from }), Some(i)) => {
                    act.source_failed(ctx, i, reason, resume_from)
                }
                (Err(e), Some(i)) => act.recovery_ended(i, format!("final step failed: {e}")),
                _ => {}
            }
            act.run_next(ctx);
        }));
    }

    /// Member `i`'s recovery has copied everything up to the array's
    /// last tid but what commits meanwhile: the rest is copied under the
    /// commit lock. The first time, the target's oid counter is first
    /// brought up to the array's outside the lock (oids are only handed
    /// out, never stored: harmless), so a counter far behind cannot hold
    /// the commits up in the final step.
    fn caught_up(&mut self, ctx: &mut Context<Self>, i: usize, member: String) {
        let Some(recovery) = self.members[i].recovery.as_ref() else {
            return;
        };
        if recovery.oids_synced {
            self.lock.recovery_caught_up(member);
            return self.run_next(ctx);
        }
        let this_recovery = recovery.addr.clone();
        let sync = this_recovery.send(SyncOids {
            at_least: self.max_oid,
        });
        ctx.spawn(sync.into_actor(self).map(move |synced, act, ctx| {
            let Some(i) = act.slot_index(&member) else { return };
            let Some(recovery) = act.members[i].recovery.as_mut() else {
                return;
            };
            if recovery.addr != this_recovery {
                return;
            }
            match synced {
                Ok(Ok(_)) => {
                    recovery.oids_synced = true;
                    act.lock.recovery_caught_up(member);
                    act.run_next(ctx);
                }
                Ok(Err(e)) => act.recovery_ended(i, format!("could not bring the oid counter in step: {e}")),
                Err(e) => act.recovery_ended(i, format!("recovery actor unreachable: {e}")),
            }
        }));
    }

    /// One slice of member `i`'s final step held the commit lock for
    /// `[recovery] final_step_timeout` without finishing (a hung source or
    /// target, one transaction too large for the bound): the commits must
    /// not wait for it. The recovery stops (its actor aborts what it had
    /// begun on the member, which gets no commits while degraded) and is
    /// tried again later, at most [`MAX_ABANDONED_FINAL_STEPS`] times in a
    /// row.
    fn final_step_abandoned(&mut self, ctx: &mut Context<Self>, i: usize, blocked: Duration) {
        let Some(recovery) = self.members[i].recovery.as_ref() else {
            return;
        };
        let abandoned_actor = recovery.addr.clone();
        let slot = &mut self.members[i];
        slot.abandoned_final_steps += 1;
        let attempts = slot.abandoned_final_steps;
        let retry = attempts < MAX_ABANDONED_FINAL_STEPS;
        let bound = self.recovery_policy.final_step_timeout;
        let then = if retry {
            format!(
                "tried again once the member has been connected for {:?}",
                self.recovery_policy.stable_for
            )
        } else {
            format!("{attempts} final steps in a row overran it: not retried; recover it when the writers are quieter")
        };
        let outcome = format!(
            "final step abandoned: it held the commit lock for {} ms, past [recovery] final_step_timeout \
             ({bound:?}); {then}",
            blocked.as_millis()
        );
        self.recovery_ended(i, outcome);
        if retry {
            let slot = &self.members[i];
            let since = slot.degraded.as_ref().map(|d| d.since);
            self.retry_recovery(ctx, slot.name.clone(), since, abandoned_actor);
        }
    }

    /// Starts member `name`'s recovery again after `stable_for`, once the
    /// abandoned one's actor has stopped (it may still be finishing a
    /// transaction on the member) and the member is connected, if it still
    /// needs it: not once it is optimal or recovering, nor once it was
    /// degraded anew (e.g. an operator disabled it) since `since`.
    fn retry_recovery(
        &mut self,
        ctx: &mut Context<Self>,
        name: Arc<str>,
        since: Option<SystemTime>,
        abandoned: Addr<RecoveryActor>,
    ) {
        ctx.run_later(self.recovery_policy.stable_for, move |act, ctx| {
            let Some(i) = act.slot_index(&name) else { return };
            let slot = &act.members[i];
            if slot.recovery.is_some() || slot.degraded.as_ref().map(|d| d.since) != since || since.is_none()
            {
                return;
            }
            if abandoned.connected() || !slot.connected {
                return act.retry_recovery(ctx, name, since, abandoned);
            }
            info!(act.log, "recovery tried again after an abandoned final step"; "member" => &*name);
            act.recover_as_requested(ctx, i, false, false);
        });
    }

    /// The final step of member `i`'s recovery reached the array's last
    /// tid: the member is optimal.
    fn recovered(&mut self, i: usize, tail: &TailCopied) {
        let recovery = self.stop_recovery(i, "recovered").expect("recovering");
        let slot = &mut self.members[i];
        slot.degraded = None;
        slot.abandoned_final_steps = 0;
        slot.missed = 0;
        slot.packed_while_degraded = None;
        self.save_state();
        let slot = &mut self.members[i];
        slot.last_tid = Some(tail.last_tid);
        slot.last_recovery = Some(format!(
            "recovered from {} in {:.1}s: {} transaction(s) copied; the final step copied {} in {} \
             slice(s), commits waited at most {} ms",
            recovery.source,
            recovery.started.elapsed().unwrap_or_default().as_secs_f64(),
            tail.recovery_total,
            recovery.final_transactions,
            recovery.final_slices,
            recovery.longest_slice.as_millis()
        ));
        let name = slot.name.clone();
        info!(self.log, "member recovered"; "member" => &*name, "source" => &recovery.source,
            "commits_blocked_ms" => recovery.longest_slice.as_millis() as u64,
            "final_slices" => recovery.final_slices,
            "tail_transactions" => recovery.final_transactions,
            "status" => self.array_status());
        metrics::recovery_ended(&name);
        self.slow.forget(i);
        self.push_serving();
    }

    /// Schedules an automatic recovery of member `i` once it has stayed
    /// connected for `stable_for` (flap damping: a member that disconnects
    /// meanwhile is not recovered by this timer; its next connection starts
    /// a new one).
    pub(super) fn schedule_auto_recovery(&mut self, ctx: &mut Context<Self>, i: usize) {
        let slot = &self.members[i];
        if !self.recovery_policy.auto
            || slot.optimal()
            || slot.recovery.is_some()
            || !slot.connected
            || !auto_recovery_applies(slot)
        {
            return;
        }
        let Some(since) = slot.connected_since else { return };
        let name = slot.name.clone();
        info!(self.log, "automatic recovery scheduled"; "member" => &*name,
            "stable_for_ms" => self.recovery_policy.stable_for.as_millis() as u64);
        ctx.run_later(self.recovery_policy.stable_for, move |act, ctx| {
            let Some(i) = act.slot_index(&name) else { return };
            if act.members[i].connected_since != Some(since) || !act.members[i].connected {
                return;
            }
            if act.members[i].optimal() || act.members[i].recovery.is_some() {
                return;
            }
            act.recover_as_requested(ctx, i, false, false);
        });
    }

    /// Pack is refused while a recovery copies: FileStorage's pack of the
    /// source would remove history the copy is reading.
    pub(super) fn pack_refusal(&self) -> Option<ZeoError> {
        let recovering: Vec<&str> = self
            .members
            .iter()
            .filter(|m| m.recovery.is_some())
            .map(|m| &*m.name)
            .collect();
        (!recovering.is_empty()).then(|| {
            ZeoError::unavailable(&format!(
                "pack refused: recovery of {} is running; pack again when it has finished",
                recovering.join(", ")
            ))
        })
    }

    /// The highest oid handed out so far (for the final step's oid sync).
    pub(super) fn note_oids(&mut self, oids: &[Oid]) {
        let Some(&last) = oids.iter().max().filter(|&&last| last > self.max_oid) else {
            return;
        };
        // A degraded member that still held everything no longer does (its
        // oid counter is behind): on disk before the oids are handed out.
        let could_heal = self.members.iter().any(|m| self.holds_everything(m));
        self.max_oid = last;
        if could_heal {
            self.save_state();
        }
    }

    pub(super) fn recovery_status(&self, slot: &Slot) -> Option<RecoveryStatus> {
        slot.recovery.as_ref().map(|r| RecoveryStatus {
            source: r.source.clone(),
            started: unix_seconds(r.started),
            progress: r.progress.clone(),
        })
    }
}

impl Handler<RecoveryEvent> for Controller {
    type Result = ();

    fn handle(&mut self, event: RecoveryEvent, ctx: &mut Context<Self>) {
        let Some(i) = self.slot_index(event.member()) else {
            return;
        };
        if self.members[i].recovery.is_none() {
            return;
        }
        match event {
            RecoveryEvent::Verified {
                member,
                target_last_tid,
                compared_transactions,
                full_copy,
                ..
            } => {
                info!(self.log, "recovery verified the member's history"; "member" => member,
                    "from_tid" => target_last_tid.to_hex(), "compared_transactions" => compared_transactions,
                    "full_copy" => full_copy);
            }
            RecoveryEvent::Progress { member, progress } => {
                metrics::recovery_progress(&member, &progress);
                if let Some(r) = self.members[i].recovery.as_mut() {
                    r.progress = Some(progress);
                }
            }
            RecoveryEvent::CaughtUp { member, .. } => self.caught_up(ctx, i, member),
            RecoveryEvent::Refused { reason, .. } => {
                let advice = if self.members[i].packed_while_degraded.is_some() {
                    "; the array was packed while this member was degraded (its history before the \
                     pack time was compared leniently): if it did not diverge otherwise, wipe its \
                     storage and recover it with a full copy (zeoraid ctl recover --full)"
                } else {
                    ""
                };
                self.recovery_ended(i, format!("refused: {reason}{advice}"))
            }
            RecoveryEvent::TargetFailed { reason, .. } => {
                self.recovery_ended(i, format!("stopped: the member failed: {reason}"))
            }
            RecoveryEvent::SourceFailed {
                reason, resume_from, ..
            } => self.source_failed(ctx, i, reason, resume_from),
        }
    }
}

impl Controller {
    /// The source of member `i`'s recovery failed (the recovery actor
    /// has stopped; the target is complete up to `resume_from`): another
    /// optimal member takes over, at most `MAX_SOURCE_CHANGES` times.
    fn source_failed(&mut self, ctx: &mut Context<Self>, i: usize, reason: String, resume_from: Tid) {
        let changes = self.members[i].recovery.as_ref().map_or(0, |r| r.source_changes) + 1;
        // The recovery actor has stopped by itself.
        self.members[i].recovery = None;
        self.lock.forget_recovery(&self.members[i].name);
        warn!(self.log, "recovery source failed"; "member" => &*self.members[i].name,
            "reason" => &reason, "resume_from" => resume_from.to_hex());
        let outcome = format!("stopped: the source failed: {reason}");
        if changes > MAX_SOURCE_CHANGES {
            self.members[i].last_recovery = Some(outcome);
            metrics::recovery_ended(&self.members[i].name);
            self.push_serving();
        } else if let Err(e) = self.start_recovery(ctx, i, false, changes) {
            self.members[i].last_recovery = Some(format!("{outcome}; no other source: {e}"));
            metrics::recovery_ended(&self.members[i].name);
            self.push_serving();
        }
    }
}
