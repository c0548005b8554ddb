//! What zeoraid holds in memory for large blobs. A commit: the upload is
//! spooled to disk, and at the vote each member's connection reads it back
//! from the spool one window at a time (before, the blob was read back
//! whole and encoded once per member: a blob of B bytes with 2 members
//! cost about 3 B). Downloads: each one is spooled as the member sends it
//! and goes to its client from the spool as the client reads (before, each
//! requester's copy was held in memory, twice). A transaction of many
//! records: past `[limits] transaction_memory` its records wait in a spool
//! file and go to each member from there. Real members.

mod common;

use bytes::Bytes;
use common::array::{Array, ArrayOptions};
use common::rawclient::RawClient;
use common::records::{mapping_record, ROOT_RECORD};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread;
use zeo::callbacks::Callback;
use zeo::message::Message;
use zeo::methods::{Request, SendBlob, StoreBlobChunk, StoreBlobEnd};
use zeo::reply::{Reply, VoteResult};
use zeo::types::{Oid, Tid};

/// ZEO's blob chunk size; blobs here are whole chunks.
const CHUNK: u64 = 59_000;

/// The size of a blob of at least `megabytes` MB in whole chunks.
fn blob_size(megabytes: u64) -> u64 {
    (megabytes << 20).div_ceil(CHUNK) * CHUNK
}

/// Commits one blob of [`blob_size`]`(megabytes)` bytes through zeoraid;
/// returns its oid and serial.
fn commit_blob(array: &Array, megabytes: u64) -> (Oid, Tid) {
    let mut client = RawClient::connect_registered(array.addr());
    let oid = client.new_oid();
    let txn = client.begin();
    client.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
    client.oneway(Request::StoreBlobStart);
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    for _ in 0..blob_size(megabytes) / CHUNK {
        client.oneway(Request::StoreBlobChunk(StoreBlobChunk {
            chunk: Bytes::copy_from_slice(&chunk),
        }));
    }
    client.oneway(Request::StoreBlobEnd(StoreBlobEnd {
        oid,
        serial: Tid::ZERO,
        data: Bytes::from_static(ROOT_RECORD),
        id: txn.clone(),
    }));
    let voted = client.vote(&txn);
    assert!(
        matches!(&voted, Ok(VoteResult::Oids(o)) if o.is_empty()),
        "{voted:?}"
    );
    (oid, client.finish(&txn).expect("the blob commit"))
}

/// zeoraid's peak resident set so far, in MB.
fn peak_mb(array: &Array) -> u64 {
    array.zeoraid_proc_status_kib("VmHWM").expect("zeoraid's VmHWM") / 1024
}

/// `sendBlob` by a client of its own; returns how many bytes it got.
fn download(addr: SocketAddr, oid: Oid, serial: Tid) -> u64 {
    let mut client = RawClient::connect_registered(addr);
    let answer = client.call(Request::SendBlob(SendBlob { oid, serial }));
    assert_eq!(answer, Ok(Reply::None("sendBlob")));
    client.callbacks.iter().fold(0, |n, cb| match cb {
        Callback::ReceiveBlobChunk { chunk, .. } => n + chunk.len() as u64,
        _ => n,
    })
}

#[test]
fn a_large_blob_commit_with_two_members_costs_zeoraid_a_window_not_the_blob() {
    const BLOB_MB: u64 = 96;
    let array = Array::start(2);
    let peak_before = peak_mb(&array);
    let (oid, tid) = commit_blob(&array, BLOB_MB);
    let grew = peak_mb(&array).saturating_sub(peak_before);
    assert!(
        grew < BLOB_MB / 2,
        "zeoraid's peak memory grew by {grew} MB for a {BLOB_MB} MB blob committed to 2 members\n{}",
        array.context()
    );
    for i in 0..2 {
        let mut member = array.member_client(i);
        let current = member
            .load(oid)
            .expect("load from the member")
            .expect("the blob's record");
        assert_eq!(current.start, tid, "member {}", i + 1);
    }
}

#[test]
fn clients_reading_a_large_blob_at_once_cost_zeoraid_windows_not_copies() {
    const READERS: usize = 6;
    const BLOB_MB: u64 = 32;
    let array = Array::start(1);
    let (oid, serial) = commit_blob(&array, BLOB_MB);
    let peak_before = peak_mb(&array);
    let start = Arc::new(Barrier::new(READERS));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (addr, start) = (array.addr(), start.clone());
            thread::spawn(move || {
                start.wait();
                download(addr, oid, serial)
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.join().expect("a reader"), blob_size(BLOB_MB));
    }
    let grew = peak_mb(&array).saturating_sub(peak_before);
    assert!(
        grew < BLOB_MB,
        "zeoraid's peak memory grew by {grew} MB while {READERS} clients read a {BLOB_MB} MB blob\n{}",
        array.context()
    );
}

#[test]
fn a_large_transaction_waits_in_a_spool_file_past_the_memory_limit() {
    const RECORDS: usize = 64;
    const RECORD_MB: usize = 1;
    let mut options = ArrayOptions::new(2);
    options.tables = "[limits]\ntransaction_memory = 4194304\n".into();
    let array = Array::start_with(options);
    let peak_before = peak_mb(&array);
    let mut client = RawClient::connect_registered(array.addr());
    let oids: Vec<Oid> = (0..RECORDS).map(|_| client.new_oid()).collect();
    let txn = client.begin();
    for (i, oid) in oids.iter().enumerate() {
        client.store(&txn, *oid, Tid::ZERO, &mapping_record(RECORD_MB << 20, i as u8));
    }
    let voted = client.vote(&txn);
    assert!(
        matches!(&voted, Ok(VoteResult::Oids(o)) if o.is_empty()),
        "{voted:?}"
    );
    let tid = client.finish(&txn).expect("the large commit");
    let grew = peak_mb(&array).saturating_sub(peak_before);
    let total = (RECORDS * RECORD_MB) as u64;
    assert!(
        grew < total / 2,
        "zeoraid's peak memory grew by {grew} MB for a {total} MB transaction committed to 2 members\n{}",
        array.context()
    );
    for i in 0..2 {
        let mut member = array.member_client(i);
        for (n, oid) in oids.iter().enumerate().step_by(21) {
            let current = member
                .load(*oid)
                .expect("load from the member")
                .expect("the record");
            assert_eq!(current.start, tid, "member {}", i + 1);
            assert!(
                current.data == mapping_record(RECORD_MB << 20, n as u8),
                "member {}: {oid}",
                i + 1
            );
        }
    }
}

/// Every spool file in `dir` cut to nothing, as a failing disk or a
/// careless cleaner of the temporary directory leaves it under zeoraid.
fn truncate_spool_files(dir: &std::path::Path) -> usize {
    let mut cut = 0;
    for entry in std::fs::read_dir(dir).expect("the spool dir") {
        let path = entry.expect("a spool dir entry").path();
        let file = std::fs::OpenOptions::new().write(true).open(&path);
        file.expect("a spool file").set_len(0).expect("truncate");
        cut += 1;
    }
    cut
}

#[test]
fn a_spool_unreadable_at_the_vote_is_zeoraids_fault_not_the_members() {
    let spool = tempfile::tempdir().expect("a spool dir");
    let mut options = ArrayOptions::new(2);
    options.top_level = vec![format!("spool_dir = {:?}", spool.path().display().to_string())];
    options.tables = "[limits]\ntransaction_memory = 4096\n".into();
    let mut array = Array::start_with(options);
    let mut client = RawClient::connect_registered(array.addr());
    let oids: Vec<Oid> = (0..4).map(|_| client.new_oid()).collect();
    let txn = client.begin();
    for (i, oid) in oids.iter().enumerate() {
        client.store(&txn, *oid, Tid::ZERO, &mapping_record(3000, i as u8));
    }
    // The stores are handled in order: this call's answer means every
    // record before it is in the transaction's buffer (and spool).
    client.last_transaction();
    assert_eq!(
        truncate_spool_files(spool.path()),
        1,
        "the records past 4 KiB wait in one spool file"
    );
    let voted = client.vote(&txn);
    match &voted {
        Err(e) => assert!(
            format!("{e:?}").contains("could not read its spool file back"),
            "{e:?}\n{}",
            array.context()
        ),
        Ok(answer) => panic!("a vote whose records are lost was accepted: {answer:?}"),
    }
    let status = array.raid_status();
    assert_eq!(status["status"], "optimal", "{status}\n{}", array.context());
    for i in 0..2 {
        let mut member = array.member_client(i);
        for oid in &oids {
            assert!(
                !matches!(member.load(*oid), Ok(Some(_))),
                "member {}: {oid} of the refused transaction was stored",
                i + 1
            );
        }
    }
    array.assert_serving(&[]);
    assert_eq!(array.raid_status()["status"], "optimal");
}

/// How many files in `dir` zeoraid has open (a download's spool may be
/// open twice for a moment: written, and read back; it counts once). The
/// kernel names an unlinked file's descriptors "PATH (deleted)", and a
/// spool is unlinked when its writing side is dropped, which can happen
/// between reading the two descriptors' names: without the suffix they
/// are still one file.
fn open_files_in(array: &Array, dir: &std::path::Path) -> usize {
    let pid = array.zeoraid_pid().expect("zeoraid runs");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .map(|target| {
            let name = target.to_string_lossy();
            name.strip_suffix(" (deleted)")
                .map_or(name.to_string(), str::to_owned)
        })
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[test]
fn a_client_pipelining_blob_downloads_waits_for_its_few_in_flight() {
    const IN_FLIGHT: usize = 4;
    const REQUESTS: usize = 40;
    let spool = tempfile::tempdir().expect("a spool dir");
    let mut options = ArrayOptions::new(1);
    options.top_level = vec![format!("spool_dir = {:?}", spool.path().display().to_string())];
    options.tables = format!("[limits]\nblob_downloads_per_session = {IN_FLIGHT}\n");
    let array = Array::start_with(options);
    let (oid, serial) = commit_blob(&array, 1);
    let mut client = RawClient::connect_registered(array.addr());
    let msgids: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let msgid = client.next_msgid();
            client.send(&Request::SendBlob(SendBlob { oid, serial }).to_message(msgid.clone()));
            msgid
        })
        .collect();
    // The client reads nothing for a while: zeoraid must not spool every
    // download it asked for meanwhile (well within the backlog's 5 s).
    let watch_until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let mut most = 0;
    while std::time::Instant::now() < watch_until {
        most = most.max(open_files_in(&array, spool.path()));
        thread::yield_now();
    }
    assert!(
        most <= IN_FLIGHT,
        "{most} spool files open for one client's downloads, more than {IN_FLIGHT}\n{}",
        array.context()
    );
    // Each blob comes whole (its chunks, then its reply), in whatever
    // order the downloads end.
    let mut unanswered: std::collections::HashSet<_> = msgids.into_iter().collect();
    let mut got = 0;
    while !unanswered.is_empty() {
        match client.read_message().expect("the downloads") {
            Message::Reply { msgid, result } => {
                assert!(unanswered.remove(&msgid), "{msgid:?} answered twice");
                assert_eq!(result, zeo::Value::None, "sendBlob {msgid:?}");
                assert_eq!(got, blob_size(1), "sendBlob {msgid:?}: the whole blob");
                got = 0;
            }
            Message::Call { name, args, .. } => {
                if let Callback::ReceiveBlobChunk { chunk, .. } = Callback::decode(&name, &args).unwrap() {
                    got += chunk.len() as u64;
                }
            }
            other => panic!("a sendBlob answered {other:?}"),
        }
    }
}
