//! Blob content spooled to disk: a client's upload until its transaction
//! votes, and a blob recovery copies between the source's `sendBlob` and
//! the target's upload.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

/// The chunk size ZEO uses for blob transfers (both directions): a
/// ClientStorage uploads in chunks of this size, and members receive them so.
pub const BLOB_CHUNK: usize = 59_000;

/// Name prefix of spool files, so a restarted zeoraid can remove the ones a
/// crashed process left.
pub const SPOOL_PREFIX: &str = "zeoraid-blob-";

/// A spool file younger than this is never judged stale: it may be between
/// its creation and its lock.
const FRESH: Duration = Duration::from_secs(60);

/// A blob spooled to a file in the configured spool dir, so a blob costs
/// disk, not memory, whatever its size. The file is removed when the blob is
/// dropped (for an upload: its transaction finished, was aborted, or its
/// client went away).
#[derive(Debug)]
pub struct SpooledBlob {
    file: tempfile::NamedTempFile,
    /// The content as it was appended, so what was received can be checked
    /// against what is read back or stored elsewhere.
    hasher: BlobHasher,
}

/// A blob's size and SHA-256: what a copy checks its blob files by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlobDigest {
    pub size: u64,
    pub sha256: [u8; 32],
}

impl fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes, sha256 ", self.size)?;
        self.sha256.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Hashes a blob chunk by chunk, as it streams by: nothing is buffered.
#[derive(Clone, Debug, Default)]
pub struct BlobHasher {
    size: u64,
    sha256: Sha256,
}

impl BlobHasher {
    pub fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.sha256.update(chunk);
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn digest(&self) -> BlobDigest {
        BlobDigest {
            size: self.size,
            sha256: self.sha256.clone().finalize().into(),
        }
    }
}

impl SpooledBlob {
    /// A new spool file in `dir`, locked (`flock`) for as long as it
    /// lives, so another zeoraid sharing the directory (the default is the
    /// system temporary directory) never takes it for a crashed one's.
    pub fn create(dir: &Path) -> std::io::Result<SpooledBlob> {
        let file = tempfile::Builder::new().prefix(SPOOL_PREFIX).tempfile_in(dir)?;
        file.as_file().try_lock().map_err(std::io::Error::from)?;
        Ok(SpooledBlob {
            file,
            hasher: BlobHasher::default(),
        })
    }

    /// Appends a chunk. The write goes to the page cache (no fsync): the
    /// spool only has to outlive its transaction or copy, not a crash.
    /// A failed append leaves the file as it was (what part of the chunk
    /// was written is cut off again), so the offsets of later appends stay
    /// right if the caller goes on.
    pub fn append(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if let Err(e) = self.file.write_all(chunk) {
            let size = self.size();
            let file = self.file.as_file_mut();
            file.set_len(size)?;
            file.seek(std::io::SeekFrom::Start(size))?;
            return Err(e);
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// `len` bytes from offset `at` (a spilled record), through the file's
    /// own handle: positioned reads do not move anyone's cursor.
    pub fn read_at(&self, at: u64, len: usize) -> std::io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut data = vec![0; len];
        self.file.as_file().read_exact_at(&mut data, at)?;
        Ok(Bytes::from(data))
    }

    /// The content's size in bytes.
    pub fn size(&self) -> u64 {
        self.hasher.size()
    }

    /// The size and SHA-256 of what was appended.
    pub fn digest(&self) -> BlobDigest {
        self.hasher.digest()
    }

    /// Reads the content back from the start in chunks of ZEO's blob chunk
    /// size, through a handle of its own: a blob shared by several votes
    /// can be read by each.
    pub fn chunks(&self) -> std::io::Result<BlobChunks> {
        let mut file = self.file.reopen()?;
        file.rewind()?;
        Ok(BlobChunks {
            file,
            left: self.size(),
        })
    }
}

/// Whether `path`, named like a spool file, was left by a zeoraid that is
/// gone: nobody holds its lock, and it is not brand new.
pub fn is_stale_spool(path: &Path) -> std::io::Result<bool> {
    let file = File::open(path)?;
    let age = file.metadata()?.modified()?.elapsed().unwrap_or_default();
    if age < FRESH {
        return Ok(false);
    }
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// The chunks of a [`SpooledBlob`], read one at a time: a reader holds one
/// chunk in memory, not the blob.
pub struct BlobChunks {
    file: File,
    left: u64,
}

impl Iterator for BlobChunks {
    type Item = std::io::Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let n = self.left.min(BLOB_CHUNK as u64) as usize;
        let mut chunk = vec![0; n];
        if let Err(e) = self.file.read_exact(&mut chunk) {
            self.left = 0;
            return Some(Err(e));
        }
        self.left -= n as u64;
        Some(Ok(Bytes::from(chunk)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spooled_blob_reads_back_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut blob = SpooledBlob::create(dir.path()).unwrap();
        let data: Vec<u8> = (0..(2 * BLOB_CHUNK + 10)).map(|i| (i % 251) as u8).collect();
        blob.append(&data[..1000]).unwrap();
        blob.append(&data[1000..]).unwrap();
        assert_eq!(blob.size(), data.len() as u64);
        for _ in 0..2 {
            let mut back = Vec::new();
            let mut sizes = Vec::new();
            for chunk in blob.chunks().unwrap() {
                let chunk = chunk.unwrap();
                sizes.push(chunk.len());
                back.extend_from_slice(&chunk);
            }
            assert_eq!(sizes, vec![BLOB_CHUNK, BLOB_CHUNK, 10]);
            assert!(back == data);
            let mut hasher = BlobHasher::default();
            hasher.update(&back);
            assert_eq!(hasher.digest(), blob.digest());
        }
    }
    #[test]
    fn digests_name_size_and_content() {
        let mut empty = BlobHasher::default();
        assert_eq!(
            empty.digest().to_string(),
            "0 bytes, sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut abc = BlobHasher::default();
        abc.update(b"ab");
        abc.update(b"c");
        empty.update(b"abd");
        assert_eq!(abc.size(), 3);
        assert_ne!(abc.digest(), empty.digest());
    }
}
