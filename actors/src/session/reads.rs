//! The read family (`zeo/src/methods/reads.rs`): loads, `sendBlob`, and the
//! relay every single-member read goes through: round-robin over the
//! readers the controller pushed, failing over to another reader when a
//! member fails (coop mode's voted reads are in
//! [`voted_read`](super::voted_read)).

use super::answers::{failure, member_answer, no_reader};
use super::*;
use crate::controller::DegradeKind;
use crate::member::{AnswerSlot, ConnectionId, Relay, Relayed, SendBlob};
use crate::metrics::LoadOutcome;
use crate::transaction::SpooledBlob;
use zeo::methods::{LoadBefore, Request};
use zeo::reply::{LoadBeforeResult, Reply};

/// How a member answer is turned into the client's, given the member and
/// the connection that answered.
pub(super) type Shape =
    fn(&mut ClientSession, &Addr<MemberActor>, Option<ConnectionId>, Reply) -> Result<Value, ZeoError>;

/// The member's answer is the client's.
pub(super) fn as_is(
    _: &mut ClientSession,
    _: &Addr<MemberActor>,
    _: Option<ConnectionId>,
    reply: Reply,
) -> Result<Value, ZeoError> {
    Ok(reply.to_value())
}

/// A read relayed to a member, waiting for its `Relayed` answer: what
/// answering the client, or trying the next member, needs.
pub(super) struct PendingRead {
    msgid: MsgId,
    request: Request,
    load: Option<u64>,
    shape: Shape,
    member: Addr<MemberActor>,
    tried: Vec<Addr<MemberActor>>,
}

impl ClientSession {
    pub(super) fn load_before(&mut self, ctx: &mut Context<Self>, msgid: MsgId, mut load: LoadBefore) {
        // Never newer than what this client has been told about: between a
        // commit's first and last member finishing, the members differ on
        // the current revision, and a client must not see a transaction on
        // one member and then lose it on the next (it is acknowledged only
        // when all finished).
        let newest = Tid::from_u64(self.last_seen.as_u64().saturating_add(1));
        load.tid = load.tid.min(newest);
        let seq = self.next_load;
        self.next_load += 1;
        self.loads.insert(
            seq,
            InFlightLoad {
                oid: load.oid,
                invalidated_by: None,
            },
        );
        let request = Request::LoadBefore(load);
        if self.cluster_mode == ClusterMode::Coop {
            return self.read_voted(ctx, msgid, request, Some(seq));
        }
        self.read(ctx, msgid, request, Some(seq), as_is, Vec::new());
    }

    /// The next reader round-robin, skipping the members in `tried`.
    pub(super) fn pick_reader(&mut self, tried: &[Addr<MemberActor>]) -> Option<Addr<MemberActor>> {
        for _ in 0..self.readers.len() {
            self.next_reader = (self.next_reader + 1) % self.readers.len();
            let candidate = &self.readers[self.next_reader];
            if !tried.contains(candidate) {
                return Some(candidate.clone());
            }
        }
        None
    }

    /// A read on one member; on a member failure, the same read on another
    /// reader of the current list that was not tried yet (the list may have
    /// changed meanwhile: the failed member has usually left it already).
    /// The answer comes back as a [`Relayed`] message ([`Self::on_relayed`]).
    pub(super) fn read(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        request: Request,
        load: Option<u64>,
        shape: Shape,
        tried: Vec<Addr<MemberActor>>,
    ) {
        let Some(member) = self.pick_reader(&tried) else {
            return self.no_reader_for(msgid, load);
        };
        let tag = self.next_read;
        self.next_read += 1;
        let answer = AnswerSlot::new(ctx.address().recipient(), tag);
        member.do_send(Relay {
            request: request.clone(),
            answer,
        });
        let read = PendingRead {
            msgid,
            request,
            load,
            shape,
            member,
            tried,
        };
        self.reads.insert(tag, read);
    }

    /// A member answered a relayed read (or failed to).
    pub(super) fn on_relayed(&mut self, ctx: &mut Context<Self>, relayed: Relayed) {
        let Some(read) = self.reads.remove(&relayed.tag) else {
            return;
        };
        let PendingRead {
            msgid,
            request,
            load,
            shape,
            member,
            mut tried,
        } = read;
        let (result, connection) = (relayed.result, relayed.connection);
        if let Some(reason) = failure(&result) {
            self.report(
                &member,
                DegradeKind::Failed,
                format!("{} failed: {reason}", request.name()),
            );
        }
        if let Ok(Err(e)) = &result {
            let untried = self.readers.iter().any(|r| *r != member && !tried.contains(r));
            if e.is_member_failure() && untried {
                warn!(self.log, "read failed on a member, trying another"; "error" => %e);
                tried.push(member);
                return self.read(ctx, msgid, request, load, shape, tried);
            }
        }
        let result = member_answer(result);
        if load.is_some() {
            metrics::load(match (&result, tried.is_empty()) {
                (Err(_), _) => LoadOutcome::Error,
                (Ok(_), true) => LoadOutcome::Ok,
                (Ok(_), false) => LoadOutcome::FailedOver,
            });
        }
        let invalidated_by = self.finish_load(load);
        let result = result.map(|reply| fix_up_load(reply, invalidated_by, self.last_seen));
        if let Ok(Reply::LoadBefore(loaded)) = &result {
            if let Some(frame) = self
                .encoding
                .and_then(|encoding| zeo::fast_path::write_load_before_reply(encoding, &msgid, loaded))
            {
                return self.push(frame);
            }
        }
        let result = result.and_then(|r| shape(self, &member, connection, r));
        self.answer(msgid, result);
    }

    /// Answers a read that has no member left to go to.
    pub(super) fn no_reader_for(&mut self, msgid: MsgId, load: Option<u64>) {
        if load.is_some() {
            metrics::load(LoadOutcome::Error);
        }
        self.finish_load(load);
        self.error(msgid, no_reader());
    }

    pub(super) fn finish_load(&mut self, load: Option<u64>) -> Option<Tid> {
        load.and_then(|seq| self.loads.remove(&seq))
            .and_then(|l| l.invalidated_by)
    }

    /// `sendBlob`: the blob streams from one member into this session, then
    /// to the client as `receiveBlobStart/Chunk/Stop`, then the reply.
    /// `sendBlob`: the member's stream is spooled to a file as it
    /// arrives, and only once the member has sent it whole does the client
    /// get it (a stream cut short by a failing member never reaches the
    /// client, whose blob cache refuses a second download over a partial
    /// one). The chunks are then read from the spool as the client takes
    /// them: a blob costs disk, not memory, however many clients read it
    /// and however slowly.
    ///
    /// Each download holds one of the session's
    /// `[limits] blob_downloads_per_session` permits from here until the
    /// client's writer has sent the blob. The session's reader reads no
    /// frame while none is left, so one is always free here.
    pub(super) fn send_blob(&mut self, ctx: &mut Context<Self>, msgid: MsgId, oid: Oid, serial: Tid) {
        let Ok(permit) = self.blob_downloads.clone().try_acquire_owned() else {
            // Not reached: the reader waits for a free permit.
            let reason = "too many blob downloads in flight ([limits] blob_downloads_per_session)";
            return self.error(msgid, ZeoError::unavailable(reason));
        };
        let Some(member) = self.pick_reader(&[]) else {
            return self.error(msgid, no_reader());
        };
        let spool = match SpooledBlob::create(&self.settings.spool_dir) {
            Ok(spool) => spool,
            Err(e) => return self.error(msgid, spool_error(&e)),
        };
        let (sink, chunks) = mpsc::unbounded_channel();
        let download = member.send(SendBlob { oid, serial, sink });
        let both = futures::future::join(download, spool_download(chunks, spool));
        ctx.spawn(both.into_actor(self).map(move |(result, spooled), act, _| {
            if let Some(reason) = failure(&result) {
                act.report(&member, DegradeKind::Failed, format!("sendBlob failed: {reason}"));
            }
            match (member_answer(result), spooled) {
                (Ok(()), Ok(blob)) => act.stream_blob(msgid, oid, serial, &blob, permit),
                (Ok(()), Err(e)) => act.error(msgid, spool_error(&e)),
                (Err(error), _) => act.error(msgid, error),
            }
        }));
    }

    /// Sends a spooled blob to the client: `receiveBlobStart`, the chunks
    /// made from the spool as the writer gets to them, `receiveBlobStop`,
    /// then the reply. `permit` goes with the chunks: given back when the
    /// writer is done with them.
    fn stream_blob(
        &mut self,
        msgid: MsgId,
        oid: Oid,
        serial: Tid,
        blob: &SpooledBlob,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let (Some(encoding), Ok(chunks)) = (self.encoding, blob.chunks()) else {
            return self.error(
                msgid,
                ZeoError::unavailable("cannot read a spooled blob download back"),
            );
        };
        self.callback(Callback::ReceiveBlobStart { oid, serial });
        let messages = chunks.map(move |chunk| {
            let _download = &permit;
            chunk.map(|chunk| Callback::ReceiveBlobChunk { oid, serial, chunk }.to_message())
        });
        self.push_lazy(wire::lazy_frames(
            encoding,
            "reading a spooled blob download back",
            messages,
        ));
        self.callback(Callback::ReceiveBlobStop { oid, serial });
        self.reply(msgid, Value::None);
    }
}

/// Appends a member's blob stream to `spool` until the member has sent it
/// whole (or failed: its sink is dropped either way).
async fn spool_download(
    mut chunks: mpsc::UnboundedReceiver<Bytes>,
    mut spool: SpooledBlob,
) -> std::io::Result<SpooledBlob> {
    while let Some(chunk) = chunks.recv().await {
        spool.append(&chunk)?;
    }
    Ok(spool)
}

fn spool_error(e: &std::io::Error) -> ZeoError {
    ZeoError::unavailable(&format!("cannot spool a blob download: {e}"))
}

/// A `loadBefore` answer as the client may see it, given the newest
/// transaction it has been told about (`last_seen`) and the first
/// invalidation of the object written to it while the load was in flight:
///
/// - answered "current" by a member that had not yet committed a
///   transaction the client has meanwhile been told about: the revision
///   ended at that transaction;
/// - ended by a transaction the client has not been told about yet (a
///   member finished it, zeoraid has not acknowledged it): "current", as a
///   ZEO server says until it sends the invalidation, which then ends the
///   cached revision.
pub(super) fn fix_up_load(reply: Reply, invalidated_by: Option<Tid>, last_seen: Tid) -> Reply {
    match (reply, invalidated_by) {
        (Reply::LoadBefore(Some(r)), Some(tid)) if r.end.is_none() && r.start < tid => {
            Reply::LoadBefore(Some(LoadBeforeResult { end: Some(tid), ..r }))
        }
        (Reply::LoadBefore(Some(r)), _) if r.end.is_some_and(|end| end > last_seen) => {
            Reply::LoadBefore(Some(LoadBeforeResult { end: None, ..r }))
        }
        (reply, _) => reply,
    }
}
