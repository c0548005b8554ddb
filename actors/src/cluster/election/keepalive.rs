//! The lease: granted, kept alive, proven, and lost when the proof lapses.
//!
//! The proof is the send time of the last answered keepalive + TTL -
//! margin (see [`LeaseClock`](crate::cluster::LeaseClock)). etcd counts the
//! TTL from when it *received* that keepalive, which is later, so without a
//! margin the proof would already end before etcd could expire the lease.
//! The margin, a fifth of the TTL, covers what that argument leaves out:
//! the time between the commit path reading the proof and the commit
//! reaching the members, the deadline timer firing late on a busy
//! single-threaded runtime, and the difference between this host's clock
//! rate and etcd's. Keepalives go every third of the TTL, so two of them may
//! go unanswered before the proof (four fifths of the TTL) lapses.

use super::{Election, Tasks};
use crate::cluster::client::{bounded, connect};
use actix::prelude::*;
use etcd_client::Client;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

impl Election {
    /// The keepalive interval, also the delay before an etcd call is
    /// retried.
    pub(super) fn interval(&self) -> Duration {
        self.settings.lease_ttl / 3
    }

    fn margin(&self) -> Duration {
        self.settings.lease_ttl / 5
    }

    /// Connect (once) and grant a lease, then keep it alive, campaign and
    /// observe; on an etcd error, retry after the interval.
    pub(super) fn start(&mut self, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        let settings = self.settings.clone();
        let client = self.client.clone();
        let ttl_seconds = settings.lease_ttl.as_secs_f64().ceil() as i64;
        let grant = async move {
            let mut client = match client {
                Some(client) => client,
                None => connect(&settings).await?,
            };
            let sent = Instant::now();
            let granted = bounded(
                settings.lease_ttl,
                "grant a lease",
                client.lease_grant(ttl_seconds, None),
            )
            .await;
            Ok::<_, String>((client, granted.map(|g| (g.id(), g.ttl(), sent))))
        };
        let handle = ctx.spawn(grant.into_actor(self).map(|result, act, ctx| {
            act.tasks.start = None;
            let granted = result.and_then(|(client, granted)| {
                act.client = Some(client);
                granted
            });
            match granted {
                Ok((lease, ttl, sent)) => act.granted(ctx, lease, ttl, sent),
                Err(reason) => act.retry_later(ctx, "grant a lease", reason, |t| &mut t.start, Self::start),
            }
        }));
        Tasks::replace(ctx, &mut self.tasks.start, handle);
    }

    fn granted(&mut self, ctx: &mut Context<Self>, lease: i64, ttl: i64, sent: Instant) {
        self.lease = Some(lease);
        self.prove(ctx, lease, sent, ttl);
        self.keep_alive(ctx, lease);
        self.campaign(ctx, lease);
        self.observe(ctx);
    }

    /// Run the keepalive loop of `lease`; when its stream ends, open it
    /// again after the interval (the deadline timer decides whether the
    /// lease survived the gap).
    fn keep_alive(&mut self, ctx: &mut Context<Self>, lease: i64) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let looped = keepalive_loop(client, lease, self.interval(), ctx.address());
        let handle = ctx.spawn(looped.into_actor(self).map(move |reason, act, ctx| {
            if act.lease != Some(lease) {
                return;
            }
            let again = move |act: &mut Self, ctx: &mut Context<Self>| {
                if act.lease == Some(lease) {
                    act.keep_alive(ctx, lease);
                }
            };
            act.retry_later(ctx, "keep the lease alive", reason, |t| &mut t.keepalive, again);
        }));
        Tasks::replace(ctx, &mut self.tasks.keepalive, handle);
    }

    /// A keepalive (or the grant) sent at `sent` was answered with `ttl`
    /// seconds: proven until `sent + ttl - margin`, with a timer there.
    fn prove(&mut self, ctx: &mut Context<Self>, lease: i64, sent: Instant, ttl: i64) {
        if ttl <= 0 {
            self.lease_lost(ctx, "etcd says the lease expired".into());
            return;
        }
        let granted = Duration::from_secs(ttl.unsigned_abs());
        let ttl = granted.min(self.settings.lease_ttl);
        self.proof.proven_until(sent + ttl.saturating_sub(self.margin()));
        let Some(until) = self.proof.clock().valid_until() else {
            return;
        };
        let wait = until.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(wait, move |act, ctx| act.proof_lapsed(ctx, lease));
        Tasks::replace(ctx, &mut self.tasks.deadline, handle);
    }

    fn proof_lapsed(&mut self, ctx: &mut Context<Self>, lease: i64) {
        self.tasks.deadline = None;
        if self.lease != Some(lease) || self.proof.clock().proven() {
            return;
        }
        let reason = format!(
            "lease no longer proven: no keepalive answered in time (lease_ttl {:?}, margin {:?})",
            self.settings.lease_ttl,
            self.margin()
        );
        self.lease_lost(ctx, reason);
    }
}

/// One keepalive of `lease` sent at `sent` was answered with `ttl`.
#[derive(Message)]
#[rtype(result = "()")]
struct Answered {
    lease: i64,
    sent: Instant,
    ttl: i64,
}

impl Handler<Answered> for Election {
    type Result = ();

    fn handle(&mut self, answer: Answered, ctx: &mut Context<Self>) {
        if self.lease == Some(answer.lease) {
            self.prove(ctx, answer.lease, answer.sent, answer.ttl);
        }
    }
}

/// Send a keepalive every `interval` on one stream and report each answer
/// with the send time of the keepalive it answers (etcd answers them in
/// order). Returns why the stream ended.
async fn keepalive_loop(
    mut client: Client,
    lease: i64,
    interval: Duration,
    election: Addr<Election>,
) -> String {
    let (mut keeper, mut answers) = match client.lease_keep_alive(lease).await {
        Ok(stream) => stream,
        Err(e) => return format!("open the keepalive stream: {e}"),
    };
    let mut sent_times = VecDeque::new();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                sent_times.push_back(Instant::now());
                if let Err(e) = keeper.keep_alive().await {
                    return format!("send a keepalive: {e}");
                }
            }
            answer = answers.message() => match answer {
                Ok(Some(answer)) => {
                    let Some(sent) = sent_times.pop_front() else {
                        return "a keepalive answer nobody asked for".into();
                    };
                    election.do_send(Answered { lease, sent, ttl: answer.ttl() });
                }
                Ok(None) => return "etcd closed the keepalive stream".into(),
                Err(e) => return format!("keepalive: {e}"),
            }
        }
    }
}
