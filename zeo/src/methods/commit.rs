//! Two-phase-commit methods (`docs/zeo-protocol.md#commit`): `tpc_begin`, `storea`,
//! `checkCurrentSerialInTransaction`, `deleteObject`, `restorea`, `undoa`,
//! `storeBlobStart` (a unit variant of [`super::Request`]),
//! `storeBlobChunk`, `storeBlobEnd`, `storeBlobShared`, `vote`,
//! `tpc_finish`, `tpc_abort`, `new_oids`, `new_oid`.
//!
//! Everything up to `vote` is async and only buffered by the server; every
//! per-transaction call carries the client's transaction id ([`TxnId`],
//! `id(txn)`) as its last argument.

use bytes::Bytes;

use super::{conv, Args, Method, TxnId};
use crate::error::CodecError;
use crate::types::{Oid, Tid};
use crate::value::Value;

fn bytes_or_str(v: &Value) -> bool {
    matches!(v, Value::Bytes(_) | Value::Str(_))
}

fn extension_kind(v: &Value) -> bool {
    matches!(v, Value::Dict(_) | Value::Bytes(_) | Value::None)
}

/// The default `status` of `tpc_begin` (a normal commit).
pub const DEFAULT_STATUS: &str = " ";

/// `tpc_begin(id, user, description, ext, tid=None, status=' ')` (async).
///
/// `user`/`description` are bytes from ZODB and str from other callers
/// (captures s02, s05); `extension` is a dict, or the raw pickled extension
/// bytes (`TransactionMetaData` accepts both, and `None`). They are passed
/// through unchanged, so they stay [`Value`]s. `tid`/`status` are used by
/// restores (`copyTransactionsFrom`, `docs/zeo-protocol.md#restores`); omitted trailing
/// arguments decode to their defaults and are always written.
#[derive(Clone, Debug, PartialEq)]
pub struct TpcBegin {
    pub id: TxnId,
    pub user: Value,
    pub description: Value,
    pub extension: Value,
    pub tid: Option<Tid>,
    pub status: String,
}

impl Method for TpcBegin {
    const NAME: &'static str = "tpc_begin";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (4, 6);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(TpcBegin {
            id: a.txn(0, "id")?,
            user: a.one_of(1, "user", bytes_or_str, "bytes or str")?,
            description: a.one_of(2, "description", bytes_or_str, "bytes or str")?,
            extension: a.one_of(3, "ext", extension_kind, "a dict, bytes or None")?,
            tid: a.opt(4, "tid", conv::opt_p64)?.flatten(),
            status: a
                .opt(5, "status", conv::string)?
                .unwrap_or_else(|| DEFAULT_STATUS.into()),
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![
            self.id.value().clone(),
            self.user.clone(),
            self.description.clone(),
            self.extension.clone(),
            conv::opt_p64_value(&self.tid),
            Value::Str(self.status.clone()),
        ]
    }
}

/// `storea(oid, serial, data, id)` (async): `serial` is the tid the client
/// read (`z64` for a new object); `data` is the opaque record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storea {
    pub oid: Oid,
    pub serial: Tid,
    pub data: Bytes,
    pub id: TxnId,
}

impl Method for Storea {
    const NAME: &'static str = "storea";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (4, 4);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(Storea {
            oid: a.p64(0, "oid")?,
            serial: a.serial(1, "serial")?,
            data: a.record(2, "data")?,
            id: a.txn(3, "id")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![
            conv::p64_value(&self.oid),
            conv::p64_value(&self.serial),
            Value::Bytes(self.data.clone()),
            self.id.value().clone(),
        ]
    }
}

/// `checkCurrentSerialInTransaction(oid, serial, id)` (async): ZODB's
/// `readCurrent`; checked at vote (ReadConflictError).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckCurrentSerialInTransaction {
    pub oid: Oid,
    pub serial: Tid,
    pub id: TxnId,
}

impl Method for CheckCurrentSerialInTransaction {
    const NAME: &'static str = "checkCurrentSerialInTransaction";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (3, 3);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(CheckCurrentSerialInTransaction {
            oid: a.p64(0, "oid")?,
            serial: a.p64(1, "serial")?,
            id: a.txn(2, "id")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![
            conv::p64_value(&self.oid),
            conv::p64_value(&self.serial),
            self.id.value().clone(),
        ]
    }
}

/// `deleteObject(oid, serial, id)` (async, IExternalGC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteObject {
    pub oid: Oid,
    pub serial: Tid,
    pub id: TxnId,
}

impl Method for DeleteObject {
    const NAME: &'static str = "deleteObject";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (3, 3);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(DeleteObject {
            oid: a.p64(0, "oid")?,
            serial: a.p64(1, "serial")?,
            id: a.txn(2, "id")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![
            conv::p64_value(&self.oid),
            conv::p64_value(&self.serial),
            self.id.value().clone(),
        ]
    }
}

/// `restorea(oid, serial, data, prev_txn, id)` (async): a record with its
/// original tid `serial`; `data` is `None` for an object whose creation was
/// undone, `prev_txn` an optional back-pointer hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restorea {
    pub oid: Oid,
    pub serial: Tid,
    pub data: Option<Bytes>,
    pub prev_txn: Option<Tid>,
    pub id: TxnId,
}

impl Method for Restorea {
    const NAME: &'static str = "restorea";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (5, 5);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(Restorea {
            oid: a.p64(0, "oid")?,
            serial: a.p64(1, "serial")?,
            data: a.opt_bytes(2, "data")?,
            prev_txn: a.opt_p64(3, "prev_txn")?,
            id: a.txn(4, "id")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![
            conv::p64_value(&self.oid),
            conv::p64_value(&self.serial),
            conv::opt_bytes_value(&self.data),
            conv::opt_p64_value(&self.prev_txn),
            self.id.value().clone(),
        ]
    }
}

/// `undoa(trans_id, id)` (async): undo the transaction `trans_id`.
///
/// `trans_id` is whatever the storage put in the `id` key of
/// `undoLog`/`undoInfo` (FileStorage: base64 of the tid, as bytes), handed
/// back by the application; it is opaque, so it stays a [`Value`] (bytes,
/// or str if an application passed it through a web form).
#[derive(Clone, Debug, PartialEq)]
pub struct Undoa {
    pub trans_id: Value,
    pub id: TxnId,
}

impl Method for Undoa {
    const NAME: &'static str = "undoa";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (2, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(Undoa {
            trans_id: a.one_of(0, "trans_id", bytes_or_str, "bytes or str")?,
            id: a.txn(1, "id")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![self.trans_id.clone(), self.id.value().clone()]
    }
}

/// `storeBlobChunk(chunk)` (async): appends to the connection's blob temp
/// file opened by `storeBlobStart` (ClientStorage uses 59000-byte chunks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreBlobChunk {
    pub chunk: Bytes,
}

impl Method for StoreBlobChunk {
    const NAME: &'static str = "storeBlobChunk";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (1, 1);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(StoreBlobChunk {
            chunk: a.bytes(0, "chunk")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::Bytes(self.chunk.clone())]
    }
}

/// `storeBlobEnd(oid, serial, data, id)` (async): the record that owns the
/// uploaded blob. ClientStorage sends a plain `storea` with the same
/// oid/serial/data first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreBlobEnd {
    pub oid: Oid,
    pub serial: Tid,
    pub data: Bytes,
    pub id: TxnId,
}

impl Method for StoreBlobEnd {
    const NAME: &'static str = "storeBlobEnd";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (4, 4);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(StoreBlobEnd {
            oid: a.p64(0, "oid")?,
            serial: a.serial(1, "serial")?,
            data: a.record(2, "data")?,
            id: a.txn(3, "id")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![
            conv::p64_value(&self.oid),
            conv::p64_value(&self.serial),
            Value::Bytes(self.data.clone()),
            self.id.value().clone(),
        ]
    }
}

/// `storeBlobShared(oid, serial, data, filename, id)` (async, shared blob
/// directory): `filename` is a basename in the server's oid directory
/// ending in `.tmp` (+ one char). Its safety is checked by whoever resolves
/// it, not here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreBlobShared {
    pub oid: Oid,
    pub serial: Tid,
    pub data: Bytes,
    pub filename: String,
    pub id: TxnId,
}

impl Method for StoreBlobShared {
    const NAME: &'static str = "storeBlobShared";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (5, 5);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(StoreBlobShared {
            oid: a.p64(0, "oid")?,
            serial: a.serial(1, "serial")?,
            data: a.record(2, "data")?,
            filename: a.string(3, "filename")?,
            id: a.txn(4, "id")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![
            conv::p64_value(&self.oid),
            conv::p64_value(&self.serial),
            Value::Bytes(self.data.clone()),
            Value::Str(self.filename.clone()),
            self.id.value().clone(),
        ]
    }
}

macro_rules! txn_only {
    ($(#[$doc:meta])* $ty:ident = $name:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $ty {
            pub id: TxnId,
        }

        impl Method for $ty {
            const NAME: &'static str = $name;
            const ONEWAY: bool = false;
            const ARITY: (usize, usize) = (1, 1);

            fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
                Ok($ty { id: a.txn(0, "id")? })
            }

            fn to_args(&self) -> Vec<Value> {
                vec![self.id.value().clone()]
            }
        }
    };
}

txn_only!(
    /// `vote(id)` (sync): takes the commit lock and applies the buffer; the
    /// reply may be delayed while another client holds the lock.
    Vote = "vote"
);
txn_only!(
    /// `tpc_finish(id)` (sync): commits; replies with the new tid, after an
    /// `info` callback.
    TpcFinish = "tpc_finish"
);
txn_only!(
    /// `tpc_abort(id)` (sync in ClientStorage): aborts and releases the lock;
    /// an unknown id is silently accepted.
    TpcAbort = "tpc_abort"
);

/// `new_oids(n=100)`: up to `min(n, 100)` fresh oids. ClientStorage sends no
/// argument; `None` means omitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOids {
    pub n: Option<i64>,
}

impl Method for NewOids {
    const NAME: &'static str = "new_oids";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (0, 1);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(NewOids {
            n: a.opt(0, "n", conv::int)?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        self.n.map(Value::Int).into_iter().collect()
    }
}

/// `new_oid`: registered by the ZEO 6 server but not implemented (calling
/// it gives an AttributeError error reply) and never sent by ClientStorage.
/// Its arguments are kept as sent.
#[derive(Clone, Debug, PartialEq)]
pub struct NewOid {
    pub args: Vec<Value>,
}

impl Method for NewOid {
    const NAME: &'static str = "new_oid";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (0, usize::MAX);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(NewOid {
            args: a.items().to_vec(),
        })
    }

    fn to_args(&self) -> Vec<Value> {
        self.args.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::Request;
    use super::*;
    use crate::types::P64;

    fn o(n: u64) -> P64 {
        P64::from_u64(n)
    }

    fn id() -> Value {
        Value::Int(139910119818704)
    }

    fn txn() -> TxnId {
        TxnId::from_i64(139910119818704)
    }

    fn ext() -> Value {
        Value::Dict(vec![(Value::str("foo"), Value::str("bar"))])
    }

    #[test]
    fn storea_takes_serials_as_leniently_as_zeo() {
        let store = |serial: Value| Request::decode("storea", &t([b(&[0u8; 8]), serial, b(b"data"), id()]));
        let zero = |r: Result<Request, CodecError>| match r {
            Ok(Request::Storea(s)) => s.serial == P64::ZERO,
            other => panic!("{other:?}"),
        };
        assert!(zero(store(Value::None)), "None: a new object");
        assert!(
            zero(store(Value::str("\0".repeat(8)))),
            "'\\0' * 8 from Python-2-era callers"
        );
        assert!(store(Value::str("short")).is_err());
        assert!(store(Value::str("€€€€€€€€")).is_err(), "not latin-1");
        assert!(store(b(&[0u8; 3])).is_err());
        let data = |d: Value| Request::decode("storea", &t([b(&[0u8; 8]), b(&[0u8; 8]), d, id()]));
        match data(Value::str("foo")) {
            Ok(Request::Storea(s)) => assert_eq!(&s.data[..], b"foo"),
            other => panic!("{other:?}"),
        }
        assert!(data(Value::Int(1)).is_err());
    }

    #[test]
    fn tpc_begin_from_zodb() {
        // capture s02 c1: (id, b'/ alice', b'three objects', {'foo': 'bar'}, None, ' ')
        let args = t([
            id(),
            b(b"/ alice"),
            b(b"three objects"),
            ext(),
            Value::None,
            Value::str(" "),
        ]);
        let expected = Request::TpcBegin(TpcBegin {
            id: txn(),
            user: b(b"/ alice"),
            description: b(b"three objects"),
            extension: ext(),
            tid: None,
            status: " ".into(),
        });
        round_trip("tpc_begin", args.clone(), expected.clone());
        // This one re-encodes to exactly the captured tuple.
        assert_eq!(expected.to_args(), args);
        assert_eq!(expected.txn(), Some(&txn()));
    }

    #[test]
    fn tpc_begin_other_forms() {
        // s05: str user/description from a non-ZODB caller
        round_trip(
            "tpc_begin",
            t([
                Value::Int(1),
                Value::str(""),
                Value::str(""),
                Value::Dict(vec![]),
                Value::None,
                Value::str(" "),
            ]),
            Request::TpcBegin(TpcBegin {
                id: TxnId::from_i64(1),
                user: Value::str(""),
                description: Value::str(""),
                extension: Value::Dict(vec![]),
                tid: None,
                status: " ".into(),
            }),
        );
        // s17: restore with a tid and status 'p'
        let tid = P64([4, 13, 62, 43, 146, 128, 218, 231]);
        round_trip(
            "tpc_begin",
            t([
                Value::Int(2),
                b(b""),
                b(b"status p"),
                Value::Dict(vec![]),
                conv::p64_value(&tid),
                Value::str("p"),
            ]),
            Request::TpcBegin(TpcBegin {
                id: TxnId::from_i64(2),
                user: b(b""),
                description: b(b"status p"),
                extension: Value::Dict(vec![]),
                tid: Some(tid),
                status: "p".into(),
            }),
        );
        // Omitted defaults; extension as raw pickled bytes.
        let r = Request::decode(
            "tpc_begin",
            &t([Value::Int(3), b(b"u"), b(b"d"), b(b"\x80\x03}q\x00.")]),
        )
        .unwrap();
        match &r {
            Request::TpcBegin(m) => {
                assert_eq!(m.tid, None);
                assert_eq!(m.status, DEFAULT_STATUS);
                assert_eq!(m.extension, b(b"\x80\x03}q\x00."));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Request::decode("tpc_begin", &r.to_args()).unwrap(), r);
        // Only the tid given.
        let r = Request::decode(
            "tpc_begin",
            &t([Value::Int(3), b(b""), b(b""), Value::None, p(9)]),
        )
        .unwrap();
        assert!(matches!(&r, Request::TpcBegin(m) if m.tid == Some(o(9)) && m.status == " "));
    }

    #[test]
    fn tpc_begin_errors() {
        let ok = [
            id(),
            b(b""),
            b(b""),
            Value::Dict(vec![]),
            Value::None,
            Value::str(" "),
        ];
        let with = |i: usize, v: Value| {
            let mut a = ok.to_vec();
            a[i] = v;
            Value::Tuple(a)
        };
        arg_err("tpc_begin", with(0, b(b"1")), 0, "id");
        arg_err("tpc_begin", with(0, Value::Float(1.0)), 0, "id");
        assert_eq!(
            arg_err("tpc_begin", with(1, Value::Int(1)), 1, "user"),
            "expected bytes or str, got int"
        );
        arg_err("tpc_begin", with(2, Value::None), 2, "description");
        arg_err("tpc_begin", with(3, Value::List(vec![])), 3, "ext");
        assert_eq!(
            arg_err("tpc_begin", with(4, b(b"abc")), 4, "tid"),
            "expected 8 bytes, got 3 or None"
        );
        arg_err("tpc_begin", with(5, b(b" ")), 5, "status");
        arity_err("tpc_begin", t([id(), b(b""), b(b"")]), "4 to 6");
        let mut seven = ok.to_vec();
        seven.push(Value::None);
        arity_err("tpc_begin", Value::Tuple(seven), "4 to 6");
    }

    #[test]
    fn storea() {
        let data = b(b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.");
        let args = t([p(0), p(0), data.clone(), id()]);
        let expected = Request::Storea(Storea {
            oid: o(0),
            serial: o(0),
            data: conv::bytes(&data).unwrap(),
            id: txn(),
        });
        round_trip("storea", args.clone(), expected.clone());
        assert_eq!(expected.to_args(), args);
        assert_eq!(
            arg_err("storea", t([b(b"abc"), p(0), data.clone(), id()]), 0, "oid"),
            "expected 8 bytes, got 3"
        );
        arg_err("storea", t([p(0), b(b"abc"), data.clone(), id()]), 1, "serial");
        assert_eq!(
            arg_err("storea", t([p(0), p(0), Value::None, id()]), 2, "data"),
            "expected bytes, got None"
        );
        // A str record is buffered as its UTF-8 bytes, as ZEO buffers it
        // (storea_takes_serials_as_leniently_as_zeo); other types are refused.
        arg_err("storea", t([p(0), p(0), Value::Int(1), id()]), 2, "data");
        arg_err("storea", t([p(0), p(0), data.clone(), Value::None]), 3, "id");
        arity_err("storea", t([p(0), p(0), data]), "4");
    }

    #[test]
    fn check_current_and_delete() {
        let tid = P64([4, 13, 62, 33, 66, 218, 22, 204]);
        round_trip(
            "checkCurrentSerialInTransaction",
            t([p(3), conv::p64_value(&tid), id()]),
            Request::CheckCurrentSerialInTransaction(CheckCurrentSerialInTransaction {
                oid: o(3),
                serial: tid,
                id: txn(),
            }),
        );
        arg_err(
            "checkCurrentSerialInTransaction",
            t([p(3), b(b"x"), id()]),
            1,
            "serial",
        );
        arity_err("checkCurrentSerialInTransaction", t([p(3), p(1)]), "3");
        round_trip(
            "deleteObject",
            t([p(1), p(5), id()]),
            Request::DeleteObject(DeleteObject {
                oid: o(1),
                serial: o(5),
                id: txn(),
            }),
        );
        arg_err("deleteObject", t([Value::None, p(5), id()]), 0, "oid");
    }

    #[test]
    fn restorea() {
        let tid = P64([4, 13, 62, 35, 11, 33, 174, 221]);
        round_trip(
            "restorea",
            t([p(0), conv::p64_value(&tid), b(b"rec"), Value::None, id()]),
            Request::Restorea(Restorea {
                oid: o(0),
                serial: tid,
                data: Some(bytes::Bytes::from_static(b"rec")),
                prev_txn: None,
                id: txn(),
            }),
        );
        round_trip(
            "restorea",
            t([p(0), p(7), Value::None, p(6), id()]),
            Request::Restorea(Restorea {
                oid: o(0),
                serial: o(7),
                data: None,
                prev_txn: Some(o(6)),
                id: txn(),
            }),
        );
        arg_err(
            "restorea",
            t([p(0), p(7), Value::Int(0), Value::None, id()]),
            2,
            "data",
        );
        arg_err(
            "restorea",
            t([p(0), p(7), Value::None, b(b"short"), id()]),
            3,
            "prev_txn",
        );
        arity_err("restorea", t([p(0), p(7), Value::None, id()]), "5");
    }

    #[test]
    fn undoa() {
        round_trip(
            "undoa",
            t([b(b"BA0+IWIJs2Y="), id()]),
            Request::Undoa(Undoa {
                trans_id: b(b"BA0+IWIJs2Y="),
                id: txn(),
            }),
        );
        round_trip(
            "undoa",
            t([Value::str("BA0+IWIJs2Y="), id()]),
            Request::Undoa(Undoa {
                trans_id: Value::str("BA0+IWIJs2Y="),
                id: txn(),
            }),
        );
        arg_err("undoa", t([Value::None, id()]), 0, "trans_id");
        arg_err("undoa", t([b(b"x"), b(b"y")]), 1, "id");
    }

    #[test]
    fn blob_uploads() {
        let chunk = vec![b'B'; 59000];
        round_trip(
            "storeBlobChunk",
            t([b(&chunk)]),
            Request::StoreBlobChunk(StoreBlobChunk {
                chunk: bytes::Bytes::from(chunk),
            }),
        );
        arg_err("storeBlobChunk", t([Value::str("B")]), 0, "chunk");
        round_trip(
            "storeBlobEnd",
            t([p(1), p(0), b(b"blobrec"), id()]),
            Request::StoreBlobEnd(StoreBlobEnd {
                oid: o(1),
                serial: o(0),
                data: bytes::Bytes::from_static(b"blobrec"),
                id: txn(),
            }),
        );
        arg_err("storeBlobEnd", t([p(1), p(0), b(b"r"), Value::str("1")]), 3, "id");
        round_trip(
            "storeBlobShared",
            t([p(101), p(0), b(b"blobrec"), Value::str("0x00d4lxv3fo.tmp-"), id()]),
            Request::StoreBlobShared(StoreBlobShared {
                oid: o(101),
                serial: o(0),
                data: bytes::Bytes::from_static(b"blobrec"),
                filename: "0x00d4lxv3fo.tmp-".into(),
                id: txn(),
            }),
        );
        arg_err(
            "storeBlobShared",
            t([p(1), p(0), b(b"r"), b(b"f.tmp"), id()]),
            3,
            "filename",
        );
        arity_err("storeBlobShared", t([p(1), p(0), b(b"r"), id()]), "5");
    }

    #[test]
    fn vote_finish_abort() {
        for (name, f) in [
            ("vote", (|id| Request::Vote(Vote { id })) as fn(TxnId) -> Request),
            ("tpc_finish", |id| Request::TpcFinish(TpcFinish { id })),
            ("tpc_abort", |id| Request::TpcAbort(TpcAbort { id })),
        ] {
            round_trip(name, t([id()]), f(txn()));
            // s05: vote(12345) from a raw _call
            round_trip(name, t([Value::Int(12345)]), f(TxnId::from_i64(12345)));
            arg_err(name, t([Value::None]), 0, "id");
            arity_err(name, t([]), "1");
            arity_err(name, t([id(), id()]), "1");
        }
    }

    #[test]
    fn new_oids_and_new_oid() {
        round_trip("new_oids", t([]), Request::NewOids(NewOids { n: None }));
        round_trip(
            "new_oids",
            t([Value::Int(5)]),
            Request::NewOids(NewOids { n: Some(5) }),
        );
        assert_eq!(Request::NewOids(NewOids { n: None }).to_args(), t([]));
        arg_err("new_oids", t([Value::None]), 0, "n");
        arity_err("new_oids", t([Value::Int(1), Value::Int(2)]), "0 or 1");
        round_trip("new_oid", t([]), Request::NewOid(NewOid { args: vec![] }));
        round_trip(
            "new_oid",
            t([Value::None, Value::Int(1)]),
            Request::NewOid(NewOid {
                args: vec![Value::None, Value::Int(1)],
            }),
        );
    }
}
