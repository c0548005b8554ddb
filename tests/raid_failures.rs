//! Failure semantics against real members: members that hold or
//! answer different data are outvoted (coop reads, votes in both cluster
//! modes), a tie is never resolved by luck, a member cut off at
//! `tpc_finish` is degraded without the commit being half there, and a
//! client never reads a transaction before it is told about it.
//!
//! Disagreement is made for real: storages written with ZODB itself that
//! differ in one record, or a direct write to one member behind zeoraid's
//! back. Network faults go through a `Relay` between zeoraid and a member.

mod common;

use bytes::Bytes;
use common::array::{Array, ArrayOptions, LOG_WAIT};
use common::rawclient::{RawClient, ReadEnd};
use common::runzeo::run_python_ok;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zeo::callbacks::Callback;
use zeo::exceptions::ZeoError;
use zeo::message::{Message, MsgId};
use zeo::methods::{LoadBefore, LoadSerial, Request, TpcFinish, TxnId};
use zeo::reply::{LoadBeforeResult, Reply, VoteResult};
use zeo::types::{Oid, Tid, P64};

/// Bound for zeoraid's status to show what a test waits for.
const STATUS_WAIT: Duration = Duration::from_secs(10);

/// A valid ZODB record that differs from the root record and from the
/// other tags' records: a `PersistentMapping` holding `{'v': <tag>}`.
fn record(tag: &str) -> Bytes {
    let mut r = b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03X\x01\x00\x00\x00vq\x04X".to_vec();
    r.extend_from_slice(&(tag.len() as u32).to_le_bytes());
    r.extend_from_slice(tag.as_bytes());
    r.extend_from_slice(b"q\x05ss.");
    Bytes::from(r)
}

fn options(members: usize, coop: bool) -> ArrayOptions {
    let mut options = ArrayOptions::new(members);
    if coop {
        options.top_level.push("cluster_mode = \"coop\"".into());
    }
    options
}

fn load_serial(client: &mut RawClient, oid: Oid, serial: Tid) -> Result<Bytes, ZeoError> {
    match client.call(Request::LoadSerial(LoadSerial { oid, serial }))? {
        Reply::LoadSerial(data) => Ok(data),
        other => panic!("loadSerial: unexpected reply {other:?}"),
    }
}

/// The current revision of `oid` on member `index`, read directly.
fn on_member(array: &Array, index: usize, oid: Oid) -> LoadBeforeResult {
    match array.member_client(index).load(oid) {
        Ok(Some(r)) => r,
        other => panic!("member {index}: load of {oid}: {other:?}"),
    }
}

/// The message of a `ZEO.Exceptions.ClientStorageError` reply; panics on
/// anything else.
fn client_storage_error<T: std::fmt::Debug>(result: Result<T, ZeoError>, what: &str) -> String {
    match result {
        Err(ZeoError::Other { class, payload }) if class == "ZEO.Exceptions.ClientStorageError" => {
            format!("{payload:?}")
        }
        other => panic!("{what}: expected a ClientStorageError, got {other:?}"),
    }
}

fn member_status(status: &Json, index: usize) -> &Json {
    &status["members"][index]
}

/// Polls zeoraid's status until `done` holds for it, at most [`STATUS_WAIT`].
fn wait_status(array: &Array, what: &str, done: impl Fn(&Json) -> bool) -> Json {
    array.wait_status(what, STATUS_WAIT, done)
}

fn assert_all_optimal(array: &Array, status: &Json) {
    assert_eq!(status["status"], "optimal", "{status}\n{}", array.context());
    for m in status["members"].as_array().expect("members") {
        assert_eq!(m["state"], "optimal", "{status}\n{}", array.context());
    }
}

// ----- coop reads ----------------------------------------------------------

/// Writes one FileStorage per `(path, tag)` with ZODB: the same two
/// transactions with the same tids everywhere (the root, then object 1),
/// object 1 holding `{'v': tag}`. Returns the tid of the second
/// transaction, the last one of every storage.
fn write_storages(storages: &[(PathBuf, &str)]) -> Tid {
    let script = r#"
import pickle, sys, time
from persistent.mapping import PersistentMapping
from persistent.TimeStamp import TimeStamp
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.utils import p64, u64, z64

def record(state):
    return pickle.dumps(PersistentMapping, 3) + pickle.dumps({'data': state}, 3)

now = time.time()
g = time.gmtime(now)
t1 = TimeStamp(*(g[:5] + (g.tm_sec + now % 1,))).raw()
t2 = p64(u64(t1) + 1000)
for arg in sys.argv[1:]:
    path, tag = arg.rsplit('=', 1)
    fs = FileStorage(path, create=True)
    for tid, stores in ((t1, [(z64, record({}))]), (t2, [(p64(1), record({'v': tag}))])):
        txn = TransactionMetaData(b'', b'written by a zeoraid test')
        fs.tpc_begin(txn, tid)
        for oid, data in stores:
            fs.store(oid, z64, data, '', txn)
        fs.tpc_vote(txn)
        fs.tpc_finish(txn)
    assert fs.lastTransaction() == t2
    fs.close()
print(t2.hex())
"#;
    let args: Vec<String> = storages
        .iter()
        .map(|(path, tag)| format!("{}={tag}", path.display()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_python_ok(script, &args, Duration::from_secs(60));
    let hex = out.trim();
    let bytes: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex tid"))
        .collect();
    P64(bytes.try_into().expect("8 bytes"))
}

/// An array in `coop` mode whose member `i` starts on a storage where
/// object 1 holds `{'v': tags[i]}`, all with the same last tid. Returns the
/// array, the temporary directory of the storage files, and that last tid.
fn coop_array_with_data(tags: &[&str]) -> (Array, tempfile::TempDir, Tid) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storages: Vec<(PathBuf, &str)> = tags
        .iter()
        .enumerate()
        .map(|(i, tag)| (dir.path().join(format!("zeo{}.fs", i + 1)), *tag))
        .collect();
    let last = write_storages(&storages);
    let mut options = options(tags.len(), true);
    options.member_storages = storages.iter().map(|(p, _)| Some(p.clone())).collect();
    let array = Array::start_with(options);
    (array, dir, last)
}

/// Coop mode: a read of a revision goes to every member and is voted. With
/// three members of which one holds different data for the same oid at
/// the same tid, the client gets the majority's data and the odd member is
/// degraded as diverged (startup could not tell: the last tids are equal),
/// and then gets no more writes.
#[test]
fn coop_read_outvotes_the_member_that_holds_different_data() {
    let (array, _storages, t) = coop_array_with_data(&["same", "same", "odd"]);
    let status = array.raid_status();
    assert_all_optimal(&array, &status);
    assert_eq!(status["cluster_mode"], "coop", "{status}");
    let x = Oid::from_u64(1);
    let majority = on_member(&array, 0, x);
    let odd = on_member(&array, 2, x);
    assert_eq!(on_member(&array, 1, x), majority);
    assert_eq!((majority.start, odd.start), (t, t), "same tid on every member");
    assert_ne!(majority.data, odd.data, "the storages were written to differ");

    let mut client = array.client();
    let loaded = client.load(x).expect("the load is answered").expect("a revision");
    assert_eq!(
        (loaded.start, &loaded.data),
        (t, &majority.data),
        "the majority's data"
    );

    let status = wait_status(&array, "zeo3 degraded", |s| {
        member_status(s, 2)["state"] == "degraded"
    });
    let zeo3 = member_status(&status, 2);
    assert_eq!(zeo3["kind"], "diverged", "{status}");
    let reason = zeo3["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("loadBefore") && reason.contains("majority"),
        "the reason names the read: {status}"
    );
    for i in [0, 1] {
        assert_eq!(member_status(&status, i)["state"], "optimal", "{status}");
    }
    assert_eq!(status["status"], "degraded", "{status}");

    // Two of three are a quorum: reads and writes go on, without zeo3.
    for _ in 0..3 {
        let again = client.load(x).expect("load").expect("a revision");
        assert_eq!(&again.data, &majority.data);
    }
    let new = record("after the vote");
    let t2 = client.commit(&[(x, t, &new)]);
    for i in [0, 1] {
        let r = on_member(&array, i, x);
        assert_eq!((r.start, &r.data), (t2, &new), "member {i} has the commit");
    }
    assert_eq!(
        on_member(&array, 2, x),
        odd,
        "nothing written on the diverged member"
    );
}

/// Coop mode with two members that disagree: no majority, so the read
/// fails with a ClientStorageError instead of guessing, and neither member
/// is degraded (which one is wrong cannot be told). Reads they agree on
/// are served.
#[test]
fn coop_read_with_two_members_that_disagree_fails_and_degrades_nobody() {
    let (array, _storages, t) = coop_array_with_data(&["mine", "yours"]);
    assert_all_optimal(&array, &array.raid_status());
    let x = Oid::from_u64(1);
    assert_ne!(on_member(&array, 0, x).data, on_member(&array, 1, x).data);
    let mut client = array.client();

    let root = client
        .load(P64::ZERO)
        .expect("the root is answered")
        .expect("a revision");
    assert_eq!(root, on_member(&array, 0, P64::ZERO), "agreed reads are served");

    let message = client_storage_error(client.load(x), "loadBefore of a disputed object");
    assert!(
        message.contains("disagree") && message.contains("no majority"),
        "{message}"
    );
    let message = client_storage_error(load_serial(&mut client, x, t), "loadSerial of a disputed object");
    assert!(
        message.contains("disagree") && message.contains("no majority"),
        "{message}"
    );
    // zeoraid's stderr is read by a thread: wait (bounded) for the line.
    array.wait_for_log(0, LOG_WAIT, "about the disagreement", |l| {
        l["msg"] == "members disagree on a read and no majority decides"
    });
    // The session survives the error and nobody was degraded.
    assert_eq!(client.last_transaction(), t);
    assert_all_optimal(&array, &array.raid_status());
}

// ----- vote disagreement ---------------------------------------------------

/// Makes member `odd` disagree on object X: X is committed through zeoraid
/// (serial `t1`), then written again directly on `odd` behind zeoraid's
/// back. Then a client of zeoraid stores X with the serial it knows (`t1`)
/// and votes: `odd` answers ConflictError, the others accept.
struct Disagreement {
    client: RawClient,
    txn: TxnId,
    x: Oid,
    t1: Tid,
    before: Bytes,
    direct: (Tid, Bytes),
    new: Bytes,
    vote: Result<VoteResult, ZeoError>,
}

fn vote_with_one_member_disagreeing(array: &Array, odd: usize) -> Disagreement {
    let mut client = array.client();
    let x = client.new_oid();
    let before = record("through zeoraid");
    let t1 = client.commit(&[(x, Tid::ZERO, &before)]);
    let direct = record("behind zeoraid's back");
    let t_direct = array.member_client(odd).commit(&[(x, t1, &direct)]);
    assert!(t_direct > t1);
    let new = record("the disputed commit");
    let txn = client.begin();
    client.store(&txn, x, t1, &new);
    let vote = client.vote(&txn);
    Disagreement {
        client,
        txn,
        x,
        t1,
        before,
        direct: (t_direct, direct),
        new,
        vote,
    }
}

/// The commit stood with the majority: the client's tid is on every member
/// but `odd`, which still has its direct write and is degraded as
/// diverged, with a reason naming the vote.
fn assert_odd_member_outvoted(array: &Array, d: &mut Disagreement, odd: usize) {
    match &d.vote {
        Ok(VoteResult::Oids(oids)) if oids.is_empty() => {}
        other => panic!(
            "the vote is the majority's acceptance, got {other:?}\n{}",
            array.context()
        ),
    }
    let tid = d
        .client
        .finish(&d.txn)
        .unwrap_or_else(|e| panic!("tpc_finish: {e:?}\n{}", array.context()));
    // Degraded before the client was acknowledged: no wait needed.
    let status = array.raid_status();
    let m = member_status(&status, odd);
    assert_eq!(m["state"], "degraded", "{status}\n{}", array.context());
    assert_eq!(m["kind"], "diverged", "{status}");
    let reason = m["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("vote") && reason.contains("Conflict"), "{status}");
    assert_eq!(status["status"], "degraded", "{status}");
    for i in 0..array.members().len() {
        let r = on_member(array, i, d.x);
        if i == odd {
            assert_eq!((r.start, &r.data), (d.direct.0, &d.direct.1), "member {i}");
        } else {
            assert_eq!(member_status(&status, i)["state"], "optimal", "{status}");
            assert_eq!((r.start, &r.data), (tid, &d.new), "member {i} has the commit");
        }
    }
    // Reads come from the majority only.
    for _ in 0..4 {
        let r = d.client.load(d.x).expect("load").expect("a revision");
        assert_eq!((r.start, &r.data), (tid, &d.new));
    }
}

/// Single mode, two members, one refuses the vote (ConflictError) where
/// the other accepts: a tie between accepting and refusing goes to
/// accepting, the commit succeeds and the refusing member is degraded.
#[test]
fn single_mode_vote_tie_goes_to_accepting_and_degrades_the_refusing_member() {
    let array = Array::start_with(options(2, false));
    let mut d = vote_with_one_member_disagreeing(&array, 1);
    assert_odd_member_outvoted(&array, &mut d, 1);
}

/// Coop mode, three members, one refuses the vote: the strict majority
/// accepts, the commit succeeds and the refusing member is degraded.
#[test]
fn coop_mode_vote_majority_commits_and_degrades_the_refusing_member() {
    let array = Array::start_with(options(3, true));
    let mut d = vote_with_one_member_disagreeing(&array, 2);
    assert_odd_member_outvoted(&array, &mut d, 2);
}

/// Coop mode, two members that disagree on a vote: no strict majority, so
/// the transaction is aborted on both and the client gets a
/// ClientStorageError; nobody is degraded and nothing of it is on either
/// member. The array goes on committing (neither member kept the aborted
/// transaction's lock).
#[test]
fn coop_mode_vote_without_majority_aborts_everywhere_and_degrades_nobody() {
    let array = Array::start_with(options(2, true));
    let mut d = vote_with_one_member_disagreeing(&array, 0);
    let message = client_storage_error(d.vote, "the vote");
    assert!(
        message.contains("disagree") && message.contains("no majority") && message.contains("aborted"),
        "{message}"
    );
    assert_all_optimal(&array, &array.raid_status());
    d.client
        .call(Request::TpcAbort(zeo::methods::TpcAbort { id: d.txn.clone() }))
        .expect("tpc_abort after a failed vote");
    let (t_direct, direct) = &d.direct;
    let r = on_member(&array, 0, d.x);
    assert_eq!(
        (r.start, &r.data),
        (*t_direct, direct),
        "zeo1 keeps its direct write only"
    );
    let r = on_member(&array, 1, d.x);
    assert_eq!((r.start, &r.data), (d.t1, &d.before), "zeo2 has nothing new");
    assert_eq!(array.member_client(1).last_transaction(), d.t1);

    // Both members take the next (undisputed) commit: the aborted
    // transaction left no lock behind on either.
    let probe = array.commit_probe();
    array.assert_on_every_member(&probe);
    assert_all_optimal(&array, &array.raid_status());
}

// ----- a member lost at tpc_finish -----------------------------------------

/// Three members, zeo2 behind a relay that cuts its link right before the
/// `tpc_finish` frame reaches it. zeo2 is degraded before the client is
/// acknowledged; the transaction is on every optimal member or on none,
/// matching the client's answer; zeo2 never got it and gets no later
/// writes.
#[test]
fn a_member_cut_off_at_tpc_finish_is_degraded_and_the_commit_is_on_every_optimal_member() {
    let mut options = options(3, false);
    options.relayed = vec![1];
    let array = Array::start_with(options);
    let before = array.commit_probe();
    array.assert_on_every_member(&before);

    array.relay(1).cut_before_frame_containing(b"tpc_finish");
    let mut client = array.client();
    let x = client.new_oid();
    let data = record("finished without zeo2");
    let txn = client.begin();
    client.store(&txn, x, Tid::ZERO, &data);
    match client.vote(&txn) {
        Ok(VoteResult::Oids(oids)) if oids.is_empty() => {}
        other => panic!("vote: {other:?}\n{}", array.context()),
    }
    let finished = client.finish(&txn);
    assert_eq!(
        array.relay(1).frames_dropped(),
        1,
        "the cut happened at tpc_finish"
    );

    // No wait: zeoraid degrades before it acknowledges.
    let status = array.raid_status();
    let zeo2 = member_status(&status, 1);
    assert_eq!(zeo2["state"], "degraded", "{status}\n{}", array.context());
    assert!(zeo2["kind"] == "failed" || zeo2["kind"] == "behind", "{status}");
    let optimal: Vec<usize> = (0..3)
        .filter(|&i| member_status(&status, i)["state"] == "optimal")
        .collect();
    assert_eq!(optimal, vec![0, 2], "{status}");
    let holders: Vec<usize> = optimal
        .iter()
        .copied()
        .filter(|&i| {
            let mut member = array.member_client(i);
            match &finished {
                Ok(tid) => load_serial(&mut member, x, *tid).is_ok_and(|d| d == data),
                Err(_) => member.load(x).is_ok_and(|r| r.is_some()),
            }
        })
        .collect();
    match &finished {
        Ok(tid) => {
            assert_eq!(holders, optimal, "acknowledged, so on every optimal member");
            for &i in &optimal {
                assert_eq!(array.member_client(i).last_transaction(), *tid);
            }
            // The transaction zeo2 missed: this one, or (once it has
            // reconnected and been found behind) its own last tid + 1.
            let first_missed = zeo2["first_missed_tid"]
                .as_str()
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| panic!("no first missed tid: {status}"));
            assert!(
                before.tid.as_u64() < first_missed && first_missed <= tid.as_u64(),
                "first missed tid {first_missed:016x} not in ({}, {tid}]: {status}",
                before.tid
            );
        }
        // Not acknowledged: the outcome is unknown to the client, but it
        // must not be half there.
        Err(e) => assert!(
            holders.is_empty() || holders == optimal,
            "not acknowledged ({e:?}) and on {holders:?} of the optimal {optimal:?}"
        ),
    }
    // zeo2 never got the transaction (its link was cut before tpc_finish).
    assert_eq!(array.member_client(1).last_transaction(), before.tid);

    // The array goes on with zeo1 and zeo3; zeo2 (reconnected through the
    // relay by now or soon) stays degraded and gets nothing.
    let after = array.commit_probe();
    for i in [0, 2] {
        let r = on_member(&array, i, after.oid);
        assert_eq!(r.start, after.tid, "member {i}");
    }
    assert_eq!(array.member_client(1).last_transaction(), before.tid);
    assert_eq!(member_status(&array.raid_status(), 1)["state"], "degraded");
}

// ----- freshness -----------------------------------------------------------

/// What [`collect`] gathered from a client's connection.
#[derive(Default)]
struct Collected {
    loads: HashMap<i64, Result<Option<LoadBeforeResult>, ZeoError>>,
    invalidations: Vec<(Tid, Vec<Oid>)>,
}

fn int_msgid(msgid: &MsgId) -> i64 {
    match &msgid.0 {
        zeo::Value::Int(i) => *i,
        other => panic!("a reply to a msgid this test did not send: {other:?}"),
    }
}

/// Reads `client`'s messages until `until` holds (replies to
/// `loadBefore`s sent with integer msgids, and invalidations), each read
/// bounded by the client's timeout.
fn collect(client: &mut RawClient, into: &mut Collected, until: impl Fn(&Collected) -> bool) {
    while !until(into) {
        match client.read_message() {
            Ok(Message::Reply { msgid, result }) => {
                let reply = match Reply::decode("loadBefore", &result) {
                    Ok(Reply::LoadBefore(r)) => Ok(r),
                    other => panic!("loadBefore reply: {other:?}"),
                };
                into.loads.insert(int_msgid(&msgid), reply);
            }
            Ok(Message::ErrorReply { msgid, error }) => {
                let error = ZeoError::from_value(&error).expect("a typed error");
                into.loads.insert(int_msgid(&msgid), Err(error));
            }
            Ok(Message::Call {
                name,
                args,
                oneway: true,
                ..
            }) => {
                // Other callbacks (`info`) do not matter here.
                let callback = Callback::decode(&name, &args).expect("a callback");
                if let Callback::InvalidateTransaction { tid, oids } = callback {
                    into.invalidations.push((tid, oids));
                }
            }
            Ok(other) => panic!("unexpected message {other:?}"),
            Err(end) => panic!("reading from zeoraid: {end:?}"),
        }
    }
}

/// Sends `loadBefore(oid, maxtid)` ("current") without waiting; returns
/// the msgid.
fn send_load(client: &mut RawClient, oid: Oid) -> i64 {
    let msgid = client.next_msgid();
    let request = Request::LoadBefore(LoadBefore {
        oid,
        tid: P64::MAX_TID,
    });
    client.send(&request.to_message(msgid.clone()));
    int_msgid(&msgid)
}

/// Two members, zeo2 behind a relay. Client A has voted a new revision of
/// X; zeo2's link stalls; A sends tpc_finish: zeo1 commits, zeo2 cannot,
/// so A is not acknowledged yet. Client B, not told about the transaction,
/// loads X "current" repeatedly, round-robin over both members: every
/// answer is the old revision, from zeo1 (which already has the new one)
/// as from zeo2. Once the relay resumes, A gets its tid, B the
/// invalidation, and from then on B reads the new revision from both.
#[test]
fn a_client_never_reads_a_transaction_before_it_is_told_about_it() {
    let mut options = options(2, false);
    options.relayed = vec![1];
    let array = Array::start_with(options);
    let mut a = array.client();
    let x = a.new_oid();
    let old = record("old");
    let t1 = a.commit(&[(x, Tid::ZERO, &old)]);
    let mut b = array.client();
    for _ in 0..2 {
        let r = b.load(x).expect("load").expect("a revision");
        assert_eq!((r.start, &r.data, r.end), (t1, &old, None));
    }

    let new = record("new");
    let txn = a.begin();
    a.store(&txn, x, t1, &new);
    match a.vote(&txn) {
        Ok(VoteResult::Oids(oids)) if oids.is_empty() => {}
        other => panic!("vote: {other:?}\n{}", array.context()),
    }
    let relay = array.relay(1);
    relay.stall();
    let finish_msgid = a.next_msgid();
    a.send(&Request::TpcFinish(TpcFinish { id: txn.clone() }).to_message(finish_msgid.clone()));

    // zeo1 commits (seen directly), zeo2 cannot: the commit is half done.
    let mut zeo1 = array.member_client(0);
    let deadline = Instant::now() + STATUS_WAIT;
    let t2 = loop {
        let last = zeo1.last_transaction();
        if last > t1 {
            break last;
        }
        assert!(
            Instant::now() < deadline,
            "zeo1 did not commit\n{}",
            array.context()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        load_serial(&mut zeo1, x, t2).expect("the new revision on zeo1"),
        new
    );

    // B's loads alternate between the members: those on zeo1 are answered
    // now, those on zeo2 wait for the relay.
    let held: Vec<i64> = (0..4).map(|_| send_load(&mut b, x)).collect();
    let mut seen = Collected::default();
    collect(&mut b, &mut seen, |c| c.loads.len() >= 2);
    b.timeout = Duration::from_millis(300);
    match b.read_message() {
        Err(ReadEnd::TimedOut) => {}
        other => panic!("only the loads on zeo1 can be answered while zeo2 is stalled: {other:?}"),
    }
    a.timeout = Duration::from_millis(300);
    match a.try_read_reply(&finish_msgid) {
        Err(ReadEnd::TimedOut) => {}
        other => panic!("tpc_finish acknowledged before zeo2 finished: {other:?}"),
    }
    assert!(
        seen.invalidations.is_empty(),
        "B told about {:?} too early",
        seen.invalidations
    );
    // Answered before B was told about t2: the old revision, and current
    // (a ZEO server does not reveal the end of a revision before it sent
    // the invalidation that ends it).
    for (msgid, load) in &seen.loads {
        match load {
            Ok(Some(r)) => assert_eq!(
                (r.start, &r.data, r.end),
                (t1, &old, None),
                "load {msgid} answered before B was told about t2"
            ),
            other => panic!("load {msgid}: {other:?}"),
        }
    }

    relay.resume();
    a.timeout = Duration::from_secs(20);
    b.timeout = Duration::from_secs(20);
    let acknowledged = match a.try_read_reply(&finish_msgid) {
        Ok(Ok(v)) => match Reply::decode("tpc_finish", &v) {
            Ok(Reply::TpcFinish(Some(tid))) => tid,
            other => panic!("tpc_finish reply: {other:?}"),
        },
        other => panic!(
            "tpc_finish after the relay resumed: {other:?}\n{}",
            array.context()
        ),
    };
    assert_eq!(acknowledged, t2);
    collect(&mut b, &mut seen, |c| {
        c.loads.len() == 4 && !c.invalidations.is_empty()
    });
    assert_eq!(
        seen.invalidations,
        vec![(t2, vec![x])],
        "B is told about the commit once"
    );
    for msgid in &held {
        match &seen.loads[msgid] {
            Ok(Some(r)) => {
                assert_eq!((r.start, &r.data), (t1, &old), "load {msgid}: the old revision");
                assert!(
                    r.end.is_none() || r.end == Some(t2),
                    "load {msgid}: end {:?}",
                    r.end
                );
            }
            other => panic!("load {msgid}: {other:?}"),
        }
    }

    // Told about t2, B now reads it from both members (round-robin).
    for _ in 0..4 {
        let r = b.load(x).expect("load").expect("a revision");
        assert_eq!((r.start, &r.data, r.end), (t2, &new, None));
    }
    assert_all_optimal(&array, &array.raid_status());
    let mut zeo2 = array.member_client(1);
    assert_eq!(zeo2.last_transaction(), t2);
}

/// A status probe (`ruok`) answers while a member hangs: the member's
/// counters are left out after a short wait instead of holding the probe
/// for a whole call deadline (60 s by default, longer than any probe's
/// patience; the harness's `ruok` gives up after 5 s).
#[test]
fn a_status_probe_answers_while_a_member_hangs() {
    let mut options = ArrayOptions::new(2);
    options.relayed = vec![1];
    let array = Array::start_with(options);
    array.relay(1).stall();
    let status = array.raid_status();
    assert_eq!(status["members"].as_array().map(Vec::len), Some(2), "{status}");
    array.relay(1).resume();
}
