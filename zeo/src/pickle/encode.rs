//! The pickle encoder: the opcodes `zodbpickle.Pickler(f, 3)` in fast mode
//! chooses, so our frames are byte-identical to a real ZEO's for the same
//! values (`docs/zeo-protocol.md#encodings`): small ints as BININT1/BININT2, 32-bit ints as
//! BININT, larger ones as LONG1; str always BINUNICODE (protocol 3 has no
//! SHORT_BINUNICODE); tuples of up to 3 items as TUPLE1..3; lists and dicts
//! batched by 1000 (APPEND/SETITEM only for a one-item container); no memo.

use crate::error::PickleError;
use crate::value::Value;
use num_bigint::BigInt;

/// Deepest value we encode. Decoded values are bounded by the decoder's
/// limit (100); this guards values built in code against stack exhaustion.
pub const MAX_ENCODE_DEPTH: usize = 200;

const BATCH: usize = 1000;

/// Appends the pickle of `v` (PROTO 3 ... STOP) to `out`.
pub fn encode_into(v: &Value, out: &mut Vec<u8>) -> Result<(), PickleError> {
    out.extend_from_slice(&[0x80, 3]);
    save(v, out, 0)?;
    out.push(b'.');
    Ok(())
}

/// Appends the opcodes of `v` alone (no PROTO, no STOP): a part of a
/// pickle written by hand ([`crate::fast_path`]).
pub fn save_into(v: &Value, out: &mut Vec<u8>) -> Result<(), PickleError> {
    save(v, out, 0)
}

fn save(v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), PickleError> {
    if depth > MAX_ENCODE_DEPTH {
        return Err(PickleError::Unencodable(format!(
            "value nested deeper than {MAX_ENCODE_DEPTH}"
        )));
    }
    let inner = depth + 1;
    match v {
        Value::None => out.push(b'N'),
        Value::Bool(true) => out.push(0x88),
        Value::Bool(false) => out.push(0x89),
        Value::Int(i) => save_int(*i, out),
        Value::BigInt(n) => save_long(n, out),
        Value::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Bytes(b) => {
            if b.len() < 256 {
                out.extend_from_slice(&[b'C', b.len() as u8]);
            } else {
                out.push(b'B');
                out.extend_from_slice(&len_u32(b.len())?.to_le_bytes());
            }
            out.extend_from_slice(b);
        }
        Value::Str(s) => {
            out.push(b'X');
            out.extend_from_slice(&len_u32(s.len())?.to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Tuple(items) => match items.len() {
            0 => out.push(b')'),
            n @ 1..=3 => {
                for item in items {
                    save(item, out, inner)?;
                }
                out.push(0x84 + n as u8);
            }
            _ => {
                out.push(b'(');
                for item in items {
                    save(item, out, inner)?;
                }
                out.push(b't');
            }
        },
        // As `_pickle.c`'s batch_list_exact/batch_dict_exact: a single item
        // uses APPEND/SETITEM; otherwise every batch (even a trailing batch of
        // one) is MARK ... APPENDS/SETITEMS.
        Value::List(items) => {
            out.push(b']');
            if let [item] = items.as_slice() {
                save(item, out, inner)?;
                out.push(b'a');
            } else {
                for batch in items.chunks(BATCH) {
                    out.push(b'(');
                    for item in batch {
                        save(item, out, inner)?;
                    }
                    out.push(b'e');
                }
            }
        }
        Value::Dict(items) => {
            out.push(b'}');
            if let [(k, v)] = items.as_slice() {
                save(k, out, inner)?;
                save(v, out, inner)?;
                out.push(b's');
            } else {
                for batch in items.chunks(BATCH) {
                    out.push(b'(');
                    for (k, v) in batch {
                        save(k, out, inner)?;
                        save(v, out, inner)?;
                    }
                    out.push(b'u');
                }
            }
        }
        Value::Global { module, name } => {
            if module.contains('\n') || name.contains('\n') {
                return Err(PickleError::Unencodable("global name with a newline".into()));
            }
            out.push(b'c');
            out.extend_from_slice(module.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
        }
        Value::Reduce { callable, args } => {
            save(callable, out, inner)?;
            save(args, out, inner)?;
            out.push(b'R');
        }
        Value::Object { class, args, state } => {
            save(class, out, inner)?;
            save(args, out, inner)?;
            out.push(0x81);
            if let Some(state) = state {
                save(state, out, inner)?;
                out.push(b'b');
            }
        }
    }
    Ok(())
}

fn save_int(i: i64, out: &mut Vec<u8>) {
    if (0..=0xff).contains(&i) {
        out.extend_from_slice(&[b'K', i as u8]);
    } else if (0..=0xffff).contains(&i) {
        out.push(b'M');
        out.extend_from_slice(&(i as u16).to_le_bytes());
    } else if i32::try_from(i).is_ok() {
        out.push(b'J');
        out.extend_from_slice(&(i as i32).to_le_bytes());
    } else {
        save_long(&BigInt::from(i), out);
    }
}

/// LONG1 (or LONG4 past 255 bytes) with Python's minimal two's-complement
/// little-endian encoding (`pickle.encode_long`).
fn save_long(n: &BigInt, out: &mut Vec<u8>) {
    let bytes = n.to_signed_bytes_le();
    if bytes.len() < 256 {
        out.extend_from_slice(&[0x8a, bytes.len() as u8]);
    } else {
        out.push(0x8b);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&bytes);
}

fn len_u32(n: usize) -> Result<u32, PickleError> {
    u32::try_from(n).map_err(|_| PickleError::Unencodable(format!("string of {n} bytes exceeds 4 GiB")))
}
