//! The recovery actor's API: what it is started with
//! ([`RecoverySettings`]), what it reports ([`RecoveryEvent`]), and what
//! its caller (the controller) asks it ([`CatchUp`], [`CopyTail`],
//! [`SyncOids`], [`Stop`], [`GetStatus`]).

use super::error::RecoveryError;
use super::pace::Throttle;
use crate::member::MemberActor;
use actix::{Addr, Message};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use zeo::types::{Oid, Tid};

/// How much of the target's history is compared with the source before
/// anything is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyWindow {
    /// The target's `n` most recent (undoable) transactions, found with
    /// `undoLog` (at least its last transaction is always compared).
    Last(usize),
    /// Its whole history (as long as the target's size; for an operator
    /// who wants certainty).
    All,
}

impl Default for VerifyWindow {
    fn default() -> Self {
        VerifyWindow::Last(100)
    }
}

/// Everything a recovery needs, handed over by the controller.
#[derive(Clone, Debug)]
pub struct RecoverySettings {
    /// The member being recovered (the target).
    pub member: String,
    pub target: Addr<MemberActor>,
    /// The optimal member the transactions are read from.
    pub source_name: String,
    pub source: Addr<MemberActor>,
    /// Rate limits of the streaming copy (the config's `[recovery]`
    /// types; `None` = unthrottled). The tail copied under the commit
    /// lock ([`CopyTail`]) is never throttled: commits wait for it.
    pub throttle: Throttle,
    pub verify_window: VerifyWindow,
    /// The operator asked for a full copy: allowed only onto an *empty*
    /// member (an empty member gets a full copy anyway). zeoraid never
    /// deletes data, so a member that diverged must be wiped by the
    /// operator first; `full` then guards against wiping the wrong one.
    pub full: bool,
    /// A pass over the source that copied fewer transactions than this
    /// means the target has caught up ([`RecoveryEvent::CaughtUp`]). Each
    /// pass reads the source's history up to its last tid when the pass
    /// started, so under continuous writes a pass is rarely empty. (A pass that
    /// copies more than half as many as the one before means the same: see
    /// [`RecoveryEvent::CaughtUp`].)
    pub caught_up_below: u64,
    /// How often [`RecoveryEvent::Progress`] is sent while copying.
    pub progress_interval: Duration,
    /// How often a progress line is logged while copying.
    pub log_interval: Duration,
    /// Where blobs are spooled between download and upload; `None` =
    /// the system's temporary directory.
    pub spool_dir: Option<PathBuf>,
    /// The array packed at this time (`pack(t)`, seconds since the epoch)
    /// while the target was away. The source's transactions before it
    /// lost the revisions (and whole transactions) the pack removed, so
    /// verification only asks there that the target hold the source's
    /// records, and once the first pass has copied everything up to the
    /// pack time the target is packed at `t` too, ending as the source.
    pub missed_pack: Option<f64>,
}

impl RecoverySettings {
    /// Settings with the defaults: unthrottled, a window of the last 100
    /// transactions, progress every second, a log line every 5 seconds.
    pub fn new(
        member: impl Into<String>,
        target: Addr<MemberActor>,
        source_name: impl Into<String>,
        source: Addr<MemberActor>,
    ) -> RecoverySettings {
        RecoverySettings {
            member: member.into(),
            target,
            source_name: source_name.into(),
            source,
            throttle: Throttle::UNLIMITED,
            verify_window: VerifyWindow::default(),
            full: false,
            caught_up_below: 10,
            progress_interval: Duration::from_secs(1),
            log_interval: Duration::from_secs(5),
            spool_dir: None,
            missed_pack: None,
        }
    }
}

/// The recovery's phase, as shown in status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryPhase {
    /// Comparing the target's recent history with the source.
    Verifying,
    /// Streaming the source's transactions onto the target.
    Copying,
    /// A pass found (almost) nothing new: waiting for [`CopyTail`] (or
    /// [`CatchUp`]).
    CaughtUp,
    /// Copying the tail under the caller's commit lock.
    CopyingTail,
    /// Finishing the transaction in flight before stopping.
    Stopping,
}

impl RecoveryPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryPhase::Verifying => "verifying",
            RecoveryPhase::Copying => "copying",
            RecoveryPhase::CaughtUp => "caught-up",
            RecoveryPhase::CopyingTail => "copying-tail",
            RecoveryPhase::Stopping => "stopping",
        }
    }
}

/// Where a recovery stands (for `/details`, `/metrics`, `ctl details`).
/// Tids serialize as 16 hex digits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: RecoveryPhase,
    pub source: String,
    /// The target's last tid when the copy began (zero for a full copy).
    #[serde(with = "crate::tid::hex")]
    pub started_from_tid: Tid,
    pub copied_transactions: u64,
    /// Record data plus blob content.
    pub copied_bytes: u64,
    pub copied_blobs: u64,
    /// Blob records the source had no blob file for (`sendBlob` answered
    /// an error): copied as plain records, so the target is as the source.
    pub blobs_missing_on_source: u64,
    /// Everything up to here is on the target.
    #[serde(with = "crate::tid::hex")]
    pub last_copied_tid: Tid,
    /// The source's last tid when last asked (about once a second).
    #[serde(with = "crate::tid::hex")]
    pub source_last_tid: Tid,
    /// Of the history between `started_from_tid` and `source_last_tid`,
    /// measured in commit time (tids are timestamps), how much is copied:
    /// 0.0 to 1.0.
    pub fraction_done: f64,
    /// Over the last ~10 seconds.
    pub rate_tps: f64,
    pub rate_bytes_per_second: f64,
    /// `None` until there is a rate.
    pub eta_seconds: Option<f64>,
    pub elapsed_seconds: f64,
}

/// What the recovery tells its recipient (the controller). After
/// `Refused`, `SourceFailed` and `TargetFailed` the actor has stopped.
/// Failures of a request ([`CopyTail`], [`SyncOids`]) are that request's
/// answer instead, never an event as well.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub enum RecoveryEvent {
    /// The target's history matches the source; copying starts after
    /// `target_last_tid` (zero: a full copy of an empty member).
    Verified {
        member: String,
        target_last_tid: Tid,
        source_last_tid: Tid,
        compared_transactions: u64,
        full_copy: bool,
    },
    /// Every `progress_interval` while copying, and at each milestone.
    Progress { member: String, progress: Progress },
    /// A pass over the source copied fewer than `caught_up_below`
    /// transactions (the gap is small), or a pass copied more than half as many as
    /// the pass before and was cut short (writers commit about as fast as
    /// the stream copies, so passes would never get short: only a final
    /// step in slices, commits waiting meanwhile, closes the gap). The
    /// actor now waits for [`CopyTail`] (or [`CatchUp`] to keep streaming).
    CaughtUp {
        member: String,
        last_copied_tid: Tid,
        source_last_tid: Tid,
        copied_transactions: u64,
    },
    /// The target's history differs from the source's (or `full` was
    /// asked for a non-empty member). Nothing was written.
    Refused { member: String, reason: String },
    /// The source failed; the target is complete up to `resume_from`.
    SourceFailed {
        member: String,
        reason: String,
        resume_from: Tid,
    },
    /// The target failed or refused a transaction.
    TargetFailed { member: String, reason: String },
}

impl RecoveryEvent {
    pub fn member(&self) -> &str {
        match self {
            RecoveryEvent::Verified { member, .. }
            | RecoveryEvent::Progress { member, .. }
            | RecoveryEvent::CaughtUp { member, .. }
            | RecoveryEvent::Refused { member, .. }
            | RecoveryEvent::SourceFailed { member, .. }
            | RecoveryEvent::TargetFailed { member, .. } => member,
        }
    }

    pub(crate) fn failure(member: String, error: RecoveryError) -> RecoveryEvent {
        match error {
            RecoveryError::Refused { reason } => RecoveryEvent::Refused { member, reason },
            RecoveryError::Source { reason, resume_from } => RecoveryEvent::SourceFailed {
                member,
                reason,
                resume_from,
            },
            RecoveryError::Target { reason } => RecoveryEvent::TargetFailed { member, reason },
            other @ (RecoveryError::InvalidState(_) | RecoveryError::Stopped(_)) => {
                RecoveryEvent::TargetFailed {
                    member,
                    reason: other.to_string(),
                }
            }
        }
    }
}

/// After [`RecoveryEvent::CaughtUp`]: keep streaming until caught up again
/// (the caller found the gap too large, or cannot take its lock yet).
/// Ignored unless the recovery is caught up.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CatchUp;

/// The final step, sent while the caller holds its commit lock: copy
/// everything after the last copied transaction up to and including
/// `until` (the array's last tid), unthrottled. A stream pass in progress
/// is cut short first (after its transaction in flight). Afterwards the
/// target's last tid is `until`, unless `budget` ran out first.
#[derive(Debug, Message)]
#[rtype(result = "Result<TailCopied, RecoveryError>")]
pub struct CopyTail {
    pub until: Tid,
    /// Stop after the transaction in flight once this long has passed
    /// (at least one transaction is copied): one slice of a tail too long
    /// to copy while commits wait. The answer then has `complete: false`;
    /// the caller lets its waiting commits through and asks again with
    /// its new last tid. `None`: the whole tail in one go.
    pub budget: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCopied {
    pub transactions: u64,
    pub bytes: u64,
    /// The target's last tid now (`until` when `complete`).
    pub last_tid: Tid,
    /// Whether the target reached `until`.
    pub complete: bool,
    /// Transactions the whole recovery has copied, this tail included.
    pub recovery_total: u64,
    /// From the request's arrival to the answer: how long the caller's
    /// commit lock was needed for the copy.
    pub elapsed: Duration,
}

/// Bring the target's oid counter past `at_least` (the highest oid the
/// array has handed out) by calling `new_oids` on it: afterwards its next
/// `new_oids` returns only larger oids. Answers the last oid allocated.
/// Restores raise a FileStorage's counter to the largest oid *stored*;
/// oids handed out but not yet stored are what this adds.
#[derive(Debug, Message)]
#[rtype(result = "Result<Oid, RecoveryError>")]
pub struct SyncOids {
    pub at_least: Oid,
}

/// Stop: the transaction in flight is finished (or aborted) first, open
/// source iterators are released, a pending [`CopyTail`] fails.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop {
    pub reason: String,
}

#[derive(Debug, Message)]
#[rtype(result = "Progress")]
pub struct GetStatus;
