//! The election actor: this zeoraid's etcd lease and campaign.
//!
//! CONTRACT (to be implemented):
//! - started with [`ClusterSettings`]; grants a lease of `lease_ttl`, keeps
//!   it alive every `lease_ttl / 3`, and campaigns on
//!   `settings.election_key()` with its [`Advertised`] (JSON) as the value
//!   (etcd's election API: the lowest create revision under the prefix
//!   leads; the epoch is that revision);
//! - publishes a [`ClusterView`] on every change (role, epoch, leader);
//!   while standby it observes the leader so the view names it;
//! - once elected, answers [`WaitLeadership`] with a [`Leadership`] whose
//!   [`LeaseClock`] is proven until (send time of the last answered
//!   keepalive + TTL - margin);
//! - when the lease is no longer proven (keepalives unanswered past the
//!   deadline, the lease expired, the campaign key gone), withdraws the
//!   proof and publishes [`Role::Deposed`] with the reason: the daemon
//!   then stops serving. It never becomes leader again in the same
//!   process;
//! - [`Resign`] revokes the lease (orderly shutdown: a standby takes over
//!   at once instead of after the TTL).

use super::{Advertised, ClusterSettings, ClusterView, Leadership, LeaseClock, Role};
use actix::prelude::*;
use slog::Logger;
use tokio::sync::watch;

pub struct Election {
    settings: ClusterSettings,
    log: Logger,
    view: watch::Sender<ClusterView>,
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
        Election { settings, log, view }
    }
}

impl Actor for Election {
    type Context = Context<Self>;
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

/// Resolves once this zeoraid is elected.
#[derive(Message)]
#[rtype(result = "Result<Leadership, ElectionError>")]
pub struct WaitLeadership;

/// Revoke the lease (orderly shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resign;

// Silence unused imports until implemented.
#[allow(dead_code)]
fn _unused(_: Advertised, _: LeaseClock) {}

impl Handler<WaitLeadership> for Election {
    type Result = ResponseFuture<Result<Leadership, ElectionError>>;
    fn handle(&mut self, _: WaitLeadership, _: &mut Context<Self>) -> Self::Result {
        unimplemented!("{:?} {:?}", self.settings, self.log)
    }
}

impl Handler<Resign> for Election {
    type Result = ();
    fn handle(&mut self, _: Resign, _: &mut Context<Self>) {}
}

impl Handler<WatchView> for Election {
    type Result = MessageResult<WatchView>;
    fn handle(&mut self, _: WatchView, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view.subscribe())
    }
}
