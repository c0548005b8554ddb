//! A reply larger than `max_frame_size`: the reader task read past it
//! (`zeo::oversized`) and kept its first bytes, which name the call it
//! answers.
//!
//! Such a reply is what a client asked for (`undoLog(0, 10**9)` on a large
//! storage), not a sign of a failing member: only that call fails, with
//! [`MemberError::ReplyTooLarge`], which sessions pass to the client as an
//! error and neither report nor retry on another member. Dropping the
//! connection instead, as for any other protocol error, would fail every
//! call in flight on it and degrade the member, and the session's retry on
//! the next member would then degrade that one too, until none were left.
//! Bounding the requests instead would not do: how large a reply is
//! depends on the records, descriptions and extensions in the storage,
//! which zeoraid cannot know in advance.
//!
//! A frame over the limit that answers no call in flight (a callback) is a
//! protocol error, as before: the connection is dropped.

use super::*;
use zeo::oversized::int_msgid_in_prefix;

impl MemberActor {
    pub(super) fn on_frame_too_large(&mut self, ctx: &mut Context<Self>, len: usize, prefix: &[u8]) {
        let Some(encoding) = self.conn.as_ref().map(|live| live.encoding) else {
            return;
        };
        let max = self.settings.max_frame;
        let answered = int_msgid_in_prefix(encoding, prefix).filter(|id| self.pending.contains_key(id));
        let Some((id, pending)) = answered.and_then(|id| Some((id, self.pending.remove(&id)?))) else {
            let reason = format!(
                "protocol error: a frame of {len} bytes, more than max_frame_size ({max} bytes), \
                 that answers no call in flight"
            );
            return self.fail(ctx, reason);
        };
        // A blob's stream ends with its call, whole or not.
        let _ = self.end_blob_stream(&pending, id);
        warn!(self.log, "reply larger than max_frame_size dropped; the call gets an error";
            "method" => pending.method.as_ref(), "bytes" => len, "max_frame_size" => max);
        let error = MemberError::ReplyTooLarge {
            member: self.name.to_string(),
            method: pending.method.to_string(),
            len,
            max,
        };
        self.settle(pending, Err(error));
    }
}
