//! The mutating routes: `POST /members/{name}/disable`,
//! `POST /members/{name}/recover`, `POST /members/{name}/force-optimal`,
//! `POST /reload`. Each needs the bearer token when one is configured, and
//! is logged. Only the zeoraid that serves the array does them: a standby
//! answers 409 naming the leader and its HTTP address.

use super::query::{ForceQuery, RecoverQuery, ScrubQuery};
use super::{ApiError, ArrayHandles, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use slog::info;
use zeoraid_actors::controller::{
    AdminError, Controller, DisableMember, ForceOptimal, RecoverMember, ReloadConfiguration, ReloadError,
    StartScrub,
};

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
    let array = state.leader_only(&format!("disable {name}"))?;
    member_action(array, name.clone(), DisableMember { name }).await
}

/// `POST /members/{name}/recover[?full=true]`: start recovering a
/// degraded member from an optimal one (it goes degraded → recovering →
/// optimal; progress in `/details`). `full=true` copies everything and is
/// only accepted for an empty member. A member that is not connected
/// reconnects now and recovers once connected (the message says so).
/// 200 `{"member", "message"}`; 404 for an unknown member; 409 when it
/// cannot be recovered now (optimal, already recovering, no source); 503
/// while shutting down.
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
    let array = state.leader_only(&format!("recover {name}"))?;
    member_action(array, name.clone(), RecoverMember { name, full }).await
}

/// `POST /members/{name}/force-optimal[?confirm=true]`: the disaster
/// override, for when the members holding every acknowledged transaction
/// are gone for good: the connected degraded member becomes optimal and
/// the array goes on from its last tid; members that may hold more are
/// marked diverged. Without `confirm=true` nothing changes: 409 with what
/// may be lost. 200 `{"member", "message"}` once done; 404 for an unknown
/// member; 409 when refused (a member is optimal, it is not connected);
/// 503 while shutting down.
pub(super) async fn force_optimal(
    state: web::Data<State>,
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<ForceQuery>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req)?;
    let name = name.into_inner();
    let confirm = query.confirm.unwrap_or(false);
    info!(state.log, "admin request"; "action" => "force-optimal", "member" => &name,
        "confirm" => confirm, "peer" => peer(&req));
    let array = state.leader_only(&format!("force-optimal {name}"))?;
    let msg = ForceOptimal {
        name: name.clone(),
        confirm,
    };
    match ask(array, msg).await? {
        Ok(message) => Ok(done(name, message)),
        Err(AdminError::Unconfirmed(lost)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{lost} Nothing was changed: to do it, POST again with ?confirm=true \
                 (zeoraid ctl force-optimal {name} --yes)."
            ),
        )),
        Err(e) => Err(admin_error(&e)),
    }
}

/// Asks the controller to do something to a member: 200 `{"member",
/// "message"}`, or the refusal as its status code.
async fn member_action<M>(array: &ArrayHandles, member: String, msg: M) -> Result<HttpResponse, ApiError>
where
    M: actix::Message<Result = Result<String, AdminError>> + Send + 'static,
    Controller: actix::Handler<M>,
{
    match ask(array, msg).await? {
        Ok(message) => Ok(done(member, message)),
        Err(e) => Err(admin_error(&e)),
    }
}

/// The controller's answer to an admin message (503 when it does not
/// answer within the admin timeout).
async fn ask<M>(array: &ArrayHandles, msg: M) -> Result<Result<String, AdminError>, ApiError>
where
    M: actix::Message<Result = Result<String, AdminError>> + Send + 'static,
    Controller: actix::Handler<M>,
{
    array
        .controller
        .send(msg)
        .timeout(array.admin_timeout)
        .await
        .map_err(|e| ApiError::unreachable("controller", e))
}

fn done(member: String, message: String) -> HttpResponse {
    HttpResponse::Ok().json(MemberActionDone { member, message })
}

/// The answer to a disable, recover or force-optimal that was done, which `zeoraid ctl`
/// reads back.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct MemberActionDone {
    pub member: String,
    /// What happened, in one sentence.
    pub message: String,
}

/// `POST /scrub[?from=TID&to=TID]`: start comparing the optimal members'
/// histories over `[from, to]` (defaults: where an interrupted scrub
/// stopped, else the beginning; the array's last tid). A member that
/// differs from the majority is degraded as diverged; with no majority
/// the array is flagged inconsistent. Progress and the result in
/// `/details`' `scrub`. 200 `{"message"}`; 409 when one runs already,
/// fewer than 2 optimal members are connected, or `from` is after `to`.
pub(super) async fn scrub(
    state: web::Data<State>,
    req: HttpRequest,
    query: web::Query<ScrubQuery>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req)?;
    let ScrubQuery { from, to } = query.into_inner();
    info!(state.log, "admin request"; "action" => "scrub", "from" => from.map(|t| t.to_hex()),
        "to" => to.map(|t| t.to_hex()), "peer" => peer(&req));
    let array = state.leader_only("scrub")?;
    match ask(array, StartScrub { from, to }).await? {
        Ok(message) => Ok(HttpResponse::Ok().json(ScrubStarted { message })),
        Err(e) => Err(admin_error(&e)),
    }
}

/// The answer to a scrub that started, which `zeoraid ctl scrub` reads back.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ScrubStarted {
    /// What was started, in one sentence.
    pub message: String,
}

fn admin_error(e: &AdminError) -> ApiError {
    let status = match e {
        AdminError::UnknownMember(_) => StatusCode::NOT_FOUND,
        AdminError::WouldFail(_) | AdminError::Refused(_) | AdminError::Unconfirmed(_) => {
            StatusCode::CONFLICT
        }
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
    if let super::Mode::Standby { reloads, cluster } = &state.mode {
        return standby_reload(reloads, cluster).await;
    }
    let array = state.leader_only("reload")?;
    let answer = array
        .reloader
        .send(ReloadConfiguration { source: "http" })
        .timeout(array.admin_timeout)
        .await
        .map_err(|e| ApiError::unreachable("reloader", e))?;
    match answer {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(e) => Err(ApiError::new(reload_error_status(&e), e.to_string())),
    }
}

/// A standby checks the file it will lead with: 200 with what it found, 422
/// when rejected. Once elected (taking over) the loop that owns the file is
/// gone: 409, try the leader's endpoint in a moment.
async fn standby_reload(
    reloads: &tokio::sync::mpsc::Sender<super::StandbyReload>,
    cluster: &tokio::sync::watch::Receiver<zeoraid_actors::cluster::ClusterView>,
) -> Result<HttpResponse, ApiError> {
    let not_standby = || super::cluster::not_leader(&cluster.borrow(), "reload");
    let (reply, answer) = tokio::sync::oneshot::channel();
    reloads
        .send(super::StandbyReload { reply })
        .await
        .map_err(|_| not_standby())?;
    match answer.await.map_err(|_| not_standby())? {
        Ok(reloaded) => Ok(HttpResponse::Ok().json(reloaded)),
        Err(rejected) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, rejected)),
    }
}

/// A file that does not load or validate is the request's fault (422); a
/// refusal for the array's sake is a conflict (409); a daemon that is
/// shutting down or whose controller is gone cannot serve it (503).
fn reload_error_status(e: &ReloadError) -> StatusCode {
    match e {
        ReloadError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ReloadError::Refused(AdminError::ShuttingDown) | ReloadError::ControllerUnreachable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ReloadError::Refused(_) => StatusCode::CONFLICT,
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
        let rejected = ReloadError::Rejected("invalid config x: members[0].address: ...".into());
        assert_eq!(reload_error_status(&rejected), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(rejected
            .to_string()
            .starts_with("reload rejected, nothing changed: invalid config"));
        let would_fail = ReloadError::Refused(AdminError::WouldFail("refused: after the reload ...".into()));
        assert_eq!(reload_error_status(&would_fail), StatusCode::CONFLICT);
        assert_eq!(
            would_fail.to_string(),
            "reload refused, nothing changed: refused: after the reload ..."
        );
        let shutting_down = ReloadError::Refused(AdminError::ShuttingDown);
        assert_eq!(
            reload_error_status(&shutting_down),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            shutting_down.to_string(),
            "reload refused, nothing changed: zeoraid is shutting down"
        );
        let unreachable = ReloadError::ControllerUnreachable(actix::MailboxError::Closed);
        assert_eq!(reload_error_status(&unreachable), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            unreachable.to_string(),
            "reload failed: controller unreachable: Mailbox has closed"
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
