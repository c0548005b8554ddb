//! The mutating routes: `POST /members/{name}/disable`,
//! `POST /members/{name}/recover`, `POST /reload`. Each needs the bearer
//! token when one is configured, and is logged.

use super::{ApiError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use slog::info;
use zeoraid_actors::controller::{AdminError, Controller, DisableMember, RecoverMember, ReloadConfiguration};

/// `POST /members/{name}/disable`: degrade the member now with the reason
/// "disabled by operator"; it gets no more reads or writes until recovery.
/// 200 `{"member", "message"}` (also when it already was degraded);
/// 404 for an unknown member; 409 when the array would fail without it;
/// 503 while shutting down.
pub(super) async fn disable(
    state: web::Data<State>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req)?;
    let name = name.into_inner();
    info!(state.log, "admin request"; "action" => "disable", "member" => &name,
        "peer" => peer(&req));
    member_action(&state, name.clone(), DisableMember { name }).await
}

/// `POST /members/{name}/recover[?full=true]`: start recovering a
/// degraded member from an optimal one (it goes degraded → recovering →
/// optimal; progress in `/details`). `full=true` copies everything and is
/// only accepted for an empty member. 200 `{"member", "message"}`; 404 for
/// an unknown member; 409 when it cannot be recovered now (optimal,
/// already recovering, not connected, no source); 503 while shutting down.
pub(super) async fn recover(
    state: web::Data<State>,
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<RecoverQuery>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req)?;
    let name = name.into_inner();
    let full = query.full.unwrap_or(false);
    info!(state.log, "admin request"; "action" => "recover", "member" => &name, "full" => full,
        "peer" => peer(&req));
    member_action(&state, name.clone(), RecoverMember { name, full }).await
}

/// Asks the controller to do something to a member: 200 `{"member",
/// "message"}`, or the refusal as its status code.
async fn member_action<M>(state: &State, member: String, msg: M) -> Result<HttpResponse, ApiError>
where
    M: actix::Message<Result = Result<String, AdminError>> + Send + 'static,
    Controller: actix::Handler<M>,
{
    let answer = state
        .controller
        .send(msg)
        .timeout(state.admin_timeout)
        .await
        .map_err(|e| ApiError::unreachable("controller", e))?;
    match answer {
        Ok(message) => Ok(HttpResponse::Ok().json(MemberActionDone { member, message })),
        Err(e) => Err(admin_error(&e)),
    }
}

/// The answer to a disable or recover that was done, which `zeoraid ctl`
/// reads back.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct MemberActionDone {
    pub member: String,
    /// What happened, in one sentence.
    pub message: String,
}

#[derive(serde::Deserialize)]
pub(super) struct RecoverQuery {
    full: Option<bool>,
}

fn admin_error(e: &AdminError) -> ApiError {
    let status = match e {
        AdminError::UnknownMember(_) => StatusCode::NOT_FOUND,
        AdminError::WouldFail(_) | AdminError::Refused(_) => StatusCode::CONFLICT,
        AdminError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, e.to_string())
}

/// `POST /reload`: re-read the configuration file (as SIGHUP does). 200
/// with what changed: `{"added", "removed", "replaced", "unchanged",
/// "settings_changed", "needs_restart"}` (members added come in degraded
/// "added", members removed are closed). A file that does not load or
/// validate is rejected with every problem (422), a reload that would
/// leave the array failed is refused (409); either way nothing changed.
pub(super) async fn reload(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&req)?;
    info!(state.log, "admin request"; "action" => "reload", "peer" => peer(&req));
    let answer = state
        .reloader
        .send(ReloadConfiguration { source: "http" })
        .timeout(state.admin_timeout)
        .await
        .map_err(|e| ApiError::unreachable("reloader", e))?;
    match answer {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(message) => Err(ApiError::new(reload_error_status(&message), message)),
    }
}

/// The reloader answers a message; its wording says which kind of refusal
/// it is (see `src/reload.rs`).
fn reload_error_status(message: &str) -> StatusCode {
    if message.contains("shutting down") || message.contains("unreachable") {
        StatusCode::SERVICE_UNAVAILABLE
    } else if message.starts_with("reload refused") {
        StatusCode::CONFLICT
    } else {
        // "reload rejected, nothing changed: <config error>" and anything else.
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

fn peer(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_errors() {
        assert_eq!(
            reload_error_status("reload rejected, nothing changed: members[0].address: ..."),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            reload_error_status("reload refused, nothing changed: refused: after the reload ..."),
            StatusCode::CONFLICT
        );
        assert_eq!(
            reload_error_status("reload refused, nothing changed: zeoraid is shutting down"),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            reload_error_status("reload failed: controller unreachable: mailbox closed"),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn disable_errors() {
        assert_eq!(
            admin_error(&AdminError::UnknownMember("x".into())).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            admin_error(&AdminError::WouldFail("no".into())).status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            admin_error(&AdminError::ShuttingDown).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
