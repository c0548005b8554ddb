//! Packs and recoveries, with real members: a member that missed a pack
//! is recovered incrementally also after zeoraid restarted (the pack time
//! is in the array state), and no recovery starts while a pack runs (one
//! asked for then, by an operator or by the automatic-recovery timer,
//! starts once the pack has ended, knowing the pack its member missed).
//! The members end identical, transaction by transaction and record by
//! record.

mod common;

use common::array::{Array, ArrayOptions};
use common::http::request;
use common::rawclient::RawClient;
use common::records::ROOT_RECORD;
use serde_json::Value as Json;
use std::thread;
use std::time::Duration;
use zeo::types::{Oid, Tid};

/// Bound for a restarted member to reconnect, and for a recovery to end.
const WITHIN: Duration = Duration::from_secs(30);

/// How long the tests hold a pack (its member's replies stalled) while
/// they check that no recovery starts.
const PACK_HELD: Duration = Duration::from_millis(500);

/// Commits through zeoraid: objects that stay current (what a pack
/// keeps) and revisions of the root that references them (a pack keeps
/// only the last one).
struct Writer {
    client: RawClient,
    root_serial: Tid,
    kept: Vec<Oid>,
}

impl Writer {
    fn new(array: &Array) -> Writer {
        Writer {
            client: array.client(),
            root_serial: Tid::ZERO,
            kept: Vec::new(),
        }
    }

    /// `n` transactions, each adding one object to the root.
    fn add_objects(&mut self, n: usize) {
        for _ in 0..n {
            let oid = self.client.new_oid();
            self.kept.push(oid);
            let root = root_record(&self.kept);
            let stores = [
                (oid, Tid::ZERO, ROOT_RECORD),
                (Oid::ZERO, self.root_serial, &root[..]),
            ];
            self.root_serial = self.client.commit(&stores);
        }
    }

    /// `n` transactions, each a new revision of the root only.
    fn rewrite_root(&mut self, n: usize) {
        let root = root_record(&self.kept);
        for _ in 0..n {
            self.root_serial = self.client.commit(&[(Oid::ZERO, self.root_serial, &root[..])]);
        }
    }
}

/// The root (a `PersistentMapping`) referencing `oids`, so that a pack's
/// garbage collection keeps them: `{"data": {"o0": <ref>, ...}}` pickled
/// by hand, each reference a persistent id that is the bare oid.
fn root_record(oids: &[Oid]) -> Vec<u8> {
    let class = b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.";
    let mut record = class.to_vec();
    record.extend_from_slice(b"\x80\x03}X\x04\x00\x00\x00data}(");
    for (i, oid) in oids.iter().enumerate() {
        let key = format!("o{i}");
        record.push(b'X');
        record.extend_from_slice(&(key.len() as u32).to_le_bytes());
        record.extend_from_slice(key.as_bytes());
        record.extend_from_slice(b"C\x08");
        record.extend_from_slice(&oid.0);
        record.push(b'Q');
    }
    record.extend_from_slice(b"us.");
    record
}

/// Both members hold the same history, records and all.
fn assert_members_identical(array: &Array) {
    let first = array.member_client(0).history();
    let second = array.member_client(1).history();
    assert_eq!(first.len(), second.len(), "number of transactions");
    for ((t1, r1), (t2, r2)) in first.iter().zip(&second) {
        assert_eq!(t1, t2, "transaction metadata");
        assert_eq!(r1, r2, "records of transaction {}", t1.tid);
    }
}

/// `POST /members/zeo2/recover`; its message.
fn recover_zeo2(array: &Array) -> String {
    let answer = request(array.http_addr(), "POST", "/members/zeo2/recover", None);
    assert_eq!(answer.code, 200, "{}\n{}", answer.body, array.context());
    answer.json()["message"].as_str().expect("a message").to_string()
}

fn zeo2(status: &Json) -> &Json {
    &status["members"][1]
}

fn state_of_zeo2(array: &Array) -> Json {
    let file = array.dir().join("state").join("array.json");
    let text = std::fs::read_to_string(file).expect("the state file");
    let state: Json = serde_json::from_str(&text).expect("the state file is JSON");
    state["members"]["zeo2"].clone()
}

/// The index of the first log line from `since` on that says `msg`.
fn log_index(array: &Array, since: usize, msg: &str) -> Option<usize> {
    array
        .log_lines()
        .iter()
        .skip(since)
        .position(|l| l["msg"] == msg)
        .map(|p| p + since)
}

/// Two members, zeo1 reached through a relay (to hold a pack), with the
/// given `[recovery]` table body.
fn array_with_recovery(recovery: &str) -> Array {
    let mut options = ArrayOptions::new(2);
    options.relayed = vec![0];
    options.tables = format!("[recovery]\n{recovery}");
    Array::start_with(options)
}

/// Objects on both members, then zeo2 killed and root revisions it
/// misses.
fn zeo2_misses_commits(array: &mut Array) -> Writer {
    let mut writer = Writer::new(array);
    writer.add_objects(5);
    array.members_mut()[1].kill9();
    writer.rewrite_root(5);
    array.wait_status("zeo2 degraded", WITHIN, |s| zeo2(s)["state"] == "degraded");
    writer
}

/// A pack sent from another client while zeo1's replies are held, so that
/// it holds the commit lock until the relay resumes. Returns the thread
/// waiting for the pack's answer.
fn hold_a_pack(array: &Array) -> thread::JoinHandle<()> {
    let mark = array.log_mark();
    array.relay(0).stall();
    let addr = array.addr();
    let packing = thread::spawn(move || RawClient::connect_registered(addr).pack_now());
    array.wait_for_log(mark, WITHIN, "pack started", |l| l["msg"] == "pack started");
    packing
}

/// While the held pack runs, zeo2 is not recovered; once the pack is
/// released and has ended, zeo2 is, and its recovery packs it as the
/// array was packed (zeo2 missed that pack). `mark`: the log before.
fn recovered_only_after_the_pack(array: &Array, mark: usize, packing: thread::JoinHandle<()>) {
    thread::sleep(PACK_HELD);
    assert_eq!(zeo2(&array.raid_status())["state"], "degraded");
    assert_eq!(log_index(array, mark, "member recovering"), None);
    array.relay(0).resume();
    packing.join().expect("the pack is answered");

    array.wait_status("optimal", WITHIN, |s| s["status"] == "optimal");
    let finished = log_index(array, mark, "pack finished").expect("the pack finished");
    let recovering = log_index(array, mark, "member recovering").expect("the recovery started");
    assert!(finished < recovering, "{}", array.context());
    assert!(log_index(array, mark, "recovery packed the target").is_some());
}

/// zeo2 is down while the array packs, and zeoraid restarts before zeo2
/// returns: the pack it missed is in the state, so its recovery verifies
/// only the history after the pack time exactly, copies only what it
/// missed and packs it at the same time.
#[test]
fn a_pack_missed_across_a_restart_is_recovered_incrementally() {
    let mut array = array_with_recovery("auto = false\n");
    let mut writer = zeo2_misses_commits(&mut array);
    writer.client.pack_now();
    let packed_at = state_of_zeo2(&array)["packed_while_degraded"].as_f64();
    assert!(packed_at.is_some(), "{}", state_of_zeo2(&array));
    writer.rewrite_root(3);
    drop(writer);

    array.kill_zeoraid();
    array.restart_zeoraid();
    array.members_mut()[1].restart();
    array.wait_status("zeo2 connected", WITHIN, |s| zeo2(s)["connected"] == true);
    assert_eq!(state_of_zeo2(&array)["packed_while_degraded"].as_f64(), packed_at);

    let zeo2_last = array.member_client(1).last_transaction();
    let everything = array.member_client(0).history();
    let lacking = everything.iter().filter(|(t, _)| t.tid > zeo2_last).count();
    assert!(
        3 <= lacking && lacking < everything.len(),
        "{lacking} of {}",
        everything.len()
    );

    let mark = array.log_mark();
    assert_eq!(recover_zeo2(&array), "recovering 'zeo2' from 'zeo1'");
    let status = array.wait_status("optimal", WITHIN, |s| s["status"] == "optimal");
    let outcome = zeo2(&status)["last_recovery"].as_str().unwrap_or_default();
    assert!(
        outcome.contains(&format!(": {lacking} transaction(s) copied;")),
        "{outcome}\n{}",
        array.context()
    );
    let verified = array
        .find_log(mark, |l| l["msg"] == "recovery verified")
        .expect("verified");
    assert_eq!(verified["full_copy"], false, "{verified}");
    assert!(
        array
            .find_log(mark, |l| l["msg"] == "recovery packed the target")
            .is_some(),
        "the target was packed\n{}",
        array.context()
    );
    assert!(state_of_zeo2(&array)
        .get("packed_while_degraded")
        .is_none_or(Json::is_null));
    assert_members_identical(&array);
}

/// An operator asks to recover zeo2 while a pack holds the commit lock:
/// the recovery is not started during the pack, but once it has ended,
/// with the pack zeo2 missed.
#[test]
fn a_recovery_asked_for_during_a_pack_starts_once_the_pack_has_ended() {
    let mut array = array_with_recovery("auto = false\n");
    let mut writer = zeo2_misses_commits(&mut array);
    array.members_mut()[1].restart();
    array.wait_status("zeo2 connected", WITHIN, |s| zeo2(s)["connected"] == true);

    let mark = array.log_mark();
    let packing = hold_a_pack(&array);
    assert_eq!(
        recover_zeo2(&array),
        "a pack is running: the recovery of zeo2 starts once it has finished"
    );
    recovered_only_after_the_pack(&array, mark, packing);
    // zeo2 takes writes again.
    writer.rewrite_root(1);
    assert_members_identical(&array);
}

/// The automatic-recovery timer fires while a pack holds the commit lock:
/// the member is not forgotten, its recovery starts once the pack has
/// ended.
#[test]
fn an_automatic_recovery_due_during_a_pack_starts_once_the_pack_has_ended() {
    let mut array = array_with_recovery("auto = true\nstable_for = \"300ms\"\n");
    zeo2_misses_commits(&mut array);

    let mark = array.log_mark();
    let packing = hold_a_pack(&array);
    array.members_mut()[1].restart();
    array.wait_for_log(mark, WITHIN, "the automatic recovery waiting", |l| {
        l["msg"] == "member recovery waits for the pack running now" && l["by_operator"] == false
    });
    recovered_only_after_the_pack(&array, mark, packing);
    assert_members_identical(&array);
}
