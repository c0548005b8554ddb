//! A client that stops reading: what zeoraid queues for it must not grow
//! without bound (replies to its pipelined loads, blob chunks, callbacks).
//!
//! Every [`STALL_CHECK`], the session looks at its writer's backlog: a
//! client whose backlog was over `[limits] client_backlog`, or that had a
//! blob waiting to go out from its spool, at two checks in a row and that
//! read nothing in between is disconnected, with a log line. A slow client
//! that keeps reading is not. So a client that stopped reading holds at
//! most the limit plus what was queued for it during two checks (a blob
//! costs it one write batch of memory; the rest waits on disk).
//!
//! Once the session has ended, its writer may still be sending what was
//! queued last (an error reply, the `ruok` answer); a client that does not
//! read those gets [`CLOSE_GRACE`], then its connection is dropped.

use super::ClientSession;
use actix::prelude::*;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often a session looks at its client's backlog.
pub(super) const STALL_CHECK: Duration = Duration::from_secs(5);

/// How long an ended session's writer may take to send what is left.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What the last check saw.
#[derive(Debug, Default)]
pub(super) struct StallWatch {
    /// Bytes written to the client by then, if the backlog was over the
    /// limit then.
    over_at: Option<u64>,
}

/// Checks the session's backlog every [`STALL_CHECK`] while it lives.
pub(super) fn watch(ctx: &mut Context<ClientSession>) {
    ctx.run_interval(STALL_CHECK, |act, ctx| act.check_backlog(ctx));
}

impl ClientSession {
    fn check_backlog(&mut self, ctx: &mut Context<Self>) {
        let queued = self.backlog.bytes();
        let written = self.backlog.written();
        let blobs = self.backlog.lazy_waiting();
        if queued <= self.settings.client_backlog && blobs == 0 {
            self.stall.over_at = None;
            return;
        }
        if self.stall.over_at.replace(written) != Some(written) {
            return;
        }
        // Its writer is stuck on a client that reads nothing: the
        // connection is dropped now, not drained.
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
        let reason = format!(
            "the client stopped reading: {queued} bytes queued for it ([limits] client_backlog: {} \
             bytes) and {blobs} blob(s) waiting to be sent, none read in {STALL_CHECK:?}",
            self.settings.client_backlog
        );
        self.close(ctx, &reason);
    }
}

/// Lets an ended session's writer finish sending, for at most `grace`.
pub(super) fn end_writer_within(writer: JoinHandle<()>, grace: Duration) {
    if writer.is_finished() {
        return;
    }
    tokio::task::spawn_local(async move {
        tokio::time::sleep(grace).await;
        writer.abort();
    });
}
