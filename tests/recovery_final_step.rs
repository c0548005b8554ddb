//! The final step of a recovery copies the last transactions under the
//! commit lock; `[recovery] final_step_timeout` bounds how long one slice
//! of it may hold the lock whatever happens. Here the target hangs (its
//! network stalls, a fault a real server cannot inject, hence the relay)
//! just as the final step starts: the step is abandoned, other clients'
//! commits go on, and the recovery is tried again and succeeds once the
//! network is back. Real members.
//!
//! Every wait is bounded and polls for its condition.

mod common;

use common::array::{Array, ArrayOptions};
use common::http::request;
use common::rawclient::RawClient;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use zeo::reply::VoteResult;
use zeo::types::Tid;

/// Longer than the final step's bound plus a commit, far shorter than
/// the member call timeouts that would end a hung step without the bound.
const COMMIT_WAIT: Duration = Duration::from_secs(20);
const WITHIN: Duration = Duration::from_secs(30);

#[test]
fn a_final_step_on_a_hung_member_is_abandoned_and_retried_while_commits_go_on() {
    let mut options = ArrayOptions::new(2);
    options.relayed = vec![1];
    options.tables = "[recovery]\nauto = false\nstable_for = \"300ms\"\nfinal_step_timeout = \"1s\"\n".into();
    let array = Array::start_with(options);
    let disabled = request(array.http_addr(), "POST", "/members/zeo2/disable", None);
    assert_eq!(disabled.code, 200, "{}", disabled.body);
    let before: Vec<_> = (0..3).map(|_| array.commit_probe()).collect();

    // A client votes and holds the commit lock, so the recovery's final
    // step waits behind it.
    let mut holder = RawClient::connect_registered(array.addr());
    let oid = holder.new_oid();
    let txn = holder.begin();
    holder.store(&txn, oid, Tid::ZERO, b"held by a voter");
    assert!(matches!(holder.vote(&txn), Ok(VoteResult::Oids(o)) if o.is_empty()));

    let mark = array.log_mark();
    let recover = request(array.http_addr(), "POST", "/members/zeo2/recover", None);
    assert_eq!(recover.code, 200, "{}", recover.body);
    // Caught up and its oid counter synced: only the final step is left.
    array.wait_for_log(mark, WITHIN, "recovery synced the oid counter", |l| {
        l["msg"] == "recovery synced the oid counter"
    });
    array.relay(1).stall();
    let mark = array.log_mark();
    holder.finish(&txn).expect("the holder's commit");

    // The final step now copies the holder's transaction to a member that
    // does not answer; another client's commit must not wait for it.
    let (done, committed) = mpsc::channel();
    let addr = array.addr();
    thread::spawn(move || {
        let mut client = RawClient::connect_registered(addr);
        let oid = client.new_oid();
        let tid = client.commit(&[(oid, Tid::ZERO, b"committed beside a hung final step")]);
        let _ = done.send(tid);
    });
    let tid = committed.recv_timeout(COMMIT_WAIT).unwrap_or_else(|_| {
        panic!(
            "a commit waited more than {COMMIT_WAIT:?} behind a hung final step\n{}",
            array.context()
        )
    });
    let abandoned = array.wait_for_log(mark, WITHIN, "recovery ended", |l| l["msg"] == "recovery ended");
    let outcome = abandoned["outcome"].as_str().unwrap_or_default();
    assert!(outcome.starts_with("final step abandoned"), "{abandoned}");
    assert!(outcome.contains("final_step_timeout"), "{abandoned}");
    assert!(tid > before[2].tid);

    // The abandoned copy is still stuck in the transaction it had begun on
    // the member: no other recovery may write to the member meanwhile.
    let again = request(array.http_addr(), "POST", "/members/zeo2/recover", None);
    assert_ne!(again.code, 200, "{}", again.body);
    assert!(again.body.contains("still finishing"), "{}", again.body);

    // The network comes back: the recovery is tried again by itself and
    // makes the member optimal, with everything committed meanwhile.
    array.relay(1).resume();
    array.wait_status("zeo2 optimal again", WITHIN, |s| {
        s["members"]
            .as_array()
            .is_some_and(|ms| ms.iter().all(|m| m["state"] == "optimal"))
    });
    array.wait_for_log(mark, WITHIN, "the retry", |l| {
        l["msg"] == "recovery tried again after an abandoned final step"
    });
    let after = array.commit_probe();
    for probe in before.iter().chain([&after]) {
        array.assert_on_every_member(probe);
    }
}
