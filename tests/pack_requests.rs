//! Who may pack, and what `pack(wait=False)` means through zeoraid. Real
//! members.
//!
//! A plain ZEO server lets a read-only client pack; zeoraid refuses it.
//! A plain ZEO server answers `pack(t, wait=False)` at once and packs in a
//! thread beside whatever commits next; zeoraid answers the client at once
//! too, but the members pack with `wait` under the commit lock, so no commit
//! lands on a member while it packs (its result would depend on where the
//! pack found the end of its file).

mod common;

use common::array::{Array, ArrayOptions, Probe};
use common::rawclient::RawClient;
use common::records::{mapping_record, ROOT_RECORD};
use std::time::{SystemTime, UNIX_EPOCH};
use zeo::exceptions::ZeoError;
use zeo::methods::{LoadSerial, Pack, Register, Request};
use zeo::reply::{Reply, VoteResult};
use zeo::types::{Oid, Tid};
use zeo::Value;

/// Revisions of one object, large enough that packing them takes the
/// members a noticeable while.
const REVISIONS: usize = 200;
const REVISION_SIZE: usize = 200_000;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Commits `REVISIONS` revisions of the root object (pack starts its
/// reachability scan there); returns its oid and the tid of its first
/// revision, which a pack to now removes.
fn object_with_history(array: &Array) -> (Oid, Tid) {
    let mut client = RawClient::connect_registered(array.addr());
    let oid = Oid::ZERO;
    let mut serial = Tid::ZERO;
    let mut first = None;
    for i in 0..REVISIONS {
        let data = mapping_record(REVISION_SIZE, b'a' + (i % 26) as u8);
        serial = client.commit(&[(oid, serial, &data)]);
        first.get_or_insert(serial);
    }
    (oid, first.expect("at least one revision"))
}

/// `loadSerial(oid, serial)` on member `i` directly.
fn load_serial_on_member(array: &Array, i: usize, oid: Oid, serial: Tid) -> Result<Reply, ZeoError> {
    array
        .member_client(i)
        .call(Request::LoadSerial(LoadSerial { oid, serial }))
}

#[test]
fn a_read_only_client_cannot_pack() {
    let array = Array::start(2);
    let (oid, first) = object_with_history(&array);
    let mut reader = RawClient::connect(array.addr());
    let register = Request::Register(Register {
        storage: "1".into(),
        read_only: true,
    });
    reader.call(register).expect("read-only registration");
    let refused = reader.call(Request::Pack(Pack {
        t: now(),
        wait: Value::Int(1),
    }));
    assert!(matches!(refused, Err(ZeoError::ReadOnlyError)), "{refused:?}");
    for i in 0..2 {
        let old = load_serial_on_member(&array, i, oid, first);
        assert!(old.is_ok(), "member {} was packed: {old:?}", i + 1);
    }
    assert!(reader.is_open(), "the refusal must not close the connection");
}

#[test]
fn pack_without_wait_is_answered_at_once_but_the_members_pack_before_the_next_commit() {
    let array = Array::start_with(ArrayOptions::new(2));
    let (oid, first) = object_with_history(&array);
    // A commit ready to vote the moment the pack is answered.
    let mut writer = RawClient::connect_registered(array.addr());
    let probe_oid = writer.new_oid();
    let txn = writer.begin();
    writer.store(&txn, probe_oid, Tid::ZERO, ROOT_RECORD);
    let mut packer = RawClient::connect_registered(array.addr());
    let answer = packer.call_value("pack", Value::tuple([Value::Float(now()), Value::Bool(false)]));
    assert_eq!(answer, Ok(Value::None));
    // This commit waits for the commit lock the pack holds: once it is
    // acknowledged, no member may still be packing.
    assert!(matches!(writer.vote(&txn), Ok(VoteResult::Oids(o)) if o.is_empty()));
    let tid = writer.finish(&txn).expect("the commit after the pack");
    let probe = Probe {
        oid: probe_oid,
        tid,
        data: ROOT_RECORD.to_vec(),
    };
    for i in 0..2 {
        let old = load_serial_on_member(&array, i, oid, first);
        assert!(
            matches!(old, Err(ZeoError::POSKeyError(o)) if o == oid),
            "member {}: the revision a pack to now removes is still there after a later commit: {old:?}\n{}",
            i + 1,
            array.context()
        );
    }
    array.assert_on_every_member(&probe);
}
