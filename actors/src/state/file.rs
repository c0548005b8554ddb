//! The local backend: `array.json` under `state_dir`, replaced atomically
//! (a temporary file written and synced, renamed over it, the directory
//! synced), and a `lock` file held locked for the life of the process, so
//! that a second zeoraid on the same `state_dir` refuses to start.

use super::{ArrayRecord, StateError, StateStore, FORMAT};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "array.json";
const LOCK_FILE: &str = "lock";

pub struct FileStore {
    dir: PathBuf,
    path: PathBuf,
    /// Held open (and locked) as long as the store lives.
    _lock: File,
    /// The lock file was there before: the directory held an array's
    /// state, so a missing state file was removed, not never written.
    used_before: bool,
}

impl FileStore {
    /// Takes `dir` for this zeoraid (creating it on a first start).
    pub fn open(dir: &Path) -> Result<FileStore, StateError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let used_before = lock_path.exists();
        let mut lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                return Err(StateError::Locked {
                    dir: dir.to_owned(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(StateError::Io {
                    path: lock_path,
                    source,
                })
            }
        }
        let holder = format!("pid {}", std::process::id());
        lock.set_len(0)
            .and_then(|()| lock.write_all(holder.as_bytes()))
            .map_err(io(&lock_path))?;
        Ok(FileStore {
            dir: dir.to_owned(),
            path: dir.join(STATE_FILE),
            _lock: lock,
            used_before,
        })
    }

    fn corrupt(&self, reason: String) -> StateError {
        StateError::Corrupt {
            path: self.path.clone(),
            dir: self.dir.clone(),
            reason,
        }
    }

    fn io(&self, path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

impl StateStore for FileStore {
    fn load(&mut self) -> Result<Option<ArrayRecord>, StateError> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.used_before => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing {
                    path: self.path.clone(),
                    dir: self.dir.clone(),
                })
            }
            Err(e) => return Err(self.io(&self.path, e)),
        };
        let record: ArrayRecord = serde_json::from_slice(&text).map_err(|e| self.corrupt(e.to_string()))?;
        if record.format != FORMAT {
            let reason = format!("format {}, this zeoraid reads format {FORMAT}", record.format);
            return Err(self.corrupt(reason));
        }
        Ok(Some(record))
    }

    fn save(&mut self, record: &ArrayRecord) -> Result<(), StateError> {
        let temporary = self.path.with_extension("json.tmp");
        let mut text = serde_json::to_vec_pretty(record).expect("the record serializes");
        text.push(b'\n');
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&temporary)?;
            file.write_all(&text)?;
            file.sync_all()
        };
        write().map_err(|e| self.io(&temporary, e))?;
        fs::rename(&temporary, &self.path).map_err(|e| self.io(&self.path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(&self.dir, e))
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{DegradedRecord, MemberRecord};
    use crate::status::DegradeKind;
    use zeo::types::Tid;

    fn record() -> ArrayRecord {
        let mut record = ArrayRecord {
            format: FORMAT,
            generation: 7,
            last_tid: Tid::from_u64(0x03e0_0000_0000_0001),
            max_oid: Tid::from_u64(42),
            members: Default::default(),
            forced: Vec::new(),
            scrub: Some(crate::state::ScrubPosition {
                next: Tid::from_u64(0x03e0_0000_0000_0001),
                to: Tid::from_u64(0x03e0_0000_0000_0002),
            }),
            inconsistent: Some("zeo1 and zeo2 differ at tid 0x03e0000000000002".into()),
        };
        record.members.insert("zeo1".into(), MemberRecord::default());
        record.members.insert(
            "zeo2".into(),
            MemberRecord {
                degraded: Some(DegradedRecord {
                    kind: DegradeKind::Failed,
                    reason: "disconnected: reset".into(),
                    since: 1.5,
                    first_missed_tid: Some(Tid::from_u64(0x03e0_0000_0000_0002)),
                    max_oid: Tid::from_u64(40),
                }),
                packed_while_degraded: Some(2.5),
            },
        );
        record
    }

    #[test]
    fn a_first_start_has_no_state_and_what_is_saved_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut store = FileStore::open(&state).unwrap();
        assert_eq!(store.load().unwrap(), None);
        store.save(&record()).unwrap();
        drop(store);
        let mut store = FileStore::open(&state).unwrap();
        assert_eq!(store.load().unwrap(), Some(record()));
        let text = fs::read_to_string(state.join(STATE_FILE)).unwrap();
        assert!(
            text.contains("\"first_missed_tid\": \"03e0000000000002\""),
            "{text}"
        );
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FileStore::open(dir.path()).unwrap();
        let refused = FileStore::open(dir.path()).err().expect("locked");
        let text = refused.to_string();
        assert!(matches!(refused, StateError::Locked { .. }), "{text}");
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
    }

    #[test]
    fn a_removed_or_damaged_state_file_is_refused_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::open(dir.path()).unwrap();
        store.save(&record()).unwrap();
        drop(store);
        fs::write(dir.path().join(STATE_FILE), b"{\"format\": 1, \"generation\"").unwrap();
        let mut store = FileStore::open(dir.path()).unwrap();
        let error = store.load().expect_err("damaged");
        assert!(matches!(error, StateError::Corrupt { .. }), "{error}");
        assert!(
            error.to_string().contains("Restore the file from a backup"),
            "{error}"
        );
        drop(store);
        fs::remove_file(dir.path().join(STATE_FILE)).unwrap();
        let mut store = FileStore::open(dir.path()).unwrap();
        let error = store.load().expect_err("missing");
        assert!(matches!(error, StateError::Missing { .. }), "{error}");
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::open(dir.path()).unwrap();
        let mut future = record();
        future.format = FORMAT + 1;
        store.save(&future).unwrap();
        let error = store.load().expect_err("unknown format");
        assert!(
            error
                .to_string()
                .contains("format 2, this zeoraid reads format 1"),
            "{error}"
        );
    }
}
