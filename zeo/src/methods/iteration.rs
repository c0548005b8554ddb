//! Iteration methods (`docs/zeo-protocol.md#iteration`, IStorageIteration):
//! `iterator_start`, `iterator_next`, `iterator_record_start`,
//! `iterator_record_next`, `iterator_gc`.
//!
//! Iterator ids are per-connection ints from one counter shared by
//! transaction and record iterators; a proxy has to map them per member.

use super::{conv, Args, Method};
use crate::error::CodecError;
use crate::types::Tid;
use crate::value::Value;

/// `iterator_start(start, stop)`: iterate transactions in `[start, stop]`
/// (`None` = unbounded); replies with an iterator id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IteratorStart {
    pub start: Option<Tid>,
    pub stop: Option<Tid>,
}

impl Method for IteratorStart {
    const NAME: &'static str = "iterator_start";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (2, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(IteratorStart {
            start: a.opt_p64(0, "start")?,
            stop: a.opt_p64(1, "stop")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![conv::opt_p64_value(&self.start), conv::opt_p64_value(&self.stop)]
    }
}

/// `iterator_next(iid)`: the next transaction, `None` at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IteratorNext {
    pub iid: i64,
}

impl Method for IteratorNext {
    const NAME: &'static str = "iterator_next";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (1, 1);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(IteratorNext {
            iid: a.int(0, "iid")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::Int(self.iid)]
    }
}

/// `iterator_record_start(txn_iid, tid)`: iterate the records of the
/// transaction `tid` last returned by iterator `txn_iid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IteratorRecordStart {
    pub txn_iid: i64,
    pub tid: Tid,
}

impl Method for IteratorRecordStart {
    const NAME: &'static str = "iterator_record_start";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (2, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(IteratorRecordStart {
            txn_iid: a.int(0, "txn_iid")?,
            tid: a.p64(1, "tid")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::Int(self.txn_iid), conv::p64_value(&self.tid)]
    }
}

/// `iterator_record_next(riid)`: the next record, `None` at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IteratorRecordNext {
    pub riid: i64,
}

impl Method for IteratorRecordNext {
    const NAME: &'static str = "iterator_record_next";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (1, 1);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(IteratorRecordNext {
            riid: a.int(0, "riid")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::Int(self.riid)]
    }
}

/// `iterator_gc(iids)` (async): forget iterators the client dropped;
/// unknown ids are ignored. ClientStorage sends a list (written as a list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IteratorGc {
    pub iids: Vec<i64>,
}

impl Method for IteratorGc {
    const NAME: &'static str = "iterator_gc";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (1, 1);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(IteratorGc {
            iids: a.at(0, "iids", conv::int_list)?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::List(self.iids.iter().copied().map(Value::Int).collect())]
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::Request;
    use super::*;
    use crate::types::P64;

    #[test]
    fn iterator_start() {
        round_trip(
            "iterator_start",
            t([Value::None, Value::None]),
            Request::IteratorStart(IteratorStart {
                start: None,
                stop: None,
            }),
        );
        round_trip(
            "iterator_start",
            t([p(1), Value::None]),
            Request::IteratorStart(IteratorStart {
                start: Some(P64::from_u64(1)),
                stop: None,
            }),
        );
        arg_err("iterator_start", t([Value::None, b(b"x")]), 1, "stop");
        arity_err("iterator_start", t([Value::None]), "2");
    }

    #[test]
    fn iterator_next_and_records() {
        round_trip(
            "iterator_next",
            t([Value::Int(0)]),
            Request::IteratorNext(IteratorNext { iid: 0 }),
        );
        arg_err("iterator_next", t([Value::None]), 0, "iid");
        let tid = P64([4, 13, 62, 33, 115, 91, 18, 136]);
        round_trip(
            "iterator_record_start",
            t([Value::Int(0), conv::p64_value(&tid)]),
            Request::IteratorRecordStart(IteratorRecordStart { txn_iid: 0, tid }),
        );
        arg_err("iterator_record_start", t([Value::Int(0), b(b"1234")]), 1, "tid");
        arg_err("iterator_record_start", t([b(b"0"), p(1)]), 0, "txn_iid");
        round_trip(
            "iterator_record_next",
            t([Value::Int(1)]),
            Request::IteratorRecordNext(IteratorRecordNext { riid: 1 }),
        );
        arity_err("iterator_record_next", t([]), "1");
    }

    #[test]
    fn iterator_gc() {
        // s07: (0, True, 'iterator_gc', ([1, 2, 3],))
        let args = t([Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)])]);
        let expected = Request::IteratorGc(IteratorGc { iids: vec![1, 2, 3] });
        round_trip("iterator_gc", args.clone(), expected.clone());
        assert_eq!(expected.to_args(), args);
        // msgpack: a tuple
        round_trip(
            "iterator_gc",
            t([t([Value::Int(4)])]),
            Request::IteratorGc(IteratorGc { iids: vec![4] }),
        );
        assert_eq!(
            arg_err(
                "iterator_gc",
                t([Value::List(vec![Value::Int(1), Value::None])]),
                0,
                "iids"
            ),
            "item 1: expected an int, got None"
        );
        arg_err("iterator_gc", t([Value::Int(1)]), 0, "iids");
    }
}
