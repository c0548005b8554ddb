//! Typed error replies (`docs/zeo-protocol.md#error-replies`).
//!
//! A ZEO server does not pickle exception objects into error replies; it
//! sends `(f"{module}.{class}", exc.__dict__ or exc.args)` with flag 2, and
//! the Python client rebuilds a few classes from that (ConflictError needs
//! the keys `message`, `oid`, `serials`). [`ZeoError`] types the classes
//! the RAID must understand and keeps everything else as
//! [`ZeoError::Other`], so any error a member sends can be passed on
//! unchanged.
//!
//! [`ZeoError::from_value`] followed by [`ZeoError::to_value`] reproduces
//! the payloads ZEO sends exactly (dict key order included); a payload of a
//! known class in an unexpected shape (e.g. the blob POSKeyError
//! `('No blob file at ...', oid, serial)`) becomes `Other` rather than
//! being bent into the typed form. The class predicates
//! ([`ZeoError::is_conflict`], ...) look at the class name, so they hold
//! for such `Other`s too.

use std::fmt;

use thiserror::Error;

use crate::error::CodecError;
use crate::methods::conv;
use crate::types::{Oid, Tid};
use crate::value::Value;

pub const CONFLICT_ERROR: &str = "ZODB.POSException.ConflictError";
pub const READ_CONFLICT_ERROR: &str = "ZODB.POSException.ReadConflictError";
pub const BTREES_CONFLICT_ERROR: &str = "ZODB.POSException.BTreesConflictError";
pub const POS_KEY_ERROR: &str = "ZODB.POSException.POSKeyError";
pub const READ_ONLY_ERROR: &str = "ZODB.POSException.ReadOnlyError";
pub const STORAGE_TRANSACTION_ERROR: &str = "ZODB.POSException.StorageTransactionError";
pub const UNDO_ERROR: &str = "ZODB.POSException.UndoError";
pub const MULTIPLE_UNDO_ERRORS: &str = "ZODB.POSException.MultipleUndoErrors";
pub const VALUE_ERROR: &str = "builtins.ValueError";
pub const KEY_ERROR: &str = "builtins.KeyError";
pub const CLIENT_STORAGE_ERROR: &str = "ZEO.Exceptions.ClientStorageError";

/// The payload of a ConflictError / ReadConflictError (its `__dict__`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// `'database conflict error'` / `'database read conflict error'`.
    pub message: String,
    pub oid: Option<Oid>,
    /// The object's class (`'persistent.mapping.PersistentMapping'`), if
    /// the server knew it.
    pub class_name: Option<String>,
    /// `(currently committed tid, tid the transaction read)`.
    pub serials: Option<(Tid, Tid)>,
}

impl Conflict {
    pub const DEFAULT_MESSAGE: &'static str = "database conflict error";
    pub const DEFAULT_READ_MESSAGE: &'static str = "database read conflict error";

    /// A write conflict with ZODB's default message.
    pub fn new(oid: Oid, class_name: Option<String>, serials: (Tid, Tid)) -> Conflict {
        Conflict {
            message: Self::DEFAULT_MESSAGE.to_owned(),
            oid: Some(oid),
            class_name,
            serials: Some(serials),
        }
    }

    /// `{'message', 'oid', 'class_name', 'serials'}`, in the order
    /// `ConflictError.__init__` assigns them.
    fn to_payload(&self) -> Value {
        Value::Dict(vec![
            (Value::str("message"), Value::Str(self.message.clone())),
            (Value::str("oid"), conv::opt_p64_value(&self.oid)),
            (
                Value::str("class_name"),
                self.class_name.clone().map_or(Value::None, Value::Str),
            ),
            (
                Value::str("serials"),
                self.serials.as_ref().map_or(Value::None, |(a, b)| {
                    Value::Tuple(vec![conv::p64_value(a), conv::p64_value(b)])
                }),
            ),
        ])
    }

    /// `None` unless the payload is a dict with the keys the Python client
    /// requires (`message`, `oid`, `serials`), optionally `class_name`, and
    /// nothing else.
    fn from_payload(v: &Value) -> Option<Conflict> {
        let Value::Dict(items) = v else { return None };
        let known = ["message", "oid", "class_name", "serials"];
        if !items
            .iter()
            .all(|(k, _)| k.as_str().is_some_and(|k| known.contains(&k)))
        {
            return None;
        }
        Some(Conflict {
            message: conv::string(v.dict_get("message")?).ok()?,
            oid: conv::opt_p64(v.dict_get("oid")?).ok()?,
            class_name: match v.dict_get("class_name") {
                None => None,
                Some(c) => conv::opt_string(c).ok()?,
            },
            serials: match v.dict_get("serials")? {
                Value::None => None,
                s => Some(conv::p64_pair(s).ok()?),
            },
        })
    }
}

/// Like `ConflictError.__str__`.
impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut extras = Vec::new();
        if let Some(oid) = &self.oid {
            extras.push(format!("oid {oid}"));
        }
        if let Some(c) = &self.class_name {
            extras.push(format!("class {c}"));
        }
        if let Some((current, old)) = &self.serials {
            extras.push(format!("serial this txn started with {old}"));
            extras.push(format!("serial currently committed {current}"));
        }
        if extras.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} ({})", self.message, extras.join(", "))
        }
    }
}

/// The payload of a MultipleUndoErrors: its `_errs` list of
/// `(oid, UndoError)` pairs.
///
/// From a real server the UndoErrors are pickled objects
/// (`Value::Reduce` of `ZODB.POSException._recon` with the class and its
/// state, as in capture s14 c3), or `(class, dict)` pairs under
/// msgpack. They are kept as received; [`MultipleUndoErrors::flattened`]
/// turns them into plain strings.
#[derive(Clone, Debug, PartialEq)]
pub struct MultipleUndoErrors {
    pub errors: Value,
}

impl MultipleUndoErrors {
    /// The same errors with every nested exception replaced by the string
    /// `"UndoError: <reason>"`, i.e. `_errs` becomes a list of
    /// `(oid, str)` tuples. For clients that must not receive objects: a
    /// Python client only resolves globals it whitelists, and the M5 codec
    /// has no objects at all. A Python client still builds a
    /// MultipleUndoErrors from it (it only reads `_errs`) and prints
    /// `Undo error <oid>: UndoError: <reason>`.
    pub fn flattened(&self) -> MultipleUndoErrors {
        let flat = match self.errors.as_seq() {
            Some(items) => items
                .iter()
                .map(|e| match e.as_seq() {
                    Some([oid, err]) => Value::Tuple(vec![oid.clone(), Value::Str(describe(err))]),
                    _ => Value::Str(describe(e)),
                })
                .collect(),
            None => vec![Value::Str(describe(&self.errors))],
        };
        MultipleUndoErrors {
            errors: Value::List(flat),
        }
    }

    /// `(oid, message)` per error, for logs and Display.
    pub fn messages(&self) -> Vec<(Option<Oid>, String)> {
        match self.errors.as_seq() {
            Some(items) => items
                .iter()
                .map(|e| match e.as_seq() {
                    Some([oid, err]) => (conv::p64(oid).ok(), describe(err)),
                    _ => (None, describe(e)),
                })
                .collect(),
            None => vec![(None, describe(&self.errors))],
        }
    }

    /// `MultipleUndoErrors.__dict__`: `UndoError.__init__(self, *errs[0])`
    /// sets `_reason` and `_oid` from the first pair (hence the odd
    /// `_reason = oid` seen in capture s14 c3), then `_errs`.
    fn to_payload(&self) -> Value {
        let mut d = Vec::with_capacity(3);
        if let Some([reason, oid]) = self
            .errors
            .as_seq()
            .and_then(|s| s.first())
            .and_then(Value::as_seq)
        {
            d.push((Value::str("_reason"), reason.clone()));
            d.push((Value::str("_oid"), oid.clone()));
        }
        d.push((Value::str("_errs"), self.errors.clone()));
        Value::Dict(d)
    }

    fn from_payload(v: &Value) -> Option<MultipleUndoErrors> {
        let Value::Dict(items) = v else { return None };
        let known = ["_reason", "_oid", "_errs"];
        if !items
            .iter()
            .all(|(k, _)| k.as_str().is_some_and(|k| known.contains(&k)))
        {
            return None;
        }
        let errors = v.dict_get("_errs")?;
        errors.as_seq()?;
        let typed = MultipleUndoErrors {
            errors: errors.clone(),
        };
        // `_reason`/`_oid` are derived; if they are not what we would derive,
        // keep the payload verbatim as `Other`.
        (typed.to_payload() == *v || (v.dict_get("_reason").is_none() && v.dict_get("_oid").is_none()))
            .then_some(typed)
    }
}

impl fmt::Display for MultipleUndoErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .messages()
            .into_iter()
            .map(|(oid, msg)| match oid {
                Some(oid) => format!("Undo error {oid}: {msg}"),
                None => format!("Undo error: {msg}"),
            })
            .collect();
        f.write_str(&lines.join("; "))
    }
}

/// A one-line description of a nested exception value: `Class: reason`.
fn describe(err: &Value) -> String {
    fn reason(state: &Value) -> String {
        if let Some(Value::Str(s)) = state.dict_get("_reason") {
            return s.clone();
        }
        let args = state.dict_get("args").unwrap_or(state);
        match args.as_seq().and_then(|a| a.first()) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }
    fn with_reason(class: &str, r: String) -> String {
        if r.is_empty() {
            class.to_owned()
        } else {
            format!("{class}: {r}")
        }
    }
    match err {
        Value::Str(s) => s.clone(),
        // GLOBAL ZODB.POSException._recon, (GLOBAL cls, state), REDUCE
        Value::Reduce { args, .. } => match args.as_seq() {
            Some([Value::Global { name, .. }, state]) => with_reason(name, reason(state)),
            _ => "UndoError".to_owned(),
        },
        // msgpack's server_default: (class_name, dict_or_args)
        Value::Tuple(items) | Value::List(items) => match items.as_slice() {
            [Value::Str(class), payload] => {
                with_reason(class.rsplit('.').next().unwrap_or(class), reason(payload))
            }
            _ => format!("{err:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// The error reply of a ZEO call, typed.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ZeoError {
    #[error("ConflictError: {0}")]
    ConflictError(Conflict),
    #[error("ReadConflictError: {0}")]
    ReadConflictError(Conflict),
    /// BTrees conflict resolution failed; positions and a reason code (an
    /// index into `BTreesConflictError.msgs`).
    #[error("BTreesConflictError: BTrees conflict error at {p1}/{p2}/{p3}: reason {reason}")]
    BTreesConflictError { p1: i64, p2: i64, p3: i64, reason: i64 },
    /// The oid does not exist: `(oid,)`.
    #[error("POSKeyError: {0}")]
    POSKeyError(Oid),
    /// `()`: the connection or storage is read-only.
    #[error("ReadOnlyError")]
    ReadOnlyError,
    /// The exception's args, e.g. `(None, 12345)` or `('Multiple
    /// simultaneous tpc_begin requests from one client.',)`.
    #[error("StorageTransactionError{}", args_repr(.0))]
    StorageTransactionError(Vec<Value>),
    /// `{'_reason': message, '_oid': oid}`.
    #[error("UndoError: {message}{}", oid.map(|o| format!(" (oid {o})")).unwrap_or_default())]
    UndoError { message: String, oid: Option<Oid> },
    #[error("MultipleUndoErrors: {0}")]
    MultipleUndoErrors(MultipleUndoErrors),
    /// `('unknown storage: nope',)` and friends.
    #[error("ValueError: {0}")]
    ValueError(String),
    /// `(key,)`, e.g. an unknown iterator id.
    #[error("KeyError: {0:?}")]
    KeyError(Value),
    /// Any other class (or a known class with an unusual payload), kept
    /// verbatim. A Python client turns unknown classes into
    /// `ZEO.Exceptions.ServerException`.
    #[error("{class}: {payload:?}")]
    Other { class: String, payload: Value },
}

fn args_repr(args: &[Value]) -> String {
    format!("{args:?}")
}

fn one_arg(payload: &Value) -> Option<&Value> {
    match payload.as_seq()? {
        [a] => Some(a),
        _ => None,
    }
}

fn dict_with_only<'a>(payload: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    let Value::Dict(items) = payload else {
        return None;
    };
    (items.len() == keys.len()
        && items
            .iter()
            .all(|(k, _)| k.as_str().is_some_and(|k| keys.contains(&k))))
    .then_some(payload)
}

impl ZeoError {
    /// The error a client gets when a server cannot serve a call because of
    /// its own storage (not an application error): a ClientStorage raises it
    /// as `ServerException('ZEO.Exceptions.ClientStorageError', (reason,))`.
    pub fn unavailable(reason: &str) -> ZeoError {
        ZeoError::Other {
            class: CLIENT_STORAGE_ERROR.into(),
            payload: Value::tuple([Value::str(reason)]),
        }
    }

    /// The error ZODB raises for a feature its storage lacks (a blob store
    /// on a storage without blobs): `ZODB.POSException.Unsupported`.
    pub fn unsupported(reason: &str) -> ZeoError {
        ZeoError::Other {
            class: "ZODB.POSException.Unsupported".into(),
            payload: Value::tuple([Value::str(reason)]),
        }
    }

    /// Types an error reply's `(class_name, payload)` value.
    pub fn from_value(v: &Value) -> Result<ZeoError, CodecError> {
        let (class, payload) = match v.as_seq() {
            Some([Value::Str(class), payload]) => (class.as_str(), payload),
            _ => {
                return Err(CodecError::Envelope(format!(
                    "an error reply must be (class name, args), got {}",
                    v.type_name()
                )))
            }
        };
        Ok(Self::typed(class, payload).unwrap_or_else(|| ZeoError::Other {
            class: class.to_owned(),
            payload: payload.clone(),
        }))
    }

    fn typed(class: &str, payload: &Value) -> Option<ZeoError> {
        Some(match class {
            CONFLICT_ERROR => ZeoError::ConflictError(Conflict::from_payload(payload)?),
            READ_CONFLICT_ERROR => ZeoError::ReadConflictError(Conflict::from_payload(payload)?),
            BTREES_CONFLICT_ERROR => {
                let d = dict_with_only(payload, &["p1", "p2", "p3", "reason"])?;
                let int = |k: &str| d.dict_get(k).and_then(|v| conv::int(v).ok());
                ZeoError::BTreesConflictError {
                    p1: int("p1")?,
                    p2: int("p2")?,
                    p3: int("p3")?,
                    reason: int("reason")?,
                }
            }
            POS_KEY_ERROR => ZeoError::POSKeyError(conv::p64(one_arg(payload)?).ok()?),
            READ_ONLY_ERROR => {
                if !payload.as_seq()?.is_empty() {
                    return None;
                }
                ZeoError::ReadOnlyError
            }
            STORAGE_TRANSACTION_ERROR => ZeoError::StorageTransactionError(payload.as_seq()?.to_vec()),
            UNDO_ERROR => {
                let d = dict_with_only(payload, &["_reason", "_oid"])?;
                ZeoError::UndoError {
                    message: conv::string(d.dict_get("_reason")?).ok()?,
                    oid: conv::opt_p64(d.dict_get("_oid")?).ok()?,
                }
            }
            MULTIPLE_UNDO_ERRORS => ZeoError::MultipleUndoErrors(MultipleUndoErrors::from_payload(payload)?),
            VALUE_ERROR => ZeoError::ValueError(conv::string(one_arg(payload)?).ok()?),
            KEY_ERROR => ZeoError::KeyError(one_arg(payload)?.clone()),
            _ => return None,
        })
    }

    /// The dotted class name as sent on the wire.
    pub fn class_name(&self) -> &str {
        match self {
            ZeoError::ConflictError(_) => CONFLICT_ERROR,
            ZeoError::ReadConflictError(_) => READ_CONFLICT_ERROR,
            ZeoError::BTreesConflictError { .. } => BTREES_CONFLICT_ERROR,
            ZeoError::POSKeyError(_) => POS_KEY_ERROR,
            ZeoError::ReadOnlyError => READ_ONLY_ERROR,
            ZeoError::StorageTransactionError(_) => STORAGE_TRANSACTION_ERROR,
            ZeoError::UndoError { .. } => UNDO_ERROR,
            ZeoError::MultipleUndoErrors(_) => MULTIPLE_UNDO_ERRORS,
            ZeoError::ValueError(_) => VALUE_ERROR,
            ZeoError::KeyError(_) => KEY_ERROR,
            ZeoError::Other { class, .. } => class,
        }
    }

    /// The `__dict__`-or-args payload.
    pub fn payload(&self) -> Value {
        match self {
            ZeoError::ConflictError(c) | ZeoError::ReadConflictError(c) => c.to_payload(),
            ZeoError::BTreesConflictError { p1, p2, p3, reason } => Value::Dict(vec![
                (Value::str("p1"), Value::Int(*p1)),
                (Value::str("p2"), Value::Int(*p2)),
                (Value::str("p3"), Value::Int(*p3)),
                (Value::str("reason"), Value::Int(*reason)),
            ]),
            ZeoError::POSKeyError(oid) => Value::Tuple(vec![conv::p64_value(oid)]),
            ZeoError::ReadOnlyError => Value::Tuple(vec![]),
            ZeoError::StorageTransactionError(args) => Value::Tuple(args.clone()),
            ZeoError::UndoError { message, oid } => Value::Dict(vec![
                (Value::str("_reason"), Value::Str(message.clone())),
                (Value::str("_oid"), conv::opt_p64_value(oid)),
            ]),
            ZeoError::MultipleUndoErrors(m) => m.to_payload(),
            ZeoError::ValueError(msg) => Value::Tuple(vec![Value::Str(msg.clone())]),
            ZeoError::KeyError(key) => Value::Tuple(vec![key.clone()]),
            ZeoError::Other { payload, .. } => payload.clone(),
        }
    }

    /// The error reply value `(class_name, payload)`.
    pub fn to_value(&self) -> Value {
        Value::Tuple(vec![Value::str(self.class_name()), self.payload()])
    }

    /// For clients that cannot take pickled objects in an error reply (M5,
    /// and the Z5 server path): MultipleUndoErrors with flattened `_errs`;
    /// every other error unchanged.
    pub fn flattened(&self) -> ZeoError {
        match self {
            ZeoError::MultipleUndoErrors(m) => ZeoError::MultipleUndoErrors(m.flattened()),
            other => other.clone(),
        }
    }

    /// ConflictError and its subclasses: the transaction may be retried.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self.class_name(),
            CONFLICT_ERROR | READ_CONFLICT_ERROR | BTREES_CONFLICT_ERROR
        )
    }

    pub fn is_read_conflict(&self) -> bool {
        self.class_name() == READ_CONFLICT_ERROR
    }

    pub fn is_pos_key_error(&self) -> bool {
        self.class_name() == POS_KEY_ERROR
    }

    pub fn is_read_only(&self) -> bool {
        self.class_name() == READ_ONLY_ERROR
    }

    pub fn is_undo_error(&self) -> bool {
        matches!(self.class_name(), UNDO_ERROR | MULTIPLE_UNDO_ERRORS)
    }

    /// An answer about the data or the transaction that every healthy
    /// member gives identically (conflicts, missing oid, undo refused,
    /// read-only, transaction state), as opposed to a failure of one member
    /// (anything else, e.g. an unexpected server exception). The RAID
    /// passes application errors on to the client instead of degrading the
    /// member.
    pub fn is_application_error(&self) -> bool {
        matches!(
            self.class_name(),
            CONFLICT_ERROR
                | READ_CONFLICT_ERROR
                | BTREES_CONFLICT_ERROR
                | POS_KEY_ERROR
                | UNDO_ERROR
                | MULTIPLE_UNDO_ERRORS
                | READ_ONLY_ERROR
                | STORAGE_TRANSACTION_ERROR
        )
    }

    /// The oid the error is about, if it names one (a ConflictError's oid
    /// is what a client invalidates in its cache).
    pub fn oid(&self) -> Option<Oid> {
        match self {
            ZeoError::ConflictError(c) | ZeoError::ReadConflictError(c) => c.oid,
            ZeoError::POSKeyError(oid) => Some(*oid),
            ZeoError::UndoError { oid, .. } => *oid,
            _ => None,
        }
    }

    /// The conflict details of a (read) conflict error.
    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            ZeoError::ConflictError(c) | ZeoError::ReadConflictError(c) => Some(c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::P64;
    use bytes::Bytes;

    fn p(n: u64) -> Value {
        conv::p64_value(&P64::from_u64(n))
    }

    fn o(n: u64) -> P64 {
        P64::from_u64(n)
    }

    fn tid(b: [u8; 8]) -> Value {
        Value::Bytes(Bytes::copy_from_slice(&b))
    }

    fn t(items: impl IntoIterator<Item = Value>) -> Value {
        Value::tuple(items)
    }

    fn d(items: &[(&str, Value)]) -> Value {
        Value::Dict(items.iter().map(|(k, v)| (Value::str(*k), v.clone())).collect())
    }

    fn exact(wire: Value, expected: ZeoError) -> ZeoError {
        let got = ZeoError::from_value(&wire).unwrap();
        assert_eq!(got, expected);
        assert_eq!(got.to_value(), wire);
        got
    }

    const COMMITTED: [u8; 8] = [0x04, 0x0d, 0x3e, 0x21, 0x44, 0x8e, 0xfe, 0x33];
    const READ: [u8; 8] = [0x04, 0x0d, 0x3e, 0x21, 0x42, 0xda, 0x16, 0xcc];

    #[test]
    fn conflict_error_f7() {
        let wire = t([
            Value::str("ZODB.POSException.ConflictError"),
            d(&[
                ("message", Value::str("database conflict error")),
                ("oid", p(1)),
                ("class_name", Value::str("persistent.mapping.PersistentMapping")),
                ("serials", t([tid(COMMITTED), tid(READ)])),
            ]),
        ]);
        let e = exact(
            wire,
            ZeoError::ConflictError(Conflict::new(
                o(1),
                Some("persistent.mapping.PersistentMapping".into()),
                (P64(COMMITTED), P64(READ)),
            )),
        );
        assert!(e.is_conflict() && !e.is_read_conflict() && e.is_application_error());
        assert_eq!(e.oid(), Some(o(1)));
        assert_eq!(e.conflict().unwrap().serials, Some((P64(COMMITTED), P64(READ))));
        assert_eq!(
            e.to_string(),
            "ConflictError: database conflict error (oid 0x0000000000000001, class \
             persistent.mapping.PersistentMapping, serial this txn started with 0x040d3e2142da16cc, \
             serial currently committed 0x040d3e21448efe33)"
        );
    }

    #[test]
    fn read_conflict_error_f8() {
        let committed = [0x04, 0x0d, 0x3e, 0x21, 0x4a, 0xd6, 0xba, 0xbb];
        let wire = t([
            Value::str("ZODB.POSException.ReadConflictError"),
            d(&[
                ("message", Value::str("database read conflict error")),
                ("oid", p(3)),
                ("class_name", Value::None),
                ("serials", t([tid(committed), tid(READ)])),
            ]),
        ]);
        let e = exact(
            wire,
            ZeoError::ReadConflictError(Conflict {
                message: Conflict::DEFAULT_READ_MESSAGE.into(),
                oid: Some(o(3)),
                class_name: None,
                serials: Some((P64(committed), P64(READ))),
            }),
        );
        assert!(e.is_conflict() && e.is_read_conflict());
    }

    #[test]
    fn conflict_error_msgpack_and_odd_shapes() {
        // msgpack: serials is a tuple anyway; a list is accepted too.
        let payload = d(&[
            ("message", Value::str("m")),
            ("oid", Value::None),
            ("class_name", Value::None),
            ("serials", Value::List(vec![p(2), p(1)])),
        ]);
        let e = ZeoError::from_value(&t([Value::str(CONFLICT_ERROR), payload])).unwrap();
        assert!(
            matches!(&e, ZeoError::ConflictError(c) if c.serials == Some((o(2), o(1))) && c.oid.is_none())
        );
        assert_eq!(e.to_string(), "ConflictError: m (serial this txn started with 0x0000000000000001, serial currently committed 0x0000000000000002)");
        // class_name missing is fine (the Python client uses d.get).
        let e = ZeoError::from_value(&t([
            Value::str(CONFLICT_ERROR),
            d(&[
                ("message", Value::str("m")),
                ("oid", p(1)),
                ("serials", Value::None),
            ]),
        ]))
        .unwrap();
        assert!(matches!(e, ZeoError::ConflictError(_)));
        // An extra key or a bad oid keeps the payload verbatim.
        for payload in [
            d(&[
                ("message", Value::str("m")),
                ("oid", p(1)),
                ("serials", Value::None),
                ("data", p(0)),
            ]),
            d(&[
                ("message", Value::str("m")),
                ("oid", Value::bytes(&b"abc"[..])),
                ("serials", Value::None),
            ]),
            t([Value::str("args form")]),
        ] {
            let wire = t([Value::str(CONFLICT_ERROR), payload.clone()]);
            let e = exact(
                wire,
                ZeoError::Other {
                    class: CONFLICT_ERROR.into(),
                    payload,
                },
            );
            assert!(e.is_conflict(), "class-based predicate");
        }
    }

    #[test]
    fn btrees_conflict_error() {
        let wire = t([
            Value::str(BTREES_CONFLICT_ERROR),
            d(&[
                ("p1", Value::Int(-1)),
                ("p2", Value::Int(3)),
                ("p3", Value::Int(4)),
                ("reason", Value::Int(1)),
            ]),
        ]);
        let e = exact(
            wire,
            ZeoError::BTreesConflictError {
                p1: -1,
                p2: 3,
                p3: 4,
                reason: 1,
            },
        );
        assert!(e.is_conflict());
        assert_eq!(
            e.to_string(),
            "BTreesConflictError: BTrees conflict error at -1/3/4: reason 1"
        );
    }

    #[test]
    fn pos_key_error_f3_f11() {
        let e = exact(
            t([Value::str(POS_KEY_ERROR), t([p(0)])]),
            ZeoError::POSKeyError(o(0)),
        );
        assert!(e.is_pos_key_error() && e.is_application_error() && !e.is_conflict());
        assert_eq!(e.oid(), Some(o(0)));
        assert_eq!(e.to_string(), "POSKeyError: 0x0000000000000000");
        // The blob form keeps its three args.
        let payload = t([Value::str("No blob file at /x"), p(1), p(2)]);
        let e = exact(
            t([Value::str(POS_KEY_ERROR), payload.clone()]),
            ZeoError::Other {
                class: POS_KEY_ERROR.into(),
                payload,
            },
        );
        assert!(e.is_pos_key_error());
    }

    #[test]
    fn read_only_and_storage_transaction_errors_f9() {
        let e = exact(t([Value::str(READ_ONLY_ERROR), t([])]), ZeoError::ReadOnlyError);
        assert!(e.is_read_only() && e.is_application_error());
        assert_eq!(e.to_string(), "ReadOnlyError");
        let e = exact(
            t([
                Value::str(STORAGE_TRANSACTION_ERROR),
                t([Value::None, Value::Int(12345)]),
            ]),
            ZeoError::StorageTransactionError(vec![Value::None, Value::Int(12345)]),
        );
        assert!(e.is_application_error());
        assert_eq!(e.to_string(), "StorageTransactionError[None, Int(12345)]");
        exact(
            t([
                Value::str(STORAGE_TRANSACTION_ERROR),
                t([Value::str(
                    "Multiple simultaneous tpc_begin requests from one client.",
                )]),
            ]),
            ZeoError::StorageTransactionError(vec![Value::str(
                "Multiple simultaneous tpc_begin requests from one client.",
            )]),
        );
    }

    #[test]
    fn value_and_key_errors() {
        let e = exact(
            t([Value::str(VALUE_ERROR), t([Value::str("unknown storage: nope")])]),
            ZeoError::ValueError("unknown storage: nope".into()),
        );
        assert!(!e.is_application_error());
        assert_eq!(e.to_string(), "ValueError: unknown storage: nope");
        let e = exact(
            t([Value::str(KEY_ERROR), t([Value::Int(7)])]),
            ZeoError::KeyError(Value::Int(7)),
        );
        assert_eq!(e.class_name(), "builtins.KeyError");
        // Python 2 spelling and other classes stay verbatim.
        exact(
            t([Value::str("exceptions.KeyError"), t([Value::Int(7)])]),
            ZeoError::Other {
                class: "exceptions.KeyError".into(),
                payload: t([Value::Int(7)]),
            },
        );
        let e = exact(
            t([Value::str("builtins.AttributeError"), t([Value::str("new_oid")])]),
            ZeoError::Other {
                class: "builtins.AttributeError".into(),
                payload: t([Value::str("new_oid")]),
            },
        );
        assert!(!e.is_application_error());
        assert_eq!(e.class_name(), "builtins.AttributeError");
    }

    #[test]
    fn undo_error() {
        let e = exact(
            t([
                Value::str(UNDO_ERROR),
                d(&[
                    ("_reason", Value::str("non-undoable transaction")),
                    ("_oid", Value::None),
                ]),
            ]),
            ZeoError::UndoError {
                message: "non-undoable transaction".into(),
                oid: None,
            },
        );
        assert!(e.is_undo_error() && e.is_application_error());
        assert_eq!(e.to_string(), "UndoError: non-undoable transaction");
        let e = exact(
            t([
                Value::str(UNDO_ERROR),
                d(&[("_reason", Value::str("r")), ("_oid", p(1))]),
            ]),
            ZeoError::UndoError {
                message: "r".into(),
                oid: Some(o(1)),
            },
        );
        assert_eq!(e.oid(), Some(o(1)));
    }

    const REASON: &str = "Some data were modified by a later transaction";

    /// One pickled UndoError as in capture s14 c3: `_recon(UndoError, state)`.
    fn pickled_undo_error() -> Value {
        Value::Reduce {
            callable: Box::new(Value::Global {
                module: "ZODB.POSException".into(),
                name: "_recon".into(),
            }),
            args: Box::new(t([
                Value::Global {
                    module: "ZODB.POSException".into(),
                    name: "UndoError".into(),
                },
                d(&[
                    ("_reason", Value::str(REASON)),
                    ("_oid", p(1)),
                    ("args", t([Value::str(REASON), p(1)])),
                ]),
            ])),
        }
    }

    #[test]
    fn multiple_undo_errors_f10() {
        let errs = Value::List(vec![t([p(1), pickled_undo_error()])]);
        let wire = t([
            Value::str(MULTIPLE_UNDO_ERRORS),
            d(&[
                ("_reason", p(1)),
                ("_oid", pickled_undo_error()),
                ("_errs", errs.clone()),
            ]),
        ]);
        let e = exact(
            wire,
            ZeoError::MultipleUndoErrors(MultipleUndoErrors { errors: errs }),
        );
        assert!(e.is_undo_error() && e.is_application_error());
        assert_eq!(
            e.to_string(),
            format!("MultipleUndoErrors: Undo error 0x0000000000000001: UndoError: {REASON}")
        );

        // Flattened: no objects left, plain (oid, str) tuples.
        let flat = e.flattened();
        let flat_errs = Value::List(vec![t([p(1), Value::str(format!("UndoError: {REASON}"))])]);
        assert_eq!(
            flat,
            ZeoError::MultipleUndoErrors(MultipleUndoErrors {
                errors: flat_errs.clone()
            })
        );
        assert_eq!(
            flat.to_value(),
            t([
                Value::str(MULTIPLE_UNDO_ERRORS),
                d(&[
                    ("_reason", p(1)),
                    ("_oid", Value::str(format!("UndoError: {REASON}"))),
                    ("_errs", flat_errs),
                ]),
            ])
        );
        fn has_objects(v: &Value) -> bool {
            match v {
                Value::Global { .. } | Value::Reduce { .. } | Value::Object { .. } => true,
                Value::Tuple(i) | Value::List(i) => i.iter().any(has_objects),
                Value::Dict(i) => i.iter().any(|(k, v)| has_objects(k) || has_objects(v)),
                _ => false,
            }
        }
        assert!(has_objects(&e.to_value()));
        assert!(!has_objects(&flat.to_value()));
        // Flattening is idempotent and leaves other errors alone.
        assert_eq!(flat.flattened(), flat);
        assert_eq!(ZeoError::ReadOnlyError.flattened(), ZeoError::ReadOnlyError);
    }

    #[test]
    fn multiple_undo_errors_msgpack_form() {
        // server_default turns nested exceptions into (class, __dict__).
        let nested = t([
            Value::str(UNDO_ERROR),
            d(&[("_reason", Value::str(REASON)), ("_oid", p(1))]),
        ]);
        let errs = t([t([p(1), nested.clone()])]);
        let wire = t([
            Value::str(MULTIPLE_UNDO_ERRORS),
            d(&[("_reason", p(1)), ("_oid", nested), ("_errs", errs.clone())]),
        ]);
        let e = exact(
            wire,
            ZeoError::MultipleUndoErrors(MultipleUndoErrors { errors: errs }),
        );
        match e.flattened() {
            ZeoError::MultipleUndoErrors(m) => {
                assert_eq!(m.messages(), vec![(Some(o(1)), format!("UndoError: {REASON}"))]);
            }
            other => panic!("{other:?}"),
        }
        // `_reason`/`_oid` that are not derived from `_errs` stay verbatim.
        let payload = d(&[
            ("_reason", Value::str("x")),
            ("_oid", Value::None),
            ("_errs", t([])),
        ]);
        exact(
            t([Value::str(MULTIPLE_UNDO_ERRORS), payload.clone()]),
            ZeoError::Other {
                class: MULTIPLE_UNDO_ERRORS.into(),
                payload,
            },
        );
    }

    #[test]
    fn malformed_error_values() {
        for v in [
            Value::None,
            t([Value::str(POS_KEY_ERROR)]),
            t([Value::bytes(&b"ZODB.POSException.POSKeyError"[..]), t([p(0)])]),
            t([Value::str(POS_KEY_ERROR), t([p(0)]), Value::None]),
        ] {
            assert!(
                matches!(ZeoError::from_value(&v), Err(CodecError::Envelope(_))),
                "{v:?}"
            );
        }
        // A list (msgpack would give a tuple, a raw pickle might give a list)
        // is accepted.
        assert_eq!(
            ZeoError::from_value(&Value::List(vec![
                Value::str(READ_ONLY_ERROR),
                Value::List(vec![])
            ]))
            .unwrap(),
            ZeoError::ReadOnlyError
        );
    }

    #[test]
    fn zeo_error_is_a_std_error() {
        fn takes(_: &dyn std::error::Error) {}
        takes(&ZeoError::ReadOnlyError);
    }
}
