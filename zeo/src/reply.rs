//! Typed success replies, per method (`docs/zeo-protocol.md#methods`).
//!
//! A reply does not carry its method name on the wire: the caller knows it
//! from the msgid it used, and passes it to [`Reply::decode`].
//!
//! Decoding accepts a list or a tuple wherever a sequence is expected
//! (msgpack decodes every array as a tuple: `vote` returns `()` under M5).
//! [`Reply::to_value`] writes ZEO's pickle-side types: `vote`, `new_oids`,
//! `history`, `undoLog`/`undoInfo` and the oid list of `getInvalidations`
//! are lists; `loadBefore`, `record_iternext`, `iterator_next`,
//! `iterator_record_next` and `getInvalidations` results are tuples. Under
//! msgpack both become arrays, so re-encoded msgpack replies are
//! byte-identical too.
//!
//! Opaque parts stay [`Value`]s: `get_info` and `server_status` dicts,
//! `history`/`undoLog` entries (FileStorage merges the transaction's
//! extension keys into them), transaction metadata.

use bytes::Bytes;

use crate::error::CodecError;
use crate::methods::{conv, static_method_name, RAID_PREFIX};
use crate::types::{Oid, Tid};
use crate::value::Value;

/// `loadBefore`'s result: the revision current before the requested tid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBeforeResult {
    /// The record, opaque.
    pub data: Bytes,
    /// The tid that wrote this revision.
    pub start: Tid,
    /// The tid of the next revision; `None` = this revision is current.
    pub end: Option<Tid>,
}

/// `record_iternext`'s result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordIternextResult {
    pub oid: Oid,
    pub tid: Tid,
    pub data: Bytes,
    /// The argument for the next call; `None` after the last record.
    pub next: Option<Oid>,
}

/// One transaction from `iterator_next`: `(tid, status, user, description,
/// extension)`.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnRecord {
    pub tid: Tid,
    /// `' '` for a normal transaction, `'p'` after a pack.
    pub status: String,
    /// Bytes from FileStorage; kept as sent.
    pub user: Value,
    pub description: Value,
    /// The extension dict.
    pub extension: Value,
}

/// One record from `iterator_record_next`: `(oid, tid, data, data_txn)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataRecord {
    pub oid: Oid,
    pub tid: Tid,
    /// `None` for an undone creation.
    pub data: Option<Bytes>,
    /// Back-pointer: the transaction whose data this record reuses.
    pub data_txn: Option<Tid>,
}

/// One unresolved conflict returned by `vote` on a server with
/// `client-conflict-resolution` (`docs/zeo-protocol.md#vote-results`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteConflict {
    pub oid: Oid,
    /// `(committed tid, tid the client read)`.
    pub serials: (Tid, Tid),
    /// The record the client sent.
    pub data: Bytes,
}

/// `vote`'s result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Oids the client must invalidate in its cache: conflicts the server
    /// resolved, objects touched by an undo. Usually empty.
    Oids(Vec<Oid>),
    /// Conflicts the client must resolve itself, then store again and vote
    /// again (the server aborted the storage transaction but kept the
    /// buffer).
    Conflicts(Vec<VoteConflict>),
}

impl VoteResult {
    pub fn is_empty(&self) -> bool {
        match self {
            VoteResult::Oids(o) => o.is_empty(),
            VoteResult::Conflicts(c) => c.is_empty(),
        }
    }
}

/// A decoded success reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The last committed tid (`None` would make a ZEO 6 client fall back
    /// to `lastTransaction`; ZEO 5/6 servers always send a tid).
    Register(Option<Tid>),
    GetInfo(Value),
    LastTransaction(Tid),
    /// `None`: the server cannot tell (the client drops its cache).
    GetInvalidations(Option<(Tid, Vec<Oid>)>),
    ServerStatus(Value),
    /// `None`: no revision before the requested tid.
    LoadBefore(Option<LoadBeforeResult>),
    LoadSerial(Bytes),
    GetTid(Tid),
    /// History entries (dicts), newest first.
    History(Vec<Value>),
    RecordIternext(RecordIternextResult),
    Vote(VoteResult),
    /// The committed tid; `None` if the id was not the current transaction.
    TpcFinish(Option<Tid>),
    NewOids(Vec<Oid>),
    /// `new_oid` is not implemented by ZEO 6; whatever comes back is kept.
    NewOid(Value),
    UndoLog(Vec<Value>),
    UndoInfo(Vec<Value>),
    IteratorStart(i64),
    /// `None` at the end (the server then forgets the iterator).
    IteratorNext(Option<TxnRecord>),
    IteratorRecordStart(i64),
    IteratorRecordNext(Option<DataRecord>),
    /// The result of a `raid_*` management call, opaque.
    Raid(Value),
    /// `None`, the result of the named method (`ping`, `sendBlob`,
    /// `tpc_abort`, `pack`, and the async methods if called synchronously).
    None(&'static str),
}

fn err(method: &str, problem: impl Into<String>) -> CodecError {
    CodecError::Reply {
        method: method.to_owned(),
        problem: problem.into(),
    }
}

/// A sequence of exactly `n` items.
fn fixed<'a>(method: &str, v: &'a Value, n: usize) -> Result<&'a [Value], CodecError> {
    let items = conv::seq(v).map_err(|p| err(method, p))?;
    if items.len() != n {
        return Err(err(method, format!("expected {n} items, got {}", items.len())));
    }
    Ok(items)
}

fn dict_list(method: &str, v: &Value) -> Result<Vec<Value>, CodecError> {
    let items = conv::seq(v).map_err(|p| err(method, p))?;
    items
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Value::Dict(_) => Ok(d.clone()),
            other => Err(err(
                method,
                format!("item {i}: expected a dict, got {}", other.type_name()),
            )),
        })
        .collect()
}

fn dict(method: &str, v: &Value) -> Result<Value, CodecError> {
    match v {
        Value::Dict(_) => Ok(v.clone()),
        other => Err(err(method, format!("expected a dict, got {}", other.type_name()))),
    }
}

/// Applies a `conv` function to item `i` of a fixed-size result.
fn item<T>(
    method: &str,
    items: &[Value],
    i: usize,
    what: &str,
    f: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<T, CodecError> {
    f(&items[i]).map_err(|p| err(method, format!("item {i} ({what}): {p}")))
}

fn decode_vote(v: &Value) -> Result<VoteResult, CodecError> {
    const M: &str = "vote";
    // The Python client treats a `None` result like an empty list.
    if matches!(v, Value::None) {
        return Ok(VoteResult::Oids(Vec::new()));
    }
    let items = conv::seq(v).map_err(|p| err(M, p))?;
    if items.iter().all(|i| matches!(i, Value::Dict(_))) && !items.is_empty() {
        let conflicts = items
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let field = |key: &str| {
                    d.dict_get(key)
                        .ok_or_else(|| err(M, format!("conflict {i}: no {key:?} key")))
                };
                let at = |key: &str, p: String| err(M, format!("conflict {i}, {key}: {p}"));
                Ok(VoteConflict {
                    oid: conv::p64(field("oid")?).map_err(|p| at("oid", p))?,
                    serials: conv::p64_pair(field("serials")?).map_err(|p| at("serials", p))?,
                    data: conv::bytes(field("data")?).map_err(|p| at("data", p))?,
                })
            })
            .collect::<Result<_, CodecError>>()?;
        return Ok(VoteResult::Conflicts(conflicts));
    }
    conv::p64_list(v).map(VoteResult::Oids).map_err(|p| err(M, p))
}

impl Reply {
    /// Types the reply to a call of `method`.
    pub fn decode(method: &str, v: &Value) -> Result<Reply, CodecError> {
        let m = method;
        let conv_err = |p: String| err(m, p);
        Ok(match method {
            "register" => Reply::Register(conv::opt_p64(v).map_err(conv_err)?),
            "get_info" => Reply::GetInfo(dict(m, v)?),
            "lastTransaction" => Reply::LastTransaction(conv::p64(v).map_err(conv_err)?),
            "getInvalidations" => Reply::GetInvalidations(match v {
                Value::None => None,
                v => {
                    let items = fixed(m, v, 2)?;
                    Some((
                        item(m, items, 0, "tid", conv::p64)?,
                        item(m, items, 1, "oids", conv::p64_list)?,
                    ))
                }
            }),
            "server_status" => Reply::ServerStatus(dict(m, v)?),
            "loadBefore" => Reply::LoadBefore(match v {
                Value::None => None,
                v => {
                    let items = fixed(m, v, 3)?;
                    Some(LoadBeforeResult {
                        data: item(m, items, 0, "data", conv::bytes)?,
                        start: item(m, items, 1, "start", conv::p64)?,
                        end: item(m, items, 2, "end", conv::opt_p64)?,
                    })
                }
            }),
            "loadSerial" => Reply::LoadSerial(conv::bytes(v).map_err(conv_err)?),
            "getTid" => Reply::GetTid(conv::p64(v).map_err(conv_err)?),
            "history" => Reply::History(dict_list(m, v)?),
            "record_iternext" => {
                let items = fixed(m, v, 4)?;
                Reply::RecordIternext(RecordIternextResult {
                    oid: item(m, items, 0, "oid", conv::p64)?,
                    tid: item(m, items, 1, "tid", conv::p64)?,
                    data: item(m, items, 2, "data", conv::bytes)?,
                    next: item(m, items, 3, "next", conv::opt_p64)?,
                })
            }
            "vote" => Reply::Vote(decode_vote(v)?),
            "tpc_finish" => Reply::TpcFinish(conv::opt_p64(v).map_err(conv_err)?),
            "new_oids" => Reply::NewOids(conv::p64_list(v).map_err(conv_err)?),
            "new_oid" => Reply::NewOid(v.clone()),
            "undoLog" => Reply::UndoLog(dict_list(m, v)?),
            "undoInfo" => Reply::UndoInfo(dict_list(m, v)?),
            "iterator_start" => Reply::IteratorStart(conv::int(v).map_err(conv_err)?),
            "iterator_record_start" => Reply::IteratorRecordStart(conv::int(v).map_err(conv_err)?),
            "iterator_next" => Reply::IteratorNext(match v {
                Value::None => None,
                v => {
                    let items = fixed(m, v, 5)?;
                    Some(TxnRecord {
                        tid: item(m, items, 0, "tid", conv::p64)?,
                        status: item(m, items, 1, "status", conv::string)?,
                        user: items[2].clone(),
                        description: items[3].clone(),
                        extension: items[4].clone(),
                    })
                }
            }),
            "iterator_record_next" => Reply::IteratorRecordNext(match v {
                Value::None => None,
                v => {
                    let items = fixed(m, v, 4)?;
                    Some(DataRecord {
                        oid: item(m, items, 0, "oid", conv::p64)?,
                        tid: item(m, items, 1, "tid", conv::p64)?,
                        data: item(m, items, 2, "data", conv::opt_bytes)?,
                        data_txn: item(m, items, 3, "data_txn", conv::opt_p64)?,
                    })
                }
            }),
            _ if method.starts_with(RAID_PREFIX) => Reply::Raid(v.clone()),
            _ => {
                // The remaining known methods all return None.
                let name =
                    static_method_name(method).ok_or_else(|| CodecError::UnknownMethod(method.into()))?;
                match v {
                    Value::None => Reply::None(name),
                    other => return Err(err(m, format!("expected None, got {}", other.type_name()))),
                }
            }
        })
    }

    /// The reply value with ZEO's wire types (see the module docs).
    pub fn to_value(&self) -> Value {
        match self {
            Reply::Register(t) | Reply::TpcFinish(t) => conv::opt_p64_value(t),
            Reply::LastTransaction(t) | Reply::GetTid(t) => conv::p64_value(t),
            Reply::GetInfo(v) | Reply::ServerStatus(v) | Reply::NewOid(v) | Reply::Raid(v) => v.clone(),
            Reply::GetInvalidations(None) | Reply::LoadBefore(None) => Value::None,
            Reply::GetInvalidations(Some((tid, oids))) => {
                Value::Tuple(vec![conv::p64_value(tid), conv::p64_list_value(oids)])
            }
            Reply::LoadBefore(Some(r)) => Value::Tuple(vec![
                Value::Bytes(r.data.clone()),
                conv::p64_value(&r.start),
                conv::opt_p64_value(&r.end),
            ]),
            Reply::LoadSerial(b) => Value::Bytes(b.clone()),
            Reply::History(v) | Reply::UndoLog(v) | Reply::UndoInfo(v) => Value::List(v.clone()),
            Reply::RecordIternext(r) => Value::Tuple(vec![
                conv::p64_value(&r.oid),
                conv::p64_value(&r.tid),
                Value::Bytes(r.data.clone()),
                conv::opt_p64_value(&r.next),
            ]),
            Reply::Vote(VoteResult::Oids(oids)) | Reply::NewOids(oids) => conv::p64_list_value(oids),
            Reply::Vote(VoteResult::Conflicts(cs)) => Value::List(
                cs.iter()
                    .map(|c| {
                        // dict(oid=..., serials=..., data=...): this key order.
                        Value::Dict(vec![
                            (Value::str("oid"), conv::p64_value(&c.oid)),
                            (
                                Value::str("serials"),
                                Value::Tuple(vec![
                                    conv::p64_value(&c.serials.0),
                                    conv::p64_value(&c.serials.1),
                                ]),
                            ),
                            (Value::str("data"), Value::Bytes(c.data.clone())),
                        ])
                    })
                    .collect(),
            ),
            Reply::IteratorStart(i) | Reply::IteratorRecordStart(i) => Value::Int(*i),
            Reply::IteratorNext(None) | Reply::IteratorRecordNext(None) | Reply::None(_) => Value::None,
            Reply::IteratorNext(Some(r)) => Value::Tuple(vec![
                conv::p64_value(&r.tid),
                Value::Str(r.status.clone()),
                r.user.clone(),
                r.description.clone(),
                r.extension.clone(),
            ]),
            Reply::IteratorRecordNext(Some(r)) => Value::Tuple(vec![
                conv::p64_value(&r.oid),
                conv::p64_value(&r.tid),
                conv::opt_bytes_value(&r.data),
                conv::opt_p64_value(&r.data_txn),
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::METHOD_NAMES;
    use crate::types::P64;

    fn p(n: u64) -> Value {
        conv::p64_value(&P64::from_u64(n))
    }

    fn o(n: u64) -> P64 {
        P64::from_u64(n)
    }

    fn b(s: &[u8]) -> Value {
        Value::Bytes(Bytes::copy_from_slice(s))
    }

    fn t(items: impl IntoIterator<Item = Value>) -> Value {
        Value::tuple(items)
    }

    fn l(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(items.into_iter().collect())
    }

    fn d(items: &[(&str, Value)]) -> Value {
        Value::Dict(items.iter().map(|(k, v)| (Value::str(*k), v.clone())).collect())
    }

    /// Decodes `wire`, checks the typed reply, and checks that it encodes
    /// back to exactly `wire`.
    fn exact(method: &str, wire: Value, expected: Reply) {
        let got = Reply::decode(method, &wire).unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(got, expected, "{method}");
        assert_eq!(got.to_value(), wire, "{method}: re-encoded");
    }

    fn reply_err(method: &str, wire: Value) -> String {
        match Reply::decode(method, &wire) {
            Err(CodecError::Reply { method: m, problem }) => {
                assert_eq!(m, method);
                problem
            }
            other => panic!("{method}: expected a reply error, got {other:?}"),
        }
    }

    #[test]
    fn session_replies() {
        exact("register", p(0), Reply::Register(Some(P64::ZERO)));
        exact("register", Value::None, Reply::Register(None));
        assert_eq!(
            reply_err("register", b(b"abc")),
            "expected 8 bytes, got 3 or None"
        );
        let info = d(&[
            ("length", Value::Int(0)),
            ("size", Value::Int(4)),
            ("name", Value::str("/tmp/data.fs")),
            ("supportsUndo", Value::Bool(true)),
            ("supports_record_iternext", Value::Bool(true)),
            (
                "interfaces",
                t([t([
                    Value::str("ZODB.interfaces"),
                    Value::str("IStorageRestoreable"),
                ])]),
            ),
        ]);
        exact("get_info", info.clone(), Reply::GetInfo(info));
        reply_err("get_info", Value::None);
        exact("lastTransaction", p(7), Reply::LastTransaction(o(7)));
        let status = d(&[("connections", Value::Int(1)), ("lock_time", Value::None)]);
        exact("server_status", status.clone(), Reply::ServerStatus(status));
        exact("ping", Value::None, Reply::None("ping"));
        assert_eq!(reply_err("ping", Value::Int(0)), "expected None, got int");
    }

    #[test]
    fn get_invalidations_reply() {
        // s10: (tid, [oid])
        exact(
            "getInvalidations",
            t([p(9), l([p(1)])]),
            Reply::GetInvalidations(Some((o(9), vec![o(1)]))),
        );
        exact("getInvalidations", Value::None, Reply::GetInvalidations(None));
        // msgpack: nested tuple
        let r = Reply::decode("getInvalidations", &t([p(9), t([p(1), p(2)])])).unwrap();
        assert_eq!(r, Reply::GetInvalidations(Some((o(9), vec![o(1), o(2)]))));
        assert_eq!(
            reply_err("getInvalidations", t([p(9), l([b(b"x")])])),
            "item 1 (oids): item 0: expected 8 bytes, got 1"
        );
        reply_err("getInvalidations", t([p(9)]));
    }

    #[test]
    fn load_replies() {
        let rec = b(b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.");
        let data = conv::bytes(&rec).unwrap();
        exact(
            "loadBefore",
            t([rec.clone(), p(1), p(2)]),
            Reply::LoadBefore(Some(LoadBeforeResult {
                data: data.clone(),
                start: o(1),
                end: Some(o(2)),
            })),
        );
        exact(
            "loadBefore",
            t([rec.clone(), p(1), Value::None]),
            Reply::LoadBefore(Some(LoadBeforeResult {
                data: data.clone(),
                start: o(1),
                end: None,
            })),
        );
        exact("loadBefore", Value::None, Reply::LoadBefore(None));
        assert_eq!(
            reply_err("loadBefore", t([rec.clone(), p(1)])),
            "expected 3 items, got 2"
        );
        assert_eq!(
            reply_err("loadBefore", t([rec.clone(), b(b"1"), Value::None])),
            "item 1 (start): expected 8 bytes, got 1"
        );
        reply_err("loadBefore", t([Value::None, p(1), Value::None]));
        exact("loadSerial", rec.clone(), Reply::LoadSerial(data.clone()));
        reply_err("loadSerial", Value::None);
        exact("getTid", p(3), Reply::GetTid(o(3)));
        exact(
            "record_iternext",
            t([p(0), p(5), rec.clone(), p(1)]),
            Reply::RecordIternext(RecordIternextResult {
                oid: o(0),
                tid: o(5),
                data: data.clone(),
                next: Some(o(1)),
            }),
        );
        exact(
            "record_iternext",
            t([p(0), p(5), rec, Value::None]),
            Reply::RecordIternext(RecordIternextResult {
                oid: o(0),
                tid: o(5),
                data,
                next: None,
            }),
        );
        exact("sendBlob", Value::None, Reply::None("sendBlob"));
    }

    #[test]
    fn history_and_undo_log() {
        let h = l([
            d(&[
                ("time", Value::Float(1.5)),
                ("user_name", b(b"")),
                ("tid", p(3)),
                ("size", Value::Int(294)),
            ]),
            d(&[
                ("foo", Value::str("bar")),
                ("time", Value::Float(1.0)),
                ("tid", p(2)),
            ]),
        ]);
        let items = h.as_seq().unwrap().to_vec();
        exact("history", h.clone(), Reply::History(items.clone()));
        exact("undoLog", h.clone(), Reply::UndoLog(items.clone()));
        exact("undoInfo", h, Reply::UndoInfo(items.clone()));
        // msgpack tuple / unsupported-undo `()`: decoded, written as a list.
        let r = Reply::decode("undoLog", &Value::Tuple(items.clone())).unwrap();
        assert_eq!(r, Reply::UndoLog(items));
        assert_eq!(Reply::decode("undoLog", &t([])).unwrap(), Reply::UndoLog(vec![]));
        assert_eq!(
            reply_err("history", l([Value::Int(1)])),
            "item 0: expected a dict, got int"
        );
    }

    #[test]
    fn vote_replies() {
        exact("vote", l([]), Reply::Vote(VoteResult::Oids(vec![])));
        exact("vote", l([p(2)]), Reply::Vote(VoteResult::Oids(vec![o(2)])));
        // msgpack `()`
        assert_eq!(
            Reply::decode("vote", &t([])).unwrap(),
            Reply::Vote(VoteResult::Oids(vec![]))
        );
        assert_eq!(
            Reply::decode("vote", &Value::None).unwrap(),
            Reply::Vote(VoteResult::Oids(vec![]))
        );
        // s16: [{'oid', 'serials', 'data'}]
        let data = b(b"\x80\x03cBTrees.Length\nLength\nq\x00.\x80\x03K\x01.");
        let c = d(&[
            ("oid", p(1)),
            ("serials", t([p(9), p(8)])),
            ("data", data.clone()),
        ]);
        let r = Reply::Vote(VoteResult::Conflicts(vec![VoteConflict {
            oid: o(1),
            serials: (o(9), o(8)),
            data: conv::bytes(&data).unwrap(),
        }]));
        exact("vote", l([c.clone()]), r.clone());
        assert!(!matches!(&r, Reply::Vote(v) if v.is_empty()));
        assert_eq!(
            reply_err("vote", l([d(&[("oid", p(1)), ("data", data.clone())])])),
            "conflict 0: no \"serials\" key"
        );
        assert_eq!(
            reply_err(
                "vote",
                l([d(&[("oid", p(1)), ("serials", t([p(9)])), ("data", data)])])
            ),
            "conflict 0, serials: expected a pair, got 1 items"
        );
        reply_err("vote", l([p(1), c]));
        reply_err("vote", Value::Int(1));
    }

    #[test]
    fn commit_replies() {
        exact("tpc_finish", p(11), Reply::TpcFinish(Some(o(11))));
        exact("tpc_finish", Value::None, Reply::TpcFinish(None));
        exact("tpc_abort", Value::None, Reply::None("tpc_abort"));
        let oids: Vec<P64> = (1..=100).map(o).collect();
        exact(
            "new_oids",
            l(oids.iter().map(conv::p64_value)),
            Reply::NewOids(oids.clone()),
        );
        assert_eq!(
            Reply::decode(
                "new_oids",
                &Value::Tuple(oids.iter().map(conv::p64_value).collect())
            )
            .unwrap(),
            Reply::NewOids(oids)
        );
        assert_eq!(
            reply_err("new_oids", l([p(1), b(b"12")])),
            "item 1: expected 8 bytes, got 2"
        );
        exact("new_oid", p(5), Reply::NewOid(p(5)));
        exact("pack", Value::None, Reply::None("pack"));
        // async methods called synchronously return None (s05: sync tpc_begin).
        for m in [
            "tpc_begin",
            "storea",
            "restorea",
            "undoa",
            "storeBlobChunk",
            "iterator_gc",
            "set_client_label",
        ] {
            exact(
                m,
                Value::None,
                Reply::None(METHOD_NAMES.iter().find(|n| **n == m).unwrap()),
            );
        }
    }

    #[test]
    fn iteration_replies() {
        exact("iterator_start", Value::Int(0), Reply::IteratorStart(0));
        exact(
            "iterator_record_start",
            Value::Int(3),
            Reply::IteratorRecordStart(3),
        );
        reply_err("iterator_start", Value::None);
        // s07: (tid, ' ', b'', b'iter test', {'k': 1})
        let ext = d(&[("k", Value::Int(1))]);
        exact(
            "iterator_next",
            t([p(4), Value::str(" "), b(b""), b(b"iter test"), ext.clone()]),
            Reply::IteratorNext(Some(TxnRecord {
                tid: o(4),
                status: " ".into(),
                user: b(b""),
                description: b(b"iter test"),
                extension: ext,
            })),
        );
        exact("iterator_next", Value::None, Reply::IteratorNext(None));
        assert_eq!(
            reply_err("iterator_next", t([p(4), b(b" "), b(b""), b(b""), d(&[])])),
            "item 1 (status): expected a str, got bytes"
        );
        exact(
            "iterator_record_next",
            t([p(0), p(4), b(b"rec"), Value::None]),
            Reply::IteratorRecordNext(Some(DataRecord {
                oid: o(0),
                tid: o(4),
                data: Some(Bytes::from_static(b"rec")),
                data_txn: None,
            })),
        );
        exact(
            "iterator_record_next",
            t([p(0), p(4), Value::None, p(3)]),
            Reply::IteratorRecordNext(Some(DataRecord {
                oid: o(0),
                tid: o(4),
                data: None,
                data_txn: Some(o(3)),
            })),
        );
        exact(
            "iterator_record_next",
            Value::None,
            Reply::IteratorRecordNext(None),
        );
        reply_err("iterator_record_next", t([p(0), p(4), Value::None]));
    }

    #[test]
    fn raid_and_unknown() {
        let v = d(&[("status", Value::str("optimal"))]);
        exact("raid_status", v.clone(), Reply::Raid(v));
        match Reply::decode("load", &Value::None) {
            Err(CodecError::UnknownMethod(n)) => assert_eq!(n, "load"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_method_has_a_reply_decoder() {
        for m in METHOD_NAMES {
            // No known method is "unknown" to the reply decoder.
            assert!(
                !matches!(Reply::decode(m, &Value::None), Err(CodecError::UnknownMethod(_))),
                "{m}"
            );
        }
    }
}
