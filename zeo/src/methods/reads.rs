//! Read methods (`docs/zeo-protocol.md#reads`): `loadBefore`, `loadSerial`, `getTid`,
//! `history`, `record_iternext`, `sendBlob`. All sync.

use super::{conv, Args, Method};
use crate::error::CodecError;
use crate::types::{Oid, Tid};
use crate::value::Value;

/// `loadBefore(oid, tid)`: the revision current before `tid`. ClientStorage
/// sends it with the msgid `(oid, tid)` (see [`crate::message::MsgId`]);
/// `load(oid)` is `loadBefore(oid, maxtid)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBefore {
    pub oid: Oid,
    pub tid: Tid,
}

impl Method for LoadBefore {
    const NAME: &'static str = "loadBefore";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (2, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(LoadBefore {
            oid: a.p64(0, "oid")?,
            tid: a.p64(1, "tid")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![conv::p64_value(&self.oid), conv::p64_value(&self.tid)]
    }
}

/// `loadSerial(oid, serial)`: one exact revision (client-side conflict
/// resolution loads both conflicting revisions this way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadSerial {
    pub oid: Oid,
    pub serial: Tid,
}

impl Method for LoadSerial {
    const NAME: &'static str = "loadSerial";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (2, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(LoadSerial {
            oid: a.p64(0, "oid")?,
            serial: a.p64(1, "serial")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![conv::p64_value(&self.oid), conv::p64_value(&self.serial)]
    }
}

/// `getTid(oid)`: the tid of the current revision (deprecated API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetTid {
    pub oid: Oid,
}

impl Method for GetTid {
    const NAME: &'static str = "getTid";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (1, 1);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(GetTid {
            oid: a.p64(0, "oid")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![conv::p64_value(&self.oid)]
    }
}

/// `history(oid, size=1)` (`ZEOStorage.history(self, tid, size=1)`; the
/// first parameter is misnamed there, it is an oid). ClientStorage always
/// sends `size`; `None` here means it was omitted (the server's default 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub oid: Oid,
    pub size: Option<i64>,
}

impl Method for History {
    const NAME: &'static str = "history";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (1, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(History {
            oid: a.p64(0, "oid")?,
            size: a.opt(1, "size", conv::int)?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        let mut v = vec![conv::p64_value(&self.oid)];
        v.extend(self.size.map(Value::Int));
        v
    }
}

/// `record_iternext(next=None)`: walks the current records, `next` is the
/// oid returned by the previous call. Delegated to the storage's
/// `record_iternext(next=None)`, so the argument may be omitted; it is
/// always written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordIternext {
    pub next: Option<Oid>,
}

impl Method for RecordIternext {
    const NAME: &'static str = "record_iternext";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (0, 1);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(RecordIternext {
            next: a.opt(0, "next", conv::opt_p64)?.flatten(),
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![conv::opt_p64_value(&self.next)]
    }
}

/// `sendBlob(oid, serial)`: the server streams the blob with
/// `receiveBlob*` callbacks, then replies `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendBlob {
    pub oid: Oid,
    pub serial: Tid,
}

impl Method for SendBlob {
    const NAME: &'static str = "sendBlob";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (2, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(SendBlob {
            oid: a.p64(0, "oid")?,
            serial: a.p64(1, "serial")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![conv::p64_value(&self.oid), conv::p64_value(&self.serial)]
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

    #[test]
    fn load_before() {
        round_trip(
            "loadBefore",
            t([p(0), p(1)]),
            Request::LoadBefore(LoadBefore { oid: o(0), tid: o(1) }),
        );
        round_trip(
            "loadBefore",
            Value::List(vec![p(2), conv::p64_value(&P64::MAX_TID)]),
            Request::LoadBefore(LoadBefore {
                oid: o(2),
                tid: P64::MAX_TID,
            }),
        );
        assert_eq!(
            arg_err("loadBefore", t([b(b"abc"), p(1)]), 0, "oid"),
            "expected 8 bytes, got 3"
        );
        assert_eq!(
            arg_err("loadBefore", t([p(0), b(&[0; 9])]), 1, "tid"),
            "expected 8 bytes, got 9"
        );
        assert_eq!(
            arg_err("loadBefore", t([Value::str("12345678"), p(1)]), 0, "oid"),
            "expected 8 bytes, got str"
        );
        arity_err("loadBefore", t([p(0)]), "2");
    }

    #[test]
    fn load_serial_get_tid_send_blob() {
        round_trip(
            "loadSerial",
            t([p(2), p(9)]),
            Request::LoadSerial(LoadSerial {
                oid: o(2),
                serial: o(9),
            }),
        );
        arg_err("loadSerial", t([p(2), Value::None]), 1, "serial");
        round_trip("getTid", t([p(2)]), Request::GetTid(GetTid { oid: o(2) }));
        arg_err("getTid", t([b(b"")]), 0, "oid");
        arity_err("getTid", t([p(1), p(2)]), "1");
        round_trip(
            "sendBlob",
            t([p(1), p(7)]),
            Request::SendBlob(SendBlob {
                oid: o(1),
                serial: o(7),
            }),
        );
        arg_err("sendBlob", t([p(1), b(b"1234567")]), 1, "serial");
    }

    #[test]
    fn history_size_is_optional() {
        round_trip(
            "history",
            t([p(2), Value::Int(5)]),
            Request::History(History {
                oid: o(2),
                size: Some(5),
            }),
        );
        round_trip(
            "history",
            t([p(2)]),
            Request::History(History {
                oid: o(2),
                size: None,
            }),
        );
        let r = Request::decode("history", &t([p(2)])).unwrap();
        assert_eq!(r.to_args(), t([p(2)]));
        arg_err("history", t([p(2), Value::str("5")]), 1, "size");
        arity_err("history", t([p(1), Value::Int(1), Value::Int(1)]), "1 or 2");
    }

    #[test]
    fn record_iternext() {
        round_trip(
            "record_iternext",
            t([Value::None]),
            Request::RecordIternext(RecordIternext { next: None }),
        );
        round_trip(
            "record_iternext",
            t([]),
            Request::RecordIternext(RecordIternext { next: None }),
        );
        round_trip(
            "record_iternext",
            t([p(1)]),
            Request::RecordIternext(RecordIternext { next: Some(o(1)) }),
        );
        assert_eq!(
            arg_err("record_iternext", t([b(b"x")]), 0, "next"),
            "expected 8 bytes, got 1 or None"
        );
    }
}
