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
use zeo::methods::{Request, SendBlob, StoreBlobChunk, StoreBlobEnd, TpcAbort, UndoInfo, UndoLog, Undoa};
use zeo::reply::Reply;
use zeo::types::Tid;
use zeo::Value;

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

/// The smallest `max_frame_size` zeoraid accepts (a blob chunk with its
/// envelope).
const SMALL_FRAMES: &str = "max_frame_size = 65536";

#[test]
fn a_reply_over_max_frame_size_is_the_clients_error_and_the_members_stay_optimal() {
    let mut options = ArrayOptions::new(2);
    options.top_level.push(SMALL_FRAMES.into());
    let mut array = Array::start_with(options);
    let mut client = array.client();
    // 30 transactions with 3000-byte descriptions: their undo log is over
    // 90 000 bytes, each transaction far below the limit.
    let mut last = Tid::ZERO;
    for _ in 0..30 {
        let oid = client.new_oid();
        let stores = [(oid, Tid::ZERO, ROOT_RECORD)];
        last = client
            .try_commit_as(None, " ", &[b'd'; 3000], &stores)
            .expect("a small commit");
    }
    let since = array.log_mark();

    let whole_log = [
        Request::UndoLog(UndoLog {
            first: 0,
            last: 1_000_000_000,
        }),
        Request::UndoInfo(UndoInfo {
            first: 0,
            last: 1_000_000_000,
            spec: Value::None,
        }),
    ];
    for request in whole_log {
        let name = request.name().to_owned();
        let error = client.call(request).expect_err("a reply over max_frame_size");
        let text = format!("{error:?}");
        assert_eq!(
            class_of(&error),
            "ZEO.Exceptions.ClientStorageError",
            "{name}: {text}"
        );
        assert!(text.contains("max_frame_size"), "{name}: {text}");
        assert_members_untouched(&array, last);
    }
    let member_changes = array.find_log(since, |l| l["msg"] == "member state change");
    assert!(
        member_changes.is_none(),
        "a member connection changed state: {member_changes:?}"
    );

    // What fits still comes back, on the same member connections.
    match client.call(Request::UndoLog(UndoLog { first: 0, last: 2 })) {
        Ok(Reply::UndoLog(entries)) => assert_eq!(entries.len(), 2),
        other => panic!("undoLog(0, 2): {other:?}"),
    }
    array.assert_serving(&[]);
}

/// An undo of a transaction that changed thousands of objects: every
/// member's vote lists each undone oid, a reply over `max_frame_size`.
/// That is the client's request, too large to answer: its vote fails with
/// a `ClientStorageError` naming the limit, the transaction is aborted
/// everywhere, and the members stay optimal (before, each oversized vote
/// reply degraded its member, and the array failed).
#[test]
fn a_vote_reply_over_max_frame_size_is_the_clients_error_and_the_members_stay_optimal() {
    const OBJECTS: usize = 7000;
    let mut options = ArrayOptions::new(2);
    options.top_level.push(SMALL_FRAMES.into());
    let mut array = Array::start_with(options);
    let mut client = array.client();
    let oids: Vec<_> = (0..OBJECTS).map(|_| client.new_oid()).collect();
    let stores: Vec<_> = oids.iter().map(|oid| (*oid, Tid::ZERO, ROOT_RECORD)).collect();
    let last = client.commit(&stores);
    let trans_id = match client.call(Request::UndoLog(UndoLog { first: 0, last: 1 })) {
        Ok(Reply::UndoLog(entries)) => entries[0].dict_get("id").expect("an undo id").clone(),
        other => panic!("undoLog(0, 1): {other:?}"),
    };
    let since = array.log_mark();
    let txn = client.begin();
    client.oneway(Request::Undoa(Undoa {
        trans_id,
        id: txn.clone(),
    }));
    let error = client.vote(&txn).expect_err("a vote reply over max_frame_size");
    let text = format!("{error:?}");
    assert_eq!(class_of(&error), "ZEO.Exceptions.ClientStorageError", "{text}");
    assert!(text.contains("max_frame_size"), "{text}");
    client
        .call(Request::TpcAbort(TpcAbort { id: txn }))
        .expect("tpc_abort");
    assert_members_untouched(&array, last);
    let member_changes = array.find_log(since, |l| l["msg"] == "member state change");
    assert!(
        member_changes.is_none(),
        "a member connection changed state: {member_changes:?}"
    );
    array.assert_serving(&[]);
}
