//! Iterators through zeoraid live on the member connection that started
//! them. A ZEO server numbers iterators per connection, so after the member
//! reconnects an old id may name another client's iterator on zeoraid's
//! shared connection: the old id must give its client an error, and must
//! neither read nor advance the other iterator.

mod common;

use common::array::Array;
use common::rawclient::RawClient;
use std::time::Duration;
use zeo::exceptions::ZeoError;
use zeo::methods::{IteratorGc, IteratorNext, IteratorStart, Request};
use zeo::reply::Reply;
use zeo::types::Tid;
use zeo::Value;

const REJOIN: Duration = Duration::from_secs(30);

fn start_iterator(client: &mut RawClient, start: Option<Tid>) -> i64 {
    let request = Request::IteratorStart(IteratorStart { start, stop: None });
    match client.call(request) {
        Ok(Reply::IteratorStart(iid)) => iid,
        other => panic!("iterator_start: {other:?}"),
    }
}

fn next(client: &mut RawClient, iid: i64) -> Result<Reply, ZeoError> {
    client.call(Request::IteratorNext(IteratorNext { iid }))
}

fn next_tid(client: &mut RawClient, iid: i64) -> Tid {
    match next(client, iid) {
        Ok(Reply::IteratorNext(Some(txn))) => txn.tid,
        other => panic!("iterator_next: {other:?}"),
    }
}

#[test]
fn an_iterator_of_a_member_connection_that_was_replaced_gives_its_client_an_error() {
    let mut array = Array::start(1);
    let probes: Vec<Tid> = (0..3).map(|_| array.commit_probe().tid).collect();

    // Member iterator ids count up per connection (zeoraid's own look-up
    // at connect may take one): the old client's last one is not the first.
    let mut old = array.client();
    let old_iid = (0..3).map(|_| start_iterator(&mut old, None)).last().unwrap();
    let first = next_tid(&mut old, old_iid);
    assert!(first <= probes[0], "{first} {probes:?}");

    array.members_mut()[0].restart();
    array.wait_status("optimal", REJOIN, |s| s["status"] == "optimal");

    // New iterators on the new connection: the member gives one of them
    // the id the old iterator had on the old connection.
    let mut new = array.client();
    let new_iids: Vec<i64> = (0..6)
        .map(|_| start_iterator(&mut new, Some(probes[2])))
        .collect();

    match next(&mut old, old_iid) {
        Err(ZeoError::Other { class, payload }) if class == "ZEO.Exceptions.ClientStorageError" => {
            let message = format!("{payload:?}");
            assert!(message.contains("re-established"), "{message}");
        }
        other => panic!("the old iterator answered {other:?} instead of an error"),
    }
    // Once told, the id is unknown, as a ZEO server says of a freed one.
    assert_eq!(
        next(&mut old, old_iid),
        Err(ZeoError::KeyError(Value::Int(old_iid)))
    );
    // Freeing it never frees the new client's iterator.
    old.oneway(Request::IteratorGc(IteratorGc { iids: vec![old_iid] }));
    old.call(Request::Ping).expect("ping");

    // The new client's iterators were neither read nor advanced nor freed.
    for iid in new_iids {
        assert_eq!(next_tid(&mut new, iid), probes[2]);
        assert_eq!(next(&mut new, iid), Ok(Reply::IteratorNext(None)));
    }
    // A client error, not a member failure.
    assert_eq!(array.raid_status()["status"], "optimal");
}
