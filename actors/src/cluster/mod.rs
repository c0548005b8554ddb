//! Several zeoraids in front of the same members: one leader, elected on
//! etcd, serves clients; the others are standbys (ARCHITECTURE.md §9).
//!
//! - [`election`]: the [`Election`] actor owns this zeoraid's etcd lease
//!   and its campaign; it publishes a [`ClusterView`] (role, epoch, who
//!   leads) and, once elected, a [`Leadership`].
//! - [`lease`]: [`LeaseClock`], the leader's proof that its lease is still
//!   valid, read on the commit path (nothing is acknowledged without it).
//! - [`store`]: [`EtcdStore`], the array state in etcd, written only under
//!   the leader's epoch.
//!
//! Without `[cluster]` none of this runs: the daemon serves alone with its
//! state file.

mod client;
pub mod election;
pub mod lease;
pub mod store;

pub use election::{Election, Resign, WaitLeadership, WatchView};
pub use lease::{lease_clock, LeaseClock, LeaseWriter};
pub use store::EtcdStore;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the `[cluster]` table configures, validated.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// etcd client URLs (`http://host:port`).
    pub endpoints: Vec<String>,
    /// This zeoraid's name, unique in the cluster.
    pub name: String,
    /// The lease's time to live: a leader that cannot renew it within this
    /// steps down, and a standby takes over about this long after the
    /// leader died.
    pub lease_ttl: Duration,
    /// Every key zeoraid writes in etcd starts with this (so several
    /// arrays can share one etcd): the election under `{prefix}/leader`,
    /// the array state at `{prefix}/state`.
    pub prefix: String,
    /// Where this zeoraid serves, published while it leads so that
    /// standbys and operators can name the leader's addresses.
    pub advertised: Advertised,
}

impl ClusterSettings {
    pub fn election_key(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    pub fn state_key(&self) -> String {
        format!("{}/state", self.prefix)
    }
}

/// A zeoraid's addresses as its peers and operators see them: the value of
/// its campaign key in etcd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advertised {
    pub name: String,
    /// The ZEO client address (only the leader listens there).
    pub listen: String,
    /// The HTTP management address.
    pub http: String,
}

/// This zeoraid's part in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Campaigning, with no leader known yet (or etcd not reached yet).
    Candidate,
    /// Campaigning while another zeoraid leads.
    Standby,
    /// Elected: the lease is proven and the takeover may run or ran.
    Leader,
    /// Was leader and is no longer sure of it (lease not proven, or a
    /// write under its epoch refused): it must stop serving at once.
    Deposed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Candidate => "candidate",
            Role::Standby => "standby",
            Role::Leader => "leader",
            Role::Deposed => "deposed",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the election actor knows, as it publishes it: for `/status`, the
/// metrics and the daemon's lifecycle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterView {
    pub role: Role,
    /// This zeoraid's name.
    pub name: String,
    /// The current leader's epoch (the etcd revision that elected it), when
    /// a leader is known.
    pub epoch: Option<i64>,
    /// The current leader, when one is known (this zeoraid while it leads).
    pub leader: Option<Advertised>,
    /// Why the role last changed, or the last etcd error while it persists.
    pub reason: Option<String>,
}

/// Won an election: what the leader needs for its term.
#[derive(Clone, Debug)]
pub struct Leadership {
    /// The etcd revision that created this zeoraid's campaign key when it
    /// was elected: rises with every new leader.
    pub epoch: i64,
    /// The campaign key (its create revision is `epoch`): every write of
    /// the array state is an etcd transaction on it.
    pub key: Vec<u8>,
    /// The lease's proof, for the commit path.
    pub lease: LeaseClock,
}
