//! The session family (`zeo/src/methods/session.rs`): `register`,
//! `lastTransaction`, `set_client_label` (`get_info`, `server_status` and
//! `ping` are answered in the router), and what the controller tells a
//! registered session: its registration's answer, invalidations, and where
//! reads may go.

use super::*;
use crate::controller as ctl;
use zeo::methods::Register;

impl ClientSession {
    pub(super) fn register(&mut self, ctx: &mut Context<Self>, msgid: MsgId, register: Register) {
        if self.registered || self.registering {
            return self.close(ctx, "register called twice");
        }
        if register.storage != self.settings.storage {
            let error = ZeoError::ValueError(format!("unknown storage: {}", register.storage));
            return self.error(msgid, error);
        }
        self.registering = true;
        self.read_only = register.read_only;
        let handle = ctl::SessionHandle {
            to_session: ctx.address().recipient(),
            snapshot: ctx.address().recipient(),
        };
        self.controller.do_send(ctl::Register {
            session: self.id,
            handle,
            msgid,
            read_only: register.read_only,
        });
    }

    pub(super) fn last_transaction(&mut self, ctx: &mut Context<Self>, msgid: MsgId) {
        let fut = self.controller.send(ctl::LastTid);
        self.ask_actor(ctx, msgid, "controller", fut, |act, tid| {
            act.saw(tid);
            Ok(Value::bytes(tid.0.to_vec()))
        });
    }

    pub(super) fn set_label(&mut self, label: String) {
        info!(self.log, "client label"; "label" => &label);
        self.label = Some(label);
    }

    pub(super) fn on_registered(&mut self, msgid: MsgId, result: Result<Tid, ZeoError>) {
        if let Ok(tid) = &result {
            self.saw(*tid);
        }
        self.registering = false;
        self.registered = result.is_ok();
        self.answer(msgid, result.map(|tid| Value::bytes(tid.0.to_vec())));
    }

    /// Another client committed `tid`: in-flight loads of its objects must
    /// not come back as current, and the client invalidates its cache.
    pub(super) fn on_invalidate(&mut self, tid: Tid, oids: Vec<Oid>) {
        self.saw(tid);
        for load in self.loads.values_mut() {
            if load.invalidated_by.is_none() && oids.contains(&load.oid) {
                load.invalidated_by = Some(tid);
            }
        }
        if self.registered {
            self.callback(Callback::InvalidateTransaction { tid, oids });
        }
    }

    pub(super) fn on_serving(
        &mut self,
        readers: Vec<Addr<MemberActor>>,
        serving: Serving,
        cluster_mode: ClusterMode,
    ) {
        if serving != self.serving {
            info!(self.log, "serving"; "now" => ?serving);
        }
        self.readers = readers;
        self.serving = serving;
        self.cluster_mode = cluster_mode;
    }
}
