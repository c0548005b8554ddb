//! The member actor against a real ZEO 6.2 server: every server method the
//! RAID needs, error replies, callbacks, and the connection lifecycle under
//! real faults (kill -9, SIGSTOP, restart on the same port).

mod common;

use actix::prelude::*;
use bytes::Bytes;
use common::records::ROOT_RECORD;
use common::runzeo::{run_python_ok, RunZeo, RunZeoOptions};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeo::callbacks::Callback;
use zeo::exceptions::ZeoError;
use zeo::methods::Request;
use zeo::methods::*;
use zeo::reply::{Reply, VoteResult};
use zeo::types::{Oid, Tid, P64};
use zeo::Value;
use zeoraid_actors::member::{
    Call, CallOn, ConnState, CurrentConnection, Deadlines, MemberActor, MemberAddress, MemberError,
    MemberEvent, MemberSettings, MemberSnapshot, Oneway, OnewayOn, ReconnectNow, RestartPolicy, SendBlob,
    Snapshot, Subscribe,
};

fn settings(server: std::net::SocketAddr) -> MemberSettings {
    let mut s = MemberSettings::new("zeo-test", MemberAddress::Tcp(server.to_string()), "1");
    s.deadlines = Deadlines {
        connect: Duration::from_secs(2),
        call: Duration::from_secs(5),
        commit: Duration::from_secs(5),
        long: Duration::from_secs(30),
    };
    s.restart = RestartPolicy {
        max_restarts: 3,
        restart_window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        jitter: 0.1,
        park_probe_interval: Duration::from_millis(300),
    };
    s
}

fn start(settings: MemberSettings) -> Addr<MemberActor> {
    MemberActor::new(settings, slog::Logger::root(slog::Discard, slog::o!())).start()
}

/// Polls the member's snapshot until `done` holds; bounded by `within`.
async fn wait_until(
    member: &Addr<MemberActor>,
    within: Duration,
    what: &str,
    done: impl Fn(&MemberSnapshot) -> bool,
) -> MemberSnapshot {
    let deadline = Instant::now() + within;
    loop {
        let snap = member.send(Snapshot).await.expect("member answers");
        if done(&snap) {
            return snap;
        }
        assert!(
            Instant::now() < deadline,
            "member not {what} within {within:?}: {snap:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ready(member: &Addr<MemberActor>) -> MemberSnapshot {
    wait_until(member, Duration::from_secs(15), "ready", |s| {
        s.state == ConnState::Ready
    })
    .await
}

async fn call(member: &Addr<MemberActor>, request: Request) -> Result<Reply, MemberError> {
    member.send(Call(request)).await.expect("member answers")
}

async fn oneway(member: &Addr<MemberActor>, request: Request) {
    member
        .send(Oneway(request))
        .await
        .expect("member answers")
        .expect("oneway written")
}

/// Collects everything a member reports, as the controller will.
struct Collector(Arc<Mutex<Vec<MemberEvent>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<MemberEvent> for Collector {
    type Result = ();
    fn handle(&mut self, event: MemberEvent, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(event);
    }
}

fn subscribe(member: &Addr<MemberActor>) -> Arc<Mutex<Vec<MemberEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector(events.clone()).start();
    member.do_send(Subscribe(collector.recipient()));
    events
}

fn txn(n: i64) -> TxnId {
    TxnId::from_i64(n)
}

fn begin(id: i64, tid: Option<Tid>, status: &str) -> Request {
    Request::TpcBegin(TpcBegin {
        id: txn(id),
        user: Value::bytes(&b"/ member-test"[..]),
        description: Value::bytes(format!("txn {id}").into_bytes()),
        extension: Value::Dict(vec![]),
        tid,
        status: status.into(),
    })
}

fn store(oid: Oid, serial: Tid, id: i64) -> Request {
    Request::Storea(Storea {
        oid,
        serial,
        data: Bytes::from_static(ROOT_RECORD),
        id: txn(id),
    })
}

/// vote + tpc_finish; returns the committed tid.
async fn finish(member: &Addr<MemberActor>, id: i64) -> (VoteResult, Tid) {
    let vote = match call(member, Request::Vote(Vote { id: txn(id) })).await {
        Ok(Reply::Vote(v)) => v,
        other => panic!("vote {id}: {other:?}"),
    };
    match call(member, Request::TpcFinish(TpcFinish { id: txn(id) })).await {
        Ok(Reply::TpcFinish(Some(tid))) => (vote, tid),
        other => panic!("tpc_finish {id}: {other:?}"),
    }
}

async fn new_oids(member: &Addr<MemberActor>) -> Vec<Oid> {
    match call(member, Request::NewOids(NewOids { n: None })).await {
        Ok(Reply::NewOids(oids)) => oids,
        other => panic!("new_oids: {other:?}"),
    }
}

#[actix_rt::test]
async fn session_commit_reads_and_blobs_against_real_zeo() {
    let server = RunZeo::start(RunZeoOptions::new().blobs());
    let member = start(settings(server.addr()));
    let snap = ready(&member).await;
    assert_eq!(snap.protocol.as_deref(), Some("Z5"));
    assert_eq!(snap.last_tid.as_deref(), Some("0000000000000000"));

    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
    match call(&member, Request::ServerStatus).await.unwrap() {
        Reply::ServerStatus(status) => assert!(status.dict_get("last-transaction").is_some()),
        other => panic!("server_status: {other:?}"),
    }
    assert_eq!(
        call(&member, Request::LastTransaction).await.unwrap(),
        Reply::LastTransaction(P64::ZERO)
    );
    match call(&member, Request::GetInfo).await.unwrap() {
        Reply::GetInfo(info) => assert!(format!("{info:?}").contains("IBlobStorage")),
        other => panic!("get_info: {other:?}"),
    }

    // A commit with two objects and a blob.
    let oids = new_oids(&member).await;
    assert_eq!(oids.len(), 100);
    let (obj, blob) = (oids[1], oids[2]);
    let blob_data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    oneway(&member, begin(1, None, " ")).await;
    oneway(&member, store(P64::ZERO, P64::ZERO, 1)).await;
    oneway(&member, store(obj, P64::ZERO, 1)).await;
    oneway(&member, Request::StoreBlobStart).await;
    for chunk in blob_data.chunks(59_000) {
        let chunk = Bytes::copy_from_slice(chunk);
        oneway(&member, Request::StoreBlobChunk(StoreBlobChunk { chunk })).await;
    }
    let end = StoreBlobEnd {
        oid: blob,
        serial: P64::ZERO,
        data: Bytes::from_static(ROOT_RECORD),
        id: txn(1),
    };
    oneway(&member, Request::StoreBlobEnd(end)).await;
    let (vote, tid1) = finish(&member, 1).await;
    assert_eq!(vote, VoteResult::Oids(vec![]));
    assert!(tid1 > P64::ZERO);
    let snap = member.send(Snapshot).await.unwrap();
    assert_eq!(
        snap.last_tid,
        Some(tid1.to_hex()),
        "tpc_finish updates the last tid"
    );

    // Reads.
    match call(
        &member,
        Request::LoadBefore(LoadBefore {
            oid: obj,
            tid: P64::MAX_TID,
        }),
    )
    .await
    .unwrap()
    {
        Reply::LoadBefore(Some(r)) => {
            assert_eq!((&r.data[..], r.start, r.end), (ROOT_RECORD, tid1, None));
        }
        other => panic!("loadBefore: {other:?}"),
    }
    let before_tid1 = LoadBefore { oid: obj, tid: tid1 };
    assert_eq!(
        call(&member, Request::LoadBefore(before_tid1)).await.unwrap(),
        Reply::LoadBefore(None)
    );
    let serial = LoadSerial {
        oid: obj,
        serial: tid1,
    };
    assert_eq!(
        call(&member, Request::LoadSerial(serial)).await.unwrap(),
        Reply::LoadSerial(Bytes::from_static(ROOT_RECORD))
    );
    match call(
        &member,
        Request::History(History {
            oid: obj,
            size: Some(10),
        }),
    )
    .await
    .unwrap()
    {
        Reply::History(entries) => {
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].dict_get("tid"), Some(&Value::bytes(tid1.0.to_vec())));
        }
        other => panic!("history: {other:?}"),
    }
    match call(&member, Request::RecordIternext(RecordIternext { next: None }))
        .await
        .unwrap()
    {
        Reply::RecordIternext(r) => assert!(format!("{r:?}").contains(&format!("{:?}", P64::ZERO))),
        other => panic!("record_iternext: {other:?}"),
    }

    // Blob download through the receiveBlob* callbacks.
    let (sink, mut chunks) = tokio::sync::mpsc::unbounded_channel();
    member
        .send(SendBlob {
            oid: blob,
            serial: tid1,
            sink,
        })
        .await
        .unwrap()
        .expect("sendBlob");
    let mut received = Vec::new();
    while let Ok(chunk) = chunks.try_recv() {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received.len(), blob_data.len());
    assert!(received == blob_data, "blob content differs");

    // storeBlobShared: the blob file is put into the member's own blob
    // directory (a shared blob dir), the call names it.
    let shared = oids[3];
    let oid_dir = run_python_ok(
        "import sys, ZODB.blob; print(ZODB.blob.BushyLayout().oid_to_path(bytes.fromhex(sys.argv[1])))",
        &[&shared.to_hex()],
        Duration::from_secs(20),
    );
    let dir = server.blob_dir().unwrap().join(oid_dir.trim());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("upload.tmp-"), b"shared blob").unwrap();
    oneway(&member, begin(2, None, " ")).await;
    let shared_store = StoreBlobShared {
        oid: shared,
        serial: P64::ZERO,
        data: Bytes::from_static(ROOT_RECORD),
        filename: "upload.tmp-".into(),
        id: txn(2),
    };
    oneway(&member, Request::StoreBlobShared(shared_store)).await;
    let (_, tid2) = finish(&member, 2).await;
    let (sink, mut chunks) = tokio::sync::mpsc::unbounded_channel();
    member
        .send(SendBlob {
            oid: shared,
            serial: tid2,
            sink,
        })
        .await
        .unwrap()
        .expect("sendBlob");
    assert_eq!(chunks.try_recv().unwrap(), Bytes::from_static(b"shared blob"));
}

#[actix_rt::test]
async fn undo_restore_iteration_and_pack_against_real_zeo() {
    let server = RunZeo::start(RunZeoOptions::new());
    let member = start(settings(server.addr()));
    ready(&member).await;
    let events = subscribe(&member);
    let oids = new_oids(&member).await;
    let (a, b) = (oids[1], oids[2]);

    oneway(&member, begin(1, None, " ")).await;
    oneway(&member, store(P64::ZERO, P64::ZERO, 1)).await;
    oneway(&member, store(a, P64::ZERO, 1)).await;
    let (_, tid1) = finish(&member, 1).await;

    // readCurrent check and a store.
    oneway(&member, begin(2, None, " ")).await;
    let check = CheckCurrentSerialInTransaction {
        oid: a,
        serial: tid1,
        id: txn(2),
    };
    oneway(&member, Request::CheckCurrentSerialInTransaction(check)).await;
    oneway(&member, store(b, P64::ZERO, 2)).await;
    let (_, tid2) = finish(&member, 2).await;
    match call(&member, Request::GetInvalidations(GetInvalidations { tid: tid1 }))
        .await
        .unwrap()
    {
        Reply::GetInvalidations(Some((latest, changed))) => {
            assert_eq!(latest, tid2);
            assert_eq!(changed, vec![b]);
        }
        other => panic!("getInvalidations: {other:?}"),
    }

    // Delete b, then undo the delete.
    oneway(&member, begin(3, None, " ")).await;
    oneway(
        &member,
        Request::DeleteObject(DeleteObject {
            oid: b,
            serial: tid2,
            id: txn(3),
        }),
    )
    .await;
    let (_, tid3) = finish(&member, 3).await;
    let gone = LoadBefore {
        oid: b,
        tid: P64::MAX_TID,
    };
    assert!(matches!(
        call(&member, Request::LoadBefore(gone)).await,
        Err(MemberError::Application { error: ZeoError::POSKeyError(oid), .. }) if oid == b
    ));
    let log = match call(&member, Request::UndoLog(UndoLog { first: 0, last: 20 }))
        .await
        .unwrap()
    {
        Reply::UndoLog(log) => log,
        other => panic!("undoLog: {other:?}"),
    };
    assert_eq!(log.len(), 3);
    let undo_id = log[0].dict_get("id").cloned().expect("undo id");
    match call(
        &member,
        Request::UndoInfo(UndoInfo {
            first: 0,
            last: 20,
            spec: Value::None,
        }),
    )
    .await
    .unwrap()
    {
        Reply::UndoInfo(info) => assert_eq!(info.len(), 3),
        other => panic!("undoInfo: {other:?}"),
    }
    oneway(&member, begin(4, None, " ")).await;
    oneway(
        &member,
        Request::Undoa(Undoa {
            trans_id: undo_id,
            id: txn(4),
        }),
    )
    .await;
    let (vote, tid4) = finish(&member, 4).await;
    assert_eq!(vote, VoteResult::Oids(vec![b]), "vote lists the undone oid");
    assert!(tid4 > tid3);

    // A replay with a tid chosen by the caller (what recovery does).
    let chosen = P64::from_u64(tid4.as_u64() + 1_000_000);
    oneway(&member, begin(5, Some(chosen), "p")).await;
    let restore = Restorea {
        oid: a,
        serial: chosen,
        data: Some(Bytes::from_static(ROOT_RECORD)),
        prev_txn: None,
        id: txn(5),
    };
    oneway(&member, Request::Restorea(restore)).await;
    let (_, tid5) = finish(&member, 5).await;
    assert_eq!(tid5, chosen, "tpc_finish returns the restored tid");

    // A transaction aborted after its vote leaves nothing behind.
    oneway(&member, begin(6, None, " ")).await;
    oneway(&member, store(oids[3], P64::ZERO, 6)).await;
    assert!(matches!(
        call(&member, Request::Vote(Vote { id: txn(6) })).await,
        Ok(Reply::Vote(_))
    ));
    assert_eq!(
        call(&member, Request::TpcAbort(TpcAbort { id: txn(6) }))
            .await
            .unwrap(),
        Reply::None("tpc_abort")
    );

    // Iterate all transactions and the records of the restored one.
    let iid = match call(
        &member,
        Request::IteratorStart(IteratorStart {
            start: None,
            stop: None,
        }),
    )
    .await
    {
        Ok(Reply::IteratorStart(iid)) => iid,
        other => panic!("iterator_start: {other:?}"),
    };
    let mut tids = Vec::new();
    while let Reply::IteratorNext(Some(t)) = call(&member, Request::IteratorNext(IteratorNext { iid }))
        .await
        .unwrap()
    {
        tids.push((t.tid, t.status.clone()));
        if t.tid == chosen {
            let start = IteratorRecordStart {
                txn_iid: iid,
                tid: t.tid,
            };
            let riid = match call(&member, Request::IteratorRecordStart(start)).await.unwrap() {
                Reply::IteratorRecordStart(riid) => riid,
                other => panic!("iterator_record_start: {other:?}"),
            };
            let next = IteratorRecordNext { riid };
            match call(&member, Request::IteratorRecordNext(next.clone()))
                .await
                .unwrap()
            {
                Reply::IteratorRecordNext(Some(rec)) => assert_eq!((rec.oid, rec.tid), (a, chosen)),
                other => panic!("iterator_record_next: {other:?}"),
            }
            assert_eq!(
                call(&member, Request::IteratorRecordNext(next)).await.unwrap(),
                Reply::IteratorRecordNext(None)
            );
        }
    }
    let want: Vec<(Tid, String)> = [(tid1, " "), (tid2, " "), (tid3, " "), (tid4, " "), (chosen, "p")]
        .map(|(t, s)| (t, s.into()))
        .into();
    assert_eq!(tids, want);
    oneway(&member, Request::IteratorGc(IteratorGc { iids: vec![iid] })).await;

    // pack(wait=1): the reply comes after an `info` callback with the new size.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let pack = Pack {
        t: now,
        wait: Value::Int(1),
    };
    assert_eq!(
        call(&member, Request::Pack(pack)).await.unwrap(),
        Reply::None("pack")
    );
    let infos = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e,
                MemberEvent::Callback {
                    callback: Callback::Info(_),
                    ..
                }
            )
        })
        .count();
    assert!(infos >= 1, "pack's info callback reached the subscriber");
    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
}

#[actix_rt::test]
async fn error_replies_are_typed_and_leave_the_connection_usable() {
    let server = RunZeo::start(RunZeoOptions::new());
    let member = start(settings(server.addr()));
    ready(&member).await;
    let oids = new_oids(&member).await;
    oneway(&member, begin(1, None, " ")).await;
    oneway(&member, store(P64::ZERO, P64::ZERO, 1)).await;
    let (_, tid1) = finish(&member, 1).await;

    // A stale serial: ConflictError with the oid and both serials.
    oneway(&member, begin(2, None, " ")).await;
    oneway(&member, store(P64::ZERO, P64::ZERO, 2)).await;
    match call(&member, Request::Vote(Vote { id: txn(2) })).await {
        Err(MemberError::Application {
            error: ZeoError::ConflictError(c),
            ..
        }) => {
            assert_eq!(c.oid, Some(P64::ZERO));
            assert_eq!(c.serials, Some((tid1, P64::ZERO)));
        }
        other => panic!("expected ConflictError, got {other:?}"),
    }
    call(&member, Request::TpcAbort(TpcAbort { id: txn(2) }))
        .await
        .unwrap();

    // An unknown oid: POSKeyError.
    match call(
        &member,
        Request::LoadBefore(LoadBefore {
            oid: oids[50],
            tid: P64::MAX_TID,
        }),
    )
    .await
    {
        Err(
            e @ MemberError::Application {
                error: ZeoError::POSKeyError(_),
                ..
            },
        ) => {
            assert!(
                !e.is_member_failure(),
                "an error reply is an answer, not a member failure"
            );
        }
        other => panic!("expected POSKeyError, got {other:?}"),
    }
    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
    let snap = member.send(Snapshot).await.unwrap();
    assert_eq!(
        (snap.state, snap.total_restarts, snap.in_flight),
        (ConnState::Ready, 0, 0)
    );

    // Calls of the wrong kind are refused locally, not sent.
    assert!(matches!(
        member.send(Call(store(P64::ZERO, tid1, 3))).await.unwrap(),
        Err(MemberError::Protocol { .. })
    ));
    assert!(matches!(
        member.send(Oneway(Request::Ping)).await.unwrap(),
        Err(MemberError::Protocol { .. })
    ));
}

#[actix_rt::test]
async fn invalidations_from_another_client_reach_the_subscriber_in_order() {
    let server = RunZeo::start(RunZeoOptions::new());
    let member = start(settings(server.addr()));
    ready(&member).await;
    let events = subscribe(&member);
    let script = "import sys, ZEO, transaction\n\
        db = ZEO.DB(('127.0.0.1', int(sys.argv[1])))\n\
        tids = []\n\
        for i in range(3):\n\
        \x20   conn = db.open()\n\
        \x20   conn.root()['n'] = i\n\
        \x20   transaction.commit()\n\
        \x20   tids.append(conn._storage.lastTransaction().hex())\n\
        \x20   conn.close()\n\
        print(' '.join(tids))\n\
        db.close()\n";
    let port = server.port().to_string();
    let out = tokio::task::spawn_blocking(move || run_python_ok(script, &[&port], Duration::from_secs(30)))
        .await
        .unwrap();
    let python_tids: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    // A ping round trip after the Python client finished: every callback the
    // server sent before our ping reply has been handled by then.
    call(&member, Request::Ping).await.unwrap();
    let seen: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            MemberEvent::Callback {
                callback: Callback::InvalidateTransaction { tid, .. },
                ..
            } => Some(tid.to_hex()),
            _ => None,
        })
        .collect();
    // The first Python commit creates the root (its own transaction), then the three.
    assert!(
        seen.ends_with(&python_tids),
        "seen {seen:?}, committed {python_tids:?}"
    );
    let snap = member.send(Snapshot).await.unwrap();
    assert_eq!(
        snap.last_tid.as_ref(),
        python_tids.last(),
        "invalidations advance the last tid"
    );
}

#[actix_rt::test]
async fn kill9_fails_calls_in_flight_and_a_restart_on_the_same_port_reconnects() {
    let mut server = RunZeo::start(RunZeoOptions::new());
    let member = start(settings(server.addr()));
    ready(&member).await;
    let events = subscribe(&member);

    // Freeze the server so a call is certainly in flight, then kill it.
    server.sigstop();
    let in_flight = member.send(Call(Request::Ping));
    let in_flight = tokio::spawn(async move { (Instant::now(), in_flight.await.unwrap()) });
    wait_until(&member, Duration::from_secs(5), "in flight", |s| s.in_flight == 1).await;
    let killed_at = Instant::now();
    server.kill9();
    let (_, result) = in_flight.await.unwrap();
    let failed_after = killed_at.elapsed();
    assert!(
        matches!(&result, Err(MemberError::Unavailable { .. })),
        "the call fails with the typed error: {result:?}"
    );
    assert!(
        failed_after < Duration::from_secs(2),
        "promptly, not at the deadline: {failed_after:?}"
    );
    let snap = wait_until(&member, Duration::from_secs(5), "down", |s| {
        s.state != ConnState::Ready
    })
    .await;
    assert!(snap.last_error.is_some());

    server.restart();
    let snap = ready(&member).await;
    assert!(snap.total_restarts >= 1);
    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
    let states: Vec<ConnState> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            MemberEvent::State { state, .. } => Some(*state),
            _ => None,
        })
        .collect();
    assert_eq!(states.first(), Some(&ConnState::BackingOff), "{states:?}");
    assert_eq!(states.last(), Some(&ConnState::Ready), "{states:?}");
}

#[actix_rt::test]
async fn beyond_the_restart_intensity_the_member_parks_and_a_probe_restores_it() {
    let mut server = RunZeo::start(RunZeoOptions::new());
    let member = start(settings(server.addr()));
    ready(&member).await;
    server.kill9();
    // max_restarts = 3 within 60 s, backoff 50..200 ms: parked within ~1 s.
    let snap = wait_until(&member, Duration::from_secs(10), "parked", |s| {
        s.state == ConnState::Parked
    })
    .await;
    assert_eq!(snap.restarts_in_window, 4, "{snap:?}");
    // While parked, failed probes (each updates last_error) do not count as restarts.
    let total = snap.total_restarts;
    let mut probe_failed_at = snap.last_error.as_ref().map(|e| e.at);
    for _ in 0..2 {
        let before = probe_failed_at;
        let snap = wait_until(&member, Duration::from_secs(5), "probed", |s| {
            s.last_error.as_ref().map(|e| e.at) != before
        })
        .await;
        assert_eq!((snap.state, snap.total_restarts), (ConnState::Parked, total));
        probe_failed_at = snap.last_error.as_ref().map(|e| e.at);
    }
    // The member answers while parked: calls fail at once with the state.
    match call(&member, Request::Ping).await {
        Err(MemberError::Unavailable { reason, .. }) => assert!(reason.contains("parked"), "{reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    server.restart();
    ready(&member).await;
    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
}

/// A member whose server was killed and restarted while it waits `wait_state`
/// (backing off or parked) for far longer than the test: `ReconnectNow`
/// connects it at once.
async fn reconnect_now_cuts_the_wait_short(restart: RestartPolicy, wait_state: ConnState) {
    let mut server = RunZeo::start(RunZeoOptions::new());
    let mut s = settings(server.addr());
    s.restart = restart;
    let member = start(s);
    ready(&member).await;
    server.kill9();
    let snap = wait_until(&member, Duration::from_secs(10), "waiting", |s| {
        s.state == wait_state
    })
    .await;
    let next_attempt = Duration::from_millis(snap.next_attempt_in_ms.expect("an attempt is scheduled"));
    assert!(next_attempt > Duration::from_secs(60), "{snap:?}");
    server.restart();
    let asked = Instant::now();
    member.do_send(ReconnectNow {
        reason: "test".into(),
    });
    let snap = ready(&member).await;
    assert!(asked.elapsed() < Duration::from_secs(15), "{snap:?}");
    assert_eq!(snap.next_attempt_in_ms, None, "{snap:?}");
    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
    // Connected, it ignores the message.
    member
        .send(ReconnectNow {
            reason: "test".into(),
        })
        .await
        .expect("member answers");
    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
    assert_eq!(
        member.send(Snapshot).await.unwrap().total_restarts,
        snap.total_restarts
    );
}

#[actix_rt::test]
async fn reconnect_now_skips_the_backoff() {
    let restart = RestartPolicy {
        backoff_initial: Duration::from_secs(600),
        backoff_max: Duration::from_secs(600),
        jitter: 0.0,
        ..settings("127.0.0.1:1".parse().unwrap()).restart
    };
    reconnect_now_cuts_the_wait_short(restart, ConnState::BackingOff).await;
}

#[actix_rt::test]
async fn reconnect_now_probes_a_parked_member_at_once() {
    let restart = RestartPolicy {
        max_restarts: 0,
        park_probe_interval: Duration::from_secs(600),
        ..settings("127.0.0.1:1".parse().unwrap()).restart
    };
    reconnect_now_cuts_the_wait_short(restart, ConnState::Parked).await;
}

#[actix_rt::test]
async fn sigstop_fires_the_call_deadline_and_sigcont_recovers() {
    let server = RunZeo::start(RunZeoOptions::new());
    let mut s = settings(server.addr());
    s.deadlines.call = Duration::from_millis(800);
    s.deadlines.connect = Duration::from_millis(800);
    let member = start(s);
    ready(&member).await;
    server.sigstop();
    let started = Instant::now();
    let result = call(&member, Request::Ping).await;
    let took = started.elapsed();
    match result {
        Err(MemberError::Timeout { after, method, .. }) => {
            assert_eq!((after, method.as_str()), (Duration::from_millis(800), "ping"))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let snap = wait_until(&member, Duration::from_secs(5), "failing", |s| {
        s.state != ConnState::Ready
    })
    .await;
    assert!(snap.last_error.unwrap().message.contains("did not answer"));
    server.sigcont();
    ready(&member).await;
    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
}

#[actix_rt::test]
async fn a_msgpack_member_is_spoken_to_in_m5_and_msgpack_can_be_refused() {
    let server = RunZeo::start(RunZeoOptions::new().msgpack());
    let member = start(settings(server.addr()));
    assert_eq!(ready(&member).await.protocol.as_deref(), Some("M5"));
    let oids = new_oids(&member).await;
    oneway(&member, begin(1, None, " ")).await;
    oneway(&member, store(oids[0], P64::ZERO, 1)).await;
    let (_, tid) = finish(&member, 1).await;
    match call(
        &member,
        Request::LoadBefore(LoadBefore {
            oid: oids[0],
            tid: P64::MAX_TID,
        }),
    )
    .await
    .unwrap()
    {
        Reply::LoadBefore(Some(r)) => assert_eq!((&r.data[..], r.start), (ROOT_RECORD, tid)),
        other => panic!("loadBefore: {other:?}"),
    }
    // With msgpack not allowed the member answers Z5, which ZEO follows.
    let mut z5_only = settings(server.addr());
    z5_only.allow_msgpack = false;
    let member = start(z5_only);
    assert_eq!(ready(&member).await.protocol.as_deref(), Some("Z5"));
    assert_eq!(
        call(&member, Request::LastTransaction).await.unwrap(),
        Reply::LastTransaction(tid)
    );
}

/// A call deadline longer than an `Instant` can hold (a configured
/// timeout of 2^64 s) is "far away": the call is made and answered.
#[actix_rt::test]
async fn a_deadline_beyond_what_an_instant_holds_is_far_away() {
    let server = RunZeo::start(RunZeoOptions::new());
    let mut s = settings(server.addr());
    s.deadlines.call = Duration::MAX;
    let member = start(s);
    ready(&member).await;
    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
    let snap = member.send(Snapshot).await.expect("member answers");
    assert_eq!(snap.state, ConnState::Ready, "{snap:?}");
}

#[actix_rt::test]
async fn a_member_can_be_reached_through_a_unix_socket() {
    use std::os::unix::net::UnixListener;
    let server = RunZeo::start(RunZeoOptions::new());
    // runzeo listens on TCP in the harness; a forwarder gives it a Unix address.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeo.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let upstream = server.addr();
    std::thread::spawn(move || {
        if let Ok((unix, _)) = listener.accept() {
            let tcp = std::net::TcpStream::connect(upstream).unwrap();
            let (mut unix_r, mut tcp_w) = (unix.try_clone().unwrap(), tcp.try_clone().unwrap());
            let forward = std::thread::spawn(move || std::io::copy(&mut unix_r, &mut tcp_w));
            let (mut tcp_r, mut unix_w) = (tcp, unix);
            let _ = std::io::copy(&mut tcp_r, &mut unix_w);
            let _ = forward.join();
        }
    });
    let mut s = settings(server.addr());
    s.address = MemberAddress::Unix(path);
    let member = start(s);
    ready(&member).await;
    assert_eq!(call(&member, Request::Ping).await.unwrap(), Reply::None("ping"));
}

mod injected_faults {
    //! Faults a real server cannot produce, from `common::faults::FakeServer`.

    use super::*;
    use common::faults::{Behavior, FakeServer};

    /// The member keeps failing against `behavior`, reconnecting each time
    /// (never panicking, always answering), and records `expected` as its last error.
    async fn keeps_reconnecting(behavior: Behavior, expected: &str) {
        let fake = FakeServer::start(behavior);
        let member = start(settings(fake.addr()));
        let snap = wait_until(&member, Duration::from_secs(10), "reconnecting", |s| {
            s.total_restarts >= 2
        })
        .await;
        assert_ne!(snap.state, ConnState::Ready);
        let error = snap.last_error.expect("an error is recorded").message;
        assert!(
            error.contains(expected),
            "last error {error:?} should mention {expected:?}"
        );
        assert!(fake.connections() >= 2, "the member reconnected");
        assert!(matches!(
            call(&member, Request::Ping).await,
            Err(MemberError::Unavailable { .. })
        ));
    }

    #[actix_rt::test]
    async fn a_server_that_sends_garbage_is_a_protocol_error_and_the_member_reconnects() {
        keeps_reconnecting(
            Behavior::GarbageAfterHandshake,
            "unknown or unsupported pickle opcode",
        )
        .await;
    }

    #[actix_rt::test]
    async fn a_zeo4_announcement_is_refused() {
        keeps_reconnecting(Behavior::BadAnnouncement, "handshake").await;
    }

    #[actix_rt::test]
    async fn a_lying_frame_header_is_refused_without_allocating_it() {
        keeps_reconnecting(Behavior::HugeFrameHeader, "exceeds the maximum").await;
    }

    #[actix_rt::test]
    async fn a_server_that_closes_after_the_handshake_is_retried() {
        keeps_reconnecting(Behavior::CloseAfterHandshake, "closed").await;
    }

    #[actix_rt::test]
    async fn a_silent_server_fails_the_connect_deadline() {
        let fake = FakeServer::start(Behavior::Silent);
        let mut s = settings(fake.addr());
        s.deadlines.connect = Duration::from_millis(300);
        let member = start(s);
        let snap = wait_until(&member, Duration::from_secs(10), "retrying", |s| {
            s.total_restarts >= 2
        })
        .await;
        assert!(snap
            .last_error
            .unwrap()
            .message
            .contains("did not complete within 300ms"));
    }

    /// No call outlives its deadline: against a server that registers the
    /// member and then never answers, every call of a burst ends within its
    /// configured deadline plus a scheduling tolerance, for several deadlines.
    #[actix_rt::test]
    async fn no_call_outlives_its_deadline() {
        let tolerance = Duration::from_millis(500);
        for deadline_ms in [100u64, 250, 400] {
            let fake = FakeServer::start(Behavior::ReplyThenStall);
            let deadline = Duration::from_millis(deadline_ms);
            let mut s = settings(fake.addr());
            s.deadlines.call = deadline;
            let member = start(s);
            ready(&member).await;
            let started = Instant::now();
            let calls: Vec<_> = (0..10)
                .map(|_| {
                    let member = member.clone();
                    tokio::spawn(async move {
                        let result = call(&member, Request::LastTransaction).await;
                        (result, Instant::now())
                    })
                })
                .collect();
            let mut timeouts = 0;
            for handle in calls {
                let (result, ended) = handle.await.unwrap();
                let took = ended - started;
                assert!(
                    took <= deadline + tolerance,
                    "a call took {took:?} with a {deadline:?} deadline"
                );
                match result {
                    Err(MemberError::Timeout { after, .. }) => {
                        assert_eq!(after, deadline);
                        timeouts += 1;
                    }
                    // The first timeout drops the connection, failing the
                    // others at once: earlier than their deadline, never later.
                    Err(MemberError::Unavailable { .. }) => {}
                    other => panic!("unexpected result {other:?}"),
                }
            }
            assert!(timeouts >= 1, "the deadline fired");
        }
    }
}

/// Calls bound to a connection run there, and are refused without being
/// sent once the member has reconnected: an iterator id of the old
/// connection may name another iterator on the new one.
#[actix_rt::test]
async fn calls_bound_to_a_replaced_connection_are_refused_unsent() {
    let mut server = RunZeo::start(RunZeoOptions::new());
    let member = start(settings(server.addr()));
    ready(&member).await;
    let oid = new_oids(&member).await[0];
    oneway(&member, begin(1, None, " ")).await;
    oneway(&member, store(oid, P64::ZERO, 1)).await;
    let (_, tid1) = finish(&member, 1).await;
    oneway(&member, begin(2, None, " ")).await;
    oneway(&member, store(oid, tid1, 2)).await;
    finish(&member, 2).await;
    let first = member.send(CurrentConnection).await.unwrap().expect("connected");
    let start = || {
        Request::IteratorStart(IteratorStart {
            start: None,
            stop: None,
        })
    };
    let on = |connection, request| CallOn { connection, request };
    let iterator_on = |connection| {
        let member = member.clone();
        async move {
            match member.send(on(connection, start())).await.unwrap() {
                Ok(Reply::IteratorStart(iid)) => iid,
                other => panic!("iterator_start: {other:?}"),
            }
        }
    };
    // Not the connection's first id: the member's own look-up at connect
    // may take that one on the next connection.
    iterator_on(first).await;
    let old_iid = iterator_on(first).await;

    server.restart();
    wait_until(&member, Duration::from_secs(15), "reconnected", |s| {
        s.total_restarts >= 1 && s.state == ConnState::Ready
    })
    .await;
    let second = member.send(CurrentConnection).await.unwrap().expect("connected");
    assert_ne!(first, second);
    // A new connection's iterator gets the id the old one had.
    let mut new_iid = iterator_on(second).await;
    for _ in 0..3 {
        if new_iid < old_iid {
            new_iid = iterator_on(second).await;
        }
    }
    assert_eq!(new_iid, old_iid);

    let next = |iid| Request::IteratorNext(IteratorNext { iid });
    let refused = member.send(on(first, next(old_iid))).await.unwrap();
    assert!(
        matches!(&refused, Err(e @ MemberError::ConnectionGone { .. }) if !e.is_member_failure()),
        "{refused:?}"
    );
    let gc = Request::IteratorGc(IteratorGc { iids: vec![old_iid] });
    let refused = member
        .send(OnewayOn {
            connection: first,
            request: gc,
        })
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(MemberError::ConnectionGone { .. })),
        "{refused:?}"
    );
    // The new iterator was neither advanced nor freed: it is at the start.
    match member.send(on(second, next(new_iid))).await.unwrap() {
        Ok(Reply::IteratorNext(Some(t))) => assert_eq!(t.tid, tid1),
        other => panic!("iterator_next: {other:?}"),
    }
    let snap = member.send(Snapshot).await.unwrap();
    assert_eq!(snap.state, ConnState::Ready);
}
