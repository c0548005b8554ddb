//! The recovery actor against real ZEO 6.2 members: full and incremental
//! copies (blobs, undo, big blobs), refusal of diverged members, the final
//! step (`CopyTail`, `SyncOids`), the throttle, and a source killed in the
//! middle of a copy. Source and target are compared afterwards with their
//! own iterators, transaction by transaction and record by record.

mod common;

use actix::prelude::*;
use bytes::Bytes;
use common::runzeo::{run_python_ok, RunZeo, RunZeoOptions};
use std::num::NonZeroU64;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use zeo::methods::Request;
use zeo::methods::*;
use zeo::reply::{DataRecord, Reply, TxnRecord};
use zeo::types::{Oid, Tid, P64};
use zeo::Value;
use zeoraid_actors::member::{
    Call, ConnState, Deadlines, MemberActor, MemberAddress, MemberSettings, Oneway, RestartPolicy, SendBlob,
    Snapshot,
};
use zeoraid_actors::recovery::{
    is_blob_record, CatchUp, CopyTail, Progress, RecoveryActor, RecoveryError, RecoveryEvent,
    RecoverySettings, Stop, SyncOids, TailCopied, Throttle,
};

const WAIT: Duration = Duration::from_secs(30);

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn member(name: &str, server: &RunZeo) -> Addr<MemberActor> {
    let mut s = MemberSettings::new(name, MemberAddress::Tcp(server.addr().to_string()), "1");
    s.deadlines = Deadlines {
        connect: Duration::from_secs(2),
        call: Duration::from_secs(10),
        commit: Duration::from_secs(10),
        long: Duration::from_secs(30),
    };
    s.restart = RestartPolicy {
        max_restarts: 100,
        restart_window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        jitter: 0.1,
        park_probe_interval: Duration::from_millis(300),
    };
    MemberActor::new(s, logger()).start()
}

async fn ready(member: &Addr<MemberActor>) {
    ready_after(member, 0).await
}

async fn restarts(member: &Addr<MemberActor>) -> u64 {
    member
        .send(Snapshot)
        .await
        .expect("member answers")
        .total_restarts
}

/// Ready, on a connection made after `restarts` restarts.
async fn ready_after(member: &Addr<MemberActor>, restarts: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let snap = member.send(Snapshot).await.expect("member answers");
        if snap.state == ConnState::Ready && snap.total_restarts >= restarts {
            return;
        }
        assert!(Instant::now() < deadline, "member not ready: {snap:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn call(member: &Addr<MemberActor>, request: Request) -> Reply {
    let name = request.name().to_owned();
    match member.send(Call(request)).await.expect("member answers") {
        Ok(reply) => reply,
        Err(e) => panic!("{name}: {e}"),
    }
}

async fn last_tid(member: &Addr<MemberActor>) -> Tid {
    match call(member, Request::LastTransaction).await {
        Reply::LastTransaction(tid) => tid,
        other => panic!("lastTransaction: {other:?}"),
    }
}

/// A member's whole history, read with its own iterator.
async fn dump(member: &Addr<MemberActor>) -> Vec<(TxnRecord, Vec<DataRecord>)> {
    let Reply::IteratorStart(iid) = call(
        member,
        Request::IteratorStart(IteratorStart {
            start: None,
            stop: None,
        }),
    )
    .await
    else {
        panic!("iterator_start")
    };
    let mut history = Vec::new();
    while let Reply::IteratorNext(Some(txn)) = call(member, Request::IteratorNext(IteratorNext { iid })).await
    {
        let start = Request::IteratorRecordStart(IteratorRecordStart {
            txn_iid: iid,
            tid: txn.tid,
        });
        let Reply::IteratorRecordStart(riid) = call(member, start).await else {
            panic!("iterator_record_start")
        };
        let mut records = Vec::new();
        while let Reply::IteratorRecordNext(Some(r)) =
            call(member, Request::IteratorRecordNext(IteratorRecordNext { riid })).await
        {
            records.push(r);
        }
        history.push((txn, records));
    }
    history
}

/// Every transaction's metadata and every record equal, in order. A blob
/// record's back-pointer is the one thing a copy cannot reproduce (a blob
/// travels as a full record with its file).
fn assert_same_history(source: &[(TxnRecord, Vec<DataRecord>)], target: &[(TxnRecord, Vec<DataRecord>)]) {
    for (i, ((st, sr), (tt, tr))) in source.iter().zip(target).enumerate() {
        assert_eq!(st, tt, "transaction #{i} metadata");
        assert_eq!(
            sr.len(),
            tr.len(),
            "transaction #{i} {}: number of records",
            st.tid
        );
        for (s, t) in sr.iter().zip(tr) {
            assert_eq!(
                (s.oid, s.tid, &s.data),
                (t.oid, t.tid, &t.data),
                "transaction {}",
                st.tid
            );
            if !s.data.as_deref().is_some_and(is_blob_record) {
                assert_eq!(
                    s.data_txn, t.data_txn,
                    "transaction {} oid {}: data_txn",
                    st.tid, s.oid
                );
            }
        }
    }
    assert_eq!(source.len(), target.len(), "number of transactions");
}

async fn blob(member: &Addr<MemberActor>, oid: Oid, serial: Tid) -> Result<Vec<u8>, String> {
    let (sink, mut chunks) = mpsc::unbounded_channel::<Bytes>();
    let answer = member
        .send(SendBlob { oid, serial, sink })
        .await
        .expect("member answers");
    let mut content = Vec::new();
    while let Ok(chunk) = chunks.try_recv() {
        content.extend_from_slice(&chunk);
    }
    answer.map(|()| content).map_err(|e| e.to_string())
}

/// Every blob record's file, downloaded from both members, is the same.
/// Returns how many blobs were compared.
async fn assert_same_blobs(
    history: &[(TxnRecord, Vec<DataRecord>)],
    source: &Addr<MemberActor>,
    target: &Addr<MemberActor>,
) -> usize {
    let mut compared = 0;
    let mut seen = std::collections::HashSet::new();
    for (txn, records) in history {
        for r in records {
            if !r.data.as_deref().is_some_and(is_blob_record) || !seen.insert((r.oid, r.tid)) {
                continue;
            }
            let from_source = blob(source, r.oid, r.tid).await;
            let from_target = blob(target, r.oid, r.tid).await;
            let from_source =
                from_source.unwrap_or_else(|e| panic!("source blob {} @ {}: {e}", r.oid, txn.tid));
            assert!(
                from_target.as_ref() == Ok(&from_source),
                "blob {} @ {} differs: {} bytes on the source, target {:?}",
                r.oid,
                txn.tid,
                from_source.len(),
                from_target.map(|b| b.len())
            );
            compared += 1;
        }
    }
    compared
}

/// Commits `n` transactions through a real ZODB client (ClientStorage):
/// objects in PersistentMappings, user/description/extension metadata,
/// blobs created and rewritten every few transactions; with `extras`, a
/// blob change undone, an object creation undone, that undo undone, and a
/// 5 MB blob.
const HISTORY: &str = r#"
import sys, tempfile, ZEO, transaction, ZODB.blob
from persistent.mapping import PersistentMapping
port, start, n, blobs, extras = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1', sys.argv[5] == '1'
kw = dict(blob_dir=tempfile.mkdtemp(), shared_blob_dir=False) if blobs else {}
db = ZEO.DB(('127.0.0.1', port), **kw)
conn = db.open()
root = conn.root()

def commit(i, note):
    t = transaction.get()
    t.note(note)
    t.setUser('user%d' % (i % 3))
    t.setExtendedInfo('i', i)
    t.setExtendedInfo('tag', 'h%d' % i)
    t.commit()

def undo_last(i):
    db.undo(db.undoLog(0, 1)[0]['id'])
    commit(i, 'undo at %d' % i)

for i in range(start, start + n):
    key = 'k%d' % (i % 25)
    if key not in root:
        root[key] = PersistentMapping()
    root[key]['v%d' % i] = 'x' * (i % 50)
    if blobs and i % 20 == 0:
        root['b%d' % (i % 60)] = ZODB.blob.Blob(b'blob %d ' % i * (1 + i % 7))
    if blobs and i % 20 == 10 and 'b0' in root:
        with root['b0'].open('w') as f:
            f.write(b'rewritten %d ' % i * 1000)
    commit(i, 'txn %d \u00e9' % i)

if extras:
    i = start + n
    with root['b0'].open('w') as f:
        f.write(b'to be undone')
    commit(i, 'blob change')
    undo_last(i + 1)
    root['gone'] = PersistentMapping(x=1)
    commit(i + 2, 'creation')
    undo_last(i + 3)
    undo_last(i + 4)
    root['big'] = ZODB.blob.Blob(bytes(range(256)) * (5 * 4096 + 7))
    commit(i + 5, 'a 5 MB blob')
db.close()
"#;

fn history(server: &RunZeo, start: u32, n: u32, blobs: bool, extras: bool) {
    let args = [
        server.port().to_string(),
        start.to_string(),
        n.to_string(),
        (blobs as u8).to_string(),
        (extras as u8).to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_python_ok(HISTORY, &args, Duration::from_secs(60));
}

struct Collector(mpsc::UnboundedSender<RecoveryEvent>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<RecoveryEvent> for Collector {
    type Result = ();
    fn handle(&mut self, event: RecoveryEvent, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

struct Recovery {
    addr: Addr<RecoveryActor>,
    events: mpsc::UnboundedReceiver<RecoveryEvent>,
}

impl Recovery {
    fn start(settings: RecoverySettings) -> Recovery {
        let (tx, events) = mpsc::unbounded_channel();
        let collector = Collector(tx).start();
        let addr = RecoveryActor::new(settings, collector.recipient(), logger()).start();
        Recovery { addr, events }
    }

    /// The next event `pick` accepts; progress and verification events are
    /// skipped, any other event fails the test.
    async fn expect<T>(&mut self, what: &str, pick: impl Fn(&RecoveryEvent) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => panic!("event channel closed while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            };
            if let Some(found) = pick(&event) {
                return found;
            }
            match event {
                RecoveryEvent::Progress { .. } | RecoveryEvent::Verified { .. } => {}
                other => panic!("waiting for {what}, got {other:?}"),
            }
        }
    }

    async fn caught_up(&mut self) -> (Tid, u64) {
        self.expect("CaughtUp", |e| match e {
            RecoveryEvent::CaughtUp {
                last_copied_tid,
                copied_transactions,
                ..
            } => Some((*last_copied_tid, *copied_transactions)),
            _ => None,
        })
        .await
    }

    /// `CopyTail` answered with success.
    async fn tail(&self, until: Tid, budget: Option<Duration>) -> TailCopied {
        self.addr
            .send(CopyTail { until, budget })
            .await
            .expect("recovery actor reachable")
            .expect("tail copied")
    }

    /// The first progress report with at least `at_least` transactions copied.
    async fn copied(&mut self, at_least: u64) -> Progress {
        self.expect(&format!("{at_least} transactions copied"), |e| match e {
            RecoveryEvent::Progress { progress, .. } if progress.copied_transactions >= at_least => {
                Some(progress.clone())
            }
            _ => None,
        })
        .await
    }

    async fn verified(&mut self) -> (Tid, u64, bool) {
        self.expect("Verified", |e| match e {
            RecoveryEvent::Verified {
                target_last_tid,
                compared_transactions,
                full_copy,
                ..
            } => Some((*target_last_tid, *compared_transactions, *full_copy)),
            _ => None,
        })
        .await
    }

    async fn refused(&mut self) -> String {
        self.expect("Refused", |e| match e {
            RecoveryEvent::Refused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .await
    }

    async fn stop(self) {
        self.addr.do_send(Stop {
            reason: "test done".into(),
        });
    }
}

fn settings(target: &Addr<MemberActor>, source: &Addr<MemberActor>) -> RecoverySettings {
    let mut s = RecoverySettings::new("target", target.clone(), "source", source.clone());
    s.progress_interval = Duration::from_millis(100);
    s
}

/// A source and a target server, both with blob dirs or both without.
fn server_pair(blobs: bool) -> (RunZeo, RunZeo) {
    let options = || {
        let options = RunZeoOptions::new();
        if blobs {
            options.blobs()
        } else {
            options
        }
    };
    (RunZeo::start(options()), RunZeo::start(options()))
}

/// The member actors of a source and a target server, both ready.
async fn ready_members(
    source_server: &RunZeo,
    target_server: &RunZeo,
) -> (Addr<MemberActor>, Addr<MemberActor>) {
    let (source, target) = (member("source", source_server), member("target", target_server));
    ready(&source).await;
    ready(&target).await;
    (source, target)
}

#[actix_rt::test]
async fn full_copy_of_an_empty_member_with_blobs_and_undo() {
    let (source_server, target_server) = server_pair(true);
    history(&source_server, 0, 300, true, true);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let expected = dump(&source).await;
    assert!(expected.len() > 300, "{}", expected.len());

    let mut recovery = Recovery::start(settings(&target, &source));
    let (from, compared, full) = recovery.verified().await;
    assert_eq!((from, compared, full), (P64::ZERO, 0, true));
    let (last, copied) = recovery.caught_up().await;
    assert_eq!(copied, expected.len() as u64);
    assert_eq!(last, expected.last().unwrap().0.tid);
    let progress = recovery
        .addr
        .send(zeoraid_actors::recovery::GetStatus)
        .await
        .unwrap();
    assert_eq!(progress.copied_transactions, copied);
    assert_eq!(progress.fraction_done, 1.0);
    assert!(progress.copied_blobs > 20, "{progress:?}");
    assert!(progress.copied_bytes > 5 * 1024 * 1024, "{progress:?}");
    assert_eq!(progress.blobs_missing_on_source, 0);
    recovery.stop().await;

    assert_eq!(last_tid(&target).await, last);
    let copy = dump(&target).await;
    assert_same_history(&expected, &copy);
    // The undo of a blob change, an undone creation (no data) and the undo
    // of that undo (back-pointers) are in the history.
    let records = || expected.iter().flat_map(|(_, r)| r);
    assert!(records().any(|r| r.data.is_none()), "an undone creation");
    assert!(records().any(|r| r.data_txn.is_some() && !r.data.as_deref().is_some_and(is_blob_record)));
    assert!(records().any(|r| r.data_txn.is_some() && r.data.as_deref().is_some_and(is_blob_record)));
    let blobs = assert_same_blobs(&expected, &source, &target).await;
    assert!(blobs > 20, "{blobs} blobs compared");
}

/// A full copy's progress is measured from the first transaction copied:
/// halfway through the transactions it is about halfway done, not 99 % as
/// when it was measured from tid zero (the year 1900).
#[actix_rt::test]
async fn a_full_copy_reports_its_progress_from_the_first_transaction() {
    let (source_server, target_server) = server_pair(false);
    history(&source_server, 0, 60, false, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let total = dump(&source).await.len() as u64;
    let mut s = settings(&target, &source);
    s.throttle.max_transactions_per_second = NonZeroU64::new(40);
    let mut recovery = Recovery::start(s);
    let early = recovery.copied(1).await;
    assert!(early.copied_transactions < total / 2, "{early:?}");
    assert!(
        early.fraction_done < 0.75,
        "{} of {total} copied reported as {:.2} done",
        early.copied_transactions,
        early.fraction_done
    );
    let (_, copied) = recovery.caught_up().await;
    assert_eq!(copied, total);
    recovery.stop().await;
}

/// Clients reading a blob from the source member while the recovery
/// copies it share the source's connection with the recovery: each must
/// get its own whole stream, and so must the recovery (the target then
/// serves the same file as the source).
#[actix_rt::test]
async fn a_blob_read_by_clients_while_recovery_copies_it_is_copied_whole() {
    let (source_server, target_server) = server_pair(true);
    // Few transactions: every call of the copy waits behind the readers'
    // downloads on the shared connection.
    history(&source_server, 0, 5, true, true);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let expected = dump(&source).await;
    // The 5 MB blob: the last blob record of the history.
    let big = expected
        .iter()
        .flat_map(|(_, records)| records)
        .filter(|r| r.data.as_deref().is_some_and(is_blob_record))
        .map(|r| (r.oid, r.tid))
        .next_back()
        .expect("a blob record");
    let content = blob(&source, big.0, big.1).await.expect("the big blob");
    assert!(content.len() > 5_000_000, "{}", content.len());

    let reading = std::rc::Rc::new(std::cell::Cell::new(true));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (source, content, reading) = (source.clone(), content.clone(), reading.clone());
            actix_rt::spawn(async move {
                let mut reads = 0u32;
                while reading.get() {
                    let got = blob(&source, big.0, big.1).await.expect("a client's read");
                    assert!(
                        got == content,
                        "a client read {} of {} bytes",
                        got.len(),
                        content.len()
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut recovery = Recovery::start(settings(&target, &source));
    recovery.verified().await;
    let (last, _) = recovery.caught_up().await;
    reading.set(false);
    for reader in readers {
        assert!(reader.await.expect("reader") > 0);
    }
    recovery.stop().await;
    assert_eq!(last, expected.last().unwrap().0.tid);
    assert_same_history(&expected, &dump(&target).await);
    assert!(assert_same_blobs(&expected, &source, &target).await >= 2);
}

#[actix_rt::test]
async fn incremental_copy_copies_only_what_is_missing() {
    let (source_server, target_server) = server_pair(true);
    history(&source_server, 0, 60, true, false);
    let (source, target) = ready_members(&source_server, &target_server).await;

    // The target gets the first part (a full copy), then stops.
    let mut first = Recovery::start(settings(&target, &source));
    let (k_last, k) = first.caught_up().await;
    first.stop().await;
    assert_eq!(k, 61, "60 transactions and the root's creation");

    // The source goes on; the target is behind by 90 transactions.
    history(&source_server, 60, 90, true, false);
    let mut second = Recovery::start(settings(&target, &source));
    let (from, compared, full) = second.verified().await;
    assert_eq!((from, full), (k_last, false));
    assert!(compared >= 50, "compared {compared} transactions of the window");
    let (_, copied) = second.caught_up().await;
    assert_eq!(copied, 90, "only the missing transactions are copied");
    second.stop().await;

    let expected = dump(&source).await;
    assert_same_history(&expected, &dump(&target).await);
    assert!(assert_same_blobs(&expected, &source, &target).await > 5);
}

/// Commits one transaction with an explicit tid through a member actor.
async fn commit_raw(member: &Addr<MemberActor>, id: i64, tid: Tid, stores: &[(u64, Tid, &'static [u8])]) {
    let txn = TxnId::from_i64(id);
    let mut oneways = vec![Request::TpcBegin(TpcBegin {
        id: txn.clone(),
        user: Value::bytes(&b"raw"[..]),
        description: Value::bytes(format!("raw {id}").into_bytes()),
        extension: Value::Dict(vec![]),
        tid: Some(tid),
        status: " ".into(),
    })];
    for &(oid, serial, data) in stores {
        oneways.push(Request::Storea(Storea {
            oid: P64::from_u64(oid),
            serial,
            data: Bytes::from_static(data),
            id: txn.clone(),
        }));
    }
    for request in oneways {
        member.send(Oneway(request)).await.unwrap().unwrap();
    }
    call(member, Request::Vote(Vote { id: txn.clone() })).await;
    match call(member, Request::TpcFinish(TpcFinish { id: txn })).await {
        Reply::TpcFinish(Some(committed)) => assert_eq!(committed, tid),
        other => panic!("tpc_finish: {other:?}"),
    }
}

fn tids(n: usize) -> Vec<Tid> {
    let base = zeoraid_actors::tid::timestamp(SystemTime::now() - Duration::from_secs(60)).as_u64();
    (0..n as u64)
        .map(|i| P64::from_u64(base + (i + 1) * 1_000_000))
        .collect()
}

const A: &[u8] =
    b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x01\x00\x00\x00aq\x02K\x01s.";
const B: &[u8] =
    b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x01\x00\x00\x00bq\x02K\x02s.";
const C: &[u8] =
    b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x01\x00\x00\x00cq\x02K\x03s.";

#[actix_rt::test]
async fn diverged_members_are_refused_and_left_untouched() {
    let t = tids(4);
    let z = P64::ZERO;
    let servers: Vec<RunZeo> = (0..4).map(|_| RunZeo::start(RunZeoOptions::new())).collect();
    let members: Vec<Addr<MemberActor>> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| member(&format!("m{i}"), s))
        .collect();
    for m in &members {
        ready(m).await;
    }
    let [source, target, source2, target2] = [&members[0], &members[1], &members[2], &members[3]];

    // Same first transaction; different data at the same second tid.
    for m in [source, target] {
        commit_raw(m, 1, t[0], &[(0, z, A), (1, z, A)]).await;
    }
    commit_raw(source, 2, t[1], &[(1, t[0], B)]).await;
    commit_raw(target, 2, t[1], &[(1, t[0], C)]).await;
    let before = dump(target).await;
    let mut r = Recovery::start(settings(target, source));
    let reason = r.refused().await;
    assert!(
        reason.contains(&format!("transaction {} differs", t[1])),
        "{reason}"
    );
    assert!(
        reason.contains("oid 0x0000000000000001: data differs"),
        "{reason}"
    );
    // full = true onto a non-empty member: refused, whatever its history.
    let mut s = settings(target, source);
    s.full = true;
    let reason = Recovery::start(s).refused().await;
    assert!(reason.contains("a full copy needs an empty member"), "{reason}");
    assert_eq!(dump(target).await, before, "the target is untouched");

    // An extra transaction on the target, after the source's last.
    for m in [source2, target2] {
        commit_raw(m, 1, t[0], &[(0, z, A)]).await;
        commit_raw(m, 2, t[1], &[(0, t[0], B)]).await;
    }
    commit_raw(target2, 3, t[2], &[(0, t[1], C)]).await;
    let before = dump(target2).await;
    let reason = Recovery::start(settings(target2, source2)).refused().await;
    assert!(
        reason.contains(&format!(
            "target has transaction {} after the last transaction of source",
            t[2]
        )),
        "{reason}"
    );
    // The source goes on past it: now the source lacks the target's tid.
    commit_raw(source2, 3, t[3], &[(0, t[1], A)]).await;
    let reason = Recovery::start(settings(target2, source2)).refused().await;
    assert!(
        reason.contains(&format!("source lacks transaction {} that target has", t[2])),
        "{reason}"
    );
    assert_eq!(dump(target2).await, before, "the target is untouched");
}

#[actix_rt::test]
async fn copy_tail_after_more_commits_and_sync_oids() {
    let (source_server, target_server) = server_pair(true);
    history(&source_server, 0, 40, true, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let mut recovery = Recovery::start(settings(&target, &source));
    let (_, copied) = recovery.caught_up().await;

    // The caller finds the gap too large: CatchUp streams again.
    history(&source_server, 40, 12, true, false);
    recovery.addr.send(CatchUp).await.unwrap();
    let (caught_up_at, copied_again) = recovery.caught_up().await;
    assert_eq!(copied_again, copied + 12);
    assert_eq!(caught_up_at, last_tid(&source).await);

    // Commits after CaughtUp: the tail.
    history(&source_server, 52, 15, true, false);
    let until = last_tid(&source).await;
    assert!(until > caught_up_at);
    let tail = recovery.tail(until, None).await;
    assert_eq!((tail.transactions, tail.last_tid), (15, until));
    assert!(tail.elapsed < Duration::from_secs(10), "{tail:?}");
    assert_eq!(last_tid(&target).await, until);
    let expected = dump(&source).await;
    assert_same_history(&expected, &dump(&target).await);
    assert_same_blobs(&expected, &source, &target).await;

    // Nothing new: an empty tail. A tid before the target's last: refused.
    let again = recovery.tail(until, None).await;
    assert_eq!(again.transactions, 0);
    let early = recovery
        .addr
        .send(CopyTail {
            until: caught_up_at,
            budget: None,
        })
        .await
        .unwrap();
    assert!(matches!(early, Err(RecoveryError::InvalidState(_))), "{early:?}");

    // Oids handed out on the source (never stored) get ahead of the target.
    let mut at_least = P64::ZERO;
    for _ in 0..3 {
        if let Reply::NewOids(oids) = call(&source, Request::NewOids(NewOids { n: Some(100) })).await {
            at_least = *oids.iter().max().unwrap();
        }
    }
    let synced = recovery
        .addr
        .send(SyncOids { at_least })
        .await
        .unwrap()
        .expect("synced");
    assert!(synced >= at_least);
    let Reply::NewOids(next) = call(&target, Request::NewOids(NewOids { n: Some(1) })).await else {
        panic!("new_oids")
    };
    assert!(next[0] > at_least, "{:?} after {at_least:?}", next[0]);
    recovery.stop().await;
}

#[actix_rt::test]
async fn a_pass_that_does_not_shrink_leaves_the_rest_to_the_final_step() {
    let (source_server, target_server) = server_pair(false);
    history(&source_server, 0, 6, false, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    // The 6 commits and the database's root object.
    let first_pass = dump(&source).await.len() as u64;
    assert_eq!(first_pass, 7);
    let mut s = settings(&target, &source);
    s.throttle.max_transactions_per_second = NonZeroU64::new(2);
    s.caught_up_below = 2;
    s.progress_interval = Duration::from_millis(100);
    let mut recovery = Recovery::start(s);
    // While the first pass (7 transactions, ~3.5 s throttled) runs, 20
    // more commit: the second pass would be longer than the first.
    recovery.copied(1).await;
    history(&source_server, 6, 20, false, false);
    let (caught_up_at, copied) = recovery.caught_up().await;
    // Cut short once it had copied more than half the first pass (4 > 7/2).
    assert_eq!(copied, first_pass + 4);
    let until = last_tid(&source).await;
    assert!(caught_up_at < until);
    let tail = recovery.tail(until, None).await;
    assert_eq!((tail.transactions, tail.complete), (20 - 4, true), "{tail:?}");
    assert_same_history(&dump(&source).await, &dump(&target).await);
    recovery.stop().await;
}

#[actix_rt::test]
async fn copy_tail_in_slices_copies_at_least_one_transaction_each() {
    let (source_server, target_server) = server_pair(false);
    history(&source_server, 0, 20, false, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let mut recovery = Recovery::start(settings(&target, &source));
    let (caught_up_at, _) = recovery.caught_up().await;
    history(&source_server, 20, 5, false, false);
    let until = last_tid(&source).await;
    // A budget that is spent at once: one transaction per slice, each
    // committed on the target; only the last slice reaches `until`.
    let mut before = caught_up_at;
    for slice in 1..=5 {
        let tail = recovery.tail(until, Some(Duration::ZERO)).await;
        assert_eq!(tail.transactions, 1, "slice {slice}: {tail:?}");
        assert!(tail.last_tid > before, "slice {slice}: {tail:?}");
        assert_eq!(last_tid(&target).await, tail.last_tid, "slice {slice}");
        assert_eq!(tail.complete, slice == 5, "slice {slice}: {tail:?}");
        before = tail.last_tid;
    }
    assert_eq!(before, until);
    assert_same_history(&dump(&source).await, &dump(&target).await);
    recovery.stop().await;
}

#[actix_rt::test]
async fn copy_tail_cuts_a_throttled_stream_short() {
    let (source_server, target_server) = server_pair(false);
    history(&source_server, 0, 60, false, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let mut s = settings(&target, &source);
    s.throttle.max_transactions_per_second = NonZeroU64::new(10);
    let mut recovery = Recovery::start(s);
    recovery.copied(3).await;
    // Throttled, the rest would take ~5 s; the tail is not throttled.
    let until = last_tid(&source).await;
    let started = Instant::now();
    let tail = recovery.tail(until, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(tail.transactions >= 40, "{tail:?}");
    assert_eq!(last_tid(&target).await, until);
    assert_same_history(&dump(&source).await, &dump(&target).await);
    recovery.stop().await;
}

#[actix_rt::test]
async fn throttle_limits_transactions_per_second() {
    let (source_server, target_server) = server_pair(false);
    history(&source_server, 0, 39, false, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let mut s = settings(&target, &source);
    s.throttle = Throttle {
        max_transactions_per_second: NonZeroU64::new(20),
        max_bytes_per_second: None,
    };
    let started = Instant::now();
    let mut recovery = Recovery::start(s);
    let (_, copied) = recovery.caught_up().await;
    let took = started.elapsed();
    assert_eq!(copied, 40);
    assert!(
        took >= Duration::from_millis(1500),
        "40 transactions at 20/s took {took:?}"
    );
    recovery.stop().await;
}

#[actix_rt::test]
async fn source_killed_mid_copy_then_resumed() {
    let (mut source_server, target_server) = server_pair(false);
    history(&source_server, 0, 300, false, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let expected = dump(&source).await;

    let mut s = settings(&target, &source);
    s.throttle.max_transactions_per_second = NonZeroU64::new(100);
    let mut recovery = Recovery::start(s);
    let progress = recovery.copied(30).await;
    source_server.kill9();
    // The progress fields move: mid-copy, with a rate and an ETA.
    assert_eq!(progress.source_last_tid, expected.last().unwrap().0.tid);
    assert!(
        progress.fraction_done > 0.0 && progress.fraction_done < 1.0,
        "{progress:?}"
    );
    assert!(
        progress.rate_tps > 10.0 && progress.rate_tps < 200.0,
        "{progress:?}"
    );
    assert!(
        progress.copied_bytes > 0 && progress.eta_seconds.is_some_and(|s| s > 0.0),
        "{progress:?}"
    );
    let (reason, resume_from) = recovery
        .expect("SourceFailed", |e| match e {
            RecoveryEvent::SourceFailed {
                reason, resume_from, ..
            } => Some((reason.clone(), *resume_from)),
            _ => None,
        })
        .await;
    assert!(reason.contains("source"), "{reason}");
    // Every copied transaction is complete, none half-written.
    assert_eq!(last_tid(&target).await, resume_from);
    let partial = dump(&target).await;
    assert!(
        partial.len() >= 30 && partial.len() < expected.len(),
        "{}",
        partial.len()
    );
    assert_same_history(&expected[..partial.len()], &partial);

    // The source comes back; a new recovery resumes from the target's last tid.
    source_server.restart();
    ready(&source).await;
    let mut again = Recovery::start(settings(&target, &source));
    let (from, _, full) = again.verified().await;
    assert_eq!((from, full), (resume_from, false));
    let (_, copied) = again.caught_up().await;
    assert_eq!(copied as usize, expected.len() - partial.len());
    again.stop().await;
    assert_same_history(&expected, &dump(&target).await);
}

#[actix_rt::test]
async fn target_killed_mid_copy_then_resumed() {
    let (source_server, mut target_server) = server_pair(true);
    history(&source_server, 0, 200, true, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let expected = dump(&source).await;

    let mut s = settings(&target, &source);
    s.throttle.max_transactions_per_second = NonZeroU64::new(100);
    let mut recovery = Recovery::start(s);
    recovery.copied(30).await;
    target_server.kill9();
    let reason = recovery
        .expect("TargetFailed", |e| match e {
            RecoveryEvent::TargetFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.contains("target"), "{reason}");

    // The target comes back with whatever it had committed, complete
    // transactions only; a new recovery verifies that and resumes.
    target_server.restart();
    ready(&target).await;
    let partial = dump(&target).await;
    assert!(
        partial.len() >= 30 && partial.len() < expected.len(),
        "{}",
        partial.len()
    );
    let mut again = Recovery::start(settings(&target, &source));
    let (from, compared, full) = again.verified().await;
    assert_eq!((from, full), (partial.last().unwrap().0.tid, false));
    assert!(compared > 0);
    let (_, copied) = again.caught_up().await;
    assert_eq!(copied as usize, expected.len() - partial.len());
    again.stop().await;
    assert_same_history(&expected, &dump(&target).await);
    assert_same_blobs(&expected, &source, &target).await;
}

/// A member killed between its vote and `tpc_finish` truncates that
/// transaction when its FileStorage reopens, yet reports its tid as its
/// last (ZODB 6.4): the recovery must copy from where its history really
/// ends, not from the tid it reports.
#[actix_rt::test]
async fn member_killed_after_its_vote_is_recovered_from_where_it_really_ends() {
    let (source_server, mut target_server) = server_pair(false);
    history(&source_server, 0, 20, false, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let mut first = Recovery::start(settings(&target, &source));
    let (really_last, _) = first.caught_up().await;
    first.stop().await;

    // The array's next transaction: committed on the source, only voted on
    // the target when it dies.
    let tid = zeoraid_actors::tid::next_tid(SystemTime::now(), really_last).expect("a tid after the last");
    let oid = 0x10_0000;
    commit_raw(&source, 1, tid, &[(oid, P64::ZERO, A)]).await;
    let id = TxnId::from_i64(7);
    let begin = Request::TpcBegin(TpcBegin {
        id: id.clone(),
        user: Value::bytes(&b"raw"[..]),
        description: Value::bytes(&b"raw 1"[..]),
        extension: Value::Dict(vec![]),
        tid: Some(tid),
        status: " ".into(),
    });
    let store = Request::Storea(Storea {
        oid: P64::from_u64(oid),
        serial: P64::ZERO,
        data: Bytes::from_static(A),
        id: id.clone(),
    });
    for request in [begin, store] {
        target.send(Oneway(request)).await.unwrap().unwrap();
    }
    call(&target, Request::Vote(Vote { id })).await;
    let before = restarts(&target).await;
    target_server.kill9();
    target_server.restart();
    ready_after(&target, before + 1).await;
    assert_eq!(
        last_tid(&target).await,
        tid,
        "FileStorage reports the truncated transaction's tid"
    );
    assert_eq!(dump(&target).await.last().unwrap().0.tid, really_last);

    let mut again = Recovery::start(settings(&target, &source));
    let (from, compared, full) = again.verified().await;
    assert_eq!((from, full), (really_last, false));
    assert!(compared > 0);
    let (last, copied) = again.caught_up().await;
    assert_eq!((last, copied), (tid, 1));
    again.stop().await;
    assert_same_history(&dump(&source).await, &dump(&target).await);
}

#[actix_rt::test]
async fn stop_mid_copy_leaves_the_target_consistent() {
    let (source_server, target_server) = server_pair(false);
    history(&source_server, 0, 60, false, false);
    let (source, target) = ready_members(&source_server, &target_server).await;
    let mut s = settings(&target, &source);
    s.throttle.max_transactions_per_second = NonZeroU64::new(20);
    let mut recovery = Recovery::start(s);
    recovery.copied(3).await;
    let addr = recovery.addr.clone();
    recovery.stop().await;
    let deadline = Instant::now() + WAIT;
    while addr.connected() {
        assert!(Instant::now() < deadline, "the recovery did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stopped between transactions: nothing half-written, and a new
    // recovery on the same member connection resumes.
    let partial = dump(&target).await;
    assert_eq!(last_tid(&target).await, partial.last().unwrap().0.tid);
    let mut again = Recovery::start(settings(&target, &source));
    let (from, _, _) = again.verified().await;
    assert_eq!(from, partial.last().unwrap().0.tid);
    again.caught_up().await;
    again.stop().await;
    assert_same_history(&dump(&source).await, &dump(&target).await);
}
