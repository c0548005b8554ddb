//! Blob records during a copy: recognising them (their content is held in
//! a [`crate::transaction::SpooledBlob`] between the source's `sendBlob` and
//! the target's upload).
//!
//! ZEO has no `restoreBlob`: a blob record can only reach another server as
//! `storeBlobStart/Chunk/End` (`docs/zeo-protocol.md#restores`). So recovery must know
//! which records are blobs, and this is the one place where zeoraid looks
//! into an application record. It decides exactly as ZODB's own
//! `ZODB.blob.is_blob_record` (what `copyTransactionsFrom` uses): the
//! record's first pickle (the class) is the global `ZODB.blob.Blob` itself,
//! nothing else. Subclasses of `Blob` are not blob records for ZODB either.

const PROTO: u8 = 0x80;
const FRAME: u8 = 0x95;
const GLOBAL: u8 = b'c';
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE: u8 = b'X';
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const PUT: u8 = b'p';
const STOP: u8 = b'.';

/// Whether `record` (a ZODB data record: class pickle + state pickle) is a
/// blob, as ZODB's `is_blob_record` decides: its first pickle loads to the
/// class `ZODB.blob.Blob`. Only the opcodes a pickler emits for a bare
/// global are accepted (protocols 0-4); anything else is not a blob.
pub fn is_blob_record(record: &[u8]) -> bool {
    if !contains(record, b"ZODB.blob") {
        return false;
    }
    let mut s = Scanner { data: record, pos: 0 };
    s.first_pickle_is_blob_class().is_some()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

struct Scanner<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let slice = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    fn line(&mut self) -> Option<&[u8]> {
        let rest = self.data.get(self.pos..)?;
        let n = rest.iter().position(|&b| b == b'\n')?;
        self.pos += n + 1;
        Some(&rest[..n])
    }

    /// A string pushed by SHORT_BINUNICODE or BINUNICODE, then an optional memo opcode.
    fn unicode(&mut self) -> Option<&[u8]> {
        let len = match self.byte()? {
            SHORT_BINUNICODE => self.byte()? as usize,
            BINUNICODE => u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize,
            _ => return None,
        };
        let start = self.pos;
        self.take(len)?;
        let end = self.pos;
        self.memo()?;
        self.data.get(start..end)
    }

    /// Skips one optional memo opcode (`None` only if it is truncated).
    fn memo(&mut self) -> Option<()> {
        match self.peek() {
            Some(MEMOIZE) => self.pos += 1,
            Some(BINPUT) => {
                self.take(2)?;
            }
            Some(LONG_BINPUT) => {
                self.take(5)?;
            }
            Some(PUT) => {
                self.pos += 1;
                self.line()?;
            }
            _ => {}
        }
        Some(())
    }

    fn first_pickle_is_blob_class(&mut self) -> Option<()> {
        if self.peek() == Some(PROTO) {
            self.take(2)?;
        }
        if self.peek() == Some(FRAME) {
            self.take(9)?;
        }
        match self.peek()? {
            GLOBAL => {
                self.pos += 1;
                (self.line()? == b"ZODB.blob").then_some(())?;
                (self.line()? == b"Blob").then_some(())?;
            }
            SHORT_BINUNICODE | BINUNICODE => {
                (self.unicode()? == b"ZODB.blob").then_some(())?;
                (self.unicode()? == b"Blob").then_some(())?;
                (self.byte()? == STACK_GLOBAL).then_some(())?;
            }
            _ => return None,
        }
        self.memo()?;
        (self.byte()? == STOP).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zodb_blob_records_are_recognised() {
        // What ZODB 6 writes for a Blob (zodbpickle protocol 3), from a real storage.
        assert!(is_blob_record(b"\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N."));
        // Protocol 1/2 without memo, protocol 0 with a text PUT.
        assert!(is_blob_record(b"\x80\x02cZODB.blob\nBlob\n.N."));
        assert!(is_blob_record(b"cZODB.blob\nBlob\np0\n.N."));
        // Protocol 4: frame, short unicode strings, memoize, stack global.
        let mut p4 = vec![0x80, 4, 0x95];
        p4.extend_from_slice(&20u64.to_le_bytes());
        p4.extend_from_slice(b"\x8c\x09ZODB.blob\x94\x8c\x04Blob\x94\x93\x94.");
        p4.extend_from_slice(b"\x80\x04N.");
        assert!(is_blob_record(&p4));
    }

    #[test]
    fn other_records_are_not_blobs() {
        assert!(!is_blob_record(b""));
        assert!(!is_blob_record(
            b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00."
        ));
        // A subclass, or a (class, args) tuple: ZODB's is_blob_record says no.
        assert!(!is_blob_record(b"\x80\x03cmyapp.files\nBlob\nq\x00."));
        assert!(!is_blob_record(b"\x80\x03cZODB.blob\nBlobFile\nq\x00."));
        assert!(!is_blob_record(b"\x80\x03cZODB.blob\nBlob\nq\x00N\x86q\x01."));
        // The module name inside the state, not the class.
        assert!(!is_blob_record(
            b"\x80\x03cfoo\nBar\nq\x00.\x80\x03X\x09\x00\x00\x00ZODB.blobq\x01."
        ));
        // Truncated input never panics.
        let full = b"\x80\x03cZODB.blob\nBlob\nq\x00.";
        for n in 0..full.len() {
            assert!(!is_blob_record(&full[..n]), "{n}");
        }
    }
}
