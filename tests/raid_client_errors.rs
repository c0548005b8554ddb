//! A client's error is never a member failure (two real ZEO 6.2 members
//! behind zeoraid): a request the members cannot serve (a blob on members
//! without blobs, a reply larger than `max_frame_size`) gets the client an
//! error, and the members stay optimal and connected, with nothing written.

mod common;

use bytes::Bytes;
use common::array::{Array, ArrayOptions};
use common::records::ROOT_RECORD;
use common::runzeo::RunZeoOptions;
use zeo::exceptions::ZeoError;
use zeo::methods::{Request, SendBlob, StoreBlobChunk, StoreBlobEnd, TpcAbort};
use zeo::types::Tid;

/// Every member is optimal and connected, and each, asked directly, has
/// `last` as its last transaction.
fn assert_members_untouched(array: &Array, last: Tid) {
    assert!(
        array.all_members_up(),
        "a client's error degraded a member: {}",
        array.raid_status()
    );
    for i in 0..array.members().len() {
        assert_eq!(
            array.member_client(i).last_transaction(),
            last,
            "member {}",
            i + 1
        );
    }
}

/// The class name of a `ZeoError::Other`, or the error itself.
fn class_of(error: &ZeoError) -> String {
    match error {
        ZeoError::Other { class, .. } => class.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn blobs_on_members_without_blob_support_are_refused_and_the_members_stay_optimal() {
    let mut options = ArrayOptions::new(2);
    options.member_options = RunZeoOptions::new();
    let mut array = Array::start_with(options);
    let before = array.commit_probe();

    let mut client = array.client();
    let oid = client.new_oid();
    let txn = client.begin();
    client.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
    client.oneway(Request::StoreBlobStart);
    client.oneway(Request::StoreBlobChunk(StoreBlobChunk {
        chunk: Bytes::from_static(b"blob content"),
    }));
    client.oneway(Request::StoreBlobEnd(StoreBlobEnd {
        oid,
        serial: Tid::ZERO,
        data: Bytes::from_static(ROOT_RECORD),
        id: txn.clone(),
    }));
    let refused = client
        .vote(&txn)
        .expect_err("a blob store on members without blobs");
    assert_eq!(class_of(&refused), "ZODB.POSException.Unsupported", "{refused:?}");
    client
        .call(Request::TpcAbort(TpcAbort { id: txn }))
        .expect("tpc_abort");
    assert_members_untouched(&array, before.tid);

    // A download is an error reply of the member: an answer, not a failure.
    let download = client.call(Request::SendBlob(SendBlob {
        oid: before.oid,
        serial: before.tid,
    }));
    assert!(download.is_err(), "sendBlob without blobs answered {download:?}");
    assert_members_untouched(&array, before.tid);
    array.assert_serving(&[&before]);
}
