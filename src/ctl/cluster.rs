//! What `zeoraid ctl status` and `details` make of the cluster's fields:
//! the role next to the array's status on a zeoraid that serves the array,
//! and a standby's own answer. A standby that knows a leader is OK (the
//! leader's own status is what says how the array is), one that knows
//! none is CRITICAL (nobody may be serving the clients), one elected but
//! still taking over is WARNING; a serving zeoraid that no longer leads
//! (deposed) is CRITICAL whatever its array says.

use super::{array_code, details_body, details_text, nagios_word, StatusAnswer, CRITICAL, OK, WARNING};
use crate::http::{http_url, ClusterDetails, ClusterLine, Details, NotLeader, StandbyAnswer, StatusLine};
use serde::Deserialize;
use std::fmt::Write as _;
use std::time::SystemTime;
use zeoraid_actors::cluster::Role;

/// `GET /status`: the array's status line, or a standby's answer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StatusReply {
    Serving(StatusLine),
    Standby(StandbyAnswer<ClusterLine>),
}

/// `GET /details`: the array and its members, or a standby's answer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum DetailsReply {
    Serving(Box<Details>),
    Standby(StandbyAnswer<ClusterDetails>),
}

/// The exit code of a zeoraid that serves the array: its array's, unless
/// it is in a cluster and no longer leads.
fn serving_code(array: u8, cluster: Option<&ClusterLine>) -> u8 {
    match cluster.map(|c| c.role) {
        None | Some(Role::Leader) => array,
        Some(_) => CRITICAL,
    }
}

/// The exit code of a standby (see the module's header).
fn standby_code(cluster: &ClusterLine) -> u8 {
    match (cluster.role, &cluster.leader) {
        (Role::Leader, _) => WARNING,
        (_, Some(_)) => OK,
        (_, None) => CRITICAL,
    }
}

/// "role leader (zr1), epoch 7" for the end of a serving zeoraid's line.
fn role_text(cluster: &ClusterLine) -> String {
    let mut text = format!("role {}", cluster.role);
    match (&cluster.leader, cluster.role) {
        (Some(leader), Role::Leader) => {
            let _ = write!(text, " ({leader})");
        }
        (Some(leader), _) => {
            let _ = write!(text, ", leader {leader}");
        }
        (None, _) => text.push_str(", no leader known"),
    }
    if let Some(epoch) = cluster.epoch {
        let _ = write!(text, ", epoch {epoch}");
    }
    text
}

/// The line of a code and a summary: `ZEORAID OK - standby, leader zr2`.
pub(super) fn line(code: u8, summary: &str) -> String {
    format!("ZEORAID {} - {summary}", nagios_word(code))
}

/// The status line of a serving zeoraid, with its role in a cluster.
fn serving_line(status: &StatusLine) -> String {
    let code = serving_code(
        array_code(status.status, &status.inconsistent),
        status.cluster.as_ref(),
    );
    line(code, &serving_summary(status))
}

/// The summary of a zeoraid that serves the array, with its role in a
/// cluster.
pub(super) fn serving_summary(status: &StatusLine) -> String {
    match &status.cluster {
        Some(cluster) => format!("{}; {}", status.summary, role_text(cluster)),
        None => status.summary.clone(),
    }
}

/// `cluster: zr1 is leader, epoch 7; leader zr1 at http://…, ZEO …`.
fn cluster_text(cluster: &ClusterDetails) -> String {
    let mut text = format!("cluster: {} is {}", cluster.name, cluster.line.role);
    if let Some(epoch) = cluster.line.epoch {
        let _ = write!(text, ", epoch {epoch}");
    }
    match &cluster.line.leader {
        Some(leader) => {
            let _ = write!(text, "; leader {leader}");
            if let Some(http) = &cluster.leader_http {
                let _ = write!(text, " at {}", http_url(http));
            }
            if let Some(listen) = &cluster.leader_listen {
                let _ = write!(text, ", ZEO clients {listen}");
            }
        }
        None => text.push_str("; no leader known"),
    }
    if let Some(reason) = &cluster.role_reason {
        let _ = write!(text, " ({reason})");
    }
    text
}

impl StatusAnswer for StatusReply {
    fn code(&self) -> u8 {
        match self {
            StatusReply::Serving(status) => serving_code(
                array_code(status.status, &status.inconsistent),
                status.cluster.as_ref(),
            ),
            StatusReply::Standby(standby) => standby_code(&standby.cluster),
        }
    }

    fn text(&self, _now: SystemTime) -> String {
        match self {
            StatusReply::Serving(status) => format!("{}\n", serving_line(status)),
            StatusReply::Standby(standby) => format!("{}\n", line(self.code(), &standby.summary)),
        }
    }
}

impl StatusAnswer for DetailsReply {
    fn code(&self) -> u8 {
        match self {
            DetailsReply::Serving(details) => serving_code(
                array_code(details.array.status, &details.array.inconsistent),
                details.cluster.as_ref().map(|c| &c.line),
            ),
            DetailsReply::Standby(standby) => standby_code(&standby.cluster.line),
        }
    }

    fn text(&self, now: SystemTime) -> String {
        match self {
            DetailsReply::Serving(details) => {
                let Some(cluster) = &details.cluster else {
                    return details_text(&details.array, now);
                };
                let status = StatusLine {
                    status: details.array.status,
                    summary: details.array.summary.clone(),
                    inconsistent: details.array.inconsistent.clone(),
                    cluster: Some(cluster.line.clone()),
                };
                format!(
                    "{}\n{}\n{}",
                    serving_line(&status),
                    cluster_text(cluster),
                    details_body(&details.array, now)
                )
            }
            DetailsReply::Standby(standby) => format!(
                "{}\n{}\n",
                line(self.code(), &standby.summary),
                cluster_text(&standby.cluster)
            ),
        }
    }
}

/// What to add to a refusal from a standby: where the leader is.
pub(super) fn leader_hint(not_leader: &NotLeader) -> String {
    match (&not_leader.leader, &not_leader.leader_http) {
        _ if not_leader.role == Role::Leader => {
            " (this zeoraid was elected and is taking over: try again in a moment)".to_string()
        }
        (Some(leader), Some(http)) => format!(
            " (this zeoraid is {}; ask the leader {leader}: zeoraid ctl --url {} ...)",
            not_leader.role,
            http_url(http)
        ),
        _ => format!(" (this zeoraid is {} and knows no leader yet)", not_leader.role),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(j: serde_json::Value) -> (u8, String) {
        let reply: StatusReply = serde_json::from_value(j).expect("a status answer");
        (reply.code(), reply.text(SystemTime::now()))
    }

    #[test]
    fn status_of_a_standby() {
        let (code, text) = status(
            json!({"status": "standby", "summary": "standby, leader zr2 (epoch 7)",
                                         "role": "standby", "epoch": 7, "leader": "zr2"}),
        );
        assert_eq!(
            (code, text.as_str()),
            (OK, "ZEORAID OK - standby, leader zr2 (epoch 7)\n")
        );
        let (code, text) = status(
            json!({"status": "standby", "summary": "standby, no leader known (candidate)",
                                         "role": "candidate", "epoch": null, "leader": null}),
        );
        assert_eq!(
            (code, text.as_str()),
            (
                CRITICAL,
                "ZEORAID CRITICAL - standby, no leader known (candidate)\n"
            )
        );
        let (code, _) = status(
            json!({"status": "standby", "summary": "elected", "role": "leader",
                                      "epoch": 9, "leader": "zr1"}),
        );
        assert_eq!(code, WARNING, "elected, still taking over");
    }

    #[test]
    fn status_of_a_leader_and_of_a_lone_zeoraid() {
        let (code, text) = status(
            json!({"status": "degraded", "summary": "degraded: 1 of 2 members optimal",
                                         "role": "leader", "epoch": 7, "leader": "zr1"}),
        );
        assert_eq!(
            (code, text.as_str()),
            (
                WARNING,
                "ZEORAID WARNING - degraded: 1 of 2 members optimal; role leader (zr1), epoch 7\n"
            )
        );
        let (code, text) = status(
            json!({"status": "optimal", "summary": "optimal: 2 of 2 members optimal",
                                         "role": "deposed", "epoch": null, "leader": null}),
        );
        assert_eq!(
            (code, text.as_str()),
            (
                CRITICAL,
                "ZEORAID CRITICAL - optimal: 2 of 2 members optimal; role deposed, no leader known\n"
            )
        );
        let (code, text) = status(json!({"status": "optimal", "summary": "optimal: 2 of 2 members optimal"}));
        assert_eq!(
            (code, text.as_str()),
            (OK, "ZEORAID OK - optimal: 2 of 2 members optimal\n")
        );
    }

    fn array_json() -> serde_json::Value {
        json!({
            "status": "optimal", "summary": "optimal: 1 of 1 members optimal",
            "reason": null, "cluster_mode": "single", "fail_mode": "close", "last_tid": "03ff",
            "optimal": 1, "quorum": 1, "commits": 5, "aborts": 1, "conflicts": 0, "clients": 2,
            "longest_recovery_block_ms": 0, "state_generation": 3, "state_location": "etcd",
            "members": [
                {"name": "zeo1", "address": "127.0.0.1:9001", "state": "optimal", "kind": null,
                 "reason": null, "degraded_since": null, "connected": true, "connection": "ready",
                 "last_tid": "03ff", "lag_transactions": 0, "lag_seconds": 0.0, "failures": 0}
            ]
        })
    }

    #[test]
    fn details_of_a_leader() {
        let mut j = array_json();
        let cluster = json!({"role": "leader", "epoch": 7, "leader": "zr1", "name": "zr1",
                             "leader_http": "127.0.0.1:8101", "leader_listen": "127.0.0.1:8100",
                             "role_reason": null});
        j.as_object_mut()
            .unwrap()
            .extend(cluster.as_object().unwrap().clone());
        let reply: DetailsReply = serde_json::from_value(j).unwrap();
        assert_eq!(reply.code(), OK);
        let text = reply.text(SystemTime::now());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ZEORAID OK - optimal: 1 of 1 members optimal; role leader (zr1), epoch 7"
        );
        assert_eq!(
            lines[1],
            "cluster: zr1 is leader, epoch 7; leader zr1 at http://127.0.0.1:8101, ZEO clients 127.0.0.1:8100"
        );
        assert!(lines[2].starts_with("cluster mode single"), "{text}");
        assert!(lines.iter().any(|l| l.starts_with("zeo1  ")), "{text}");

        let alone: DetailsReply = serde_json::from_value(array_json()).unwrap();
        let text = alone.text(SystemTime::now());
        assert!(!text.contains("cluster:"), "{text}");
        assert!(matches!(&alone, DetailsReply::Serving(d) if d.cluster.is_none()));
    }

    #[test]
    fn details_of_a_standby() {
        let reply: DetailsReply = serde_json::from_value(json!({
            "status": "standby", "summary": "standby, leader zr2 (epoch 7)", "role": "standby",
            "epoch": 7, "leader": "zr2", "name": "zr1", "leader_http": "127.0.0.1:8201",
            "leader_listen": "127.0.0.1:8200", "role_reason": null}))
        .unwrap();
        assert_eq!(reply.code(), OK);
        assert_eq!(
            reply.text(SystemTime::now()),
            "ZEORAID OK - standby, leader zr2 (epoch 7)\n\
             cluster: zr1 is standby, epoch 7; leader zr2 at http://127.0.0.1:8201, ZEO clients 127.0.0.1:8200\n"
        );
    }

    #[test]
    fn refusal_of_a_standby_names_the_leader() {
        let body: crate::http::ErrorBody = serde_json::from_value(json!({
            "error": "disable zeo1: zr1 is a standby; the leader is zr2, ask its HTTP endpoint at http://127.0.0.1:8201",
            "role": "standby", "leader": "zr2", "leader_http": "127.0.0.1:8201"}))
        .unwrap();
        let not_leader = body.not_leader.expect("a standby's refusal");
        assert_eq!(
            leader_hint(&not_leader),
            " (this zeoraid is standby; ask the leader zr2: zeoraid ctl --url http://127.0.0.1:8201 ...)"
        );
        let plain: crate::http::ErrorBody = serde_json::from_value(json!({"error": "no"})).unwrap();
        assert!(plain.not_leader.is_none());
        let none: crate::http::ErrorBody = serde_json::from_value(json!({
            "error": "x", "role": "candidate", "leader": null, "leader_http": null}))
        .unwrap();
        assert_eq!(
            leader_hint(&none.not_leader.unwrap()),
            " (this zeoraid is candidate and knows no leader yet)"
        );
    }
}
