//! The array's durable state across restarts of zeoraid, with real
//! members: a restart never serves a history behind what was acknowledged,
//! members the state calls degraded stay degraded, the members that hold
//! everything are waited for and rejoin by themselves, and a state that is
//! missing, unreadable or used by another zeoraid stops the start with
//! what to do (`docs/invariants.md#durable-state`).

mod common;

use common::array::{Array, ArrayOptions};
use common::records::ROOT_RECORD;
use serde_json::Value as Json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zeo::types::{Oid, Tid};

/// Bound for a restarted member to reconnect (its restart policy backs off).
const REJOIN: Duration = Duration::from_secs(30);

fn state_file(array: &Array) -> std::path::PathBuf {
    array.dir().join("state").join("array.json")
}

fn state(array: &Array) -> Json {
    let text = std::fs::read_to_string(state_file(array)).expect("the state file");
    serde_json::from_str(&text).expect("the state file is JSON")
}

/// One object committed through zeoraid: (oid, its tid).
fn commit_one(array: &Array) -> (Oid, Tid) {
    let mut client = array.client();
    let oid = client.new_oid();
    (oid, client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]))
}

/// A new revision of `oid` after `previous`, through zeoraid, is on both
/// members.
fn assert_commits_on_both(array: &Array, oid: Oid, previous: Tid) {
    let tid = array.client().commit(&[(oid, previous, ROOT_RECORD)]);
    for m in 0..2 {
        assert_eq!(array.member_client(m).last_transaction(), tid, "member {m}");
    }
}

fn kill_every_member(array: &mut Array) {
    for member in array.members_mut() {
        member.kill9();
    }
}

fn restart_every_member(array: &mut Array) {
    for member in array.members_mut() {
        member.restart();
    }
}

/// The array becomes optimal again at `t1` (bounded wait), and a new
/// revision of `oid` reaches both members.
fn assert_optimal_again_at(array: &Array, oid: Oid, t1: Tid) {
    let status = array.wait_status("optimal", REJOIN, |s| s["status"] == "optimal");
    assert_eq!(status["last_tid"], t1.to_hex(), "{status}");
    assert_commits_on_both(array, oid, t1);
}

/// Two members; zeo2 misses t2 while it is down. Returns (oid, t1, t2).
fn commit_while_zeo2_is_down(array: &mut Array) -> (Oid, Tid, Tid) {
    let mut client = array.client();
    let oid = client.new_oid();
    let t1 = client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    array.members_mut()[1].kill9();
    let t2 = client.commit(&[(oid, t1, ROOT_RECORD)]);
    (oid, t1, t2)
}

#[test]
fn a_degradation_is_written_before_the_commit_that_caused_it_is_acknowledged() {
    let mut array = Array::start(2);
    let before = state(&array);
    assert!(before["members"]["zeo2"].get("degraded").is_none(), "{before}");
    let (_, _, t2) = commit_while_zeo2_is_down(&mut array);
    // t2 is acknowledged: the state already says zeo2 missed it.
    let after = state(&array);
    let zeo2 = &after["members"]["zeo2"]["degraded"];
    assert_eq!(zeo2["kind"], "failed", "{after}");
    assert_eq!(zeo2["first_missed_tid"], t2.to_hex(), "{after}");
    assert!(
        after["generation"].as_u64() > before["generation"].as_u64(),
        "{after}"
    );
    assert!(after["members"]["zeo1"].get("degraded").is_none(), "{after}");
    let details = array.raid_status();
    assert_eq!(details["state_generation"], after["generation"], "{details}");
    assert_eq!(
        details["state_location"].as_str(),
        state_file(&array).to_str(),
        "{details}"
    );
}

/// The freshest member is down when zeoraid restarts: the array waits for
/// it and says so, never serving the other member's older history; once
/// it returns, everything acknowledged is there.
#[test]
fn the_freshest_member_down_at_restart_is_waited_for_and_never_served_behind() {
    let mut array = Array::start(2);
    let (oid, t1, t2) = commit_while_zeo2_is_down(&mut array);
    array.kill_zeoraid();
    array.members_mut()[0].kill9();
    array.members_mut()[1].restart();
    array.restart_zeoraid();

    let status = array.raid_status();
    assert_eq!(status["status"], "failed", "{status}\n{}", array.context());
    let reason = status["reason"].as_str().unwrap();
    assert!(reason.contains("waiting for zeo1"), "{reason}");
    assert_eq!(status["last_tid"], t2.to_hex(), "{status}");
    assert_eq!(status["members"][1]["state"], "degraded", "{status}");
    // zeo2 (connected, at t1) got no write.
    assert_eq!(array.member_client(1).last_transaction(), t1);

    array.members_mut()[0].restart();
    let status = array.wait_status("serving again", REJOIN, |s| s["status"] != "failed");
    assert_eq!(status["members"][0]["state"], "optimal", "{status}");
    assert_eq!(status["members"][1]["state"], "degraded", "{status}");
    let mut client = array.client();
    assert_eq!(client.last_transaction(), t2);
    let loaded = client.load(oid).expect("load").expect("a revision");
    assert_eq!(loaded.start, t2);
    let t3 = client.commit(&[(oid, t2, ROOT_RECORD)]);
    assert_eq!(array.member_client(0).last_transaction(), t3);
    assert_eq!(array.member_client(1).last_transaction(), t1);
}

/// zeoraid started before its members (ordinary service ordering): failed,
/// waiting for them by name, then serving by itself once they come, with
/// no restart and no copy.
#[test]
fn zeoraid_started_before_its_members_serves_once_they_come() {
    let mut array = Array::start(2);
    let (oid, t1) = commit_one(&array);
    array.kill_zeoraid();
    kill_every_member(&mut array);
    array.restart_zeoraid();
    let status = array.raid_status();
    assert_eq!(status["status"], "failed", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(reason.contains("waiting for zeo1, zeo2"), "{reason}");

    let mark = array.log_mark();
    restart_every_member(&mut array);
    let status = array.wait_status("optimal", REJOIN, |s| s["status"] == "optimal");
    assert_eq!(status["last_tid"], t1.to_hex(), "{status}");
    assert!(
        array
            .find_log(mark, |l| l["msg"] == "member recovering")
            .is_none(),
        "no copy was needed\n{}",
        array.context()
    );
    assert_commits_on_both(&array, oid, t1);
}

/// Every member lost at once (a switch reboot) with no commit between:
/// they come back optimal when they reconnect, no restart of zeoraid.
#[test]
fn every_member_lost_with_no_commit_between_is_optimal_again_without_a_restart() {
    let mut array = Array::start(2);
    let (oid, t1) = commit_one(&array);
    kill_every_member(&mut array);
    array.wait_status("failed", REJOIN, |s| s["status"] == "failed");
    restart_every_member(&mut array);
    assert_optimal_again_at(&array, oid, t1);
}

#[test]
fn a_damaged_or_missing_state_stops_zeoraid_with_what_to_do() {
    let mut array = Array::start(2);
    array.kill_zeoraid();
    let file = state_file(&array);
    std::fs::write(&file, b"{\"format\": 1, \"generation\": ").unwrap();
    let refused = array
        .try_restart_zeoraid()
        .expect_err("a damaged state is refused");
    assert!(refused.contains("is unreadable"), "{refused}");
    assert!(refused.contains("Restore the file from a backup"), "{refused}");
    std::fs::remove_file(&file).unwrap();
    let refused = array
        .try_restart_zeoraid()
        .expect_err("a missing state is refused");
    assert!(refused.contains("is missing"), "{refused}");
}

#[test]
fn a_second_zeoraid_on_the_same_state_dir_is_refused() {
    let array = Array::start(1);
    let mut second = Command::new(env!("CARGO_BIN_EXE_zeoraid"))
        .args(["serve", "--config"])
        .arg(array.config_path())
        .env("ZEORAID_LISTEN", "127.0.0.1:0")
        .env("ZEORAID_HTTP__LISTEN", "127.0.0.1:0")
        .env_remove("ZEORAID_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a second zeoraid");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = second.kill();
            panic!("the second zeoraid did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("in use by another zeoraid"), "{stderr}");
    // The first one still serves.
    assert_eq!(array.raid_status()["status"], "optimal");
}

/// Short deadlines, so that frozen members fail calls quickly.
fn quick_deadlines() -> ArrayOptions {
    let mut options = ArrayOptions::new(2);
    options.tables = "[timeouts]\ncall = \"1s\"\nconnect = \"1s\"\ncommit = \"1s\"\n".into();
    options
}

/// Every member frozen past the call deadline (a switch that stalls), then
/// resumed with no commit between: optimal again by itself, no restart of
/// zeoraid, no copy.
#[test]
fn every_member_frozen_and_resumed_with_no_commit_between_is_optimal_again_without_a_copy() {
    let mut array = Array::start_with(quick_deadlines());
    let probe = array.commit_probe();
    for member in array.members_mut() {
        member.sigstop();
    }
    // A read meets each frozen member in turn: both miss its deadline.
    let mut client = array.client();
    assert!(client.load(probe.oid).is_err(), "no member could answer");
    array.wait_status("failed", REJOIN, |s| s["status"] == "failed");
    let mark = array.log_mark();
    for member in array.members_mut() {
        member.sigcont();
    }
    let status = array.wait_status("optimal", REJOIN, |s| s["status"] == "optimal");
    assert_eq!(status["last_tid"], probe.tid.to_hex(), "{status}");
    assert!(
        array
            .find_log(mark, |l| l["msg"] == "member recovering")
            .is_none(),
        "no copy was needed\n{}",
        array.context()
    );
    array.assert_serving(&[&probe]);
}

/// The same with a commit acknowledged while only zeo1 served: zeo1 holds
/// everything and is the array's source when both return; zeo2 waits for
/// a recovery from it, however the two reconnect.
#[test]
fn frozen_members_with_a_commit_on_one_of_them_return_with_that_one_as_the_source() {
    let mut array = Array::start_with(quick_deadlines());
    let first = array.commit_probe();
    array.members_mut()[1].sigstop();
    // zeo2 misses its deadline on this commit's vote and is degraded.
    let second = array.commit_probe();
    array.members_mut()[0].sigstop();
    let mut client = array.client();
    assert!(client.load(second.oid).is_err(), "no member could answer");
    array.wait_status("failed", REJOIN, |s| s["status"] == "failed");
    // zeo2 first: it missed a commit, so the array waits for zeo1.
    array.members_mut()[1].sigcont();
    let status = array.wait_status("zeo2 connected", REJOIN, |s| s["members"][1]["connected"] == true);
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["reason"].as_str().unwrap().contains("waiting for zeo1"),
        "{status}"
    );
    array.members_mut()[0].sigcont();
    let status = array.wait_status("serving", REJOIN, |s| s["members"][0]["state"] == "optimal");
    assert_eq!(status["last_tid"], second.tid.to_hex(), "{status}");
    assert_ne!(status["members"][1]["state"], "optimal", "{status}");
    let recover = common::http::request(array.http_addr(), "POST", "/members/zeo2/recover", None);
    assert_eq!(recover.code, 200, "{}", recover.body);
    array.wait_status("optimal", REJOIN, |s| s["status"] == "optimal");
    array.assert_serving(&[&first, &second]);
}

/// Every member lost (each degraded, holding everything), then zeoraid
/// restarted once they are back: it serves at once, with no copy.
#[test]
fn members_that_hold_everything_and_are_back_when_zeoraid_restarts_serve_at_once() {
    let mut array = Array::start(2);
    let (oid, t1) = commit_one(&array);
    kill_every_member(&mut array);
    array.wait_status("failed", REJOIN, |s| s["status"] == "failed");
    array.kill_zeoraid();
    restart_every_member(&mut array);
    array.restart_zeoraid();
    assert_optimal_again_at(&array, oid, t1);
}

/// A degradation that cannot be written: the commit that caused it is not
/// acknowledged (a restart would not know that the member missed it), and
/// the array takes no more writes, saying why.
#[test]
fn a_commit_whose_degradation_cannot_be_written_is_not_acknowledged() {
    let mut array = Array::start(2);
    let (oid, t1) = commit_one(&array);
    let mut client = array.client();
    let txn = client.begin();
    client.store(&txn, oid, t1, ROOT_RECORD);
    client.vote(&txn).expect("voted on both members");
    // The state's temporary file cannot be created: every write fails.
    std::fs::create_dir(array.dir().join("state").join("array.json.tmp")).unwrap();
    // zeo2 is lost between the vote and tpc_finish: the commit goes on
    // with zeo1 alone, and zeo2's degradation is not on disk.
    array.members_mut()[1].kill9();
    array.wait_status("zeo2 degraded", REJOIN, |s| {
        s["members"][1]["state"] == "degraded"
    });
    let answer = client.finish(&txn);
    let refused = answer.expect_err("not acknowledged");
    assert!(
        format!("{refused:?}").contains("the array state cannot be written"),
        "{refused:?}"
    );
    let status = array.raid_status();
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("the array state cannot be written"),
        "{status}"
    );
}
