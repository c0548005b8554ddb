//! The reloader: owns the configuration file's path and the configuration
//! in force, re-reads it on SIGHUP, `POST /reload` and the ZEO call
//! `raid_reload`, and hands the controller what can change at runtime.
//! An invalid file is rejected with every problem and changes nothing.

use crate::config::{self, Config, Member};
use crate::tls::TlsMaterial;
use actix::prelude::*;
use slog::{error, info, Logger};
use std::path::PathBuf;
use zeoraid_actors::controller::{Controller, ReloadConfiguration, ReloadError, ReloadMembers, ReloadReport};

pub struct Reloader {
    path: PathBuf,
    current: Config,
    /// The certificates in force, replaced once a reload is applied.
    tls: TlsMaterial,
    controller: Addr<Controller>,
    log: Logger,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        current: Config,
        tls: TlsMaterial,
        controller: Addr<Controller>,
        log: Logger,
    ) -> Reloader {
        Reloader {
            path,
            current,
            tls,
            controller,
            log,
        }
    }
}

impl Actor for Reloader {
    type Context = Context<Self>;
}

impl Handler<ReloadConfiguration> for Reloader {
    type Result = ResponseActFuture<Self, Result<ReloadReport, ReloadError>>;

    fn handle(&mut self, msg: ReloadConfiguration, _ctx: &mut Context<Self>) -> Self::Result {
        crate::systemd::reloading(&self.log);
        Box::pin(self.reload(msg.source).map(|result, act, _| {
            zeoraid_actors::metrics::reloaded(&result);
            let status = match &result {
                Ok(_) => "reload applied".to_string(),
                Err(e) => e.to_string(),
            };
            crate::systemd::ready(&status, &act.log);
            result
        }))
    }
}

impl Reloader {
    fn reload(&mut self, source: &'static str) -> ResponseActFuture<Self, Result<ReloadReport, ReloadError>> {
        let new = match config::load(&self.path) {
            Ok(new) => new,
            Err(e) => {
                error!(self.log, "reload rejected"; "source" => source, "error" => %e);
                return Box::pin(actix::fut::ready(Err(ReloadError::Rejected(e.to_string()))));
            }
        };
        // A certificate that cannot be used rejects the reload as an
        // invalid file does: the ones in force stay.
        let prepared = match self.tls.prepare(&new) {
            Ok(prepared) => prepared,
            Err(e) => {
                error!(self.log, "reload rejected"; "source" => source, "error" => %e);
                return Box::pin(actix::fut::ready(Err(ReloadError::Rejected(e.to_string()))));
            }
        };
        let needs_restart = needs_restart(&self.current, &new);
        let settings = crate::members::controller_settings(&new, &prepared);
        let request = self.controller.send(ReloadMembers {
            members: settings.members,
            cluster_mode: settings.cluster_mode,
            fail_mode: settings.fail_mode,
            slow: settings.slow,
        });
        Box::pin(request.into_actor(self).map(move |answer, act, _| {
            let outcome = match answer {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(refused)) => {
                    error!(act.log, "reload refused"; "source" => source, "reason" => %refused);
                    return Err(ReloadError::Refused(refused));
                }
                Err(e) => return Err(ReloadError::ControllerUnreachable(e)),
            };
            info!(act.log, "reload applied"; "source" => source, "needs_restart" => ?needs_restart);
            act.tls.install(prepared);
            act.current = new;
            Ok(ReloadReport {
                outcome,
                needs_restart,
            })
        }))
    }
}

/// Settings that changed but are only read at startup.
pub(crate) fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |what: &str, differs: bool| {
        if differs {
            changed.push(what.to_string());
        }
    };
    check("listen", old.listen != new.listen);
    check("listen_mode", old.listen_mode != new.listen_mode);
    check("storage", old.storage != new.storage);
    check("msgpack", old.msgpack != new.msgpack);
    check("max_frame_size", old.max_frame_size != new.max_frame_size);
    check("spool_dir", old.spool_dir != new.spool_dir);
    check("state_dir", old.state_dir != new.state_dir);
    check("timeouts", old.timeouts != new.timeouts);
    check("limits", old.limits != new.limits);
    check("recovery", old.recovery != new.recovery);
    check("http", old.http != new.http);
    check("zeo_admin_calls", old.zeo_admin_calls != new.zeo_admin_calls);
    check("log", old.log != new.log);
    check("cluster", old.cluster != new.cluster);
    check(
        "restart",
        old.restart != new.restart || kept_member_changed(old, new, |m| m.restart),
    );
    check("members.msgpack", kept_member_changed(old, new, |m| m.msgpack));
    check(
        "members.storage",
        kept_member_changed(old, new, |m| m.storage.clone()),
    );
    // New certificate files are read on every reload; whether the listener
    // or a kept member speaks TLS at all, and to which name, is fixed
    // when it starts.
    check("tls", old.tls.is_some() != new.tls.is_some());
    check(
        "members.tls",
        kept_member_changed(old, new, |m| m.tls.as_ref().map(|t| t.server_name.clone())),
    );
    changed
}

/// Whether `what` differs for a member kept (same name and address): it
/// keeps its member actor, so its connection settings apply only from a
/// restart.
fn kept_member_changed<T: PartialEq>(old: &Config, new: &Config, what: impl Fn(&Member) -> T) -> bool {
    new.members.iter().any(|m| {
        old.members
            .iter()
            .any(|o| o.name == m.name && o.address == m.address && what(o) != what(m))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{from_toml_str, Environment};

    fn config(member_b: &str) -> Config {
        let text = format!(
            "[[members]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n\
             [[members]]\nname = \"b\"\n{member_b}\n"
        );
        from_toml_str(&text, "test", &Environment::default()).expect("valid")
    }

    #[test]
    fn a_kept_members_connection_settings_need_a_restart() {
        let old = config("address = \"127.0.0.1:9002\"");
        assert!(needs_restart(&old, &old).is_empty());
        let msgpack_off = config("address = \"127.0.0.1:9002\"\nmsgpack = false");
        assert_eq!(needs_restart(&old, &msgpack_off), ["members.msgpack"]);
        let restart = config("address = \"127.0.0.1:9002\"\n[members.restart]\nmax_restarts = 9");
        assert_eq!(needs_restart(&old, &restart), ["restart"]);
        // A member with a new address is replaced: its settings apply now.
        let moved = config("address = \"127.0.0.1:9003\"\nmsgpack = false");
        assert!(needs_restart(&old, &moved).is_empty());
    }

    #[test]
    fn whether_tls_is_spoken_needs_a_restart_but_new_files_do_not() {
        let old = config("address = \"127.0.0.1:9002\"");
        let tls = config("address = \"127.0.0.1:9002\"\n[members.tls]\nca = \"ca.pem\"");
        assert_eq!(needs_restart(&old, &tls), ["members.tls"]);
        let other_ca = config("address = \"127.0.0.1:9002\"\n[members.tls]\nca = \"other.pem\"");
        assert!(needs_restart(&tls, &other_ca).is_empty());
        let mut front = old.clone();
        front.tls = Some(crate::config::FrontTls {
            identity: crate::config::Identity {
                certificate: "s.pem".into(),
                key: "s.key".into(),
            },
            client_ca: None,
        });
        assert_eq!(needs_restart(&old, &front), ["tls"]);
    }

    #[test]
    fn zeo_admin_calls_needs_a_restart() {
        let old = config("address = \"127.0.0.1:9002\"");
        let mut all = old.clone();
        all.zeo_admin_calls = crate::config::ZeoAdminCalls::All;
        assert_eq!(needs_restart(&old, &all), ["zeo_admin_calls"]);
    }
}
