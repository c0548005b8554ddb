//! The `(msgid, flags, name, args)` envelope of every post-handshake ZEO
//! message (`docs/zeo-protocol.md#envelope`), decoded from and encoded to a [`Value`].
//!
//! This layer only classifies a message (call, reply, error reply,
//! heartbeat) and keeps its payload as a [`Value`]; [`crate::methods`],
//! [`crate::reply`], [`crate::callbacks`] and [`crate::exceptions`] give the
//! payload its type. Keeping the two steps apart lets a server answer (or
//! refuse) a call whose arguments do not decode, because the msgid is known
//! as soon as the envelope is.
//!
//! Encoding reproduces ZEO's exact wire types so re-encoded frames are
//! byte-identical to real ones: calls from a Python client carry a bool
//! flag (`NEWFALSE`/`NEWTRUE`), replies carry the int `0`, error replies the
//! int `2`, callbacks are `(0, True, name, args)` and the heartbeat is
//! `(-1, 0, '.reply', None)`.

use std::hash::{Hash, Hasher};

use crate::error::CodecError;
use crate::value::Value;

/// The name ZEO uses for every reply (and the heartbeat).
pub const REPLY_NAME: &str = ".reply";

/// The flag value of an error reply. Python clients treat any truthy flag on
/// a `.reply` as an error; ZEO sends `2`.
pub const ERROR_FLAG: i64 = 2;

/// A message id, kept as the exact value that was on the wire.
///
/// Why opaque: ClientStorage uses an int counter for most calls but the
/// `(oid, tid)` tuple for `loadBefore`, so that concurrent identical loads
/// collapse into one request (`docs/zeo-protocol.md#msgids`); the reply must echo the
/// very same value or the client never matches it. Async calls and
/// callbacks use `0`, the heartbeat `-1`.
///
/// `Eq`/`Hash` are structural so ids can key a table of pending calls; a
/// float inside an id (never seen) is compared by its bit pattern, which
/// keeps `Eq` and `Hash` consistent.
#[derive(Clone, Debug)]
pub struct MsgId(pub Value);

impl MsgId {
    /// The id of async calls and callbacks.
    pub const ASYNC: MsgId = MsgId(Value::Int(0));
    /// The id of the client's heartbeat.
    pub const HEARTBEAT: MsgId = MsgId(Value::Int(-1));

    /// An ordinary int message id (what a Rust client uses).
    pub fn int(n: i64) -> MsgId {
        MsgId(Value::Int(n))
    }

    /// The id as an int, if it is one (`loadBefore` ids are tuples).
    pub fn as_int(&self) -> Option<i64> {
        match self.0 {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn value(&self) -> &Value {
        &self.0
    }

    pub fn into_value(self) -> Value {
        self.0
    }

    /// `-1`: the ZEO server drops such messages before even looking at the
    /// name (`docs/zeo-protocol.md#heartbeat`).
    pub fn is_heartbeat(&self) -> bool {
        matches!(self.0, Value::Int(-1))
    }
}

impl From<i64> for MsgId {
    fn from(n: i64) -> MsgId {
        MsgId::int(n)
    }
}

impl PartialEq for MsgId {
    fn eq(&self, other: &MsgId) -> bool {
        value_eq(&self.0, &other.0)
    }
}

impl Eq for MsgId {}

/// `Value` equality with floats compared by bit pattern.
fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Tuple(x), Value::Tuple(y)) | (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| value_eq(a, b))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| value_eq(ka, kb) && value_eq(va, vb))
        }
        (
            Value::Reduce {
                callable: ca,
                args: aa,
            },
            Value::Reduce {
                callable: cb,
                args: ab,
            },
        ) => value_eq(ca, cb) && value_eq(aa, ab),
        (
            Value::Object {
                class: ca,
                args: aa,
                state: sa,
            },
            Value::Object {
                class: cb,
                args: ab,
                state: sb,
            },
        ) => {
            value_eq(ca, cb)
                && value_eq(aa, ab)
                && match (sa, sb) {
                    (Some(x), Some(y)) => value_eq(x, y),
                    (None, None) => true,
                    _ => false,
                }
        }
        _ => a == b,
    }
}

impl Hash for MsgId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_value(&self.0, state);
    }
}

fn hash_value<H: Hasher>(v: &Value, state: &mut H) {
    std::mem::discriminant(v).hash(state);
    match v {
        Value::None => {}
        Value::Bool(b) => b.hash(state),
        Value::Int(i) => i.hash(state),
        Value::BigInt(b) => b.hash(state),
        Value::Float(f) => f.to_bits().hash(state),
        Value::Bytes(b) => b.hash(state),
        Value::Str(s) => s.hash(state),
        Value::Tuple(items) | Value::List(items) => {
            items.len().hash(state);
            items.iter().for_each(|i| hash_value(i, state));
        }
        Value::Dict(items) => {
            items.len().hash(state);
            for (k, v) in items {
                hash_value(k, state);
                hash_value(v, state);
            }
        }
        Value::Global { module, name } => {
            module.hash(state);
            name.hash(state);
        }
        Value::Reduce { callable, args } => {
            hash_value(callable, state);
            hash_value(args, state);
        }
        Value::Object {
            class,
            args,
            state: st,
        } => {
            hash_value(class, state);
            hash_value(args, state);
            if let Some(st) = st {
                hash_value(st, state);
            }
        }
    }
}

/// How the flag of a call was (or is to be) written.
///
/// The server only tests the flag's truthiness, but ClientStorage writes a
/// bool while hand-written clients write `0`/`1` (captures s15, s17).
/// Remembering which lets a decoded call re-encode to the same value, which
/// the golden tests over the captures rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FlagStyle {
    /// `False`/`True`: ClientStorage calls and ZEO server callbacks.
    #[default]
    Bool,
    /// `0`/`1` (any non-bool flag decodes to this style).
    Int,
}

impl FlagStyle {
    fn encode(self, oneway: bool) -> Value {
        match self {
            FlagStyle::Bool => Value::Bool(oneway),
            FlagStyle::Int => Value::Int(oneway as i64),
        }
    }
}

/// One decoded envelope.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A call (client -> server) or a callback (server -> client); both are
    /// "anything whose name is not `.reply`".
    Call {
        msgid: MsgId,
        /// A truthy flag: no reply is expected (and an exception on the
        /// server closes the connection instead of being reported).
        oneway: bool,
        name: String,
        /// The argument tuple (a list is accepted: Python calls `f(*args)`).
        /// Typed by [`crate::methods::Request::decode`] or
        /// [`crate::callbacks::Callback::decode`].
        args: Value,
        flag_style: FlagStyle,
    },
    /// A success reply: the method's return value, not wrapped in a tuple.
    Reply { msgid: MsgId, result: Value },
    /// An error reply: `(dotted class name, __dict__ or args)`, typed by
    /// [`crate::exceptions::ZeoError::from_value`].
    ErrorReply { msgid: MsgId, error: Value },
    /// The client's keep-alive: any message with msgid `-1`. It is never
    /// answered.
    Heartbeat,
}

impl Message {
    /// A synchronous call as ClientStorage writes it (`False` flag).
    pub fn call(msgid: MsgId, name: impl Into<String>, args: Value) -> Message {
        Message::Call {
            msgid,
            oneway: false,
            name: name.into(),
            args,
            flag_style: FlagStyle::Bool,
        }
    }

    /// An async call or a server callback: `(0, True, name, args)`.
    pub fn oneway(name: impl Into<String>, args: Value) -> Message {
        Message::Call {
            msgid: MsgId::ASYNC,
            oneway: true,
            name: name.into(),
            args,
            flag_style: FlagStyle::Bool,
        }
    }

    pub fn reply(msgid: MsgId, result: Value) -> Message {
        Message::Reply { msgid, result }
    }

    pub fn error_reply(msgid: MsgId, error: Value) -> Message {
        Message::ErrorReply { msgid, error }
    }

    /// The message id, `None` for a heartbeat.
    pub fn msgid(&self) -> Option<&MsgId> {
        match self {
            Message::Call { msgid, .. }
            | Message::Reply { msgid, .. }
            | Message::ErrorReply { msgid, .. } => Some(msgid),
            Message::Heartbeat => None,
        }
    }

    /// Classifies a decoded frame the way ZEO does (`docs/zeo-protocol.md#envelope`):
    /// msgid `-1` first (heartbeat, rest ignored), then `.reply` with a
    /// truthy flag = error reply, falsy = reply, anything else = call.
    pub fn from_value(v: Value) -> Result<Message, CodecError> {
        let items = match v {
            Value::Tuple(items) | Value::List(items) => items,
            other => {
                return Err(CodecError::Envelope(format!(
                    "expected a 4-tuple (msgid, flags, name, args), got {}",
                    other.type_name()
                )))
            }
        };
        let [msgid, flags, name, args]: [Value; 4] = items.try_into().map_err(|v: Vec<Value>| {
            CodecError::Envelope(format!(
                "expected a 4-tuple (msgid, flags, name, args), got {} items",
                v.len()
            ))
        })?;
        let msgid = MsgId(msgid);
        if msgid.is_heartbeat() {
            return Ok(Message::Heartbeat);
        }
        let name = match name {
            Value::Str(s) => s,
            other => {
                return Err(CodecError::Envelope(format!(
                    "message name must be a str, got {}",
                    other.type_name()
                )))
            }
        };
        let truthy = flags.is_truthy();
        if name == REPLY_NAME {
            return Ok(if truthy {
                Message::ErrorReply { msgid, error: args }
            } else {
                Message::Reply { msgid, result: args }
            });
        }
        let flag_style = if matches!(flags, Value::Bool(_)) {
            FlagStyle::Bool
        } else {
            FlagStyle::Int
        };
        Ok(Message::Call {
            msgid,
            oneway: truthy,
            name,
            args,
            flag_style,
        })
    }

    /// The envelope with ZEO's wire types (see the module docs).
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// Like [`Message::to_value`], consuming the message (no copy of large
    /// arguments such as records or blob chunks).
    pub fn into_value(self) -> Value {
        match self {
            Message::Call {
                msgid,
                oneway,
                name,
                args,
                flag_style,
            } => Value::Tuple(vec![msgid.0, flag_style.encode(oneway), Value::Str(name), args]),
            Message::Reply { msgid, result } => {
                Value::Tuple(vec![msgid.0, Value::Int(0), Value::str(REPLY_NAME), result])
            }
            Message::ErrorReply { msgid, error } => Value::Tuple(vec![
                msgid.0,
                Value::Int(ERROR_FLAG),
                Value::str(REPLY_NAME),
                error,
            ]),
            Message::Heartbeat => Value::Tuple(vec![
                Value::Int(-1),
                Value::Int(0),
                Value::str(REPLY_NAME),
                Value::None,
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::HashSet;

    fn env(msgid: Value, flags: Value, name: &str, args: Value) -> Value {
        Value::Tuple(vec![msgid, flags, Value::str(name), args])
    }

    fn p(n: u8) -> Value {
        Value::Bytes(Bytes::from(vec![0, 0, 0, 0, 0, 0, 0, n]))
    }

    #[test]
    fn python_sync_call_round_trips() {
        let v = env(
            Value::Int(1),
            Value::Bool(false),
            "register",
            Value::tuple([Value::str("1"), Value::Int(0)]),
        );
        let m = Message::from_value(v.clone()).unwrap();
        assert_eq!(
            m,
            Message::call(
                MsgId::int(1),
                "register",
                Value::tuple([Value::str("1"), Value::Int(0)])
            )
        );
        assert_eq!(m.to_value(), v);
        assert_eq!(m.into_value(), v);
    }

    #[test]
    fn python_async_call_and_callback_round_trip() {
        let v = env(
            Value::Int(0),
            Value::Bool(true),
            "info",
            Value::tuple([Value::Dict(vec![])]),
        );
        let m = Message::from_value(v.clone()).unwrap();
        assert_eq!(m, Message::oneway("info", Value::tuple([Value::Dict(vec![])])));
        assert_eq!(m.to_value(), v);
    }

    #[test]
    fn int_flags_are_tested_by_truthiness_and_kept() {
        // s15 c3: (2, 0, 'lastTransaction', ()), (3, 1, 'ping', ()), (4, 0, 'ping', [])
        for (flag, oneway) in [(0, false), (1, true), (2, true)] {
            let v = env(Value::Int(3), Value::Int(flag), "ping", Value::List(vec![]));
            let m = Message::from_value(v.clone()).unwrap();
            match &m {
                Message::Call {
                    oneway: o,
                    flag_style,
                    args,
                    ..
                } => {
                    assert_eq!(*o, oneway);
                    assert_eq!(*flag_style, FlagStyle::Int);
                    assert_eq!(*args, Value::List(vec![]));
                }
                other => panic!("{other:?}"),
            }
            if flag < 2 {
                assert_eq!(m.to_value(), v);
            }
        }
        // None is falsy too.
        let m = Message::from_value(env(Value::Int(3), Value::None, "ping", Value::Tuple(vec![]))).unwrap();
        assert!(matches!(m, Message::Call { oneway: false, .. }));
    }

    #[test]
    fn tuple_msgid_is_echoed_exactly() {
        // loadBefore: msgid (oid, tid) == args (capture s02 c1).
        let id = Value::tuple([p(0), p(1)]);
        let call = env(id.clone(), Value::Bool(false), "loadBefore", id.clone());
        let m = Message::from_value(call).unwrap();
        let msgid = m.msgid().unwrap().clone();
        assert_eq!(msgid.as_int(), None);
        let reply = Message::reply(msgid.clone(), Value::None);
        assert_eq!(
            reply.to_value(),
            env(id.clone(), Value::Int(0), ".reply", Value::None)
        );
        let err = Message::error_reply(msgid, Value::tuple([Value::str("X"), Value::Tuple(vec![])]));
        assert_eq!(
            err.to_value(),
            env(
                id,
                Value::Int(2),
                ".reply",
                Value::tuple([Value::str("X"), Value::Tuple(vec![])])
            )
        );
    }

    #[test]
    fn replies_use_int_flags() {
        let ok = env(Value::Int(3), Value::Int(0), ".reply", Value::List(vec![]));
        let m = Message::from_value(ok.clone()).unwrap();
        assert_eq!(m, Message::reply(MsgId::int(3), Value::List(vec![])));
        assert_eq!(m.to_value(), ok);

        let e = Value::tuple([
            Value::str("ZODB.POSException.ReadOnlyError"),
            Value::Tuple(vec![]),
        ]);
        let bad = env(Value::Int(3), Value::Int(2), ".reply", e.clone());
        let m = Message::from_value(bad.clone()).unwrap();
        assert_eq!(m, Message::error_reply(MsgId::int(3), e));
        assert_eq!(m.to_value(), bad);

        // Any truthy flag on a reply is an error (Python client semantics);
        // a False flag is a success.
        let m = Message::from_value(env(Value::Int(3), Value::Bool(true), ".reply", Value::None)).unwrap();
        assert!(matches!(m, Message::ErrorReply { .. }));
        let m = Message::from_value(env(Value::Int(3), Value::Bool(false), ".reply", Value::None)).unwrap();
        assert!(matches!(m, Message::Reply { .. }));
    }

    #[test]
    fn heartbeat_is_recognised_by_msgid_alone() {
        let hb = env(Value::Int(-1), Value::Int(0), ".reply", Value::None);
        let m = Message::from_value(hb.clone()).unwrap();
        assert_eq!(m, Message::Heartbeat);
        assert_eq!(m.to_value(), hb);
        assert_eq!(m.msgid(), None);
        // The server ignores msgid -1 before looking at the name.
        let odd = env(Value::Int(-1), Value::Bool(false), "ping", Value::Tuple(vec![]));
        assert_eq!(Message::from_value(odd).unwrap(), Message::Heartbeat);
    }

    #[test]
    fn a_list_envelope_is_accepted() {
        let v = Value::List(vec![
            Value::Int(5),
            Value::Bool(false),
            Value::str("ping"),
            Value::Tuple(vec![]),
        ]);
        assert_eq!(
            Message::from_value(v).unwrap(),
            Message::call(MsgId::int(5), "ping", Value::Tuple(vec![]))
        );
    }

    #[test]
    fn malformed_envelopes_are_rejected() {
        for v in [
            Value::None,
            Value::Int(1),
            Value::tuple([Value::Int(1), Value::Bool(false), Value::str("ping")]),
            Value::tuple([
                Value::Int(1),
                Value::Bool(false),
                Value::str("ping"),
                Value::Tuple(vec![]),
                Value::None,
            ]),
            env(Value::Int(1), Value::Bool(false), "x", Value::None)
                .as_seq()
                .map(|s| {
                    let mut s = s.to_vec();
                    s[2] = Value::bytes(&b"ping"[..]);
                    Value::Tuple(s)
                })
                .unwrap(),
        ] {
            match Message::from_value(v) {
                Err(CodecError::Envelope(_)) => {}
                other => panic!("expected an envelope error, got {other:?}"),
            }
        }
    }

    #[test]
    fn msgids_can_key_a_table() {
        let mut set = HashSet::new();
        set.insert(MsgId::int(1));
        set.insert(MsgId(Value::tuple([p(0), p(1)])));
        assert!(set.contains(&MsgId::int(1)));
        assert!(set.contains(&MsgId(Value::tuple([p(0), p(1)]))));
        assert!(!set.contains(&MsgId(Value::tuple([p(0), p(2)]))));
        assert!(MsgId::HEARTBEAT.is_heartbeat());
        assert_eq!(MsgId::from(7).as_int(), Some(7));
        // Floats compare by bits, so Eq is reflexive and agrees with Hash.
        let nan = MsgId(Value::tuple([Value::Float(f64::NAN)]));
        assert_eq!(nan, nan.clone());
        assert_ne!(MsgId(Value::Float(0.0)), MsgId(Value::Float(-0.0)));
    }
}
