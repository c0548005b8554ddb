//! The controller's side of the scrub (`crate::scrub`): starting one (an
//! operator's `POST /scrub`, the `[scrub] interval` schedule, or a restart
//! resuming one that was interrupted), what a mismatch means, and the
//! position kept in the array state. A member that differs from the
//! majority is degraded as diverged; with no majority nobody is, and the
//! array is flagged inconsistent (shown in `/status`, `/details` and as
//! WARNING by `zeoraid ctl status`) until a later scrub finds nothing.
//! Nothing is repaired.

use super::*;
use crate::recovery::Throttle;
use crate::scrub::{ScrubActor, ScrubEvent, ScrubProgress, ScrubSettings, StopScrub};
use crate::state::ScrubPosition;
use std::time::Duration;

/// A [`ScrubEvent::Progress`] at least this often.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// The position is saved after this many transactions at the latest.
const CHECKPOINT_EVERY: u64 = 500;

/// `[scrub]`: how fast a scrub reads, and how often one starts by itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScrubPolicy {
    pub throttle: Throttle,
    /// `None`: only operators start one.
    pub interval: Option<Duration>,
}

impl Default for ScrubPolicy {
    fn default() -> Self {
        ScrubPolicy {
            throttle: Throttle {
                max_transactions_per_second: std::num::NonZeroU64::new(200),
                max_bytes_per_second: std::num::NonZeroU64::new(10_000_000),
            },
            interval: None,
        }
    }
}

/// What the controller keeps of the scrub.
#[derive(Default)]
pub(super) struct ScrubControl {
    pub policy: ScrubPolicy,
    running: Option<Running>,
    /// How the last scrub ended, in one sentence.
    last_result: Option<String>,
    last_progress: Option<ScrubProgress>,
    /// Why the array is inconsistent (two members differ, no majority).
    pub inconsistent: Option<String>,
    /// Where an unfinished scrub stands: in the array state, so a
    /// restart resumes it.
    pub position: Option<ScrubPosition>,
    /// Transactions already added to the metric by the running scrub.
    counted: u64,
}

struct Running {
    addr: Addr<ScrubActor>,
    progress: Option<ScrubProgress>,
}

/// `/details`' `scrub` object.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ScrubStatus {
    pub running: bool,
    /// The running scrub's progress, else the last one's.
    pub progress: Option<ScrubProgress>,
    pub last_result: Option<String>,
    /// Where an interrupted scrub resumes.
    pub resume_from: Option<String>,
    /// The schedule (`[scrub] interval`), in seconds.
    pub interval_seconds: Option<f64>,
}

/// Start a scrub of the optimal members over `[from, to]` (`from`
/// defaults to where an interrupted scrub stopped, else the beginning;
/// `to` to the array's last tid). Answers what was started.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, AdminError>")]
pub struct StartScrub {
    pub from: Option<Tid>,
    pub to: Option<Tid>,
}

impl ScrubControl {
    pub(super) fn new(policy: ScrubPolicy) -> ScrubControl {
        ScrubControl {
            policy,
            ..ScrubControl::default()
        }
    }

    pub(super) fn status(&self) -> ScrubStatus {
        let running = self.running.as_ref();
        ScrubStatus {
            running: running.is_some(),
            progress: running
                .and_then(|r| r.progress.clone())
                .or_else(|| self.last_progress.clone()),
            last_result: self.last_result.clone(),
            resume_from: self.position.map(|p| p.next.to_hex()),
            interval_seconds: self.policy.interval.map(|d| d.as_secs_f64()),
        }
    }

    /// Counts the transactions compared since the last look.
    fn count(&mut self, progress: &ScrubProgress) {
        metrics::scrub_transactions(progress.transactions.saturating_sub(self.counted));
        self.counted = progress.transactions;
    }
}

impl Controller {
    fn start_scrub(&mut self, ctx: &mut Context<Self>, msg: StartScrub) -> Result<String, AdminError> {
        if self.scrub.running.is_some() {
            return Err(AdminError::Refused("a scrub is running already".into()));
        }
        let members: Vec<_> = self
            .members
            .iter()
            .filter(|m| m.optimal() && m.connected)
            .filter_map(|m| Some((m.name.clone(), m.addr.clone()?)))
            .collect();
        if members.len() < 2 {
            return Err(AdminError::Refused(format!(
                "a scrub compares at least 2 optimal connected members, there are {}",
                members.len()
            )));
        }
        let to = msg.to.unwrap_or(self.last_tid).min(self.last_tid);
        let resume = self.scrub.position.filter(|p| msg.to.is_none_or(|to| to == p.to));
        let from = msg.from.or(resume.map(|p| p.next)).unwrap_or(Tid::ZERO);
        let to = if msg.from.is_none() && msg.to.is_none() {
            resume.map_or(to, |p| p.to)
        } else {
            to
        };
        if from > to {
            return Err(AdminError::Refused(format!(
                "nothing to compare: from {} is after to {}",
                from.to_hex(),
                to.to_hex()
            )));
        }
        let settings = ScrubSettings {
            members,
            from,
            to,
            throttle: self.scrub.policy.throttle,
            progress_interval: PROGRESS_INTERVAL,
            checkpoint_every: CHECKPOINT_EVERY,
        };
        let count = settings.members.len();
        let addr = ScrubActor::new(settings, ctx.address().recipient(), self.log.clone()).start();
        self.scrub.running = Some(Running { addr, progress: None });
        self.scrub.counted = 0;
        self.scrub.position = Some(ScrubPosition { next: from, to });
        metrics::scrub_running(true);
        self.save_state();
        Ok(format!(
            "scrub of {count} members started from {} to {}",
            from.to_hex(),
            to.to_hex()
        ))
    }

    /// The schedule (`[scrub] interval`), and a scrub a restart
    /// interrupted resumed; called once startup is over.
    pub(super) fn schedule_scrubs(&mut self, ctx: &mut Context<Self>) {
        if let Some(position) = self.scrub.position {
            info!(self.log, "resuming the scrub a restart interrupted"; "next_tid" => position.next.to_hex(),
                "to" => position.to.to_hex());
            self.start_or_log(ctx, StartScrub { from: None, to: None });
        }
        if let Some(interval) = self.scrub.policy.interval {
            ctx.run_interval(interval, |act, ctx| {
                if act.scrub.running.is_none() {
                    act.start_or_log(ctx, StartScrub { from: None, to: None });
                }
            });
        }
    }

    fn start_or_log(&mut self, ctx: &mut Context<Self>, msg: StartScrub) {
        if let Err(e) = self.start_scrub(ctx, msg) {
            warn!(self.log, "scrub not started"; "reason" => %e);
        }
    }

    /// Stops a running scrub (shutdown): its position stays in the state.
    pub(super) fn stop_scrub(&mut self, reason: &str) {
        if let Some(running) = &self.scrub.running {
            running.addr.do_send(StopScrub {
                reason: reason.into(),
            });
        }
    }

    fn scrub_ended(&mut self, progress: ScrubProgress, result: String, resumable: bool) {
        self.scrub.count(&progress);
        self.scrub.running = None;
        self.scrub.position = resumable.then_some(ScrubPosition {
            next: progress.next,
            to: progress.to,
        });
        self.scrub.last_progress = Some(progress);
        self.scrub.last_result = Some(result);
        metrics::scrub_running(false);
        self.save_state();
    }
}

impl Handler<StartScrub> for Controller {
    type Result = Result<String, AdminError>;

    fn handle(&mut self, msg: StartScrub, ctx: &mut Context<Self>) -> Self::Result {
        self.start_scrub(ctx, msg)
    }
}

impl Handler<ScrubEvent> for Controller {
    type Result = ();

    fn handle(&mut self, event: ScrubEvent, _ctx: &mut Context<Self>) {
        match event {
            ScrubEvent::Progress(progress) => {
                self.scrub.count(&progress);
                self.scrub.position = Some(ScrubPosition {
                    next: progress.next,
                    to: progress.to,
                });
                if let Some(running) = &mut self.scrub.running {
                    running.progress = Some(progress);
                }
                self.save_state();
            }
            ScrubEvent::Diverged { member, reason, .. } => {
                metrics::scrub_mismatch();
                if let Some(i) = self.slot_index(&member).filter(|&i| self.members[i].optimal()) {
                    self.degrade(i, DegradeKind::Diverged, reason, None);
                }
            }
            ScrubEvent::Inconsistent { reason, progress, .. } => {
                metrics::scrub_mismatch();
                warn!(self.log, "array inconsistent: nobody degraded, the operator decides"; "reason" => &reason);
                self.scrub.inconsistent = Some(reason.clone());
                self.scrub_ended(progress, format!("inconsistent: {reason}"), false);
            }
            ScrubEvent::Finished(progress) => {
                let result = format!(
                    "finished: {} transactions compared, {} mismatches",
                    progress.transactions, progress.mismatches
                );
                if progress.mismatches == 0 {
                    self.scrub.inconsistent = None;
                }
                self.scrub_ended(progress, result, false);
            }
            ScrubEvent::Failed { reason, progress } => {
                self.scrub_ended(progress, format!("stopped: {reason}"), true);
            }
        }
    }
}
