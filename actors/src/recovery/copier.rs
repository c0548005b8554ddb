//! The copy itself: reading one transaction from the source and replaying
//! it on the target with its original tid. The actor ([`super`]) decides
//! when; this module knows how. A [`Copier`] is owned by one future at a
//! time (the actor lends it to each step), so it needs no locks.
//!
//! Every transaction is first read completely from the source (metadata,
//! records, blob files into spool files) and only then written to the
//! target. So a failing source never leaves anything half-written on the
//! target, and a failing target always gets its transaction aborted: the
//! target's last tid is always the last transaction copied, which is what
//! makes a recovery resumable from the target's `lastTransaction`.
//!
//! Replay (`docs/zeo-protocol.md#restores`): `tpc_begin(id, user, description, extension,
//! tid, status)`, `restorea(oid, tid, data, data_txn, id)` per record,
//! `vote`, `tpc_finish`, and the tid `tpc_finish` answers must be the
//! original. Blob records cannot be restored over ZEO; they are uploaded
//! with `storeBlobStart/Chunk/End` carrying the target's current serial of
//! the oid (a normal store inside the restore transaction). A ZEO server
//! stores blob uploads after all other records, in reverse order of
//! arrival, so uploads are sent last and reversed: a transaction written
//! through ZEO (whose blob records are last) comes out record for record
//! as on the source. ZEO clients send a blob's record twice (`storea`,
//! then the upload): only the last record of an oid carries the blob file,
//! earlier ones are restored as plain records.

use super::blob::is_blob_record;
use super::error::RecoveryError;
use super::storages::TargetStorage;
use crate::member::{
    Call, CallAfter, CallOn, ConnectionId, CurrentConnection, MemberActor, MemberError, OnewayOn, Oneways,
    SendBlob,
};
use crate::transaction::{BlobDigest, BlobHasher, SpooledBlob};
use actix::Addr;
use bytes::Bytes;
use slog::{warn, Logger};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use zeo::methods::{
    History, IteratorGc, IteratorNext, IteratorRecordNext, IteratorRecordStart, IteratorStart, LoadBefore,
    Request, Restorea, StoreBlobChunk, StoreBlobEnd, TpcAbort, TpcBegin, TpcFinish, TxnId, Vote,
};
use zeo::reply::{DataRecord, Reply, TxnRecord};
use zeo::types::{Oid, Tid};

/// Blob uploads are sent in windows of about this many bytes, each
/// followed by a `ping` whose answer means the member has consumed them:
/// the member actor's write queue is unbounded, this bounds it.
const UPLOAD_WINDOW: usize = 4 * 1024 * 1024;

/// zeoraid's transaction ids on target connections, unique in the process:
/// a later recovery of the same member can never continue a transaction
/// of an earlier one (ZEO ignores a second `tpc_begin` with the same id).
static NEXT_TXN_ID: AtomicI64 = AtomicI64::new(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Target,
}

/// One transaction as copied.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Copied {
    pub tid: Tid,
    pub bytes: u64,
    pub blobs: u64,
    pub missing_blobs: u64,
}

/// An iterator on a member, released (`iterator_gc`) when dropped unless
/// the member already forgot it (it ended).
///
/// Iterator ids are per connection and start again at 0 on a new one: if
/// the member reconnected, the same id may name a client's iterator there,
/// and reading it would copy the wrong transactions (and advance the
/// client's iterator). So every call with it is bound to the connection it
/// was opened on ([`CallOn`], [`OnewayOn`]), and fails once that is gone.
pub(crate) struct OpenIterator {
    member: Addr<MemberActor>,
    pub iid: i64,
    live: bool,
    connection: ConnectionId,
}

impl OpenIterator {
    /// The member answered `None`: it forgot the iterator itself.
    pub fn ended(&mut self) {
        self.live = false;
    }
}

impl Drop for OpenIterator {
    fn drop(&mut self) {
        if self.live {
            let gc = Request::IteratorGc(IteratorGc { iids: vec![self.iid] });
            self.member.do_send(OnewayOn {
                connection: self.connection,
                request: gc,
            });
        }
    }
}

/// A record to replay, and how.
enum Replay {
    Restore(DataRecord),
    Blob {
        oid: Oid,
        serial: Tid,
        data: Bytes,
        blob: SpooledBlob,
    },
}

pub(crate) struct Copier {
    pub member: Arc<str>,
    pub source_name: Arc<str>,
    pub source: Addr<MemberActor>,
    pub target: Addr<MemberActor>,
    spool_dir: PathBuf,
    log: Logger,
    /// The target's last committed tid: it holds everything up to here.
    pub target_last: Tid,
    /// How to write onto the target (set by the verification).
    pub target_storage: TargetStorage,
    /// The source iterator of the current pass.
    stream: Option<Stream>,
}

/// What the source sent for one transaction: its metadata and records;
/// `None` once the pass has ended.
type SourceTxn = Option<(TxnRecord, Vec<DataRecord>)>;

/// A pass over the source, read one transaction ahead: the next
/// transaction is read from the source while the current one is replayed
/// on the target (the two are different members), so a copied transaction
/// costs the longer of the two round-trip chains, not their sum (measured:
/// 4 source round trips and 2 target round trips per small transaction).
struct Stream {
    it: OpenIterator,
    /// Read while the previous transaction was replayed (or why it could
    /// not be): handed out by the next `copy_next`.
    ahead: Option<Result<SourceTxn, RecoveryError>>,
}

impl Copier {
    pub fn new(
        member: Arc<str>,
        source_name: Arc<str>,
        source: Addr<MemberActor>,
        target: Addr<MemberActor>,
        spool_dir: PathBuf,
        log: Logger,
    ) -> Copier {
        Copier {
            member,
            source_name,
            source,
            target,
            spool_dir,
            log,
            target_last: Tid::ZERO,
            target_storage: TargetStorage::default(),
            stream: None,
        }
    }

    /// A copier that only reads, from one member (the scrub): both sides
    /// are that member, and reads go through [`Side::Source`].
    pub fn reader(member: Arc<str>, addr: Addr<MemberActor>, log: Logger) -> Copier {
        Copier::new(
            member.clone(),
            member,
            addr.clone(),
            addr,
            std::env::temp_dir(),
            log,
        )
    }

    fn name(&self, side: Side) -> &str {
        match side {
            Side::Source => &self.source_name,
            Side::Target => &self.member,
        }
    }

    fn addr(&self, side: Side) -> &Addr<MemberActor> {
        match side {
            Side::Source => &self.source,
            Side::Target => &self.target,
        }
    }

    /// The error for a failure on `side`.
    pub fn fail(&self, side: Side, reason: impl Into<String>) -> RecoveryError {
        let reason = reason.into();
        match side {
            Side::Source => RecoveryError::Source {
                reason: format!("{}: {reason}", self.source_name),
                resume_from: self.target_last,
            },
            Side::Target => RecoveryError::Target {
                reason: format!("{}: {reason}", self.member),
            },
        }
    }

    /// The error for a failed call on `side` (the member error names the member).
    pub fn fail_call(&self, side: Side, what: &str, error: impl std::fmt::Display) -> RecoveryError {
        let reason = format!("{what}: {error}");
        match side {
            Side::Source => RecoveryError::Source {
                reason,
                resume_from: self.target_last,
            },
            Side::Target => RecoveryError::Target { reason },
        }
    }

    /// A call whose application errors the caller wants to see.
    pub async fn call_raw(&self, side: Side, request: Request) -> Result<Reply, MemberError> {
        let member = self.name(side).to_owned();
        self.addr(side).send(Call(request)).await.unwrap_or_else(|e| {
            Err(MemberError::Unavailable {
                member,
                reason: format!("member actor gone: {e}"),
            })
        })
    }

    /// A call where any error is the side's failure.
    pub async fn call(&self, side: Side, request: Request) -> Result<Reply, RecoveryError> {
        let method = request.name().to_owned();
        self.call_raw(side, request)
            .await
            .map_err(|e| self.fail_call(side, &method, e))
    }

    pub fn unexpected(&self, side: Side, method: &str, reply: &Reply) -> RecoveryError {
        self.fail(side, format!("unexpected answer to {method}: {reply:?}"))
    }

    /// A call on the iterator's connection (the member's answer, or why
    /// there was none).
    async fn call_on(&self, side: Side, it: &OpenIterator, request: Request) -> Result<Reply, RecoveryError> {
        let method = request.name().to_owned();
        let answer = self.addr(side).send(CallOn {
            connection: it.connection,
            request,
        });
        match answer.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(MemberError::ConnectionGone { .. })) => Err(self.fail(
                side,
                format!(
                    "{method}: the connection was re-established while iterating (its iterators are gone)"
                ),
            )),
            Ok(Err(e)) => Err(self.fail_call(side, &method, e)),
            Err(e) => Err(self.fail(side, format!("member actor gone: {e}"))),
        }
    }

    pub async fn last_transaction(&self, side: Side) -> Result<Tid, RecoveryError> {
        match self.call(side, Request::LastTransaction).await? {
            Reply::LastTransaction(tid) => Ok(tid),
            other => Err(self.unexpected(side, "lastTransaction", &other)),
        }
    }

    /// Starts an iterator over `[start, stop]` on `side`, never before tid
    /// 1: tid 0 is no transaction, but a history-preserving RelStorage
    /// keeps a placeholder transaction 0 (no records, user "system") that
    /// its iterator lists when started from 0.
    pub async fn iterator(
        &self,
        side: Side,
        start: Option<Tid>,
        stop: Option<Tid>,
    ) -> Result<OpenIterator, RecoveryError> {
        let first = Tid::from_u64(1);
        let start = Some(start.map_or(first, |tid| tid.max(first)));
        let connection = match self.addr(side).send(CurrentConnection).await {
            Ok(Some(connection)) => connection,
            Ok(None) => return Err(self.fail(side, "iterator_start: the member is not connected")),
            Err(e) => return Err(self.fail(side, format!("member actor gone: {e}"))),
        };
        // Not live until started: nothing to free if the start fails.
        let mut it = OpenIterator {
            member: self.addr(side).clone(),
            iid: 0,
            live: false,
            connection,
        };
        match self
            .call_on(side, &it, Request::IteratorStart(IteratorStart { start, stop }))
            .await?
        {
            Reply::IteratorStart(iid) => {
                it.iid = iid;
                it.live = true;
                Ok(it)
            }
            other => Err(self.unexpected(side, "iterator_start", &other)),
        }
    }

    /// The iterator's next transaction; `None` at its end.
    pub async fn next_txn(
        &self,
        side: Side,
        it: &mut OpenIterator,
    ) -> Result<Option<TxnRecord>, RecoveryError> {
        let request = Request::IteratorNext(IteratorNext { iid: it.iid });
        match self.call_on(side, it, request).await? {
            Reply::IteratorNext(txn) => {
                if txn.is_none() {
                    it.ended();
                }
                Ok(txn)
            }
            other => Err(self.unexpected(side, "iterator_next", &other)),
        }
    }

    /// All records of the transaction `tid` just returned by `it`.
    pub async fn records(
        &self,
        side: Side,
        it: &OpenIterator,
        tid: Tid,
    ) -> Result<Vec<DataRecord>, RecoveryError> {
        let start = Request::IteratorRecordStart(IteratorRecordStart { txn_iid: it.iid, tid });
        let riid = match self.call_on(side, it, start).await? {
            Reply::IteratorRecordStart(riid) => riid,
            other => return Err(self.unexpected(side, "iterator_record_start", &other)),
        };
        let mut riter = OpenIterator {
            member: self.addr(side).clone(),
            iid: riid,
            live: true,
            connection: it.connection,
        };
        let mut records = Vec::new();
        loop {
            let request = Request::IteratorRecordNext(IteratorRecordNext { riid });
            match self.call_on(side, &riter, request).await? {
                Reply::IteratorRecordNext(Some(record)) => records.push(record),
                Reply::IteratorRecordNext(None) => {
                    riter.ended();
                    return Ok(records);
                }
                other => return Err(self.unexpected(side, "iterator_record_next", &other)),
            }
        }
    }

    /// Releases the current pass's source iterator (if any).
    pub fn close_stream(&mut self) {
        self.stream = None;
    }

    /// Copies the next transaction of the current pass, opening one if
    /// none is open: up to the source's last tid now. A pass is thus a
    /// snapshot (a ZEO iterator without a stop reads on into what commits
    /// meanwhile), and its length shows whether the copy gains on the
    /// writers. Also answers the source's last tid when it asked for one.
    pub async fn copy_next_of_pass(&mut self) -> Result<(Option<Copied>, Option<Tid>), RecoveryError> {
        let stop = match self.stream {
            Some(_) => None,
            None => Some(self.last_transaction(Side::Source).await?),
        };
        Ok((self.copy_next(stop).await?, stop))
    }

    /// Copies the next transaction of the current pass over the source,
    /// opening the pass (an iterator from just after the target's last tid
    /// up to `stop`) if none is open. `None`: the pass has ended.
    pub async fn copy_next(&mut self, stop: Option<Tid>) -> Result<Option<Copied>, RecoveryError> {
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                let start = Tid::from_u64(self.target_last.as_u64().saturating_add(1));
                let it = self.iterator(Side::Source, Some(start), stop).await?;
                Stream { it, ahead: None }
            }
        };
        let current = match stream.ahead.take() {
            Some(read) => read?,
            None => self.read_txn(&mut stream.it).await?,
        };
        let Some((txn, records)) = current else {
            return Ok(None);
        };
        if txn.tid <= self.target_last {
            return Err(self.fail(
                Side::Source,
                format!(
                    "its iterator returned transaction {} which is not after {} (the target's last)",
                    txn.tid, self.target_last
                ),
            ));
        }
        // `prepare` reads the target's serials, so it runs only once the
        // previous transaction has committed there; the read-ahead only
        // touches the source.
        let (replays, missing_blobs) = self.prepare(records).await?;
        let (copied, ahead) = futures::join!(self.replay(txn, replays), self.read_txn(&mut stream.it));
        let copied = copied?;
        self.target_last = copied.tid;
        // A source failure met by the read-ahead was described while this
        // transaction was still in flight: the target now holds it too.
        stream.ahead = Some(ahead.map_err(|e| match e {
            RecoveryError::Source { reason, .. } => RecoveryError::Source {
                reason,
                resume_from: self.target_last,
            },
            other => other,
        }));
        self.stream = Some(stream);
        Ok(Some(Copied {
            missing_blobs,
            ..copied
        }))
    }

    /// The source's next transaction of the pass with all its records.
    async fn read_txn(&self, it: &mut OpenIterator) -> Result<SourceTxn, RecoveryError> {
        let Some(txn) = self.next_txn(Side::Source, it).await? else {
            return Ok(None);
        };
        let records = self.records(Side::Source, it, txn.tid).await?;
        Ok(Some((txn, records)))
    }

    /// Decides how each record is replayed, downloads blobs and looks up
    /// the target's serials for them. Reads only.
    async fn prepare(&self, records: Vec<DataRecord>) -> Result<(Vec<Replay>, u64), RecoveryError> {
        let last_of_oid: HashMap<Oid, usize> = records.iter().enumerate().map(|(i, r)| (r.oid, i)).collect();
        let mut replays = Vec::with_capacity(records.len());
        let mut missing = 0;
        for (i, record) in records.into_iter().enumerate() {
            let last = last_of_oid.get(&record.oid) == Some(&i);
            if !last && self.target_storage.one_record_per_object {
                // The target keeps the last record of the object only.
                continue;
            }
            let blob_data = match &record.data {
                Some(data) if last && is_blob_record(data) => data.clone(),
                _ => {
                    replays.push(Replay::Restore(record));
                    continue;
                }
            };
            match self.download_blob(record.oid, record.tid).await? {
                Some(blob) => {
                    let serial = self.current_serial(record.oid).await?;
                    replays.push(Replay::Blob {
                        oid: record.oid,
                        serial,
                        data: blob_data,
                        blob,
                    });
                }
                None => {
                    missing += 1;
                    replays.push(Replay::Restore(record));
                }
            }
        }
        Ok((replays, missing))
    }

    /// The blob of `(oid, serial)` from the source, spooled; `None` if the
    /// source has no blob file for it (it answered an error reply): the
    /// record is then copied as it is, without a blob, as on the source.
    async fn download_blob(&self, oid: Oid, serial: Tid) -> Result<Option<SpooledBlob>, RecoveryError> {
        let spool_error = |e: std::io::Error| {
            self.fail(
                Side::Target,
                format!("cannot spool a blob in {}: {e}", self.spool_dir.display()),
            )
        };
        let mut spool = SpooledBlob::create(&self.spool_dir).map_err(spool_error)?;
        let (answer, written) = self
            .receive_blob(Side::Source, oid, serial, |chunk| spool.append(chunk))
            .await;
        match answer {
            Ok(()) => {
                written.map_err(spool_error)?;
                Ok(Some(spool))
            }
            Err(MemberError::Application { error, .. }) => {
                warn!(self.log, "recovery: the source has no blob file for a blob record; copying the record without it, as the source has it";
                    "oid" => oid.to_hex(), "tid" => serial.to_hex(), "error" => %error);
                Ok(None)
            }
            Err(e) => Err(self.fail_call(Side::Source, "sendBlob", e)),
        }
    }

    /// Streams the blob of `(oid, serial)` from one side's member through
    /// `each_chunk` as it arrives (the first error stops the writing, not
    /// the stream): the member's answer and the chunks' outcome.
    async fn receive_blob(
        &self,
        side: Side,
        oid: Oid,
        serial: Tid,
        mut each_chunk: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> (Result<(), MemberError>, std::io::Result<()>) {
        let (sink, mut chunks) = mpsc::unbounded_channel::<Bytes>();
        let download = self.addr(side).send(SendBlob { oid, serial, sink });
        let write = async {
            // Ends when the member drops the sink (answered, failed, or
            // the message was dropped).
            let mut result = Ok(());
            while let Some(chunk) = chunks.recv().await {
                if result.is_ok() {
                    result = each_chunk(&chunk);
                }
            }
            result
        };
        let (answer, written) = futures::join!(download, write);
        let answer = answer.unwrap_or_else(|e| {
            Err(MemberError::Unavailable {
                member: self.name(side).to_string(),
                reason: format!("member actor gone: {e}"),
            })
        });
        (answer, written)
    }

    /// The size and SHA-256 of the blob of `(oid, serial)` as `side`'s
    /// member serves it, hashed as it streams (nothing is kept).
    pub async fn blob_digest(&self, side: Side, oid: Oid, serial: Tid) -> Result<BlobDigest, MemberError> {
        let mut hasher = BlobHasher::default();
        let (answer, _) = self
            .receive_blob(side, oid, serial, |chunk| {
                hasher.update(chunk);
                Ok(())
            })
            .await;
        answer.map(|()| hasher.digest())
    }

    /// Checks that the target serves each blob of a transaction just
    /// committed exactly as the source sent it (size and SHA-256, hashed as
    /// it streams). A mismatch fails the copy: the target holds a wrong
    /// blob file for a committed revision, which resuming cannot mend.
    async fn verify_blobs(&self, tid: Tid, blobs: &[(Oid, BlobDigest)]) -> Result<(), RecoveryError> {
        for (oid, sent) in blobs {
            let stored = self.blob_digest(Side::Target, *oid, tid).await.map_err(|e| {
                self.fail_call(
                    Side::Target,
                    &format!("reading back the blob of {oid} at {tid}"),
                    e,
                )
            })?;
            if stored != *sent {
                return Err(self.fail(
                    Side::Target,
                    format!(
                        "the blob of {oid} at {tid} reads back as {stored} but the source sent {sent}: the \
                         target holds a wrong blob file and needs a full copy"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The tid of the target's current record of `oid` (what a store must
    /// name as its serial), zero if the target never had the oid. From
    /// `history`, which (unlike `loadBefore`) also sees a record that
    /// undid the object's creation. RelStorage's `history` leaves out the
    /// transactions a pack went through, so an object it lists nothing for
    /// is asked with `loadBefore`.
    async fn current_serial(&self, oid: Oid) -> Result<Tid, RecoveryError> {
        let request = Request::History(History { oid, size: Some(1) });
        match self.call_raw(Side::Target, request).await {
            Ok(Reply::History(entries)) => match entries.first().and_then(|e| e.dict_get("tid")) {
                Some(tid) => tid
                    .as_bytes()
                    .and_then(|b| Tid::from_slice(b))
                    .ok_or_else(|| self.fail(Side::Target, format!("history of {oid}: bad tid {tid:?}"))),
                None => self.loaded_serial(oid).await,
            },
            Ok(other) => Err(self.unexpected(Side::Target, "history", &other)),
            Err(MemberError::Application { error, .. }) if error.is_pos_key_error() => Ok(Tid::ZERO),
            Err(e) => Err(self.fail_call(Side::Target, &format!("history of {oid}"), e)),
        }
    }

    /// The serial of the target's current revision of `oid` by
    /// `loadBefore`; zero if it has none.
    async fn loaded_serial(&self, oid: Oid) -> Result<Tid, RecoveryError> {
        let request = Request::LoadBefore(LoadBefore {
            oid,
            // Nothing on the target is after its last copied transaction.
            tid: Tid::from_u64(self.target_last.as_u64().saturating_add(1)),
        });
        match self.call_raw(Side::Target, request).await {
            Ok(Reply::LoadBefore(Some(current))) => Ok(current.start),
            Ok(Reply::LoadBefore(None)) => Ok(Tid::ZERO),
            Ok(other) => Err(self.unexpected(Side::Target, "loadBefore", &other)),
            Err(MemberError::Application { error, .. }) if error.is_pos_key_error() => Ok(Tid::ZERO),
            Err(e) => Err(self.fail_call(Side::Target, &format!("loadBefore of {oid}"), e)),
        }
    }

    /// Writes one transaction to the target and commits it with its tid;
    /// aborts it on any failure.
    /// The caller records the new `target_last` (a read-ahead on the
    /// source runs meanwhile, so this borrows the copier shared).
    async fn replay(&self, txn: TxnRecord, replays: Vec<Replay>) -> Result<Copied, RecoveryError> {
        let id = TxnId::from_i64(NEXT_TXN_ID.fetch_add(1, Ordering::Relaxed));
        let tid = txn.tid;
        let blobs: Vec<(Oid, BlobDigest)> = replays
            .iter()
            .filter_map(|replay| match replay {
                Replay::Blob { oid, blob, .. } => Some((*oid, blob.digest())),
                Replay::Restore(_) => None,
            })
            .collect();
        let result = self.write_and_vote(&id, txn, replays).await;
        let copied = match result {
            Ok(copied) => copied,
            Err(e) => {
                self.abort(&id).await;
                return Err(e);
            }
        };
        match self
            .call(Side::Target, Request::TpcFinish(TpcFinish { id: id.clone() }))
            .await
        {
            Ok(Reply::TpcFinish(Some(committed))) if committed == tid => {
                self.verify_blobs(tid, &blobs).await?;
                Ok(copied)
            }
            Ok(Reply::TpcFinish(Some(committed))) => {
                // Committed under another tid: the target diverged now.
                Err(self.fail(
                    Side::Target,
                    format!("tpc_finish committed transaction {tid} as {committed}: the member diverged and needs a full copy"),
                ))
            }
            Ok(other) => {
                self.abort(&id).await;
                Err(self.unexpected(Side::Target, "tpc_finish", &other))
            }
            // Whether it committed is unknown: a new recovery starts from
            // the target's lastTransaction, which tells.
            Err(e) => Err(e),
        }
    }

    async fn write_and_vote(
        &self,
        id: &TxnId,
        txn: TxnRecord,
        replays: Vec<Replay>,
    ) -> Result<Copied, RecoveryError> {
        let tid = txn.tid;
        let mut out = Batch::default();
        out.push(Request::TpcBegin(TpcBegin {
            id: id.clone(),
            user: txn.user,
            description: txn.description,
            extension: txn.extension,
            tid: Some(tid),
            status: txn.status,
        }));
        let mut bytes = 0u64;
        let mut uploads = Vec::new();
        for replay in replays {
            match replay {
                Replay::Restore(record) => {
                    bytes += record.data.as_ref().map_or(0, |d| d.len() as u64);
                    out.push(Request::Restorea(Restorea {
                        oid: record.oid,
                        serial: record.tid,
                        data: record.data,
                        prev_txn: record.data_txn,
                        id: id.clone(),
                    }));
                }
                blob @ Replay::Blob { .. } => uploads.push(blob),
            }
        }
        let blobs = uploads.len() as u64;
        bytes += self.upload_blobs(id, uploads, &mut out).await?;
        let vote = Request::Vote(Vote { id: id.clone() });
        let answer = self
            .target
            .send(CallAfter {
                oneways: Oneways::Requests(out.take()),
                call: vote,
            })
            .await;
        match answer {
            Ok(Ok(Reply::Vote(result))) if result.is_empty() => Ok(Copied {
                tid,
                bytes,
                blobs,
                missing_blobs: 0,
            }),
            Ok(Ok(other)) => Err(self.fail(
                Side::Target,
                format!("vote of transaction {tid} answered {other:?}: a restore must not resolve conflicts"),
            )),
            Ok(Err(e)) => Err(self.fail_call(Side::Target, &format!("vote of transaction {tid}"), e)),
            Err(e) => Err(self.fail(Side::Target, format!("member actor gone: {e}"))),
        }
    }

    /// Batches the blob uploads of a transaction (each `storeBlobStart`,
    /// its chunks read back from the spool, `storeBlobEnd`), flushing the
    /// batch whenever it reaches the upload window; answers the bytes
    /// uploaded. The server stores uploads last, popping them in reverse
    /// order, so they go in reverse.
    async fn upload_blobs(
        &self,
        id: &TxnId,
        uploads: Vec<Replay>,
        out: &mut Batch,
    ) -> Result<u64, RecoveryError> {
        let mut bytes = 0u64;
        for upload in uploads.into_iter().rev() {
            let Replay::Blob {
                oid,
                serial,
                data,
                blob,
            } = upload
            else {
                continue;
            };
            bytes += data.len() as u64 + blob.size();
            out.push(Request::StoreBlobStart);
            let read_error =
                |e: std::io::Error| self.fail(Side::Target, format!("reading a spooled blob back: {e}"));
            let mut uploaded = BlobHasher::default();
            for chunk in blob.chunks().map_err(read_error)? {
                let chunk = chunk.map_err(read_error)?;
                uploaded.update(&chunk);
                out.push(Request::StoreBlobChunk(StoreBlobChunk { chunk }));
                if out.bytes >= UPLOAD_WINDOW {
                    self.flush(out).await?;
                }
            }
            // Checked before the vote: a spool that reads back otherwise
            // than it was written never reaches a committed transaction.
            if uploaded.digest() != blob.digest() {
                return Err(self.fail(
                    Side::Target,
                    format!(
                        "the spooled blob of {oid} read back as {} but the source sent {}",
                        uploaded.digest(),
                        blob.digest()
                    ),
                ));
            }
            out.push(Request::StoreBlobEnd(StoreBlobEnd {
                oid,
                serial,
                data,
                id: id.clone(),
            }));
        }
        Ok(bytes)
    }

    /// Sends what is batched, then waits for a `ping`: the member has read
    /// everything before it.
    async fn flush(&self, out: &mut Batch) -> Result<(), RecoveryError> {
        let answer = self
            .target
            .send(CallAfter {
                oneways: Oneways::Requests(out.take()),
                call: Request::Ping,
            })
            .await;
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.fail_call(Side::Target, "uploading a blob", e)),
            Err(e) => Err(self.fail(Side::Target, format!("member actor gone: {e}"))),
        }
    }

    /// Best effort: the transaction may not have begun, the connection may
    /// be gone (the server then aborted it itself).
    async fn abort(&self, id: &TxnId) {
        let _ = self
            .call_raw(Side::Target, Request::TpcAbort(TpcAbort { id: id.clone() }))
            .await;
    }

    /// Copies the tail: every transaction after the target's last up to
    /// and including `until`, or, given a `deadline`, those done by then
    /// (at least one, so every call makes progress). Returns what was
    /// copied and whether the target reached `until`.
    pub async fn copy_until(
        &mut self,
        until: Tid,
        deadline: Option<Instant>,
    ) -> Result<(Vec<Copied>, bool), RecoveryError> {
        self.close_stream();
        let mut copied = Vec::new();
        let mut complete = true;
        while self.target_last < until {
            if !copied.is_empty() && deadline.is_some_and(|d| Instant::now() >= d) {
                complete = false;
                break;
            }
            match self.copy_next(Some(until)).await? {
                Some(c) => copied.push(c),
                None => break,
            }
        }
        // A next slice opens a new pass up to its own `until`.
        self.close_stream();
        if complete && self.target_last != until {
            return Err(self.fail(
                Side::Source,
                format!(
                    "its history ends at {} before the requested {until}",
                    self.target_last
                ),
            ));
        }
        Ok((copied, complete))
    }
}

/// Asynchronous requests waiting to be sent to the target.
#[derive(Default)]
struct Batch {
    requests: Vec<Request>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, request: Request) {
        self.bytes += match &request {
            Request::StoreBlobChunk(c) => c.chunk.len(),
            Request::Restorea(r) => r.data.as_ref().map_or(0, |d| d.len()),
            _ => 0,
        };
        self.requests.push(request);
    }

    fn take(&mut self) -> Vec<Request> {
        self.bytes = 0;
        std::mem::take(&mut self.requests)
    }
}
