//! Whether a member kept a transaction that was aborted after its vote.
//!
//! Every member transaction zeoraid begins is voted in the same mailbox
//! hop (`CallAfter`), so every `tpc_abort` it sends follows a vote. A
//! storage may keep such a transaction anyway: RelStorage 4.3 on SQLite
//! keeps the (empty) row of a transaction begun with a given tid once its
//! vote started (`tests/python/test_relstorage_members.py`). That member
//! then has a transaction the others lack, and would serve on as if it
//! did not. So after each such abort the member is asked for the aborted
//! transaction itself: an iterator over exactly its tid, started behind
//! the `tpc_abort` on the member's connection (a ZEO server answers one
//! connection's calls in order). `lastTransaction` would not do: a
//! RelStorage server answers it from its own view, which an aborted
//! transaction does not move.
//!
//! The check only runs after an abort, never on the commit path, and only
//! on members that are optimal when the abort is sent (a degraded member
//! serves nothing and its recovery verifies its history first).

use super::*;
use crate::member::{Call, CallOn, ConnectionId, CurrentConnection, MemberError, OnewayOn};
use slog::debug;
use zeo::methods::{IteratorGc, IteratorNext, IteratorStart, Request};
use zeo::reply::Reply;

/// What a member's history says about an aborted transaction.
enum Found {
    /// The transaction is in its history: it kept it.
    Kept,
    /// It left nothing behind.
    Nothing,
    /// The member cannot iterate (an error answer): it is taken at its word.
    CannotTell(ZeoError),
}

/// Why a member could not be checked: a failed call.
#[derive(Debug, thiserror::Error)]
enum CheckFailed {
    #[error("it was not connected")]
    NotConnected,
    #[error("{0}")]
    Member(#[from] MemberError),
    #[error("member actor unreachable: {0}")]
    Mailbox(#[from] MailboxError),
    #[error("unexpected answer: {0:?}")]
    Unexpected(Box<Reply>),
}

impl Controller {
    /// Sends `abort` (the `tpc_abort` of a transaction voted as `tid`) to
    /// member `id`, then checks, for a member that is optimal, that the
    /// abort left no transaction `tid` behind.
    pub(super) fn abort_and_check(&self, ctx: &mut Context<Self>, id: MemberId, abort: &Request, tid: Tid) {
        let Some(member) = self.member(id) else { return };
        // Queued behind the vote on the member's connection, ahead of the
        // next transaction's tpc_begin.
        member.do_send(Call(abort.clone()));
        if !self.index_of(id).is_some_and(|i| self.members[i].optimal()) {
            return;
        }
        // Asked now, so that the member handles it after the abort.
        let connection = member.send(CurrentConnection);
        let found = async move {
            let connection = connection.await?.ok_or(CheckFailed::NotConnected)?;
            find_transaction(&member, connection, tid).await
        };
        ctx.spawn(
            found
                .into_actor(self)
                .map(move |found, act, _| act.judge_abort(id, tid, found)),
        );
    }

    /// The member's answer: kept → diverged; not answered → failed.
    fn judge_abort(&mut self, id: MemberId, tid: Tid, found: Result<Found, CheckFailed>) {
        let Some(index) = self.index_of(id) else { return };
        if self.last_tid == tid || self.lock.finishing() == Some(tid) {
            // A client that asked for this tid committed it since (a
            // restore retried after its vote was refused): what the member
            // holds is that commit.
            return;
        }
        let name = self.members[index].name.clone();
        match found {
            Ok(Found::Nothing) => {
                debug!(self.log, "aborted transaction left nothing on the member"; "member" => &*name,
                    "tid" => %tid);
            }
            Ok(Found::Kept) => {
                let reason = format!(
                    "kept transaction {tid} that was aborted after its vote: its history has a \
                     transaction the other members lack"
                );
                self.diverged(index, reason);
            }
            Ok(Found::CannotTell(error)) => {
                warn!(self.log, "a member cannot tell whether it kept an aborted transaction: taken at its word";
                    "member" => &*name, "tid" => %tid, "error" => %error);
            }
            Err(failed) => {
                let reason = format!("checking that tpc_abort of {tid} left nothing failed: {failed}");
                // A member still optimal gets `tid` as its first missed
                // transaction here; one degraded meanwhile (its connection
                // broke) gets it below, without a second write of the state.
                self.degrade(index, DegradeKind::Failed, reason, Some(tid));
                self.heal_only_through_recovery(index, tid);
            }
        }
    }

    /// Member `index` could not be checked after the abort of `tid` (its
    /// connection failed meanwhile, and its server aborted the transaction
    /// itself): it may hold `tid`. A member degraded with nothing missed
    /// is made optimal again by its connection alone
    /// (`holds_everything`), which would serve that transaction unseen; so
    /// `tid` is marked as the first it missed, whatever it was degraded
    /// for. It then comes back only through a recovery, whose verification
    /// reads its history to the end and refuses it as diverged if it kept
    /// `tid`; if it did not, the copy starts at `tid`, which is right too:
    /// it held every transaction before it while it was optimal.
    fn heal_only_through_recovery(&mut self, index: usize, tid: Tid) {
        let Some(degraded) = self.members[index].degraded.as_mut() else {
            return;
        };
        if degraded.first_missed.is_none() {
            degraded.first_missed = Some(tid);
            self.save_state();
        }
    }

    /// Member `index` holds a transaction the array does not: diverged,
    /// whether it was optimal or degraded meanwhile for a lesser reason.
    fn diverged(&mut self, index: usize, reason: String) {
        if self.members[index].optimal() {
            self.degrade(index, DegradeKind::Diverged, reason, None);
        } else {
            self.now_diverged(index, reason);
        }
    }
}

/// Looks for transaction `tid` in the member's history on `connection`.
async fn find_transaction(
    member: &Addr<MemberActor>,
    connection: ConnectionId,
    tid: Tid,
) -> Result<Found, CheckFailed> {
    let call = |request| member.send(CallOn { connection, request });
    let start = Request::IteratorStart(IteratorStart {
        start: Some(tid),
        stop: Some(tid),
    });
    let iid = match call(start).await? {
        Ok(Reply::IteratorStart(iid)) => iid,
        Ok(other) => return Err(CheckFailed::Unexpected(Box::new(other))),
        Err(e) => return answer_or_failure(e),
    };
    match call(Request::IteratorNext(IteratorNext { iid })).await? {
        Ok(Reply::IteratorNext(None)) => Ok(Found::Nothing),
        Ok(Reply::IteratorNext(Some(txn))) => {
            // The server keeps an iterator until it is exhausted or freed.
            let gc = Request::IteratorGc(IteratorGc { iids: vec![iid] });
            member.do_send(OnewayOn {
                connection,
                request: gc,
            });
            Ok(if txn.tid == tid {
                Found::Kept
            } else {
                Found::Nothing
            })
        }
        Ok(other) => Err(CheckFailed::Unexpected(Box::new(other))),
        Err(e) => answer_or_failure(e),
    }
}

/// An error answer is the member's (it cannot iterate); anything else is
/// a failed call. A call not sent because the member reconnected meanwhile
/// is a failure too: the check cannot be made on the new connection's
/// iterators, and the member lost its connection anyway.
fn answer_or_failure(error: MemberError) -> Result<Found, CheckFailed> {
    match error.as_answer() {
        Some(answer) => Ok(Found::CannotTell(answer)),
        None => Err(CheckFailed::Member(error)),
    }
}
