//! The disaster override ([`ForceOptimal`], `zeoraid ctl force-optimal`),
//! in the spirit of `mdadm --assemble --force`. When the members that hold
//! every acknowledged transaction are gone for good, the array waits for
//! them for ever (`docs/invariants.md#durable-state`): only an operator can
//! decide to go on from a member that is behind, giving up what only the
//! others held. So the override says first what may be lost, does it only
//! when confirmed, and leaves a trace in the array state and the log.

use super::*;
use crate::state::ForcedRecord;

/// What forcing one member would do, worked out before anything changes.
struct ForcePlan {
    member: usize,
    /// Its last tid: the array goes on from there.
    from: Tid,
    /// The array's last acknowledged tid as zeoraid knows it.
    known: Tid,
    /// The members the array waits for: they hold every acknowledged
    /// transaction.
    held_only_by: Vec<String>,
    /// The other members that may hold transactions after `from`: once
    /// the array goes on from `from`, their histories fork from its.
    diverging: Vec<usize>,
}

impl Handler<ForceOptimal> for Controller {
    type Result = Result<String, AdminError>;

    fn handle(&mut self, msg: ForceOptimal, ctx: &mut Context<Self>) -> Self::Result {
        let plan = self.force_plan(&msg.name)?;
        if !msg.confirm {
            return Err(AdminError::Unconfirmed(self.what_may_be_lost(&plan)));
        }
        self.force(ctx, plan)
    }
}

impl Controller {
    /// What forcing member `name` would do, or why it is refused: some
    /// member is optimal (it holds everything: recover from it instead),
    /// or `name` is not connected (its last tid is unknown), or recovering,
    /// or a transaction is still in progress.
    fn force_plan(&self, name: &str) -> Result<ForcePlan, AdminError> {
        let i = self
            .slot_index(name)
            .ok_or_else(|| AdminError::UnknownMember(name.to_string()))?;
        if self.lock.draining() {
            return Err(AdminError::ShuttingDown);
        }
        let refuse = |why: String| AdminError::Refused(format!("cannot force {name} optimal: {why}"));
        let optimal: Vec<&str> = self
            .members
            .iter()
            .filter(|m| m.optimal())
            .map(|m| &*m.name)
            .collect();
        match optimal.as_slice() {
            [] => {}
            [one] => {
                return Err(refuse(format!(
                    "{one} is optimal and holds every acknowledged transaction (recover {name} from it \
                     instead)"
                )))
            }
            many => {
                return Err(refuse(format!(
                    "{} are optimal and hold every acknowledged transaction (recover {name} from them \
                     instead)",
                    many.join(", ")
                )))
            }
        }
        let slot = &self.members[i];
        let Some(from) = slot.last_tid.filter(|_| slot.connected) else {
            return Err(refuse(format!(
                "it is not connected ({}): its last tid is unknown",
                slot.conn_state
            )));
        };
        if slot.recovery.is_some() {
            return Err(refuse("it is recovering".into()));
        }
        if self.lock.commit().is_some() || self.lock.finishing().is_some() {
            return Err(refuse(
                "a transaction is still in progress; try again in a moment".into(),
            ));
        }
        let diverging = (0..self.members.len())
            .filter(|&j| j != i && self.may_hold_after(&self.members[j], from))
            .collect();
        Ok(ForcePlan {
            member: i,
            from,
            known: self.last_tid,
            held_only_by: self.awaited().into_iter().map(String::from).collect(),
            diverging,
        })
    }

    /// Whether a degraded member may hold a transaction after `tid`. A
    /// connected one says its last tid; one that is away holds nothing
    /// from the first transaction it missed on, or, having missed none,
    /// possibly everything up to the array's last tid. Members added
    /// (their data is unknown) or already diverged keep saying so.
    fn may_hold_after(&self, slot: &Slot, tid: Tid) -> bool {
        let Some(degraded) = &slot.degraded else {
            return false;
        };
        if matches!(degraded.kind, DegradeKind::Added | DegradeKind::Diverged) {
            return false;
        }
        match (slot.last_tid.filter(|_| slot.connected), degraded.first_missed) {
            (Some(last), _) => last > tid,
            (None, Some(first_missed)) => first_missed.as_u64() > tid.as_u64().saturating_add(1),
            (None, None) => self.last_tid > tid,
        }
    }

    /// The plan in words for the operator: who holds what would be lost,
    /// the tid range, and who would be marked diverged.
    fn what_may_be_lost(&self, plan: &ForcePlan) -> String {
        let name = &self.members[plan.member].name;
        let (from, known) = (plan.from, plan.known);
        let holders = match plan.held_only_by.as_slice() {
            [] => "no member is known to hold every acknowledged transaction".to_string(),
            [one] => format!("only {one} (not connected) holds every acknowledged transaction"),
            many => format!(
                "only {} (not connected) hold every acknowledged transaction",
                many.join(", ")
            ),
        };
        let range = if known > from {
            format!(
                "the transactions after tid {from} up to tid {known} at least ({:.1} s of commits), \
                 and possibly later ones acknowledged after the array state was last written, would be \
                 lost",
                tid::unix_seconds(known) - tid::unix_seconds(from)
            )
        } else {
            format!(
                "the array state records no acknowledged transaction after tid {from}, but transactions \
                 acknowledged after it was last written would be lost"
            )
        };
        let diverged = match plan.diverging.as_slice() {
            [] => String::new(),
            members => format!(
                " {} would be marked diverged: never served again until an operator wipes it and \
                 recovers it in full.",
                members
                    .iter()
                    .map(|&j| &*self.members[j].name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!(
            "forcing {name} optimal makes the array go on from {name}'s last tid {from}: {holders}; \
             {range}.{diverged}"
        )
    }

    /// Carries the plan out: the member optimal at its own last tid, the
    /// members that may hold more diverged, the force written to the
    /// state's history before the array serves from it.
    fn force(&mut self, ctx: &mut Context<Self>, plan: ForcePlan) -> Result<String, AdminError> {
        let name = self.members[plan.member].name.to_string();
        let diverged: Vec<String> = plan
            .diverging
            .iter()
            .map(|&j| self.members[j].name.to_string())
            .collect();
        error!(self.log, "member forced optimal by operator"; "member" => &name,
            "lost_after_tid" => plan.from.to_hex(), "lost_up_to_at_least_tid" => plan.known.to_hex(),
            "held_only_by" => ?plan.held_only_by, "diverged" => ?diverged);
        let reason = format!(
            "{name} was forced optimal at tid {}: this member may hold transactions after it that the \
             array no longer has; wipe it and recover it in full",
            plan.from
        );
        for &j in &plan.diverging {
            let d = self.members[j].degraded.as_mut().expect("no member is optimal");
            d.kind = DegradeKind::Diverged;
            d.reason = reason.clone();
        }
        let slot = &mut self.members[plan.member];
        slot.degraded = None;
        slot.missed = 0;
        slot.packed_while_degraded = None;
        self.slow.forget(plan.member);
        self.last_tid = plan.from;
        let record = ForcedRecord {
            at: unix_seconds(SystemTime::now()),
            member: name.clone(),
            lost_after_tid: plan.from,
            lost_up_to_at_least_tid: plan.known,
            held_only_by: plan.held_only_by,
            diverged,
        };
        self.write_state(Some(record.clone()));
        self.push_serving();
        for j in 0..self.members.len() {
            self.schedule_auto_recovery(ctx, j);
        }
        if let Some(failure) = &self.state_failure {
            return Err(AdminError::Refused(format!(
                "{name} was forced optimal, but {failure}: the array takes no writes"
            )));
        }
        let diverged = match &record.diverged[..] {
            [] => String::new(),
            names => format!("; marked diverged: {}", names.join(", ")),
        };
        Ok(format!(
            "{name} forced optimal: the array goes on from its last tid {}, having acknowledged up to \
             tid {} at least; anything after tid {0} that only other members held may be lost{diverged}",
            record.lost_after_tid, record.lost_up_to_at_least_tid
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::MemberAddress;
    use crate::state::FileStore;

    const T1: u64 = 0x03e0_0000_0000_0001;
    const T2: u64 = 0x03e0_0000_1000_0000;

    /// Two members after a restart that found zeo1 (which holds
    /// everything, up to T2) away and zeo2 connected at T1.
    fn controller(dir: &std::path::Path) -> Controller {
        let members = ["zeo1", "zeo2"]
            .map(|name| MemberSettings::new(name, MemberAddress::Tcp("127.0.0.1:1".into()), "1"))
            .to_vec();
        let settings = ControllerSettings {
            storage: "1".into(),
            members,
            cluster_mode: ClusterMode::Single,
            fail_mode: FailMode::Close,
            slow: SlowPolicy::default(),
            recovery: RecoveryPolicy::default(),
            transaction_timeout: std::time::Duration::from_secs(30),
            leading: None,
            scrub: super::ScrubPolicy::default(),
        };
        let durable = DurableState {
            store: Box::new(FileStore::open(dir).unwrap()),
            record: None,
        };
        let log = Logger::root(slog::Discard, slog::o!());
        let mut controller = Controller::new(settings, durable, log);
        controller.last_tid = Tid::from_u64(T2);
        let degraded = |kind, first_missed| Degraded {
            kind,
            reason: "test".into(),
            since: SystemTime::now(),
            first_missed,
            max_oid: zeo::types::Oid::ZERO,
        };
        controller.members[0].degraded = Some(degraded(DegradeKind::Failed, None));
        let zeo2 = &mut controller.members[1];
        zeo2.degraded = Some(degraded(DegradeKind::Behind, Some(Tid::from_u64(T1 + 1))));
        zeo2.connected = true;
        zeo2.last_tid = Some(Tid::from_u64(T1));
        controller
    }

    fn refusal(result: Result<ForcePlan, AdminError>) -> String {
        match result {
            Err(AdminError::Refused(why)) => why,
            Err(other) => panic!("not a refusal: {other}"),
            Ok(_) => panic!("not refused"),
        }
    }

    #[test]
    fn the_plan_names_the_range_only_the_awaited_member_holds() {
        let dir = tempfile::tempdir().unwrap();
        let controller = controller(dir.path());
        let plan = controller.force_plan("zeo2").unwrap();
        assert_eq!(plan.held_only_by, ["zeo1"]);
        assert_eq!(plan.diverging, [0]);
        let text = controller.what_may_be_lost(&plan);
        assert!(
            text.starts_with(
                "forcing zeo2 optimal makes the array go on from zeo2's last tid 0x03e0000000000001"
            ),
            "{text}"
        );
        assert!(
            text.contains("only zeo1 (not connected) holds every acknowledged transaction"),
            "{text}"
        );
        assert!(
            text.contains("after tid 0x03e0000000000001 up to tid 0x03e0000010000000 at least"),
            "{text}"
        );
        assert!(text.contains("possibly later ones"), "{text}");
        assert!(text.contains("zeo1 would be marked diverged"), "{text}");
    }

    #[test]
    fn refused_while_a_member_is_optimal_or_for_a_member_not_connected() {
        let dir = tempfile::tempdir().unwrap();
        let mut controller = controller(dir.path());
        let why = refusal(controller.force_plan("zeo1"));
        assert!(why.contains("zeo1 optimal: it is not connected"), "{why}");
        assert!(matches!(
            controller.force_plan("zeo3"),
            Err(AdminError::UnknownMember(_))
        ));
        controller.members[0].degraded = None;
        let why = refusal(controller.force_plan("zeo2"));
        assert_eq!(
            why,
            "cannot force zeo2 optimal: zeo1 is optimal and holds every acknowledged transaction \
             (recover zeo2 from it instead)"
        );
    }

    #[test]
    fn a_member_that_missed_everything_after_the_forced_tid_is_not_diverged() {
        let dir = tempfile::tempdir().unwrap();
        let mut controller = controller(dir.path());
        let d = controller.members[0].degraded.as_mut().unwrap();
        d.first_missed = Some(Tid::from_u64(T1 + 1));
        let plan = controller.force_plan("zeo2").unwrap();
        assert!(plan.diverging.is_empty());
        let text = controller.what_may_be_lost(&plan);
        assert!(!text.contains("diverged"), "{text}");
    }
}
