//! The array state as the controller writes and reads it
//! (`docs/invariants.md#durable-state`): the state written by the last run
//! decides who holds the acknowledged transactions at startup; every change
//! is written before anything relies on it; and the members that hold
//! everything come back by themselves when their connection does.

use super::*;
use crate::state::{ArrayRecord, DegradedRecord, ForcedRecord, MemberRecord, StateStore, FORMAT};

/// The array state's store and what the controller last wrote to it.
pub struct DurableState {
    pub store: Box<dyn StateStore>,
    /// What the last run wrote; `None` on the array's first start (the
    /// members' own last tids are then trusted, as without a state).
    pub record: Option<ArrayRecord>,
}

impl Controller {
    /// Applies the state the last run wrote: members it called degraded
    /// stay degraded (whatever their `register()` says), the array never
    /// serves a last tid below the one it had acknowledged, and a member
    /// that is configured but unknown to the state (added while zeoraid
    /// was stopped) holds unknown data.
    pub(super) fn restore(&mut self, record: ArrayRecord) {
        self.generation = record.generation;
        self.last_tid = record.last_tid;
        self.max_oid = record.max_oid;
        self.scrub.position = record.scrub;
        self.scrub.inconsistent = record.inconsistent.clone();
        for slot in &mut self.members {
            let Some(member) = record.members.get(&*slot.name) else {
                slot.degraded = Some(Degraded {
                    kind: DegradeKind::Added,
                    reason: "added to the configuration while zeoraid was stopped: its data is unknown"
                        .into(),
                    since: SystemTime::now(),
                    first_missed: None,
                    max_oid: record.max_oid,
                });
                continue;
            };
            slot.packed_while_degraded = member.packed_while_degraded;
            slot.degraded = member.degraded.as_ref().map(|d| Degraded {
                kind: d.kind,
                reason: d.reason.clone(),
                since: std::time::Duration::try_from_secs_f64(d.since)
                    .ok()
                    .and_then(|since| SystemTime::UNIX_EPOCH.checked_add(since))
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                first_missed: d.first_missed_tid,
                max_oid: d.max_oid,
            });
        }
        info!(self.log, "array state restored"; "location" => self.durable.store.location(),
            "generation" => record.generation, "last_tid" => record.last_tid.to_hex(),
            "forced" => record.forced.len(),
            "degraded" => ?self.members.iter().filter(|m| !m.optimal()).map(|m| &*m.name).collect::<Vec<_>>());
    }

    fn record(&self) -> ArrayRecord {
        let members = self
            .members
            .iter()
            .map(|slot| {
                let degraded = slot.degraded.as_ref().map(|d| DegradedRecord {
                    kind: d.kind,
                    reason: d.reason.clone(),
                    since: unix_seconds(d.since),
                    first_missed_tid: d.first_missed,
                    max_oid: d.max_oid,
                });
                let member = MemberRecord {
                    degraded,
                    packed_while_degraded: slot.packed_while_degraded,
                };
                (slot.name.to_string(), member)
            })
            .collect();
        ArrayRecord {
            format: FORMAT,
            generation: self.generation,
            last_tid: self.last_tid,
            max_oid: self.max_oid,
            members,
            // The operators' forces are history: each write carries them on.
            forced: self
                .durable
                .record
                .as_ref()
                .map_or_else(Vec::new, |r| r.forced.clone()),
            scrub: self.scrub.position,
            inconsistent: self.scrub.inconsistent.clone(),
        }
    }

    /// Writes the array state now, before anything relies on the change.
    /// A state that cannot be written fails the array (writes are refused
    /// with the reason): a restart would not know what this run decided.
    pub(super) fn save_state(&mut self) {
        self.write_state(None);
    }

    /// [`Controller::save_state`], adding an operator's force to the
    /// history the state keeps.
    pub(super) fn write_state(&mut self, forced: Option<ForcedRecord>) {
        if !self.started && self.durable.record.is_none() {
            // A first start writes once it knows who is optimal.
            return;
        }
        self.generation += 1;
        let mut record = self.record();
        record.forced.extend(forced);
        match self.durable.store.save(&record) {
            Ok(()) => self.durable.record = Some(record),
            Err(e) => {
                if self.state_failure.is_none() {
                    error!(self.log, "array state not written: the array takes no more writes";
                        "error" => %e, "generation" => self.generation);
                }
                self.state_failure = Some(format!("the array state cannot be written: {e}"));
                self.push_serving();
                // A cluster's next leader starts from what etcd holds: this
                // one steps down rather than serve what it cannot record.
                self.step_down(format!("the array state cannot be written: {e}"));
            }
        }
    }

    /// A degraded member that holds every acknowledged transaction: it
    /// only stopped answering (or was slow), no transaction was
    /// acknowledged since, no oid handed out and no pack made without it.
    pub(super) fn holds_everything(&self, slot: &Slot) -> bool {
        slot.packed_while_degraded.is_none()
            && slot.degraded.as_ref().is_some_and(|d| {
                matches!(d.kind, DegradeKind::Failed | DegradeKind::Slow)
                    && d.first_missed.is_none()
                    && d.max_oid == self.max_oid
            })
    }

    /// The members the array waits for: not connected, and each of them
    /// holds every acknowledged transaction.
    pub(super) fn awaited(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|m| !m.connected && (m.optimal() || self.holds_everything(m)))
            .map(|m| &*m.name)
            .collect()
    }

    /// Member `i` connected (after startup) with `last_tid`. One that was
    /// lost only by its connection and holds everything is optimal again
    /// at once, with no copy: at the array's last tid while others serve,
    /// or as the first to return when none does (the array's last tid
    /// becomes its, never lower than the state's). Behind the array, it
    /// missed transactions; above it while others serve, it holds a
    /// transaction zeoraid did not acknowledge: it diverged.
    pub(super) fn reconnected(&mut self, i: usize, last_tid: Tid) {
        let serving = self.optimal_count() > 0;
        if last_tid < self.last_tid {
            let reason = format!(
                "reconnected with last tid {last_tid}, behind the array's {}",
                self.last_tid
            );
            return self.behind(i, reason, last_tid);
        }
        let slot = &self.members[i];
        let can_heal = self.holds_everything(slot);
        if !can_heal || slot.recovery.is_some() {
            return;
        }
        if serving && last_tid > self.last_tid {
            let reason = format!(
                "reconnected with last tid {last_tid}, above the array's {}: it holds a transaction \
                 zeoraid did not acknowledge",
                self.last_tid
            );
            return self.now_diverged(i, reason);
        }
        self.last_tid = last_tid;
        let slot = &mut self.members[i];
        let was = slot.degraded.take().expect("degraded");
        slot.missed = 0;
        info!(self.log, "member optimal again"; "member" => &*slot.name, "was" => was.kind.as_str(),
            "reason" => &was.reason, "last_tid" => last_tid.to_hex(), "copied" => 0);
        self.slow.forget(i);
        self.save_state();
        self.push_serving();
    }
}
