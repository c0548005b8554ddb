//! The RAID controller: the single owner of the array's state.
//!
//! It owns the member actors (it starts them and is their subscriber), each
//! member's RAID state (optimal, or degraded with the reason and the first
//! tid it missed), the array's last committed tid, the commit lock and its
//! queue, the oid allocation, and the registry of client sessions that get
//! invalidations. Sessions ask it; it tells sessions ([`ToSession`]).
//!
//! The transaction path lives in [`commit`]; reads do not pass through the
//! controller at all: sessions send them straight to a member from the
//! reader list the controller pushes to them ([`ToSession::Readers`]).

mod commit;
mod info;
pub mod messages;

pub use messages::*;

use crate::member::{ConnState, MemberActor, MemberEvent, MemberSettings};
use crate::session::{ClientSession, SessionId};
use actix::prelude::*;
use commit::Commit;
use slog::{error, info, warn, Logger};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::oneshot;
use zeo::callbacks::Callback;
use zeo::types::Tid;
use zeo::Value;

/// One member as the controller sees it.
struct Slot {
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
}

#[derive(Clone, Debug)]
struct Degraded {
    reason: String,
    /// The first transaction this member did not get (`None`: degraded
    /// before any commit of this zeoraid).
    first_missed: Option<Tid>,
}

impl Slot {
    fn optimal(&self) -> bool {
        self.degraded.is_none()
    }
}

pub struct Controller {
    storage: String,
    log: Logger,
    members: Vec<Slot>,
    last_tid: Tid,
    /// The transaction between its vote and its `tpc_finish`/`tpc_abort`.
    lock: Option<Commit>,
    waiting: VecDeque<Vote>,
    /// Packs wait for the commit lock too, and hold it while they run.
    packs: VecDeque<Pack>,
    packing: bool,
    sessions: HashMap<SessionId, Addr<ClientSession>>,
    next_member_txn: i64,
    /// The latest `info` dict (`length`, `size`) a member reported.
    last_info: Value,
    ready_waiters: Vec<oneshot::Sender<()>>,
    /// Whether startup is over (members not ready by then are degraded).
    started: bool,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    commits: u64,
    aborts: u64,
    conflicts: u64,
    start: Option<SystemTime>,
}

impl Controller {
    pub fn new(settings: ControllerSettings, log: Logger) -> Controller {
        let members = settings
            .members
            .into_iter()
            .map(|settings| Slot {
                name: Arc::from(settings.name.as_str()),
                settings,
                addr: None,
                connected: false,
                settled: false,
                degraded: None,
                last_tid: None,
                info: None,
            })
            .collect();
        Controller {
            storage: settings.storage,
            log,
            members,
            last_tid: Tid::ZERO,
            lock: None,
            waiting: VecDeque::new(),
            packs: VecDeque::new(),
            packing: false,
            sessions: HashMap::new(),
            next_member_txn: 1,
            last_info: Value::Dict(vec![]),
            ready_waiters: Vec::new(),
            started: false,
            stats: Stats {
                start: Some(SystemTime::now()),
                ..Stats::default()
            },
        }
    }

    fn slot_index(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| &*m.name == name)
    }

    /// Members that get writes: optimal ones.
    fn writers(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].optimal())
            .collect()
    }

    /// Members reads may go to: optimal and connected.
    fn readers(&self) -> Vec<Addr<MemberActor>> {
        self.members
            .iter()
            .filter(|m| m.optimal() && m.connected)
            .filter_map(|m| m.addr.clone())
            .collect()
    }

    fn array_status(&self) -> &'static str {
        let optimal = self.members.iter().filter(|m| m.optimal()).count();
        match optimal {
            0 => "failed",
            n if n == self.members.len() => "optimal",
            _ => "degraded",
        }
    }

    fn push_readers(&self) {
        let readers = self.readers();
        for session in self.sessions.values() {
            session.do_send(ToSession::Readers(readers.clone()));
        }
    }

    /// Takes a member out of reads and writes. One log line with the reason.
    fn degrade(&mut self, index: usize, reason: String, first_missed: Option<Tid>) {
        let slot = &mut self.members[index];
        if slot.degraded.is_some() {
            return;
        }
        error!(self.log, "member degraded"; "member" => &*slot.name, "reason" => &reason,
            "first_missed_tid" => first_missed.map(|t| t.to_hex()));
        slot.degraded = Some(Degraded { reason, first_missed });
        let status = self.array_status();
        warn!(self.log, "array status"; "status" => status);
        self.push_readers();
    }

    /// Every member either connected or failed an attempt: waiting longer
    /// at startup would not change which members start optimal.
    fn all_settled(&self) -> bool {
        self.members.iter().all(|m| m.settled)
    }

    /// Startup is over: members that are not connected now would miss
    /// writes, and members behind the others already did, so they start
    /// degraded (recovery, issue 8, brings them back).
    fn finish_startup(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        // Startup reconciliation: the members with the highest last tid are
        // optimal; a member behind them missed transactions (while it was
        // degraded before a restart of zeoraid) and must never be written
        // on top of. The array's last tid is that highest one, so no client
        // is ever told a lower one.
        for i in 0..self.members.len() {
            let slot = &self.members[i];
            if !slot.connected {
                self.degrade(i, "not reachable at startup".into(), None);
            } else if let Some(behind) = slot.last_tid.filter(|t| *t < self.last_tid) {
                let reason = format!(
                    "missing transactions: last tid {behind}, the array's is {}",
                    self.last_tid
                );
                let first_missed = Some(Tid::from_u64(behind.as_u64() + 1));
                self.degrade(i, reason, first_missed);
            }
        }
        info!(self.log, "array ready"; "status" => self.array_status(), "last_tid" => self.last_tid.to_hex());
        for waiter in self.ready_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    fn on_member_state(
        &mut self,
        name: &str,
        state: ConnState,
        reason: String,
        connected: Option<crate::member::Connected>,
    ) {
        let Some(i) = self.slot_index(name) else { return };
        let was = self.members[i].connected;
        self.members[i].connected = state == ConnState::Ready;
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
            if !self.started && c.last_tid > self.last_tid {
                self.last_tid = c.last_tid;
            }
            // A member that comes back with less than the array committed
            // (its storage was replaced or rolled back) must not be trusted.
            if self.started && self.members[i].optimal() && c.last_tid < self.last_tid {
                let reason = format!(
                    "reconnected with last tid {}, behind the array's {}",
                    c.last_tid, self.last_tid
                );
                self.degrade(i, reason, Some(Tid::from_u64(c.last_tid.as_u64() + 1)));
            }
        }
        if self.members[i].connected != was {
            if !self.members[i].connected && self.members[i].optimal() && self.started {
                // Issue 6 decides when a disconnected member is degraded; a
                // write to it fails and degrades it in the commit path.
                warn!(self.log, "member disconnected"; "member" => name, "reason" => reason);
            }
            self.push_readers();
        }
        if !self.started && self.all_settled() {
            self.finish_startup();
        }
    }
}

impl Actor for Controller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address().recipient();
        for slot in &mut self.members {
            let actor = MemberActor::new(slot.settings.clone(), self.log.clone()).with_subscriber(me.clone());
            slot.addr = Some(actor.start());
        }
        info!(self.log, "controller started"; "storage" => &self.storage, "members" => self.members.len());
    }
}

impl Handler<MemberEvent> for Controller {
    type Result = ();

    fn handle(&mut self, event: MemberEvent, _ctx: &mut Context<Self>) {
        match event {
            MemberEvent::State {
                member,
                state,
                reason,
                connected,
            } => self.on_member_state(&member, state, reason, connected),
            MemberEvent::Callback {
                callback: Callback::Info(info),
                ..
            } => self.last_info = info,
            // Invalidations from a member mean someone else wrote to it;
            // divergence is detected by the failure semantics (issue 6).
            MemberEvent::Callback { .. } => {}
        }
    }
}

impl Handler<WaitReady> for Controller {
    type Result = ResponseActFuture<Self, Result<ArrayReady, String>>;

    fn handle(&mut self, msg: WaitReady, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.started {
            let _ = tx.send(());
        } else {
            self.ready_waiters.push(tx);
            ctx.run_later(msg.within, |act, _| act.finish_startup());
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
        msg.addr.do_send(ToSession::Readers(self.readers()));
        let result = if self.writers().is_empty() {
            Err(crate::session::unavailable(
                "no optimal member: the array has failed",
            ))
        } else {
            self.sessions.insert(msg.session, msg.addr.clone());
            Ok(self.last_tid)
        };
        msg.addr.do_send(ToSession::Registered {
            msgid: msg.msgid,
            result,
        });
    }
}

impl Handler<SessionClosed> for Controller {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, ctx: &mut Context<Self>) {
        self.sessions.remove(&msg.session);
        self.waiting.retain(|v| v.session != msg.session);
        self.packs.retain(|p| p.session != msg.session);
        if self.lock.as_ref().is_some_and(|c| c.session == msg.session) {
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
        let members = self
            .members
            .iter()
            .map(|m| MemberStatus {
                name: m.name.to_string(),
                state: if m.optimal() { "optimal" } else { "degraded" },
                reason: m.degraded.as_ref().map(|d| d.reason.clone()),
                first_missed_tid: m
                    .degraded
                    .as_ref()
                    .and_then(|d| d.first_missed)
                    .map(|t| t.to_hex()),
                connected: m.connected,
                last_tid: m.last_tid.map(|t| t.to_hex()),
            })
            .collect();
        MessageResult(ArrayStatus {
            status: self.array_status(),
            last_tid: self.last_tid.to_hex(),
            members,
        })
    }
}
