//! The read routes: `/status`, `/details`, `/actors`, `/metrics`,
//! `/healthz`, `/readyz`. None changes anything. With `[http]
//! token_for_reads` the first four need the token; `/healthz` and
//! `/readyz` never do (the probes of load balancers and service managers
//! seldom carry one), and `/readyz` then leaves out the summary, which
//! names members and why they are degraded.

use super::query::ActorsQuery;
use super::{ApiError, State, READ_TIMEOUT};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::sync::atomic::Ordering;
use zeoraid_actors::controller::{ActorsSnapshot, ArrayStatus, Status};
use zeoraid_actors::status::ArrayState;

/// The content type of the Prometheus text exposition format.
pub(crate) const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl State {
    async fn array_status(&self) -> Result<ArrayStatus, ApiError> {
        self.controller
            .send(Status)
            .timeout(READ_TIMEOUT)
            .await
            .map_err(|e| ApiError::unreachable("controller", e))
    }
}

/// `GET /status`'s answer, which `zeoraid ctl status` reads back:
/// `{"status": "degraded", "summary": "degraded: 1 of 2 members optimal
/// (zeo2 disabled)"}`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct StatusLine {
    pub status: ArrayState,
    pub summary: String,
}

/// `GET /status`: the array's [`StatusLine`]. 200 whatever the status is:
/// the answer is the status (`/readyz` is the probe that fails).
pub(super) async fn status(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize_read(&req)?;
    let s = state.array_status().await?;
    Ok(HttpResponse::Ok().json(StatusLine {
        status: s.status,
        summary: s.summary,
    }))
}

/// `GET /details`: the array (status, summary, reason, modes, last tid,
/// optimal members and quorum, commits/aborts/conflicts, clients) and every
/// member (state, kind and reason of a degradation and since when, first
/// missed tid, connection, last tid, lag, failures).
pub(super) async fn details(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize_read(&req)?;
    Ok(HttpResponse::Ok().json(state.array_status().await?))
}

/// `GET /actors[?within_ms=N]`: every actor's snapshot (controller,
/// members, client sessions); each actor gets `within_ms` (default 1000)
/// to answer, one that does not is listed with an error saying so.
pub(super) async fn actors(
    state: web::Data<State>,
    query: web::Query<ActorsQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.authorize_read(&req)?;
    let within = query.within();
    let view = state
        .controller
        .send(ActorsSnapshot { within })
        .timeout(within + READ_TIMEOUT)
        .await
        .map_err(|e| ApiError::unreachable("controller", e))?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /metrics`: every metric in the Prometheus text format.
pub(super) async fn metrics(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize_read(&req)?;
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

/// `GET /readyz`: 200 when the array takes writes (optimal or degraded),
/// 503 when it has failed or zeoraid is shutting down; the body is the
/// status either way: `{"ready", "status", "summary", "draining"}`.
pub(super) async fn readyz(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let s = state.array_status().await?;
    let draining = state.draining.load(Ordering::SeqCst);
    let ready = matches!(s.status, ArrayState::Optimal | ArrayState::Degraded) && !draining;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let summary = (!state.token_for_reads).then_some(s.summary);
    Ok(HttpResponse::build(code).json(json!({
        "ready": ready,
        "status": s.status,
        "summary": summary,
        "draining": draining,
    })))
}
