//! The M5 codec: msgpack <-> [`Value`], with ZEO's exact rules.
//!
//! ZEO encodes with `msgpack.packb(msg, use_bin_type=True)` and decodes with
//! `msgpack.unpackb(data, raw=False, use_list=False)` (msgpack-python >= 1.0,
//! so `strict_map_key=True`). Hence:
//! - every array decodes as [`Value::Tuple`] (Python has no other choice with
//!   `use_list=False`); [`Value::Tuple`] and [`Value::List`] both encode as arrays;
//! - bin <-> [`Value::Bytes`], str <-> [`Value::Str`] (a str must be valid UTF-8);
//! - map keys must be str or bin; maps keep wire order, repeated keys
//!   included ([`Value::Dict`]; [`Value::dict_get`] takes the last one);
//! - ints use the smallest encoding (positive ones unsigned, negative ones
//!   signed), unsigned 64-bit values above `i64::MAX` become
//!   [`Value::BigInt`]; ints beyond 64 bits cannot be encoded (Python raises
//!   `OverflowError` too);
//! - floats encode as float64 (`use_single_float=False`); float32 decodes fine;
//! - ext types, the reserved marker `0xc1` and trailing bytes are errors,
//!   as in Python.
//!
//! The only objects the encoder accepts are the nested exceptions that a
//! ZEO server turns into `[class_name, state]` with its `server_default` hook
//! (`docs/zeo-protocol.md#encodings`), see [`encode`].
//!
//! # Division of labour
//!
//! The msgpack *format* (markers, length forms, byte order, which form is
//! the smallest) is the [`rmp`] crate's: the decoder reads every marker and
//! length with `rmp::decode`, the encoder writes every marker and length
//! with `rmp::encode`. rmp's choices are the same as msgpack-python's
//! `packb(use_bin_type=True)` at every boundary (str8 included), which the
//! unit tests check against `packb` outputs and the 55 captured M5 frames.
//!
//! This module only walks the tree, and adds what a ZEO peer needs on top
//! of the format:
//! - limits checked *before* anything is allocated: nesting
//!   ([`MAX_DEPTH`]), number of values ([`MAX_VALUES`]), and every declared
//!   length or item count against the bytes that are really left;
//! - zero-copy bins: [`decode_bytes`] slices them out of the frame's
//!   [`Bytes`];
//! - Python's strictness: `0xc1`, ext types, invalid UTF-8 and non-str/bin
//!   map keys are errors, and so are lengths beyond 32 bits when encoding
//!   (`rmp::encode::write_str`/`write_bin` would truncate them silently).
//!
//! Why not rmp's value tree, `rmpv::decode`: it maps the reserved marker
//! `0xc1` silently to nil, keeps a str that is not UTF-8, copies every bin
//! into a fresh `Vec`, and has no bound on the number of decoded values (a
//! frame of one-byte nils becomes a tree ~50x its size before anyone could
//! count). `rmpv` is a dev-dependency only: the property tests use it as the
//! oracle (encoder byte-identical, decoder equal wherever we accept).

use std::convert::Infallible;

use bytes::Bytes;
use num_bigint::BigInt;
use num_traits::ToPrimitive;
use rmp::decode::bytes::BytesReadError;
use rmp::decode::{self as rd, DecodeStringError, NumValueReadError};
use rmp::encode::{self as wr, ByteBuf, ValueWriteError};
use rmp::Marker;

use crate::error::CodecError;
use crate::value::Value;

/// Maximum nesting of arrays/maps accepted by the decoder (the same limit as
/// the pickle decoder; real ZEO messages nest at most ~5 levels).
pub const MAX_DEPTH: usize = 100;

/// Maximum number of values (every scalar and container counts one) in one
/// decoded message. Bounds the memory of the decoded tree, which is up to
/// ~50x the size of the input for degenerate inputs (each one-byte nil
/// becomes a 48-byte [`Value`]). The largest real messages are oid lists (one value
/// per 10 input bytes), so 16 Mi values allow invalidations of ~16 million
/// objects in one transaction.
pub const MAX_VALUES: usize = 16 * 1024 * 1024;

/// Maximum nesting the encoder writes: twice the decode limit, so anything a
/// decoder produced still encodes after being wrapped in a reply, while the
/// recursion stays far from the end of a 2 MiB stack even in debug builds
/// (measured: ~3.5 KiB per level unoptimised, ~0.25 KiB optimised).
/// msgpack-python's `packb` would allow 511 levels; ZEO messages nest ~5.
pub const MAX_ENCODE_DEPTH: usize = 2 * MAX_DEPTH;

/// At most this many array/map slots are preallocated from a declared length;
/// beyond that the vector grows with the items that really decode.
const PREALLOC_ITEMS: usize = 1024;

/// Resource limits for [`decode_with_limits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting of arrays and maps (the top-level array is level 1).
    pub max_depth: usize,
    /// Maximum number of values in the whole message.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: MAX_DEPTH,
            max_values: MAX_VALUES,
        }
    }
}

/// Decodes one msgpack value that must span all of `data`, copying byte
/// strings out of `data`. Prefer [`decode_bytes`] for frames.
pub fn decode(data: &[u8]) -> Result<Value, CodecError> {
    Reader::new(data, None, Limits::default()).run()
}

/// Like [`decode`], but bin values are zero-copy slices of `data`.
pub fn decode_bytes(data: &Bytes) -> Result<Value, CodecError> {
    decode_with_limits(data, Limits::default())
}

/// [`decode_bytes`] with explicit limits.
pub fn decode_with_limits(data: &Bytes, limits: Limits) -> Result<Value, CodecError> {
    Reader::new(data, Some(data), limits).run()
}

/// Encodes a value the way ZEO's `packb(use_bin_type=True)` does.
///
/// [`Value::Global`], [`Value::Reduce`] and [`Value::Object`] only exist in
/// pickles. The one shape a ZEO server can meet in msgpack mode is a nested
/// POSError (e.g. the `UndoError`s inside `MultipleUndoErrors`), which the Z5
/// decoder yields as
/// `Reduce { callable: Global(ZODB.POSException._recon), args: (Global(module.name), state) }`;
/// it is written as the array `["module.name", state]`, like ZEO's
/// `server_default`. (ZEO puts the instance `__dict__` there, our `state` is
/// `__reduce__`'s copy of it plus an `args` key.) Anything else is an error.
pub fn encode(v: &Value) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_into(v, &mut out)?;
    Ok(out)
}

/// [`encode`], appending to `out`. On error `out` may hold a partial value.
pub fn encode_into(v: &Value, out: &mut Vec<u8>) -> Result<(), CodecError> {
    // rmp's `ByteBuf` is a `Vec` whose writes cannot fail (error type
    // `Infallible`), so no I/O error path exists to be handled.
    let mut buf = ByteBuf::from_vec(std::mem::take(out));
    let result = Writer { out: &mut buf }.value(v, 0);
    *out = buf.into_vec();
    result
}

fn err(msg: impl Into<String>) -> CodecError {
    CodecError::Msgpack(msg.into())
}

// ---------------------------------------------------------------- decoding

/// What rmp's reader over a slice reports.
type ReadError = NumValueReadError<BytesReadError>;

/// Maps rmp's read errors to ours, naming the byte where the value started.
trait OrFail<T> {
    fn or_fail(self, at: usize) -> Result<T, CodecError>;
}

impl<T, E: Into<ReadError>> OrFail<T> for Result<T, E> {
    #[inline]
    fn or_fail(self, at: usize) -> Result<T, CodecError> {
        self.map_err(|e| read_failed(at, e.into()))
    }
}

struct Reader<'a> {
    data: &'a [u8],
    /// The `Bytes` that `data` views, for zero-copy bin slices.
    source: Option<&'a Bytes>,
    /// What is left of `data`; rmp reads from it and advances it.
    input: rd::Bytes<'a>,
    limits: Limits,
    values: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], source: Option<&'a Bytes>, limits: Limits) -> Reader<'a> {
        Reader {
            data,
            source,
            input: rd::Bytes::new(data),
            limits,
            values: 0,
        }
    }

    fn run(mut self) -> Result<Value, CodecError> {
        let v = self.value(0)?;
        if self.remaining() != 0 {
            return Err(err(format!(
                "{} trailing bytes after the value at byte {}",
                self.remaining(),
                self.pos()
            )));
        }
        Ok(v)
    }

    fn remaining(&self) -> usize {
        self.input.remaining_slice().len()
    }

    fn pos(&self) -> usize {
        self.data.len() - self.remaining()
    }

    /// The marker of the next value, without consuming it: the rmp reader
    /// for that kind of value reads it again (`rd::Bytes` is `Copy`).
    fn peek(&self) -> Result<Marker, CodecError> {
        let mut ahead = self.input;
        rd::read_marker(&mut ahead).or_fail(self.pos())
    }

    /// The next `n` bytes (a bin's or str's payload); checked against the
    /// input before anything is allocated, so a lying length costs nothing.
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let rest = self.input.remaining_slice();
        if n > rest.len() {
            return Err(truncated(self.pos(), n, rest.len()));
        }
        let (head, tail) = rest.split_at(n);
        self.input = rd::Bytes::new(tail);
        Ok(head)
    }

    /// The recursive step, kept lean (containers here, scalars and error
    /// formatting in non-inlined helpers) so the stack cost per nesting
    /// level stays small even in debug builds.
    fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(too_many_values(self.limits.max_values));
        }
        let at = self.pos();
        match self.peek()? {
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let len = rd::read_array_len(&mut self.input).or_fail(at)?;
                self.seq(len as usize, depth)
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let len = rd::read_map_len(&mut self.input).or_fail(at)?;
                self.map(len as usize, depth)
            }
            marker => self.scalar(marker, at),
        }
    }

    /// Everything but arrays and maps; `marker` is the (peeked) marker at `at`.
    #[inline(never)]
    fn scalar(&mut self, marker: Marker, at: usize) -> Result<Value, CodecError> {
        let input = &mut self.input;
        Ok(match marker {
            Marker::Null => {
                rd::read_nil(input).or_fail(at)?;
                Value::None
            }
            Marker::True | Marker::False => Value::Bool(rd::read_bool(input).or_fail(at)?),
            Marker::U64 => {
                let n = rd::read_u64(input).or_fail(at)?;
                match i64::try_from(n) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::BigInt(BigInt::from(n)),
                }
            }
            Marker::FixPos(_)
            | Marker::FixNeg(_)
            | Marker::U8
            | Marker::U16
            | Marker::U32
            | Marker::I8
            | Marker::I16
            | Marker::I32
            | Marker::I64 => Value::Int(rd::read_int(input).or_fail(at)?),
            Marker::F32 => Value::Float(f64::from(rd::read_f32(input).or_fail(at)?)),
            Marker::F64 => Value::Float(rd::read_f64(input).or_fail(at)?),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => self.str(at)?,
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let len = rd::read_bin_len(input).or_fail(at)?;
                self.bin(len as usize)?
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                return Err(err(format!(
                    "ext type (marker 0x{:02x}) at byte {at}: ZEO never sends ext values",
                    marker.to_u8()
                )))
            }
            Marker::Reserved => return Err(err(format!("reserved marker 0xc1 at byte {at}"))),
            // Arrays and maps are handled by `value`.
            Marker::FixArray(_)
            | Marker::Array16
            | Marker::Array32
            | Marker::FixMap(_)
            | Marker::Map16
            | Marker::Map32 => {
                return Err(err(format!(
                    "internal: container marker 0x{:02x} at byte {at}",
                    marker.to_u8()
                )))
            }
        })
    }

    /// Rejects a container at `depth` if it would exceed the nesting limit.
    fn enter(&self, depth: usize) -> Result<usize, CodecError> {
        if depth >= self.limits.max_depth {
            return Err(too_deep(self.limits.max_depth, self.pos()));
        }
        Ok(depth + 1)
    }

    /// Every item takes at least one byte (a map entry two), so a declared
    /// count larger than what is left is a lie; reject it before allocating.
    fn check_count(&self, what: &str, count: usize, min_bytes_each: usize) -> Result<(), CodecError> {
        if count.saturating_mul(min_bytes_each) > self.remaining() {
            return Err(lying_count(what, count, self.pos(), self.remaining()));
        }
        Ok(())
    }

    fn seq(&mut self, len: usize, depth: usize) -> Result<Value, CodecError> {
        let inner = self.enter(depth)?;
        self.check_count("array", len, 1)?;
        let mut items = Vec::with_capacity(len.min(PREALLOC_ITEMS));
        for _ in 0..len {
            items.push(self.value(inner)?);
        }
        Ok(Value::Tuple(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, CodecError> {
        let inner = self.enter(depth)?;
        self.check_count("map", len, 2)?;
        let mut items = Vec::with_capacity(len.min(PREALLOC_ITEMS));
        for _ in 0..len {
            let at = self.pos();
            let key = self.value(inner)?;
            if !matches!(key, Value::Str(_) | Value::Bytes(_)) {
                return Err(bad_key(&key, at));
            }
            let value = self.value(inner)?;
            items.push((key, value));
        }
        Ok(Value::Dict(items))
    }

    /// A bin's payload, after its header.
    fn bin(&mut self, len: usize) -> Result<Value, CodecError> {
        let start = self.pos();
        let data = self.take(len)?;
        Ok(Value::Bytes(match self.source {
            Some(source) => source.slice(start..start + len),
            None => Bytes::copy_from_slice(data),
        }))
    }

    /// A whole str at `at`: rmp reads the header, checks the length against
    /// what is left and validates the UTF-8, borrowing from the input.
    fn str(&mut self, at: usize) -> Result<Value, CodecError> {
        match rd::read_str_from_slice(self.input.remaining_slice()) {
            Ok((s, rest)) => {
                self.input = rd::Bytes::new(rest);
                Ok(Value::Str(s.to_owned()))
            }
            Err(e) => Err(str_failed(at, self.remaining(), e)),
        }
    }
}

// The error constructors are out of line so that their formatting machinery
// does not bloat the stack frames of the recursive functions.

#[cold]
#[inline(never)]
fn truncated(at: usize, needed: usize, left: usize) -> CodecError {
    err(format!(
        "truncated at byte {at}: {needed} bytes needed, {left} left"
    ))
}

/// An rmp read error for the value that starts at byte `at`. Reading from a
/// slice only fails when the input runs out; the marker was peeked before
/// the matching reader was called, so a type mismatch is a bug of ours.
#[cold]
#[inline(never)]
fn read_failed(at: usize, e: ReadError) -> CodecError {
    match e {
        NumValueReadError::InvalidMarkerRead(e) | NumValueReadError::InvalidDataRead(e) => match e {
            BytesReadError::InsufficientBytes { expected, actual, .. } => err(format!(
                "truncated value at byte {at}: {expected} more bytes needed, {actual} left"
            )),
            other => err(format!("truncated value at byte {at}: {other}")),
        },
        NumValueReadError::TypeMismatch(marker) => err(format!(
            "internal: unexpected marker 0x{:02x} at byte {at}",
            marker.to_u8()
        )),
        NumValueReadError::OutOfRange => err(format!("internal: int out of range at byte {at}")),
    }
}

#[cold]
#[inline(never)]
fn str_failed(at: usize, left: usize, e: DecodeStringError<'_, BytesReadError>) -> CodecError {
    match e {
        DecodeStringError::InvalidUtf8(_, e) => err(format!("str at byte {at} is not valid UTF-8 ({e})")),
        DecodeStringError::BufferSizeTooSmall(len) => err(format!(
            "truncated at byte {at}: str of {len} bytes but only {left} bytes left"
        )),
        DecodeStringError::InvalidMarkerRead(e) | DecodeStringError::InvalidDataRead(e) => {
            read_failed(at, NumValueReadError::InvalidDataRead(e))
        }
        DecodeStringError::TypeMismatch(marker) => read_failed(at, NumValueReadError::TypeMismatch(marker)),
    }
}

#[cold]
#[inline(never)]
fn lying_count(what: &str, count: usize, at: usize, left: usize) -> CodecError {
    err(format!(
        "truncated at byte {at}: {what} of {count} items but only {left} bytes left"
    ))
}

#[cold]
#[inline(never)]
fn too_deep(limit: usize, at: usize) -> CodecError {
    err(format!("nesting deeper than {limit} levels at byte {at}"))
}

#[cold]
#[inline(never)]
fn too_many_values(limit: usize) -> CodecError {
    err(format!("more than {limit} values in one message"))
}

#[cold]
#[inline(never)]
fn bad_key(key: &Value, at: usize) -> CodecError {
    err(format!(
        "map key of type {} at byte {at}: only str and bytes keys are allowed (strict_map_key)",
        key.type_name()
    ))
}

// ---------------------------------------------------------------- encoding

/// Unwraps the result of an rmp write into a [`ByteBuf`], which cannot fail.
trait Written<T> {
    fn written(self) -> T;
}

impl<T> Written<T> for Result<T, Infallible> {
    #[inline]
    fn written(self) -> T {
        match self {
            Ok(t) => t,
            Err(never) => match never {},
        }
    }
}

impl<T> Written<T> for Result<T, ValueWriteError<Infallible>> {
    #[inline]
    fn written(self) -> T {
        match self {
            Ok(t) => t,
            Err(ValueWriteError::InvalidMarkerWrite(never) | ValueWriteError::InvalidDataWrite(never)) => {
                match never {}
            }
        }
    }
}

struct Writer<'o> {
    out: &'o mut ByteBuf,
}

impl Writer<'_> {
    /// The recursive step, kept lean (containers only; scalars and the rare
    /// object nodes live in non-inlined helpers) so that even a debug build
    /// encodes [`MAX_ENCODE_DEPTH`] levels on a 2 MiB thread stack.
    fn value(&mut self, v: &Value, depth: usize) -> Result<(), CodecError> {
        match v {
            Value::Tuple(items) | Value::List(items) => {
                let inner = self.enter(depth)?;
                let len = len32("array", items.len())?;
                wr::write_array_len(self.out, len).written();
                for item in items {
                    self.value(item, inner)?;
                }
            }
            Value::Dict(items) => {
                let inner = self.enter(depth)?;
                let len = len32("map", items.len())?;
                wr::write_map_len(self.out, len).written();
                for (k, v) in items {
                    self.value(k, inner)?;
                    self.value(v, inner)?;
                }
            }
            Value::Reduce { callable, args } => {
                let inner = self.enter(depth)?;
                let state = self.recon_head(callable, args)?;
                self.value(state, inner)?;
            }
            scalar => self.scalar(scalar)?,
        }
        Ok(())
    }

    #[inline(never)]
    fn scalar(&mut self, v: &Value) -> Result<(), CodecError> {
        match v {
            Value::None => wr::write_nil(self.out).written(),
            Value::Bool(b) => wr::write_bool(self.out, *b).written(),
            // rmp's choice of form is msgpack-python's: non-negative ints
            // unsigned, negative ones signed, each the smallest that fits.
            Value::Int(i) => {
                wr::write_sint(self.out, *i).written();
            }
            Value::BigInt(n) => self.bigint(n)?,
            Value::Float(f) => wr::write_f64(self.out, *f).written(),
            Value::Bytes(b) => {
                len32("bytes", b.len())?;
                wr::write_bin(self.out, b).written();
            }
            Value::Str(s) => self.str(s)?,
            Value::Global { module, name } => {
                return Err(err(format!(
                    "cannot encode the pickle global {module}.{name} in msgpack"
                )))
            }
            Value::Object { class, .. } => {
                return Err(err(format!(
                    "cannot encode a pickled {} object in msgpack",
                    describe(class)
                )))
            }
            Value::Tuple(_) | Value::List(_) | Value::Dict(_) | Value::Reduce { .. } => {
                return Err(err(format!("internal: {} is not a scalar", v.type_name())))
            }
        }
        Ok(())
    }

    fn str(&mut self, s: &str) -> Result<(), CodecError> {
        len32("str", s.len())?;
        wr::write_str(self.out, s).written();
        Ok(())
    }

    /// For a nested POSError, writes the array header and the class string
    /// of `["module.name", state]` and returns `state`; refuses any other
    /// REDUCE.
    #[inline(never)]
    fn recon_head<'v>(&mut self, callable: &'v Value, args: &'v Value) -> Result<&'v Value, CodecError> {
        let Some((module, name, state)) = recon_parts(callable, args) else {
            return Err(err(format!(
                "cannot encode a pickle REDUCE of {} in msgpack (only nested POSErrors can be)",
                describe(callable)
            )));
        };
        wr::write_array_len(self.out, 2).written();
        self.str(&format!("{module}.{name}"))?;
        Ok(state)
    }

    fn enter(&self, depth: usize) -> Result<usize, CodecError> {
        if depth >= MAX_ENCODE_DEPTH {
            return Err(too_deep_to_encode());
        }
        Ok(depth + 1)
    }

    fn bigint(&mut self, n: &BigInt) -> Result<(), CodecError> {
        if let Some(u) = n.to_u64() {
            wr::write_uint(self.out, u).written();
        } else if let Some(i) = n.to_i64() {
            wr::write_sint(self.out, i).written(); // a non-normalised BigInt; harmless
        } else {
            return Err(err(format!(
                "cannot encode the int {n}: msgpack ints are at most 64 bits"
            )));
        }
        Ok(())
    }
}

/// A length as msgpack's 32-bit length field. Checked here because rmp's
/// `write_str`/`write_bin` cast the length with `as u32`, which would
/// silently write a wrong header for 4 GiB and more.
fn len32(what: &str, len: usize) -> Result<u32, CodecError> {
    u32::try_from(len).map_err(|_| too_long(what, len))
}

#[cold]
#[inline(never)]
fn too_long(what: &str, len: usize) -> CodecError {
    err(format!("{what} of length {len} is too large for msgpack"))
}

#[cold]
#[inline(never)]
fn too_deep_to_encode() -> CodecError {
    err(format!(
        "cannot encode a value nested deeper than {MAX_ENCODE_DEPTH} levels"
    ))
}

/// Matches `_recon(Global(module, name), state)`, the pickled form of a
/// nested POSError, and returns `(module, name, state)`.
fn recon_parts<'v>(callable: &'v Value, args: &'v Value) -> Option<(&'v str, &'v str, &'v Value)> {
    match (callable, args.as_seq()?) {
        (
            Value::Global { module, name },
            [Value::Global {
                module: class_module,
                name: class_name,
            }, state],
        ) if module == "ZODB.POSException" && name == "_recon" => Some((class_module, class_name, state)),
        _ => None,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Global { module, name } => format!("{module}.{name}"),
        other => other.type_name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn hexv(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn b(x: &[u8]) -> Value {
        Value::Bytes(Bytes::copy_from_slice(x))
    }

    fn msg(e: Result<impl std::fmt::Debug, CodecError>) -> String {
        match e {
            Err(CodecError::Msgpack(m)) => m,
            other => panic!("expected an M5 error, got {other:?}"),
        }
    }

    /// Payloads of the captured msgpack frames: all of s12 and connection
    /// c1 of s15, without the first frame of each direction (the handshake).
    fn captured_m5_frames() -> Vec<(String, Bytes)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/zeo-capture");
        let mut frames = Vec::new();
        for (file, only_conn) in [("s12_msgpack.txt", None), ("s15_cross_encoding.txt", Some("c1"))] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let mut seen = std::collections::HashSet::new();
            for (lineno, line) in text.lines().enumerate() {
                let mut parts = line.split(' ');
                let (Some(conn), Some(dir), Some(hexstr)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                if conn.starts_with('#') || only_conn.is_some_and(|c| c != conn) {
                    continue;
                }
                if seen.insert((conn.to_owned(), dir.to_owned())) {
                    continue; // handshake frame
                }
                let wire = hex::decode(hexstr).unwrap();
                let payload = crate::framing::split_frames(&wire).unwrap();
                assert_eq!(payload.len(), 1);
                frames.push((format!("{file}:{}", lineno + 1), payload[0].clone()));
            }
        }
        frames
    }

    #[test]
    fn captured_frames_roundtrip_byte_identically() {
        let frames = captured_m5_frames();
        assert_eq!(frames.len(), 55);
        for (at, payload) in &frames {
            let v = decode_bytes(payload).unwrap_or_else(|e| panic!("{at}: {e}"));
            let items = match &v {
                Value::Tuple(items) => items,
                other => panic!("{at}: not an array: {other:?}"),
            };
            assert_eq!(items.len(), 4, "{at}");
            assert_eq!(encode(&v).unwrap(), &payload[..], "{at}");
            assert_eq!(decode(payload).unwrap(), v, "{at}");
        }
    }

    #[test]
    fn captured_poskeyerror_reply() {
        // capture s12 c1, without the length prefix.
        let payload = Bytes::from(hexv(
            "9492c4080000000000000000c408000000000000000102a62e7265706c7992bd5a4f44422e504f53457863\
             657074696f6e2e504f534b65794572726f7291c4080000000000000000",
        ));
        let z64 = b(&[0; 8]);
        let expected = Value::tuple([
            Value::tuple([z64.clone(), b(&[0, 0, 0, 0, 0, 0, 0, 1])]),
            Value::Int(2),
            s(".reply"),
            Value::tuple([s("ZODB.POSException.POSKeyError"), Value::tuple([z64])]),
        ]);
        assert_eq!(decode_bytes(&payload).unwrap(), expected);
        assert_eq!(encode(&expected).unwrap(), &payload[..]);
    }

    #[test]
    fn bins_are_zero_copy_slices_of_the_frame() {
        let payload = Bytes::from(hexv("92c403616263c0"));
        let v = decode_bytes(&payload).unwrap();
        let Value::Tuple(items) = v else { panic!() };
        let Value::Bytes(data) = &items[0] else { panic!() };
        assert_eq!(&data[..], b"abc");
        let range = payload.as_ptr_range();
        assert!(range.contains(&data.as_ptr()));
    }

    #[test]
    fn lists_and_tuples_encode_as_arrays_and_decode_as_tuples() {
        let list = Value::List(vec![Value::Int(1), Value::List(vec![])]);
        let wire = encode(&list).unwrap();
        assert_eq!(wire, hexv("92 01 90"));
        assert_eq!(
            decode(&wire).unwrap(),
            Value::tuple([Value::Int(1), Value::tuple([])])
        );
    }

    #[test]
    fn int_encodings_match_msgpack_python() {
        // msgpack.packb(n) for each n.
        for (n, wire) in [
            (0, "00"),
            (127, "7f"),
            (128, "cc80"),
            (255, "ccff"),
            (256, "cd0100"),
            (65535, "cdffff"),
            (65536, "ce00010000"),
            (4294967295, "ceffffffff"),
            (4294967296, "cf0000000100000000"),
            (i64::MAX, "cf7fffffffffffffff"),
            (-1, "ff"),
            (-32, "e0"),
            (-33, "d0df"),
            (-128, "d080"),
            (-129, "d1ff7f"),
            (-32768, "d18000"),
            (-32769, "d2ffff7fff"),
            (-2147483648, "d280000000"),
            (-2147483649, "d3ffffffff7fffffff"),
            (i64::MIN, "d38000000000000000"),
        ] {
            let v = Value::Int(n);
            assert_eq!(encode(&v).unwrap(), hexv(wire), "{n}");
            assert_eq!(decode(&hexv(wire)).unwrap(), v, "{n}");
        }
        // Non-minimal encodings from other producers decode too.
        assert_eq!(decode(&hexv("d000")).unwrap(), Value::Int(0));
        assert_eq!(decode(&hexv("cf0000000000000005")).unwrap(), Value::Int(5));
        assert_eq!(decode(&hexv("d3ffffffffffffffff")).unwrap(), Value::Int(-1));
    }

    #[test]
    fn big_ints() {
        let max = Value::BigInt(BigInt::from(u64::MAX));
        assert_eq!(decode(&hexv("cfffffffffffffffff")).unwrap(), max);
        assert_eq!(encode(&max).unwrap(), hexv("cfffffffffffffffff"));
        let just_above = Value::from_bigint(BigInt::from(i64::MAX) + 1);
        assert_eq!(encode(&just_above).unwrap(), hexv("cf8000000000000000"));
        assert_eq!(decode(&hexv("cf8000000000000000")).unwrap(), just_above);
        // Beyond 64 bits: msgpack cannot carry it (Python: OverflowError).
        let too_big = Value::BigInt(BigInt::from(u64::MAX) + 1);
        assert!(msg(encode(&too_big)).contains("64 bits"));
        let too_small = Value::BigInt(BigInt::from(i64::MIN) - 1);
        assert!(msg(encode(&too_small)).contains("64 bits"));
        // A non-normalised BigInt still encodes as the int it is.
        assert_eq!(encode(&Value::BigInt(BigInt::from(-5))).unwrap(), hexv("fb"));
    }

    #[test]
    fn scalars() {
        assert_eq!(encode(&Value::None).unwrap(), hexv("c0"));
        assert_eq!(encode(&Value::Bool(false)).unwrap(), hexv("c2"));
        assert_eq!(encode(&Value::Bool(true)).unwrap(), hexv("c3"));
        assert_eq!(encode(&Value::Float(1.5)).unwrap(), hexv("cb3ff8000000000000"));
        assert_eq!(decode(&hexv("cb3ff8000000000000")).unwrap(), Value::Float(1.5));
        assert_eq!(decode(&hexv("ca3fc00000")).unwrap(), Value::Float(1.5));
        for v in [Value::None, Value::Bool(true), Value::Bool(false)] {
            assert_eq!(decode(&encode(&v).unwrap()).unwrap(), v);
        }
    }

    #[test]
    fn string_and_bytes_length_forms() {
        // use_bin_type=True: str8 (d9) exists, bin8 (c4) for every short bytes.
        for (len, prefix) in [
            (0, "a0"),
            (31, "bf"),
            (32, "d920"),
            (255, "d9ff"),
            (256, "da0100"),
            (65536, "db00010000"),
        ] {
            let v = Value::Str("x".repeat(len));
            let wire = encode(&v).unwrap();
            assert!(wire.starts_with(&hexv(prefix)), "str {len}");
            assert_eq!(wire.len(), len + prefix.len() / 2);
            assert_eq!(decode(&wire).unwrap(), v);
        }
        for (len, prefix) in [(0, "c400"), (255, "c4ff"), (256, "c50100"), (65536, "c600010000")] {
            let v = b(&vec![7u8; len]);
            let wire = encode(&v).unwrap();
            assert!(wire.starts_with(&hexv(prefix)), "bytes {len}");
            assert_eq!(decode(&wire).unwrap(), v);
        }
        // Arrays and maps have no 8-bit length form.
        let arr = Value::Tuple(vec![Value::None; 16]);
        assert!(encode(&arr).unwrap().starts_with(&hexv("dc0010")));
        let map = Value::Dict((0..16).map(|i| (s(&i.to_string()), Value::None)).collect());
        assert!(encode(&map).unwrap().starts_with(&hexv("de0010")));
        assert_eq!(decode(&encode(&map).unwrap()).unwrap(), map);
        // packb([None] * n) at the array16 / array32 switch.
        for (len, prefix) in [(15, "9f"), (65535, "dcffff"), (65536, "dd00010000")] {
            let wire = encode(&Value::List(vec![Value::None; len])).unwrap();
            assert_eq!(wire[..prefix.len() / 2], hexv(prefix), "array {len}");
            assert_eq!(wire.len(), len + prefix.len() / 2);
        }
    }

    #[test]
    fn invalid_utf8_str_is_an_error() {
        assert!(msg(decode(&hexv("a2c328"))).contains("UTF-8"));
        // An encoded surrogate is not UTF-8 either (Python agrees).
        assert!(msg(decode(&hexv("a3eda080"))).contains("UTF-8"));
    }

    #[test]
    fn maps_keep_wire_order_and_require_str_or_bytes_keys() {
        let wire = hexv("83 a1 62 01 a1 61 02 c4 01 00 03");
        assert_eq!(
            decode(&wire).unwrap(),
            Value::Dict(vec![
                (s("b"), Value::Int(1)),
                (s("a"), Value::Int(2)),
                (b(&[0]), Value::Int(3))
            ])
        );
        for bad in ["81 01 02", "81 c0 02", "81 91 01 02", "81 80 02", "81 c3 c0"] {
            assert!(msg(decode(&hexv(bad))).contains("map key"), "{bad}");
        }
    }

    #[test]
    fn ext_reserved_and_trailing_bytes_are_errors() {
        for ext in [
            "d40100",
            "d5010000",
            "c70101ff",
            "c8000101ff",
            "c900000001 01 ff",
            "d6ff00000000",
        ] {
            assert!(msg(decode(&hexv(ext))).contains("ext"), "{ext}");
        }
        assert!(msg(decode(&hexv("c1"))).contains("reserved"));
        assert!(msg(decode(&hexv("91 c1"))).contains("reserved"));
        assert!(msg(decode(&hexv("c0 c0"))).contains("trailing"));
        assert!(msg(decode(&[])).contains("truncated"));
    }

    #[test]
    fn truncated_inputs_are_errors() {
        let whole = encode(&Value::tuple([
            Value::Int(1),
            Value::Bool(false),
            s("register"),
            Value::tuple([s("1"), Value::Int(-300), Value::Float(2.0), b(b"xyz")]),
        ]))
        .unwrap();
        for n in 0..whole.len() {
            assert!(decode(&whole[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn lying_lengths_are_rejected_before_allocating() {
        // 4-Gi items / bytes announced, a few bytes present.
        for wire in [
            "dd ffffffff c0c0c0",
            "df ffffffff c0c0c0",
            "c6 ffffffff 0102",
            "db ffffffff 6162",
            "dc ffff c0",
            "de 8000 a161c0",
            "91 dd 7fffffff",
        ] {
            assert!(msg(decode(&hexv(wire))).contains("truncated"), "{wire}");
        }
        // A map needs two bytes per entry.
        assert!(msg(decode(&hexv("82 a161c0 a162"))).contains("truncated"));
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |levels: usize| {
            let mut w = vec![0x91u8; levels];
            w.push(0xc0);
            w
        };
        assert!(decode(&nested(MAX_DEPTH)).is_ok());
        assert!(msg(decode(&nested(MAX_DEPTH + 1))).contains("nesting"));
        // Far deeper than any stack could recurse: rejected at level 101.
        assert!(msg(decode(&nested(1_000_000))).contains("nesting"));
        let maps = |levels: usize| {
            let mut w = Vec::new();
            for _ in 0..levels {
                w.extend_from_slice(&[0x81, 0xa1, b'k']);
            }
            w.push(0xc0);
            w
        };
        assert!(decode(&maps(MAX_DEPTH)).is_ok());
        assert!(msg(decode(&maps(MAX_DEPTH + 1))).contains("nesting"));
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        assert!(decode_with_limits(&Bytes::from(nested(2)), limits).is_ok());
        assert!(decode_with_limits(&Bytes::from(nested(3)), limits).is_err());
    }

    #[test]
    fn value_count_is_bounded() {
        let mut wire = vec![0xdc, 0x00, 0x0a];
        wire.extend_from_slice(&[0xc0; 10]);
        let wire = Bytes::from(wire);
        let limits = |max_values| Limits {
            max_values,
            ..Limits::default()
        };
        assert!(decode_with_limits(&wire, limits(11)).is_ok());
        assert!(msg(decode_with_limits(&wire, limits(10))).contains("values"));
    }

    #[test]
    fn encode_depth_is_bounded() {
        let mut v = Value::None;
        for _ in 0..MAX_ENCODE_DEPTH {
            v = Value::List(vec![v]);
        }
        assert!(encode(&v).is_ok());
        let v = Value::List(vec![v]);
        assert!(msg(encode(&v)).contains("deeper"));
    }

    fn global(module: &str, name: &str) -> Value {
        Value::Global {
            module: module.into(),
            name: name.into(),
        }
    }

    #[test]
    fn nested_poserror_is_flattened_like_server_default() {
        let state = Value::Dict(vec![
            (s("_oid"), b(&[0; 8])),
            (s("args"), Value::tuple([s("Undo error")])),
        ]);
        let undo_error = Value::Reduce {
            callable: Box::new(global("ZODB.POSException", "_recon")),
            args: Box::new(Value::tuple([
                global("ZODB.POSException", "UndoError"),
                state.clone(),
            ])),
        };
        let reply = Value::Dict(vec![(
            s("_errs"),
            Value::List(vec![Value::tuple([b(&[0; 8]), undo_error])]),
        )]);
        let wire = encode(&reply).unwrap();
        let expected = Value::Dict(vec![(
            s("_errs"),
            Value::tuple([Value::tuple([
                b(&[0; 8]),
                Value::tuple([s("ZODB.POSException.UndoError"), state]),
            ])]),
        )]);
        assert_eq!(decode(&wire).unwrap(), expected);
    }

    #[test]
    fn other_pickle_objects_are_refused() {
        assert!(msg(encode(&global("builtins", "set"))).contains("builtins.set"));
        let reduce = Value::Reduce {
            callable: Box::new(global("builtins", "set")),
            args: Box::new(Value::tuple([Value::List(vec![])])),
        };
        assert!(msg(encode(&reduce)).contains("builtins.set"));
        // _recon with a malformed argument tuple is not flattened either.
        let bad_recon = Value::Reduce {
            callable: Box::new(global("ZODB.POSException", "_recon")),
            args: Box::new(Value::tuple([s("ZODB.POSException.UndoError"), Value::None])),
        };
        assert!(encode(&bad_recon).is_err());
        let prefix = Value::Object {
            class: Box::new(global("ZopeUndo.Prefix", "Prefix")),
            args: Box::new(Value::tuple([])),
            state: None,
        };
        assert!(msg(encode(&prefix)).contains("ZopeUndo.Prefix.Prefix"));
    }
}
