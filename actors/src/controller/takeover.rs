//! A new cluster leader's takeover, and the checks that keep a leader's
//! commits to its term (ARCHITECTURE.md §9).
//!
//! The takeover is one transaction, `tid_B`, on every optimal member, under
//! the commit lock: it rewrites the root object (oid 0) with its current
//! bytes, so that the root's serial becomes `tid_B` there. Every later
//! commit of this leader checks that serial in its vote
//! (`checkCurrentSerialInTransaction`), so a deposed leader, which expects
//! an older serial, can no longer vote on any member that saw the takeover.
//!
//! The steps, each waiting for the one before:
//! 1. read the root from one optimal member (create it as ZODB does, if the
//!    storage has none yet);
//! 2. `tpc_begin(tid_B)`, store the root, vote, on every optimal member:
//!    each vote waits for that member's storage lock, so a transaction of
//!    the old leader still holding it ends first (finished, or aborted when
//!    the old leader's connection closes; ARCHITECTURE.md §9 says why the
//!    members' `transaction-timeout` cannot end it with ZEO 6.2);
//! 3. holding every lock, ask each member's last tid: a member without
//!    the old leader's last transaction (it reached only some) is degraded
//!    as behind, its vote aborted; if `tid_B` is not above every last tid,
//!    everything is aborted and the takeover retried with a higher one;
//! 4. write the array state under the leader's epoch: etcd refuses it if
//!    another zeoraid was elected meanwhile, and then nothing commits;
//! 5. `tpc_finish` on the members left; the fence is `tid_B`.

use super::fanout::Answered;
use super::finish::finished_tid;
use super::*;
use crate::member::{Call, CallAfter, Oneways};
use crate::metrics;
use zeo::methods::{self, LoadBefore, Request, TxnId};
use zeo::reply::Reply;
use zeo::types::Oid;

/// The root object's two pickles as `ZODB.DB` writes them into an empty
/// storage: the class `persistent.mapping.PersistentMapping` and the state
/// `{'data': {}}` (protocol 3), byte for byte what ZODB 6 writes. Used only when
/// a new array has no root yet.
const EMPTY_ROOT: &[u8] =
    b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03s.";

impl Handler<Takeover> for Controller {
    type Result = ();

    fn handle(&mut self, msg: Takeover, ctx: &mut Context<Self>) {
        self.lock.queue_takeover(msg);
        self.run_next(ctx);
    }
}

/// A takeover in progress: what every later step needs.
struct Fence {
    reply: oneshot::Sender<Result<TakenOver, String>>,
    tid: Tid,
    member_txn: TxnId,
    /// The optimal members it went to.
    participants: Vec<MemberId>,
}

impl Controller {
    /// Step 1: the root's current record, from the first optimal member.
    pub(super) fn start_takeover(&mut self, ctx: &mut Context<Self>, msg: Takeover) {
        self.lock.hold_takeover();
        let writers = self.writers();
        let Some(&first) = writers.first() else {
            return self.takeover_failed(ctx, msg.reply, "no member is optimal: nothing to fence".into());
        };
        let load = Request::LoadBefore(LoadBefore {
            oid: Oid::ZERO,
            tid: Tid::MAX_TID,
        });
        let answers = self.fan_out(&[self.members[first].id], Call(load));
        ctx.spawn(answers.into_actor(self).map(move |results, act, ctx| {
            let expect = |r| match r {
                Reply::LoadBefore(found) => Ok(found),
                other => Err(Box::new(other)),
            };
            let root = match act.sort_answers(results, "loadBefore(root)", expect, None).pop() {
                Some(Answered {
                    answer: Ok(Some(found)),
                    ..
                }) => (found.start, found.data),
                Some(Answered {
                    answer: Ok(None) | Err(ZeoError::POSKeyError(_)),
                    ..
                }) => (Tid::ZERO, bytes::Bytes::from_static(EMPTY_ROOT)),
                Some(Answered { answer: Err(e), .. }) => {
                    let why = format!("cannot read the root object: {e}");
                    return act.takeover_failed(ctx, msg.reply, why);
                }
                None => return act.takeover_failed(ctx, msg.reply, "the root's source failed".into()),
            };
            act.vote_fence(ctx, msg.reply, root);
        }));
    }

    /// Step 2: the root rewritten and voted on every optimal member.
    fn vote_fence(
        &mut self,
        ctx: &mut Context<Self>,
        reply: oneshot::Sender<Result<TakenOver, String>>,
        (serial, data): (Tid, bytes::Bytes),
    ) {
        let tid = match self.choose_tid(None) {
            Ok(tid) => tid,
            Err(e) => return self.takeover_failed(ctx, reply, e.to_string()),
        };
        let member_txn = TxnId::from_i64(self.next_member_txn);
        self.next_member_txn += 1;
        let Some(leading) = &self.leading else {
            return self.takeover_failed(ctx, reply, "this zeoraid does not lead a cluster".into());
        };
        let extension = Value::Dict(vec![
            (Value::str("zeoraid_takeover_epoch"), Value::Int(leading.epoch)),
            (Value::str("zeoraid_leader"), Value::str(&leading.name)),
        ]);
        let requests = vec![
            Request::TpcBegin(methods::TpcBegin {
                id: member_txn.clone(),
                user: Value::bytes(&b""[..]),
                description: Value::bytes(&b"zeoraid takeover"[..]),
                extension,
                tid: Some(tid),
                status: " ".into(),
            }),
            Request::Storea(methods::Storea {
                oid: Oid::ZERO,
                serial,
                data,
                id: member_txn.clone(),
            }),
        ];
        let participants = self.ids(&self.writers());
        let vote = Request::Vote(methods::Vote {
            id: member_txn.clone(),
        });
        let oneways = Oneways::Requests(requests);
        let answers = self.fan_out(&participants, CallAfter { oneways, call: vote });
        info!(self.log, "takeover voting"; "tid" => tid.to_hex(), "members" => participants.len(),
            "root_serial" => serial.to_hex());
        let fence = Fence {
            reply,
            tid,
            member_txn,
            participants,
        };
        ctx.spawn(answers.into_actor(self).map(move |results, act, ctx| {
            // Nothing committed where a vote failed: the member misses
            // nothing, and rejoins when it reconnects.
            let voted = act.sort_answers(results, "takeover vote", Ok, None);
            if let Some(moved) = voted
                .iter()
                .find_map(|a| a.answer.as_ref().err().filter(|e| e.is_conflict()))
            {
                // The old leader's last transaction changed the root after
                // it was read (it finished while this vote waited for the
                // lock): read it again, rather than take the member that
                // holds the newest history for a diverged one.
                let why =
                    format!("the root object changed while the takeover waited for a member's lock: {moved}");
                act.abort_fence(ctx, &fence, &[]);
                return act.takeover_failed(ctx, fence.reply, why);
            }
            let mut agreeing = Vec::new();
            for a in voted {
                match a.answer {
                    Ok(_) => agreeing.push(a.member),
                    Err(e) => {
                        let reason = format!("refused the takeover's rewrite of the root object: {e}");
                        act.degrade(a.index, DegradeKind::Failed, reason, None);
                    }
                }
            }
            act.compare_last_tids(ctx, fence, agreeing);
        }));
    }

    /// Step 3: with every lock held, the members' last tids.
    fn compare_last_tids(&mut self, ctx: &mut Context<Self>, fence: Fence, voted: Vec<MemberId>) {
        let answers = self.fan_out(&voted, Call(Request::LastTransaction));
        ctx.spawn(answers.into_actor(self).map(move |results, act, ctx| {
            let expect = |r| match r {
                Reply::LastTransaction(t) => Ok(t),
                other => Err(Box::new(other)),
            };
            let lasts: Vec<(usize, MemberId, Tid)> = act
                .sort_answers(results, "lastTransaction", expect, None)
                .into_iter()
                .filter_map(|a| Some((a.index, a.member, a.answer.ok()?)))
                .collect();
            let Some(newest) = lasts.iter().map(|&(_, _, t)| t).max() else {
                act.abort_fence(ctx, &fence, &[]);
                return act.takeover_failed(ctx, fence.reply, "no member voted the takeover".into());
            };
            if newest >= fence.tid {
                // A transaction of the old leader landed above the tid
                // chosen: retry above it.
                act.abort_fence(ctx, &fence, &[]);
                act.last_tid = act.last_tid.max(newest);
                info!(act.log, "takeover retried above a member's last tid"; "last_tid" => newest.to_hex());
                return act.retry_takeover(ctx, fence.reply);
            }
            let mut holding = Vec::new();
            for (index, member, last) in lasts {
                if last == newest {
                    holding.push(member);
                } else {
                    let reason =
                        format!("lacks the old leader's last transaction {newest} (its last is {last})");
                    act.behind(index, reason, last);
                }
            }
            act.last_tid = act.last_tid.max(newest);
            act.abort_fence(ctx, &fence, &holding);
            act.write_fence(ctx, fence, holding);
        }));
    }

    /// Steps 4 and 5: the state under the epoch, then `tpc_finish`.
    fn write_fence(&mut self, ctx: &mut Context<Self>, fence: Fence, holding: Vec<MemberId>) {
        self.last_tid = self.last_tid.max(fence.tid);
        self.save_state();
        if let Some(failure) = self.state_failure.clone() {
            self.abort_fence(ctx, &fence, &[]);
            return self.takeover_failed(ctx, fence.reply, failure);
        }
        let finish = Request::TpcFinish(methods::TpcFinish {
            id: fence.member_txn.clone(),
        });
        let answers = self.fan_out(&holding, Call(finish));
        ctx.spawn(answers.into_actor(self).map(move |results, act, ctx| {
            let mut fenced = Vec::new();
            for a in act.sort_answers(results, "takeover tpc_finish", finished_tid, Some(fence.tid)) {
                if act.committed(&a, fence.tid) {
                    fenced.push(act.members[a.index].name.to_string());
                }
            }
            if fenced.is_empty() {
                let why = "no member committed the takeover".to_string();
                return act.takeover_failed(ctx, fence.reply, why);
            }
            act.root_serial = Some(fence.tid);
            let degraded = act
                .members
                .iter()
                .filter(|m| !m.optimal())
                .map(|m| m.name.to_string())
                .collect();
            metrics::takeover();
            info!(act.log, "takeover finished"; "tid" => fence.tid.to_hex(), "fenced" => ?fenced,
                "degraded" => ?degraded);
            let _ = fence.reply.send(Ok(TakenOver {
                tid: fence.tid,
                fenced,
                degraded,
            }));
            act.lock.release_exclusive();
            act.run_next(ctx);
        }));
    }

    /// Aborts the fence's transaction on its participants but `keep`.
    fn abort_fence(&self, ctx: &mut Context<Self>, fence: &Fence, keep: &[MemberId]) {
        self.abort_txn_on(ctx, &fence.member_txn, fence.tid, &fence.participants, keep);
    }

    /// The takeover goes to the back of nothing: it runs again at once,
    /// with the array's last tid raised.
    fn retry_takeover(&mut self, ctx: &mut Context<Self>, reply: oneshot::Sender<Result<TakenOver, String>>) {
        self.lock.release_exclusive();
        self.lock.queue_takeover(Takeover { reply });
        self.run_next(ctx);
    }

    fn takeover_failed(
        &mut self,
        ctx: &mut Context<Self>,
        reply: oneshot::Sender<Result<TakenOver, String>>,
        why: String,
    ) {
        warn!(self.log, "takeover failed"; "reason" => &why);
        let _ = reply.send(Err(why));
        self.lock.release_exclusive();
        self.run_next(ctx);
    }

    /// Why this zeoraid must not acknowledge a write now, if it leads a
    /// cluster: its lease is not proven, or its takeover has not finished.
    pub(super) fn leadership_refusal(&self) -> Option<ZeoError> {
        let leading = self.leading.as_ref()?;
        if !leading.lease.proven() {
            return Some(ZeoError::unavailable(
                "this zeoraid can no longer prove that it leads the cluster (its etcd lease): \
                 nothing more is acknowledged here; clients reconnect to the new leader",
            ));
        }
        self.root_serial
            .is_none()
            .then(|| ZeoError::unavailable("this zeoraid was elected but its takeover has not finished"))
    }

    /// A vote every member refused with a read conflict on the root that
    /// the client did not read or write: the fence moved, so another
    /// zeoraid took over (or the root was written behind this one's back).
    /// Either way this one must not go on: it steps down.
    pub(super) fn fence_moved(&self, txn_touches_root: bool, errors: &[&ZeoError]) -> bool {
        if self.leading.is_none() || txn_touches_root || errors.is_empty() {
            return false;
        }
        errors.iter().all(|e| match e {
            ZeoError::ReadConflictError(conflict) => conflict.oid == Some(Oid::ZERO),
            _ => false,
        })
    }

    /// Tells the daemon to step down, once, with the reason.
    pub(super) fn step_down(&self, reason: String) {
        if let Some(leading) = &self.leading {
            error!(self.log, "this zeoraid must stop leading"; "reason" => &reason);
            let _ = leading.step_down.send(reason);
        }
    }
}
