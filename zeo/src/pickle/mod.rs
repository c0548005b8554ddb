//! The Z5 encoding: Python pickles as ZEO writes and reads them.
//!
//! ZEO encodes every message with `zodbpickle`'s pickler, protocol 3, in
//! "fast" mode (no memo, no FRAME) and decodes with an unpickler that
//! accepts protocols 0 to 3 (`docs/zeo-protocol.md#encodings`).
//!
//! Why our own decoder and encoder rather than `serde-pickle` on the hot
//! path (measured against the captures; ARCHITECTURE.md section 2.3):
//! - serde-pickle's decoder recurses per nesting level: a 1.4 KB frame of
//!   nested lists overflows a 2 MiB worker stack and *aborts the process*.
//!   Ours is an explicit stack machine with a depth bound checked while
//!   building, so there is nothing to pre-scan and nothing to overflow.
//! - It cannot keep `GLOBAL`/`REDUCE` objects (MultipleUndoErrors replies)
//!   and sorts dict keys; ours keeps both as data ([`Value::Global`],
//!   [`Value::Reduce`], dicts in wire order).
//! - Byte strings are sliced out of the frame ([`bytes::Bytes`]) instead of
//!   copied, so records pass through the proxy without a copy.
//! - Its encoder is valid but not byte-identical to ZEO's (always BININT,
//!   always MARK..APPENDS); ours emits exactly what `zodbpickle` emits, so
//!   re-encoded captures match byte for byte.
//!
//! serde-pickle stays in the project as an independent oracle: the tests
//! check that it decodes our encoder's output to the same values (see
//! `zeo/tests/pickle_props.rs`).
//!
//! Security: unpickling never resolves or executes anything. `GLOBAL` is
//! accepted only for the names in [`Limits::allow_global`] (the exception
//! classes ZEO puts into error replies, and `ZopeUndo.Prefix` for `undoInfo`
//! filters); anything else is a decode error.

mod decode;
mod encode;

pub use decode::decode_with;
pub use encode::{encode_into, save_into, MAX_ENCODE_DEPTH};

use crate::error::PickleError;
use crate::value::Value;
use bytes::Bytes;

/// Default bound on the values one message may build (the msgpack decoder
/// uses the same number).
pub const MAX_VALUES: usize = 16 << 20;

/// Bounds applied while decoding untrusted pickles.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Maximum nesting of containers (and of open MARKs). ZEO messages nest
    /// about 5 deep; 100 leaves room and keeps recursive code on decoded
    /// values (drop, clone, encode) far from any stack limit.
    pub max_depth: usize,
    /// Maximum number of values that memo `GET`s may copy, counted in nodes
    /// plus string bytes. Without memo opcodes (ZEO's own encoder never
    /// emits them) a pickle cannot build more values than it has bytes; with
    /// them, a small pickle could ask for exponentially many copies.
    pub max_copied: usize,
    /// Maximum number of values one pickle may build (the same bound as the
    /// msgpack decoder's). A one-byte opcode makes a ~48-byte value, so
    /// without it a 256 MiB frame could cost ~12 GiB. The largest real ZEO
    /// messages (invalidations of a huge transaction) hold about one value
    /// per changed object.
    pub max_values: usize,
    /// Which `GLOBAL module name` references may be decoded (as data).
    pub allow_global: fn(&str, &str) -> bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 100,
            max_copied: 1 << 20,
            max_values: MAX_VALUES,
            allow_global: zeo_global_allowed,
        }
    }
}

/// The exception classes a ZEO server pickles into error replies (via
/// `POSError.__reduce__` -> `ZODB.POSException._recon`), the one class a
/// client may send (`ZopeUndo.Prefix` inside `undoInfo` specifications), and
/// `builtins.dict` as a constructor of plain dicts.
pub fn zeo_global_allowed(module: &str, name: &str) -> bool {
    const POS_EXCEPTIONS: &[&str] = &[
        "_recon",
        "POSError",
        "POSKeyError",
        "ConflictError",
        "ReadConflictError",
        "BTreesConflictError",
        "DanglingReferenceError",
        "VersionError",
        "VersionCommitError",
        "UndoError",
        "MultipleUndoErrors",
        "StorageError",
        "StorageTransactionError",
        "StorageSystemError",
        "MountedStorageError",
        "ReadOnlyError",
        "TransactionError",
        "TransactionFailedError",
        "InvalidObjectReference",
        "ConnectionStateError",
        "Unsupported",
        "ReadOnlyHistoryError",
    ];
    match module {
        "ZODB.POSException" => POS_EXCEPTIONS.contains(&name),
        "ZopeUndo.Prefix" => name == "Prefix",
        // Only ever as `dict(pairs)`, which the decoder turns into a plain
        // dict (transaction extensions of dict subclasses).
        "builtins" => name == "dict",
        _ => false,
    }
}

/// Decodes one pickle with the default [`Limits`].
pub fn decode(data: &Bytes) -> Result<Value, PickleError> {
    decode_with(data, &Limits::default())
}

/// Encodes a value as ZEO does: protocol 3, no memo, ZEO's opcode choices.
pub fn encode(v: &Value) -> Result<Vec<u8>, PickleError> {
    let mut out = Vec::with_capacity(64);
    encode_into(v, &mut out)?;
    Ok(out)
}
