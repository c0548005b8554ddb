//! proptest strategies for [`zeo::Value`], shared by the codec property tests
//! (`mod strategies;` in a `tests/*.rs` file).
//!
//! [`value`] covers everything both codecs must carry (all ints incl. big
//! ones, finite floats, bytes around the 256-byte BINBYTES boundary, any
//! unicode, nested tuples/lists/dicts with str or bytes keys).
//! [`msgpack_value`] restricts it to what msgpack can carry, and
//! [`normalize_msgpack`] maps a value to what comes back from msgpack.
//! Floats are finite (never NaN) so values compare equal after a roundtrip.

#![allow(dead_code)]

use bytes::Bytes;
use num_bigint::BigInt;
use proptest::prelude::*;
use zeo::Value;

/// Maximum nesting of generated containers.
pub const MAX_DEPTH: u32 = 5;

/// Finite floats of every class (normal, subnormal, zero, both signs).
pub fn float() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// Byte strings of 0..300 bytes: both sides of pickle's SHORT_BINBYTES /
/// BINBYTES switch at 256 and of msgpack's bin8 / bin16 switch.
pub fn bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..20),
        1 => proptest::collection::vec(any::<u8>(), 250..300),
    ]
    .prop_map(Bytes::from)
}

/// Any unicode string (short; long ones add nothing but time).
pub fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,12}",
        1 => any::<String>(),
    ]
}

/// Ints outside the `i64` range: magnitudes 2^63 .. 2^100 with either sign.
/// (`-2^63` itself fits in an `i64`; [`Value::from_bigint`] normalises it.)
pub fn big_int() -> impl Strategy<Value = Value> {
    (any::<bool>(), (1u128 << 63)..(1u128 << 100)).prop_map(|(negative, magnitude)| {
        let n = BigInt::from(magnitude);
        Value::from_bigint(if negative { -n } else { n })
    })
}

/// Unsigned 64-bit ints above `i64::MAX`: the only big ints msgpack carries.
pub fn u64_big_int() -> impl Strategy<Value = Value> {
    ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(|n| Value::BigInt(BigInt::from(n)))
}

fn int() -> impl Strategy<Value = Value> {
    prop_oneof![
        // Small ints and the encoding boundaries matter most.
        2 => (-300i64..70_000).prop_map(Value::Int),
        1 => any::<i64>().prop_map(Value::Int),
    ]
}

fn key() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => string().prop_map(Value::Str),
        1 => bytes().prop_map(Value::Bytes),
    ]
}

fn tree(leaf: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    leaf.prop_recursive(MAX_DEPTH, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec((key(), inner), 0..5).prop_map(Value::Dict),
        ]
    })
}

/// Any plain-data value (no Global/Reduce/Object nodes).
pub fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        int(),
        big_int(),
        float().prop_map(Value::Float),
        bytes().prop_map(Value::Bytes),
        string().prop_map(Value::Str),
    ];
    tree(leaf.boxed())
}

/// Values msgpack can carry: like [`value`], but big ints only in
/// `(i64::MAX, u64::MAX]`. Lists are still generated (they must encode as
/// arrays); compare roundtrips through [`normalize_msgpack`].
pub fn msgpack_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        int(),
        u64_big_int(),
        float().prop_map(Value::Float),
        bytes().prop_map(Value::Bytes),
        string().prop_map(Value::Str),
    ];
    tree(leaf.boxed())
}

/// What a value looks like after a msgpack roundtrip: every list is a tuple
/// (msgpack has one array type and ZEO decodes it as a tuple).
pub fn normalize_msgpack(v: &Value) -> Value {
    match v {
        Value::Tuple(items) | Value::List(items) => {
            Value::Tuple(items.iter().map(normalize_msgpack).collect())
        }
        Value::Dict(items) => Value::Dict(
            items
                .iter()
                .map(|(k, v)| (normalize_msgpack(k), normalize_msgpack(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
