//! What the endpoint says about the cluster (with `[cluster]` only): the
//! role, epoch and leader fields of `/status` and `/details`, a standby's
//! answers (it serves no array), the 409 that sends an operator to the
//! leader, and the cluster metrics, kept up to date from the election's
//! view.
//!
//! Without `[cluster]` none of these fields is present: the answers are
//! exactly those of a lone zeoraid.

use super::ApiError;
use actix_web::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use zeoraid_actors::cluster::{ClusterView, Role};
use zeoraid_actors::controller::ArrayStatus;

/// The cluster's fields of `/status`: `{"role", "epoch", "leader"}` (the
/// leader's name; `null` while none is known).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterLine {
    pub role: Role,
    pub epoch: Option<i64>,
    pub leader: Option<String>,
}

impl ClusterLine {
    pub fn of(view: &ClusterView) -> ClusterLine {
        ClusterLine {
            role: view.role,
            epoch: view.epoch,
            leader: view.leader.as_ref().map(|l| l.name.clone()),
        }
    }
}

/// The cluster's fields of `/details`: those of `/status`, this zeoraid's
/// name, where the leader serves (its HTTP endpoint and its ZEO address)
/// and why the role last changed (`role_reason`: the array's own `reason`
/// is another field of `/details`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterDetails {
    #[serde(flatten)]
    pub line: ClusterLine,
    pub name: String,
    pub leader_http: Option<String>,
    pub leader_listen: Option<String>,
    pub role_reason: Option<String>,
}

impl ClusterDetails {
    pub fn of(view: &ClusterView) -> ClusterDetails {
        ClusterDetails {
            line: ClusterLine::of(view),
            name: view.name.clone(),
            leader_http: view.leader.as_ref().map(|l| l.http.clone()),
            leader_listen: view.leader.as_ref().map(|l| l.listen.clone()),
            role_reason: view.reason.clone(),
        }
    }
}

/// `GET /details` of a zeoraid that serves the array: the controller's
/// [`ArrayStatus`] with the cluster's fields (without `[cluster]`, the
/// array alone).
#[derive(Debug, Serialize, Deserialize)]
pub struct Details {
    #[serde(flatten)]
    pub array: ArrayStatus,
    #[serde(flatten)]
    pub cluster: Option<ClusterDetails>,
}

/// The `"status"` of a standby's answers: it serves no array, so it has
/// no array state to tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StandbyStatus {
    Standby,
}

/// A standby's `/status` (`C` = [`ClusterLine`]) and `/details` (`C` =
/// [`ClusterDetails`]): `{"status": "standby", "summary", "role",
/// "epoch", "leader", ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandbyAnswer<C> {
    pub status: StandbyStatus,
    pub summary: String,
    #[serde(flatten)]
    pub cluster: C,
}

impl<C> StandbyAnswer<C> {
    pub fn of(view: &ClusterView, cluster: fn(&ClusterView) -> C) -> StandbyAnswer<C> {
        StandbyAnswer {
            status: StandbyStatus::Standby,
            summary: standby_summary(view),
            cluster: cluster(view),
        }
    }
}

/// One line on a standby: "standby, leader zr2 (epoch 7)".
fn standby_summary(view: &ClusterView) -> String {
    match (&view.leader, view.role) {
        (Some(_), Role::Leader) => format!(
            "elected (epoch {}), taking over: not serving yet",
            epoch_text(view.epoch)
        ),
        (Some(leader), _) => format!(
            "standby, leader {} (epoch {})",
            leader.name,
            epoch_text(view.epoch)
        ),
        (None, role) => match &view.reason {
            Some(reason) => format!("standby, no leader known ({role}: {reason})"),
            None => format!("standby, no leader known ({role})"),
        },
    }
}

fn epoch_text(epoch: Option<i64>) -> String {
    epoch.map_or_else(|| "unknown".to_string(), |e| e.to_string())
}

/// A standby's `POST /reload`, handed to the standby's loop
/// (`crate::cluster`), which re-reads the file; the reply says what it
/// found, or why the file was rejected.
pub struct StandbyReload {
    pub reply: tokio::sync::oneshot::Sender<Result<StandbyReloaded, String>>,
}

/// What a standby's reload did: the file was read and checked, and applies
/// once this zeoraid is elected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandbyReloaded {
    /// The sentence for operators ("standby: configuration re-read, ...").
    pub message: String,
    /// Members in the file.
    pub members: usize,
    /// Changed settings the running election keeps until a restart.
    pub needs_restart: Vec<String>,
}

/// Added to the error body when a request was refused because this
/// zeoraid does not serve the array: who does, and where to ask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotLeader {
    pub role: Role,
    pub leader: Option<String>,
    /// The leader's HTTP management address (`null`: no leader known).
    pub leader_http: Option<String>,
}

/// A request only the leader serves, sent to a standby: 409, naming the
/// leader and its HTTP address (or saying that none is known).
pub(super) fn not_leader(view: &ClusterView, what: &str) -> ApiError {
    let message = match (&view.leader, view.role) {
        (Some(_), Role::Leader) => format!(
            "{what}: {} was elected and is taking over; it serves this once the takeover is done: \
             try again in a moment",
            view.name
        ),
        (Some(leader), _) => format!(
            "{what}: {} is a standby; the leader is {}, ask its HTTP endpoint at {}",
            view.name,
            leader.name,
            http_url(&leader.http)
        ),
        (None, _) => format!(
            "{what}: {} is a standby and no leader is known (an election is under way): \
             try again later",
            view.name
        ),
    };
    ApiError::new(StatusCode::CONFLICT, message).with_not_leader(NotLeader {
        role: view.role,
        leader: view.leader.as_ref().map(|l| l.name.clone()),
        leader_http: view.leader.as_ref().map(|l| l.http.clone()),
    })
}

/// The URL of an advertised HTTP address (`host:port`, or already a URL).
pub fn http_url(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

/// Keeps the cluster metrics at the election's view until the view's
/// sender is gone or the endpoint stops (which aborts the task).
pub(super) fn follow_metrics(mut view: watch::Receiver<ClusterView>) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        loop {
            {
                let current = view.borrow_and_update();
                zeoraid_actors::metrics::cluster(current.role, current.epoch);
            }
            if view.changed().await.is_err() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use zeoraid_actors::cluster::Advertised;

    fn view(role: Role, leader: Option<&str>) -> ClusterView {
        ClusterView {
            role,
            name: "zr1".into(),
            epoch: leader.map(|_| 7),
            leader: leader.map(|name| Advertised {
                name: name.into(),
                listen: "127.0.0.1:8100".into(),
                http: "127.0.0.1:8101".into(),
            }),
            reason: None,
        }
    }

    #[test]
    fn standby_answers() {
        let standby = view(Role::Standby, Some("zr2"));
        assert_eq!(
            serde_json::to_value(StandbyAnswer::of(&standby, ClusterLine::of)).unwrap(),
            json!({"status": "standby", "summary": "standby, leader zr2 (epoch 7)",
                   "role": "standby", "epoch": 7, "leader": "zr2"})
        );
        assert_eq!(
            serde_json::to_value(StandbyAnswer::of(&standby, ClusterDetails::of)).unwrap(),
            json!({"status": "standby", "summary": "standby, leader zr2 (epoch 7)",
                   "role": "standby", "epoch": 7, "leader": "zr2", "name": "zr1",
                   "leader_http": "127.0.0.1:8101", "leader_listen": "127.0.0.1:8100",
                   "role_reason": null})
        );
        let mut alone = view(Role::Candidate, None);
        alone.reason = Some("etcd unreachable".into());
        assert_eq!(
            standby_summary(&alone),
            "standby, no leader known (candidate: etcd unreachable)"
        );
        assert_eq!(
            standby_summary(&view(Role::Leader, Some("zr1"))),
            "elected (epoch 7), taking over: not serving yet"
        );
    }

    #[test]
    fn a_leaders_details_keep_the_arrays_fields_and_add_the_clusters() {
        let array = json!({
            "status": "failed", "summary": "failed: no member left", "reason": "no member left",
            "cluster_mode": "single", "fail_mode": "close", "last_tid": "03ff", "optimal": 0,
            "quorum": 1, "commits": 0, "aborts": 0, "conflicts": 0, "clients": 0,
            "longest_recovery_block_ms": 0, "state_generation": 1, "state_location": "etcd",
            "members": [],
            "scrub": {"running": false, "progress": null, "last_result": null, "resume_from": null,
                "interval_seconds": null}
        });
        let mut leader = view(Role::Leader, Some("zr1"));
        leader.reason = Some("elected".into());
        let details = Details {
            array: serde_json::from_value(array.clone()).unwrap(),
            cluster: Some(ClusterDetails::of(&leader)),
        };
        let text = serde_json::to_string(&details).unwrap();
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(j["reason"], "no member left", "{text}");
        assert_eq!(j["role_reason"], "elected", "{text}");
        assert_eq!(
            (&j["role"], &j["leader"], &j["epoch"]),
            (&json!("leader"), &json!("zr1"), &json!(7))
        );
        assert_eq!(text.matches("\"reason\"").count(), 1, "no key twice: {text}");
        let back: Details = serde_json::from_str(&text).unwrap();
        assert_eq!(back.cluster, details.cluster);
        let alone = Details {
            array: serde_json::from_value(array.clone()).unwrap(),
            cluster: None,
        };
        assert_eq!(
            serde_json::to_value(&alone).unwrap(),
            array,
            "no cluster key without [cluster]"
        );
    }

    #[test]
    fn refusals_name_the_leader() {
        let e = not_leader(&view(Role::Standby, Some("zr2")), "disable zeo1");
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(
            e.message,
            "disable zeo1: zr1 is a standby; the leader is zr2, ask its HTTP endpoint at http://127.0.0.1:8101"
        );
        let e = not_leader(&view(Role::Candidate, None), "reload");
        assert!(e.message.contains("no leader is known"), "{}", e.message);
        assert_eq!(
            e.not_leader,
            Some(NotLeader {
                role: Role::Candidate,
                leader: None,
                leader_http: None
            })
        );
    }
}
