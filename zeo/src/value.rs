//! The codec-neutral value model shared by the Z5 (pickle) and M5 (msgpack)
//! codecs.
//!
//! Why not `serde_pickle::Value`: its dicts are `BTreeMap`s (wire order is
//! lost), it cannot represent the `GLOBAL`/`REDUCE` objects that ZEO puts into
//! `MultipleUndoErrors` replies, and its decoder recurses per nesting level
//! (a 1.4 KB frame overflows a worker stack). Our model keeps dicts in wire
//! order, has explicit nodes for the few pickle objects ZEO uses, and stores
//! byte strings as [`Bytes`] so record data can be sliced out of a frame
//! without copying.

use bytes::Bytes;
use num_bigint::BigInt;
use num_traits::ToPrimitive;

/// A Python value as it travels in a ZEO message.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// Any int that fits in an `i64`.
    Int(i64),
    /// Ints outside the `i64` range (`id(txn)` can be, in principle; LONG1 on the wire).
    /// Always normalised: a `BigInt` never holds a value that fits in `Int`.
    BigInt(BigInt),
    Float(f64),
    Bytes(Bytes),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Dict items in wire order, repeated keys included (see [`Value::dict_get`]).
    Dict(Vec<(Value, Value)>),
    /// A pickle `GLOBAL` reference. Only whitelisted names are ever decoded
    /// (see [`crate::pickle::Limits::allow_global`]); nothing is ever resolved or executed.
    Global {
        module: String,
        name: String,
    },
    /// A pickle `REDUCE`: `callable(*args)`, kept as data.
    Reduce {
        callable: Box<Value>,
        args: Box<Value>,
    },
    /// A pickle `NEWOBJ` (+ optional `BUILD`): `cls.__new__(cls, *args)` then
    /// `__setstate__(state)`, kept as data (e.g. `ZopeUndo.Prefix` in `undoInfo` specs).
    Object {
        class: Box<Value>,
        args: Box<Value>,
        state: Option<Box<Value>>,
    },
}

impl Value {
    /// Builds an int value, normalising to [`Value::Int`] when it fits.
    pub fn from_bigint(n: BigInt) -> Value {
        match n.to_i64() {
            Some(i) => Value::Int(i),
            None => Value::BigInt(n),
        }
    }

    pub fn bytes(b: impl Into<Bytes>) -> Value {
        Value::Bytes(b.into())
    }

    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn tuple(items: impl IntoIterator<Item = Value>) -> Value {
        Value::Tuple(items.into_iter().collect())
    }

    /// Python truthiness, as ZEO applies it to message flags.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::BigInt(_) => true,
            Value::Float(f) => *f != 0.0,
            Value::Bytes(b) => !b.is_empty(),
            Value::Str(s) => !s.is_empty(),
            Value::Tuple(v) | Value::List(v) => !v.is_empty(),
            Value::Dict(d) => !d.is_empty(),
            Value::Global { .. } | Value::Reduce { .. } | Value::Object { .. } => true,
        }
    }

    /// The elements of a tuple or a list (ZEO accepts either for sequences;
    /// msgpack has no tuple type).
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An int (bools count, as in Python).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// Looks a key up in a dict value by str key. Dicts keep their pairs as
    /// on the wire; like Python, the last of repeated keys wins.
    pub fn dict_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global { .. } => "global",
            Value::Reduce { .. } => "reduce",
            Value::Object { .. } => "object",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Value {
        Value::Bytes(b)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::None, Into::into)
    }
}
