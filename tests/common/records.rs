//! Valid ZODB records for tests that write through the raw protocol.

/// The root object as ZODB writes it: a `PersistentMapping` with empty data
/// (the 64-byte record of capture s02 c1). Valid for pack's reference scan
/// and for a real ZODB client that opens the database afterwards.
pub const ROOT_RECORD: &[u8] =
    b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03s.";
