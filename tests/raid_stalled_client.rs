//! A client that stops in the middle of two-phase commit cannot hold the
//! array: a voted transaction whose client does not send `tpc_finish`
//! within `[timeouts] transaction` is aborted on every member, the next
//! writer commits, and the stalled client's late `tpc_finish` is refused
//! with the reason. The members stay optimal and identical.

mod common;

use common::array::{Array, ArrayOptions, LOG_WAIT};
use common::records::ROOT_RECORD;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use zeo::exceptions::ZeoError;
use zeo::reply::VoteResult;
use zeo::types::Tid;

/// `[timeouts] transaction` in these tests.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(2);

/// How long past the timeout the waiting writer may take: generous for a
/// loaded machine, far below "for ever".
const SLACK: Duration = Duration::from_secs(10);

fn array() -> Array {
    let mut options = ArrayOptions::new(2);
    options.tables = format!(
        "[timeouts]\ntransaction = \"{}s\"\n",
        TRANSACTION_TIMEOUT.as_secs()
    );
    Array::start_with(options)
}

/// Commits one new object from a new client on a thread; the receiver gets
/// the tid (or the failure) and how long the commit took.
fn commit_elsewhere(array: &Array) -> mpsc::Receiver<(Result<Tid, String>, Duration)> {
    let addr = array.addr();
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let mut client = common::rawclient::RawClient::connect_registered(addr);
        client.timeout = TRANSACTION_TIMEOUT + SLACK;
        let oid = client.new_oid();
        let started = Instant::now();
        let txn = client.begin();
        client.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
        let outcome = client
            .vote(&txn)
            .map_err(|e| format!("vote: {e:?}"))
            .and_then(|_| client.finish(&txn).map_err(|e| format!("tpc_finish: {e:?}")));
        let _ = done.send((outcome, started.elapsed()));
    });
    result
}

#[test]
fn a_client_that_voted_and_stopped_is_aborted_and_the_next_writer_commits() {
    let mut array = array();
    let since = array.log_mark();
    let mut stalled = array.client();
    let stalled_oid = stalled.new_oid();
    let txn = stalled.begin();
    stalled.store(&txn, stalled_oid, Tid::ZERO, ROOT_RECORD);
    match stalled.vote(&txn) {
        Ok(VoteResult::Oids(oids)) if oids.is_empty() => {}
        other => panic!("vote: {other:?}"),
    }
    // The stalled client holds the commit lock and sends nothing more.

    let waiting = commit_elsewhere(&array);
    let bound = TRANSACTION_TIMEOUT + SLACK;
    let (outcome, took) = waiting.recv_timeout(bound).unwrap_or_else(|_| {
        panic!(
            "the other writer's commit did not complete within {bound:?}\n{}",
            array.context()
        )
    });
    let committed = outcome.unwrap_or_else(|e| panic!("the other writer's commit failed: {e}"));
    assert!(took <= bound, "took {took:?}");
    array.wait_for_log(since, LOG_WAIT, "about the expired transaction", |l| {
        l["msg"] == "transaction aborted: its client voted and did not finish it in time"
    });

    // Its late tpc_finish is refused, naming the setting.
    match stalled.finish(&txn) {
        Err(ZeoError::StorageTransactionError(args)) => {
            let text = format!("{args:?}");
            assert!(text.contains("[timeouts] transaction"), "{text}");
        }
        other => panic!("tpc_finish of an expired transaction: {other:?}"),
    }
    // The client goes on: its next transaction commits.
    let later = stalled.commit(&[(stalled_oid, Tid::ZERO, ROOT_RECORD)]);
    assert!(later > committed);

    assert_eq!(
        array.raid_status()["status"],
        "optimal",
        "{}",
        array.raid_status()
    );
    array.assert_serving(&[]);
    let last: Vec<String> = array.members().iter().map(|m| m.last_transaction()).collect();
    assert!(last.iter().all(|t| *t == last[0]), "members differ: {last:?}");
}

#[test]
fn a_client_that_stores_without_voting_holds_nothing() {
    let array = array();
    let mut idle = array.client();
    let oid = idle.new_oid();
    let txn = idle.begin();
    idle.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
    // Buffered in its session until it votes: another writer is not held
    // back (the transaction timeout applies only to voted transactions, so
    // a lock held here would never be given up).
    let (outcome, _) = commit_elsewhere(&array)
        .recv_timeout(SLACK)
        .expect("a commit beside an open, unvoted transaction completes");
    outcome.expect("it commits");
}
