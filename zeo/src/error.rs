//! Errors of the wire layer. Every malformed input ends in one of these,
//! never in a panic: a frame from the network is untrusted input.

use thiserror::Error;

/// Why a pickle could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PickleError {
    #[error("truncated pickle at byte {offset}")]
    Truncated { offset: usize },
    #[error("unknown or unsupported pickle opcode 0x{opcode:02x} at byte {offset}")]
    UnknownOpcode { opcode: u8, offset: usize },
    #[error("unsupported pickle protocol {protocol} (ZEO speaks protocols 0 to 3)")]
    UnsupportedProtocol { protocol: u8 },
    #[error("pickle nesting deeper than {limit} levels at byte {offset}")]
    TooDeep { limit: usize, offset: usize },
    #[error("pickle builds more than {limit} values")]
    TooManyValues { limit: usize },
    #[error("forbidden pickle global {module}.{name} at byte {offset}")]
    ForbiddenGlobal {
        module: String,
        name: String,
        offset: usize,
    },
    #[error("malformed pickle at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    #[error("pickle has no STOP opcode")]
    MissingStop,
    #[error("trailing bytes after pickle STOP at byte {offset}")]
    TrailingBytes { offset: usize },
    #[error("cannot pickle: {0}")]
    Unencodable(String),
}

/// Everything the wire layer can reject.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CodecError {
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("zero-length frame")]
    EmptyFrame,
    #[error("Z5 (pickle): {0}")]
    Pickle(#[from] PickleError),
    #[error("M5 (msgpack): {0}")]
    Msgpack(String),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("bad message envelope: {0}")]
    Envelope(String),
    #[error("{method}: expected {expected} arguments, got {got}")]
    Arity {
        method: String,
        expected: String,
        got: usize,
    },
    #[error("{method}: argument {index} ({name}): {problem}")]
    Argument {
        method: String,
        index: usize,
        name: &'static str,
        problem: String,
    },
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    #[error("reply to {method}: {problem}")]
    Reply { method: String, problem: String },
    #[error("I/O: {0}")]
    Io(String),
}

impl From<std::io::Error> for CodecError {
    fn from(e: std::io::Error) -> Self {
        CodecError::Io(e.to_string())
    }
}
