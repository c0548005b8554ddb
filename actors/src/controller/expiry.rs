//! A voted transaction whose client does not finish it in time.
//!
//! Between its vote and its `tpc_finish` a transaction holds the commit
//! lock, and every member holds its own storage lock for it: a client that
//! stops there (a GC pause, a stopped process, a half-open socket) would
//! block every other writer for ever. So once the vote is answered, a timer
//! of `[timeouts] transaction` runs; if the client has not sent
//! `tpc_finish` or `tpc_abort` by then, the transaction is aborted on every
//! member, the lock goes on to the next voter, and the client's later
//! `tpc_finish` is refused with the reason. The members stay optimal: a slow
//! client is not a member failure.
//!
//! ZEO servers have a `transaction-timeout` of their own, which closes the
//! whole connection; on a member that is zeoraid's shared connection, so
//! the members' timeout must be larger than this one (this one fires first
//! and the member never sees the stalled transaction).

use super::lock::Commit;
use super::*;
use crate::metrics::{self, CommitOutcome};
use zeo::methods::TxnId;

impl Controller {
    /// The transaction holding the lock was voted and its client told:
    /// from now on it has `[timeouts] transaction` to finish.
    pub(super) fn arm_expiry(&mut self, ctx: &mut Context<Self>) {
        let timeout = self.transaction_timeout;
        let Some(commit) = self.lock.commit_mut() else {
            return;
        };
        let member_txn = commit.member_txn.clone();
        let handle = ctx.run_later(timeout, move |act, ctx| act.expire(ctx, &member_txn));
        if let Some(earlier) = commit.expiry.replace(handle) {
            ctx.cancel_future(earlier);
        }
    }

    /// The transaction leaves the lock (finishing or aborted): its timer
    /// is of no use any more.
    pub(super) fn disarm_expiry(ctx: &mut Context<Self>, commit: &mut Commit) {
        if let Some(handle) = commit.expiry.take() {
            ctx.cancel_future(handle);
        }
    }

    fn expire(&mut self, ctx: &mut Context<Self>, member_txn: &TxnId) {
        let expiring = |c: &&Commit| c.member_txn == *member_txn && c.voted;
        let Some(commit) = self.lock.commit().filter(expiring) else {
            return;
        };
        // Aborted on the members while its participants are known.
        let participants = commit.participants.clone();
        self.abort_on(ctx, &participants, &[]);
        let commit = self
            .lock
            .expire_commit(member_txn)
            .expect("voted and holding the lock");
        warn!(self.log, "transaction aborted: its client voted and did not finish it in time";
            "session" => commit.session.0, "tid" => %commit.tid,
            "held_ms" => commit.since.elapsed().as_millis() as u64,
            "timeout_ms" => self.transaction_timeout.as_millis() as u64,
            "waiting_votes" => self.lock.votes_waiting());
        self.stats.aborts += 1;
        metrics::commit(CommitOutcome::Aborted);
        self.run_next(ctx);
    }

    /// The error a client gets for `tpc_finish` of a transaction that
    /// expired.
    pub(super) fn expired_error(&self) -> ZeoError {
        let problem = format!(
            "transaction aborted: the client took longer than [timeouts] transaction ({:?}) between \
             its vote and tpc_finish",
            self.transaction_timeout
        );
        ZeoError::StorageTransactionError(vec![Value::Str(problem)])
    }
}
