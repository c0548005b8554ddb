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
use tokio_util::codec::{Decoder, FramedRead};
use zeo::framing::FrameCodec;
use zeo::oversized::{Frame, SkippingFrameCodec};
use zeo::CodecError;

pub(crate) type FrameReader = FramedRead<Box<dyn AsyncRead + Unpin>, FrameCodec>;
/// A member connection's frames: one over the limit is read past and
/// answers its call with an error, the connection stays (`zeo::oversized`).
pub(crate) type MemberFrameReader = FramedRead<Box<dyn AsyncRead + Unpin>, SkippingFrameCodec>;

/// A decoded frame's size on the wire, for the byte counters.
pub(crate) trait WireLen {
    fn wire_len(&self) -> u64;
}

impl WireLen for Bytes {
    fn wire_len(&self) -> u64 {
        self.len() as u64 + metrics::FRAME_HEADER
    }
}

impl WireLen for Frame {
    fn wire_len(&self) -> u64 {
        Frame::wire_len(self) as u64
    }
}
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
pub(crate) fn spawn_reader<D>(
    mut reader: FramedRead<Box<dyn AsyncRead + Unpin>, D>,
    peer: Peer,
    deliver: impl Fn(Result<D::Item, Lost>) + 'static,
) -> JoinHandle<()>
where
    D: Decoder<Error = CodecError> + 'static,
    D::Item: WireLen,
{
    let bytes_in = metrics::bytes_in(peer);
    tokio::task::spawn_local(async move {
        loop {
            match reader.next().await {
                Some(Ok(frame)) => {
                    bytes_in.inc_by(frame.wire_len());
                    deliver(Ok(frame))
                }
                Some(Err(CodecError::Io(e))) => return deliver(Err(Lost::Io(e))),
                Some(Err(e)) => return deliver(Err(Lost::Protocol(e))),
                None => return deliver(Err(Lost::Closed)),
            }
        }
    })
}

/// Writes queued frames in order; frames that are ready together go out in
/// one `write_all`, so pipelined stores cost one syscall, not one each.
pub(crate) fn spawn_writer(
    mut writer: ByteWriter,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    peer: Peer,
    on_error: impl FnOnce(Lost) + 'static,
) -> JoinHandle<()> {
    let bytes_out = metrics::bytes_out(peer);
    tokio::task::spawn_local(async move {
        let mut batch = Vec::new();
        while let Some(frame) = queue.recv().await {
            batch.clear();
            batch.extend_from_slice(&frame);
            while batch.len() < 256 * 1024 {
                match queue.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
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
