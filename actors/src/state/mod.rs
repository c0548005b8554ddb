//! The array's durable state: what zeoraid knows about the array and each
//! member, written before it is relied on, so that a restart never forgets
//! who holds the acknowledged transactions (`docs/invariants.md#durable-state`).
//!
//! The controller owns the state and writes it through a [`StateStore`]
//! at every change: a degradation (before the commit that caused it is
//! acknowledged), the first transaction a degraded member missed, a
//! recovery's end, an operator's disable, a reload, a missed pack. Not per
//! commit: between two writes every acknowledged transaction is on every
//! member the state calls optimal. Two backends: [`FileStore`] (a JSON
//! file under `state_dir`) for a zeoraid alone, and, for several zeoraids
//! in front of the same members (`[cluster]`),
//! [`EtcdStore`](crate::cluster::EtcdStore) (the same JSON in etcd).

mod file;

pub use file::FileStore;

use crate::status::DegradeKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use zeo::types::{Oid, Tid};

/// What the array knows, as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArrayRecord {
    /// The layout of this record; a zeoraid refuses one it does not know.
    pub format: u32,
    /// Rises by one with every write.
    pub generation: u64,
    /// The array's last acknowledged tid when this was written: a
    /// restarted array never serves a lower one.
    #[serde(with = "crate::tid::hex")]
    pub last_tid: Tid,
    /// The highest oid handed out when this was written.
    #[serde(with = "crate::tid::hex")]
    pub max_oid: Oid,
    /// Every configured member by name.
    pub members: BTreeMap<String, MemberRecord>,
    /// Every time an operator forced a member optimal, oldest first: the
    /// array then went on from that member's history, and what only other
    /// members held may be lost (absent in files written before forcing
    /// existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced: Vec<ForcedRecord>,
    /// Where an unfinished scrub stands (absent in files written before
    /// the scrub existed, and when none is unfinished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub: Option<ScrubPosition>,
    /// Why the array is inconsistent (a scrub found members that differ
    /// with no majority), until a later scrub finds nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconsistent: Option<String>,
}

/// An unfinished scrub: it compared everything below `next`, and
/// compares up to `to`; a restart resumes it there.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScrubPosition {
    #[serde(with = "crate::tid::hex")]
    pub next: Tid,
    #[serde(with = "crate::tid::hex")]
    pub to: Tid,
}

/// One `force-optimal`, as written: the array's history went on from
/// `member`'s last tid, so the transactions after `lost_after_tid` up to
/// `lost_up_to_at_least_tid` (and possibly later ones, acknowledged after
/// the state was last written before the force) may be gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForcedRecord {
    /// When (seconds since the Unix epoch).
    pub at: f64,
    /// The member made optimal.
    pub member: String,
    /// Its last tid: the array's new last tid.
    #[serde(with = "crate::tid::hex")]
    pub lost_after_tid: Tid,
    /// The array's last acknowledged tid before the force, as zeoraid knew it.
    #[serde(with = "crate::tid::hex")]
    pub lost_up_to_at_least_tid: Tid,
    /// The members that held every acknowledged transaction, whose return
    /// the array had been waiting for.
    pub held_only_by: Vec<String>,
    /// The members marked diverged by the force: they may hold
    /// transactions the array no longer has.
    pub diverged: Vec<String>,
}

impl ArrayRecord {
    /// An array's first state: every member holds every acknowledged
    /// transaction (there is none yet); the members' own last tids decide
    /// the array's at startup. Written before the first start waits for
    /// its members, so that a first start interrupted there is still a
    /// first start the next time (not a removed state).
    pub fn first_start<'a>(members: impl IntoIterator<Item = &'a str>) -> ArrayRecord {
        ArrayRecord {
            format: FORMAT,
            members: members
                .into_iter()
                .map(|name| (name.to_string(), MemberRecord::default()))
                .collect(),
            ..ArrayRecord::default()
        }
    }
}

/// The record layout this zeoraid writes and reads.
pub const FORMAT: u32 = 1;

/// One member, as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Why it gets no reads or writes; `None`: it holds every acknowledged
    /// transaction (optimal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<DegradedRecord>,
    /// The latest pack time the array packed at while it was degraded:
    /// its recovery compares history before it leniently and packs it the
    /// same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed_while_degraded: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DegradedRecord {
    pub kind: DegradeKind,
    pub reason: String,
    /// When (seconds since the Unix epoch).
    pub since: f64,
    /// The first transaction it did not get; `None`: none was acknowledged
    /// since it was degraded.
    #[serde(
        default,
        with = "crate::tid::opt_hex",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_missed_tid: Option<Tid>,
    /// The highest oid handed out when it was degraded: if oids were handed
    /// out since, its counter is behind and it needs a recovery to rejoin.
    #[serde(with = "crate::tid::hex")]
    pub max_oid: Oid,
}

/// Where the array's state is kept. `load` once at startup, then `save`
/// at every change; `save` returns only once the record is durable.
pub trait StateStore: Send {
    /// The state last written, or `None` on an array's first start.
    fn load(&mut self) -> Result<Option<ArrayRecord>, StateError>;
    fn save(&mut self, record: &ArrayRecord) -> Result<(), StateError>;
    /// Where the state lives, for operators (`/details`, the log).
    fn location(&self) -> String;
}

/// Why the state cannot be read or written. Every one stops zeoraid from
/// trusting anything it would have to guess.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state_dir {} is in use by another zeoraid ({holder}); each zeoraid needs its own state_dir \
         (or, for several zeoraids on the same members, the [cluster] configuration)",
        dir.display()
    )]
    Locked { dir: PathBuf, holder: String },
    #[error("array state {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "array state {} is unreadable ({reason}): zeoraid will not guess which members hold the \
         acknowledged transactions. Restore the file from a backup; or, only if every member is known \
         to hold the same transactions, remove {} to start afresh (the members' own last tids are then \
         trusted as on a first start)",
        path.display(), dir.display()
    )]
    Corrupt {
        path: PathBuf,
        dir: PathBuf,
        reason: String,
    },
    #[error(
        "array state {} is missing, but {} was used before (its lock file exists): zeoraid will not \
         guess which members hold the acknowledged transactions. Restore the file from a backup; or, \
         only if every member is known to hold the same transactions, remove {} to start afresh",
        path.display(), dir.display(), dir.display()
    )]
    Missing { path: PathBuf, dir: PathBuf },
    #[error(
        "array state in {location}: {reason}. zeoraid cannot trust or change the array's state \
         without etcd: check that etcd is running and reachable from this host"
    )]
    Etcd { location: String, reason: String },
    #[error(
        "array state in {location} not written: this zeoraid is no longer the leader elected at etcd \
         revision {epoch} (another zeoraid was elected since, or its lease expired). It stops serving \
         and rejoins as a standby; the leader keeps the state"
    )]
    Deposed { location: String, epoch: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_written_before_forcing_existed_loads_with_no_force() {
        let old = r#"{"format": 1, "generation": 3, "last_tid": "03e0000000000001",
            "max_oid": "0000000000000002", "members": {"zeo1": {}}}"#;
        let record: ArrayRecord = serde_json::from_str(old).unwrap();
        assert!(record.forced.is_empty());
        assert_eq!(record.scrub, None, "written before the scrub existed");
        assert_eq!(record.inconsistent, None);
        let text = serde_json::to_string(&record).unwrap();
        assert!(!text.contains("forced"), "{text}");
        assert!(!text.contains("scrub"), "{text}");
    }

    #[test]
    fn a_force_is_written_with_the_range_it_may_have_lost() {
        let mut record = ArrayRecord::default();
        record.forced.push(ForcedRecord {
            at: 1.5,
            member: "zeo2".into(),
            lost_after_tid: Tid::from_u64(0x03e0_0000_0000_0001),
            lost_up_to_at_least_tid: Tid::from_u64(0x03e0_0000_0000_0002),
            held_only_by: vec!["zeo1".into()],
            diverged: vec!["zeo1".into()],
        });
        let text = serde_json::to_string(&record).unwrap();
        assert!(
            text.contains(r#""lost_after_tid":"03e0000000000001""#)
                && text.contains(r#""lost_up_to_at_least_tid":"03e0000000000002""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<ArrayRecord>(&text).unwrap(), record);
    }
}
