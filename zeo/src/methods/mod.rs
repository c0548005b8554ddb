//! Typed server methods: the 36 names a ZEO 6 server dispatches
//! (`register` plus the 35 of `docs/zeo-protocol.md#methods`) and the `raid_*` management
//! calls, decoded from and encoded to the argument tuple of a call.
//!
//! One file per message family: [`session`], [`reads`], [`commit`],
//! [`undo_pack`], [`iteration`]. Each method with arguments has a struct
//! there; [`Request`] has one variant per method.
//!
//! Decoding rules (all checked by the unit tests):
//! - The argument tuple may be a tuple or a list (msgpack has no tuples,
//!   Python calls `f(*args)`).
//! - Arity follows the Python signatures in `ZEO/StorageServer.py`,
//!   including trailing defaults (`tpc_begin` tid/status, `new_oids` n,
//!   `history` size, `pack` wait, `record_iternext` next). Wrong arity is a
//!   [`CodecError::Arity`] naming the method and the accepted counts.
//! - A wrong argument is a [`CodecError::Argument`] naming the method, the
//!   **0-based position in the argument tuple**, the Python parameter name
//!   and the problem.
//! - Oids and tids must be exactly 8 bytes. ZEO itself does not check this
//!   and a 3-byte oid corrupts a FileStorage at `tpc_finish`, so the proxy
//!   refuses it before any member sees it.
//! - Record data and blob chunks are opaque [`Bytes`]: the proxy never
//!   looks inside an application pickle.
//! - Values whose type the server merely passes on (user, description,
//!   extension, undo ids, undo filters) stay [`Value`]s so nothing is lost.
//!
//! Encoding ([`Request::to_args`]) writes the argument tuple a ClientStorage
//! sends. It need not be byte-identical to what was decoded (`register`'s
//! `read_only` `0` becomes `False`), but decoding it again gives an equal
//! [`Request`].

pub mod commit;
pub mod iteration;
pub mod reads;
pub mod session;
pub mod undo_pack;

use std::fmt;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

use crate::error::CodecError;
use crate::message::{FlagStyle, Message, MsgId};
use crate::types::P64;
use crate::value::Value;

pub use commit::{
    CheckCurrentSerialInTransaction, DeleteObject, NewOid, NewOids, Restorea, StoreBlobChunk, StoreBlobEnd,
    StoreBlobShared, Storea, TpcAbort, TpcBegin, TpcFinish, Undoa, Vote,
};
pub use iteration::{IteratorGc, IteratorNext, IteratorRecordNext, IteratorRecordStart, IteratorStart};
pub use reads::{GetTid, History, LoadBefore, LoadSerial, RecordIternext, SendBlob};
pub use session::{GetInvalidations, Register, SetClientLabel};
pub use undo_pack::{Pack, UndoInfo, UndoLog};

/// Names starting with this are zeoraid management calls (`raid_status`,
/// `raid_recover`, ...), sent as ordinary sync calls by old gocept.zeoraid
/// tooling or `ClientStorage._call` (`docs/zeo-protocol.md#management`).
pub const RAID_PREFIX: &str = "raid_";

/// A client's transaction id: `id(txn)` of the Python transaction, an
/// arbitrary int (LONG1 on the wire, ~1.4e14; raw clients send small ints).
///
/// Kept as the wire [`Value`] (an `Int`, or a `BigInt` if it ever exceeds
/// `i64`) and echoed unchanged: the server only compares it with the id
/// given to `tpc_begin`.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnId(Value);

impl TxnId {
    /// `None` unless `v` is an int (bools are not transaction ids). A
    /// `BigInt` that fits in `i64` is normalised to `Int`, so equal ids hash
    /// equally.
    pub fn new(v: Value) -> Option<TxnId> {
        match v {
            Value::Int(_) => Some(TxnId(v)),
            Value::BigInt(b) => Some(TxnId(Value::from_bigint(b))),
            _ => None,
        }
    }

    pub fn from_i64(n: i64) -> TxnId {
        TxnId(Value::Int(n))
    }

    pub fn as_i64(&self) -> Option<i64> {
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
}

impl Eq for TxnId {}

impl Hash for TxnId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            Value::Int(i) => i.hash(state),
            Value::BigInt(b) => b.hash(state),
            // Unreachable by construction (`TxnId::new`).
            _ => {}
        }
    }
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(b) => write!(f, "{b}"),
            other => write!(f, "{other:?}"),
        }
    }
}

impl From<i64> for TxnId {
    fn from(n: i64) -> TxnId {
        TxnId::from_i64(n)
    }
}

/// Value conversions shared by the typed layer (methods, replies,
/// callbacks, exceptions). Each returns the *problem* as text; callers wrap
/// it into the error that names the method and argument.
pub(crate) mod conv {
    use super::*;

    pub fn p64(v: &Value) -> Result<P64, String> {
        match v {
            Value::Bytes(b) => P64::from_slice(b).ok_or_else(|| format!("expected 8 bytes, got {}", b.len())),
            other => Err(format!("expected 8 bytes, got {}", other.type_name())),
        }
    }

    pub fn opt_p64(v: &Value) -> Result<Option<P64>, String> {
        match v {
            Value::None => Ok(None),
            other => p64(other).map(Some).map_err(|e| format!("{e} or None")),
        }
    }

    pub fn bytes(v: &Value) -> Result<Bytes, String> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            other => Err(format!("expected bytes, got {}", other.type_name())),
        }
    }

    pub fn opt_bytes(v: &Value) -> Result<Option<Bytes>, String> {
        match v {
            Value::None => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(format!("expected bytes or None, got {}", other.type_name())),
        }
    }

    pub fn int(v: &Value) -> Result<i64, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an int, got {}", other.type_name())),
        }
    }

    /// A float; an int is accepted (Python code does not care).
    pub fn float(v: &Value) -> Result<f64, String> {
        match v {
            Value::Float(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a float, got {}", other.type_name())),
        }
    }

    pub fn string(v: &Value) -> Result<String, String> {
        match v {
            Value::Str(s) => Ok(s.clone()),
            other => Err(format!("expected a str, got {}", other.type_name())),
        }
    }

    pub fn opt_string(v: &Value) -> Result<Option<String>, String> {
        match v {
            Value::None => Ok(None),
            Value::Str(s) => Ok(Some(s.clone())),
            other => Err(format!("expected a str or None, got {}", other.type_name())),
        }
    }

    pub fn txn(v: &Value) -> Result<TxnId, String> {
        TxnId::new(v.clone()).ok_or_else(|| format!("expected an int transaction id, got {}", v.type_name()))
    }

    pub fn seq(v: &Value) -> Result<&[Value], String> {
        v.as_seq()
            .ok_or_else(|| format!("expected a list or tuple, got {}", v.type_name()))
    }

    pub fn p64_list(v: &Value) -> Result<Vec<P64>, String> {
        seq(v)?
            .iter()
            .enumerate()
            .map(|(i, x)| p64(x).map_err(|e| format!("item {i}: {e}")))
            .collect()
    }

    pub fn int_list(v: &Value) -> Result<Vec<i64>, String> {
        seq(v)?
            .iter()
            .enumerate()
            .map(|(i, x)| int(x).map_err(|e| format!("item {i}: {e}")))
            .collect()
    }

    /// A `(tid, tid)` pair such as ConflictError `serials`.
    pub fn p64_pair(v: &Value) -> Result<(P64, P64), String> {
        match seq(v)? {
            [a, b] => Ok((
                p64(a).map_err(|e| format!("item 0: {e}"))?,
                p64(b).map_err(|e| format!("item 1: {e}"))?,
            )),
            other => Err(format!("expected a pair, got {} items", other.len())),
        }
    }

    pub fn p64_value(p: &P64) -> Value {
        Value::Bytes(Bytes::copy_from_slice(&p.0))
    }

    pub fn opt_p64_value(p: &Option<P64>) -> Value {
        p.as_ref().map_or(Value::None, p64_value)
    }

    pub fn opt_bytes_value(b: &Option<Bytes>) -> Value {
        b.as_ref().map_or(Value::None, |b| Value::Bytes(b.clone()))
    }

    pub fn p64_list_value(ps: &[P64]) -> Value {
        Value::List(ps.iter().map(p64_value).collect())
    }
}

/// The argument tuple of one call, with accessors that turn a bad argument
/// into a [`CodecError::Argument`] naming the method, position and name.
pub(crate) struct Args<'a> {
    method: &'static str,
    items: &'a [Value],
}

impl<'a> Args<'a> {
    /// Checks that `args` is a sequence of `min..=max` items.
    pub fn new(
        method: &'static str,
        args: &'a Value,
        min: usize,
        max: usize,
    ) -> Result<Args<'a>, CodecError> {
        let items = args.as_seq().ok_or_else(|| CodecError::Argument {
            method: method.to_owned(),
            index: 0,
            name: "args",
            problem: format!("the arguments must be a tuple or list, got {}", args.type_name()),
        })?;
        if items.len() < min || items.len() > max {
            let expected = if min == max {
                min.to_string()
            } else if max == usize::MAX {
                format!("at least {min}")
            } else if max == min + 1 {
                format!("{min} or {max}")
            } else {
                format!("{min} to {max}")
            };
            return Err(CodecError::Arity {
                method: method.to_owned(),
                expected,
                got: items.len(),
            });
        }
        Ok(Args { method, items })
    }

    pub fn items(&self) -> &'a [Value] {
        self.items
    }

    /// An optional trailing argument.
    pub fn get(&self, i: usize) -> Option<&'a Value> {
        self.items.get(i)
    }

    fn at<T>(
        &self,
        i: usize,
        name: &'static str,
        f: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<T, CodecError> {
        let v = self.items.get(i).ok_or_else(|| CodecError::Argument {
            method: self.method.to_owned(),
            index: i,
            name,
            problem: "missing".to_owned(),
        })?;
        f(v).map_err(|problem| CodecError::Argument {
            method: self.method.to_owned(),
            index: i,
            name,
            problem,
        })
    }

    /// An optional trailing argument, converted if present.
    pub fn opt<T>(
        &self,
        i: usize,
        name: &'static str,
        f: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, CodecError> {
        if i < self.items.len() {
            self.at(i, name, f).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn value(&self, i: usize, name: &'static str) -> Result<Value, CodecError> {
        self.at(i, name, |v| Ok(v.clone()))
    }

    pub fn p64(&self, i: usize, name: &'static str) -> Result<P64, CodecError> {
        self.at(i, name, conv::p64)
    }

    pub fn opt_p64(&self, i: usize, name: &'static str) -> Result<Option<P64>, CodecError> {
        self.at(i, name, conv::opt_p64)
    }

    /// A record, as leniently as a ZEO server buffers it: bytes, or a `str`
    /// (old test code passes `'foo'`), taken as its UTF-8 bytes. Records are
    /// opaque either way.
    pub fn record(&self, i: usize, name: &'static str) -> Result<Bytes, CodecError> {
        if let Some(Value::Str(s)) = self.items.get(i) {
            return Ok(Bytes::copy_from_slice(s.as_bytes()));
        }
        self.bytes(i, name)
    }

    /// A store's serial, as leniently as a ZEO server takes it: `None` (ZODB
    /// accepts it for a new object and treats it as z64) and an 8-character
    /// `str` (Python-2-era callers, e.g. ZEO's own ThreadTests, pass
    /// `'\\0' * 8`) read as the 8 bytes they stand for. Anything else must be
    /// exactly 8 bytes.
    pub fn serial(&self, i: usize, name: &'static str) -> Result<P64, CodecError> {
        if let Some(Value::Str(s)) = self.items.get(i) {
            let latin1: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
            if let Some(serial) = latin1.as_deref().and_then(P64::from_slice) {
                return Ok(serial);
            }
        }
        Ok(self.opt_p64(i, name)?.unwrap_or(P64::ZERO))
    }

    pub fn bytes(&self, i: usize, name: &'static str) -> Result<Bytes, CodecError> {
        self.at(i, name, conv::bytes)
    }

    pub fn opt_bytes(&self, i: usize, name: &'static str) -> Result<Option<Bytes>, CodecError> {
        self.at(i, name, conv::opt_bytes)
    }

    pub fn int(&self, i: usize, name: &'static str) -> Result<i64, CodecError> {
        self.at(i, name, conv::int)
    }

    pub fn string(&self, i: usize, name: &'static str) -> Result<String, CodecError> {
        self.at(i, name, conv::string)
    }

    pub fn txn(&self, i: usize, name: &'static str) -> Result<TxnId, CodecError> {
        self.at(i, name, conv::txn)
    }

    /// An argument that must be one of the value kinds the server accepts
    /// there (e.g. `bytes` or `str` for a user name); kept as a [`Value`].
    pub fn one_of(
        &self,
        i: usize,
        name: &'static str,
        accept: fn(&Value) -> bool,
        expected: &'static str,
    ) -> Result<Value, CodecError> {
        self.at(i, name, |v| {
            if accept(v) {
                Ok(v.clone())
            } else {
                Err(format!("expected {expected}, got {}", v.type_name()))
            }
        })
    }
}

/// What each method struct provides to the [`Request`] dispatch.
pub(crate) trait Method: Sized {
    /// The wire name.
    const NAME: &'static str;
    /// Sent as an async call by ClientStorage (`docs/zeo-protocol.md#methods`).
    const ONEWAY: bool;
    /// Accepted argument counts (`usize::MAX`: unbounded).
    const ARITY: (usize, usize);
    fn decode(args: &Args<'_>) -> Result<Self, CodecError>;
    /// The argument tuple's items as ClientStorage sends them.
    fn to_args(&self) -> Vec<Value>;
}

fn decode_as<M: Method>(args: &Value) -> Result<M, CodecError> {
    let a = Args::new(M::NAME, args, M::ARITY.0, M::ARITY.1)?;
    M::decode(&a)
}

/// A decoded call to a server method (client -> server).
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    // --- session (`docs/zeo-protocol.md#session`) ---
    Register(Register),
    GetInfo,
    LastTransaction,
    GetInvalidations(GetInvalidations),
    Ping,
    ServerStatus,
    SetClientLabel(SetClientLabel),
    // --- reads ---
    LoadBefore(LoadBefore),
    LoadSerial(LoadSerial),
    GetTid(GetTid),
    History(History),
    RecordIternext(RecordIternext),
    SendBlob(SendBlob),
    // --- commit ---
    TpcBegin(TpcBegin),
    Storea(Storea),
    CheckCurrentSerialInTransaction(CheckCurrentSerialInTransaction),
    DeleteObject(DeleteObject),
    Restorea(Restorea),
    Undoa(Undoa),
    StoreBlobStart,
    StoreBlobChunk(StoreBlobChunk),
    StoreBlobEnd(StoreBlobEnd),
    StoreBlobShared(StoreBlobShared),
    Vote(Vote),
    TpcFinish(TpcFinish),
    TpcAbort(TpcAbort),
    NewOids(NewOids),
    NewOid(NewOid),
    // --- undo and pack ---
    UndoLog(UndoLog),
    UndoInfo(UndoInfo),
    Pack(Pack),
    // --- iteration ---
    IteratorStart(IteratorStart),
    IteratorNext(IteratorNext),
    IteratorRecordStart(IteratorRecordStart),
    IteratorRecordNext(IteratorRecordNext),
    IteratorGc(IteratorGc),
    /// A zeoraid management call (`raid_status`, ...): any name starting
    /// with [`RAID_PREFIX`], arguments kept as sent. Not a ZEO method; a
    /// real ZEO server closes the connection on it.
    Raid {
        name: String,
        args: Vec<Value>,
    },
}

/// Generates the name-based dispatch of [`Request`] from two lists: methods
/// without arguments (unit variants) and methods with a [`Method`] struct.
macro_rules! request_dispatch {
    (
        unit { $( $uvar:ident = $uname:literal, oneway = $uone:literal; )* }
        typed { $( $tvar:ident; )* }
    ) => {
        /// Every server method name a ZEO 6 server dispatches (`register`
        /// and the 35 names allowed after it), without `raid_*`.
        pub const METHOD_NAMES: &[&str] = &[ $( $uname, )* $( <$tvar as Method>::NAME, )* ];

        impl Request {
            /// Types the arguments of a call to `name`.
            pub fn decode(name: &str, args: &Value) -> Result<Request, CodecError> {
                match name {
                    $( $uname => {
                        Args::new($uname, args, 0, 0)?;
                        Ok(Request::$uvar)
                    } )*
                    $( <$tvar as Method>::NAME => decode_as::<$tvar>(args).map(Request::$tvar), )*
                    _ if name.starts_with(RAID_PREFIX) => {
                        let items = args.as_seq().ok_or_else(|| CodecError::Argument {
                            method: name.to_owned(),
                            index: 0,
                            name: "args",
                            problem: format!(
                                "the arguments must be a tuple or list, got {}",
                                args.type_name()
                            ),
                        })?;
                        Ok(Request::Raid { name: name.to_owned(), args: items.to_vec() })
                    }
                    _ => Err(CodecError::UnknownMethod(name.to_owned())),
                }
            }

            /// The wire name (for `Raid`, the name that was called).
            pub fn name(&self) -> &str {
                match self {
                    $( Request::$uvar => $uname, )*
                    $( Request::$tvar(_) => <$tvar as Method>::NAME, )*
                    Request::Raid { name, .. } => name,
                }
            }

            /// The wire name when it is known at compile time (every
            /// method but `Raid`): callers that keep it per call need no
            /// allocation.
            pub fn static_name(&self) -> Option<&'static str> {
                match self {
                    $( Request::$uvar => Some($uname), )*
                    $( Request::$tvar(_) => Some(<$tvar as Method>::NAME), )*
                    Request::Raid { .. } => None,
                }
            }

            /// Whether ClientStorage sends this method as an async call
            /// (no reply; `docs/zeo-protocol.md#commit`). `vote` is sync.
            pub fn is_oneway(&self) -> bool {
                match self {
                    $( Request::$uvar => $uone, )*
                    $( Request::$tvar(_) => <$tvar as Method>::ONEWAY, )*
                    Request::Raid { .. } => false,
                }
            }

            /// The argument tuple, with the wire types ClientStorage uses.
            pub fn to_args(&self) -> Value {
                Value::Tuple(match self {
                    $( Request::$uvar => Vec::new(), )*
                    $( Request::$tvar(m) => m.to_args(), )*
                    Request::Raid { args, .. } => args.clone(),
                })
            }
        }
    };
}

request_dispatch! {
    unit {
        GetInfo = "get_info", oneway = false;
        LastTransaction = "lastTransaction", oneway = false;
        Ping = "ping", oneway = false;
        ServerStatus = "server_status", oneway = false;
        StoreBlobStart = "storeBlobStart", oneway = true;
    }
    typed {
        Register; GetInvalidations; SetClientLabel;
        LoadBefore; LoadSerial; GetTid; History; RecordIternext; SendBlob;
        TpcBegin; Storea; CheckCurrentSerialInTransaction; DeleteObject; Restorea; Undoa;
        StoreBlobChunk; StoreBlobEnd; StoreBlobShared; Vote; TpcFinish; TpcAbort;
        NewOids; NewOid;
        UndoLog; UndoInfo; Pack;
        IteratorStart; IteratorNext; IteratorRecordStart; IteratorRecordNext; IteratorGc;
    }
}

impl Request {
    /// The call envelope, flagged async or sync per [`Request::is_oneway`]
    /// with ClientStorage's bool flag. Async calls conventionally use
    /// [`MsgId::ASYNC`]; a `loadBefore` may use the `(oid, tid)` tuple id.
    pub fn to_message(&self, msgid: MsgId) -> Message {
        Message::Call {
            msgid,
            oneway: self.is_oneway(),
            name: self.name().to_owned(),
            args: self.to_args(),
            flag_style: FlagStyle::Bool,
        }
    }

    /// Decodes the arguments of a [`Message::Call`]; `None` for other
    /// messages.
    pub fn from_message(m: &Message) -> Option<Result<Request, CodecError>> {
        match m {
            Message::Call { name, args, .. } => Some(Request::decode(name, args)),
            _ => None,
        }
    }

    /// The transaction id of a commit-family call (`tpc_begin`, the stores,
    /// `vote`, `tpc_finish`, `tpc_abort`, ...).
    pub fn txn(&self) -> Option<&TxnId> {
        match self {
            Request::TpcBegin(m) => Some(&m.id),
            Request::Storea(m) => Some(&m.id),
            Request::CheckCurrentSerialInTransaction(m) => Some(&m.id),
            Request::DeleteObject(m) => Some(&m.id),
            Request::Restorea(m) => Some(&m.id),
            Request::Undoa(m) => Some(&m.id),
            Request::StoreBlobEnd(m) => Some(&m.id),
            Request::StoreBlobShared(m) => Some(&m.id),
            Request::Vote(m) => Some(&m.id),
            Request::TpcFinish(m) => Some(&m.id),
            Request::TpcAbort(m) => Some(&m.id),
            _ => None,
        }
    }

    /// `true` for a `raid_*` management call.
    pub fn is_raid(&self) -> bool {
        matches!(self, Request::Raid { .. })
    }
}

/// The `&'static` spelling of a known method name (for replies keyed by
/// method), `None` for `raid_*` and unknown names.
pub fn static_method_name(name: &str) -> Option<&'static str> {
    METHOD_NAMES.iter().copied().find(|n| *n == name)
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    pub fn p(n: u64) -> Value {
        Value::Bytes(Bytes::copy_from_slice(&n.to_be_bytes()))
    }

    pub fn b(s: &[u8]) -> Value {
        Value::Bytes(Bytes::copy_from_slice(s))
    }

    pub fn t(items: impl IntoIterator<Item = Value>) -> Value {
        Value::tuple(items)
    }

    /// Decodes, checks the typed value, re-encodes and decodes again.
    pub fn round_trip(name: &str, args: Value, expected: Request) {
        let got = Request::decode(name, &args).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, expected, "{name}");
        assert_eq!(got.name(), name);
        let again = got.to_args();
        assert!(
            matches!(again, Value::Tuple(_)),
            "{name}: to_args must give a tuple"
        );
        assert_eq!(Request::decode(name, &again).unwrap(), got, "{name}: re-encoded");
        // The message form carries the same name and args.
        match got.to_message(MsgId::int(7)) {
            Message::Call {
                name: n,
                args: a,
                oneway,
                flag_style,
                ..
            } => {
                assert_eq!(n, name);
                assert_eq!(a, again);
                assert_eq!(oneway, got.is_oneway());
                assert_eq!(flag_style, FlagStyle::Bool);
            }
            other => panic!("{other:?}"),
        }
    }

    /// Asserts an argument error naming `method`, `index` and `arg`.
    pub fn arg_err(name: &str, args: Value, index: usize, arg: &str) -> String {
        match Request::decode(name, &args) {
            Err(CodecError::Argument {
                method,
                index: i,
                name: n,
                problem,
            }) => {
                assert_eq!(method, name);
                assert_eq!(i, index, "{name}: {problem}");
                assert_eq!(n, arg, "{name}: {problem}");
                problem
            }
            other => panic!("{name}: expected an argument error, got {other:?}"),
        }
    }

    pub fn arity_err(name: &str, args: Value, expected: &str) {
        match Request::decode(name, &args) {
            Err(CodecError::Arity {
                method,
                expected: e,
                got,
            }) => {
                assert_eq!(method, name);
                assert_eq!(e, expected, "{name}");
                assert_eq!(Some(got), args.as_seq().map(|s| s.len()));
                let msg = CodecError::Arity {
                    method,
                    expected: e,
                    got,
                }
                .to_string();
                assert!(msg.contains(name), "{msg}");
            }
            other => panic!("{name}: expected an arity error, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn there_are_36_method_names_and_all_decode_dispatch() {
        assert_eq!(METHOD_NAMES.len(), 36);
        let mut sorted = METHOD_NAMES.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 36, "duplicate names");
        for name in METHOD_NAMES {
            // Whatever the args, a known name never gives UnknownMethod.
            let r = Request::decode(name, &Value::Tuple(vec![]));
            assert!(!matches!(r, Err(CodecError::UnknownMethod(_))), "{name}");
            assert_eq!(static_method_name(name), Some(*name));
        }
    }

    #[test]
    fn the_protocol_doc_method_list_is_covered() {
        // StorageServer.registered_methods + register.
        for name in [
            "register",
            "get_info",
            "lastTransaction",
            "getInvalidations",
            "new_oids",
            "pack",
            "loadBefore",
            "storea",
            "checkCurrentSerialInTransaction",
            "restorea",
            "storeBlobStart",
            "storeBlobChunk",
            "storeBlobEnd",
            "storeBlobShared",
            "deleteObject",
            "tpc_begin",
            "vote",
            "tpc_finish",
            "tpc_abort",
            "history",
            "record_iternext",
            "sendBlob",
            "getTid",
            "loadSerial",
            "new_oid",
            "undoa",
            "undoLog",
            "undoInfo",
            "iterator_start",
            "iterator_next",
            "iterator_record_start",
            "iterator_record_next",
            "iterator_gc",
            "server_status",
            "set_client_label",
            "ping",
        ] {
            assert!(METHOD_NAMES.contains(&name), "{name}");
        }
    }

    #[test]
    fn oneway_methods_match_the_protocol_doc() {
        let oneway = [
            "tpc_begin",
            "storea",
            "checkCurrentSerialInTransaction",
            "deleteObject",
            "restorea",
            "undoa",
            "storeBlobStart",
            "storeBlobChunk",
            "storeBlobEnd",
            "storeBlobShared",
            "set_client_label",
            "iterator_gc",
        ];
        let sample = |name: &str| -> Value {
            match name {
                "tpc_begin" => t([Value::Int(1), b(b""), b(b""), Value::Dict(vec![])]),
                "storea" | "storeBlobEnd" => t([p(1), p(0), b(b"d"), Value::Int(1)]),
                "checkCurrentSerialInTransaction" | "deleteObject" => t([p(1), p(0), Value::Int(1)]),
                "restorea" => t([p(1), p(0), b(b"d"), Value::None, Value::Int(1)]),
                "undoa" => t([b(b"BA0+IWIJs2Y="), Value::Int(1)]),
                "storeBlobStart" => t([]),
                "storeBlobChunk" => t([b(b"chunk")]),
                "storeBlobShared" => t([p(1), p(0), b(b"d"), Value::str("x.tmp-"), Value::Int(1)]),
                "set_client_label" => t([Value::str("l")]),
                "iterator_gc" => t([Value::List(vec![Value::Int(1)])]),
                _ => unreachable!(),
            }
        };
        for name in oneway {
            let r = Request::decode(name, &sample(name)).unwrap();
            assert!(r.is_oneway(), "{name}");
            assert!(matches!(
                r.to_message(MsgId::ASYNC),
                Message::Call { oneway: true, .. }
            ));
        }
        for (name, args) in [
            ("vote", t([Value::Int(1)])),
            ("tpc_finish", t([Value::Int(1)])),
            ("tpc_abort", t([Value::Int(1)])),
            ("ping", t([])),
            ("new_oids", t([])),
            ("pack", t([Value::Float(1.0), Value::Int(0)])),
            ("raid_status", t([])),
        ] {
            assert!(!Request::decode(name, &args).unwrap().is_oneway(), "{name}");
        }
    }

    #[test]
    fn unit_methods_round_trip_and_reject_arguments() {
        for (name, req) in [
            ("get_info", Request::GetInfo),
            ("lastTransaction", Request::LastTransaction),
            ("ping", Request::Ping),
            ("server_status", Request::ServerStatus),
            ("storeBlobStart", Request::StoreBlobStart),
        ] {
            round_trip(name, t([]), req.clone());
            // A raw client's list args (s15 c3: ping with []).
            assert_eq!(Request::decode(name, &Value::List(vec![])).unwrap(), req);
            arity_err(name, t([Value::None]), "0");
        }
    }

    #[test]
    fn args_must_be_a_sequence() {
        let p = arg_err("ping", Value::None, 0, "args");
        assert!(p.contains("tuple or list"), "{p}");
        arg_err("raid_status", Value::Int(3), 0, "args");
        arg_err("loadBefore", Value::Dict(vec![]), 0, "args");
    }

    #[test]
    fn unknown_methods_are_named() {
        for name in ["load", "undo", "getExtensionMethods", "zeoVerify", "", "raid"] {
            match Request::decode(name, &t([])) {
                Err(CodecError::UnknownMethod(n)) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(static_method_name("raid_status"), None);
    }

    #[test]
    fn raid_calls_keep_their_name_and_args() {
        let args = t([Value::str("member-1")]);
        let expected = Request::Raid {
            name: "raid_recover".into(),
            args: vec![Value::str("member-1")],
        };
        round_trip("raid_recover", args, expected.clone());
        assert!(expected.is_raid());
        assert_eq!(expected.name(), "raid_recover");
        // s05 c4: (3, False, 'raid_status', ())
        let r = Request::decode("raid_status", &t([])).unwrap();
        assert_eq!(
            r,
            Request::Raid {
                name: "raid_status".into(),
                args: vec![]
            }
        );
        assert_eq!(r.to_args(), t([]));
    }

    #[test]
    fn txn_ids_are_ints_echoed_as_is() {
        let big = Value::from_bigint(num_bigint::BigInt::from(u64::MAX) * 3);
        assert!(matches!(big, Value::BigInt(_)));
        let id = TxnId::new(big.clone()).unwrap();
        assert_eq!(id.value(), &big);
        assert_eq!(id.as_i64(), None);
        let r = Request::decode("vote", &t([big.clone()])).unwrap();
        assert_eq!(r.txn(), Some(&id));
        assert_eq!(r.to_args(), t([big]));
        assert_eq!(TxnId::from_i64(139910119818704).to_string(), "139910119818704");
        assert!(TxnId::new(Value::Bool(true)).is_none());
        let p = arg_err("vote", t([Value::str("1")]), 0, "id");
        assert!(p.contains("int"), "{p}");
        use std::collections::HashSet;
        let set: HashSet<TxnId> = [TxnId::from(1), TxnId::from(1), TxnId::from(2)].into();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn to_message_uses_bool_flags() {
        let r = Request::decode("vote", &t([Value::Int(12345)])).unwrap();
        assert_eq!(
            r.to_message(MsgId::int(3)).to_value(),
            t([
                Value::Int(3),
                Value::Bool(false),
                Value::str("vote"),
                t([Value::Int(12345)])
            ])
        );
        let m = Message::from_value(r.to_message(MsgId::int(3)).to_value()).unwrap();
        assert_eq!(Request::from_message(&m).unwrap().unwrap(), r);
        assert!(Request::from_message(&Message::Heartbeat).is_none());
    }

    #[test]
    fn arity_messages_spell_ranges() {
        arity_err("tpc_begin", t([Value::Int(1)]), "4 to 6");
        arity_err("history", t([]), "1 or 2");
        arity_err("loadBefore", t([p(0)]), "2");
    }
}
