//! Valid ZODB records for tests that write through the raw protocol.

/// The root object as ZODB writes it: a `PersistentMapping` with empty data
/// (the 64-byte record of capture s02 c1). Valid for pack's reference scan
/// and for a real ZODB client that opens the database afterwards.
pub const ROOT_RECORD: &[u8] =
    b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03s.";

/// A `PersistentMapping` record whose `data` maps `"x"` to `size` bytes of
/// `fill`: a valid record of any size (pack scans it for references).
pub fn mapping_record(size: usize, fill: u8) -> Vec<u8> {
    let length = u32::try_from(size).expect("a record under 4 GiB");
    let mut record = b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.".to_vec();
    record.extend_from_slice(b"\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03X\x01\x00\x00\x00xq\x04B");
    record.extend_from_slice(&length.to_le_bytes());
    record.resize(record.len() + size, fill);
    record.extend_from_slice(b"q\x05ss.");
    record
}
