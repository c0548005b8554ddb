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
//!
//! The ZEO port has no authentication of its own, so `zeo_admin_calls`
//! says which of them clients may make: `status` (the default) only the
//! two that read, `all` every one (gocept compatibility; with `[http]
//! token` set the three that change the array carry the token as their
//! last argument, e.g. `raid_disable('m1', TOKEN)`), `none` not one. A
//! refusal is a `RuntimeError` that names the setting.

use super::*;
use crate::controller::{self as ctl, ArrayStatus, ReloadConfiguration, ReloadReport};
use crate::status::MemberState;
use crate::token::Token;

impl ClientSession {
    pub(super) fn on_management(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        name: &str,
        args: &[Value],
    ) {
        let mutating = matches!(name, "raid_disable" | "raid_reload" | "raid_recover");
        if let Err(refused) = self.settings.admin_calls.allows(name, mutating) {
            warn!(self.log, "management call refused"; "method" => name, "zeo_admin_calls" => self.settings.admin_calls.as_str());
            return self.error(msgid, management_error(&refused));
        }
        if mutating && self.read_only {
            return self.error(msgid, ZeoError::ReadOnlyError);
        }
        let args = match (&self.settings.admin_token, mutating) {
            (Some(token), true) => match without_token(name, args, token) {
                Ok(args) => args,
                Err(refused) => {
                    warn!(self.log, "management call refused"; "method" => name, "reason" => &refused);
                    return self.error(msgid, management_error(&refused));
                }
            },
            _ => args,
        };
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
            ("raid_panic_for_tests", []) if panics_for_tests() => {
                panic!("raid_panic_for_tests called ({PANICS_FOR_TESTS} is set)")
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

/// The variable that makes `raid_panic_for_tests()` panic the session: the
/// tests' way to check that any panic ends the process (`zeoraid::panics`).
/// Unset (as in production), that name is unknown like any other.
const PANICS_FOR_TESTS: &str = "ZEORAID_TEST_PANICS";

fn panics_for_tests() -> bool {
    std::env::var_os(PANICS_FOR_TESTS).is_some_and(|v| v == "1")
}

/// Which `raid_*` management calls ZEO clients may make (`zeo_admin_calls`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeoAdminCalls {
    /// `raid_status` and `raid_details` only.
    #[default]
    Status,
    /// Every call, as gocept.zeoraid; the mutating ones carry the HTTP
    /// token when one is set.
    All,
    /// No `raid_*` call at all.
    None,
}

impl ZeoAdminCalls {
    pub const NAMES: &'static str = "\"status\", \"all\" or \"none\"";

    pub fn parse(text: &str) -> Option<ZeoAdminCalls> {
        match text {
            "status" => Some(ZeoAdminCalls::Status),
            "all" => Some(ZeoAdminCalls::All),
            "none" => Some(ZeoAdminCalls::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ZeoAdminCalls::Status => "status",
            ZeoAdminCalls::All => "all",
            ZeoAdminCalls::None => "none",
        }
    }

    /// Whether the call `name` may be made, or why not (naming the setting).
    fn allows(self, name: &str, mutating: bool) -> Result<(), String> {
        match self {
            ZeoAdminCalls::All => Ok(()),
            ZeoAdminCalls::Status if !mutating => Ok(()),
            ZeoAdminCalls::Status => Err(format!(
                "{name} is refused over ZEO: zeo_admin_calls = \"status\" allows only raid_status and \
                 raid_details (use the HTTP endpoint, or set zeo_admin_calls = \"all\")"
            )),
            ZeoAdminCalls::None => Err(format!(
                "{name} is refused over ZEO: zeo_admin_calls = \"none\" (use the HTTP endpoint)"
            )),
        }
    }
}

/// The arguments of a mutating call without its last one, the token, once
/// that one is `token`; or why the call is refused (never showing what
/// was given).
fn without_token<'a>(name: &str, args: &'a [Value], token: &Token) -> Result<&'a [Value], String> {
    let Some((given, rest)) = args.split_last() else {
        return Err(format!(
            "{name} needs the [http] token as its last argument (zeo_admin_calls = \"all\" with a token set)"
        ));
    };
    let given = match given {
        Value::Str(s) => s.as_bytes(),
        Value::Bytes(b) => b.as_ref(),
        _ => &[],
    };
    if token.accepts_bytes(given) {
        Ok(rest)
    } else {
        Err(format!(
            "{name}: wrong or missing token (its last argument must be the [http] token)"
        ))
    }
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
