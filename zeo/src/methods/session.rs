//! Session methods (`docs/zeo-protocol.md#session`): `register`, `get_info`,
//! `lastTransaction`, `getInvalidations`, `ping`, `server_status`,
//! `set_client_label`. The ones without arguments (`get_info`,
//! `lastTransaction`, `ping`, `server_status`) are unit variants of
//! [`super::Request`].

use super::{conv, Args, Method};
use crate::error::CodecError;
use crate::types::Tid;
use crate::value::Value;

/// `register(storage_name, read_only)`: must be the first call.
///
/// `read_only` is tested by truthiness: ClientStorage sends int `0` by
/// default, `True` for read-only and `False` under read-only fallback
/// (captures s01, s05, s13). We keep the bool; it re-encodes as a bool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// The storage name, a str (`'1'` in runzeo's default config).
    pub storage: String,
    pub read_only: bool,
}

impl Method for Register {
    const NAME: &'static str = "register";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (2, 2);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(Register {
            storage: a.string(0, "storage_name")?,
            read_only: a.value(1, "read_only")?.is_truthy(),
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::Str(self.storage.clone()), Value::Bool(self.read_only)]
    }
}

/// `getInvalidations(tid)`: what changed after the client's cached `tid`
/// (cache verification on reconnect).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetInvalidations {
    pub tid: Tid,
}

impl Method for GetInvalidations {
    const NAME: &'static str = "getInvalidations";
    const ONEWAY: bool = false;
    const ARITY: (usize, usize) = (1, 1);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(GetInvalidations {
            tid: a.p64(0, "tid")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![conv::p64_value(&self.tid)]
    }
}

/// `set_client_label(label)` (async): only used in server log lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetClientLabel {
    pub label: String,
}

impl Method for SetClientLabel {
    const NAME: &'static str = "set_client_label";
    const ONEWAY: bool = true;
    const ARITY: (usize, usize) = (1, 1);

    fn decode(a: &Args<'_>) -> Result<Self, CodecError> {
        Ok(SetClientLabel {
            label: a.string(0, "label")?,
        })
    }

    fn to_args(&self) -> Vec<Value> {
        vec![Value::Str(self.label.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::Request;
    use super::*;
    use crate::types::P64;

    #[test]
    fn register_accepts_every_captured_read_only_form() {
        // s01: ('1', 0); s05: ('1', True); s13: ('1', False)
        for (flag, ro) in [
            (Value::Int(0), false),
            (Value::Bool(true), true),
            (Value::Bool(false), false),
            (Value::Int(1), true),
            (Value::None, false),
        ] {
            round_trip(
                "register",
                t([Value::str("1"), flag]),
                Request::Register(Register {
                    storage: "1".into(),
                    read_only: ro,
                }),
            );
        }
        let r = Request::decode("register", &t([Value::str("1"), Value::Int(0)])).unwrap();
        assert_eq!(r.to_args(), t([Value::str("1"), Value::Bool(false)]));
    }

    #[test]
    fn register_errors() {
        arity_err("register", t([Value::str("1")]), "2");
        arity_err(
            "register",
            t([Value::str("1"), Value::Int(0), Value::Int(0)]),
            "2",
        );
        let p = arg_err("register", t([b(b"1"), Value::Int(0)]), 0, "storage_name");
        assert_eq!(p, "expected a str, got bytes");
    }

    #[test]
    fn get_invalidations() {
        let tid = P64([4, 13, 62, 33, 141, 124, 34, 170]);
        round_trip(
            "getInvalidations",
            t([conv::p64_value(&tid)]),
            Request::GetInvalidations(GetInvalidations { tid }),
        );
        let p = arg_err("getInvalidations", t([b(b"abc")]), 0, "tid");
        assert_eq!(p, "expected 8 bytes, got 3");
        arg_err("getInvalidations", t([Value::None]), 0, "tid");
        arity_err("getInvalidations", t([]), "1");
    }

    #[test]
    fn set_client_label() {
        round_trip(
            "set_client_label",
            t([Value::str("cap-client")]),
            Request::SetClientLabel(SetClientLabel {
                label: "cap-client".into(),
            }),
        );
        arg_err("set_client_label", t([Value::Int(1)]), 0, "label");
        arity_err("set_client_label", t([]), "1");
    }
}
