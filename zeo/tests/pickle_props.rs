//! Property tests of the Z5 pickle codec, with serde-pickle as an independent
//! oracle: a bug has to be in both codecs to go unnoticed.

mod capture;
mod strategies;

use bytes::Bytes;
use proptest::prelude::*;
use serde_pickle::{DeOptions, HashableValue, Value as SpValue};
use std::collections::BTreeMap;
use zeo::pickle::{decode, encode};
use zeo::Value;

fn hashable(v: &Value) -> Option<HashableValue> {
    Some(match v {
        Value::None => HashableValue::None,
        Value::Bool(b) => HashableValue::Bool(*b),
        Value::Int(i) => HashableValue::I64(*i),
        Value::BigInt(n) => HashableValue::Int(n.clone()),
        Value::Float(f) => HashableValue::F64(*f),
        Value::Bytes(b) => HashableValue::Bytes(b.to_vec()),
        Value::Str(s) => HashableValue::String(s.clone()),
        Value::Tuple(items) => HashableValue::Tuple(items.iter().map(hashable).collect::<Option<_>>()?),
        _ => return None,
    })
}

/// Our value as serde-pickle models it (None for objects it cannot model).
fn oracle(v: &Value) -> Option<SpValue> {
    Some(match v {
        Value::None => SpValue::None,
        Value::Bool(b) => SpValue::Bool(*b),
        Value::Int(i) => SpValue::I64(*i),
        Value::BigInt(n) => SpValue::Int(n.clone()),
        Value::Float(f) => SpValue::F64(*f),
        Value::Bytes(b) => SpValue::Bytes(b.to_vec()),
        Value::Str(s) => SpValue::String(s.clone()),
        Value::Tuple(items) => SpValue::Tuple(items.iter().map(oracle).collect::<Option<_>>()?),
        Value::List(items) => SpValue::List(items.iter().map(oracle).collect::<Option<_>>()?),
        Value::Dict(items) => {
            let mut map = BTreeMap::new();
            for (k, v) in items {
                map.insert(hashable(k)?, oracle(v)?);
            }
            SpValue::Dict(map)
        }
        Value::Global { .. } | Value::Reduce { .. } | Value::Object { .. } => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(v in strategies::value()) {
        let bytes = encode(&v).unwrap();
        prop_assert_eq!(decode(&Bytes::from(bytes)).unwrap(), v);
    }

    #[test]
    fn serde_pickle_reads_our_encoding_as_the_same_value(v in strategies::value()) {
        let bytes = encode(&v).unwrap();
        let theirs = serde_pickle::value_from_slice(&bytes, DeOptions::new()).unwrap();
        prop_assert_eq!(Some(theirs), oracle(&v));
    }

    #[test]
    fn we_read_serde_pickle_encoding_as_the_same_value(v in strategies::value()) {
        // serde-pickle's encoder makes different opcode choices (always BININT,
        // MARK..APPENDS, sorted dicts): a second producer for our decoder.
        let Some(sp) = oracle(&v) else { return Ok(()) };
        let bytes = serde_pickle::value_to_vec(&sp, serde_pickle::SerOptions::new()).unwrap();
        let ours = decode(&Bytes::from(bytes)).unwrap();
        prop_assert_eq!(oracle(&ours), Some(sp));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&Bytes::from(data));
    }

    #[test]
    fn arbitrary_opcode_soup_never_panics(body in proptest::collection::vec(
        prop_oneof![
            // opcodes the decoder knows, so the soup gets past the first byte
            proptest::sample::select(b"()tl]}adseuN\x88\x89KMJ\x85\x86\x87.qhrjpg0122RbC".to_vec()),
            any::<u8>(),
        ], 0..256)) {
        let mut data = vec![0x80, 3];
        data.extend(body);
        let _ = decode(&Bytes::from(data));
    }
}

#[test]
fn serde_pickle_agrees_with_us_on_every_captured_frame() {
    let mut compared = 0;
    for f in capture::all_frames()
        .into_iter()
        .filter(|f| f.kind == capture::Kind::Pickle)
    {
        let Ok(ours) = decode(&f.payload) else { continue };
        // Frames carrying exception objects (GLOBAL/REDUCE) are beyond serde-pickle.
        let Some(expected) = oracle(&ours) else { continue };
        let theirs = serde_pickle::value_from_slice(&f.payload, DeOptions::new())
            .unwrap_or_else(|e| panic!("{}:{}: serde-pickle: {e}", f.file, f.line));
        assert_eq!(theirs, expected, "{}:{}", f.file, f.line);
        compared += 1;
    }
    assert!(compared > 600, "only {compared} frames compared");
}
