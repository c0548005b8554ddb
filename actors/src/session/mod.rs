//! A client session: the server side of ZEO for one application connection.
//!
//! It owns the connection (handshake, decoding, one ordered write queue),
//! the client's open transaction (buffered until the vote, like a ZEO
//! server buffers it), blob uploads in progress, the client's iterators and
//! its in-flight loads. Reads go straight to a member (round-robin over the
//! reader list the controller pushes, failing over to the next member when
//! one fails); the commit path goes through the controller.
//!
//! Order on the wire: everything the session writes goes through one queue
//! in the order the session handled it, and the controller's answers to
//! `register`/`vote`/`tpc_finish`/`tpc_abort` arrive in the same mailbox as
//! its invalidations (see `controller::messages`). A load that was sent to a
//! member before an invalidation of its object reached this client is
//! answered with the revision's end set to that invalidation's tid, so the
//! client never caches a stale revision as current (`docs/invariants.md#load-invalidation-order`).

mod answers;
mod backlog;
mod commit;
mod dispatch;
mod iteration;
mod management;
mod reads;
mod registration;
mod snapshot;
mod stream;
mod undo_filter;
mod undo_pack;
mod voted_read;

pub use management::ZeoAdminCalls;
pub use stream::{ClientPeer, ClientStream};

use crate::controller::{
    ClusterMode, Controller, ReloadConfiguration, Serving, SessionClosed, SessionId, ToSession,
};
use crate::member::MemberActor;
use crate::metrics::{self, Peer};
use crate::transaction::{SpooledBlob, TxnBuffer};
use crate::wire::{self, Backlog, LazyFrames, Lost, Outgoing};
use actix::prelude::*;
use bytes::Bytes;
use slog::{info, warn, Logger};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use zeo::callbacks::Callback;
use zeo::encoding::Encoding;
use zeo::exceptions::ZeoError;
use zeo::framing::{encode_frame, FrameCodec};
use zeo::handshake::{server_announcement, Protocol};
use zeo::message::{Message, MsgId};
use zeo::types::{Oid, Tid};
use zeo::Value;

#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// The storage name clients must register with.
    pub storage: String,
    /// Announce `M5` (msgpack) instead of `Z5`.
    pub msgpack: bool,
    pub max_frame: usize,
    /// Where blob uploads are spooled until their transaction votes.
    pub spool_dir: std::path::PathBuf,
    /// How far in the future a tid asked for in `tpc_begin` may lie
    /// (`[limits] explicit_tid_skew`).
    pub explicit_tid_skew: std::time::Duration,
    /// Who re-reads the configuration (`raid_reload`); `None` in tests
    /// without a configuration file.
    pub reloader: Option<Recipient<ReloadConfiguration>>,
    /// A client that has not sent its protocol handshake by then is
    /// disconnected.
    pub handshake_timeout: Duration,
    /// Bytes queued for the client, beyond the frame being written, that
    /// a client which reads nothing may leave before it is disconnected
    /// (`backlog.rs`).
    pub client_backlog: usize,
    /// Record data a transaction may hold in memory before its records
    /// are spooled to `spool_dir` (`[limits] transaction_memory`).
    pub transaction_memory: usize,
    /// Blob downloads the client may have in flight
    /// (`[limits] blob_downloads_per_session`, `reads.rs`).
    pub blob_downloads: usize,
    /// Which `raid_*` calls clients may make (`zeo_admin_calls`).
    pub admin_calls: ZeoAdminCalls,
    /// The token the mutating `raid_*` calls must carry as their last
    /// argument (`[http] token`); `None`: they carry none.
    pub admin_token: Option<crate::token::Token>,
}

/// Where the client's transaction is in two-phase commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Buffering,
    Voting,
    Voted,
}

/// A load sent to a member and not yet answered.
struct InFlightLoad {
    oid: Oid,
    /// The first invalidation of `oid` written to the client meanwhile.
    invalidated_by: Option<Tid>,
}

pub struct ClientSession {
    id: SessionId,
    peer: ClientPeer,
    connected_since: std::time::SystemTime,
    settings: Arc<SessionSettings>,
    controller: Addr<Controller>,
    log: Logger,
    queue: mpsc::UnboundedSender<Outgoing>,
    /// What the writer has not written to the client yet.
    backlog: Arc<Backlog>,
    /// Whether the client stopped reading (`backlog.rs`).
    stall: backlog::StallWatch,
    /// `None` until the client's handshake frame arrived.
    encoding: Option<Encoding>,
    /// Closes the connection unless the handshake arrives in time.
    handshake_timer: Option<SpawnHandle>,
    /// Stopped when the session ends; the writer is not: it drains what is
    /// queued (a last error reply, the `ruok` answer) and ends when the
    /// queue's sender is dropped with the session, or at most
    /// `backlog::CLOSE_GRACE` later.
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
    /// This connection's place in `[limits] max_client_connections`,
    /// given back when the session ends.
    _admission: OwnedSemaphorePermit,
    registered: bool,
    registering: bool,
    read_only: bool,
    label: Option<String>,
    txn: Option<(TxnBuffer, Phase)>,
    /// The blob upload in progress (between storeBlobStart and storeBlobEnd).
    blob_spool: Option<SpooledBlob>,
    /// A permit per blob download in flight, held until the client's
    /// writer has sent the blob (`reads.rs`).
    blob_downloads: Arc<Semaphore>,
    readers: Vec<Addr<MemberActor>>,
    next_reader: usize,
    /// What the controller last said the array serves.
    serving: Serving,
    cluster_mode: ClusterMode,
    /// The newest transaction this client has been told about (at
    /// registration, by an invalidation, its own commit, or
    /// `lastTransaction`): reads never show it an older state than this,
    /// nor a newer one it has not been told about yet.
    last_seen: Tid,
    /// Client iterator id → where the iterator lives.
    iterators: HashMap<i64, iteration::MemberIterator>,
    next_iid: i64,
    loads: foldhash::HashMap<u64, InFlightLoad>,
    next_load: u64,
    /// Reads relayed to a member and not answered yet, by `Relay` tag.
    reads: foldhash::HashMap<u64, reads::PendingRead>,
    next_read: u64,
}

/// A frame from the client, or why its connection ended.
#[derive(Message)]
#[rtype(result = "()")]
struct FromClient(Result<Bytes, Lost>);

impl ClientSession {
    /// Takes over an accepted connection: announces the protocol and serves it.
    pub fn start(
        stream: ClientStream,
        peer: ClientPeer,
        settings: Arc<SessionSettings>,
        controller: Addr<Controller>,
        admission: OwnedSemaphorePermit,
        log: &Logger,
    ) -> Addr<ClientSession> {
        let id = SessionId::next();
        let log = log.new(slog::o!("session" => id.0, "peer" => peer.to_string()));
        ClientSession::create(move |ctx| {
            let reader: wire::FrameReader =
                FramedRead::new(stream.reader, FrameCodec::new(settings.max_frame));
            let (queue, queued) = mpsc::unbounded_channel();
            let me = ctx.address();
            let blob_downloads = Arc::new(Semaphore::new(settings.blob_downloads));
            let room = blob_downloads.clone();
            // The next frame is read once the session has handled this one:
            // a client cannot pile up more than one frame in zeoraid's
            // memory (a transaction's records are spooled as they come).
            // Nor while all its blob downloads are in flight: a client
            // pipelining `sendBlob`s waits for one to be done (and so
            // does whatever it sent after them), instead of holding a spool
            // file per request.
            let reader = wire::spawn_reader(reader, Peer::Client, move |item| {
                let delivered = me.send(FromClient(item));
                let room = room.clone();
                async move {
                    let _ = delivered.await;
                    if room.available_permits() == 0 {
                        let _ = room.acquire().await;
                    }
                }
            });
            let me = ctx.address();
            let backlog = Arc::<Backlog>::default();
            // See the `reader` field.
            let writer = wire::spawn_counted_writer(
                stream.writer,
                queued,
                Peer::Client,
                backlog.clone(),
                move |lost| me.do_send(FromClient(Err(lost))),
            );
            let handshake_timer = ctx.run_later(settings.handshake_timeout, |act, ctx| {
                act.close(ctx, "no protocol handshake within [timeouts] handshake")
            });
            backlog::watch(ctx);
            info!(log, "client connected");
            metrics::client_connected();
            let session = ClientSession {
                id,
                peer,
                connected_since: std::time::SystemTime::now(),
                settings,
                controller,
                log,
                queue,
                backlog,
                stall: backlog::StallWatch::default(),
                encoding: None,
                handshake_timer: Some(handshake_timer),
                writer: Some(writer),
                _admission: admission,
                reader,
                registered: false,
                registering: false,
                read_only: false,
                label: None,
                txn: None,
                blob_spool: None,
                blob_downloads,
                readers: Vec::new(),
                next_reader: 0,
                serving: Serving::ReadWrite,
                cluster_mode: ClusterMode::Single,
                last_seen: Tid::ZERO,
                iterators: HashMap::new(),
                next_iid: 0,
                loads: foldhash::HashMap::default(),
                next_load: 0,
                reads: foldhash::HashMap::default(),
                next_read: 0,
            };
            let protocol = if session.settings.msgpack {
                Protocol::M5
            } else {
                Protocol::Z5
            };
            if let Ok(frame) = encode_frame(&server_announcement(protocol)) {
                session.push(frame);
            }
            session
        })
    }

    /// Queues a frame for the client, counted in its backlog.
    fn push(&self, frame: Bytes) {
        let len = frame.len();
        // The writer runs on this thread: it cannot take the frame off
        // before it is counted.
        if self.queue.send(Outgoing::Frame(frame)).is_ok() {
            self.backlog.queued(len);
        }
    }

    /// Queues frames the writer makes only as the client reads (a blob
    /// sent from its spool), counted in the backlog as one sequence
    /// waiting.
    fn push_lazy(&self, frames: LazyFrames) {
        if self.queue.send(Outgoing::Frames(frames)).is_ok() {
            self.backlog.lazy_queued();
        }
    }

    /// Ends the session with one log line saying why.
    fn close(&mut self, ctx: &mut Context<Self>, reason: &str) {
        info!(self.log, "closing client connection"; "reason" => reason, "label" => self.label.clone());
        ctx.stop();
    }

    fn send(&self, msg: Message) {
        let Some(encoding) = self.encoding else { return };
        match encoding.encode_frame(&msg.into_value()) {
            Ok(frame) => self.push(frame),
            Err(e) => warn!(self.log, "cannot encode a message for the client"; "error" => %e),
        }
    }

    fn reply(&self, msgid: MsgId, result: Value) {
        self.send(Message::reply(msgid, result));
    }

    fn error(&self, msgid: MsgId, error: ZeoError) {
        // msgpack clients cannot receive pickled exception objects.
        let error = if self.encoding == Some(Encoding::Msgpack) {
            error.flattened()
        } else {
            error
        };
        self.send(Message::error_reply(msgid, error.to_value()));
    }

    fn answer(&self, msgid: MsgId, result: Result<Value, ZeoError>) {
        match result {
            Ok(v) => self.reply(msgid, v),
            Err(e) => self.error(msgid, e),
        }
    }

    fn callback(&self, callback: Callback) {
        self.send(callback.to_message());
    }

    /// The client has been told about `tid`.
    fn saw(&mut self, tid: Tid) {
        self.last_seen = self.last_seen.max(tid);
    }

    fn on_frame(&mut self, ctx: &mut Context<Self>, frame: Bytes) {
        let Some(encoding) = self.encoding else {
            return self.handshake(ctx, &frame);
        };
        if self.on_fast_frame(ctx, encoding, &frame) {
            return;
        }
        let msg = match encoding.decode(&frame).and_then(Message::from_value) {
            Ok(msg) => msg,
            Err(e) => return self.close(ctx, &format!("undecodable message: {e}")),
        };
        match msg {
            Message::Heartbeat => {}
            Message::Call {
                msgid,
                oneway,
                name,
                args,
                ..
            } => self.on_call(ctx, msgid, oneway, &name, &args),
            Message::Reply { .. } | Message::ErrorReply { .. } => {
                self.close(ctx, "a client sent a reply; ZEO servers never call clients")
            }
        }
    }

    fn handshake(&mut self, ctx: &mut Context<Self>, frame: &[u8]) {
        if let Some(timer) = self.handshake_timer.take() {
            ctx.cancel_future(timer);
        }
        match zeo::handshake::server_accept(frame) {
            Ok(zeo::handshake::ClientHello::Speak(protocol)) => self.encoding = Some(protocol.into()),
            Ok(zeo::handshake::ClientHello::Ruok) => {
                let controller = self.controller.clone();
                let storage = self.settings.storage.clone();
                let fut = async move {
                    let status = controller.send(crate::controller::ServerStatus).await.ok();
                    let array = controller.send(crate::controller::Status).await.ok();
                    ruok_json(&storage, status, array)
                };
                ctx.spawn(fut.into_actor(self).map(|json, act, ctx| {
                    if let Ok(frame) = encode_frame(json.as_bytes()) {
                        act.push(frame);
                    }
                    act.close(ctx, "ruok answered");
                }));
            }
            Err(e) => self.close(ctx, &format!("bad handshake: {e}")),
        }
    }
}

/// The `ruok` answer: `{storage: server_status}` as ZEO sends it, with the
/// array's status and members added (a status read for operators).
fn ruok_json(storage: &str, status: Option<Value>, array: Option<crate::controller::ArrayStatus>) -> String {
    let mut fields = serde_json::Map::new();
    if let Some(Value::Dict(items)) = status {
        for (k, v) in items {
            let (Some(k), json) = (k.as_str(), value_json(&v)) else {
                continue;
            };
            fields.insert(k.to_owned(), json);
        }
    }
    if let Some(array) = array {
        fields.insert("raid".into(), serde_json::to_value(array).unwrap_or_default());
    }
    let mut top = serde_json::Map::new();
    top.insert(storage.to_owned(), serde_json::Value::Object(fields));
    serde_json::Value::Object(top).to_string()
}

fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::None => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Str(s) => s.clone().into(),
        other => format!("{other:?}").into(),
    }
}

impl Actor for ClientSession {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.reader.abort();
        if let Some(writer) = self.writer.take() {
            backlog::end_writer_within(writer, backlog::CLOSE_GRACE);
        }
        // The controller aborts a transaction this client left in the
        // commit lock and forgets the session.
        self.controller.do_send(SessionClosed { session: self.id });
    }
}

impl Handler<FromClient> for ClientSession {
    type Result = ();

    fn handle(&mut self, FromClient(item): FromClient, ctx: &mut Context<Self>) {
        match item {
            Ok(frame) => self.on_frame(ctx, frame),
            Err(Lost::Closed) => self.close(ctx, "client disconnected"),
            Err(lost) => self.close(ctx, &lost.to_string()),
        }
    }
}

impl Handler<crate::member::Relayed> for ClientSession {
    type Result = ();

    fn handle(&mut self, msg: crate::member::Relayed, ctx: &mut Context<Self>) {
        self.on_relayed(ctx, msg);
    }
}

impl Handler<ToSession> for ClientSession {
    type Result = ();

    fn handle(&mut self, msg: ToSession, _ctx: &mut Context<Self>) {
        self.on_controller(msg)
    }
}
