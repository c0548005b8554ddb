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
use crate::controller::{self as ctl, ReloadConfiguration};

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
                self.ask(ctx, msgid, fut, |s| Ok(Value::str(s.status)));
            }
            ("raid_details", []) => {
                let fut = self.controller.send(ctl::Status);
                self.ask(ctx, msgid, fut, |s| {
                    let members = s.members.into_iter().map(|m| {
                        let state = match (m.state, m.reason) {
                            ("optimal", _) => "optimal".to_string(),
                            ("recovering", _) => match m.recovery.and_then(|r| r.progress) {
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
                    Ok(Value::Dict(members.collect()))
                });
            }
            ("raid_recover", [member]) => {
                let Some(member) = member.as_str().map(str::to_owned) else {
                    return self.error(
                        msgid,
                        ZeoError::ValueError("raid_recover(name): name must be a str".into()),
                    );
                };
                let fut = self.controller.send(ctl::RecoverMember {
                    name: member,
                    full: false,
                });
                ctx.spawn(fut.into_actor(self).map(move |answer, act, _| {
                    let result = match answer {
                        Ok(Ok(message)) => Ok(Value::Str(message)),
                        Ok(Err(refused)) => Err(management_error(&refused.to_string())),
                        Err(e) => Err(ZeoError::unavailable(&format!("controller unreachable: {e}"))),
                    };
                    act.answer(msgid, result);
                }));
            }
            ("raid_disable", [member]) => {
                let Some(member) = member.as_str().map(str::to_owned) else {
                    return self.error(
                        msgid,
                        ZeoError::ValueError("raid_disable(name): name must be a str".into()),
                    );
                };
                let fut = self.controller.send(ctl::DisableMember { name: member.clone() });
                ctx.spawn(fut.into_actor(self).map(move |answer, act, _| {
                    let result = match answer {
                        Ok(Ok(_)) => Ok(Value::Str(format!("disabled {member:?}").replace('"', "'"))),
                        Ok(Err(refused)) => Err(management_error(&refused.to_string())),
                        Err(e) => Err(ZeoError::unavailable(&format!("controller unreachable: {e}"))),
                    };
                    act.answer(msgid, result);
                }));
            }
            ("raid_reload", []) => {
                let Some(reloader) = self.settings.reloader.clone() else {
                    return self.error(
                        msgid,
                        management_error("this zeoraid has no configuration file to reload"),
                    );
                };
                let fut = reloader.send(ReloadConfiguration { source: "zeo" });
                ctx.spawn(fut.into_actor(self).map(move |answer, act, _| {
                    let result = match answer {
                        Ok(Ok(report)) => Ok(Value::Str(format!(
                            "reloaded: added {:?}, removed {:?}, replaced {:?}, needs restart {:?}",
                            report.outcome.added,
                            report.outcome.removed,
                            report.outcome.replaced,
                            report.needs_restart
                        ))),
                        Ok(Err(message)) => Err(management_error(&message)),
                        Err(e) => Err(ZeoError::unavailable(&format!("reloader unreachable: {e}"))),
                    };
                    act.answer(msgid, result);
                }));
            }
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
}

/// A management request that cannot be done: a `RuntimeError` with the
/// reason, as gocept.zeoraid raised.
fn management_error(reason: &str) -> ZeoError {
    ZeoError::Other {
        class: "builtins.RuntimeError".into(),
        payload: Value::tuple([Value::str(reason)]),
    }
}
