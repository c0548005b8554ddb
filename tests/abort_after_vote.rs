//! A member that keeps a transaction zeoraid aborted after its vote,
//! through a real zeoraid with real runzeo members. RelStorage 4.3 on
//! SQLite keeps the (empty) transaction of a given-tid transaction
//! aborted once its vote started (`tests/python/test_relstorage_members.py`):
//! after a client's `tpc_abort` following its vote, or a vote refused by a
//! conflict, zeoraid finds it in that member's history and degrades the
//! member as diverged, naming the tid, while the FileStorage member serves
//! on; the wipe and full copy of the runbook bring it back. FileStorage
//! members keep nothing and stay optimal. A member cut off between the
//! abort and its check is not trusted on its return: only a recovery,
//! which reads its history, brings it back.

mod common;

use common::array::{assert_scrub_finds_them_identical, Array, ArrayOptions};
use common::rawclient::RawClient;
use common::records::ROOT_RECORD;
use common::runzeo::RunZeoOptions;
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::time::Duration;
use zeo::methods::{Request, TpcAbort};
use zeo::types::{Oid, Tid};

/// Bound for the check after an abort, a recovery or a scrub.
const ENDS: Duration = Duration::from_secs(60);

fn array_of(zeo1: RunZeoOptions, zeo2: RunZeoOptions, log_level: &str) -> Array {
    let mut options = ArrayOptions::new(2);
    options.member_kinds = vec![Some(zeo1.blobs()), Some(zeo2.blobs())];
    options.tables = "[recovery]\nauto = false\n".into();
    options.log_level = log_level.into();
    Array::start_with(options)
}

fn sqlite() -> RunZeoOptions {
    RunZeoOptions::new().relstorage_sqlite()
}

fn member<'a>(status: &'a Json, name: &str) -> &'a Json {
    status["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no member {name} in {status}"))
}

/// The root object, committed through zeoraid: what the transactions
/// below change.
fn commit_root(array: &Array) -> Tid {
    array.client().commit(&[(Oid::ZERO, Tid::ZERO, ROOT_RECORD)])
}

/// A transaction changing the root (current at `serial`), voted (the
/// vote's answer returned) and then aborted by the client.
fn vote_then_abort(client: &mut RawClient, serial: Tid) -> Result<(), zeo::exceptions::ZeoError> {
    let txn = client.begin();
    client.store(&txn, Oid::ZERO, serial, ROOT_RECORD);
    let voted = client.vote(&txn).map(|_| ());
    client
        .call(Request::TpcAbort(TpcAbort { id: txn }))
        .expect("tpc_abort after the vote");
    voted
}

/// The tids in member `index`'s history, read from the member directly.
fn tids_of(array: &Array, index: usize) -> BTreeSet<Tid> {
    let history = array.member_client(index).history();
    history.into_iter().map(|(txn, _)| txn.tid).collect()
}

/// Waits until zeo2 is degraded as diverged; checks that it kept exactly
/// one transaction zeo1 lacks, named in its reason and in the log line
/// since log line `since`, and that zeo1 is optimal. Returns that
/// transaction's tid.
fn assert_zeo2_diverged_keeping_one(array: &Array, since: usize) -> Tid {
    let status = array.wait_status("zeo2 diverged", ENDS, |s| member(s, "zeo2")["kind"] == "diverged");
    assert_eq!(member(&status, "zeo1")["state"], "optimal", "{status}");
    assert_eq!(status["status"], "degraded", "{status}");
    let kept: Vec<Tid> = tids_of(array, 1)
        .difference(&tids_of(array, 0))
        .copied()
        .filter(|&t| t != Tid::ZERO)
        .collect();
    assert_eq!(kept.len(), 1, "zeo2 holds {kept:?} that zeo1 lacks");
    let reason = member(&status, "zeo2")["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "kept transaction {} that was aborted after its vote",
            kept[0]
        )),
        "{reason}"
    );
    let line = array.wait_for_log(since, ENDS, "member degraded", |l| {
        l["msg"] == "member degraded" && l["member"] == "zeo2"
    });
    assert_eq!(line["kind"], "diverged", "{line}");
    kept[0]
}

/// The array serves the root at `serial` from zeo1 and commits on.
fn assert_serves_and_commits(array: &Array, serial: Tid) -> Tid {
    let mut client = array.client();
    let current = client.load(Oid::ZERO).expect("load").expect("the root");
    assert_eq!(current.start, serial);
    let next = client.commit(&[(Oid::ZERO, serial, ROOT_RECORD)]);
    let on_zeo1 = array
        .member_client(0)
        .load(Oid::ZERO)
        .expect("load")
        .expect("root");
    assert_eq!(on_zeo1.start, next, "zeo1 did not commit the next transaction");
    next
}

#[test]
fn a_sqlite_member_keeping_a_transaction_aborted_after_its_vote_is_diverged_until_wiped() {
    let mut array = array_of(RunZeoOptions::new(), sqlite(), "info");
    let root = commit_root(&array);
    let since = array.log_mark();
    vote_then_abort(&mut array.client(), root).expect("the vote");
    let kept = assert_zeo2_diverged_keeping_one(&array, since);
    assert!(kept > root, "{kept} is not after the last commit {root}");
    let last = assert_serves_and_commits(&array, root);

    // Recovery refuses it, incremental (its history has the transaction
    // the source lacks) and full (it holds transactions: zeoraid deletes
    // no data), naming why.
    let refusal = recovery_refused(&array, "");
    assert!(
        refusal.contains(&format!(
            "zeo1 lacks transaction {kept} that zeo2 has: it diverged"
        )),
        "{refusal}"
    );
    let refusal = recovery_refused(&array, "?full=true");
    assert!(refusal.contains("a full copy needs an empty member"), "{refusal}");

    // The runbook's way back: the member wiped, then copied in full.
    array.members_mut()[1].restart_empty();
    array.wait_status("zeo2 connected", ENDS, |s| member(s, "zeo2")["connected"] == true);
    array.post_ok("/members/zeo2/recover?full=true");
    array.wait_status("zeo2 optimal", ENDS, |s| member(s, "zeo2")["state"] == "optimal");
    assert_eq!(
        tids_of(&array, 0),
        tids_of(&array, 1)
            .into_iter()
            .filter(|&t| t != Tid::ZERO)
            .collect()
    );
    assert_scrub_finds_them_identical(&array, ENDS);
    assert_serves_and_commits(&array, last);
}

#[test]
fn a_sqlite_member_keeping_a_vote_refused_by_a_conflict_is_diverged() {
    let array = array_of(RunZeoOptions::new(), sqlite(), "info");
    let root = commit_root(&array);
    let since = array.log_mark();
    let refused = vote_then_abort(&mut array.client(), Tid::ZERO).expect_err("a conflict");
    assert!(refused.is_conflict(), "{refused:?}");
    assert_zeo2_diverged_keeping_one(&array, since);
    assert_serves_and_commits(&array, root);
}

/// FileStorage keeps nothing of an aborted transaction: each member's
/// check finds nothing, and both stay optimal.
#[test]
fn filestorage_members_keep_nothing_of_a_transaction_aborted_after_its_vote() {
    let array = array_of(RunZeoOptions::new(), RunZeoOptions::new(), "debug");
    let root = commit_root(&array);
    let since = array.log_mark();
    vote_then_abort(&mut array.client(), root).expect("the vote");
    for name in ["zeo1", "zeo2"] {
        array.wait_for_log(since, ENDS, &format!("{name}'s check"), |l| {
            l["msg"] == "aborted transaction left nothing on the member" && l["member"] == name
        });
    }
    let status = array.raid_status();
    assert_eq!(status["status"], "optimal", "{status}");
    assert_eq!(tids_of(&array, 0), tids_of(&array, 1));
    let next = array.client().commit(&[(Oid::ZERO, root, ROOT_RECORD)]);
    assert!(next > root);
}

/// Asks for zeo2's recovery (`query`: "" or "?full=true") and waits until
/// it is refused; the refusal. zeo2 stays diverged.
fn recovery_refused(array: &Array, query: &str) -> String {
    let since = array.log_mark();
    array.post_ok(&format!("/members/zeo2/recover{query}"));
    let line = array.wait_for_log(since, ENDS, "recovery ended", |l| {
        l["msg"] == "recovery ended" && l["member"] == "zeo2"
    });
    let status = array.raid_status();
    let zeo2 = member(&status, "zeo2");
    assert_eq!(zeo2["kind"], "diverged", "{status}");
    let refusal = zeo2["last_recovery"].as_str().unwrap_or_default().to_string();
    assert!(refusal.starts_with("refused"), "{refusal}");
    assert_eq!(line["outcome"], refusal.as_str(), "{line}");
    refusal
}

fn relayed_array_of(zeo2: RunZeoOptions) -> Array {
    let mut options = ArrayOptions::new(2);
    options.member_kinds = vec![Some(RunZeoOptions::new().blobs()), Some(zeo2.blobs())];
    options.relayed = vec![1];
    options.tables = "[recovery]\nauto = false\n".into();
    Array::start_with(options)
}

/// A client's transaction voted on both members, then aborted while
/// zeo2's link hangs; the link is cut and comes back. zeo2's server
/// aborted the transaction itself when its connection closed, and zeoraid
/// could not check it. Returns zeo2's status once it is connected again
/// and zeoraid has judged it (optimal, or degraded with a first missed
/// tid).
fn abort_cut_off_from_zeo2(array: &Array) -> Json {
    let root = commit_root(array);
    let mut client = array.client();
    let txn = client.begin();
    client.store(&txn, Oid::ZERO, root, ROOT_RECORD);
    client.vote(&txn).expect("the vote");
    array.relay(1).stall();
    client
        .call(Request::TpcAbort(TpcAbort { id: txn }))
        .expect("tpc_abort after the vote");
    array.relay(1).cut();
    array.relay(1).resume();
    let status = array.wait_status("zeo2 connected again and judged", ENDS, |s| {
        let zeo2 = member(s, "zeo2");
        zeo2["connected"] == true && (zeo2["state"] == "optimal" || !zeo2["first_missed_tid"].is_null())
    });
    member(&status, "zeo2").clone()
}

/// zeo2 (RelStorage on SQLite) kept the transaction its server aborted
/// when the connection to zeoraid was cut, before zeoraid could check it:
/// its connection coming back does not make it optimal (the aborted tid is
/// marked as the first it missed), and its recovery finds the transaction
/// and refuses, naming it; zeo2 stays out of the array.
#[test]
fn a_sqlite_member_cut_off_before_its_check_comes_back_only_through_a_recovery_that_refuses_it() {
    let array = relayed_array_of(sqlite());
    let zeo2 = abort_cut_off_from_zeo2(&array);
    assert_eq!(zeo2["state"], "degraded", "{zeo2}");
    let kept: Vec<Tid> = tids_of(&array, 1)
        .difference(&tids_of(&array, 0))
        .copied()
        .collect();
    assert_eq!(kept.len(), 1, "zeo2 holds {kept:?} that zeo1 lacks");
    assert_eq!(zeo2["first_missed_tid"], kept[0].to_hex(), "{zeo2}");
    let since = array.log_mark();
    array.post_ok("/members/zeo2/recover");
    let line = array.wait_for_log(since, ENDS, "recovery ended", |l| {
        l["msg"] == "recovery ended" && l["member"] == "zeo2"
    });
    let outcome = line["outcome"].as_str().unwrap_or_default();
    assert!(
        outcome.starts_with("refused") && outcome.contains(&format!("zeo2 has transaction {}", kept[0])),
        "{line}"
    );
    let status = array.raid_status();
    assert_eq!(member(&status, "zeo2")["state"], "degraded", "{status}");
}

/// The same cut with a FileStorage zeo2, which keeps nothing: it also
/// waits for a recovery, which finds its history whole and makes it
/// optimal with both members holding the same transactions.
#[test]
fn a_filestorage_member_cut_off_before_its_check_is_recovered() {
    let array = relayed_array_of(RunZeoOptions::new());
    let zeo2 = abort_cut_off_from_zeo2(&array);
    assert_eq!(zeo2["state"], "degraded", "{zeo2}");
    array.post_ok("/members/zeo2/recover");
    array.wait_status("zeo2 optimal", ENDS, |s| member(s, "zeo2")["state"] == "optimal");
    assert_eq!(tids_of(&array, 0), tids_of(&array, 1));
}
