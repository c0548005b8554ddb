//! Bad input from one client never hurts the others: zeoraid (in front of
//! two real ZEO 6.2 members) closes or answers the offending connection as
//! ZEO would, keeps serving every other client, and loses nothing.
//!
//! Every test commits a probe through zeoraid first, sends its bad input on
//! a connection of its own, and ends with [`Array::assert_serving`]: zeoraid
//! still runs, a new client registers, commits and loads through it, and
//! the probe committed before the bad input is current on each member,
//! read from the member directly.

mod common;

use common::rawclient::p64_value;

use common::array::Array;
use common::rawclient::{RawClient, ReadEnd};
use common::records::ROOT_RECORD;
use std::time::{Duration, Instant};
use zeo::exceptions::ZeoError;
use zeo::message::{Message, MsgId};
use zeo::methods::{Request, Vote};
use zeo::reply::VoteResult;
use zeo::types::{Tid, P64};
use zeo::Value;

/// Bound for the server to close a connection after bad input.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// A sync call envelope `(msgid, False, name, args)` as a value.
fn call(msgid: i64, name: &str, args: Value) -> Value {
    Message::call(MsgId::int(msgid), name, args).to_value()
}

fn pickle(v: &Value) -> Vec<u8> {
    zeo::pickle::encode(v).expect("encode")
}

/// Sends one bad frame payload on a registered connection; the connection
/// must be closed with a log line whose reason contains `reason`.
fn bad_frame_closes(payload: &[u8], reason: &str) {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    let mut bad = array.client();
    let since = array.log_mark();
    bad.send_frame(payload).expect("send the bad frame");
    let logged = array.assert_closed_without_reply(&mut bad, since, CLOSE_WITHIN);
    assert!(
        logged.contains(reason),
        "close reason {logged:?} lacks {reason:?}"
    );
    array.assert_serving(&[&before]);
}

#[test]
fn a_garbage_pickle_closes_only_that_connection() {
    bad_frame_closes(b"\x80\x03\xffgarbage", "undecodable message");
}

#[test]
fn a_frame_that_is_not_a_pickle_at_all_closes_only_that_connection() {
    bad_frame_closes(b"GET / HTTP/1.1\r\n\r\n", "undecodable message");
}

#[test]
fn a_truncated_pickle_closes_only_that_connection() {
    let whole = pickle(&call(7, "ping", Value::tuple([])));
    // Cut inside the method name: no STOP, the string runs past the end.
    let cut = &whole[..whole.len() - 6];
    bad_frame_closes(cut, "undecodable message");
}

#[test]
fn a_zero_length_frame_closes_only_that_connection() {
    bad_frame_closes(b"", "zero-length frame");
}

#[test]
fn a_one_gib_frame_header_is_refused_from_the_header_without_allocating_it() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    let memory = |array: &Array| {
        ["VmRSS", "VmData"].map(|field| {
            array
                .zeoraid_proc_status_kib(field)
                .unwrap_or_else(|| panic!("zeoraid's {field}"))
        })
    };
    let memory_before = memory(&array);

    // Above the 256 MiB limit: refused as soon as the header is read.
    let mut huge = array.client();
    let since = array.log_mark();
    let mut wire = (1u32 << 30).to_be_bytes().to_vec();
    wire.extend_from_slice(b"0123456789");
    huge.send_bytes(&wire).expect("send");
    let logged = array.assert_closed_without_reply(&mut huge, since, CLOSE_WITHIN);
    assert!(
        logged.contains("frame of 1073741824 bytes exceeds the maximum"),
        "{logged}"
    );

    // Below the limit (200 MiB announced, 10 bytes sent): the connection
    // waits for the rest, and zeoraid's memory grows with the bytes that
    // arrived, not with the claim.
    let mut big = array.client();
    let mut wire = (200u32 << 20).to_be_bytes().to_vec();
    wire.extend_from_slice(b"0123456789");
    big.send_bytes(&wire).expect("send");
    let probe = array.assert_serving(&[&before]);
    assert!(
        big.is_open(),
        "a frame still arriving must not close the connection"
    );
    // Neither touched (RSS) nor reserved (VmData) memory grew by anything
    // like the announced sizes.
    let memory_after = memory(&array);
    eprintln!("zeoraid memory before/after [VmRSS, VmData] KiB: {memory_before:?} {memory_after:?}");
    for (k, field) in ["VmRSS", "VmData"].iter().enumerate() {
        assert!(
            memory_after[k] < memory_before[k] + 100 * 1024,
            "zeoraid's {field} grew from {} KiB to {} KiB after frame headers announcing 1 GiB and 200 MiB",
            memory_before[k],
            memory_after[k]
        );
    }
    drop(big);
    array.assert_serving(&[&before, &probe]);
}

#[test]
fn a_100000_level_pickle_closes_the_connection_and_zeoraid_lives() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    let n = 100_000;

    // (1, False, 'ping', [[[[...]]]]): 100,000 nested lists as the args.
    let mut lists = vec![0x80, 3, b'(', b'K', 1, 0x89, b'X', 4, 0, 0, 0];
    lists.extend_from_slice(b"ping");
    lists.extend(std::iter::repeat_n(b']', n));
    lists.extend(std::iter::repeat_n(b'a', n - 1));
    lists.extend_from_slice(b"t.");
    // The same depth made of MARKs and of nested 1-tuples.
    let mut marks = vec![0x80, 3];
    marks.extend(std::iter::repeat_n(b'(', n));
    let mut tuples = vec![0x80, 3, b'N'];
    tuples.extend(std::iter::repeat_n(0x85, n));
    tuples.push(b'.');

    for payload in [&lists, &marks, &tuples] {
        let mut bad = array.client();
        let since = array.log_mark();
        bad.send_frame(payload).expect("send");
        let logged = array.assert_closed_without_reply(&mut bad, since, CLOSE_WITHIN);
        assert!(logged.contains("nesting deeper than 100 levels"), "{logged}");
        array.assert_zeoraid_alive();
    }
    array.assert_serving(&[&before]);
}

#[test]
fn unknown_methods_close_the_connection_without_a_reply_unknown_raid_calls_are_errors() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    for name in ["bogus", "load", "undo"] {
        let mut bad = array.client();
        let since = array.log_mark();
        bad.send(&Message::call(MsgId::int(3), name, Value::tuple([])));
        let logged = array.assert_closed_without_reply(&mut bad, since, CLOSE_WITHIN);
        assert!(logged.contains(&format!("unknown method {name:?}")), "{logged}");
    }
    // A management name zeoraid does not have is answered like a method a
    // gocept.zeoraid storage lacks; the connection stays usable.
    let mut client = array.client();
    match client.call_value("raid_foo", Value::tuple([])) {
        Err(ZeoError::Other { class, payload }) => {
            assert_eq!(class, "builtins.AttributeError");
            assert!(format!("{payload:?}").contains("raid_foo"), "{payload:?}");
        }
        other => panic!("raid_foo: {other:?}"),
    }
    assert!(client.call(Request::Ping).is_ok());
    array.assert_serving(&[&before]);
}

#[test]
fn a_call_before_register_closes_the_connection() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    for (name, args) in [
        ("ping", Value::tuple([])),
        (
            "loadBefore",
            Value::tuple([p64_value(before.oid), p64_value(P64::MAX_TID)]),
        ),
        ("new_oids", Value::tuple([])),
    ] {
        let mut bad = RawClient::connect(array.addr());
        let since = array.log_mark();
        bad.send(&Message::call(MsgId::int(1), name, args));
        let logged = array.assert_closed_without_reply(&mut bad, since, CLOSE_WITHIN);
        assert!(logged.contains("before register"), "{logged}");
    }
    array.assert_serving(&[&before]);
}

#[test]
fn register_with_an_unknown_storage_is_an_error_reply_and_may_be_retried() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    let mut client = RawClient::connect(array.addr());
    let register = |storage: &str| {
        Request::Register(zeo::methods::Register {
            storage: storage.into(),
            read_only: false,
        })
    };
    match client.call(register("nope")) {
        Err(ZeoError::ValueError(message)) => assert_eq!(message, "unknown storage: nope"),
        other => panic!("expected builtins.ValueError('unknown storage: nope'), got {other:?}"),
    }
    // Same connection: register again, with the right name, and use it.
    assert_eq!(client.register("1"), before.tid);
    let loaded = client.load(before.oid).expect("load").expect("a revision");
    assert_eq!(loaded.start, before.tid);
    array.assert_serving(&[&before]);
}

#[test]
fn vote_without_tpc_begin_is_a_storage_transaction_error() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    let mut client = array.client();
    match client.call(Request::Vote(Vote {
        id: zeo::methods::TxnId::from_i64(12345),
    })) {
        Err(ZeoError::StorageTransactionError(args)) => {
            assert_eq!(args, vec![Value::None, Value::Int(12345)])
        }
        other => panic!("expected StorageTransactionError((None, 12345)), got {other:?}"),
    }
    // The connection is still usable, for a commit too.
    let oid = client.new_oid();
    let tid = client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    assert!(tid > before.tid);
    array.assert_serving(&[&before]);
}

#[test]
fn wrong_argument_counts_and_types_are_error_replies_naming_the_method() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    let mut client = array.client();
    let oid = p64_value(before.oid);
    let max = p64_value(P64::MAX_TID);
    let cases: Vec<(&str, Value, &str, &[&str])> = vec![
        (
            "loadBefore",
            Value::tuple([oid.clone()]),
            "builtins.TypeError",
            &["loadBefore", "2", "got 1"],
        ),
        (
            "loadBefore",
            Value::tuple([oid.clone(), max.clone(), max.clone()]),
            "builtins.TypeError",
            &["loadBefore", "got 3"],
        ),
        (
            "loadBefore",
            Value::tuple([Value::Int(0), max.clone()]),
            "builtins.ValueError",
            &["loadBefore", "oid"],
        ),
        (
            "loadBefore",
            Value::tuple([oid.clone(), Value::str("latest")]),
            "builtins.ValueError",
            &["loadBefore", "tid"],
        ),
        (
            "loadBefore",
            Value::Int(1),
            "builtins.ValueError",
            &["loadBefore", "tuple or list"],
        ),
        (
            "history",
            Value::tuple([Value::None]),
            "builtins.ValueError",
            &["history", "oid"],
        ),
        (
            "new_oids",
            Value::tuple([Value::str("many")]),
            "builtins.ValueError",
            &["new_oids"],
        ),
        (
            "get_info",
            Value::tuple([Value::Int(1)]),
            "builtins.TypeError",
            &["get_info"],
        ),
        (
            "tpc_abort",
            Value::tuple([]),
            "builtins.TypeError",
            &["tpc_abort"],
        ),
        (
            "getTid",
            Value::tuple([Value::bytes(vec![0u8; 8]), Value::None]),
            "builtins.TypeError",
            &["getTid"],
        ),
    ];
    for (name, args, class, words) in cases {
        let shown = format!("{name}{args:?}");
        match client.call_value(name, args) {
            Err(ZeoError::Other { class: got, payload }) => {
                assert_eq!(got, class, "{shown}: {payload:?}");
                let message = match payload.as_seq() {
                    Some([Value::Str(m)]) => m.clone(),
                    _ => panic!("{shown}: payload {payload:?} is not (message,)"),
                };
                for word in words {
                    assert!(message.contains(word), "{shown}: {message:?} lacks {word:?}");
                }
            }
            Err(ZeoError::ValueError(message)) => {
                assert_eq!(class, "builtins.ValueError", "{shown}: ValueError({message:?})");
                for word in words {
                    assert!(message.contains(word), "{shown}: {message:?} lacks {word:?}");
                }
            }
            other => panic!("{shown}: expected an error reply {class}, got {other:?}"),
        }
        // Still usable after each.
        assert_eq!(client.call_value("ping", Value::tuple([])), Ok(Value::None));
    }
    let loaded = client.load(before.oid).expect("load").expect("a revision");
    assert_eq!(loaded.start, before.tid);
    array.assert_serving(&[&before]);
}

#[test]
fn a_client_that_disconnects_after_vote_releases_the_commit_lock_and_leaves_no_trace() {
    let mut array = Array::start(2);
    let before = array.commit_probe();

    // A votes (and so holds the commit lock on zeoraid and on each member),
    // then its connection drops.
    let mut a = array.client();
    let lost_oid = a.new_oid();
    let txn = a.begin();
    a.store(&txn, lost_oid, Tid::ZERO, ROOT_RECORD);
    match a.vote(&txn) {
        Ok(VoteResult::Oids(oids)) if oids.is_empty() => {}
        other => panic!("vote: {other:?}"),
    }
    drop(a);

    // B commits promptly: the lock was released (nothing else would release it).
    let mut b = array.client();
    b.timeout = Duration::from_secs(10);
    let oid = b.new_oid();
    let started = Instant::now();
    let txn = b.begin();
    b.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
    match b.try_call(Request::Vote(Vote { id: txn.clone() })) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("B's vote failed: {e:?}"),
        Err(ReadEnd::TimedOut) => panic!(
            "B's vote got no answer within {:?}: the commit lock of the client that disconnected after its vote \
             was not released\n{}",
            b.timeout,
            array.context()
        ),
        Err(end) => panic!("B's vote: {end:?}"),
    }
    let tid = b.finish(&txn).expect("B's tpc_finish");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "B's commit took {:?}",
        started.elapsed()
    );
    assert!(tid > before.tid);

    // No trace of A's transaction: its oid does not exist anywhere, and the
    // members' last transaction is B's.
    let mut through = array.client();
    assert_eq!(through.load(lost_oid), Err(ZeoError::POSKeyError(lost_oid)));
    for (i, member) in array.members().iter().enumerate() {
        let mut direct = array.member_client(i);
        assert_eq!(
            direct.load(lost_oid),
            Err(ZeoError::POSKeyError(lost_oid)),
            "member {} has the aborted transaction's object",
            i + 1
        );
        assert_eq!(member.last_transaction(), tid.to_hex(), "member {}", i + 1);
    }
    let b_probe = common::array::Probe {
        oid,
        tid,
        data: ROOT_RECORD.to_vec(),
    };
    array.assert_serving(&[&before, &b_probe]);
}

#[test]
fn a_client_that_never_completes_a_frame_does_not_hold_up_others() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    // Registered, then a header for 100 bytes and only 10 of them.
    let mut stuck = array.client();
    let mut wire = 100u32.to_be_bytes().to_vec();
    wire.extend_from_slice(&[b'x'; 10]);
    stuck.send_bytes(&wire).expect("send");
    // And one that stops inside the handshake (2 bytes of a header).
    let mut stuck_early = RawClient::connect(array.addr());
    stuck_early.send_bytes(&[0, 0]).expect("send");

    let probe = array.assert_serving(&[&before]);
    array.assert_serving(&[&before, &probe]);
    assert!(
        stuck.is_open(),
        "the connection with an incomplete frame was closed"
    );
    assert!(
        stuck_early.is_open(),
        "the connection with an incomplete frame was closed"
    );
}

#[test]
fn store_blob_shared_closes_the_connection_with_a_log_line() {
    let mut array = Array::start(2);
    let before = array.commit_probe();
    let mut client = array.client();
    let oid = client.new_oid();
    let txn = client.begin();
    client.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
    let since = array.log_mark();
    client.oneway_value(
        "storeBlobShared",
        Value::tuple([
            p64_value(oid),
            p64_value(Tid::ZERO),
            Value::bytes(ROOT_RECORD.to_vec()),
            Value::str("0x01.tmp-"),
            txn.value().clone(),
        ]),
    );
    let logged = array.assert_closed_without_reply(&mut client, since, CLOSE_WITHIN);
    assert!(logged.contains("storeBlobShared"), "{logged}");
    assert!(
        logged.contains("shared_blob_dir"),
        "the reason should tell the operator what to change: {logged}"
    );
    // The transaction never reached a member.
    for i in 0..array.members().len() {
        assert_eq!(array.member_client(i).load(oid), Err(ZeoError::POSKeyError(oid)));
    }
    array.assert_serving(&[&before]);
}
