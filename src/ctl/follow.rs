//! `zeoraid ctl recover NAME --wait`: once the daemon accepted the
//! recovery, follow the member in `/details` until it is optimal (exit 0),
//! its recovery ended otherwise (`last_recovery` says how; exit 2), or the
//! time runs out (exit 1: it may still be recovering). A member that was
//! not connected when asked reconnects first, so the wait covers that too.
//!
//! The steps are lines on stdout; on a terminal a progress bar on stderr
//! (indicatif) shows the copy between them (hidden when stderr is not a
//! terminal, so logs and scripts read the lines alone).

use super::{request, Target, CRITICAL, OK, READ_TIMEOUT, UNKNOWN, WARNING};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};
use zeoraid_actors::controller::{ArrayStatus, MemberStatus};
use zeoraid_actors::recovery::Progress;
use zeoraid_actors::status::MemberState;

/// The default bound of the whole wait (`--timeout` overrides it).
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(600);

/// How often `/details` is read.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// While the stage stays the same, a progress line at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Where the followed member stands, from one `/details` answer.
#[derive(Clone, Debug, PartialEq)]
enum Stage {
    /// Done: the recovery made it optimal (or it was already).
    Optimal { last_recovery: Option<String> },
    /// Not recovering and not optimal, and the last recovery said how it
    /// ended: it will not become optimal by waiting.
    Ended { outcome: String },
    /// The recovery copies (progress once the recovery actor reported).
    Recovering {
        source: String,
        progress: Option<Progress>,
    },
    /// Not recovering yet: waiting for its connection.
    Waiting { connection: String },
}

impl Stage {
    fn of(member: &MemberStatus) -> Stage {
        if member.state == MemberState::Optimal {
            return Stage::Optimal {
                last_recovery: member.last_recovery.clone(),
            };
        }
        if let Some(recovery) = &member.recovery {
            return Stage::Recovering {
                source: recovery.source.clone(),
                progress: recovery.progress.clone(),
            };
        }
        match &member.last_recovery {
            Some(outcome) => Stage::Ended {
                outcome: outcome.clone(),
            },
            None => Stage::Waiting {
                connection: member.connection.to_string(),
            },
        }
    }

    /// Whether `self` and `other` are the same step: the same stage and,
    /// while recovering, the same phase (the counts aside).
    fn same_step(&self, other: &Stage) -> bool {
        let phase = |stage: &Stage| match stage {
            Stage::Recovering { progress, .. } => progress.as_ref().map(|p| p.phase),
            _ => None,
        };
        std::mem::discriminant(self) == std::mem::discriminant(other) && phase(self) == phase(other)
    }

    /// One short line for people.
    fn line(&self, name: &str) -> String {
        match self {
            Stage::Optimal {
                last_recovery: Some(how),
            } => format!("{name}: optimal ({how})"),
            Stage::Optimal { last_recovery: None } => format!("{name}: optimal"),
            Stage::Ended { outcome } => format!("{name}: recovery ended: {outcome}"),
            Stage::Recovering {
                source,
                progress: Some(p),
            } => format!(
                "{name}: recovering from {source}: {}, {} transaction(s) copied, {:.0}% done",
                p.phase.as_str(),
                p.copied_transactions,
                p.fraction_done * 100.0
            ),
            Stage::Recovering {
                source,
                progress: None,
            } => format!("{name}: recovering from {source}"),
            Stage::Waiting { connection } => {
                format!("{name}: waiting for its connection ({connection})")
            }
        }
    }
}

/// The bar's length: the fraction done in thousandths.
const BAR_LENGTH: u64 = 1000;

/// The progress bar on stderr (hidden unless stderr is a terminal).
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(BAR_LENGTH);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{wide_bar}] {percent:>3}%") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Moves the bar to `stage`: the fraction copied, and the counts and the
/// daemon's estimate of the time left as its message.
fn show(bar: &ProgressBar, stage: &Stage) {
    if let Stage::Recovering {
        progress: Some(p), ..
    } = stage
    {
        bar.set_position((p.fraction_done.clamp(0.0, 1.0) * BAR_LENGTH as f64) as u64);
        let eta = p
            .eta_seconds
            .map_or_else(|| "-".to_string(), |s| format!("{s:.0}s"));
        bar.set_message(format!(
            "{}: {} txn, {:.0} txn/s, eta {eta}",
            p.phase.as_str(),
            p.copied_transactions,
            p.rate_tps
        ));
    }
}

/// Follows member `name` until it is optimal or its recovery ended, for at
/// most `within`; prints a line per step and progress now and then.
pub(super) fn recovery(target: &Target, name: &str, within: Duration) -> u8 {
    let bar = progress_bar();
    let code = follow(target, name, within, &bar);
    bar.finish_and_clear();
    code
}

fn follow(target: &Target, name: &str, within: Duration, bar: &ProgressBar) -> u8 {
    let deadline = Instant::now() + within;
    let mut printed: Option<(Stage, Instant)> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let member = match member_details(target, name, left.clamp(Duration::from_secs(1), READ_TIMEOUT)) {
            Ok(member) => member,
            Err(message) => {
                bar.suspend(|| eprintln!("zeoraid ctl: recover {name} --wait: {message}"));
                return UNKNOWN;
            }
        };
        let stage = Stage::of(&member);
        show(bar, &stage);
        let due = match &printed {
            None => true,
            Some((last, at)) => !last.same_step(&stage) || (*last != stage && at.elapsed() >= PROGRESS_EVERY),
        };
        if due {
            bar.suspend(|| println!("{}", stage.line(name)));
        }
        let code = match stage {
            Stage::Optimal { .. } => Some(OK),
            Stage::Ended { .. } => Some(CRITICAL),
            _ => None,
        };
        if let Some(code) = code {
            return code;
        }
        if due {
            printed = Some((stage, Instant::now()));
        }
        if left.is_zero() {
            bar.suspend(|| println!("{name}: not optimal after {within:?}; still {}", member.state));
            return WARNING;
        }
        std::thread::sleep(POLL_INTERVAL.min(left));
    }
}

/// Member `name` as `/details` shows it.
fn member_details(target: &Target, name: &str, timeout: Duration) -> Result<MemberStatus, String> {
    let answer = request(target, "GET", "/details", timeout)?;
    if answer.code != 200 {
        return Err(format!(
            "HTTP {} from /details: {}",
            answer.code,
            answer.error_message()
        ));
    }
    let details: ArrayStatus = serde_json::from_str(&answer.body)
        .map_err(|e| format!("unexpected answer from /details ({e}): {}", answer.body.trim()))?;
    details
        .members
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| format!("{name} is no longer a member of the array"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(extra: serde_json::Value) -> MemberStatus {
        let mut m = json!({
            "name": "zeo2", "address": "127.0.0.1:9002", "state": "degraded", "kind": "failed",
            "reason": "disconnected", "degraded_since": 925.0, "connected": false,
            "connection": "backing-off", "last_tid": "03fe", "lag_transactions": 3,
            "lag_seconds": 1.25, "failures": 1
        });
        for (key, value) in extra.as_object().unwrap() {
            m[key] = value.clone();
        }
        serde_json::from_value(m).unwrap()
    }

    #[test]
    fn stages_and_their_lines() {
        let waiting = Stage::of(&member(json!({})));
        assert_eq!(
            waiting.line("zeo2"),
            "zeo2: waiting for its connection (backing-off)"
        );
        let started = Stage::of(&member(json!({
            "state": "recovering", "connected": true, "connection": "ready",
            "recovery": {"source": "zeo1", "started": 1000.0, "progress": null}
        })));
        assert_eq!(started.line("zeo2"), "zeo2: recovering from zeo1");
        let copying = Stage::of(&member(json!({
            "state": "recovering", "connected": true, "connection": "ready",
            "recovery": {"source": "zeo1", "started": 1000.0, "progress": {
                "phase": "copying", "source": "zeo1", "started_from_tid": "00000000000003fe",
                "copied_transactions": 120, "copied_bytes": 4096, "copied_blobs": 0,
                "blobs_missing_on_source": 0, "last_copied_tid": "00000000000003ff",
                "source_last_tid": "0000000000000400", "fraction_done": 0.454, "rate_tps": 10.0,
                "rate_bytes_per_second": 100.0, "eta_seconds": 12.0, "elapsed_seconds": 3.0
            }}
        })));
        assert_eq!(
            copying.line("zeo2"),
            "zeo2: recovering from zeo1: copying, 120 transaction(s) copied, 45% done"
        );
        assert!(!copying.same_step(&started), "a phase is a step");
        let mut later = copying.clone();
        if let Stage::Recovering {
            progress: Some(p), ..
        } = &mut later
        {
            p.copied_transactions += 5;
        }
        assert!(later.same_step(&copying) && later != copying);
        assert!(!started.same_step(&waiting));
        let ended = Stage::of(&member(json!({"last_recovery": "refused: diverged"})));
        assert_eq!(ended.line("zeo2"), "zeo2: recovery ended: refused: diverged");
        let optimal = Stage::of(&member(json!({
            "state": "optimal", "kind": null, "reason": null, "last_recovery": "recovered from zeo1"
        })));
        assert_eq!(optimal.line("zeo2"), "zeo2: optimal (recovered from zeo1)");
    }
}
