//! Where the chunks of each `sendBlob` in flight go.
//!
//! A member connection is shared by every client session and by recovery,
//! so several `sendBlob` calls for the same blob revision may be in flight
//! on it at once, and the chunks (`receiveBlobStart/Chunk/Stop`, keyed
//! only by oid and serial) do not say which call they answer. A ZEO server
//! handles the calls of one connection one at a time, in order: its
//! `sendBlob` queues the whole blob (start, chunks, stop) as one
//! contiguous run of messages before it queues the call's reply, and its
//! writer keeps that order (`ZEO/StorageServer.py` `sendBlob`,
//! `ZEO/asyncio/smp.py` `write_message_iter`). So the streams of one
//! revision arrive one after the other, in the order the calls were
//! written: each stream goes to the oldest call of its revision that has
//! not had its stream yet, and a call's reply ends its stream.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use tokio::sync::mpsc;
use zeo::types::{Oid, Tid};

/// One blob revision: `(oid, serial)`.
pub(super) type BlobKey = (Oid, Tid);

/// The `sendBlob` calls in flight, per blob revision, oldest first.
#[derive(Default)]
pub(super) struct BlobStreams {
    by_key: HashMap<BlobKey, VecDeque<Stream>>,
}

struct Stream {
    msgid: i64,
    sink: mpsc::UnboundedSender<Bytes>,
    started: bool,
    stopped: bool,
    bytes: u64,
}

/// How far a call's stream got when its reply arrived.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StreamEnd {
    /// `receiveBlobStart`, the chunks, `receiveBlobStop`: the whole blob.
    Complete,
    /// The reply came before the stream was whole: what is missing.
    Incomplete(&'static str),
}

impl BlobStreams {
    /// A `sendBlob` for `key` was written as `msgid`: its stream comes
    /// after those of the calls for `key` written before it.
    pub(super) fn open(&mut self, key: BlobKey, msgid: i64, sink: mpsc::UnboundedSender<Bytes>) {
        self.by_key.entry(key).or_default().push_back(Stream {
            msgid,
            sink,
            started: false,
            stopped: false,
            bytes: 0,
        });
    }

    /// `receiveBlobStart`: the next call of `key` without a stream gets it.
    /// False if no call waits for one.
    pub(super) fn start(&mut self, key: &BlobKey) -> bool {
        let next = self.streams(key).find(|s| !s.started);
        next.map(|s| s.started = true).is_some()
    }

    /// A chunk goes to the stream being received for `key`. False if there
    /// is none.
    pub(super) fn chunk(&mut self, key: &BlobKey, chunk: &Bytes) -> bool {
        let Some(current) = self.streams(key).find(|s| s.started && !s.stopped) else {
            return false;
        };
        current.bytes += chunk.len() as u64;
        // The caller may have given up (its receiver dropped): the stream
        // still belongs to its call until the reply.
        let _ = current.sink.send(chunk.clone());
        true
    }

    /// `receiveBlobStop`: the stream being received for `key` is whole.
    /// False if there is none.
    pub(super) fn stop(&mut self, key: &BlobKey) -> bool {
        let current = self.streams(key).find(|s| s.started && !s.stopped);
        current.map(|s| s.stopped = true).is_some()
    }

    /// The reply to `msgid` arrived: its stream ends (its sink is dropped,
    /// which tells the receiver there is no more), with how far it got and
    /// how many bytes it carried.
    pub(super) fn close(&mut self, key: &BlobKey, msgid: i64) -> Option<(StreamEnd, u64)> {
        let streams = self.by_key.get_mut(key)?;
        let at = streams.iter().position(|s| s.msgid == msgid)?;
        let stream = streams.remove(at)?;
        if streams.is_empty() {
            self.by_key.remove(key);
        }
        let end = match (stream.started, stream.stopped) {
            (true, true) => StreamEnd::Complete,
            (false, _) => StreamEnd::Incomplete("no receiveBlobStart"),
            (true, false) => StreamEnd::Incomplete("no receiveBlobStop"),
        };
        Some((end, stream.bytes))
    }

    /// The connection is gone: every stream ends (the calls fail).
    pub(super) fn clear(&mut self) {
        self.by_key.clear();
    }

    fn streams(&mut self, key: &BlobKey) -> impl Iterator<Item = &mut Stream> {
        self.by_key.get_mut(key).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_OID: u64 = 1;

    fn received(rx: &mut mpsc::UnboundedReceiver<Bytes>) -> Vec<u8> {
        let mut all = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            all.extend_from_slice(&chunk);
        }
        all
    }

    fn key(oid: u64) -> BlobKey {
        (Oid::from_u64(oid), Tid::from_u64(2))
    }

    #[test]
    fn each_call_of_a_revision_gets_exactly_its_own_stream_in_call_order() {
        let mut streams = BlobStreams::default();
        let (first, mut first_rx) = mpsc::unbounded_channel();
        let (second, mut second_rx) = mpsc::unbounded_channel();
        streams.open(key(KEY_OID), 10, first);
        streams.open(key(KEY_OID), 11, second);
        for _ in 0..2 {
            assert!(streams.start(&key(KEY_OID)));
            assert!(streams.chunk(&key(KEY_OID), &Bytes::from_static(b"abc")));
            assert!(streams.chunk(&key(KEY_OID), &Bytes::from_static(b"de")));
            assert!(streams.stop(&key(KEY_OID)));
        }
        assert_eq!(streams.close(&key(KEY_OID), 10), Some((StreamEnd::Complete, 5)));
        assert_eq!(streams.close(&key(KEY_OID), 11), Some((StreamEnd::Complete, 5)));
        assert_eq!(received(&mut first_rx), b"abcde");
        assert_eq!(received(&mut second_rx), b"abcde");
        // Both sinks are dropped: the receivers see the end.
        assert!(first_rx.try_recv().is_err() && first_rx.is_closed());
        assert!(streams.by_key.is_empty());
    }

    #[test]
    fn a_reply_between_two_streams_ends_the_first_and_the_next_call_waits() {
        let mut streams = BlobStreams::default();
        let (first, mut first_rx) = mpsc::unbounded_channel();
        let (second, mut second_rx) = mpsc::unbounded_channel();
        streams.open(key(KEY_OID), 1, first);
        streams.start(&key(KEY_OID));
        streams.chunk(&key(KEY_OID), &Bytes::from_static(b"one"));
        streams.stop(&key(KEY_OID));
        assert_eq!(streams.close(&key(KEY_OID), 1), Some((StreamEnd::Complete, 3)));
        streams.open(key(KEY_OID), 2, second);
        streams.start(&key(KEY_OID));
        streams.chunk(&key(KEY_OID), &Bytes::from_static(b"two"));
        streams.stop(&key(KEY_OID));
        assert_eq!(streams.close(&key(KEY_OID), 2), Some((StreamEnd::Complete, 3)));
        assert_eq!(received(&mut first_rx), b"one");
        assert_eq!(received(&mut second_rx), b"two");
    }

    #[test]
    fn an_error_reply_ends_a_call_that_had_no_stream_without_taking_the_next_one() {
        let mut streams = BlobStreams::default();
        let (failing, _failing_rx) = mpsc::unbounded_channel();
        let (other, mut other_rx) = mpsc::unbounded_channel();
        let other_key = key(9);
        streams.open(key(KEY_OID), 1, failing);
        streams.open(other_key, 2, other);
        // Chunks of another revision never reach this revision's call.
        streams.start(&other_key);
        streams.chunk(&other_key, &Bytes::from_static(b"x"));
        assert!(!streams.chunk(&key(KEY_OID), &Bytes::from_static(b"stray")));
        assert_eq!(
            streams.close(&key(KEY_OID), 1),
            Some((StreamEnd::Incomplete("no receiveBlobStart"), 0))
        );
        streams.stop(&other_key);
        assert_eq!(streams.close(&other_key, 2), Some((StreamEnd::Complete, 1)));
        assert_eq!(received(&mut other_rx), b"x");
    }

    #[test]
    fn a_stream_cut_short_is_incomplete() {
        let mut streams = BlobStreams::default();
        let (sink, _rx) = mpsc::unbounded_channel();
        streams.open(key(KEY_OID), 1, sink);
        streams.start(&key(KEY_OID));
        streams.chunk(&key(KEY_OID), &Bytes::from_static(b"part"));
        assert_eq!(
            streams.close(&key(KEY_OID), 1),
            Some((StreamEnd::Incomplete("no receiveBlobStop"), 4))
        );
        assert_eq!(streams.close(&key(KEY_OID), 1), None);
    }
}
