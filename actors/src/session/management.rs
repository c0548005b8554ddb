//! The gocept.zeoraid management calls, answered as ZEO methods so that
//! scripts calling them through `ClientStorage._call` keep working:
//! `raid_status()` → `'optimal'`/`'degraded'`/`'failed'`;
//! `raid_details()` → `{name: 'optimal' | 'failed: REASON'}` (gocept's
//! shape: a degraded member is reported as `failed: ` and its reason);
//! `raid_disable(name)` → `"disabled 'NAME'"`; `raid_recover(name)` →
//! `"recovering 'NAME' from 'SOURCE'"`; `raid_reload()` → a summary.
//! They are served while the array has failed too (that is when they are
//! needed); the two that change the array are refused on a read-only
//! connection. Any other `raid_*` name is answered with an
//! `AttributeError`, as for a method a storage does not have.

use super::*;
use crate::controller::{self as ctl, ArrayStatus, ReloadConfiguration, ReloadReport};
use crate::status::MemberState;

impl ClientSession {
    pub(super) fn on_management(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        name: &str,
        args: &[Value],
    ) {
        let mutating = matches!(name, "raid_disable" | "raid_reload" | "raid_recover");
        if mutating && self.read_only {
            return self.error(msgid, ZeoError::ReadOnlyError);
        }
        info!(self.log, "management call"; "method" => name);
        match (name, args) {
            ("raid_status", []) => {
                let fut = self.controller.send(ctl::Status);
                self.ask(ctx, msgid, fut, |s| Ok(Value::str(s.status.as_str())));
            }
            ("raid_details", []) => {
                let fut = self.controller.send(ctl::Status);
                self.ask(ctx, msgid, fut, |s| Ok(raid_details(s)));
            }
            ("raid_recover", [member]) => self.raid_recover(ctx, msgid, member),
            ("raid_disable", [member]) => self.raid_disable(ctx, msgid, member),
            ("raid_reload", []) => self.raid_reload(ctx, msgid),
            ("raid_status" | "raid_details" | "raid_reload" | "raid_disable" | "raid_recover", _) => {
                let takes_name = matches!(name, "raid_disable" | "raid_recover");
                let problem = format!("{name}() takes {} argument(s)", usize::from(takes_name));
                self.error(
                    msgid,
                    ZeoError::Other {
                        class: "builtins.TypeError".into(),
                        payload: Value::tuple([Value::Str(problem)]),
                    },
                );
            }
            _ => self.error(
                msgid,
                ZeoError::Other {
                    class: "builtins.AttributeError".into(),
                    payload: Value::tuple([Value::Str(format!("zeoraid has no management method {name}"))]),
                },
            ),
        }
    }

    fn raid_recover(&mut self, ctx: &mut Context<Self>, msgid: MsgId, member: &Value) {
        let name = match member_name("raid_recover", member) {
            Ok(name) => name,
            Err(error) => return self.error(msgid, error),
        };
        let fut = self.controller.send(ctl::RecoverMember { name, full: false });
        self.ask(ctx, msgid, fut, |answer| {
            answer
                .map(Value::Str)
                .map_err(|refused| management_error(&refused.to_string()))
        });
    }

    fn raid_disable(&mut self, ctx: &mut Context<Self>, msgid: MsgId, member: &Value) {
        let name = match member_name("raid_disable", member) {
            Ok(name) => name,
            Err(error) => return self.error(msgid, error),
        };
        let fut = self.controller.send(ctl::DisableMember { name: name.clone() });
        self.ask(ctx, msgid, fut, move |answer| {
            answer
                .map(|_| Value::Str(format!("disabled {name:?}").replace('"', "'")))
                .map_err(|refused| management_error(&refused.to_string()))
        });
    }

    fn raid_reload(&mut self, ctx: &mut Context<Self>, msgid: MsgId) {
        let Some(reloader) = self.settings.reloader.clone() else {
            return self.error(
                msgid,
                management_error("this zeoraid has no configuration file to reload"),
            );
        };
        let fut = reloader.send(ReloadConfiguration { source: "zeo" });
        self.ask_actor(ctx, msgid, "reloader", fut, |_, answer| {
            answer
                .map(|report| Value::Str(reload_summary(&report)))
                .map_err(|message| management_error(&message.to_string()))
        });
    }
}

/// `raid_details()` in gocept's shape: `{name: state}`, a degraded member
/// as `failed: ` and its reason.
fn raid_details(status: ArrayStatus) -> Value {
    let members = status.members.into_iter().map(|m| {
        let state = match (m.state, m.reason) {
            (MemberState::Optimal, _) => "optimal".to_string(),
            (MemberState::Recovering, _) => match m.recovery.and_then(|r| r.progress) {
                Some(p) => format!(
                    "recovering: {} transaction(s), {:.0}%",
                    p.copied_transactions,
                    p.fraction_done * 100.0
                ),
                None => "recovering: starting".to_string(),
            },
            (_, reason) => format!("failed: {}", reason.unwrap_or_default()),
        };
        (Value::Str(m.name), Value::Str(state))
    });
    Value::Dict(members.collect())
}

fn reload_summary(report: &ReloadReport) -> String {
    format!(
        "reloaded: added {:?}, removed {:?}, replaced {:?}, needs restart {:?}",
        report.outcome.added, report.outcome.removed, report.outcome.replaced, report.needs_restart
    )
}

/// The member name argument of `method(name)`.
fn member_name(method: &str, member: &Value) -> Result<String, ZeoError> {
    member
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ZeoError::ValueError(format!("{method}(name): name must be a str")))
}

/// A management request that cannot be done: a `RuntimeError` with the
/// reason, as gocept.zeoraid raised.
fn management_error(reason: &str) -> ZeoError {
    ZeoError::Other {
        class: "builtins.RuntimeError".into(),
        payload: Value::tuple([Value::str(reason)]),
    }
}
