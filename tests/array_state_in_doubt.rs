//! A commit in doubt across a restart, with real members: zeoraid sent
//! `tpc_finish` and stopped (or a member died) before the answers were in
//! (`docs/invariants.md#durable-state`, ARCHITECTURE.md section 4.3).
//!
//! zeo2 is reached through a relay. Once a transaction has voted on both
//! members, the relay holds everything zeoraid sends zeo2, so the
//! `tpc_finish` reaches zeo1 only: zeo1 commits the transaction, zeo2
//! still holds its vote, zeoraid waits for zeo2's answer and the client
//! for zeoraid's. Then either zeoraid is killed (the commit stays in
//! doubt: nothing was acknowledged and nothing about it is in the state)
//! or zeo2 is (zeoraid degrades it and acknowledges the commit).

mod common;

use common::array::{Array, ArrayOptions};
use common::faults::wait_until;
use common::http;
use common::rawclient::RawClient;
use common::records::ROOT_RECORD;
use serde_json::Value as Json;
use std::time::Duration;
use zeo::message::MsgId;
use zeo::methods::{Request, TpcFinish};
use zeo::reply::{Reply, VoteResult};
use zeo::types::{Oid, Tid};

/// Bound for zeo1 to commit the transaction whose `tpc_finish` it got.
const FINISH_WITHIN: Duration = Duration::from_secs(15);

/// Bound for a restarted member to reconnect, or a recovery to finish.
const REJOIN: Duration = Duration::from_secs(30);

/// Bound for the client to see its connection closed by zeoraid's death.
const CLOSED_WITHIN: Duration = Duration::from_secs(10);

/// How many fresh clients read the object through zeoraid: reads go to
/// one member per session, so several sessions would catch a member that
/// serves an old revision.
const READERS: usize = 10;

/// A commit that zeo1 finished and zeo2 only voted, its `tpc_finish`
/// still unanswered by zeoraid.
struct InDoubt {
    client: RawClient,
    finish: MsgId,
    oid: Oid,
    /// The object's revision before (committed everywhere).
    t1: Tid,
    /// The transaction in doubt: on zeo1 only.
    t2: Tid,
}

fn relayed_array() -> Array {
    relayed_array_with(ArrayOptions::new(2))
}

fn relayed_array_with(mut options: ArrayOptions) -> Array {
    options.relayed = vec![1];
    Array::start_with(options)
}

/// Commits `t1` everywhere, then a second revision of the same object
/// whose `tpc_finish` reaches zeo1 only (see the module documentation).
fn finish_in_doubt(array: &Array) -> InDoubt {
    let mut client = array.client();
    let oid = client.new_oid();
    let t1 = client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    let txn = client.begin();
    client.store(&txn, oid, t1, ROOT_RECORD);
    assert!(matches!(client.vote(&txn), Ok(VoteResult::Oids(o)) if o.is_empty()));
    let finishes = array.relay(1).frames_seen(b"tpc_finish");
    array.relay(1).stall();
    let finish = client.next_msgid();
    client.send(&Request::TpcFinish(TpcFinish { id: txn }).to_message(finish.clone()));
    let mut zeo1 = array.member_client(0);
    let finished = wait_until(FINISH_WITHIN, || {
        zeo1.last_transaction() > t1 && array.relay(1).frames_seen(b"tpc_finish") == finishes + 1
    });
    assert!(
        finished,
        "zeo1 did not commit, or zeo2's relay did not get the tpc_finish\n{}",
        array.context()
    );
    let t2 = zeo1.last_transaction();
    InDoubt {
        client,
        finish,
        oid,
        t1,
        t2,
    }
}

fn state(array: &Array) -> Json {
    let file = array.dir().join("state").join("array.json");
    let text = std::fs::read_to_string(file).expect("the state file");
    serde_json::from_str(&text).expect("the state file is JSON")
}

fn member(status: &Json, index: usize) -> &Json {
    &status["members"][index]
}

/// Panics unless every one of [`READERS`] fresh clients of zeoraid reads
/// `oid` at revision `tid` and is told `tid` as the last transaction.
fn every_reader_sees(array: &Array, oid: Oid, tid: Tid) {
    for reader in 0..READERS {
        let mut client = array.client();
        assert_eq!(client.last_transaction(), tid, "reader {reader}");
        let loaded = client.load(oid).expect("load").expect("a revision");
        assert_eq!(loaded.start, tid, "reader {reader} read another revision");
    }
}

/// Asks zeoraid to recover `name` and waits until the array is optimal.
fn recover(array: &Array, name: &str) -> Json {
    let answer = http::request(
        array.http_addr(),
        "POST",
        &format!("/members/{name}/recover"),
        None,
    );
    assert_eq!(answer.code, 200, "recover {name}: {}", answer.body);
    array.wait_status("optimal after the recovery", REJOIN, |s| s["status"] == "optimal")
}

/// Kills zeoraid while the commit is in doubt: the client's `tpc_finish`
/// never gets an answer, its connection just closes.
fn kill_zeoraid_in_doubt(array: &mut Array, doubt: &mut InDoubt) {
    array.kill_zeoraid();
    let seen = doubt.client.expect_closed(CLOSED_WITHIN);
    assert!(
        seen.iter()
            .all(|m| !matches!(m, zeo::message::Message::Reply { .. })),
        "the client got an answer to its tpc_finish: {seen:?}"
    );
}

/// Closes zeo2's held connection (zeo2 aborts the vote if it still runs)
/// and lets zeo2's relay forward again.
fn release_zeo2(array: &Array) {
    array.relay(1).cut();
    array.relay(1).resume();
}

/// After [`kill_zeoraid_in_doubt`]: zeo1, the only member that has the
/// transaction in doubt, is down when zeoraid restarts; the array serves
/// zeo2, which the state calls optimal.
fn restart_without_zeo1(array: &mut Array) -> Json {
    array.members_mut()[0].kill9();
    release_zeo2(array);
    array.restart_zeoraid();
    array.wait_status("serving from zeo2", REJOIN, |s| {
        s["status"] == "degraded" && member(s, 1)["connected"] == true
    })
}

/// zeo2 restarted after it was killed holding the vote of the transaction
/// in doubt, which zeo1 has: it reports that transaction's tid though its
/// FileStorage dropped it. zeoraid restarts now, before any recovery: zeo2
/// must start degraded, behind, with that transaction as its first missed,
/// no reader may see the older revision, and its recovery gives it back.
fn zeoraid_restarts_before_zeo2_is_recovered(array: &mut Array, doubt: &InDoubt) {
    let mut direct = array.member_client(1);
    assert_eq!(
        direct.last_transaction(),
        doubt.t2,
        "FileStorage reports the dropped transaction's tid"
    );
    let loaded = direct.load(doubt.oid).expect("load").expect("a revision");
    assert_eq!(loaded.start, doubt.t1, "zeo2 dropped the transaction");

    array.restart_zeoraid();
    let status = array.wait_status("zeo2 connected and degraded", REJOIN, |s| {
        s["status"] == "degraded" && member(s, 0)["connected"] == true && member(s, 1)["connected"] == true
    });
    assert_eq!(status["last_tid"], doubt.t2.to_hex(), "{status}");
    assert_eq!(member(&status, 1)["state"], "degraded", "{status}");
    assert_eq!(member(&status, 1)["kind"], "behind", "{status}");
    assert_eq!(
        member(&status, 1)["first_missed_tid"],
        doubt.t2.to_hex(),
        "{status}"
    );
    every_reader_sees(array, doubt.oid, doubt.t2);

    recover(array, "zeo2");
    every_reader_sees(array, doubt.oid, doubt.t2);
    let loaded = array
        .member_client(1)
        .load(doubt.oid)
        .expect("load")
        .expect("a revision");
    assert_eq!(loaded.start, doubt.t2, "zeo2 got the transaction back");
}

/// zeoraid is killed while the commit is in doubt and restarted with both
/// members reachable: the client never got an answer; the transaction that
/// reached zeo1 is served, zeo2 (which aborted its vote when its
/// connection closed) starts degraded behind it and is recovered, and new
/// tids are above every member's last.
#[test]
fn an_in_doubt_commit_that_reached_an_optimal_member_is_served_after_a_restart() {
    let mut array = relayed_array();
    let mut doubt = finish_in_doubt(&array);
    let before = state(&array);
    kill_zeoraid_in_doubt(&mut array, &mut doubt);
    // Nothing about the commit in doubt was written: the state still calls
    // both members optimal, its last tid a floor below it.
    assert!(before["members"]["zeo2"].get("degraded").is_none(), "{before}");
    let floor = before["last_tid"].as_str().expect("a last tid");
    assert!(floor <= doubt.t1.to_hex().as_str(), "{before}");
    // zeo2's connection closes: it aborts the vote.
    release_zeo2(&array);
    assert_eq!(array.member_client(1).last_transaction(), doubt.t1);

    array.restart_zeoraid();
    let status = array.wait_status("serving with zeo2 behind", REJOIN, |s| {
        s["status"] == "degraded" && member(s, 1)["connected"] == true
    });
    assert_eq!(status["last_tid"], doubt.t2.to_hex(), "{status}");
    assert_eq!(member(&status, 0)["state"], "optimal", "{status}");
    assert_eq!(member(&status, 1)["kind"], "behind", "{status}");
    let reason = member(&status, 1)["reason"].as_str().unwrap();
    assert!(reason.contains("missing transactions"), "{reason}");
    every_reader_sees(&array, doubt.oid, doubt.t2);

    let t3 = array.client().commit(&[(doubt.oid, doubt.t2, ROOT_RECORD)]);
    assert!(t3 > doubt.t2, "{t3} is not above zeo1's {}", doubt.t2);
    recover(&array, "zeo2");
    every_reader_sees(&array, doubt.oid, t3);
    for m in 0..2 {
        let mut direct = array.member_client(m);
        assert_eq!(direct.last_transaction(), t3, "member {m}");
        let loaded = direct.load(doubt.oid).expect("load").expect("a revision");
        assert_eq!(loaded.start, t3, "member {m}");
    }
}

/// The same, but zeo1, the only member that got the transaction, is down
/// at the restart: the state calls zeo2 optimal too, so the array serves
/// zeo2's history, without the transaction in doubt (never acknowledged,
/// so no acknowledged commit is lost). zeo1 then returns above the array
/// and is marked diverged; new tids are above its last tid only because
/// tids follow the clock (zeoraid never learnt that tid).
#[test]
fn an_in_doubt_commit_whose_only_holder_is_down_at_restart_is_not_served_and_it_diverges() {
    let mut array = relayed_array();
    let mut doubt = finish_in_doubt(&array);
    kill_zeoraid_in_doubt(&mut array, &mut doubt);
    let status = restart_without_zeo1(&mut array);
    assert_eq!(status["last_tid"], doubt.t1.to_hex(), "{status}");
    assert_eq!(member(&status, 1)["state"], "optimal", "{status}");
    every_reader_sees(&array, doubt.oid, doubt.t1);

    array.members_mut()[0].restart();
    let status = array.wait_status("zeo1 diverged", REJOIN, |s| member(s, 0)["kind"] == "diverged");
    let reason = member(&status, 0)["reason"].as_str().unwrap();
    assert!(reason.contains(&doubt.t2.to_string()), "{reason}");
    assert_eq!(status["last_tid"], doubt.t1.to_hex(), "{status}");
    every_reader_sees(&array, doubt.oid, doubt.t1);

    let t3 = array.client().commit(&[(doubt.oid, doubt.t1, ROOT_RECORD)]);
    assert!(t3 > doubt.t2, "{t3} is not above zeo1's {}", doubt.t2);
    every_reader_sees(&array, doubt.oid, t3);
    let status = array.raid_status();
    assert_eq!(member(&status, 0)["kind"], "diverged", "{status}");
    assert_eq!(array.member_client(0).last_transaction(), doubt.t2);
}

/// A member killed after its vote, before its `tpc_finish` arrived,
/// reports after its restart the tid of the transaction its FileStorage
/// dropped. zeoraid restarted right away keeps it degraded (the state says
/// it missed that tid, and its connection finds its history ends below
/// it), recovers it from where its history really ends, and no read ever
/// returns the old revision.
#[test]
fn a_member_killed_between_vote_and_finish_stays_degraded_across_a_restart_and_is_recovered() {
    killed_between_vote_and_finish(relayed_array());
}

/// The same with zeo2 a ZEO 5.4 server on ZODB 5.8 (a member of an array
/// being upgraded): its FileStorage drops the voted transaction the same
/// way, and zeoraid keeps it degraded and recovers it the same way.
#[test]
fn a_zeo5_member_killed_between_vote_and_finish_stays_degraded_across_a_restart_and_is_recovered() {
    let mut options = ArrayOptions::new(2);
    options.zeo5_members = vec![1];
    killed_between_vote_and_finish(relayed_array_with(options));
}

fn killed_between_vote_and_finish(mut array: Array) {
    let mut doubt = finish_in_doubt(&array);
    array.members_mut()[1].kill9();
    // zeoraid sees zeo2 gone, degrades it and acknowledges the commit.
    let answer = doubt
        .client
        .read_reply(&doubt.finish)
        .map(|value| Reply::decode("tpc_finish", &value));
    assert!(
        matches!(answer, Ok(Ok(Reply::TpcFinish(Some(t)))) if t == doubt.t2),
        "tpc_finish: {answer:?}\n{}",
        array.context()
    );
    release_zeo2(&array);
    let written = state(&array);
    let zeo2 = &written["members"]["zeo2"]["degraded"];
    assert_eq!(zeo2["first_missed_tid"], doubt.t2.to_hex(), "{written}");

    array.members_mut()[1].restart();
    zeoraid_restarts_before_zeo2_is_recovered(&mut array, &doubt);
    let t3 = array.client().commit(&[(doubt.oid, doubt.t2, ROOT_RECORD)]);
    for m in 0..2 {
        assert_eq!(array.member_client(m).last_transaction(), t3, "member {m}");
    }
}

/// The holder of the commit in doubt is down at the restart and the array
/// takes a commit before it returns: it comes back behind the array's last
/// tid, so it is marked behind; its recovery finds the transaction the
/// source lacks and refuses, never overwriting it.
#[test]
fn an_in_doubt_holder_back_after_a_new_commit_is_behind_and_its_recovery_refuses() {
    let mut array = relayed_array();
    let mut doubt = finish_in_doubt(&array);
    kill_zeoraid_in_doubt(&mut array, &mut doubt);
    restart_without_zeo1(&mut array);
    let t3 = array.client().commit(&[(doubt.oid, doubt.t1, ROOT_RECORD)]);
    assert!(t3 > doubt.t2, "{t3} is not above zeo1's {}", doubt.t2);

    array.members_mut()[0].restart();
    let status = array.wait_status("zeo1 back", REJOIN, |s| member(s, 0)["connected"] == true);
    assert_eq!(member(&status, 0)["kind"], "behind", "{status}");
    let answer = http::request(array.http_addr(), "POST", "/members/zeo1/recover", None);
    assert_eq!(answer.code, 200, "{}", answer.body);
    let status = array.wait_status("the recovery ended", REJOIN, |s| {
        member(s, 0)["state"] == "degraded" && !member(s, 0)["last_recovery"].is_null()
    });
    let outcome = member(&status, 0)["last_recovery"].as_str().unwrap();
    assert!(outcome.contains("refused"), "{outcome}");
    assert_eq!(array.member_client(0).last_transaction(), doubt.t2);
    every_reader_sees(&array, doubt.oid, t3);
}

/// zeoraid and zeo2 die together while the commit is in doubt (one host
/// lost): zeo2 held the vote, and its FileStorage, reopened, drops the
/// transaction yet reports its tid. The state calls both members optimal
/// and knows nothing of the commit, so only zeo2's own history can tell:
/// its connection finds that transaction missing, so zeo2 starts behind
/// zeo1 instead of serving the older revision beside it, and is recovered.
#[test]
fn zeoraid_and_the_voting_member_lost_together_the_member_starts_behind() {
    let mut array = relayed_array();
    let mut doubt = finish_in_doubt(&array);
    kill_zeoraid_in_doubt(&mut array, &mut doubt);
    array.members_mut()[1].kill9();
    release_zeo2(&array);
    array.members_mut()[1].restart();
    zeoraid_restarts_before_zeo2_is_recovered(&mut array, &doubt);
}
