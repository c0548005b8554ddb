//! Log lines for journald: plain text with the `<N>` syslog priority
//! prefix journald strips and records as the entry's priority, so
//! `journalctl -p err -u zeoraid` shows errors and worse. journald adds
//! the timestamp, the unit and the PID itself, so a line carries only the
//! message and its key-value pairs, in the order they were written.

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::Mutex;

use slog::{Drain, Key, Level, OwnedKVList, Record, Serializer, KV};

/// The environment variable systemd sets to the device and inode
/// ("dev:ino") of the journal stream it connected stdout/stderr to.
const JOURNAL_STREAM: &str = "JOURNAL_STREAM";

/// Whether stderr is journald's stream (and not, say, a pipe a child
/// process inherited the variable with).
pub(crate) fn stderr_is_journal() -> bool {
    std::env::var(JOURNAL_STREAM)
        .ok()
        .and_then(|value| stream_identity(&value))
        .is_some_and(|expected| fd_identity(libc::STDERR_FILENO) == Some(expected))
}

fn stream_identity(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

fn fd_identity(fd: libc::c_int) -> Option<(u64, u64)> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` into the buffer when it returns 0.
    let stat = unsafe {
        if libc::fstat(fd, stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Some((stat.st_dev as u64, stat.st_ino as u64))
}

/// The syslog priority journald files a record under.
pub(crate) fn priority(level: Level) -> u8 {
    match level {
        Level::Critical => 2,
        Level::Error => 3,
        Level::Warning => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Writes one prefixed line per record.
pub(crate) struct JournalLines<W> {
    out: Mutex<W>,
}

impl<W: Write> JournalLines<W> {
    pub(crate) fn new(out: W) -> Self {
        JournalLines { out: Mutex::new(out) }
    }
}

impl<W: Write> Drain for JournalLines<W> {
    type Ok = ();
    type Err = io::Error;

    fn log(&self, record: &Record, values: &OwnedKVList) -> io::Result<()> {
        let line = format_line(record, values).map_err(io::Error::other)?;
        let mut out = self.out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        out.write_all(line.as_bytes())?;
        out.flush()
    }
}

fn format_line(record: &Record, values: &OwnedKVList) -> Result<String, slog::Error> {
    let prefix = format!("<{}>", priority(record.level()));
    let mut text = record.msg().to_string();
    // Innermost first: the record's own pairs, then the logger's.
    for kv in [&record.kv() as &dyn KV, values as &dyn KV] {
        let mut pairs = Pairs(Vec::new());
        kv.serialize(record, &mut pairs)?;
        // slog hands pairs over last-written first.
        for (key, value) in pairs.0.iter().rev() {
            write!(text, ", {key}: {value}")?;
        }
    }
    // journald starts an entry at every newline: each line of a
    // multi-line message keeps the record's priority.
    Ok(format!(
        "{prefix}{}\n",
        text.replace('\n', &format!("\n{prefix}"))
    ))
}

struct Pairs(Vec<(Key, String)>);

impl Serializer for Pairs {
    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments) -> slog::Result {
        self.0.push((key, value.to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use slog::{error, info, o, warn, Logger};

    use super::*;
    use crate::logging::tests::Buffer;

    fn lines(emit: impl FnOnce(&Logger)) -> Vec<String> {
        let buffer = Buffer::default();
        let log = Logger::root(JournalLines::new(buffer.clone()).fuse(), o!("member" => "zeo1"));
        emit(&log);
        buffer.text().lines().map(str::to_owned).collect()
    }

    #[test]
    fn each_level_gets_its_syslog_priority() {
        let lines = lines(|log| {
            error!(log, "member degraded"; "reason" => "connection lost", "tid" => "03ff");
            warn!(log, "slow member");
            info!(log, "zeoraid started");
        });
        assert_eq!(
            lines,
            [
                "<3>member degraded, reason: connection lost, tid: 03ff, member: zeo1",
                "<4>slow member, member: zeo1",
                "<6>zeoraid started, member: zeo1",
            ]
        );
    }

    #[test]
    fn every_line_of_a_multi_line_message_keeps_the_priority() {
        let lines = lines(|log| error!(log, "first\nsecond"));
        assert_eq!(lines, ["<3>first", "<3>second, member: zeo1"]);
    }

    #[test]
    fn journal_stream_is_recognised_by_device_and_inode() {
        assert_eq!(stream_identity("8:12345"), Some((8, 12345)));
        assert_eq!(stream_identity("garbage"), None);
        let file = tempfile::tempfile().unwrap();
        let identity = fd_identity(std::os::fd::AsRawFd::as_raw_fd(&file)).unwrap();
        let metadata = file.metadata().unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(identity, (metadata.dev(), metadata.ino()));
    }
}
