//! The member actor: zeoraid's hand on one backend ZEO server.
//!
//! It owns exactly one ZEO client connection and everything about it: the
//! connection state machine, the calls in flight (pipelined, matched by
//! msgid), the restart policy's counters, the last tid seen. Others ask it
//! with messages ([`Call`], [`Oneway`], [`SendBlob`], [`Snapshot`]) and hear
//! from it through one subscriber ([`MemberEvent`]).
//!
//! Lifecycle: `connecting → handshaking → ready`; any failure (connect
//! error, EOF, protocol error, a missed deadline) fails every call in flight
//! at once with a typed error and goes to `backing-off` (reconnect after an
//! exponential, jittered delay) or, once more than `max_restarts` restarts
//! happened within `restart_window`, to `parked` (probed every
//! `park_probe_interval` until a probe succeeds); [`ReconnectNow`] cuts
//! either wait short. The policy is ours
//! ([`policy`]): actix's `Supervisor` restarts without backoff or limit and
//! never after a panic. Nothing in here awaits the network inside a handler;
//! the mailbox stays responsive during an outage.

mod blob_streams;
mod connection;
mod error;
mod events;
mod messages;
mod oversized;
pub mod policy;
mod settings;
mod snapshot;

pub use error::MemberError;
pub use events::{Connected, MemberEvent};
pub use messages::{
    AnswerSlot, Call, CallAfter, CallOn, ConnectionId, CurrentConnection, Oneway, OnewayOn, Oneways,
    ReconnectNow, Relay, Relayed, SendBlob, Shutdown, Snapshot, Subscribe,
};
pub use policy::{Decision, RestartPolicy, RestartTracker};
pub use settings::{Deadlines, MemberAddress, MemberSettings, MemberTls};
pub use snapshot::{ConnState, LastError, MemberSnapshot};

use crate::metrics::{self, Peer};
use crate::transaction::Replay;
use crate::wire::{self, Lost, Outgoing};
use actix::prelude::*;
use blob_streams::{BlobKey, BlobStreams, StreamEnd};
use bytes::Bytes;
use connection::Established;
use slog::{debug, info, warn, Logger};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use zeo::callbacks::Callback;
use zeo::encoding::Encoding;
use zeo::exceptions::ZeoError;
use zeo::handshake::Protocol;
use zeo::message::{Message, MsgId};
use zeo::methods::{Request, SendBlob as SendBlobArgs};
use zeo::oversized::Frame;
use zeo::reply::Reply;
use zeo::types::Tid;

/// A deadline beyond what an `Instant` can hold is this far away instead.
const FAR_AWAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Weight of a new round-trip sample in the RTT average.
const RTT_ALPHA: f64 = 0.2;

pub struct MemberActor {
    settings: Arc<MemberSettings>,
    name: Arc<str>,
    log: Logger,
    state: ConnState,
    since: SystemTime,
    tracker: RestartTracker,
    next_attempt: Option<Instant>,
    /// Bumped whenever a connection attempt starts or a connection is
    /// dropped, so late events of an older connection are ignored.
    generation: u64,
    conn: Option<Live>,
    pending: foldhash::HashMap<i64, Pending>,
    /// The one timer for every call's deadline, armed for the earliest
    /// deadline in flight (a tokio timer per call was 7 % of a relayed
    /// load's instructions): `(fires at, handle)`.
    deadline_timer: Option<(Instant, SpawnHandle)>,
    call_metrics: metrics::MemberCalls,
    next_msgid: i64,
    subscriber: Option<Recipient<MemberEvent>>,
    last_error: Option<LastError>,
    last_tid: Option<Tid>,
    rtt_ewma: Option<Duration>,
    protocol: Option<Protocol>,
    blob_streams: BlobStreams,
}

/// The ready connection's write side and tasks.
struct Live {
    queue: mpsc::UnboundedSender<Outgoing>,
    encoding: Encoding,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

struct Pending {
    method: Cow<'static, str>,
    started: Instant,
    deadline: Instant,
    blob: Option<BlobKey>,
    /// The connection the call was written on.
    connection: ConnectionId,
    reply: ReplyTo,
}

/// Where a call's answer goes.
enum ReplyTo {
    /// The future a [`Call`], [`CallAfter`] or [`SendBlob`] handler returned.
    Future(oneshot::Sender<Result<Reply, MemberError>>),
    /// A [`Relay`]'s caller, by message.
    Message(AnswerSlot),
}

/// A frame from the member, or why its stream ended (from the reader or writer task).
#[derive(Message)]
#[rtype(result = "()")]
struct FromMember {
    generation: u64,
    item: Result<Frame, Lost>,
}

impl MemberActor {
    pub fn new(settings: MemberSettings, log: Logger) -> MemberActor {
        let name: Arc<str> = Arc::from(settings.name.as_str());
        let log = log.new(slog::o!("member" => settings.name.clone()));
        let tracker = RestartTracker::new(settings.restart, seed_for(&settings.name));
        MemberActor {
            settings: Arc::new(settings),
            name: name.clone(),
            log,
            state: ConnState::Connecting,
            since: SystemTime::now(),
            tracker,
            next_attempt: None,
            generation: 0,
            conn: None,
            pending: foldhash::HashMap::default(),
            deadline_timer: None,
            call_metrics: metrics::MemberCalls::new(name.clone()),
            next_msgid: 1,
            subscriber: None,
            last_error: None,
            last_tid: None,
            rtt_ewma: None,
            protocol: None,
            blob_streams: BlobStreams::default(),
        }
    }

    /// Sets the subscriber before the actor starts, so it hears every
    /// event from the first connection attempt on.
    pub fn with_subscriber(mut self, subscriber: Recipient<MemberEvent>) -> MemberActor {
        self.subscriber = Some(subscriber);
        self
    }

    fn transition(&mut self, to: ConnState, reason: String) {
        self.transition_with(to, reason, None)
    }

    fn transition_with(&mut self, to: ConnState, reason: String, connected: Option<Connected>) {
        info!(self.log, "member state change";
            "from" => self.state.as_str(), "to" => to.as_str(), "reason" => &reason);
        self.state = to;
        self.since = SystemTime::now();
        if let Some(subscriber) = &self.subscriber {
            let member = self.name.clone();
            subscriber.do_send(MemberEvent::State {
                member,
                state: to,
                reason,
                connected,
            });
        }
    }

    /// Starts a connection attempt without blocking the mailbox. A probe of
    /// a parked member stays `parked` until it succeeds.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let generation = self.generation;
        if !self.tracker.is_parked() {
            self.transition(
                ConnState::Connecting,
                format!("connecting to {}", self.settings.address),
            );
        }
        let settings = self.settings.clone();
        let deadline = settings.deadlines.connect;
        let attempt = async move {
            let (reader, writer) = tokio::time::timeout(deadline, connection::open(&settings))
                .await
                .map_err(|_| format!("connect to {} timed out after {deadline:?}", settings.address))?
                .map_err(|e| format!("connect to {}: {e}", settings.address))?;
            Ok::<_, String>((reader, writer))
        };
        ctx.spawn(attempt.into_actor(self).map(move |result, act, ctx| {
            if act.generation != generation {
                return;
            }
            match result {
                Ok((reader, writer)) => act.handshake(ctx, reader, writer),
                Err(reason) => act.fail(ctx, reason),
            }
        }));
    }

    fn handshake(
        &mut self,
        ctx: &mut Context<Self>,
        reader: connection::MemberFrameReader,
        writer: connection::ByteWriter,
    ) {
        let generation = self.generation;
        if !self.tracker.is_parked() {
            self.transition(ConnState::Handshaking, "connected".into());
        }
        let settings = self.settings.clone();
        let deadline = settings.deadlines.connect;
        let attempt = async move {
            tokio::time::timeout(deadline, connection::handshake(&settings, reader, writer))
                .await
                .map_err(|_| format!("handshake and register did not complete within {deadline:?}"))?
                .map_err(|e| e.to_string())
        };
        ctx.spawn(attempt.into_actor(self).map(move |result, act, ctx| {
            if act.generation != generation {
                return;
            }
            match result {
                Ok(established) => act.install(ctx, established),
                Err(reason) => act.fail(ctx, reason),
            }
        }));
    }

    fn install(&mut self, ctx: &mut Context<Self>, est: Established) {
        let generation = self.generation;
        let (queue, queued) = mpsc::unbounded_channel();
        let to_actor = ctx.address();
        // The member's replies are never held back: the connection is
        // shared by every client.
        let reader = wire::spawn_reader(est.reader, Peer::Member, move |item| {
            to_actor.do_send(FromMember { generation, item });
            std::future::ready(())
        });
        let to_actor = ctx.address();
        let writer = wire::spawn_writer(est.writer, queued, Peer::Member, move |lost| {
            to_actor.do_send(FromMember {
                generation,
                item: Err(lost),
            });
        });
        self.conn = Some(Live {
            queue,
            encoding: est.protocol.into(),
            reader,
            writer,
        });
        self.last_tid = Some(est.last_tid);
        self.protocol = Some(est.protocol);
        self.next_attempt = None;
        let was_parked = self.tracker.is_parked();
        self.tracker.on_ready(Instant::now());
        let how = if was_parked {
            "probe succeeded"
        } else {
            "registered"
        };
        let mut reason = format!(
            "{how}: storage {:?}, last tid {}, protocol {}",
            self.settings.storage, est.last_tid, est.protocol
        );
        if let Some(dropped) = est.dropped_tid {
            reason.push_str(&format!(
                " (it reports {dropped}, a transaction it does not have: killed between a vote and \
                 tpc_finish)"
            ));
        }
        let connected = Connected {
            last_tid: est.last_tid,
            info: est.info,
        };
        self.transition_with(ConnState::Ready, reason, Some(connected));
    }

    /// Drops the connection (if any), fails every call in flight with the
    /// reason, and schedules the next attempt per the restart policy.
    fn fail(&mut self, ctx: &mut Context<Self>, reason: String) {
        if let Some(live) = self.conn.take() {
            live.reader.abort();
            live.writer.abort();
        }
        self.generation += 1;
        self.fail_pending(&reason);
        self.blob_streams.clear();
        let previous = self.last_error.replace(LastError {
            message: reason.clone(),
            at: SystemTime::now(),
        });
        let same_as_before = previous.is_some_and(|e| e.message == reason);
        let was_parked = self.tracker.is_parked();
        if !was_parked {
            // What `on_failure` counts as a restart (a failed probe is not).
            metrics::member_restart(&self.name);
        }
        let now = Instant::now();
        let after = match self.tracker.on_failure(now) {
            Decision::Retry { after } => {
                self.transition(
                    ConnState::BackingOff,
                    format!("{reason}; reconnecting in {after:?}"),
                );
                after
            }
            Decision::Park { probe_after } if was_parked && same_as_before => {
                debug!(self.log, "probe failed"; "reason" => &reason, "next_probe_in" => ?probe_after);
                probe_after
            }
            // A probe that fails otherwise than the last attempt (the
            // member is back but its certificate does not verify) says so:
            // the reason shown is always the latest.
            Decision::Park { probe_after } if was_parked => {
                self.transition(
                    ConnState::Parked,
                    format!("{reason}; parked, probing every {probe_after:?}"),
                );
                probe_after
            }
            Decision::Park { probe_after } => {
                let policy = &self.settings.restart;
                self.transition(
                    ConnState::Parked,
                    format!(
                        "{reason}; more than {} restarts within {:?}: parked, probing every {probe_after:?}",
                        policy.max_restarts, policy.restart_window
                    ),
                );
                probe_after
            }
        };
        self.next_attempt = Some(now + after);
        let generation = self.generation;
        ctx.run_later(after, move |act, ctx| {
            if act.generation == generation {
                act.connect(ctx);
            }
        });
    }

    /// Fails every call in flight at once with the reason: callers never
    /// wait for a connection that is gone.
    fn fail_pending(&mut self, reason: &str) {
        let error = MemberError::Unavailable {
            member: self.name.to_string(),
            reason: reason.to_owned(),
        };
        for (_, pending) in std::mem::take(&mut self.pending) {
            self.settle(pending, Err(error.clone()));
        }
    }

    /// Ends a call: counts it and hands its result to whoever waits.
    fn settle(&mut self, pending: Pending, result: Result<Reply, MemberError>) {
        let took = pending.started.elapsed();
        self.call_metrics
            .ended(&pending.method, took, MemberError::call_outcome(&result));
        match pending.reply {
            ReplyTo::Future(tx) => {
                let _ = tx.send(result);
            }
            ReplyTo::Message(slot) => slot.answer(Some(pending.connection), result),
        }
    }

    /// Arms the deadline timer for `at` unless it fires earlier already.
    fn arm_deadline(&mut self, ctx: &mut Context<Self>, at: Instant) {
        if let Some((armed, handle)) = self.deadline_timer {
            if armed <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let after = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(after, |act, ctx| {
            act.deadline_timer = None;
            act.on_deadline(ctx);
        });
        self.deadline_timer = Some((at, handle));
    }

    /// The deadline timer fired: a call past its deadline means the member
    /// is failing (it fails that call with a timeout and, by dropping the
    /// connection, every other call at once); otherwise the timer is armed
    /// for the next deadline in flight.
    fn on_deadline(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let overdue = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .min_by_key(|(_, p)| p.deadline)
            .map(|(msgid, _)| *msgid);
        if let Some(pending) = overdue.and_then(|msgid| self.pending.remove(&msgid)) {
            let after = pending.deadline - pending.started;
            let reason = format!("{} did not answer within {after:?}", pending.method);
            let timeout = MemberError::Timeout {
                member: self.name.to_string(),
                method: pending.method.to_string(),
                after,
            };
            self.settle(pending, Err(timeout));
            return self.fail(ctx, reason);
        }
        if let Some(next) = self.pending.values().map(|p| p.deadline).min() {
            self.arm_deadline(ctx, next);
        }
    }

    fn deadline_for(&self, request: &Request) -> Duration {
        let d = &self.settings.deadlines;
        match request {
            Request::TpcBegin(_)
            | Request::Vote(_)
            | Request::TpcFinish(_)
            | Request::TpcAbort(_)
            | Request::Storea(_)
            | Request::Restorea(_) => d.commit,
            Request::Pack(_)
            | Request::UndoLog(_)
            | Request::UndoInfo(_)
            | Request::IteratorStart(_)
            | Request::IteratorNext(_)
            | Request::IteratorRecordStart(_)
            | Request::IteratorRecordNext(_)
            | Request::RecordIternext(_)
            | Request::SendBlob(_) => d.long,
            _ => d.call,
        }
    }

    /// The connection calls are written on now, if the member is ready.
    /// The generation is stable while a connection is ready and bumped
    /// when it is dropped, so it names the connection.
    fn connection(&self) -> Option<ConnectionId> {
        let ready = self.state == ConnState::Ready && self.conn.is_some();
        ready.then_some(ConnectionId(self.generation))
    }

    /// Refuses a call bound to a connection that is not the ready one.
    fn on_connection(&self, connection: ConnectionId) -> Result<(), MemberError> {
        if self.connection() == Some(connection) {
            return Ok(());
        }
        Err(MemberError::ConnectionGone {
            member: self.name.to_string(),
        })
    }

    fn unavailable(&self) -> MemberError {
        MemberError::Unavailable {
            member: self.name.to_string(),
            reason: format!("member is {}", self.state),
        }
    }

    /// Encodes and queues one message on the ready connection.
    fn write(&self, msg: Message) -> Result<(), MemberError> {
        let live = self.live()?;
        let protocol_error = |error| MemberError::Protocol {
            member: self.name.to_string(),
            error,
        };
        let frame = live
            .encoding
            .encode_frame(&msg.into_value())
            .map_err(protocol_error)?;
        self.write_frame(live, frame)
    }

    /// Queues a call: a load's frame, or a `vote`'s, `tpc_finish`'s or
    /// `tpc_abort`'s, written directly ([`zeo::fast_path`]), anything else
    /// through [`Self::write`].
    fn write_call(&self, msgid: i64, request: &Request) -> Result<(), MemberError> {
        let live = self.live()?;
        let fast = match request {
            Request::LoadBefore(load) => zeo::fast_path::write_load_before_call(live.encoding, msgid, load),
            request => zeo::fast_path::write_txn_call(live.encoding, msgid, request),
        };
        match fast {
            Some(frame) => self.write_frame(live, frame),
            None => self.write(request.to_message(MsgId::int(msgid))),
        }
    }

    /// The connection, if it is ready.
    fn live(&self) -> Result<&Live, MemberError> {
        let live = self.conn.as_ref().filter(|_| self.state == ConnState::Ready);
        live.ok_or_else(|| self.unavailable())
    }

    fn write_frame(&self, live: &Live, frame: Bytes) -> Result<(), MemberError> {
        live.queue
            .send(Outgoing::Frame(frame))
            .map_err(|_| self.unavailable())
    }

    /// Sends a call and returns a future for its reply, bounded by the call's deadline.
    fn call(
        &mut self,
        ctx: &mut Context<Self>,
        request: Request,
    ) -> ResponseFuture<Result<Reply, MemberError>> {
        let (reply, answer) = oneshot::channel();
        self.send_call(ctx, request, None, ReplyTo::Future(reply));
        self.answer_future(answer)
    }

    /// The future a handler returns for a call whose answer goes to `answer`.
    fn answer_future(
        &self,
        answer: oneshot::Receiver<Result<Reply, MemberError>>,
    ) -> ResponseFuture<Result<Reply, MemberError>> {
        let member = self.name.clone();
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                Err(MemberError::Unavailable {
                    member: member.to_string(),
                    reason: "connection dropped".into(),
                })
            })
        })
    }

    /// Writes a synchronous call and records where its answer goes; the
    /// answer comes from the member's reply, the deadline timer, or the
    /// connection's failure, whichever is first. The call's msgid, if it
    /// was written (otherwise it is answered already).
    fn send_call(
        &mut self,
        ctx: &mut Context<Self>,
        request: Request,
        blob: Option<BlobKey>,
        reply: ReplyTo,
    ) -> Option<i64> {
        let method: Cow<'static, str> = match request.static_name() {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(request.name().to_owned()),
        };
        let now = Instant::now();
        let pending = Pending {
            method,
            started: now,
            // A configured timeout may be absurdly long: past what an
            // `Instant` holds, it means "far away", not a panic.
            deadline: now
                .checked_add(self.deadline_for(&request))
                .unwrap_or_else(|| now + FAR_AWAY),
            blob,
            connection: ConnectionId(self.generation),
            reply,
        };
        if request.is_oneway() {
            let problem = format!(
                "{} is asynchronous in ZEO (no reply): send it as a Oneway",
                request.name()
            );
            let error = zeo::CodecError::Envelope(problem);
            let member = self.name.to_string();
            self.settle(pending, Err(MemberError::Protocol { member, error }));
            return None;
        }
        let msgid = self.next_msgid;
        if let Err(e) = self.write_call(msgid, &request) {
            self.settle(pending, Err(e));
            return None;
        }
        self.next_msgid += 1;
        self.arm_deadline(ctx, pending.deadline);
        self.pending.insert(msgid, pending);
        Some(msgid)
    }

    fn on_frame(&mut self, ctx: &mut Context<Self>, frame: Bytes) {
        let Some(encoding) = self.conn.as_ref().map(|live| live.encoding) else {
            return;
        };
        if self.on_fast_reply(encoding, &frame) {
            return;
        }
        let decoded = encoding.decode(&frame).and_then(Message::from_value);
        let msg = match decoded {
            Ok(msg) => msg,
            Err(e) => return self.fail(ctx, format!("protocol error: {e}")),
        };
        match msg {
            Message::Reply { msgid, result } => {
                let Some((id, pending)) = msgid
                    .as_int()
                    .and_then(|id| Some((id, self.pending.remove(&id)?)))
                else {
                    return warn!(self.log, "reply to an unknown msgid dropped"; "msgid" => ?msgid);
                };
                self.observe_rtt(pending.started.elapsed());
                if let Some(incomplete) = self.end_blob_stream(&pending, id) {
                    let reason = format!("sendBlob answered before its whole blob arrived: {incomplete}");
                    let member = self.name.to_string();
                    let error = zeo::CodecError::Envelope(reason.clone());
                    self.settle(pending, Err(MemberError::Protocol { member, error }));
                    return self.fail(ctx, reason);
                }
                match Reply::decode(&pending.method, &result) {
                    Ok(reply) => self.settle_reply(pending, reply),
                    Err(error) => {
                        let reason = format!("protocol error in the reply to {}: {error}", pending.method);
                        let member = self.name.to_string();
                        self.settle(pending, Err(MemberError::Protocol { member, error }));
                        self.fail(ctx, reason);
                    }
                }
            }
            Message::ErrorReply { msgid, error } => {
                let Some((id, pending)) = msgid
                    .as_int()
                    .and_then(|id| Some((id, self.pending.remove(&id)?)))
                else {
                    return warn!(self.log, "error reply to an unknown msgid dropped"; "msgid" => ?msgid);
                };
                self.observe_rtt(pending.started.elapsed());
                // An error reply (no such blob) has no stream to check.
                let _ = self.end_blob_stream(&pending, id);
                match ZeoError::from_value(&error) {
                    Ok(error) => {
                        let member = self.name.to_string();
                        self.settle(pending, Err(MemberError::Application { member, error }));
                    }
                    Err(error) => {
                        let reason =
                            format!("protocol error in an error reply to {}: {error}", pending.method);
                        let member = self.name.to_string();
                        self.settle(pending, Err(MemberError::Protocol { member, error }));
                        self.fail(ctx, reason);
                    }
                }
            }
            Message::Call { name, args, .. } => match Callback::decode(&name, &args) {
                Ok(callback) => self.on_callback(callback),
                Err(e) => self.fail(ctx, format!("protocol error in callback {name:?}: {e}")),
            },
            Message::Heartbeat => {}
        }
    }

    /// Settles a `loadBefore`, `vote` or `tpc_finish` whose plain reply the
    /// frame is, read without a value tree ([`zeo::fast_path`]); false
    /// (nothing done) for any other frame, which [`Self::on_frame`] then
    /// decodes.
    fn on_fast_reply(&mut self, encoding: Encoding, frame: &Bytes) -> bool {
        use zeo::fast_path::{
            read_load_before_result, read_reply_start, read_tpc_finish_result, read_vote_result,
        };
        let Some((msgid, at)) = read_reply_start(encoding, frame) else {
            return false;
        };
        let reply = match self.pending.get(&msgid).map(|p| p.method.as_ref()) {
            Some("loadBefore") => read_load_before_result(frame, at).map(Reply::LoadBefore),
            Some("vote") => read_vote_result(frame, at).map(Reply::Vote),
            Some("tpc_finish") => read_tpc_finish_result(frame, at).map(Reply::TpcFinish),
            _ => None,
        };
        // Removed only once the reply is read: otherwise the generic path
        // settles it.
        let Some(reply) = reply else {
            return false;
        };
        let Some(pending) = self.pending.remove(&msgid) else {
            return false;
        };
        self.observe_rtt(pending.started.elapsed());
        self.settle_reply(pending, reply);
        true
    }

    /// Answers a call with the member's reply, noting a tid it reveals.
    fn settle_reply(&mut self, pending: Pending, reply: Reply) {
        if let Reply::TpcFinish(Some(tid)) | Reply::LastTransaction(tid) = &reply {
            self.saw_tid(*tid);
        }
        self.settle(pending, Ok(reply));
    }

    /// Ends the blob stream of a `sendBlob` whose reply arrived: what was
    /// missing from it, if it was not whole.
    fn end_blob_stream(&mut self, pending: &Pending, msgid: i64) -> Option<String> {
        let key = pending.blob?;
        match self.blob_streams.close(&key, msgid) {
            Some((StreamEnd::Complete, _)) => None,
            Some((StreamEnd::Incomplete(missing), bytes)) => Some(format!(
                "{missing} for oid {} serial {} after {bytes} bytes",
                key.0, key.1
            )),
            None => Some(format!("no stream for oid {} serial {}", key.0, key.1)),
        }
    }

    fn on_callback(&mut self, callback: Callback) {
        // Blob streams go to the calls that asked for them, nowhere else.
        let routed = match &callback {
            Callback::InvalidateTransaction { tid, .. } => {
                self.saw_tid(*tid);
                None
            }
            Callback::ReceiveBlobStart { oid, serial } => Some(self.blob_streams.start(&(*oid, *serial))),
            Callback::ReceiveBlobChunk { oid, serial, chunk } => {
                Some(self.blob_streams.chunk(&(*oid, *serial), chunk))
            }
            Callback::ReceiveBlobStop { oid, serial } => Some(self.blob_streams.stop(&(*oid, *serial))),
            _ => None,
        };
        if let Some(routed) = routed {
            if !routed {
                warn!(self.log, "blob stream callback for no sendBlob in flight dropped";
                    "callback" => callback.name());
            }
            return;
        }
        if let Some(subscriber) = &self.subscriber {
            subscriber.do_send(MemberEvent::Callback {
                member: self.name.clone(),
                callback,
            });
        }
    }

    fn saw_tid(&mut self, tid: Tid) {
        if self.last_tid.is_none_or(|last| tid > last) {
            self.last_tid = Some(tid);
        }
    }

    fn observe_rtt(&mut self, sample: Duration) {
        self.rtt_ewma = Some(match self.rtt_ewma {
            None => sample,
            Some(avg) => avg.mul_f64(1.0 - RTT_ALPHA) + sample.mul_f64(RTT_ALPHA),
        });
    }
}

/// A per-member jitter seed, so several members (and several zeoraids
/// with the same config) do not retry in lockstep.
fn seed_for(name: &str) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    name.bytes().fold(nanos ^ std::process::id() as u64, |h, b| {
        h.rotate_left(5) ^ b as u64
    })
}

impl Actor for MemberActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
        let interval = self.settings.heartbeat_interval;
        ctx.run_interval(interval, |act, _ctx| {
            if act.state == ConnState::Ready {
                // ZEO's keep-alive: (-1, 0, '.reply', None), never answered.
                let _ = act.write(Message::Heartbeat);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(live) = self.conn.take() {
            live.reader.abort();
            live.writer.abort();
        }
        self.fail_pending("member actor stopped");
        info!(self.log, "member state change"; "from" => self.state.as_str(), "to" => "stopped", "reason" => "actor stopped");
        self.state = ConnState::Stopped;
    }
}

impl Handler<FromMember> for MemberActor {
    type Result = ();

    fn handle(&mut self, msg: FromMember, ctx: &mut Context<Self>) {
        if msg.generation != self.generation {
            return;
        }
        match msg.item {
            Ok(Frame::Whole(frame)) => self.on_frame(ctx, frame),
            Ok(Frame::TooLarge { len, prefix }) => self.on_frame_too_large(ctx, len, &prefix),
            Err(lost) => self.fail(ctx, lost.to_string()),
        }
    }
}

impl Handler<Relay> for MemberActor {
    type Result = ();

    fn handle(&mut self, msg: Relay, ctx: &mut Context<Self>) {
        self.send_call(ctx, msg.request, None, ReplyTo::Message(msg.answer));
    }
}

impl Handler<Call> for MemberActor {
    type Result = ResponseFuture<Result<Reply, MemberError>>;

    fn handle(&mut self, Call(request): Call, ctx: &mut Context<Self>) -> Self::Result {
        self.call(ctx, request)
    }
}

impl Handler<CallAfter> for MemberActor {
    type Result = ResponseFuture<Result<Reply, MemberError>>;

    fn handle(&mut self, msg: CallAfter, ctx: &mut Context<Self>) -> Self::Result {
        let queued = match msg.oneways {
            Oneways::Requests(requests) => requests.into_iter().try_for_each(|r| self.oneway(r)),
            Oneways::Replay {
                txn,
                id,
                tid,
                fence,
                fault,
            } => self.replay(Replay::new(txn, id, tid).fenced(fence).reporting_to(fault)),
        };
        if let Err(e) = queued {
            return Box::pin(futures::future::ready(Err(e)));
        }
        self.call(ctx, msg.call)
    }
}

impl Handler<CallOn> for MemberActor {
    type Result = ResponseFuture<Result<Reply, MemberError>>;

    fn handle(&mut self, msg: CallOn, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(gone) = self.on_connection(msg.connection) {
            return Box::pin(futures::future::ready(Err(gone)));
        }
        self.call(ctx, msg.request)
    }
}

impl Handler<CurrentConnection> for MemberActor {
    type Result = Option<ConnectionId>;

    fn handle(&mut self, _: CurrentConnection, _ctx: &mut Context<Self>) -> Self::Result {
        self.connection()
    }
}

impl Handler<OnewayOn> for MemberActor {
    type Result = Result<(), MemberError>;

    fn handle(&mut self, msg: OnewayOn, _ctx: &mut Context<Self>) -> Self::Result {
        self.on_connection(msg.connection)?;
        self.oneway(msg.request)
    }
}

impl Handler<Oneway> for MemberActor {
    type Result = Result<(), MemberError>;

    fn handle(&mut self, Oneway(request): Oneway, _ctx: &mut Context<Self>) -> Self::Result {
        self.oneway(request)
    }
}

impl MemberActor {
    /// Queues a transaction's replay as one item: the writer task makes
    /// its frames one at a time as the socket takes them, so the
    /// transaction's blobs go out from the spool in windows instead of
    /// being read into memory whole, once per member.
    fn replay(&mut self, replay: Replay) -> Result<(), MemberError> {
        let live = self.live()?;
        let frames = wire::lazy_async_calls(live.encoding, "reading a spooled blob back", replay.map(Ok));
        live.queue
            .send(Outgoing::Frames(frames))
            .map_err(|_| self.unavailable())
    }

    fn oneway(&mut self, request: Request) -> Result<(), MemberError> {
        if !request.is_oneway() {
            let problem = format!("{} expects a reply: send it as a Call", request.name());
            let error = zeo::CodecError::Envelope(problem);
            return Err(MemberError::Protocol {
                member: self.name.to_string(),
                error,
            });
        }
        self.write(request.to_message(MsgId::ASYNC))
    }
}

impl Handler<SendBlob> for MemberActor {
    type Result = ResponseFuture<Result<(), MemberError>>;

    fn handle(&mut self, msg: SendBlob, ctx: &mut Context<Self>) -> Self::Result {
        let key = (msg.oid, msg.serial);
        let request = Request::SendBlob(SendBlobArgs {
            oid: msg.oid,
            serial: msg.serial,
        });
        let (reply, answer) = oneshot::channel();
        if let Some(msgid) = self.send_call(ctx, request, Some(key), ReplyTo::Future(reply)) {
            self.blob_streams.open(key, msgid, msg.sink);
        }
        let reply = self.answer_future(answer);
        Box::pin(async move { reply.await.map(|_| ()) })
    }
}

impl Handler<Snapshot> for MemberActor {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        MessageResult(MemberSnapshot {
            name: self.name.to_string(),
            address: self.settings.address.to_string(),
            state: self.state,
            since: self.since,
            restarts_in_window: self.tracker.restarts_in_window(now),
            total_restarts: self.tracker.total_restarts(),
            last_error: self.last_error.clone(),
            in_flight: self.pending.len(),
            last_tid: self.last_tid.map(|t| t.to_hex()),
            rtt_ewma_us: self.rtt_ewma.map(|d| d.as_micros() as u64),
            protocol: self.protocol.map(|p| p.to_string()),
            next_attempt_in_ms: self
                .next_attempt
                .map(|t| t.saturating_duration_since(now).as_millis() as u64),
        })
    }
}

impl Handler<Subscribe> for MemberActor {
    type Result = ();

    fn handle(&mut self, Subscribe(recipient): Subscribe, _ctx: &mut Context<Self>) {
        self.subscriber = Some(recipient);
    }
}

impl Handler<ReconnectNow> for MemberActor {
    type Result = ();

    fn handle(&mut self, msg: ReconnectNow, ctx: &mut Context<Self>) {
        // Waiting for the next attempt: backing off, or parked between probes
        // (a probe in flight leaves the state parked but the wait is over).
        let waiting = matches!(self.state, ConnState::BackingOff | ConnState::Parked)
            && self.next_attempt.is_some_and(|at| at > Instant::now());
        if !waiting {
            return debug!(self.log, "reconnect now ignored"; "state" => self.state.as_str(),
                "reason" => &msg.reason);
        }
        info!(self.log, "reconnecting now"; "state" => self.state.as_str(), "reason" => &msg.reason);
        // `connect` starts a new generation: the timer of the wait cut short
        // finds it stale. No wait is scheduled until this attempt fails.
        self.next_attempt = None;
        self.connect(ctx);
    }
}

impl Handler<Shutdown> for MemberActor {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        info!(self.log, "member shutting down"; "reason" => &msg.reason);
        ctx.stop();
    }
}
