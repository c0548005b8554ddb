//! Undo-log and pack methods (`docs/zeo-protocol.md#undo-and-pack`): `undoLog`, `undoInfo`,
//! `pack`. The server runs them in a thread, so their replies can overtake
//! later ones.

use super::{conv, Args, Method};
use crate::error::CodecError;
use crate::value::Value;

/// `undoLog(first, last)`: a negative `last` means "at most `-last`
/// transactions" (ClientStorage's default is `(0, -20)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoLog {
    pub first: i64,
    pub last: i64,
}

impl Method for UndoLog {
    const NAME: &'static str = "undoLog";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (2, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(UndoLog {
            first: a.int(0, "first")?,
            last: a.int(1, "last")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::Int(self.first), Value::Int(self.last)]
    }
}

/// `undoInfo(first, last, spec)`: `spec` is `None` or a filter dict that
/// may hold `ZopeUndo.Prefix` objects ([`Value::Object`]); it is passed on
/// untouched.
///
/// The ZEO server requires all three arguments; a missing `spec` is
/// accepted here as `None` (ClientStorage's default) and always written.
#[derive(Clone, Debug, PartialEq)]
pub struct UndoInfo {
    pub first: i64,
    pub last: i64,
    pub spec: Value,
}

impl Method for UndoInfo {
    const NAME: &'static str = "undoInfo";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (2, 3);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(UndoInfo {
            first: a.int(0, "first")?,
            last: a.int(1, "last")?,
            spec: a
                .opt(2, "spec", |v| match v {
                    Value::None | Value::Dict(_) => Ok(v.clone()),
                    other => Err(format!("expected a dict or None, got {}", other.type_name())),
                })?
                .unwrap_or(Value::None),
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::Int(self.first), Value::Int(self.last), self.spec.clone()]
    }
}

/// `pack(t, wait=1)`: pack to time `t` (seconds since the epoch; an int is
/// accepted and becomes a float). `wait` is tested by truthiness: with a
/// truthy `wait` the reply comes after the pack. It is kept as sent (an
/// omitted `wait` is the server's default `1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Pack {
    pub t: f64,
    pub wait: Value,
}

impl Pack {
    pub fn waits(&self) -> bool {
        self.wait.is_truthy()
    }
}

impl Method for Pack {
    const NAME: &'static str = "pack";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (1, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(Pack {
            t: a.at(0, "t", conv::float)?,
            wait: a.get(1).cloned().unwrap_or(Value::Int(1)),
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::Float(self.t), self.wait.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::Request;
    use super::*;

    #[test]
    fn undo_log() {
        round_trip(
            "undoLog",
            t([Value::Int(0), Value::Int(20)]),
            Request::UndoLog(UndoLog { first: 0, last: 20 }),
        );
        round_trip(
            "undoLog",
            t([Value::Int(0), Value::Int(-20)]),
            Request::UndoLog(UndoLog { first: 0, last: -20 }),
        );
        arg_err("undoLog", t([Value::None, Value::Int(20)]), 0, "first");
        arg_err("undoLog", t([Value::Int(0), Value::Float(2.0)]), 1, "last");
        arity_err("undoLog", t([Value::Int(0)]), "2");
    }

    #[test]
    fn undo_info() {
        round_trip(
            "undoInfo",
            t([Value::Int(0), Value::Int(20), Value::None]),
            Request::UndoInfo(UndoInfo {
                first: 0,
                last: 20,
                spec: Value::None,
            }),
        );
        round_trip(
            "undoInfo",
            t([Value::Int(0), Value::Int(-20)]),
            Request::UndoInfo(UndoInfo {
                first: 0,
                last: -20,
                spec: Value::None,
            }),
        );
        // undoInfo(0, -20, {'user_name': Prefix('/ admin')}) (`docs/zeo-protocol.md#encodings`)
        let prefix = Value::Object {
            class: Box::new(Value::Global {
                module: "ZopeUndo.Prefix".into(),
                name: "Prefix".into(),
            }),
            args: Box::new(Value::Tuple(vec![])),
            state: Some(Box::new(Value::Dict(vec![
                (Value::str("length"), Value::Int(2)),
                (
                    Value::str("path"),
                    Value::List(vec![Value::str(""), Value::str(" admin")]),
                ),
            ]))),
        };
        let spec = Value::Dict(vec![(Value::str("user_name"), prefix)]);
        round_trip(
            "undoInfo",
            t([Value::Int(0), Value::Int(-20), spec.clone()]),
            Request::UndoInfo(UndoInfo {
                first: 0,
                last: -20,
                spec,
            }),
        );
        arg_err(
            "undoInfo",
            t([Value::Int(0), Value::Int(-20), Value::str("x")]),
            2,
            "spec",
        );
        arity_err("undoInfo", t([Value::Int(0)]), "2 or 3");
    }

    #[test]
    fn pack() {
        round_trip(
            "pack",
            t([Value::Float(1795570644.468592), Value::Int(1)]),
            Request::Pack(Pack {
                t: 1795570644.468592,
                wait: Value::Int(1),
            }),
        );
        let r = Request::decode("pack", &t([Value::Float(1.5), Value::Int(0)])).unwrap();
        assert!(matches!(&r, Request::Pack(p) if !p.waits()));
        // An int time is accepted; wait defaults to 1 (truthy).
        let r = Request::decode("pack", &t([Value::Int(1795570644)])).unwrap();
        match &r {
            Request::Pack(p) => {
                assert_eq!(p.t, 1795570644.0);
                assert!(p.waits());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Request::decode("pack", &r.to_args()).unwrap(), r);
        round_trip(
            "pack",
            t([Value::Float(2.0), Value::Bool(true)]),
            Request::Pack(Pack {
                t: 2.0,
                wait: Value::Bool(true),
            }),
        );
        assert_eq!(
            arg_err("pack", t([Value::str("now")]), 0, "t"),
            "expected a float, got str"
        );
        arity_err("pack", t([]), "1 or 2");
    }
}
