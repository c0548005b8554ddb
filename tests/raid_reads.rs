//! The read path under member failure: a read in flight on a member that
//! dies is answered by another member, transparently.

mod common;

use common::array::Array;
use std::time::Duration;

/// A new session's first read goes to the second reader (round-robin
/// starts after the first). That member is frozen, so the read is in
/// flight there, then killed. The controller usually drops the member from
/// the readers before the failed call returns, so the retry must pick any
/// untried reader of the current list (found by a test: it used to compare
/// its attempts with the shrunken list and give up).
#[test]
fn a_read_in_flight_on_a_member_that_dies_is_answered_by_another() {
    let mut array = Array::start(2);
    let probe = array.commit_probe();
    array.members_mut()[1].sigstop();
    let mut client = array.client();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let oid = probe.oid;
    let reader = std::thread::spawn(move || {
        let result = client.load(oid);
        let _ = done_tx.send(());
        result
    });
    assert!(
        done_rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the read was answered while its member was frozen: it did not go to the second member"
    );
    array.members_mut()[1].kill9();
    let loaded = reader
        .join()
        .expect("reader thread")
        .expect("the load is answered, not failed");
    let loaded = loaded.expect("a revision");
    assert_eq!((loaded.start, &loaded.data[..]), (probe.tid, &probe.data[..]));
}
