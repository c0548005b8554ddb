//! Graceful shutdown (SIGTERM/SIGINT): zeoraid stops accepting clients,
//! lets a transaction already voting finish (bounded by the commit
//! deadline, then aborts it on every member; a commit whose `tpc_finish` is
//! already out is waited for), closes its members and exits 0. Either way
//! the members stay identical.

mod common;

use common::array::{Array, ArrayOptions};
use common::rawclient::RawClient;
use common::records::ROOT_RECORD;
use std::time::Duration;
use zeo::methods::{LoadSerial, Request, TxnId};
use zeo::reply::{Reply, VoteResult};
use zeo::types::{Oid, Tid};

/// Bound for zeoraid to exit after the signal: the commit deadline used
/// here (2 s) plus generous slack.
const EXIT_WITHIN: Duration = Duration::from_secs(20);

fn array() -> Array {
    let mut options = ArrayOptions::new(2);
    options.tables = "[timeouts]\ncommit = \"2s\"\n".into();
    Array::start_with(options)
}

/// Both members hold the same last transaction; returns it.
fn members_identical(array: &Array) -> Tid {
    let lasts: Vec<Tid> = (0..2)
        .map(|m| array.member_client(m).last_transaction())
        .collect();
    assert_eq!(lasts[0], lasts[1], "members differ after shutdown");
    lasts[0]
}

/// A new object stored and voted on; the transaction waits for tpc_finish.
fn voted_transaction(client: &mut RawClient) -> (Oid, TxnId) {
    let oid = client.new_oid();
    let txn = client.begin();
    client.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
    assert!(matches!(client.vote(&txn), Ok(VoteResult::Oids(o)) if o.is_empty()));
    (oid, txn)
}

#[test]
fn a_voted_transaction_finishes_after_sigterm_and_zeoraid_exits_0() {
    let mut array = array();
    let mut client = array.client();
    let (oid, txn) = voted_transaction(&mut client);
    let mark = array.log_mark();
    array.signal_zeoraid(libc::SIGTERM);
    array.wait_for_log(mark, Duration::from_secs(10), "draining", |l| {
        l["msg"] == "draining"
    });
    // A client that is not committing yet cannot start now...
    assert!(
        std::net::TcpStream::connect(array.addr()).is_err() || !RawClient::connect(array.addr()).is_open(),
        "zeoraid still accepts clients while shutting down"
    );
    // ...but the one that voted finishes.
    let tid = client.finish(&txn).expect("tpc_finish after SIGTERM");
    let status = array.wait_zeoraid_exit(EXIT_WITHIN);
    assert!(status.success(), "exit status {status}\n{}", array.context());
    assert_eq!(
        members_identical(&array),
        tid,
        "the transaction is on both members"
    );
    for m in 0..2 {
        let mut member = array.member_client(m);
        let data = member.call(Request::LoadSerial(LoadSerial { oid, serial: tid }));
        assert!(matches!(data, Ok(Reply::LoadSerial(_))), "member {m}: {data:?}");
    }
}

#[test]
fn a_transaction_that_does_not_finish_in_time_is_aborted_on_every_member() {
    let mut array = array();
    let mut client = array.client();
    let before = members_identical(&array);
    voted_transaction(&mut client);
    // The client never sends tpc_finish.
    let mark = array.log_mark();
    array.signal_zeoraid(libc::SIGTERM);
    let status = array.wait_zeoraid_exit(EXIT_WITHIN);
    assert!(status.success(), "exit status {status}\n{}", array.context());
    let stopped = array
        .find_log(mark, |l| l["msg"] == "zeoraid stopped")
        .unwrap_or_else(|| panic!("no 'zeoraid stopped' line\n{}", array.context()));
    assert_eq!(stopped["transactions_aborted"], 1, "{stopped}");
    // Aborted everywhere: nothing committed, and no member still holds
    // the transaction (its commit lock): a direct commit goes through.
    assert_eq!(members_identical(&array), before);
    for m in 0..2 {
        let mut member = array.member_client(m);
        let oid = member.new_oid();
        member.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    }
}

/// A commit whose `tpc_finish` went to the members before the shutdown
/// deadline, but is answered only after it, is waited for (within its own
/// commit deadline) and acknowledged; the members are closed after it, not
/// under it.
#[test]
fn a_commit_whose_tpc_finish_is_out_at_the_shutdown_deadline_is_waited_for() {
    // The member replies take 1.5 s from here on; the drain deadline is the
    // commit deadline, 2 s. tpc_finish is sent 1 s into the drain: its
    // answer comes 0.5 s after the drain deadline, 0.5 s before its own.
    const REPLY_DELAY: Duration = Duration::from_millis(1500);
    const FINISH_AFTER: Duration = Duration::from_secs(1);
    let mut options = ArrayOptions::new(2);
    options.tables = "[timeouts]\ncommit = \"2s\"\n[slow_member]\nenabled = false\n".into();
    options.relayed = vec![0, 1];
    let mut array = Array::start_with(options);
    let mut client = array.client();
    let (oid, txn) = voted_transaction(&mut client);
    for m in 0..2 {
        array.relay(m).delay_server_replies(REPLY_DELAY);
    }
    let mark = array.log_mark();
    array.signal_zeoraid(libc::SIGTERM);
    array.wait_for_log(mark, Duration::from_secs(10), "draining", |l| {
        l["msg"] == "draining"
    });
    std::thread::sleep(FINISH_AFTER);
    let tid = client.finish(&txn).unwrap_or_else(|e| {
        panic!(
            "tpc_finish across the shutdown deadline: {e:?}\n{}",
            array.context()
        )
    });
    let status = array.wait_zeoraid_exit(EXIT_WITHIN);
    assert!(status.success(), "exit status {status}\n{}", array.context());
    assert!(
        array
            .find_log(mark, |l| l["msg"]
                == "shutdown deadline: waiting for the commit whose tpc_finish was sent")
            .is_some(),
        "the drain deadline passed while tpc_finish was out\n{}",
        array.context()
    );
    assert_eq!(members_identical(&array), tid, "the commit is on both members");
    for m in 0..2 {
        let mut member = array.member_client(m);
        let data = member.call(Request::LoadSerial(LoadSerial { oid, serial: tid }));
        assert!(matches!(data, Ok(Reply::LoadSerial(_))), "member {m}: {data:?}");
    }
}
