//! The election actor: this zeoraid's etcd lease and campaign.
//!
//! - It grants a lease of `lease_ttl`, keeps it alive every
//!   `lease_ttl / 3` (`keepalive.rs`), and campaigns on
//!   `settings.election_key()` with its [`Advertised`] (JSON) as the value
//!   (`campaign.rs`; etcd's election API: the lowest create revision under
//!   the prefix leads, and the epoch is that revision).
//! - It publishes a [`ClusterView`] on every change (role, epoch, leader);
//!   it observes the election, so that a standby's view names the leader.
//! - Once elected it answers [`WaitLeadership`] with a [`Leadership`]
//!   whose [`LeaseClock`](super::LeaseClock) is proven until the send time of the last
//!   answered keepalive + TTL - margin.
//! - When the lease is no longer proven (a timer at the proof's deadline:
//!   a frozen etcd answers nothing and fails nothing), when etcd says the
//!   lease expired, or when another zeoraid's key leads the election, the
//!   leader withdraws the proof and publishes [`Role::Deposed`] with the
//!   reason: the daemon then stops serving. It never becomes leader again
//!   in the same process.
//! - A standby or candidate whose lease is lost just grants a new one and
//!   campaigns again; etcd errors are retried every `lease_ttl / 3`.
//! - [`Resign`] revokes the lease (orderly shutdown: a standby takes over
//!   at once instead of after the TTL) and publishes [`Role::Deposed`].

mod campaign;
mod keepalive;

use super::client::bounded;
use super::{lease_clock, Advertised, ClusterSettings, ClusterView, Leadership, LeaseWriter, Role};
use actix::prelude::*;
use etcd_client::Client;
use slog::{info, warn, Logger};
use std::future::Future;
use tokio::sync::watch;

pub struct Election {
    settings: ClusterSettings,
    log: Logger,
    view: watch::Sender<ClusterView>,
    /// Connected once, on the first attempt that succeeds.
    client: Option<Client>,
    /// The proof of the lease this zeoraid holds now (withdrawn while it
    /// has none); its clock goes into the [`Leadership`].
    proof: LeaseWriter,
    /// The lease this zeoraid campaigns with, while it has one.
    lease: Option<i64>,
    /// Set once elected; cleared when deposed.
    leadership: Option<Leadership>,
    /// Deposed or resigned: it never campaigns again.
    finished: bool,
    tasks: Tasks,
}

/// The futures and timers of the current lease, each replaced (the old one
/// cancelled) when it is started again, all cancelled when the lease ends.
#[derive(Default)]
struct Tasks {
    /// Connecting and granting a lease, or waiting to retry that.
    start: Option<SpawnHandle>,
    keepalive: Option<SpawnHandle>,
    campaign: Option<SpawnHandle>,
    observe: Option<SpawnHandle>,
    /// Fires when the lease is no longer proven.
    deadline: Option<SpawnHandle>,
}

impl Tasks {
    fn replace(ctx: &mut Context<Election>, slot: &mut Option<SpawnHandle>, new: SpawnHandle) {
        if let Some(old) = slot.replace(new) {
            ctx.cancel_future(old);
        }
    }

    fn cancel_all(&mut self, ctx: &mut Context<Election>) {
        let slots = [
            &mut self.start,
            &mut self.keepalive,
            &mut self.campaign,
            &mut self.observe,
            &mut self.deadline,
        ];
        for handle in slots.into_iter().filter_map(Option::take) {
            ctx.cancel_future(handle);
        }
    }
}

impl Election {
    pub fn new(settings: ClusterSettings, log: Logger) -> Election {
        let (view, _) = watch::channel(ClusterView {
            role: Role::Candidate,
            name: settings.name.clone(),
            epoch: None,
            leader: None,
            reason: None,
        });
        let (proof, _) = lease_clock();
        Election {
            settings,
            log,
            view,
            client: None,
            proof,
            lease: None,
            leadership: None,
            finished: false,
            tasks: Tasks::default(),
        }
    }

    fn role(&self) -> Role {
        self.view.borrow().role
    }

    /// Publish a new view; a change of role is logged with its reason.
    fn publish(&self, role: Role, epoch: Option<i64>, leader: Option<Advertised>, reason: String) {
        let previous = self.role();
        if previous != role {
            info!(self.log, "cluster role changed";
                "from" => %previous, "to" => %role, "epoch" => epoch,
                "leader" => leader.as_ref().map(|l| l.name.clone()), "reason" => &reason);
        }
        self.view.send_replace(ClusterView {
            role,
            name: self.settings.name.clone(),
            epoch,
            leader,
            reason: Some(reason),
        });
    }

    /// Keep the role and the leader, with a new reason (an etcd error
    /// while it lasts).
    fn note(&self, reason: String) {
        self.view.send_modify(|view| view.reason = Some(reason));
    }

    /// An etcd call failed: note why (the role stays), and run `again`
    /// after the interval in the task `slot`.
    fn retry_later(
        &mut self,
        ctx: &mut Context<Self>,
        what: &str,
        reason: String,
        slot: fn(&mut Tasks) -> &mut Option<SpawnHandle>,
        again: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        let reason = self.etcd_error(reason);
        warn!(self.log, "cluster: etcd call failed, retrying"; "call" => what, "reason" => &reason);
        self.note(reason);
        let handle = ctx.run_later(self.interval(), again);
        Tasks::replace(ctx, slot(&mut self.tasks), handle);
    }

    /// An etcd error, as operators read it.
    fn etcd_error(&self, reason: String) -> String {
        ElectionError::Etcd {
            endpoints: self.settings.endpoints.clone(),
            reason,
        }
        .to_string()
    }

    /// This zeoraid's lease is gone or no longer proven. A leader is
    /// deposed; anyone else starts over with a new lease.
    fn lease_lost(&mut self, ctx: &mut Context<Self>, reason: String) {
        if self.role() == Role::Leader {
            self.depose(ctx, reason);
            return;
        }
        warn!(self.log, "cluster lease lost, campaigning with a new one"; "reason" => &reason);
        self.end_lease(ctx);
        self.note(reason);
        self.start(ctx);
    }

    /// Stop serving as leader for good.
    fn depose(&mut self, ctx: &mut Context<Self>, reason: String) {
        self.finished = true;
        self.leadership = None;
        self.end_lease(ctx);
        let view = self.view.borrow().clone();
        self.publish(Role::Deposed, view.epoch, view.leader, reason);
    }

    /// Withdraw the proof, cancel the lease's futures and revoke it in the
    /// background (best effort: a lease etcd still has would otherwise
    /// keep its campaign key, and block the next leader, for a TTL).
    fn end_lease(&mut self, ctx: &mut Context<Self>) {
        self.proof.withdraw();
        self.tasks.cancel_all(ctx);
        if let Some(revoke) = self.revoke() {
            ctx.spawn(revoke.into_actor(self).map(|_, _, _| ()));
        }
    }

    /// Revoking the current lease, bounded by the TTL, if there is one.
    fn revoke(&mut self) -> Option<impl Future<Output = ()> + 'static> {
        let (lease, mut client) = (self.lease.take()?, self.client.clone()?);
        let (limit, log) = (self.settings.lease_ttl, self.log.clone());
        Some(async move {
            let revoked = bounded(limit, "revoke the lease", client.lease_revoke(lease)).await;
            if let Err(reason) = revoked {
                warn!(log, "cluster lease not revoked (it expires by itself)"; "reason" => reason);
            }
        })
    }
}

impl Actor for Election {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start(ctx);
    }
}

/// Why the election cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("etcd {endpoints:?}: {reason}")]
    Etcd { endpoints: Vec<String>, reason: String },
    #[error("deposed: {0}")]
    Deposed(String),
}

/// The current view and every later one.
#[derive(Message)]
#[rtype(result = "watch::Receiver<ClusterView>")]
pub struct WatchView;

impl Handler<WatchView> for Election {
    type Result = MessageResult<WatchView>;

    fn handle(&mut self, _: WatchView, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view.subscribe())
    }
}

/// Resolves once this zeoraid is elected, or fails once it never will be
/// (deposed or resigned).
#[derive(Message)]
#[rtype(result = "Result<Leadership, ElectionError>")]
pub struct WaitLeadership;

impl Handler<WaitLeadership> for Election {
    type Result = ResponseActFuture<Self, Result<Leadership, ElectionError>>;

    fn handle(&mut self, _: WaitLeadership, _: &mut Context<Self>) -> Self::Result {
        let mut view = self.view.subscribe();
        let decided = async move {
            // The sender lives as long as the actor that answers below.
            let _ = view
                .wait_for(|view| matches!(view.role, Role::Leader | Role::Deposed))
                .await;
        };
        Box::pin(decided.into_actor(self).map(|_, act, _| {
            act.leadership
                .clone()
                .ok_or_else(|| ElectionError::Deposed(act.view.borrow().reason.clone().unwrap_or_default()))
        }))
    }
}

/// Revoke the lease (orderly shutdown); the view turns [`Role::Deposed`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resign;

impl Handler<Resign> for Election {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Resign, ctx: &mut Context<Self>) -> Self::Result {
        let revoke = self.revoke();
        self.depose(ctx, "resigned (orderly shutdown)".into());
        Box::pin(
            async move {
                if let Some(revoke) = revoke {
                    revoke.await;
                }
            }
            .into_actor(self),
        )
    }
}
