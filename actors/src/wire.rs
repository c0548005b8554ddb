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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, FramedRead};
use zeo::encoding::Encoding;
use zeo::framing::FrameCodec;
use zeo::message::{Message, MsgId};
use zeo::methods::Request;
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

/// Forwards every frame (or the reason the stream ended) to `deliver`, in
/// order, reading the next frame only once `deliver`'s future is done: a
/// deliver that waits for its actor to take the frame keeps a fast peer
/// from piling frames up in the actor's mailbox.
pub(crate) fn spawn_reader<D, Delivered>(
    mut reader: FramedRead<Box<dyn AsyncRead + Unpin>, D>,
    peer: Peer,
    deliver: impl Fn(Result<D::Item, Lost>) -> Delivered + 'static,
) -> JoinHandle<()>
where
    D: Decoder<Error = CodecError> + 'static,
    D::Item: WireLen,
    Delivered: std::future::Future<Output = ()>,
{
    let bytes_in = metrics::bytes_in(peer);
    tokio::task::spawn_local(async move {
        loop {
            match reader.next().await {
                Some(Ok(frame)) => {
                    bytes_in.inc_by(frame.wire_len());
                    deliver(Ok(frame)).await
                }
                Some(Err(CodecError::Io(e))) => return deliver(Err(Lost::Io(e))).await,
                Some(Err(e)) => return deliver(Err(Lost::Protocol(e))).await,
                None => return deliver(Err(Lost::Closed)).await,
            }
        }
    })
}

/// What a connection's writer has not written yet, and how far it got: the
/// sender adds each frame it queues ([`Backlog::queued`]), the writer takes
/// off what the socket accepted. A peer that stops reading shows as a
/// backlog that grows while `written` stands still.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    queued: AtomicUsize,
    written: AtomicU64,
    /// Lazy sequences queued and not yet sent whole (their size is not
    /// known up front: a peer that stops reading shows as one waiting
    /// while `written` stands still).
    lazy: AtomicUsize,
}

impl Backlog {
    /// A frame of `len` bytes was queued.
    pub fn queued(&self, len: usize) {
        self.queued.fetch_add(len, Ordering::Relaxed);
    }

    /// Bytes queued and not written yet.
    pub fn bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Bytes written since the connection opened.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// A lazy sequence was queued.
    pub fn lazy_queued(&self) {
        self.lazy.fetch_add(1, Ordering::Relaxed);
    }

    /// Lazy sequences queued and not sent whole yet.
    pub fn lazy_waiting(&self) -> usize {
        self.lazy.load(Ordering::Relaxed)
    }

    /// A lazy sequence was sent whole (saturating: a member connection's
    /// writer draws on sequences nobody counted).
    fn lazy_done(&self) {
        let _ = self
            .lazy
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    fn wrote(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
        self.written.fetch_add(len as u64, Ordering::Relaxed);
    }
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

/// The frames of `messages`, each encoded only when the writer gets to it;
/// a message that could not be read (spooled data: `reading` says what)
/// ends the connection's writer.
pub(crate) fn lazy_frames(
    encoding: Encoding,
    reading: &'static str,
    messages: impl Iterator<Item = std::io::Result<Message>> + Send + 'static,
) -> LazyFrames {
    lazy_encoded(reading, messages, move |message| {
        encoding.encode_frame(&message.into_value())
    })
}

/// The frames of a transaction's asynchronous calls to a member, each
/// encoded only when the writer gets to it: stores written directly
/// ([`zeo::fast_path`]), the rest through the generic encoder.
pub(crate) fn lazy_async_calls(
    encoding: Encoding,
    reading: &'static str,
    requests: impl Iterator<Item = std::io::Result<Request>> + Send + 'static,
) -> LazyFrames {
    lazy_encoded(reading, requests, move |request| {
        if let Request::Storea(store) = &request {
            if let Some(frame) = zeo::fast_path::write_storea_call(encoding, store) {
                return Ok(frame);
            }
        }
        encoding.encode_frame(&request.to_message(MsgId::ASYNC).into_value())
    })
}

/// `items` made into frames by `encode` as the writer gets to them; an
/// item that could not be read (`reading` says what) or encoded ends the
/// connection's writer.
fn lazy_encoded<T>(
    reading: &'static str,
    items: impl Iterator<Item = std::io::Result<T>> + Send + 'static,
    encode: impl Fn(T) -> Result<Bytes, CodecError> + Send + 'static,
) -> LazyFrames {
    Box::new(items.map(move |item| {
        let item = item.map_err(|e| Lost::Io(format!("{reading}: {e}")))?;
        encode(item).map_err(Lost::Protocol)
    }))
}

impl From<Bytes> for Outgoing {
    fn from(frame: Bytes) -> Outgoing {
        Outgoing::Frame(frame)
    }
}

/// Up to this many bytes go out in one write.
const BATCH: usize = 256 * 1024;

/// Writes queued frames in order; frames that are ready together go out in
/// one batch, so pipelined stores cost one syscall, not one each.
pub(crate) fn spawn_writer<T: Into<Outgoing> + 'static>(
    writer: ByteWriter,
    queue: mpsc::UnboundedReceiver<T>,
    peer: Peer,
    on_error: impl FnOnce(Lost) + 'static,
) -> JoinHandle<()> {
    spawn_counted_writer(writer, queue, peer, Arc::default(), on_error)
}

/// [`spawn_writer`] that keeps `backlog` up to date as the socket accepts
/// each part of a batch (a large frame counts as progress while it goes
/// out, not only once it is whole). A lazy sequence is drawn on one batch
/// at a time (its frames count as queued when they are made), and what
/// was queued after it waits until it is done.
pub(crate) fn spawn_counted_writer<T: Into<Outgoing> + 'static>(
    mut writer: ByteWriter,
    mut queue: mpsc::UnboundedReceiver<T>,
    peer: Peer,
    backlog: Arc<Backlog>,
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
                        Some(Ok(frame)) => {
                            backlog.queued(frame.len());
                            batch.extend_from_slice(&frame);
                        }
                        Some(Err(lost)) => return on_error(lost),
                        None => {
                            lazy = None;
                            backlog.lazy_done();
                        }
                    }
                    continue;
                }
                match queue.try_recv() {
                    Ok(more) => lazy = add(&mut batch, more.into()),
                    Err(_) => break,
                }
            }
            let mut sent = 0;
            while sent < batch.len() {
                match writer.write(&batch[sent..]).await {
                    Ok(0) => return on_error(Lost::Io("the connection accepts no more bytes".into())),
                    Ok(n) => {
                        sent += n;
                        backlog.wrote(n);
                    }
                    Err(e) => return on_error(Lost::Io(e.to_string())),
                }
            }
            bytes_out.inc_by(batch.len() as u64);
            if batch.capacity() > 2 * BATCH {
                // One large frame went out: its room is not kept for the
                // life of the connection.
                batch = Vec::new();
            }
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
