//! Moving frames on one ZEO connection, for both sides (member connections
//! and client sessions): a reader task that forwards every frame, in order,
//! to its actor's mailbox, and a writer task that drains an ordered queue.
//!
//! An actor never awaits socket I/O in a handler: it queues frames (so the
//! wire order is the order in which it handled messages) and hears about
//! incoming frames and errors as messages.

use crate::metrics::{self, Peer};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use zeo::framing::FrameCodec;
use zeo::CodecError;

pub(crate) type FrameReader = FramedRead<Box<dyn AsyncRead + Unpin>, FrameCodec>;
pub(crate) type ByteWriter = Box<dyn AsyncWrite + Unpin>;

/// Why the reader or writer task ended.
#[derive(Debug, Clone)]
pub enum Lost {
    Closed,
    Io(String),
    Protocol(CodecError),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Closed => f.write_str("connection closed by the member"),
            Lost::Io(e) => write!(f, "I/O error: {e}"),
            Lost::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// Forwards every frame (or the reason the stream ended) to `deliver`, in order.
pub(crate) fn spawn_reader(
    mut reader: FrameReader,
    peer: Peer,
    deliver: impl Fn(Result<Bytes, Lost>) + 'static,
) -> JoinHandle<()> {
    let bytes_in = metrics::bytes_in(peer);
    tokio::task::spawn_local(async move {
        loop {
            match reader.next().await {
                Some(Ok(frame)) => {
                    bytes_in.inc_by(frame.len() as u64 + metrics::FRAME_HEADER);
                    deliver(Ok(frame))
                }
                Some(Err(CodecError::Io(e))) => return deliver(Err(Lost::Io(e))),
                Some(Err(e)) => return deliver(Err(Lost::Protocol(e))),
                None => return deliver(Err(Lost::Closed)),
            }
        }
    })
}

/// Frames made one at a time, as the socket takes them.
pub(crate) type LazyFrames = Box<dyn Iterator<Item = Result<Bytes, Lost>> + Send>;

/// What a writer task writes: a frame, or a sequence of frames made only
/// when the ones before have gone out (a transaction replayed with its
/// blobs read from the spool), so a large upload is never whole in memory.
pub(crate) enum Outgoing {
    Frame(Bytes),
    Frames(LazyFrames),
}

impl From<Bytes> for Outgoing {
    fn from(frame: Bytes) -> Outgoing {
        Outgoing::Frame(frame)
    }
}

/// Up to this many bytes go out in one write.
const BATCH: usize = 256 * 1024;

/// Writes queued frames in order; frames that are ready together go out in
/// one `write_all`, so pipelined stores cost one syscall, not one each. A
/// lazy sequence is drawn on one batch at a time, and what was queued after
/// it waits until it is done.
pub(crate) fn spawn_writer<T: Into<Outgoing> + 'static>(
    mut writer: ByteWriter,
    mut queue: mpsc::UnboundedReceiver<T>,
    peer: Peer,
    on_error: impl FnOnce(Lost) + 'static,
) -> JoinHandle<()> {
    let bytes_out = metrics::bytes_out(peer);
    tokio::task::spawn_local(async move {
        let mut batch = Vec::new();
        let mut lazy: Option<LazyFrames> = None;
        loop {
            batch.clear();
            if lazy.is_none() {
                match queue.recv().await {
                    Some(item) => lazy = add(&mut batch, item.into()),
                    None => break,
                }
            }
            while batch.len() < BATCH {
                if let Some(frames) = lazy.as_mut() {
                    match frames.next() {
                        Some(Ok(frame)) => batch.extend_from_slice(&frame),
                        Some(Err(lost)) => return on_error(lost),
                        None => lazy = None,
                    }
                    continue;
                }
                match queue.try_recv() {
                    Ok(more) => lazy = add(&mut batch, more.into()),
                    Err(_) => break,
                }
            }
            if let Err(e) = writer.write_all(&batch).await {
                return on_error(Lost::Io(e.to_string()));
            }
            bytes_out.inc_by(batch.len() as u64);
        }
        let _ = writer.shutdown().await;
    })
}

/// Appends a frame to `batch`, or hands back a lazy sequence to draw on.
fn add(batch: &mut Vec<u8>, item: Outgoing) -> Option<LazyFrames> {
    match item {
        Outgoing::Frame(frame) => {
            batch.extend_from_slice(&frame);
            None
        }
        Outgoing::Frames(frames) => Some(frames),
    }
}
