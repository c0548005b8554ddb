//! Server -> client callbacks (`docs/zeo-protocol.md#callbacks`): the five names a ZEO 6
//! client accepts, all sent as async messages `(0, True, name, args)`.

use bytes::Bytes;

use crate::error::CodecError;
use crate::message::{Message, MsgId};
use crate::methods::conv;
use crate::types::{Oid, Tid};
use crate::value::Value;

/// A decoded callback.
#[derive(Clone, Debug, PartialEq)]
pub enum Callback {
    /// To every *other* client after a commit. `oids` may be empty
    /// (restores and deletes do not contribute oids on a ZEO server).
    InvalidateTransaction {
        tid: Tid,
        oids: Vec<Oid>,
    },
    /// `{'length': int, 'size': int}`: to the committer before each
    /// `tpc_finish` reply, to everybody after a pack. Kept as the dict.
    Info(Value),
    /// Blob download in answer to `sendBlob`: start, chunks, stop.
    ReceiveBlobStart {
        oid: Oid,
        serial: Tid,
    },
    ReceiveBlobChunk {
        oid: Oid,
        serial: Tid,
        chunk: Bytes,
    },
    ReceiveBlobStop {
        oid: Oid,
        serial: Tid,
    },
}

/// The callback names a ZEO 6 client accepts (`client_methods`).
pub const CALLBACK_NAMES: &[&str] = &[
    "invalidateTransaction",
    "info",
    "receiveBlobStart",
    "receiveBlobChunk",
    "receiveBlobStop",
];

struct CbArgs<'a> {
    name: &'static str,
    items: &'a [Value],
}

impl<'a> CbArgs<'a> {
    fn new(name: &'static str, args: &'a Value, n: usize) -> Result<Self, CodecError> {
        let items = args.as_seq().ok_or_else(|| CodecError::Argument {
            method: name.to_owned(),
            index: 0,
            name: "args",
            problem: format!("the arguments must be a tuple or list, got {}", args.type_name()),
        })?;
        if items.len() != n {
            return Err(CodecError::Arity {
                method: name.to_owned(),
                expected: n.to_string(),
                got: items.len(),
            });
        }
        Ok(CbArgs { name, items })
    }

    fn at<T>(
        &self,
        i: usize,
        arg: &'static str,
        f: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<T, CodecError> {
        // `new` checked the length; `get` keeps this panic-free anyway.
        let v = self.items.get(i).unwrap_or(&Value::None);
        f(v).map_err(|problem| CodecError::Argument {
            method: self.name.to_owned(),
            index: i,
            name: arg,
            problem,
        })
    }
}

impl Callback {
    /// Types the arguments of a callback `name` (0-based argument indexes
    /// in errors, as for [`crate::methods::Request::decode`]).
    pub fn decode(name: &str, args: &Value) -> Result<Callback, CodecError> {
        Ok(match name {
            "invalidateTransaction" => {
                let a = CbArgs::new("invalidateTransaction", args, 2)?;
                Callback::InvalidateTransaction {
                    tid: a.at(0, "tid", conv::p64)?,
                    oids: a.at(1, "oids", conv::p64_list)?,
                }
            }
            "info" => {
                let a = CbArgs::new("info", args, 1)?;
                Callback::Info(a.at(0, "info", |v| match v {
                    Value::Dict(_) => Ok(v.clone()),
                    other => Err(format!("expected a dict, got {}", other.type_name())),
                })?)
            }
            "receiveBlobStart" => {
                let a = CbArgs::new("receiveBlobStart", args, 2)?;
                Callback::ReceiveBlobStart {
                    oid: a.at(0, "oid", conv::p64)?,
                    serial: a.at(1, "serial", conv::p64)?,
                }
            }
            "receiveBlobChunk" => {
                let a = CbArgs::new("receiveBlobChunk", args, 3)?;
                Callback::ReceiveBlobChunk {
                    oid: a.at(0, "oid", conv::p64)?,
                    serial: a.at(1, "serial", conv::p64)?,
                    chunk: a.at(2, "chunk", conv::bytes)?,
                }
            }
            "receiveBlobStop" => {
                let a = CbArgs::new("receiveBlobStop", args, 2)?;
                Callback::ReceiveBlobStop {
                    oid: a.at(0, "oid", conv::p64)?,
                    serial: a.at(1, "serial", conv::p64)?,
                }
            }
            other => return Err(CodecError::UnknownMethod(other.to_owned())),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Callback::InvalidateTransaction { .. } => "invalidateTransaction",
            Callback::Info(_) => "info",
            Callback::ReceiveBlobStart { .. } => "receiveBlobStart",
            Callback::ReceiveBlobChunk { .. } => "receiveBlobChunk",
            Callback::ReceiveBlobStop { .. } => "receiveBlobStop",
        }
    }

    /// The argument tuple as ZEO writes it (the oids of
    /// `invalidateTransaction` as a list).
    pub fn to_args(&self) -> Value {
        Value::Tuple(match self {
            Callback::InvalidateTransaction { tid, oids } => {
                vec![conv::p64_value(tid), conv::p64_list_value(oids)]
            }
            Callback::Info(d) => vec![d.clone()],
            Callback::ReceiveBlobStart { oid, serial } | Callback::ReceiveBlobStop { oid, serial } => {
                vec![conv::p64_value(oid), conv::p64_value(serial)]
            }
            Callback::ReceiveBlobChunk { oid, serial, chunk } => {
                vec![
                    conv::p64_value(oid),
                    conv::p64_value(serial),
                    Value::Bytes(chunk.clone()),
                ]
            }
        })
    }

    /// `(0, True, name, args)`.
    pub fn to_message(&self) -> Message {
        Message::oneway(self.name(), self.to_args())
    }

    /// Decodes the arguments of a [`Message::Call`] received by a client;
    /// `None` for other messages.
    pub fn from_message(m: &Message) -> Option<Result<Callback, CodecError>> {
        match m {
            Message::Call { name, args, .. } => Some(Callback::decode(name, args)),
            _ => None,
        }
    }

    /// An `info` callback with the two keys ZEO sends, in its order.
    pub fn info(length: i64, size: i64) -> Callback {
        Callback::Info(Value::Dict(vec![
            (Value::str("length"), Value::Int(length)),
            (Value::str("size"), Value::Int(size)),
        ]))
    }
}

/// Callbacks are async: their msgid is always `0`.
pub const CALLBACK_MSGID: MsgId = MsgId::ASYNC;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::FlagStyle;
    use crate::types::P64;

    fn p(n: u64) -> Value {
        conv::p64_value(&P64::from_u64(n))
    }

    fn o(n: u64) -> P64 {
        P64::from_u64(n)
    }

    fn t(items: impl IntoIterator<Item = Value>) -> Value {
        Value::tuple(items)
    }

    /// The envelope must re-encode to exactly the captured one.
    fn exact(name: &str, args: Value, expected: Callback) {
        let envelope = t([Value::Int(0), Value::Bool(true), Value::str(name), args.clone()]);
        let m = Message::from_value(envelope.clone()).unwrap();
        let cb = Callback::from_message(&m).unwrap().unwrap();
        assert_eq!(cb, expected);
        assert_eq!(cb.name(), name);
        assert_eq!(cb.to_args(), args);
        assert_eq!(cb.to_message().to_value(), envelope);
        assert!(matches!(
            cb.to_message(),
            Message::Call { oneway: true, flag_style: FlagStyle::Bool, ref msgid, .. } if *msgid == CALLBACK_MSGID
        ));
    }

    #[test]
    fn invalidate_transaction() {
        // capture s03: (tid, [oid 1])
        exact(
            "invalidateTransaction",
            t([p(9), Value::List(vec![p(1)])]),
            Callback::InvalidateTransaction {
                tid: o(9),
                oids: vec![o(1)],
            },
        );
        // s09: empty list for restores
        exact(
            "invalidateTransaction",
            t([p(9), Value::List(vec![])]),
            Callback::InvalidateTransaction {
                tid: o(9),
                oids: vec![],
            },
        );
        // s12 (msgpack): oids as a tuple
        let cb = Callback::decode("invalidateTransaction", &t([p(9), t([p(1)])])).unwrap();
        assert_eq!(
            cb,
            Callback::InvalidateTransaction {
                tid: o(9),
                oids: vec![o(1)]
            }
        );
        match Callback::decode(
            "invalidateTransaction",
            &t([p(9), Value::List(vec![Value::bytes(&b"xyz"[..])])]),
        ) {
            Err(CodecError::Argument {
                method,
                index: 1,
                name: "oids",
                problem,
            }) => {
                assert_eq!(method, "invalidateTransaction");
                assert_eq!(problem, "item 0: expected 8 bytes, got 3");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Callback::decode("invalidateTransaction", &t([p(9)])),
            Err(CodecError::Arity { got: 1, .. })
        ));
    }

    #[test]
    fn info() {
        let cb = Callback::info(4, 1447);
        exact(
            "info",
            t([Value::Dict(vec![
                (Value::str("length"), Value::Int(4)),
                (Value::str("size"), Value::Int(1447)),
            ])]),
            cb,
        );
        assert!(matches!(
            Callback::decode("info", &t([Value::None])),
            Err(CodecError::Argument {
                index: 0,
                name: "info",
                ..
            })
        ));
    }

    #[test]
    fn receive_blob() {
        exact(
            "receiveBlobStart",
            t([p(1), p(7)]),
            Callback::ReceiveBlobStart {
                oid: o(1),
                serial: o(7),
            },
        );
        let chunk = Bytes::from(vec![b'B'; 59000]);
        exact(
            "receiveBlobChunk",
            t([p(1), p(7), Value::Bytes(chunk.clone())]),
            Callback::ReceiveBlobChunk {
                oid: o(1),
                serial: o(7),
                chunk,
            },
        );
        exact(
            "receiveBlobStop",
            t([p(1), p(7)]),
            Callback::ReceiveBlobStop {
                oid: o(1),
                serial: o(7),
            },
        );
        assert!(matches!(
            Callback::decode("receiveBlobChunk", &t([p(1), p(7), Value::None])),
            Err(CodecError::Argument {
                index: 2,
                name: "chunk",
                ..
            })
        ));
        assert!(matches!(
            Callback::decode("receiveBlobStop", &Value::None),
            Err(CodecError::Argument {
                index: 0,
                name: "args",
                ..
            })
        ));
    }

    #[test]
    fn zeo4_callbacks_are_unknown() {
        for name in [
            "serialnos",
            "invalidateVerify",
            "endVerify",
            "invalidateCache",
            "beginVerify",
        ] {
            assert!(matches!(Callback::decode(name, &t([])), Err(CodecError::UnknownMethod(n)) if n == name));
        }
        assert_eq!(CALLBACK_NAMES.len(), 5);
        assert!(Callback::from_message(&Message::Heartbeat).is_none());
    }
}
