//! The Z5 pickle codec against real captured frames and malformed input.

mod capture;

use bytes::Bytes;
use capture::{all_frames, Kind};
use zeo::pickle::{decode, encode, Limits};
use zeo::{PickleError, Value};

#[test]
fn every_captured_pickle_decodes_and_zeo_encoded_ones_reencode_byte_identically() {
    let frames: Vec<_> = all_frames()
        .into_iter()
        .filter(|f| f.kind == Kind::Pickle)
        .collect();
    assert!(frames.len() > 600, "only {} pickle frames found", frames.len());
    let mut identical = 0;
    let mut decoded = 0;
    for f in &frames {
        let v = match decode(&f.payload) {
            Ok(v) => v,
            // s15 c3 sends one protocol-4 pickle on purpose: ZEO closes the connection.
            Err(PickleError::UnsupportedProtocol { protocol: 4 }) if f.file == "s15_cross_encoding" => {
                continue
            }
            Err(e) => panic!("{}:{}: {e}", f.file, f.line),
        };
        decoded += 1;
        let again = encode(&v).unwrap_or_else(|e| panic!("{}:{}: encode: {e}", f.file, f.line));
        assert_eq!(
            decode(&Bytes::from(again.clone())).unwrap(),
            v,
            "{}:{}: roundtrip",
            f.file,
            f.line
        );
        if f.zeo_encoder {
            assert_eq!(
                hex::encode(&again),
                hex::encode(&f.payload),
                "{}:{}: bytes differ from ZEO's encoder",
                f.file,
                f.line
            );
            identical += 1;
        }
    }
    assert!(decoded >= frames.len() - 1);
    assert!(identical > 550, "only {identical} byte-identical");
}

fn dec(bytes: &[u8]) -> Result<Value, PickleError> {
    decode(&Bytes::copy_from_slice(bytes))
}

#[test]
fn deeply_nested_input_is_a_typed_error_not_a_stack_overflow() {
    // `]]]]...aaa.`: 100,000 nested lists in 200 KB. serde-pickle aborts the
    // process at ~700 levels in a debug build; we must return an error, and
    // do so on a small stack to prove the decoder does not recurse.
    let n = 100_000;
    let mut p = vec![0x80, 3];
    p.extend(std::iter::repeat_n(b']', n));
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    let handle = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || dec(&p))
        .unwrap();
    match handle.join().expect("decoder thread must not crash") {
        Err(PickleError::TooDeep { limit: 100, .. }) => {}
        other => panic!("expected TooDeep, got {other:?}"),
    }
    // Nested MARKs and tuples are bounded too.
    let mut p = vec![0x80, 3];
    p.extend(std::iter::repeat_n(b'(', 10_000));
    assert!(matches!(dec(&p), Err(PickleError::TooDeep { .. })));
    let mut p = vec![0x80, 3, b'N'];
    p.extend(std::iter::repeat_n(0x85u8, 10_000));
    p.push(b'.');
    assert!(matches!(dec(&p), Err(PickleError::TooDeep { .. })));
}

#[test]
fn nesting_within_the_limit_decodes() {
    let mut p = vec![0x80, 3];
    p.extend(std::iter::repeat_n(b']', 100));
    p.extend(std::iter::repeat_n(b'a', 99));
    p.push(b'.');
    assert!(dec(&p).is_ok());
}

#[test]
fn forbidden_globals_are_rejected_without_resolving_anything() {
    let p = b"\x80\x03cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
    match dec(p) {
        Err(PickleError::ForbiddenGlobal {
            module,
            name,
            offset: 2,
        }) => {
            assert_eq!((module.as_str(), name.as_str()), ("os", "system"));
        }
        other => panic!("expected ForbiddenGlobal, got {other:?}"),
    }
    assert!(matches!(
        dec(b"\x80\x03cbuiltins\neval\n."),
        Err(PickleError::ForbiddenGlobal { .. })
    ));
    // The exception classes ZEO sends are data, never resolved.
    let v = dec(b"\x80\x03cZODB.POSException\nUndoError\n.").unwrap();
    assert_eq!(
        v,
        Value::Global {
            module: "ZODB.POSException".into(),
            name: "UndoError".into()
        }
    );
}

#[test]
fn malformed_pickles_are_typed_errors() {
    type Case = (&'static [u8], fn(&PickleError) -> bool);
    let cases: &[Case] = &[
        (b"", |e| matches!(e, PickleError::MissingStop)),
        (b"\x80\x03N", |e| matches!(e, PickleError::MissingStop)),
        (b"\x80\x03X\xff\x00\x00\x00ab.", |e| {
            matches!(e, PickleError::Truncated { .. })
        }),
        (b"\x80\x03B\xff\xff\xff\xffab.", |e| {
            matches!(e, PickleError::Truncated { .. })
        }),
        (b"\x80\x04N.", |e| {
            matches!(e, PickleError::UnsupportedProtocol { protocol: 4 })
        }),
        (b"\x80\x03\x95\x00\x00\x00\x00\x00\x00\x00\x00N.", |e| {
            matches!(e, PickleError::UnknownOpcode { opcode: 0x95, .. })
        }),
        (b"\x80\x03\xffN.", |e| {
            matches!(e, PickleError::UnknownOpcode { opcode: 0xff, .. })
        }),
        (b"\x80\x03N.N", |e| matches!(e, PickleError::TrailingBytes { .. })),
        (b"\x80\x03NN.", |e| matches!(e, PickleError::Malformed { .. })),
        (b"\x80\x03a.", |e| matches!(e, PickleError::Malformed { .. })),
        (b"\x80\x03NNa.", |e| matches!(e, PickleError::Malformed { .. })),
        (b"\x80\x03t.", |e| matches!(e, PickleError::Malformed { .. })),
        (b"\x80\x03}N.", |e| matches!(e, PickleError::Malformed { .. })),
        (b"\x80\x03h\x05.", |e| matches!(e, PickleError::Malformed { .. })),
        (b"\x80\x03X\x02\x00\x00\x00\xff\xfe.", |e| {
            matches!(e, PickleError::Malformed { .. })
        }),
        (b"\x80\x03\x8b\xff\xff\xff\x7f.", |e| {
            matches!(e, PickleError::Malformed { .. })
        }),
    ];
    for (input, check) in cases {
        match dec(input) {
            Err(e) => assert!(check(&e), "{input:?}: unexpected error {e:?}"),
            Ok(v) => panic!("{input:?}: decoded to {v:?}"),
        }
    }
}

#[test]
fn memo_copies_are_bounded() {
    // A "billion laughs": each level duplicates the previous one twice via GET.
    let mut p = vec![0x80, 3, b'X', 16, 0, 0, 0];
    p.extend_from_slice(b"0123456789abcdef");
    p.extend_from_slice(b"q\x00");
    for i in 0..40u8 {
        p.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1]);
    }
    p.push(b'.');
    let limits = Limits::default();
    assert!(matches!(
        zeo::pickle::decode_with(&Bytes::from(p), &limits),
        Err(PickleError::TooManyValues { .. })
    ));
}

#[test]
fn stdlib_pickles_with_memo_and_protocol_0_decode() {
    // Python: x = [1]; pickle.dumps((x, x), protocol=2)
    let v = dec(&hex::decode("80025d71004b016168008671012e").unwrap()).unwrap();
    let one = Value::List(vec![Value::Int(1)]);
    assert_eq!(v, Value::Tuple(vec![one.clone(), one]));
    // Python: pickle.dumps((1, False, 'régister', [12345678901234567890], 1.5), protocol=0)
    let p0 = b"(I1\nI00\nVr\xe9gister\np0\n(lp1\nL12345678901234567890L\naF1.5\ntp2\n.";
    assert_eq!(
        dec(p0).unwrap(),
        Value::Tuple(vec![
            Value::Int(1),
            Value::Bool(false),
            Value::Str("régister".into()),
            Value::List(vec![Value::from_bigint("12345678901234567890".parse().unwrap())]),
            Value::Float(1.5),
        ])
    );
    // protocol 0 escapes non-latin-1 characters
    assert_eq!(
        dec(b"V\\u20ac\\U0001f600x\n.").unwrap(),
        Value::Str("€😀x".into())
    );
}

#[test]
fn containers_are_batched_like_zodbpickle() {
    // zodbpickle, protocol 3, fast: the tails of list(range(1001)) and
    // {i: i for i in range(1001)}: a trailing batch of one still uses MARK.
    let list = Value::List((0..1001).map(Value::Int).collect());
    let got = hex::encode(encode(&list).unwrap());
    assert!(
        got.ends_with("4de5034de6034de70365284de803652e"),
        "{}",
        &got[got.len() - 40..]
    );
    let dict = Value::Dict((0..1001).map(|i| (Value::Int(i), Value::Int(i))).collect());
    let got = hex::encode(encode(&dict).unwrap());
    assert!(
        got.ends_with("034de6034de7034de70375284de8034de803752e"),
        "{}",
        &got[got.len() - 40..]
    );
    // one item: APPEND / SETITEM; four-tuple: MARK..TUPLE
    assert_eq!(
        hex::encode(encode(&Value::List(vec![Value::bytes(&b"a"[..])])).unwrap()),
        "80035d430161612e"
    );
    let d = Value::Dict(vec![(Value::str("a"), Value::Int(1))]);
    assert_eq!(hex::encode(encode(&d).unwrap()), "80037d5801000000614b01732e");
    let t = Value::tuple((0..4).map(Value::Int));
    assert_eq!(hex::encode(encode(&t).unwrap()), "8003284b004b014b024b03742e");
}

#[test]
fn ints_use_zeo_opcodes() {
    let cases: &[(i64, &str)] = &[
        (0, "4b00"),
        (255, "4bff"),
        (256, "4d0001"),
        (65535, "4dffff"),
        (65536, "4a00000100"),
        (-1, "4affffffff"),
        (2147483647, "4affffff7f"),
        (2147483648, "8a050000008000"),
        (-2147483649, "8a05ffffff7fff"),
        (139910119818704, "8a06d005fe5c3f7f"),
        (i64::MAX, "8a08ffffffffffffff7f"),
        (i64::MIN, "8a080000000000000080"),
    ];
    for (i, hexops) in cases {
        let got = encode(&Value::Int(*i)).unwrap();
        assert_eq!(hex::encode(&got), format!("8003{hexops}2e"), "{i}");
        assert_eq!(dec(&got).unwrap(), Value::Int(*i));
    }
    let big: num_bigint::BigInt = num_bigint::BigInt::from(1u8) << 70;
    let got = encode(&Value::from_bigint(big.clone())).unwrap();
    assert_eq!(hex::encode(&got), "80038a090000000000000000402e");
    assert_eq!(dec(&got).unwrap(), Value::BigInt(big));
}

#[test]
fn repeated_dict_keys_are_kept_as_on_the_wire_and_the_last_one_wins() {
    // Found by the fuzzer: DICT and SETITEMS must treat repeated keys alike, so
    // that re-encoding a decoded value is a fixed point.
    for p in [
        &b"\x80\x03(X\x01\x00\x00\x00kK\x01X\x01\x00\x00\x00kK\x02d."[..],
        b"\x80\x03}(X\x01\x00\x00\x00kK\x01X\x01\x00\x00\x00kK\x02u.",
    ] {
        let v = dec(p).unwrap();
        assert_eq!(v.dict_get("k"), Some(&Value::Int(2)));
        let once = encode(&v).unwrap();
        assert_eq!(encode(&dec(&once).unwrap()).unwrap(), once);
    }
}

#[test]
fn the_number_of_values_is_bounded() {
    // MARK, 1,000 NONEs, TUPLE: fine by default, refused with a limit of 500.
    let mut p = vec![0x80, 3, b'('];
    p.extend(std::iter::repeat_n(b'N', 1000));
    p.extend_from_slice(b"t.");
    let p = Bytes::from(p);
    assert!(decode(&p).is_ok());
    let limits = Limits {
        max_values: 500,
        ..Limits::default()
    };
    assert!(matches!(
        zeo::pickle::decode_with(&p, &limits),
        Err(PickleError::TooManyValues { limit: 500 })
    ));
}

#[test]
fn dict_of_pairs_is_read_as_plain_data_and_nothing_else_of_builtins() {
    // Python: class ext(dict): __reduce__ = lambda self: (dict, (tuple(self.items()),))
    //         zodbpickle protocol 3 of ext(foo=1)
    let p = b"\x80\x03cbuiltins\ndict\nX\x03\x00\x00\x00fooK\x01\x86\x85\x85R.";
    assert_eq!(
        dec(p).unwrap(),
        Value::Dict(vec![(Value::str("foo"), Value::Int(1))])
    );
    assert_eq!(dec(b"\x80\x03cbuiltins\ndict\n)R.").unwrap(), Value::Dict(vec![]));
    // Any other use of builtins.dict stays an object node (the server refuses it).
    assert!(matches!(
        dec(b"\x80\x03cbuiltins\ndict\nK\x01\x85R.").unwrap(),
        Value::Reduce { .. }
    ));
    for name in ["eval", "exec", "getattr", "__import__", "set"] {
        let p = format!("\x00\x03cbuiltins\n{name}\n)R.").into_bytes();
        let mut p = p;
        p[0] = 0x80;
        assert!(
            matches!(dec(&p), Err(PickleError::ForbiddenGlobal { .. })),
            "{name}"
        );
    }
}
