//! The transaction path, as the controller runs it. Each step is in its
//! own file; this one holds what they share and runs the lock's decisions.
//!
//! 1. [`vote`](super::vote): a client's vote waits in the [`CommitLock`]
//!    until it may start; then the tid is chosen (strictly after the
//!    array's last tid and the finishing commit's), and `tpc_begin(tid)`,
//!    the buffered operations and `vote` go to every optimal member in one
//!    mailbox hop each, in parallel ([`fan_out`](Controller::fan_out)).
//!    The answers are judged by majority: a member that failed or was
//!    outvoted is degraded, equal application errors abort the transaction
//!    everywhere.
//! 2. [`finish`](super::finish): `tpc_finish` on every member that voted;
//!    the lock goes to the next client vote as soon as it is sent. Each
//!    returned tid is checked against the chosen one; then invalidations
//!    go to every other session, then the committer's reply; then the vote
//!    held back behind this commit, if any, is judged.
//! 3. Packs ([`pack`](super::pack)) and recovery slices hold the lock the
//!    same way; they, and reloads (applied while nothing holds it), wait
//!    for a finishing commit.
//!
//! [`CommitLock`]: super::lock::CommitLock

use super::lock::Next;
use super::*;
use crate::metrics::{self, CommitOutcome};
use zeo::exceptions::ZeoError;
use zeo::message::MsgId;

impl Controller {
    /// Runs what the commit lock says may start now, until something holds
    /// it or nothing is left (then a drain is over).
    pub(super) fn run_next(&mut self, ctx: &mut Context<Self>) {
        while let Some(next) = self.lock.next() {
            match next {
                Next::Reload(reload) => self.apply_reload(ctx, reload),
                Next::RecoverySlice(member) => self.finish_recovery(ctx, member),
                Next::Pack(pack) => self.start_pack(ctx, pack),
                Next::Takeover(takeover) => self.start_takeover(ctx, takeover),
                Next::Vote(vote) => self.start_vote(ctx, *vote),
                Next::Drained => self.finish_drain(),
            }
        }
    }

    pub(super) fn reply(&self, id: SessionId, msg: ToSession) {
        if let Some(session) = self.sessions.get(&id) {
            session.do_send(msg);
        }
    }

    /// Answers a vote that never took the lock.
    pub(super) fn refuse_vote(&self, session: SessionId, msgid: MsgId, error: ZeoError) {
        metrics::commit(CommitOutcome::Failed);
        self.reply(
            session,
            ToSession::Voted {
                msgid,
                result: Err(error),
            },
        );
    }

    /// Degrades the member the slow-member policy finds far slower than
    /// its peers, unless that would leave the array below its quorum.
    pub(super) fn judge_slowness(&mut self) {
        let Some(slow) = self.slow.verdict(&self.writers()) else {
            return;
        };
        let quorum = self.cluster_mode.quorum(self.members.len());
        if self.optimal_count() <= quorum {
            warn!(self.log, "member is slow, but the array needs it"; "member" => &*self.members[slow.member].name,
                "reason" => &slow.reason, "optimal" => self.optimal_count(), "quorum" => quorum);
            // Judged again only after a fresh window.
            self.slow.forget(slow.member);
            return;
        }
        self.degrade(slow.member, DegradeKind::Slow, slow.reason, None);
    }
}
