//! Tests of the runzeo test harness itself (`tests/common/runzeo.rs`):
//! real ZEO servers from the project venv, probed with `ruok` and used by a
//! real Python ZODB client.

mod common;

use std::time::{Duration, Instant};

use common::runzeo::{
    files_under, process_exists, protocol_announcement, run_python, run_python_ok, ruok, RunZeo,
    RunZeoOptions, NO_TRANSACTION,
};

const PY_TIMEOUT: Duration = Duration::from_secs(60);

/// Commit one transaction with a real ZODB client; prints the new tid as hex.
/// argv: ADDR [BLOB]; with BLOB, also stores a blob (client blob cache in a
/// fresh tempdir).
const COMMIT: &str = r#"
import sys, tempfile
import ZEO
from ZODB.blob import Blob
host, port = sys.argv[1].rsplit(":", 1)
with_blob = len(sys.argv) > 2
kw = {"wait_timeout": 30}
if with_blob:
    kw["blob_dir"] = tempfile.mkdtemp(prefix="zeo-client-blobs-")
db = ZEO.DB((host, int(port)), **kw)
try:
    with db.transaction() as conn:
        root = conn.root()
        root["counter"] = root.get("counter", 0) + 1
        if with_blob:
            blob = Blob()
            with blob.open("w") as f:
                f.write(b"blob data from the harness test")
            root["blob"] = blob
    print(db.lastTransaction().hex())
finally:
    db.close()
"#;

fn commit(server: &RunZeo, with_blob: bool) -> String {
    let addr = server.addr().to_string();
    let mut args = vec![addr.as_str()];
    if with_blob {
        args.push("blob");
    }
    let out = run_python_ok(COMMIT, &args, PY_TIMEOUT);
    let tid = out.trim().to_string();
    assert_eq!(tid.len(), 16, "unexpected tid {tid:?}");
    tid
}

#[test]
fn starts_and_answers_ruok_with_no_transaction() {
    let server = RunZeo::start(RunZeoOptions::new());
    assert_eq!(server.addr().ip().to_string(), "127.0.0.1");
    assert_ne!(server.port(), 0);
    assert!(process_exists(server.pid()));
    let status = server.ruok();
    let storage = &status["1"];
    assert!(storage.is_object(), "no storage \"1\" in {status}");
    assert_eq!(storage["last-transaction"], NO_TRANSACTION, "{status}");
    assert_eq!(server.last_transaction(), NO_TRANSACTION);
    assert_eq!(
        protocol_announcement(server.addr(), Duration::from_secs(5)).unwrap(),
        b"Z5"
    );
    assert!(server.storage_path().exists());
    assert!(server.blob_dir().is_none());
    assert!(server.log().contains("listening on"), "{}", server.log());
}

#[test]
fn msgpack_server_announces_m5_and_has_blob_dir() {
    let server = RunZeo::start(RunZeoOptions::new().msgpack().blobs());
    assert_eq!(
        protocol_announcement(server.addr(), Duration::from_secs(5)).unwrap(),
        b"M5"
    );
    assert_eq!(server.last_transaction(), NO_TRANSACTION);
    assert!(server.blob_dir().unwrap().is_dir());
}

#[test]
fn two_servers_side_by_side() {
    let a = RunZeo::start(RunZeoOptions::new());
    let b = RunZeo::start(RunZeoOptions::new());
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());
    assert_ne!(a.data_dir(), b.data_dir());
    let tid = commit(&a, false);
    assert_eq!(a.last_transaction(), tid);
    assert_eq!(b.last_transaction(), NO_TRANSACTION);
}

#[test]
fn kill9_makes_ruok_fail_promptly() {
    let mut server = RunZeo::start(RunZeoOptions::new());
    let pid = server.pid();
    server.ruok();
    server.kill9();
    assert!(!server.is_running());
    assert!(!process_exists(pid), "pid {pid} still exists after kill9");
    let started = Instant::now();
    let err = server.try_ruok().expect_err("ruok answered after kill9");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "ruok took {:?} to fail ({err})",
        started.elapsed()
    );
}

#[test]
fn restart_keeps_port_and_storage() {
    let mut server = RunZeo::start(RunZeoOptions::new().blobs());
    let port = server.port();
    let first_pid = server.pid();
    let tid = commit(&server, true);
    server.kill9();
    assert!(server.try_ruok().is_err());
    server.restart();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), first_pid);
    assert_eq!(server.starts(), 2);
    assert_eq!(server.last_transaction(), tid, "storage lost on restart");
    // Still writable after the restart, and restart also works while running.
    let tid2 = commit(&server, false);
    assert!(tid2 > tid);
    server.restart();
    assert_eq!(server.last_transaction(), tid2);
    assert_eq!(server.starts(), 3);
}

#[test]
fn python_client_commit_advances_last_transaction() {
    let server = RunZeo::start(RunZeoOptions::new());
    assert_eq!(server.last_transaction(), NO_TRANSACTION);
    let tid = commit(&server, false);
    assert_ne!(tid, NO_TRANSACTION);
    assert_eq!(server.last_transaction(), tid);
    let tid2 = commit(&server, false);
    assert!(tid2 > tid, "{tid2} not after {tid}");
    let status = server.ruok();
    assert_eq!(status["1"]["last-transaction"], tid2.as_str());
    assert!(status["1"]["commits"].as_u64().unwrap() >= 2, "{status}");
}

#[test]
fn python_client_commits_blob_over_msgpack() {
    let server = RunZeo::start(RunZeoOptions::new().msgpack().blobs());
    let tid = commit(&server, true);
    assert_eq!(server.last_transaction(), tid);
    let blobs = files_under(&server.blob_dir().unwrap(), ".blob");
    assert_eq!(blobs.len(), 1, "blob files: {blobs:?}");
}

#[test]
fn read_only_server_and_custom_storage_name() {
    let server = RunZeo::start(RunZeoOptions::new().read_only().storage_name("main"));
    let status = server.ruok();
    assert_eq!(status["main"]["last-transaction"], NO_TRANSACTION, "{status}");
    assert!(status.get("1").is_none());
    let script = r#"
import sys, ZEO
host, port = sys.argv[1].rsplit(":", 1)
s = ZEO.client((host, int(port)), storage="main", read_only=True, wait_timeout=30)
try:
    print(s.isReadOnly(), s.lastTransaction().hex())
finally:
    s.close()
"#;
    let out = run_python_ok(script, &[&server.addr().to_string()], PY_TIMEOUT);
    assert_eq!(out.trim(), format!("True {NO_TRANSACTION}"));
}

#[test]
fn sigstop_freezes_and_sigcont_resumes() {
    let server = RunZeo::start(RunZeoOptions::new());
    server.sigstop();
    let started = Instant::now();
    assert!(
        server.try_ruok_timeout(Duration::from_millis(300)).is_err(),
        "a stopped server answered ruok"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    server.sigcont();
    assert_eq!(server.last_transaction(), NO_TRANSACTION);
}

#[test]
fn drop_kills_and_reaps_the_process() {
    let server = RunZeo::start(RunZeoOptions::new());
    let pid = server.pid();
    let addr = server.addr();
    let dir = server.data_dir().to_path_buf();
    assert!(process_exists(pid));
    drop(server);
    assert!(!process_exists(pid), "runzeo pid {pid} outlived its RunZeo");
    assert!(ruok(addr, Duration::from_secs(2)).is_err());
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn drop_of_a_stopped_server_kills_it() {
    let server = RunZeo::start(RunZeoOptions::new());
    let pid = server.pid();
    server.sigstop();
    drop(server);
    assert!(
        !process_exists(pid),
        "stopped runzeo pid {pid} outlived its RunZeo"
    );
}

#[test]
fn drop_during_a_panic_kills_the_process() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let server = RunZeo::start(RunZeoOptions::new());
        tx.send(server.pid()).unwrap();
        panic!("deliberate panic with a running server");
    })
    .join();
    assert!(result.is_err(), "the thread should have panicked");
    let pid = rx.recv().unwrap();
    assert!(!process_exists(pid), "runzeo pid {pid} outlived a panicking test");
}

#[test]
fn fixed_port_in_use_is_reported() {
    let server = RunZeo::start(RunZeoOptions::new());
    let options = RunZeoOptions {
        startup_timeout: Duration::from_secs(20),
        ..RunZeoOptions::new().port(server.port())
    };
    let err = RunZeo::try_start(options).expect_err("second server on a taken port");
    assert!(err.addr_in_use, "{err}");
    // The first server is unaffected.
    assert_eq!(server.last_transaction(), NO_TRANSACTION);
    // run_python reports failures instead of panicking.
    let out = run_python("import sys; sys.exit(3)", &[], PY_TIMEOUT);
    assert_eq!(out.status.code(), Some(3));
}
