//! The ZEO 5/6 wire protocol ("protocol 5"), both directions, as specified in
//! `docs/zeo-protocol.md` and checked against real
//! captures (`tests/fixtures/zeo-capture`).
//!
//! Layers, bottom up:
//! - [`framing`]: 4-byte big-endian length prefix, bounded frame size;
//!   [`oversized`]: frames over the bound read past, for member connections.
//! - [`handshake`]: the `Z5`/`M5` protocol negotiation and the `ruok` probe.
//! - [`value`]: the codec-neutral value model.
//! - [`pickle`] (Z5) and [`msgpack`] (M5): value <-> bytes; [`encoding`] picks one.
//! - [`message`]: the `(msgid, flags, name, args)` envelope.
//! - [`methods`], [`reply`], [`callbacks`], [`exceptions`]: the typed layer.
//! - [`fast_path`]: the hottest frames (`loadBefore`, `storea`, `vote`,
//!   `tpc_finish`, `tpc_abort`, and their plain replies) read and written
//!   without a value tree (the generic path's subset, byte for byte).
//!
//! This crate knows nothing about actors, RAID or configuration. Application
//! records (ZODB pickles) are opaque bytes here and are never unpickled.

pub mod callbacks;
pub mod encoding;
pub mod error;
pub mod exceptions;
pub mod fast_path;
pub mod framing;
pub mod handshake;
pub mod message;
pub mod methods;
pub mod msgpack;
pub mod oversized;
pub mod pickle;
pub mod reply;
pub mod types;
pub mod value;

pub use error::{CodecError, PickleError};
pub use value::Value;
