//! Fixed-size identifiers of ZODB: oids and tids are 8-byte big-endian
//! strings on the wire. They are checked to be exactly 8 bytes when a
//! message is decoded, so no member ever sees a malformed one (a ZEO 6.2
//! server accepts a 3-byte oid at vote and corrupts its FileStorage at
//! `tpc_finish`).

use std::fmt;

/// An 8-byte ZODB identifier (oid or tid).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct P64(pub [u8; 8]);

/// An object id.
pub type Oid = P64;
/// A transaction id (also a serial).
pub type Tid = P64;

impl P64 {
    pub const ZERO: P64 = P64([0; 8]);
    /// The largest tid ZODB uses (`maxtid`), e.g. in `load(oid)` = `loadBefore(oid, maxtid)`.
    pub const MAX_TID: P64 = P64([0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

    pub fn from_u64(n: u64) -> P64 {
        P64(n.to_be_bytes())
    }

    pub fn as_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// `None` unless `b` is exactly 8 bytes long.
    pub fn from_slice(b: &[u8]) -> Option<P64> {
        <[u8; 8]>::try_from(b).ok().map(P64)
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for P64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}

impl fmt::Display for P64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}
