//! The campaign (waits until this zeoraid's key is the oldest under the
//! election prefix) and the observation of who leads.

use super::{Election, Tasks};
use crate::cluster::client::bounded;
use crate::cluster::{Advertised, Leadership, Role};
use actix::prelude::*;
use etcd_client::Client;

/// Won the election: the campaign key and the revision that created it.
struct Won {
    key: Vec<u8>,
    epoch: i64,
}

impl Election {
    /// Campaign with `lease`; once elected, lead if the lease is proven.
    /// A failed campaign is tried again after the interval with the same
    /// lease (a lost lease shows in its keepalives and starts over).
    pub(super) fn campaign(&mut self, ctx: &mut Context<Self>, lease: i64) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let value = serde_json::to_vec(&self.settings.advertised).expect("addresses serialize");
        let campaign = campaign(
            client,
            self.settings.election_key(),
            value,
            lease,
            self.settings.lease_ttl,
        );
        let handle = ctx.spawn(campaign.into_actor(self).map(move |result, act, ctx| {
            act.tasks.campaign = None;
            if act.lease != Some(lease) {
                return;
            }
            match result {
                Ok(won) => act.elected(ctx, won),
                Err(reason) => {
                    let again = move |act: &mut Self, ctx: &mut Context<Self>| {
                        if act.lease == Some(lease) {
                            act.campaign(ctx, lease);
                        }
                    };
                    act.retry_later(ctx, "campaign", reason, |t| &mut t.campaign, again);
                }
            }
        }));
        Tasks::replace(ctx, &mut self.tasks.campaign, handle);
    }

    fn elected(&mut self, ctx: &mut Context<Self>, won: Won) {
        let lease = self.proof.clock();
        if !lease.proven() {
            self.lease_lost(ctx, "elected, but the lease is no longer proven".into());
            return;
        }
        self.leadership = Some(Leadership {
            epoch: won.epoch,
            key: won.key,
            lease,
        });
        let advertised = self.settings.advertised.clone();
        let reason = format!("elected at etcd revision {}", won.epoch);
        self.publish(Role::Leader, Some(won.epoch), Some(advertised), reason);
    }

    /// Follow who leads: a standby's view names the leader; a leader that
    /// sees another key lead is deposed. Reopened after the interval when
    /// the stream ends.
    pub(super) fn observe(&mut self, ctx: &mut Context<Self>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let observed = observe(client, self.settings.election_key(), ctx.address());
        let handle = ctx.spawn(observed.into_actor(self).map(|reason, act, ctx| {
            act.tasks.observe = None;
            if act.finished {
                return;
            }
            act.retry_later(
                ctx,
                "observe the election",
                reason,
                |t| &mut t.observe,
                Self::observe,
            );
        }));
        Tasks::replace(ctx, &mut self.tasks.observe, handle);
    }
}

/// Campaign until elected, then check that the key is still there: etcd
/// 3.4 ends a campaign once every older key is gone without checking that
/// its own key survived the wait (its lease may have expired meanwhile).
async fn campaign(
    mut client: Client,
    election: String,
    value: Vec<u8>,
    lease: i64,
    limit: std::time::Duration,
) -> Result<Won, String> {
    let answer = client
        .campaign(election, value, lease)
        .await
        .map_err(|e| format!("campaign: {e}"))?;
    let leader = answer.leader().ok_or("campaign answered without a key")?;
    let won = Won {
        key: leader.key().to_vec(),
        epoch: leader.rev(),
    };
    let found = bounded(limit, "read the campaign key", client.get(won.key.clone(), None)).await?;
    match found.kvs().first() {
        Some(kv) if kv.create_revision() == won.epoch && kv.lease() == lease => Ok(won),
        _ => Err("the campaign key vanished before the campaign ended".into()),
    }
}

/// The leader's key as the election's observers see it.
#[derive(Message)]
#[rtype(result = "()")]
struct LeaderSeen {
    key: Vec<u8>,
    epoch: i64,
    advertised: Option<Advertised>,
}

impl Handler<LeaderSeen> for Election {
    type Result = ();

    fn handle(&mut self, seen: LeaderSeen, ctx: &mut Context<Self>) {
        match (self.role(), &self.leadership) {
            (Role::Deposed, _) => {}
            // A key created after this leader's leads: this one's is gone.
            // (An older key seen now is a report from before the election.)
            (Role::Leader, Some(ours)) if seen.epoch > ours.epoch => {
                let other = seen.advertised.map(|a| a.name).unwrap_or_default();
                let reason = format!("another zeoraid ({other}) leads at etcd revision {}", seen.epoch);
                self.depose(ctx, reason);
            }
            (Role::Leader, _) => {}
            (_, _) => match seen.advertised {
                Some(leader) if leader.name != self.settings.name => {
                    let reason = format!("{} leads at etcd revision {}", leader.name, seen.epoch);
                    self.publish(Role::Standby, Some(seen.epoch), Some(leader), reason);
                }
                // This zeoraid's own key (the campaign is about to end, or
                // an older lease's key not yet expired): no other leader.
                Some(_) => {}
                None => self.note(format!("the leader's key {:?} is not a zeoraid's", seen.key)),
            },
        }
    }
}

/// Report every leader the election sees; returns why the stream ended.
async fn observe(mut client: Client, election: String, to: Addr<Election>) -> String {
    let mut leaders = match client.observe(election).await {
        Ok(stream) => stream,
        Err(e) => return format!("observe the election: {e}"),
    };
    loop {
        match leaders.message().await {
            Ok(Some(answer)) => {
                if let Some(kv) = answer.kv() {
                    to.do_send(LeaderSeen {
                        key: kv.key().to_vec(),
                        epoch: kv.create_revision(),
                        advertised: serde_json::from_slice(kv.value()).ok(),
                    });
                }
            }
            Ok(None) => return "etcd closed the observation of the election".into(),
            Err(e) => return format!("observe the election: {e}"),
        }
    }
}
