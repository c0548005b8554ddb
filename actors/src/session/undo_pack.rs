//! The undo and pack family (`zeo/src/methods/undo_pack.rs`): `undoLog`
//! and a plain `undoInfo` are relayed reads; an `undoInfo` with a filter is
//! evaluated by zeoraid ([`undo_filter`](super::undo_filter)); `pack` goes
//! to the controller, which packs every member and answers with
//! `Packed`, after the `info` callback with the new size.

use super::answers::no_reader;
use super::*;
use crate::controller as ctl;
use zeo::methods::{Pack, UndoInfo};

impl ClientSession {
    pub(super) fn undo_info_filtered(&mut self, ctx: &mut Context<Self>, msgid: MsgId, undo: UndoInfo) {
        let Some(member) = self.pick_reader(&[]) else {
            return self.error(msgid, no_reader());
        };
        let fut = super::undo_filter::undo_info(member, undo.first, undo.last, undo.spec);
        ctx.spawn(
            fut.into_actor(self)
                .map(move |result, act, _| act.answer(msgid, result)),
        );
    }

    /// A pack changes every member: refused on a read-only registration
    /// (a plain ZEO server lets read-only clients pack; a RAID serving
    /// many read-only clients must not let any of them do that).
    pub(super) fn pack(&mut self, msgid: MsgId, pack: Pack) {
        if self.read_only {
            warn!(self.log, "pack refused: the client registered read-only");
            return self.error(msgid, ZeoError::ReadOnlyError);
        }
        self.controller.do_send(ctl::Pack {
            session: self.id,
            msgid,
            t: pack.t,
            wait: pack.wait,
        });
    }

    pub(super) fn on_packed(&mut self, msgid: MsgId, result: Result<(), ZeoError>) {
        self.answer(msgid, result.map(|()| Value::None))
    }

    /// An `info` callback (sizes after a pack), for registered clients.
    pub(super) fn on_info(&mut self, info: Value) {
        if self.registered {
            self.callback(Callback::Info(info));
        }
    }
}
