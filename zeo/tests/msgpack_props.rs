//! Property tests of the M5 codec: roundtrips, and agreement with `rmpv`
//! (whose encoder was measured byte-identical to msgpack-python on all
//! captured frames), plus robustness on arbitrary input.

mod strategies;

use bytes::Bytes;
use num_traits::ToPrimitive;
use proptest::prelude::*;
use strategies::{msgpack_value, normalize_msgpack, value};
use zeo::{msgpack, CodecError, Value};

/// The rmpv value a (msgpack-encodable) value corresponds to.
fn to_rmpv(v: &Value) -> rmpv::Value {
    match v {
        Value::None => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Int(i) => rmpv::Value::from(*i),
        Value::BigInt(n) => rmpv::Value::from(n.to_u64().expect("u64 big int")),
        Value::Float(f) => rmpv::Value::F64(*f),
        Value::Bytes(b) => rmpv::Value::Binary(b.to_vec()),
        Value::Str(s) => rmpv::Value::String(s.clone().into()),
        Value::Tuple(items) | Value::List(items) => rmpv::Value::Array(items.iter().map(to_rmpv).collect()),
        Value::Dict(items) => rmpv::Value::Map(items.iter().map(|(k, v)| (to_rmpv(k), to_rmpv(v))).collect()),
        other => panic!("not msgpack data: {other:?}"),
    }
}

/// Whether our decoding and rmpv's describe the same msgpack data.
fn same(ours: &Value, theirs: &rmpv::Value) -> bool {
    match (ours, theirs) {
        (Value::Float(a), rmpv::Value::F32(b)) => *a == f64::from(*b) || (a.is_nan() && b.is_nan()),
        (Value::Float(a), rmpv::Value::F64(b)) => a == b || (a.is_nan() && b.is_nan()),
        (Value::Tuple(a), rmpv::Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Dict(a), rmpv::Value::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        (Value::List(_), _) => false, // the decoder never produces lists
        (ours, theirs) => to_rmpv(ours) == *theirs,
    }
}

fn rmpv_encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &to_rmpv(v)).unwrap();
    out
}

/// rmpv's decoding of `data` if it decodes one value spanning all of it.
fn rmpv_decode(data: &[u8]) -> Option<rmpv::Value> {
    let mut rd = data;
    let v = rmpv::decode::read_value(&mut rd).ok()?;
    rd.is_empty().then_some(v)
}

/// The reasons we may refuse what rmpv accepts (it is more lenient).
fn is_stricter_than_rmpv(e: &CodecError) -> bool {
    let CodecError::Msgpack(m) = e else {
        return false;
    };
    ["reserved marker", "ext type", "map key", "UTF-8", "nesting"]
        .iter()
        .any(|reason| m.contains(reason))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn roundtrip(v in msgpack_value()) {
        let wire = msgpack::encode(&v).unwrap();
        let expected = normalize_msgpack(&v);
        prop_assert_eq!(msgpack::decode(&wire).unwrap(), expected.clone());
        prop_assert_eq!(msgpack::decode_bytes(&Bytes::from(wire.clone())).unwrap(), expected.clone());
        // Decoding is canonical: re-encoding gives the same bytes.
        prop_assert_eq!(msgpack::encode(&expected).unwrap(), wire);
    }

    #[test]
    fn encoder_matches_rmpv(v in msgpack_value()) {
        prop_assert_eq!(msgpack::encode(&v).unwrap(), rmpv_encode(&v));
    }

    #[test]
    fn decoder_matches_rmpv_on_valid_input(v in msgpack_value()) {
        let wire = rmpv_encode(&v);
        let ours = msgpack::decode(&wire).unwrap();
        let theirs = rmpv_decode(&wire).unwrap();
        prop_assert!(same(&ours, &theirs), "{:?} vs {:?}", ours, theirs);
    }

    /// Values outside msgpack's range are refused, never mangled.
    #[test]
    fn general_values_encode_or_fail_cleanly(v in value()) {
        match msgpack::encode(&v) {
            Ok(wire) => prop_assert_eq!(msgpack::decode(&wire).unwrap(), normalize_msgpack(&v)),
            Err(CodecError::Msgpack(m)) => prop_assert!(m.contains("64 bits"), "{}", m),
            Err(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }

    /// Arbitrary bytes: no panic; whatever we accept, rmpv decodes the same;
    /// whatever rmpv accepts and we refuse, we refuse for a documented reason.
    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let ours = msgpack::decode(&data);
        let via_bytes = msgpack::decode_bytes(&Bytes::from(data.clone()));
        prop_assert_eq!(&ours, &via_bytes);
        match (&ours, rmpv_decode(&data)) {
            (Ok(v), Some(theirs)) => prop_assert!(same(v, &theirs), "{:?} vs {:?}", v, theirs),
            (Ok(v), None) => prop_assert!(false, "we accepted what rmpv refuses: {:?}", v),
            (Err(e), Some(_)) => prop_assert!(is_stricter_than_rmpv(e), "{:?}", e),
            (Err(_), None) => {}
        }
    }

    /// Valid messages with a few bytes overwritten, inserted or cut off:
    /// no panic, and any success is a canonical value.
    #[test]
    fn mutated_messages(
        v in msgpack_value(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut wire = msgpack::encode(&v).unwrap();
        for (at, byte, op) in edits {
            let i = at.index(wire.len() + 1);
            match op {
                0 if i < wire.len() => wire[i] = byte,
                1 => wire.insert(i, byte),
                _ => wire.truncate(i),
            }
        }
        if let Ok(decoded) = msgpack::decode(&wire) {
            prop_assert!(msgpack::encode(&decoded).is_ok());
        }
    }
}
