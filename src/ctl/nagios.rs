//! `zeoraid ctl status` as a Nagios/Icinga check: the status line, then
//! perfdata after a `|` (optimal members with the thresholds, each
//! member's lag in transactions and seconds), and thresholds that move
//! the exit code: `--critical-below N` and `--warning-below N` optimal
//! members, and `--warning-degraded-for DURATION`, under which a degraded
//! or recovering array stays OK (a member restarted for maintenance and
//! recovered at once pages nobody).
//!
//! The perfdata follows the plugin guidelines: `'label'=value[unit];warn;crit;min;max`,
//! the thresholds as ranges (`2:` alerts below 2).

use super::cluster::{line, serving_summary, StatusReply};
use super::{fetch, nagios_word, print_json, CtlArgs, StatusAnswer, Target, CRITICAL, OK, WARNING};
use crate::config::parse_duration;
use crate::http::Details;
use clap::Args;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};
use zeoraid_actors::controller::ArrayStatus;
use zeoraid_actors::status::MemberState;

/// The thresholds of `zeoraid ctl status`.
#[derive(Debug, Default, Args)]
pub struct Thresholds {
    /// CRITICAL when fewer than N members are optimal.
    #[arg(long, value_name = "N")]
    pub critical_below: Option<usize>,
    /// WARNING when fewer than N members are optimal.
    #[arg(long, value_name = "N")]
    pub warning_below: Option<usize>,
    /// A degraded or recovering array is OK until a member has been out of
    /// it this long (e.g. "10m"), WARNING from then on.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub warning_degraded_for: Option<Duration>,
}

/// `zeoraid ctl status`: `/status` for the line (and `--json`), `/details`
/// for the perfdata and the thresholds when this zeoraid serves the array.
pub(super) fn status(target: &Target, args: &CtlArgs, thresholds: &Thresholds) -> u8 {
    let (mut json, reply) = match fetch::<StatusReply>(target, args, "/status") {
        Ok(answer) => answer,
        Err(code) => return code,
    };
    let StatusReply::Serving(status) = &reply else {
        // A standby: no array, so no perfdata; its role says the code.
        if args.json {
            print_json(&json);
        } else {
            print!("{}", reply.text(SystemTime::now()));
        }
        return reply.code();
    };
    let array = match fetch::<Details>(target, args, "/details") {
        Ok((_, details)) => details.array,
        Err(code) => return code,
    };
    let code = judge(reply.code(), &array, thresholds, SystemTime::now());
    let perfdata = perfdata(&array, thresholds);
    if args.json {
        json["check"] = serde_json::json!({
            "code": code,
            "state": nagios_word(code),
            "perfdata": perfdata,
        });
        print_json(&json);
    } else {
        println!("{} | {perfdata}", line(code, &serving_summary(status)));
    }
    code
}

/// The exit code: the array's (`code`), OK instead of WARNING while the
/// array has been degraded for less than `--warning-degraded-for`, then at
/// least WARNING / CRITICAL below the optimal-member thresholds.
fn judge(code: u8, array: &ArrayStatus, thresholds: &Thresholds, now: SystemTime) -> u8 {
    let mut code = code;
    if let Some(grace) = thresholds.warning_degraded_for {
        // The grace is for members out of the array, not for members that
        // a scrub found to differ.
        if code == WARNING && array.inconsistent.is_none() && degraded_for(array, now) < grace {
            code = OK;
        }
    }
    let below = |n: Option<usize>| n.is_some_and(|n| array.optimal < n);
    if below(thresholds.warning_below) {
        code = code.max(WARNING);
    }
    if below(thresholds.critical_below) {
        code = code.max(CRITICAL);
    }
    code
}

/// How long the member out of the array longest has been out of it (a
/// member without a `degraded_since` counts as out for ever: unknown is
/// no reason to stay quiet).
fn degraded_for(array: &ArrayStatus, now: SystemTime) -> Duration {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    array
        .members
        .iter()
        .filter(|m| m.state != MemberState::Optimal)
        .map(|m| match m.degraded_since {
            Some(since) => Duration::from_secs_f64((now - since).max(0.0)),
            None => Duration::MAX,
        })
        .max()
        .unwrap_or(Duration::ZERO)
}

/// `optimal_members=1;2:;1:;0;2 'zeo2_lag'=3;;;0 'zeo2_lag_seconds'=1.250s;;;0 ...`.
fn perfdata(array: &ArrayStatus, thresholds: &Thresholds) -> String {
    let range = |n: Option<usize>| n.map_or_else(String::new, |n| format!("{n}:"));
    let mut out = format!(
        "optimal_members={};{};{};0;{}",
        array.optimal,
        range(thresholds.warning_below),
        range(thresholds.critical_below),
        array.members.len()
    );
    for m in &array.members {
        let name = m.name.replace(['\'', '='], "_");
        let _ = write!(
            out,
            " '{name}_lag'={};;;0 '{name}_lag_seconds'={:.3}s;;;0",
            m.lag_transactions,
            m.lag_seconds.unwrap_or(0.0)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn array(zeo2: serde_json::Value) -> ArrayStatus {
        let mut zeo2_json = json!({
            "name": "zeo2", "address": "127.0.0.1:9002", "state": "optimal", "kind": null,
            "reason": null, "degraded_since": null, "connected": true, "connection": "ready",
            "last_tid": "03ff", "lag_transactions": 0, "lag_seconds": 0.0, "failures": 0
        });
        for (key, value) in zeo2.as_object().expect("an object") {
            zeo2_json[key] = value.clone();
        }
        let optimal = if zeo2_json["state"] == "optimal" { 2 } else { 1 };
        serde_json::from_value(json!({
            "status": if optimal == 2 { "optimal" } else { "degraded" },
            "summary": "", "reason": null, "cluster_mode": "single", "fail_mode": "close",
            "last_tid": "03ff", "optimal": optimal, "quorum": 1, "commits": 0, "aborts": 0,
            "conflicts": 0, "clients": 0, "longest_recovery_block_ms": 0, "state_generation": 1,
            "state_location": "memory",
            "members": [
                {"name": "zeo1", "address": "127.0.0.1:9001", "state": "optimal", "kind": null,
                 "reason": null, "degraded_since": null, "connected": true, "connection": "ready",
                 "last_tid": "03ff", "lag_transactions": 0, "lag_seconds": 0.0, "failures": 0},
                zeo2_json
            ]
        }))
        .expect("an ArrayStatus")
    }

    #[test]
    fn thresholds_move_the_exit_code() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let degraded = array(
            json!({"state": "degraded", "kind": "disabled", "degraded_since": 940.0,
                                    "lag_transactions": 3, "lag_seconds": 1.25}),
        );
        let none = Thresholds::default();
        assert_eq!(judge(WARNING, &degraded, &none, now), WARNING);
        let grace = |secs| Thresholds {
            warning_degraded_for: Some(Duration::from_secs(secs)),
            ..Thresholds::default()
        };
        assert_eq!(judge(WARNING, &degraded, &grace(120), now), OK, "out 60 s of 120");
        assert_eq!(
            judge(WARNING, &degraded, &grace(30), now),
            WARNING,
            "out 60 s, past 30"
        );
        let critical = Thresholds {
            critical_below: Some(2),
            ..grace(120)
        };
        assert_eq!(judge(WARNING, &degraded, &critical, now), CRITICAL);
        let warning = Thresholds {
            warning_below: Some(2),
            ..grace(120)
        };
        assert_eq!(judge(WARNING, &degraded, &warning, now), WARNING);
        let optimal = array(json!({}));
        assert_eq!(judge(OK, &optimal, &critical, now), OK);
        // A deposed leader stays CRITICAL whatever the grace.
        assert_eq!(judge(CRITICAL, &degraded, &grace(120), now), CRITICAL);
        // Unknown since when: no grace.
        let unknown = array(json!({"state": "degraded", "kind": "failed"}));
        assert_eq!(judge(WARNING, &unknown, &grace(120), now), WARNING);
    }

    #[test]
    fn perfdata_names_optimal_members_and_each_members_lag() {
        let degraded = array(
            json!({"state": "degraded", "kind": "disabled", "degraded_since": 940.0,
                                    "lag_transactions": 3, "lag_seconds": 1.25}),
        );
        let thresholds = Thresholds {
            critical_below: Some(1),
            warning_below: Some(2),
            warning_degraded_for: None,
        };
        assert_eq!(
            perfdata(&degraded, &thresholds),
            "optimal_members=1;2:;1:;0;2 'zeo1_lag'=0;;;0 'zeo1_lag_seconds'=0.000s;;;0 \
             'zeo2_lag'=3;;;0 'zeo2_lag_seconds'=1.250s;;;0"
        );
    }
}
