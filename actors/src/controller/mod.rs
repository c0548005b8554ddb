//! The RAID controller: the single owner of the array's state.
//!
//! It owns the member actors (it starts them and is their subscriber), each
//! member's RAID state (optimal, or degraded with the reason and the first
//! tid it missed), the array's last committed tid, the commit lock and its
//! queue, the oid allocation, and the registry of client sessions that get
//! invalidations. Sessions ask it; it tells sessions ([`ToSession`]).
//!
//! The transaction path lives in `commit.rs`; reads do not pass through the
//! controller at all: sessions send them straight to a member from the
//! reader list the controller pushes to them ([`ToSession::Serving`]).

mod abort_check;
mod admin;
mod commit;
mod debug;
mod durable;
mod expiry;
mod fanout;
mod finish;
mod force;
mod info;
mod lock;
pub mod messages;
mod modes;
mod oids;
mod pack;
mod recovering;
mod scrubbing;
mod slow;
mod takeover;
mod vote;

pub use crate::status::DegradeKind;
pub use durable::DurableState;
pub use messages::*;
pub use modes::{ClusterMode, FailMode};
pub use recovering::{RecoverMember, RecoveryPolicy, RecoveryStatus};
pub use scrubbing::{ScrubPolicy, ScrubStatus, StartScrub};
pub use slow::{SlowDetector, SlowPolicy};

use crate::member::{ConnState, MemberActor, MemberEvent, MemberSettings};
use crate::metrics;
use crate::status::{ArrayState, MemberState};
use crate::tid;
use actix::prelude::*;
use lock::CommitLock;
use slog::{error, info, warn, Logger};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::oneshot;
use zeo::callbacks::Callback;
use zeo::exceptions::ZeoError;
use zeo::types::Tid;
use zeo::Value;

/// A member slot's identity for as long as the slot exists: what the
/// controller carries across an await instead of a position in `members`,
/// which a reload may shift or shrink meanwhile. A member that a reload
/// removes and adds again (or replaces) gets a new slot and a new id, so a
/// late answer from its old connection is never taken for the new one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct MemberId(u64);

/// One member as the controller sees it.
struct Slot {
    id: MemberId,
    name: Arc<str>,
    settings: MemberSettings,
    addr: Option<Addr<MemberActor>>,
    /// The member's connection is ready (from its state events).
    connected: bool,
    /// The member has connected or failed at least once (startup waits for this).
    settled: bool,
    /// Why the member gets no more reads or writes; `None` = optimal.
    degraded: Option<Degraded>,
    last_tid: Option<Tid>,
    info: Option<Value>,
    /// The member actor's connection state (from its state events).
    conn_state: ConnState,
    /// Why the member actor last changed state (a failed connect says
    /// why it failed: refused, a TLS error), for the reason of a member
    /// that never connected at startup.
    conn_reason: String,
    /// Failures of this member the controller heard of (failed calls,
    /// outvoted answers), whether or not they degraded it.
    failures: u64,
    /// Transactions committed since it was degraded.
    missed: u64,
    /// The recovery bringing it back, while one runs.
    recovery: Option<recovering::Recovering>,
    /// How the last recovery of this member ended (refused, failed, done).
    last_recovery: Option<String>,
    /// When its current connection became ready (flap damping).
    connected_since: Option<std::time::Instant>,
    /// The array packed while it was degraded (the latest pack time):
    /// its old revisions no longer match the packed members'. Its
    /// recovery compares history before that time leniently and packs it
    /// the same way once it has the transactions up to it.
    packed_while_degraded: Option<f64>,
    /// An operator asked to recover it while it was not connected: the
    /// recovery starts when its connection is ready.
    recover_when_connected: Option<recovering::RecoverWhenConnected>,
    /// Final steps of its recoveries abandoned in a row (they overran
    /// `[recovery] final_step_timeout`); cleared once it is recovered.
    abandoned_final_steps: u32,
    /// The actor of its last recovery, told to stop: until it has (it
    /// finishes or aborts the transaction it had begun on the member) no
    /// other recovery may write to the member.
    stopping_recovery: Option<Addr<crate::recovery::RecoveryActor>>,
}

#[derive(Clone, Debug)]
struct Degraded {
    kind: DegradeKind,
    reason: String,
    since: SystemTime,
    /// The first transaction this member did not get; `None` while no
    /// transaction committed since it was degraded (set by the next commit).
    first_missed: Option<Tid>,
    /// The highest oid handed out when it was degraded (its oid counter
    /// is behind once the array hands out more).
    max_oid: zeo::types::Oid,
}

impl Slot {
    fn new(id: MemberId, settings: MemberSettings) -> Slot {
        Slot {
            id,
            name: Arc::from(settings.name.as_str()),
            settings,
            addr: None,
            connected: false,
            settled: false,
            degraded: None,
            last_tid: None,
            info: None,
            conn_state: ConnState::Connecting,
            conn_reason: String::new(),
            failures: 0,
            missed: 0,
            recovery: None,
            last_recovery: None,
            connected_since: None,
            packed_while_degraded: None,
            recover_when_connected: None,
            abandoned_final_steps: 0,
            stopping_recovery: None,
        }
    }

    fn optimal(&self) -> bool {
        self.degraded.is_none()
    }

    /// Why it is degraded, if it is.
    fn degraded_kind(&self) -> Option<DegradeKind> {
        self.degraded.as_ref().map(|d| d.kind)
    }

    fn state(&self) -> MemberState {
        match (&self.degraded, &self.recovery) {
            (None, _) => MemberState::Optimal,
            (Some(_), Some(_)) => MemberState::Recovering,
            (Some(_), None) => MemberState::Degraded,
        }
    }

    /// Starts the member actor, reporting to the controller.
    fn start_actor(&mut self, controller: Recipient<MemberEvent>, log: &Logger) {
        let actor = MemberActor::new(self.settings.clone(), log.clone()).with_subscriber(controller);
        self.addr = Some(actor.start());
    }
}

pub struct Controller {
    storage: String,
    cluster_mode: ClusterMode,
    fail_mode: FailMode,
    log: Logger,
    members: Vec<Slot>,
    /// The id the next new slot gets (ids are never reused).
    next_member_id: u64,
    last_tid: Tid,
    /// What holds the commit lock, what waits for it, and what runs next.
    lock: CommitLock,
    sessions: HashMap<SessionId, SessionHandle>,
    next_member_txn: i64,
    /// The latest `info` dict (`length`, `size`) a member reported.
    last_info: Value,
    ready_waiters: Vec<oneshot::Sender<()>>,
    /// Whether startup is over (members not ready by then are degraded).
    started: bool,
    stats: Stats,
    slow: SlowDetector,
    slow_policy: SlowPolicy,
    recovery_policy: RecoveryPolicy,
    /// How long a voted transaction may wait for its client's
    /// `tpc_finish` (`expiry.rs`).
    transaction_timeout: std::time::Duration,
    /// The longest time commits waited for a recovery's final step.
    longest_recovery_block: std::time::Duration,
    /// The highest oid handed out (a recovered member's counter must pass it).
    max_oid: zeo::types::Oid,
    /// What sessions were last told (pushed again only when it changes).
    pushed: Option<(Vec<Addr<MemberActor>>, Serving)>,
    /// The array state's store and what was last written to it.
    durable: DurableState,
    /// Rises with every write of the array state.
    generation: u64,
    /// The array state could not be written: the array takes no writes.
    state_failure: Option<String>,
    /// Its own address, for what it must do later (set when it starts).
    me: Option<Addr<Controller>>,
    /// Set while this zeoraid leads a cluster (`takeover.rs`).
    leading: Option<Leading>,
    /// The root object's serial every commit of this leader checks (its
    /// fence): set by the takeover, moved by each commit that changes the
    /// root. `None` before the takeover, or alone (no fence).
    root_serial: Option<Tid>,
    /// The scrub: the running one, the last result, the inconsistent
    /// flag, the position kept in the array state (`scrubbing.rs`).
    scrub: scrubbing::ScrubControl,
}

#[derive(Default)]
struct Stats {
    commits: u64,
    aborts: u64,
    conflicts: u64,
    start: Option<SystemTime>,
}

impl Controller {
    pub fn new(settings: ControllerSettings, durable: DurableState, log: Logger) -> Controller {
        let member_count = settings.members.len();
        let members: Vec<Slot> = (0u64..)
            .zip(settings.members)
            .map(|(id, m)| Slot::new(MemberId(id), m))
            .collect();
        let next_member_id = members.len() as u64;
        let mut controller = Controller {
            storage: settings.storage,
            cluster_mode: settings.cluster_mode,
            fail_mode: settings.fail_mode,
            log,
            members,
            next_member_id,
            last_tid: Tid::ZERO,
            lock: CommitLock::default(),
            sessions: HashMap::new(),
            next_member_txn: 1,
            last_info: Value::Dict(vec![]),
            ready_waiters: Vec::new(),
            started: false,
            stats: Stats {
                start: Some(SystemTime::now()),
                ..Stats::default()
            },
            pushed: None,
            slow: SlowDetector::new(settings.slow, member_count),
            slow_policy: settings.slow,
            recovery_policy: settings.recovery,
            transaction_timeout: settings.transaction_timeout,
            longest_recovery_block: std::time::Duration::ZERO,
            max_oid: zeo::types::Oid::ZERO,
            durable,
            generation: 0,
            state_failure: None,
            me: None,
            leading: settings.leading,
            root_serial: None,
            scrub: scrubbing::ScrubControl::new(settings.scrub),
        };
        if let Some(record) = controller.durable.record.clone() {
            controller.restore(record);
        }
        controller
    }

    fn slot_index(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| &*m.name == name)
    }

    /// Where the slot `id` is now; `None` once a reload removed it.
    fn index_of(&self, id: MemberId) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    /// A new slot's id, never used before.
    fn new_member_id(&mut self) -> MemberId {
        let id = MemberId(self.next_member_id);
        self.next_member_id += 1;
        id
    }

    /// Members that get writes: optimal ones.
    fn writers(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].optimal())
            .collect()
    }

    /// The ids of `indexes`, to carry across an await.
    fn ids(&self, indexes: &[usize]) -> Vec<MemberId> {
        indexes.iter().map(|&i| self.members[i].id).collect()
    }

    fn optimal_count(&self) -> usize {
        self.members.iter().filter(|m| m.optimal()).count()
    }

    /// Why the array cannot take writes, if it cannot: fewer optimal
    /// members than the cluster mode's quorum.
    fn failed_reason(&self) -> Option<String> {
        if let Some(failure) = &self.state_failure {
            return Some(failure.clone());
        }
        let optimal = self.optimal_count();
        let quorum = self.cluster_mode.quorum(self.members.len());
        if optimal >= quorum {
            return None;
        }
        let failed = match self.cluster_mode {
            ClusterMode::Single => "no optimal member left: the array has failed".to_string(),
            ClusterMode::Coop => format!(
                "only {optimal} of {} members are optimal, coop mode needs {quorum}: the array has failed",
                self.members.len()
            ),
        };
        let awaited = self.awaited();
        if awaited.is_empty() {
            return Some(failed);
        }
        Some(format!(
            "{failed}; waiting for {} (holding every acknowledged transaction) to connect",
            awaited.join(", ")
        ))
    }

    /// What sessions serve, from the array's state and the fail mode.
    fn serving(&self) -> Serving {
        match (self.failed_reason(), self.fail_mode) {
            (None, _) => Serving::ReadWrite,
            (Some(reason), FailMode::Close) => Serving::Closed(reason),
            (Some(reason), FailMode::ReadOnly) => Serving::ReadOnly(reason),
        }
    }

    /// The error a write gets while the array cannot take writes.
    fn write_refusal(&self) -> Option<ZeoError> {
        if let Some(refusal) = self.leadership_refusal() {
            return Some(refusal);
        }
        match self.serving() {
            Serving::ReadWrite => None,
            Serving::ReadOnly(_) => Some(ZeoError::ReadOnlyError),
            Serving::Closed(reason) => Some(ZeoError::unavailable(&reason)),
        }
    }

    /// A degraded member that is as fresh as the array: it only stopped
    /// answering, no transaction committed since, and it is connected
    /// again with the array's last tid.
    fn fresh_though_degraded(&self, slot: &Slot) -> bool {
        slot.connected
            && slot.last_tid == Some(self.last_tid)
            && slot.degraded.as_ref().is_some_and(|d| {
                matches!(d.kind, DegradeKind::Failed | DegradeKind::Slow) && d.first_missed.is_none()
            })
    }

    /// Members reads may go to: optimal and connected ones; once the array
    /// has failed in read-only mode, also degraded ones that missed nothing
    /// (all that is left); in close mode, none.
    fn readers(&self) -> Vec<Addr<MemberActor>> {
        let serving = self.serving();
        self.members
            .iter()
            .filter(|m| match serving {
                Serving::ReadWrite => m.optimal() && m.connected,
                Serving::ReadOnly(_) => (m.optimal() && m.connected) || self.fresh_though_degraded(m),
                Serving::Closed(_) => false,
            })
            .filter_map(|m| m.addr.clone())
            .collect()
    }

    fn array_status(&self) -> ArrayState {
        if self.failed_reason().is_some() {
            ArrayState::Failed
        } else if self.members.iter().any(|m| m.recovery.is_some()) {
            ArrayState::Recovering
        } else if self.optimal_count() == self.members.len() {
            ArrayState::Optimal
        } else {
            ArrayState::Degraded
        }
    }

    /// Tells every session where to read and what to serve, when that
    /// changed since the last time.
    fn push_serving(&mut self) {
        self.publish_metrics();
        let now = (self.readers(), self.serving());
        if self.pushed.as_ref() == Some(&now) {
            return;
        }
        for session in self.sessions.values() {
            session.do_send(self.serving_message(&now));
        }
        self.pushed = Some(now);
    }

    /// The array's status and every member's state, as metrics.
    fn publish_metrics(&self) {
        let members = self.members.iter().map(|m| (&*m.name, m.state(), m.connected));
        metrics::array(self.array_status(), members);
    }

    fn serving_message(&self, (readers, serving): &(Vec<Addr<MemberActor>>, Serving)) -> ToSession {
        ToSession::Serving {
            readers: readers.clone(),
            serving: serving.clone(),
            cluster_mode: self.cluster_mode,
        }
    }

    /// Takes a member out of reads and writes. One log line with the reason.
    fn degrade(&mut self, index: usize, kind: DegradeKind, reason: String, first_missed: Option<Tid>) {
        let slot = &mut self.members[index];
        if !matches!(
            kind,
            DegradeKind::Disabled | DegradeKind::Added | DegradeKind::Behind
        ) {
            slot.failures += 1;
        }
        if slot.degraded.is_some() {
            return;
        }
        metrics::degraded(&slot.name, kind);
        error!(self.log, "member degraded"; "member" => &*slot.name, "kind" => kind.as_str(),
            "reason" => &reason, "first_missed_tid" => first_missed.map(|t| t.to_hex()));
        self.slow.forget(index);
        let slot = &mut self.members[index];
        slot.degraded = Some(Degraded {
            kind,
            reason,
            since: SystemTime::now(),
            first_missed,
            max_oid: self.max_oid,
        });
        // On disk before the commit that caused it is acknowledged.
        self.save_state();
        if self.started && self.members[index].connected {
            // Degraded while it stayed connected (slow, a failed call):
            // automatic recovery covers it too, once it stayed connected
            // for the flap-damping time. A member that disconnected is
            // scheduled when it connects again.
            if let Some(me) = &self.me {
                me.do_send(RecoverWhenStable(self.members[index].name.clone()));
            }
        }
        let status = self.array_status();
        match self.failed_reason() {
            Some(why) => error!(self.log, "array status"; "status" => status, "reason" => why,
                "fail_mode" => %self.fail_mode),
            None => warn!(self.log, "array status"; "status" => status,
                "optimal" => self.optimal_count(), "members" => self.members.len()),
        }
        self.push_serving();
    }

    /// Member `index` holds less than the array (`last_tid`, its own last
    /// tid, is below the array's): it is degraded as behind, or, degraded
    /// already as merely not answering, now known to be behind.
    fn behind(&mut self, index: usize, reason: String, last_tid: Tid) {
        let first_missed = Tid::from_u64(last_tid.as_u64().saturating_add(1));
        self.degrade(index, DegradeKind::Behind, reason.clone(), Some(first_missed));
        self.now_behind(index, reason, first_missed);
    }

    /// A degraded member turned out to be behind the array (its storage was
    /// replaced while it was away): that is now why it is degraded.
    fn now_behind(&mut self, index: usize, reason: String, first_missed: Tid) {
        let slot = &mut self.members[index];
        // Only a member thought to have merely stopped answering is now
        // known to be behind; added, disabled or diverged ones keep saying so.
        let Some(d) = slot
            .degraded
            .as_mut()
            .filter(|d| matches!(d.kind, DegradeKind::Failed | DegradeKind::Slow))
        else {
            return;
        };
        warn!(self.log, "degraded member is behind the array"; "member" => &*slot.name,
            "was" => d.kind.as_str(), "reason" => &reason);
        d.kind = DegradeKind::Behind;
        d.reason = reason;
        d.first_missed = Some(d.first_missed.map_or(first_missed, |t| t.min(first_missed)));
        self.save_state();
    }

    /// A degraded member holds a transaction zeoraid did not acknowledge:
    /// it is now diverged (one added, disabled or diverged already keeps
    /// saying so).
    fn now_diverged(&mut self, index: usize, reason: String) {
        let slot = &mut self.members[index];
        let Some(d) = slot.degraded.as_mut().filter(|d| {
            matches!(
                d.kind,
                DegradeKind::Failed | DegradeKind::Slow | DegradeKind::Behind
            )
        }) else {
            return;
        };
        error!(self.log, "member diverged"; "member" => &*slot.name, "reason" => &reason);
        d.kind = DegradeKind::Diverged;
        d.reason = reason;
        self.save_state();
    }

    /// A commit stood: every degraded member that had not missed one yet
    /// missed this one.
    fn note_missed(&mut self, tid: Tid, committed_on: &[usize]) {
        let mut newly_missed = false;
        for (i, slot) in self.members.iter_mut().enumerate() {
            if committed_on.contains(&i) {
                // Degraded while finishing it (e.g. disabled by an operator
                // after its tpc_finish was sent): it has this one.
                continue;
            }
            if let Some(d) = slot.degraded.as_mut() {
                newly_missed |= d.first_missed.is_none();
                d.first_missed.get_or_insert(tid);
                slot.missed += 1;
            }
        }
        if newly_missed {
            // On disk before the commit is acknowledged: a restart must
            // know that member no longer holds every transaction.
            self.save_state();
        }
    }

    /// Every member either connected or failed an attempt: waiting longer
    /// at startup would not change which members start optimal.
    fn all_settled(&self) -> bool {
        self.members.iter().all(|m| m.settled)
    }

    /// Startup is over: members that are not connected now would miss
    /// writes, and members behind the others already did, so they start
    /// degraded (recovery brings them back).
    fn finish_startup(&mut self, ctx: &mut Context<Self>) {
        if self.started {
            return;
        }
        self.started = true;
        // Without a member of the authority the array's last tid is only
        // the state's floor: a degraded member above it may just hold what
        // was acknowledged after the last write (or what its recovery
        // copied), and is not judged until the authority is back.
        let authority_connected = self.members.iter().any(|m| m.optimal() && m.connected);
        for i in 0..self.members.len() {
            self.reconcile_at_startup(i, authority_connected);
        }
        // Members that hold everything and are connected already (every
        // member lost, then zeoraid restarted) rejoin as they would on
        // reconnecting: the highest first, so it sets the array's last tid.
        let mut rejoining: Vec<(usize, Tid)> = (0..self.members.len())
            .filter(|&i| self.members[i].connected && self.holds_everything(&self.members[i]))
            .filter_map(|i| Some((i, self.members[i].last_tid?)))
            .collect();
        rejoining.sort_by_key(|&(_, tid)| std::cmp::Reverse(tid));
        for (i, last_tid) in rejoining {
            self.reconnected(i, last_tid);
        }
        // A first start writes the state it starts from.
        self.save_state();
        self.push_serving();
        info!(self.log, "array ready"; "status" => self.array_status(), "last_tid" => self.last_tid.to_hex());
        for i in 0..self.members.len() {
            self.schedule_auto_recovery(ctx, i);
        }
        self.schedule_scrubs(ctx);
        for waiter in self.ready_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Startup reconciliation of member `i`. The members the state calls
    /// optimal (all of them on a first start) are the authority: the
    /// highest last tid among those connected is the array's (never lower
    /// than the state's), so no client is ever told a lower one. One of
    /// them behind it missed transactions and is never written on top of;
    /// one not connected yet holds everything and rejoins when it
    /// connects. A member the state calls degraded stays degraded: behind,
    /// it now says so; above the array, it holds a transaction zeoraid
    /// did not acknowledge (a commit made behind its back, or the tid of
    /// a transaction its storage dropped) and is diverged.
    fn reconcile_at_startup(&mut self, i: usize, authority_connected: bool) {
        let slot = &self.members[i];
        let Some(last_tid) = slot.last_tid.filter(|_| slot.connected) else {
            if slot.optimal() {
                let reason = match slot.conn_reason.as_str() {
                    "" => "not connected since zeoraid started".to_string(),
                    why => format!("not connected since zeoraid started: {why}"),
                };
                self.degrade(i, DegradeKind::Failed, reason, None);
            }
            return;
        };
        if last_tid < self.last_tid {
            let reason = format!(
                "missing transactions: last tid {last_tid}, the array's is {}",
                self.last_tid
            );
            self.behind(i, reason, last_tid);
        } else if last_tid > self.last_tid && authority_connected {
            let reason = format!(
                "last tid {last_tid} is above the array's {}: it holds a transaction zeoraid did not \
                 acknowledge",
                self.last_tid
            );
            self.now_diverged(i, reason);
        }
    }

    fn on_member_state(
        &mut self,
        ctx: &mut Context<Self>,
        name: &str,
        state: ConnState,
        reason: String,
        connected: Option<crate::member::Connected>,
    ) {
        let Some(i) = self.slot_index(name) else { return };
        let was = self.members[i].connected;
        self.members[i].connected = state == ConnState::Ready;
        self.members[i].conn_state = state;
        self.members[i].conn_reason.clone_from(&reason);
        if self.members[i].connected && !was {
            self.members[i].connected_since = Some(std::time::Instant::now());
        } else if !self.members[i].connected {
            self.members[i].connected_since = None;
        }
        if matches!(
            state,
            ConnState::Ready | ConnState::BackingOff | ConnState::Parked
        ) {
            self.members[i].settled = true;
        }
        if let Some(c) = connected {
            let slot = &mut self.members[i];
            slot.last_tid = Some(c.last_tid);
            slot.info = Some(c.info);
            // Only the authority (members the state calls optimal) sets
            // the array's last tid: a degraded member's may be a commit
            // zeoraid never acknowledged.
            if !self.started && slot.optimal() && c.last_tid > self.last_tid {
                self.last_tid = c.last_tid;
            }
            if self.started {
                self.reconnected(i, c.last_tid);
            }
        }
        if was && !self.members[i].connected && self.members[i].optimal() && self.started {
            // A member that is away misses every commit from now on, and
            // whatever it was doing failed: it leaves the array now, not at
            // the next write (recovery brings it back).
            self.degrade(i, DegradeKind::Failed, format!("disconnected: {reason}"), None);
        }
        if self.started {
            self.push_serving();
        } else {
            self.publish_metrics();
        }
        if !self.started && self.all_settled() {
            self.finish_startup(ctx);
        } else if self.started && self.members[i].connected && !was {
            self.schedule_auto_recovery(ctx, i);
        }
        self.recover_if_requested(ctx, i);
    }
}

impl Actor for Controller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        let me = ctx.address().recipient();
        for slot in &mut self.members {
            slot.start_actor(me.clone(), &self.log);
        }
        info!(self.log, "controller started"; "storage" => &self.storage, "members" => self.members.len());
    }
}

/// Schedules the automatic recovery of a member degraded while connected.
#[derive(Message)]
#[rtype(result = "()")]
struct RecoverWhenStable(Arc<str>);

impl Handler<RecoverWhenStable> for Controller {
    type Result = ();

    fn handle(&mut self, RecoverWhenStable(name): RecoverWhenStable, ctx: &mut Context<Self>) {
        if let Some(i) = self.slot_index(&name) {
            self.schedule_auto_recovery(ctx, i);
        }
    }
}

impl Handler<MemberEvent> for Controller {
    type Result = ();

    fn handle(&mut self, event: MemberEvent, ctx: &mut Context<Self>) {
        match event {
            MemberEvent::State {
                member,
                state,
                reason,
                connected,
            } => self.on_member_state(ctx, &member, state, reason, connected),
            MemberEvent::Callback {
                callback: Callback::Info(info),
                ..
            } => self.last_info = info,
            // Invalidations from a member mean someone else wrote to it;
            // divergence shows in the members' answers to votes and reads.
            MemberEvent::Callback { .. } => {}
        }
    }
}

impl Handler<WaitReady> for Controller {
    type Result = ResponseActFuture<Self, Result<ArrayReady, std::convert::Infallible>>;

    fn handle(&mut self, msg: WaitReady, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.started {
            let _ = tx.send(());
        } else {
            self.ready_waiters.push(tx);
            ctx.run_later(msg.within, |act, ctx| act.finish_startup(ctx));
        }
        Box::pin(rx.into_actor(self).map(|_, act, _| {
            let optimal = act.members.iter().filter(|m| m.optimal()).count();
            Ok(ArrayReady {
                status: act.array_status(),
                last_tid: act.last_tid,
                optimal,
                members: act.members.len(),
            })
        }))
    }
}

impl Handler<Register> for Controller {
    type Result = ();

    fn handle(&mut self, msg: Register, _ctx: &mut Context<Self>) {
        let now = (self.readers(), self.serving());
        msg.handle.do_send(self.serving_message(&now));
        let result = match now.1 {
            Serving::Closed(reason) => Err(ZeoError::unavailable(&reason)),
            _ => {
                self.sessions.insert(msg.session, msg.handle.clone());
                metrics::clients(self.sessions.len());
                Ok(self.last_tid)
            }
        };
        msg.handle.do_send(ToSession::Registered {
            msgid: msg.msgid,
            result,
        });
    }
}

impl Handler<SessionClosed> for Controller {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, ctx: &mut Context<Self>) {
        self.sessions.remove(&msg.session);
        metrics::clients(self.sessions.len());
        self.lock.forget_session(msg.session);
        if self.lock.commit().is_some_and(|c| c.session == msg.session) {
            metrics::commit(metrics::CommitOutcome::Aborted);
            self.abort_locked(ctx, None);
        }
    }
}

impl Handler<LastTid> for Controller {
    type Result = MessageResult<LastTid>;

    fn handle(&mut self, _: LastTid, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.last_tid)
    }
}

impl Handler<Status> for Controller {
    type Result = MessageResult<Status>;

    fn handle(&mut self, _: Status, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

impl Controller {
    /// The array and every member, for `ruok`, `/status`, `/details` and
    /// `raid_status`/`raid_details`.
    fn status(&self) -> ArrayStatus {
        let members: Vec<MemberStatus> = self.members.iter().map(|m| self.member_status(m)).collect();
        let optimal = self.optimal_count();
        let status = self.array_status();
        let summary = self.summary(&members, optimal, status);
        ArrayStatus {
            status,
            summary: match &self.scrub.inconsistent {
                Some(why) => format!("{summary}; inconsistent: {why}"),
                None => summary,
            },
            inconsistent: self.scrub.inconsistent.clone(),
            scrub: self.scrub.status(),
            reason: self.failed_reason(),
            cluster_mode: self.cluster_mode.to_string(),
            fail_mode: self.fail_mode.to_string(),
            last_tid: self.last_tid.to_hex(),
            optimal,
            quorum: self.cluster_mode.quorum(self.members.len()),
            longest_recovery_block_ms: self.longest_recovery_block.as_millis() as u64,
            state_location: self.durable.store.location(),
            state_generation: self.generation,
            commits: self.stats.commits,
            aborts: self.stats.aborts,
            conflicts: self.stats.conflicts,
            clients: self.sessions.len(),
            members,
        }
    }

    /// The one line for humans and Nagios.
    fn summary(&self, members: &[MemberStatus], optimal: usize, status: ArrayState) -> String {
        match self.failed_reason() {
            Some(reason) => format!("{status}: {reason}"),
            None => {
                let degraded: Vec<String> = members
                    .iter()
                    .filter(|m| m.state != MemberState::Optimal)
                    .map(|m| format!("{} {}", m.name, m.kind.map_or("degraded", DegradeKind::as_str)))
                    .collect();
                if degraded.is_empty() {
                    format!("{status}: {optimal} of {} members optimal", members.len())
                } else {
                    format!(
                        "{status}: {optimal} of {} members optimal ({})",
                        members.len(),
                        degraded.join(", ")
                    )
                }
            }
        }
    }

    fn member_status(&self, m: &Slot) -> MemberStatus {
        let array_time = tid::unix_seconds(self.last_tid);
        MemberStatus {
            name: m.name.to_string(),
            address: m.settings.address.to_string(),
            state: m.state(),
            recovery: self.recovery_status(m),
            last_recovery: m.last_recovery.clone(),
            kind: m.degraded_kind(),
            reason: m.degraded.as_ref().map(|d| d.reason.clone()),
            degraded_since: m.degraded.as_ref().map(|d| unix_seconds(d.since)),
            first_missed_tid: m
                .degraded
                .as_ref()
                .and_then(|d| d.first_missed)
                .map(|t| t.to_hex()),
            connected: m.connected,
            connection: m.conn_state,
            last_tid: m.last_tid.map(|t| t.to_hex()),
            lag_transactions: m.missed,
            lag_seconds: m
                .last_tid
                .filter(|t| *t != Tid::ZERO)
                .map(|t| (array_time - tid::unix_seconds(t)).max(0.0)),
            failures: m.failures,
        }
    }
}

impl Handler<MemberMisbehaved> for Controller {
    type Result = ();

    /// A session saw a member fail a read or give an outvoted answer.
    fn handle(&mut self, msg: MemberMisbehaved, _ctx: &mut Context<Self>) {
        let index = self
            .members
            .iter()
            .position(|m| m.addr.as_ref() == Some(&msg.member));
        if let Some(i) = index {
            if self.members[i].optimal() {
                self.degrade(i, msg.kind, msg.reason, None);
            } else {
                self.members[i].failures += 1;
            }
        }
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
