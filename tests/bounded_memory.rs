//! What zeoraid holds in memory for a large blob commit: the upload is
//! spooled to disk, and at the vote each member's connection reads it back
//! from the spool one window at a time. Before, the blob was read back
//! whole and encoded once per member, so a commit of a blob of B bytes
//! with 2 members cost zeoraid about 3 B of memory. Real members.

mod common;

use bytes::Bytes;
use common::array::Array;
use common::rawclient::RawClient;
use common::records::ROOT_RECORD;
use zeo::methods::{Request, StoreBlobChunk, StoreBlobEnd};
use zeo::reply::VoteResult;
use zeo::types::Tid;

const BLOB_MB: u64 = 96;

#[test]
fn a_large_blob_commit_with_two_members_costs_zeoraid_a_window_not_the_blob() {
    let array = Array::start(2);
    let peak_before = array.zeoraid_proc_status_kib("VmHWM").expect("zeoraid's VmHWM");
    let mut client = RawClient::connect_registered(array.addr());
    let oid = client.new_oid();
    let txn = client.begin();
    client.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
    client.oneway(Request::StoreBlobStart);
    let chunk: Vec<u8> = (0..59_000u32).map(|i| (i % 251) as u8).collect();
    let chunks = (BLOB_MB << 20).div_ceil(chunk.len() as u64);
    for _ in 0..chunks {
        client.oneway(Request::StoreBlobChunk(StoreBlobChunk {
            chunk: Bytes::copy_from_slice(&chunk),
        }));
    }
    client.oneway(Request::StoreBlobEnd(StoreBlobEnd {
        oid,
        serial: Tid::ZERO,
        data: Bytes::from_static(ROOT_RECORD),
        id: txn.clone(),
    }));
    let voted = client.vote(&txn);
    assert!(
        matches!(&voted, Ok(VoteResult::Oids(o)) if o.is_empty()),
        "{voted:?}"
    );
    let tid = client.finish(&txn).expect("the blob commit");
    let peak_after = array.zeoraid_proc_status_kib("VmHWM").expect("zeoraid's VmHWM");
    let grew_mb = peak_after.saturating_sub(peak_before) / 1024;
    assert!(
        grew_mb < BLOB_MB / 2,
        "zeoraid's peak memory grew by {grew_mb} MB for a {BLOB_MB} MB blob committed to 2 members\n{}",
        array.context()
    );
    for i in 0..2 {
        let mut member = array.member_client(i);
        let current = member
            .load(oid)
            .expect("load from the member")
            .expect("the blob's record");
        assert_eq!(current.start, tid, "member {}", i + 1);
    }
}
