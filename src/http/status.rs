//! The read routes: `/status`, `/details`, `/actors`, `/metrics`,
//! `/healthz`, `/readyz`. None changes anything. A standby answers every
//! one of them from the election's view (it has no controller). With `[http]
//! token_for_reads` the first four need the token; `/healthz` and
//! `/readyz` never do (the probes of load balancers and service managers
//! seldom carry one), and `/readyz` then leaves out the summary, which
//! names members and why they are degraded.

use super::cluster::{ClusterDetails, ClusterLine, Details, StandbyAnswer, StandbyStatus};
use super::query::ActorsQuery;
use super::{ApiError, ArrayHandles, State, READ_TIMEOUT};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use zeoraid_actors::cluster::{ClusterView, Role};
use zeoraid_actors::controller::{ActorsSnapshot, ActorsView, ArrayStatus, Status};
use zeoraid_actors::status::ArrayState;

/// The content type of the Prometheus text exposition format.
pub(crate) const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl State {
    async fn array_status(&self, array: &ArrayHandles) -> Result<ArrayStatus, ApiError> {
        array
            .controller
            .send(Status)
            .timeout(READ_TIMEOUT)
            .await
            .map_err(|e| ApiError::unreachable("controller", e))
    }
}

/// `GET /status`'s answer where the array is served, which `zeoraid ctl
/// status` reads back: `{"status": "degraded", "summary": "degraded: 1 of
/// 2 members optimal (zeo2 disabled)"}`, with `"role"`, `"epoch"` and
/// `"leader"` when the zeoraid runs in a cluster.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct StatusLine {
    pub status: ArrayState,
    pub summary: String,
    /// Set while a scrub found members that differ with no majority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconsistent: Option<String>,
    #[serde(flatten)]
    pub cluster: Option<ClusterLine>,
}

/// `GET /status`: the array's [`StatusLine`]. 200 whatever the status is:
/// the answer is the status (`/readyz` is the probe that fails). On a
/// standby: `{"status": "standby", "summary", "role", "epoch", "leader"}`.
pub(super) async fn status(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize_read(&req)?;
    let array = match state.serving() {
        Ok(array) => array,
        Err(view) => return Ok(HttpResponse::Ok().json(StandbyAnswer::of(&view, ClusterLine::of))),
    };
    let s = state.array_status(array).await?;
    Ok(HttpResponse::Ok().json(StatusLine {
        status: s.status,
        summary: s.summary,
        inconsistent: s.inconsistent,
        cluster: state.cluster_view().as_ref().map(ClusterLine::of),
    }))
}

/// `GET /details`: the array (status, summary, reason, modes, last tid,
/// optimal members and quorum, commits/aborts/conflicts, clients) and every
/// member (state, kind and reason of a degradation and since when, first
/// missed tid, connection, last tid, lag, failures); in a cluster also
/// the role, epoch, this zeoraid's name and the leader's name and
/// addresses (a standby answers these alone, as `/status` does).
pub(super) async fn details(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize_read(&req)?;
    let array = match state.serving() {
        Ok(array) => array,
        Err(view) => return Ok(HttpResponse::Ok().json(StandbyAnswer::of(&view, ClusterDetails::of))),
    };
    Ok(HttpResponse::Ok().json(Details {
        array: state.array_status(array).await?,
        cluster: state.cluster_view().as_ref().map(ClusterDetails::of),
    }))
}

/// `GET /actors`' answer: the controller's view of the actors, and the
/// election's view in a cluster (on a standby, that alone).
#[derive(serde::Serialize)]
struct ActorsAnswer {
    #[serde(flatten)]
    array: Option<ActorsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    election: Option<ClusterView>,
}

/// `GET /actors[?within_ms=N]`: every actor's snapshot (controller,
/// members, client sessions, and the election's view in a cluster); each
/// actor gets `within_ms` (default 1000) to answer, one that does not is
/// listed with an error saying so.
pub(super) async fn actors(
    state: web::Data<State>,
    query: web::Query<ActorsQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.authorize_read(&req)?;
    let election = state.cluster_view();
    let array = match state.serving() {
        Ok(array) => {
            let within = query.within();
            let view = array
                .controller
                .send(ActorsSnapshot { within })
                .timeout(within + READ_TIMEOUT)
                .await
                .map_err(|e| ApiError::unreachable("controller", e))?;
            Some(view)
        }
        Err(_) => None,
    };
    Ok(HttpResponse::Ok().json(ActorsAnswer { array, election }))
}

/// How long `/metrics` waits for the controller's status (for the lag and
/// last tid gauges) before it renders without refreshing them: a scrape
/// must answer even while the controller is busy.
const POSITIONS_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /metrics`: every metric in the Prometheus text format; where the
/// array is served, the members' lag and last tid gauges are refreshed
/// from the controller's status first (left as they were when it does not
/// answer within [`POSITIONS_TIMEOUT`]).
pub(super) async fn metrics(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize_read(&req)?;
    if let Ok(array) = state.serving() {
        if let Ok(status) = array.controller.send(Status).timeout(POSITIONS_TIMEOUT).await {
            zeoraid_actors::metrics::positions(&status);
        }
    }
    Ok(HttpResponse::Ok()
        .content_type(METRICS_CONTENT_TYPE)
        .body(zeoraid_actors::metrics::render()))
}

/// `GET /healthz`: the process is alive and its HTTP endpoint answers; it
/// asks no actor (a stuck array is `/readyz`'s and `/actors`' business).
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "alive": true,
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
    }))
}

/// `GET /readyz`: 200 when the array takes writes (optimal, degraded, or
/// recovering: a recovery copies beside the clients' commits, so every
/// zeoraid of a fleet may recover at once and none may drop out) here, 503 when it has failed, zeoraid is shutting down, or (in a
/// cluster) this zeoraid does not lead: a load balancer must send no
/// client to a standby. The body says why either way: `{"ready",
/// "status", "summary", "draining"}` (and `"role"` in a cluster).
pub(super) async fn readyz(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let draining = state.draining.load(Ordering::SeqCst);
    let role = state.cluster_view().map(|view| view.role);
    let array = match state.serving() {
        Ok(array) => array,
        Err(view) => {
            return Ok(HttpResponse::ServiceUnavailable().json(json!({
                "ready": false,
                "status": StandbyStatus::Standby,
                "role": view.role,
                "draining": draining,
            })))
        }
    };
    let s = state.array_status(array).await?;
    let leads = role.is_none_or(|role| role == Role::Leader);
    let ready = takes_writes(s.status) && !draining && leads;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let summary = (!state.token_for_reads).then_some(s.summary);
    let mut body = json!({
        "ready": ready,
        "status": s.status,
        "summary": summary,
        "draining": draining,
    });
    if let Some(role) = role {
        body["role"] = json!(role);
    }
    Ok(HttpResponse::build(code).json(body))
}

/// Whether an array in `status` takes writes: every status but `failed`.
fn takes_writes(status: ArrayState) -> bool {
    match status {
        ArrayState::Optimal | ArrayState::Degraded | ArrayState::Recovering => true,
        ArrayState::Failed => false,
    }
}
