//! Pack: every optimal member packs with the same time, under the commit
//! lock.

use super::*;
use crate::member::Call;
use zeo::exceptions::ZeoError;
use zeo::methods::{self, Request};
use zeo::reply::Reply;

impl Handler<Pack> for Controller {
    type Result = ();

    fn handle(&mut self, msg: Pack, ctx: &mut Context<Self>) {
        self.lock.queue_pack(msg);
        self.run_next(ctx);
    }
}

impl Controller {
    /// Every optimal member packs, with the client's time and under the
    /// commit lock: with no commit running meanwhile every member packs the
    /// same state (FileStorage's pack result depends on what commits while
    /// it runs, so members packing beside a stream of commits could come
    /// out different). Then the new size goes to every client. Refused
    /// while the array takes no writes or a recovery copies.
    pub(super) fn start_pack(&mut self, ctx: &mut Context<Self>, msg: Pack) {
        if let Some(error) = self.write_refusal().or_else(|| self.pack_refusal()) {
            let result = Err(error);
            let msgid = msg.msgid;
            return self.reply(msg.session, ToSession::Packed { msgid, result });
        }
        self.lock.hold_pack();
        if !msg.wait.is_truthy() {
            // The client does not wait (ZEO answers such a pack at once),
            // but zeoraid does: see `methods::Pack` below.
            let msgid = msg.msgid.clone();
            self.reply(
                msg.session,
                ToSession::Packed {
                    msgid,
                    result: Ok(()),
                },
            );
        }
        // A pack time in the future (a client whose clock is ahead) packs
        // the same as now, but a member recovered later would be packed at
        // that time too, over transactions committed after this pack: so
        // the members are asked for no later than zeoraid's now.
        let pack_time = msg.t.min(unix_seconds(SystemTime::now()));
        info!(self.log, "pack started"; "pack_time" => pack_time, "asked_pack_time" => msg.t,
            "commits_waiting" => self.lock.votes_waiting());
        // Members packing under a scrub's open iterators would answer it
        // from histories in the middle of changing: it stops (its
        // position stays, `ctl scrub` resumes it).
        self.stop_scrub("a pack started");
        // Always `wait`, whatever the client asked: a member answering at
        // once would pack in a thread beside the commits that follow the
        // release of the lock, and its result would depend on where its
        // pack found the end of its file.
        let request = Request::Pack(methods::Pack {
            t: pack_time,
            wait: Value::Int(1),
        });
        let answers = self.fan_out(&self.ids(&self.writers()), Call(request));
        ctx.spawn(answers.into_actor(self).then(move |results, act, _| {
            let mut outcome = Ok(());
            let mut packed = None;
            for a in act.sort_answers(results, "pack", Ok, None) {
                match a.answer {
                    Ok(_) => packed = packed.or(act.member(a.member)),
                    Err(e) => outcome = Err(e),
                }
            }
            let packed_somewhere = packed.is_some();
            let sizes = async move {
                let member = packed?;
                match member.send(Call(Request::GetInfo)).await {
                    Ok(Ok(Reply::GetInfo(info))) => Some(info),
                    _ => None,
                }
            };
            sizes.into_actor(act).map(move |info, act, ctx| {
                let answer = msg.wait.is_truthy().then_some((msg.session, msg.msgid));
                act.packed(ctx, answer, outcome, info, packed_somewhere.then_some(pack_time))
            })
        }));
    }

    /// The pack ended: every client gets the new sizes, the packing client
    /// its answer, and every member not in step now (also one the pack
    /// itself degraded) is marked as having missed the pack at
    /// `pack_time`, so that its recovery knows. Then the recoveries asked
    /// for during the pack start.
    fn packed(
        &mut self,
        ctx: &mut Context<Self>,
        answer: Option<(SessionId, zeo::message::MsgId)>,
        result: Result<(), ZeoError>,
        info: Option<Value>,
        pack_time: Option<f64>,
    ) {
        if let Some(info) = info {
            let sizes: Vec<(Value, Value)> = ["length", "size"]
                .into_iter()
                .filter_map(|k| info.dict_get(k).map(|v| (Value::str(k), v.clone())))
                .collect();
            self.last_info = Value::Dict(sizes);
            for s in self.sessions.values() {
                s.do_send(ToSession::Info(self.last_info.clone()));
            }
        }
        match (&result, answer) {
            (_, Some((session, msgid))) => {
                info!(self.log, "pack finished"; "ok" => result.is_ok());
                self.reply(session, ToSession::Packed { msgid, result });
            }
            (Ok(()), None) => info!(self.log, "pack finished"; "ok" => true),
            (Err(e), None) => {
                warn!(self.log, "pack finished"; "ok" => false, "error" => %e, "client_waited" => false)
            }
        }
        if let Some(pack_time) = pack_time {
            for slot in self.members.iter_mut().filter(|m| !m.optimal()) {
                slot.packed_while_degraded =
                    Some(slot.packed_while_degraded.map_or(pack_time, |t| t.max(pack_time)));
            }
            if self.members.iter().any(|m| !m.optimal()) {
                // A restart must still know that they missed it.
                self.save_state();
            }
        }
        self.lock.release_exclusive();
        self.start_recoveries_after_pack(ctx);
        self.run_next(ctx);
    }
}
