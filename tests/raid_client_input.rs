//! What one client asks for in `tpc_begin` cannot break the array (in
//! front of two real ZEO 6.2 members): a transaction status other than
//! `' '` or `'p'`, a tid far in the future and a tid with no room after it
//! are refused at the vote with `StorageTransactionError`, before anything
//! reaches a member; the members stay optimal and the next commit works;
//! no two transactions ever get the same tid.

mod common;

use common::array::{Array, ArrayOptions};
use common::rawclient::RawClient;
use common::records::ROOT_RECORD;
use std::time::{Duration, SystemTime};
use zeo::exceptions::ZeoError;
use zeo::types::{Oid, Tid, P64};
use zeoraid_actors::tid::{timestamp, LAST_USABLE};

/// One transaction storing a new object, begun with `tid` and `status`:
/// the object and its tid, or the vote's error.
fn commit_with(client: &mut RawClient, tid: Option<Tid>, status: &str) -> Result<(Oid, Tid), ZeoError> {
    let oid = client.new_oid();
    let stores = [(oid, Tid::ZERO, ROOT_RECORD)];
    client
        .try_commit_as(tid, status, b"tpc_begin arguments under test", &stores)
        .map(|tid| (oid, tid))
}

/// `result` is a refusal with `StorageTransactionError` whose message
/// contains `words`.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, ZeoError>, words: &str) {
    match result {
        Err(ZeoError::StorageTransactionError(args)) => {
            let text = format!("{args:?}");
            assert!(text.contains(words), "refusal {text} lacks {words:?}");
        }
        other => panic!("expected a StorageTransactionError ({words}), got {other:?}"),
    }
}

/// Every member, asked directly, has `last` as its last transaction, and
/// zeoraid says every member is optimal and connected.
fn assert_members_at(array: &Array, last: Tid) {
    for i in 0..array.members().len() {
        let on_member = array.member_client(i).last_transaction();
        assert_eq!(on_member, last, "member {} wrote a refused transaction", i + 1);
    }
    assert!(
        array.all_members_up(),
        "a refused commit degraded a member: {}",
        array.raid_status()
    );
}

#[test]
fn only_the_statuses_clients_send_are_accepted() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    let mut client = array.client();
    for status in ["c", "u", "x", "  "] {
        assert_refused(commit_with(&mut client, None, status), "transaction status");
        assert_members_at(&array, before.tid);
    }
    // A restore of packed history commits as usual.
    let (_, restored) = commit_with(&mut client, None, "p").expect("a commit with status 'p'");
    assert_members_at(&array, restored);
    array.assert_serving(&[&before]);
}

#[test]
fn an_explicit_tid_beyond_the_skew_is_refused() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    let mut client = array.client();
    // The default skew is an hour.
    let two_hours_ahead = timestamp(SystemTime::now() + Duration::from_secs(2 * 3600));
    assert_refused(
        commit_with(&mut client, Some(two_hours_ahead), " "),
        "explicit_tid_skew",
    );
    assert_members_at(&array, before.tid);
    let after = array.assert_serving(&[&before]);
    assert!(
        after.tid < two_hours_ahead,
        "the refused tid pinned later commits"
    );
}

#[test]
fn tids_near_the_end_are_never_repeated_and_run_out_with_an_error() {
    let mut options = ArrayOptions::new(2);
    // Past the last time a tid can express: any tid is within the skew.
    options.tables = "[limits]\nexplicit_tid_skew = \"3000000d\"\n".into();
    let array = Array::start_with(options);
    let before = array.commit_probe();
    let mut client = array.client();

    let past_the_end = Tid::from_u64(u64::MAX - 2);
    assert_refused(
        commit_with(&mut client, Some(past_the_end), " "),
        "last usable tid",
    );
    assert_refused(
        commit_with(&mut client, Some(P64::MAX_TID), " "),
        "last usable tid",
    );
    assert_members_at(&array, before.tid);

    let asked = Tid::from_u64(LAST_USABLE.as_u64() - 2);
    let mut commits = vec![commit_with(&mut client, Some(asked), " ").expect("the asked tid")];
    for _ in 0..2 {
        commits.push(commit_with(&mut client, None, " ").expect("a commit after the asked tid"));
    }
    let tids: Vec<Tid> = commits.iter().map(|(_, tid)| *tid).collect();
    assert_eq!(
        tids,
        [asked, Tid::from_u64(asked.as_u64() + 1), LAST_USABLE],
        "each commit gets the next tid"
    );
    assert_refused(commit_with(&mut client, None, " "), "no tid is left");
    assert_refused(commit_with(&mut client, None, " "), "no tid is left");
    assert_members_at(&array, LAST_USABLE);
    // The last transaction is readable as the current revision.
    let (oid, _) = commits[2];
    match array.client().load(oid) {
        Ok(Some(current)) => assert_eq!((current.start, current.end), (LAST_USABLE, None)),
        other => panic!("load of {oid} committed at the last usable tid: {other:?}"),
    }
}
