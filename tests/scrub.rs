//! The scrub (`POST /scrub`, `zeoraid ctl scrub`) with real members: a
//! member changed behind zeoraid's back is found and, outvoted, degraded
//! as diverged; two members that differ leave the array inconsistent with
//! nobody degraded; identical members under a continuous writer are
//! found identical; a blob file damaged on one member's disk is found; the
//! throttle holds; a restart resumes a scrub.

mod common;

use common::array::{Array, ArrayOptions};
use common::ctl::ctl;
use common::faults::wait_until;
use common::http::{get, request};
use common::rawclient::RawClient;
use common::runzeo::files_under;
use common::writer::Writer;
use serde_json::Value as Json;
use std::time::Duration;
use zeo::methods::{Request, StoreBlobChunk, StoreBlobEnd};
use zeo::types::{Oid, Tid};

/// Bound for a scrub of a few dozen transactions to end.
const SCRUB_ENDS: Duration = Duration::from_secs(60);

fn array_with(members: usize, scrub: &str) -> Array {
    let mut options = ArrayOptions::new(members);
    options.tables = format!("[recovery]\nauto = false\n\n[scrub]\n{scrub}\n");
    Array::start_with(options)
}

fn details(array: &Array) -> Json {
    let answer = get(array.http_addr(), "/details");
    assert_eq!(answer.code, 200, "GET /details: {}", answer.body);
    answer.json()
}

fn start_scrub(array: &Array, query: &str) -> Json {
    let answer = request(array.http_addr(), "POST", &format!("/scrub{query}"), None);
    assert_eq!(
        answer.code,
        200,
        "POST /scrub{query}: {}\n{}",
        answer.body,
        array.context()
    );
    answer.json()
}

/// Waits (bounded) until no scrub runs and one has a result; `/details`.
fn wait_scrub_result(array: &Array) -> Json {
    let mut last = Json::Null;
    let ended = wait_until(SCRUB_ENDS, || {
        last = details(array);
        last["scrub"]["running"] == false && last["scrub"]["last_result"].is_string()
    });
    assert!(
        ended,
        "the scrub did not end within {SCRUB_ENDS:?}: {last}\n{}",
        array.context()
    );
    last
}

/// The last scrub went through to its end.
fn assert_finished(details: &Json) {
    let result = details["scrub"]["last_result"].as_str().unwrap_or_default();
    assert!(result.starts_with("finished"), "{details}");
}

fn member<'a>(details: &'a Json, name: &str) -> &'a Json {
    details["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no member {name} in {details}"))
}

/// Rewrites the object of `probe` on member `index` directly (not through
/// zeoraid), then commits another object through zeoraid so the array's
/// last tid (the scrub's default end) is past the rewrite. Returns the
/// rewrite's tid.
fn rewrite_behind_zeoraids_back(array: &Array, index: usize) -> Tid {
    let probe = array.commit_probe();
    let mut direct = array.member_client(index);
    let rewritten = direct.commit(&[(probe.oid, probe.tid, b"written behind zeoraid's back")]);
    let after = array.commit_probe();
    assert!(
        after.tid > rewritten,
        "zeoraid's next commit {} is after the rewrite {}",
        after.tid,
        rewritten
    );
    rewritten
}

#[test]
fn a_member_changed_behind_zeoraids_back_is_outvoted_and_degraded() {
    let array = array_with(3, "");
    array.commit_probe();
    let rewritten = rewrite_behind_zeoraids_back(&array, 2);
    let started = start_scrub(&array, "");
    assert!(
        started["message"]
            .as_str()
            .unwrap()
            .contains("scrub of 3 members"),
        "{started}"
    );
    let d = wait_scrub_result(&array);
    let zeo3 = member(&d, "zeo3");
    assert_eq!(zeo3["state"], "degraded", "{d}");
    assert_eq!(zeo3["kind"], "diverged", "{d}");
    let reason = zeo3["reason"].as_str().unwrap();
    assert!(
        reason.contains(&rewritten.to_hex()),
        "the rewrite's tid in the reason: {reason}"
    );
    for name in ["zeo1", "zeo2"] {
        assert_eq!(member(&d, name)["state"], "optimal", "{d}");
    }
    assert!(d.get("inconsistent").is_none(), "{d}");
    assert_eq!(d["scrub"]["progress"]["mismatches"], 1, "{d}");
    let metrics = get(array.http_addr(), "/metrics").body;
    assert!(metrics.contains("zeoraid_scrub_mismatches_total 1"), "{metrics}");
    assert!(metrics.contains("zeoraid_scrub_running 0"), "{metrics}");
}

#[test]
fn identical_members_under_a_writer_are_found_identical() {
    let array = array_with(3, "");
    let writer = Writer::start(&[array.addr()]);
    writer.wait_acks(20, Duration::from_secs(60));
    start_scrub(&array, "");
    writer.wait_more_acks(10, Duration::from_secs(60));
    let d = wait_scrub_result(&array);
    let acks = writer.stop();
    assert_finished(&d);
    assert_eq!(d["scrub"]["progress"]["mismatches"], 0, "{d}");
    assert!(
        d["scrub"]["progress"]["transactions"].as_u64().unwrap() >= 20,
        "{d}"
    );
    assert_eq!(d["status"], "optimal", "{d}");
    assert!(acks.len() >= 30, "the writer went on: {} acks", acks.len());
    let metrics = get(array.http_addr(), "/metrics").body;
    assert!(
        !metrics.contains("zeoraid_scrub_transactions_total 0\n"),
        "{metrics}"
    );
}

#[test]
fn two_members_that_differ_leave_the_array_inconsistent() {
    let mut array = array_with(2, "");
    let rewritten = rewrite_behind_zeoraids_back(&array, 1);
    let url = format!("http://{}", array.http_addr());
    let run = ctl(&["--url", &url, "scrub"], &[]);
    assert_eq!(run.code, 0, "ctl scrub: {} {}", run.stdout, run.stderr);
    let d = wait_scrub_result(&array);
    for name in ["zeo1", "zeo2"] {
        assert_eq!(member(&d, name)["state"], "optimal", "nobody is degraded: {d}");
    }
    let inconsistent = d["inconsistent"]
        .as_str()
        .unwrap_or_else(|| panic!("flagged: {d}"));
    assert!(
        inconsistent.starts_with("zeo1 and zeo2 differ at tid"),
        "{inconsistent}"
    );
    assert!(inconsistent.contains(&rewritten.to_hex()), "{inconsistent}");
    let status = get(array.http_addr(), "/status").json();
    assert_eq!(status["inconsistent"], inconsistent, "{status}");
    let run = ctl(&["--url", &url, "status"], &[]);
    assert_eq!(run.code, 1, "WARNING: {}", run.stdout);
    assert!(
        run.stdout.starts_with("ZEORAID WARNING - optimal"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("inconsistent: zeo1 and zeo2 differ"),
        "{}",
        run.stdout
    );
    // The flag is in the array state: a restart keeps it.
    array.restart_zeoraid();
    array.wait_status("optimal", Duration::from_secs(30), |s| s["status"] == "optimal");
    assert_eq!(
        details(&array)["inconsistent"],
        inconsistent,
        "kept across a restart"
    );
}

#[test]
fn ctl_scrub_takes_tids_and_refuses_a_second_scrub() {
    let array = array_with(2, "max_transactions_per_second = 1");
    for _ in 0..5 {
        array.commit_probe();
    }
    let url = format!("http://{}", array.http_addr());
    let run = ctl(&["--url", &url, "scrub", "--from", "12"], &[]);
    assert_eq!(
        run.code, 3,
        "a malformed tid is a usage error (UNKNOWN): {}",
        run.stderr
    );
    assert!(run.stderr.contains("a tid is 16 hex digits"), "{}", run.stderr);
    let run = ctl(&["--url", &url, "scrub", "--from", "0000000000000000"], &[]);
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("from 0000000000000000"), "{}", run.stdout);
    let again = request(array.http_addr(), "POST", "/scrub", None);
    assert_eq!(again.code, 409, "{}", again.body);
    assert!(again.error().contains("running already"), "{}", again.body);
}

/// 40 transactions at 5 per second: the first progress (after about 2 s)
/// counts no more than the throttle allows for the time it reports.
#[test]
fn the_throttle_holds() {
    let tps = 5.0;
    let array = array_with(2, "max_transactions_per_second = 5");
    for _ in 0..40 {
        array.commit_probe();
    }
    start_scrub(&array, "");
    let mut last = Json::Null;
    let reported = wait_until(SCRUB_ENDS, || {
        last = details(&array);
        last["scrub"]["progress"].is_object()
    });
    assert!(reported, "no progress: {last}");
    let progress = &last["scrub"]["progress"];
    let compared = progress["transactions"].as_f64().unwrap();
    let elapsed = progress["elapsed_seconds"].as_f64().unwrap();
    assert!(compared >= 1.0, "{progress}");
    assert!(
        compared <= tps * elapsed + 1.0,
        "{compared} transactions in {elapsed:.2} s at {tps}/s: {progress}"
    );
    assert_eq!(
        last["scrub"]["running"], true,
        "40 transactions take 8 s at 5/s: {last}"
    );
}

/// 40 transactions at 5 per second take 8 s: the restart comes after the
/// first progress (about 2 s in, its position written), well before the end.
#[test]
fn a_restart_resumes_an_interrupted_scrub() {
    let mut array = array_with(2, "max_transactions_per_second = 5");
    for _ in 0..40 {
        array.commit_probe();
    }
    start_scrub(&array, "");
    let mut saved = Json::Null;
    let checkpointed = wait_until(SCRUB_ENDS, || {
        saved = details(&array);
        saved["scrub"]["progress"]["transactions"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });
    assert!(checkpointed, "no progress: {saved}");
    let state: Json =
        serde_json::from_str(&std::fs::read_to_string(array.dir().join("state").join("array.json")).unwrap())
            .unwrap();
    let next = state["scrub"]["next"]
        .as_str()
        .expect("the position in the state")
        .to_owned();
    assert_ne!(next, "0000000000000000", "{state}");
    let mark = array.log_mark();
    array.restart_zeoraid();
    array.wait_for_log(mark, Duration::from_secs(30), "the scrub resumed", |l| {
        l["msg"] == "resuming the scrub a restart interrupted"
    });
    let d = wait_scrub_result(&array);
    let progress = &d["scrub"]["progress"];
    assert_finished(&d);
    assert!(
        progress["from"].as_str().unwrap() >= next.as_str(),
        "resumed, not restarted: {d}"
    );
    assert_eq!(progress["mismatches"], 0, "{d}");
    assert!(d["scrub"]["resume_from"].is_null(), "{d}");
}

/// A blob record as ZODB writes one: the class pickle names `ZODB.blob.Blob`.
const BLOB_RECORD: &[u8] = b"\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.";

/// Commits a new blob object with `content` through `client`; its tid.
fn commit_blob(client: &mut RawClient, oid: Oid, content: &[u8]) -> Tid {
    let txn = client.begin();
    client.store(&txn, oid, Tid::ZERO, BLOB_RECORD);
    client.oneway(Request::StoreBlobStart);
    client.oneway(Request::StoreBlobChunk(StoreBlobChunk {
        chunk: bytes::Bytes::copy_from_slice(content),
    }));
    client.oneway(Request::StoreBlobEnd(StoreBlobEnd {
        oid,
        serial: Tid::ZERO,
        data: bytes::Bytes::from_static(BLOB_RECORD),
        id: txn.clone(),
    }));
    client.vote(&txn).expect("vote");
    client.finish(&txn).expect("tpc_finish")
}

#[test]
fn a_blob_file_damaged_on_one_members_disk_is_found() {
    let array = array_with(3, "");
    let mut client = array.client();
    let oid = client.new_oid();
    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let tid = commit_blob(&mut client, oid, &content);
    let files = files_under(
        &array.members()[1].blob_dir().expect("members with blobs"),
        ".blob",
    );
    assert_eq!(files.len(), 1, "{files:?}");
    let mut damaged = content.clone();
    damaged[50_000] ^= 0xff;
    // ZODB keeps blob files read-only.
    let mut permissions = std::fs::metadata(&files[0]).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&files[0], permissions).unwrap();
    std::fs::write(&files[0], &damaged).unwrap();
    start_scrub(&array, "");
    let d = wait_scrub_result(&array);
    let zeo2 = member(&d, "zeo2");
    assert_eq!(
        (&zeo2["state"], &zeo2["kind"]),
        (&Json::from("degraded"), &Json::from("diverged")),
        "{d}"
    );
    let reason = zeo2["reason"].as_str().unwrap();
    assert!(reason.contains(&tid.to_hex()), "{reason}");
    assert!(
        reason.contains(&format!("the blob file of oid {oid}")),
        "{reason}"
    );
    for name in ["zeo1", "zeo3"] {
        assert_eq!(member(&d, name)["state"], "optimal", "{d}");
    }
}

#[test]
fn a_scheduled_scrub_starts_by_itself() {
    let array = array_with(2, "interval = \"1s\"");
    array.commit_probe();
    let d = wait_scrub_result(&array);
    assert_eq!(d["scrub"]["interval_seconds"], 1.0, "{d}");
    assert_finished(&d);
    assert!(
        array.find_log(0, |l| l["msg"] == "scrub started").is_some(),
        "{}",
        array.context()
    );
}

#[test]
fn a_pack_stops_a_running_scrub_which_keeps_its_position() {
    let array = array_with(2, "max_transactions_per_second = 2");
    // A pack starts from the root object.
    array
        .client()
        .commit(&[(Oid::ZERO, Tid::ZERO, common::records::ROOT_RECORD)]);
    for _ in 0..10 {
        array.commit_probe();
    }
    start_scrub(&array, "");
    array.client().pack_now();
    let d = wait_scrub_result(&array);
    let result = d["scrub"]["last_result"].as_str().unwrap();
    assert_eq!(result, "stopped: a pack started", "{d}");
    assert!(d["scrub"]["resume_from"].is_string(), "{d}");
    assert_eq!(d["status"], "optimal", "{d}");
}
