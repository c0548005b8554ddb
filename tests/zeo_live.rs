//! The `zeo` codec against a real ZEO 6.2 server: frames we encode are
//! accepted, replies and callbacks it sends decode into the typed layer.
//! Both encodings (Z5 and M5). The member actor builds on this.

mod common;

use bytes::Bytes;
use common::rawclient::RawClient;
use common::runzeo::{run_python_ok, RunZeo, RunZeoOptions};
use std::time::Duration;
use zeo::callbacks::Callback;
use zeo::encoding::Encoding;
use zeo::exceptions::ZeoError;
use zeo::message::MsgId;
use zeo::methods::{LoadBefore, NewOids, Register, Request, Storea, TpcBegin, TpcFinish, TxnId, Vote};
use zeo::reply::{LoadBeforeResult, Reply, VoteResult};
use zeo::types::{Oid, P64};
use zeo::Value;

const TIMEOUT: Duration = Duration::from_secs(20);

/// The root object as ZODB writes it: a PersistentMapping with empty data
/// (the 64-byte record of capture s02 c1). Opaque to zeoraid; a real ZODB
/// client opens it below.
const ROOT_RECORD: &str = "80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e80037d710158040000006461746171027d7103732e";

fn commit_root(client: &mut RawClient, txn: TxnId) -> P64 {
    let root = P64::ZERO;
    client.oneway(Request::TpcBegin(TpcBegin {
        id: txn.clone(),
        user: Value::bytes(&b"/ zeoraid-test"[..]),
        description: Value::bytes(&b"root from the zeo crate"[..]),
        extension: Value::Dict(vec![(Value::str("source"), Value::str("zeo_live"))]),
        tid: None,
        status: " ".into(),
    }));
    let data = Bytes::from(hex_decode(ROOT_RECORD));
    client.oneway(Request::Storea(Storea {
        oid: root,
        serial: P64::ZERO,
        data,
        id: txn.clone(),
    }));
    match client.call(Request::Vote(Vote { id: txn.clone() })) {
        Ok(Reply::Vote(VoteResult::Oids(oids))) => assert!(oids.is_empty()),
        other => panic!("vote: {other:?}"),
    }
    let before = client.callbacks.len();
    let tid = match client.call(Request::TpcFinish(TpcFinish { id: txn })) {
        Ok(Reply::TpcFinish(Some(tid))) => tid,
        other => panic!("tpc_finish: {other:?}"),
    };
    // ZEO writes `info` before the tpc_finish reply (`docs/zeo-protocol.md#commit-sequence`).
    assert!(
        matches!(client.callbacks[before..], [Callback::Info(_)]),
        "info callback before the reply: {:?}",
        &client.callbacks[before..]
    );
    tid
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn session_against(server: &RunZeo, allow_msgpack: bool) {
    let mut c = RawClient::connect_with(server.addr(), allow_msgpack);
    let register = Request::Register(Register {
        storage: "1".into(),
        read_only: false,
    });
    assert_eq!(c.call(register).unwrap(), Reply::Register(Some(P64::ZERO)));
    match c.call(Request::GetInfo).unwrap() {
        Reply::GetInfo(info) => assert!(info.dict_get("interfaces").is_some(), "{info:?}"),
        other => panic!("get_info: {other:?}"),
    }
    match c.call(Request::NewOids(NewOids { n: None })).unwrap() {
        Reply::NewOids(oids) => assert_eq!(oids.len(), 100),
        other => panic!("new_oids: {other:?}"),
    }
    // A transaction id beyond i64 (LONG1 in Z5): ZEO only compares it.
    let txn = if c.encoding == Encoding::Pickle {
        TxnId::new(Value::from_bigint(num_bigint::BigInt::from(1u8) << 70)).unwrap()
    } else {
        TxnId::from_i64(139910119818704)
    };
    let tid = commit_root(&mut c, txn);
    assert!(tid > P64::ZERO);

    // loadBefore with ClientStorage's tuple msgid, echoed by the server.
    let load = LoadBefore {
        oid: P64::ZERO,
        tid: P64::MAX_TID,
    };
    let msgid = MsgId(Value::tuple([
        Value::bytes(&P64::ZERO.0[..]),
        Value::bytes(&P64::MAX_TID.0[..]),
    ]));
    match c.call_with_msgid(msgid, Request::LoadBefore(load)).unwrap() {
        Reply::LoadBefore(Some(LoadBeforeResult {
            data,
            start,
            end: None,
        })) => {
            assert_eq!(hex_decode(ROOT_RECORD), data.to_vec());
            assert_eq!(start, tid);
        }
        other => panic!("loadBefore: {other:?}"),
    }
    // Error replies arrive typed, and the connection stays usable.
    let missing: Oid = P64::from_u64(4242);
    match c.call(Request::LoadBefore(LoadBefore {
        oid: missing,
        tid: P64::MAX_TID,
    })) {
        Err(ZeoError::POSKeyError(oid)) => assert_eq!(oid, missing),
        other => panic!("expected POSKeyError, got {other:?}"),
    }
    match c.call(Request::Vote(Vote {
        id: TxnId::from_i64(12345),
    })) {
        Err(ZeoError::StorageTransactionError(args)) => {
            assert_eq!(args, vec![Value::None, Value::Int(12345)])
        }
        other => panic!("expected StorageTransactionError, got {other:?}"),
    }

    // A real ZODB application opens the root we wrote and commits on top of
    // it; our connection then receives its invalidation, typed.
    let script = "import sys, ZEO, transaction\n\
        db = ZEO.DB(('127.0.0.1', int(sys.argv[1])))\n\
        conn = db.open()\n\
        root = conn.root()\n\
        assert dict(root) == {}, dict(root)\n\
        root['from_python'] = 1\n\
        transaction.commit()\n\
        print(conn._storage.lastTransaction().hex())\n\
        db.close()\n";
    let python_tid = run_python_ok(script, &[&server.port().to_string()], TIMEOUT);
    assert_eq!(c.call(Request::Ping).unwrap(), Reply::None("ping"));
    let invalidation = c.callbacks.iter().find_map(|cb| match cb {
        Callback::InvalidateTransaction { tid, oids } => Some((tid.to_hex(), oids.clone())),
        _ => None,
    });
    assert_eq!(
        invalidation,
        Some((python_tid.trim().to_owned(), vec![P64::ZERO]))
    );
}

#[test]
fn a_real_zeo_server_accepts_our_z5_frames() {
    let server = RunZeo::start(RunZeoOptions::new());
    session_against(&server, false);
}

#[test]
fn a_real_zeo_server_accepts_our_m5_frames() {
    let server = RunZeo::start(RunZeoOptions::new().msgpack());
    session_against(&server, true);
}
