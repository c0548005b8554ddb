//! The RAID invariants of the transaction path (`docs/invariants.md`), each
//! checked against real members through zeoraid.

mod common;

use common::array::Array;
use common::records::ROOT_RECORD;
use common::runzeo::python;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use zeo::exceptions::ZeoError;
use zeo::methods::{NewOids, Request, TpcBegin, TxnId};
use zeo::reply::Reply;
use zeo::types::{Oid, Tid, P64};
use zeo::Value;

fn new_oids(client: &mut common::rawclient::RawClient) -> Vec<Oid> {
    match client.call(Request::NewOids(NewOids { n: None })) {
        Ok(Reply::NewOids(oids)) => oids,
        other => panic!("new_oids: {other:?}"),
    }
}

/// `docs/invariants.md#tid-order`: zeoraid chooses the tids, strictly increasing, and every member
/// commits each transaction with exactly that tid.
#[test]
fn every_member_commits_the_tid_zeoraid_chose_and_tids_increase() {
    let array = Array::start(3);
    let mut client = array.client();
    let oids = new_oids(&mut client);
    let mut previous = P64::ZERO;
    for (i, oid) in oids.iter().take(5).enumerate() {
        let tid = client.commit(&[(*oid, Tid::ZERO, ROOT_RECORD)]);
        assert!(tid > previous, "commit {i}: tid {tid} not after {previous}");
        previous = tid;
        for m in 0..3 {
            let mut member = array.member_client(m);
            assert_eq!(member.last_transaction(), tid, "member {m} after commit {i}");
        }
    }
    assert_eq!(client.last_transaction(), previous);
}

/// `docs/invariants.md#tid-order`: a client-chosen tid (restores) that is not after the array's last
/// tid is refused before any member commits out of order.
#[test]
fn a_tid_lower_than_the_last_is_refused() {
    let array = Array::start(2);
    let mut client = array.client();
    let oids = new_oids(&mut client);
    let last = client.commit(&[(oids[0], Tid::ZERO, ROOT_RECORD)]);
    for asked in [P64::from_u64(last.as_u64() - 1000), last] {
        let txn = TxnId::from_i64(77);
        client.oneway(Request::TpcBegin(TpcBegin {
            id: txn.clone(),
            user: Value::bytes(&b"/ restore"[..]),
            description: Value::bytes(&b"out of order"[..]),
            extension: Value::Dict(vec![]),
            tid: Some(asked),
            status: " ".into(),
        }));
        client.store(&txn, oids[1], Tid::ZERO, ROOT_RECORD);
        match client.vote(&txn) {
            Err(ZeoError::StorageTransactionError(args)) => {
                assert!(
                    format!("{args:?}").contains("not after the last committed or committing tid"),
                    "{args:?}"
                )
            }
            other => panic!("a tid {asked} <= last {last} was accepted: {other:?}"),
        }
        client
            .call(Request::TpcAbort(zeo::methods::TpcAbort { id: txn }))
            .expect("tpc_abort");
        for m in 0..2 {
            assert_eq!(
                array.member_client(m).last_transaction(),
                last,
                "member {m} unchanged"
            );
        }
    }
}

/// `docs/invariants.md#unique-oids`: oids are never handed out twice, whichever client asks.
#[test]
fn oids_are_unique_across_clients() {
    let array = Array::start(2);
    let mut seen = HashSet::new();
    let mut clients: Vec<_> = (0..3).map(|_| array.client()).collect();
    for round in 0..4 {
        for (c, client) in clients.iter_mut().enumerate() {
            for oid in new_oids(client) {
                assert!(
                    seen.insert(oid),
                    "oid {oid} handed out twice (client {c}, round {round})"
                );
            }
        }
    }
    assert_eq!(seen.len(), 4 * 3 * 100);
}

/// A ZODB client with a persistent cache stays connected across a zeoraid
/// restart: it reconnects by itself, verifies its cache (getInvalidations,
/// answered by a member), and sees a commit another client made meanwhile.
#[test]
fn a_client_with_a_persistent_cache_keeps_working_across_a_zeoraid_restart() {
    let mut array = Array::start(2);
    let cache = tempfile::tempdir().unwrap();
    // The long-lived client reads commands from stdin and prints results.
    let script = r#"
import sys, time, ZEO, transaction
addr = ('127.0.0.1', int(sys.argv[1]))
db = ZEO.DB(addr, client='c1', var=sys.argv[2], wait_timeout=30)
conn = db.open()
def say(*a):
    print(*a, flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == 'set':
        conn.root()['x'] = int(cmd[1]); transaction.commit(); say('ok')
    elif cmd[0] == 'get':
        # Reconnecting (and verifying the cache) happens in the background:
        # wait for it, bounded, before looking.
        for _ in range(600):
            if db.storage.is_connected():
                break
            time.sleep(0.05)
        transaction.begin(); say('x', conn.root()['x'])
    elif cmd[0] == 'quit':
        db.close(); say('bye'); break
"#;
    let mut child = Command::new(python())
        .args([
            "-c",
            script,
            &array.addr().port().to_string(),
            cache.path().to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut ask = |cmd: &str| {
        writeln!(stdin, "{cmd}").unwrap();
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no answer to {cmd}"))
    };
    assert_eq!(ask("set 1"), "ok");
    assert_eq!(ask("get"), "x 1");
    array.restart_zeoraid();
    // Another client commits while the first one reconnects.
    let other = r#"
import sys, ZEO, transaction
db = ZEO.DB(('127.0.0.1', int(sys.argv[1])), wait_timeout=30)
conn = db.open(); conn.root()['x'] = 2; transaction.commit(); db.close()
"#;
    common::runzeo::run_python_ok(
        other,
        &[&array.addr().port().to_string()],
        Duration::from_secs(60),
    );
    // The first client reconnects on its own (bounded by its wait_timeout)
    // and sees the new value, not its cached one.
    assert_eq!(ask("get"), "x 2");
    assert_eq!(ask("set 3"), "ok");
    assert_eq!(ask("quit"), "bye");
    let _ = child.wait();
    let mut check = array.client();
    let root = check.load(P64::ZERO).expect("root").expect("a revision");
    assert_eq!(root.start, check.last_transaction());
}

/// With `msgpack = true` zeoraid announces M5; ClientStorage follows it,
/// and so does a raw client; their commits reach every member.
#[test]
fn a_msgpack_front_serves_m5_clients() {
    let mut options = common::array::ArrayOptions::new(2);
    options.top_level.push("msgpack = true".into());
    let array = Array::start_with(options);
    let mut raw = common::rawclient::RawClient::connect_with(array.addr(), true);
    assert_eq!(raw.encoding, zeo::encoding::Encoding::Msgpack);
    raw.register("1");
    let oid = new_oids(&mut raw)[0];
    let tid = raw.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    let loaded = raw.load(oid).expect("load").expect("a revision");
    assert_eq!((loaded.start, &loaded.data[..]), (tid, ROOT_RECORD));
    let script = "import sys, ZEO, transaction\n\
        db = ZEO.DB(('127.0.0.1', int(sys.argv[1])), wait_timeout=30)\n\
        conn = db.open(); conn.root()['m5'] = 'yes'; transaction.commit()\n\
        print(db.storage._server.client.protocol.protocol_version.decode())\n\
        db.close()\n";
    let out = common::runzeo::run_python_ok(
        script,
        &[&array.addr().port().to_string()],
        Duration::from_secs(60),
    );
    assert_eq!(out.trim(), "M5");
    for m in 0..2 {
        let mut member = array.member_client(m);
        assert!(
            member.last_transaction() > tid,
            "member {m} has the ZODB client's commit"
        );
    }
}

/// Startup reconciliation: a member whose last tid is behind the others'
/// (it missed commits while degraded, then zeoraid restarted) starts
/// degraded and is never written on top of; clients never see a lower
/// last tid than the array's.
#[test]
fn a_member_behind_the_others_starts_degraded_and_gets_no_writes() {
    let mut array = Array::start(2);
    let mut client = array.client();
    let oid = new_oids(&mut client)[0];
    let t1 = client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    // zeo2 dies and misses the next commit (it is degraded for it).
    array.members_mut()[1].kill9();
    let t2 = client.commit(&[(oid, t1, ROOT_RECORD)]);
    drop(client);
    array.kill_zeoraid();
    array.members_mut()[1].restart();
    array.restart_zeoraid();

    let status = array.raid_status();
    assert_eq!(status["status"], "degraded", "{status}");
    let zeo2 = &status["members"][1];
    assert_eq!(zeo2["state"], "degraded", "{status}");
    assert!(
        zeo2["reason"].as_str().unwrap().contains("missing transactions"),
        "{status}"
    );
    let mut client = array.client();
    assert_eq!(client.last_transaction(), t2);
    let t3 = client.commit(&[(oid, t2, ROOT_RECORD)]);
    assert_eq!(array.member_client(0).last_transaction(), t3);
    assert_eq!(
        array.member_client(1).last_transaction(),
        t1,
        "nothing written on top of the gap"
    );
    let loaded = client.load(oid).expect("load").expect("a revision");
    assert_eq!(loaded.start, t3, "reads come from the member that is up to date");
}

/// A member that comes back with less than the array committed (here: its
/// storage replaced by an empty one on the same port) is degraded, not
/// trusted, and never read from.
#[test]
fn a_member_that_reconnects_behind_the_array_is_degraded() {
    let mut array = Array::start(2);
    let mut client = array.client();
    let oid = new_oids(&mut client)[0];
    let t1 = client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    // Replace zeo2's storage: stop it, remove its data, start it again.
    let member = &mut array.members_mut()[1];
    member.kill9();
    let storage = member.storage_path();
    let stem = storage.file_name().unwrap().to_string_lossy().into_owned();
    let mut removed = 0;
    for entry in std::fs::read_dir(member.data_dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&stem) {
            std::fs::remove_file(entry.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed >= 1, "no storage file {stem} found");
    member.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        let status = array.raid_status();
        // Degraded when it went away, then found behind when it came back.
        if status["members"][1]["kind"] == "behind" {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "zeo2 not degraded as behind: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status["members"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("behind the array"),
        "{status}"
    );
    for _ in 0..4 {
        let loaded = client.load(oid).expect("load").expect("a revision");
        assert_eq!(
            loaded.start, t1,
            "every read comes from the member that has the data"
        );
    }
}
