//! The scrub actor's API: what the controller starts it with, what it
//! reports back, and how it is stopped.

use crate::member::MemberActor;
use crate::recovery::Throttle;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use zeo::types::Tid;

/// What one scrub compares, and how fast.
#[derive(Clone)]
pub struct ScrubSettings {
    /// The optimal members when it started, by name.
    pub members: Vec<(Arc<str>, Addr<MemberActor>)>,
    /// The first tid compared.
    pub from: Tid,
    /// The last tid compared (later commits are not).
    pub to: Tid,
    pub throttle: Throttle,
    /// How often a [`ScrubEvent::Progress`] is sent.
    pub progress_interval: Duration,
    /// A [`ScrubEvent::Progress`] is also sent after this many
    /// transactions, so the controller can save the position.
    pub checkpoint_every: u64,
}

/// Where a scrub is and how fast it goes (`/details`' `scrub.progress`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScrubProgress {
    #[serde(with = "crate::tid::hex")]
    pub from: Tid,
    #[serde(with = "crate::tid::hex")]
    pub to: Tid,
    /// The next tid to compare: everything below it is compared.
    #[serde(with = "crate::tid::hex")]
    pub next: Tid,
    pub members: Vec<String>,
    pub transactions: u64,
    pub bytes: u64,
    pub mismatches: u64,
    /// Of the span `from..to`, by commit time, 0 to 1.
    pub fraction_done: f64,
    pub rate_tps: f64,
    pub eta_seconds: Option<f64>,
    pub elapsed_seconds: f64,
}

/// From the scrub to the controller. After `Finished`, `Inconsistent` and
/// `Failed` the actor has stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum ScrubEvent {
    Progress(ScrubProgress),
    /// `member` differs from the majority at `tid`: the controller
    /// degrades it as diverged. The scrub goes on without it.
    Diverged {
        member: String,
        tid: Tid,
        reason: String,
    },
    /// No majority at `tid`: nobody can be told right; the scrub stops.
    Inconsistent {
        tid: Tid,
        reason: String,
        progress: ScrubProgress,
    },
    /// Everything in `from..=to` compared.
    Finished(ScrubProgress),
    /// A member failed a read (or too few members are left to compare).
    Failed {
        reason: String,
        progress: ScrubProgress,
    },
}

/// Stop after the step in flight (answers at once; a
/// [`ScrubEvent::Failed`] follows when it has stopped).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopScrub {
    pub reason: String,
}
