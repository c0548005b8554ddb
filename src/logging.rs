//! Process-wide logging: slog to stderr, as terminal lines or JSON.
//!
//! Records are formatted on a background thread (slog-async) so a slow
//! stderr never stalls the actors; the returned guard flushes that thread
//! on drop, so it must live until the process exits or the last lines
//! (typically the shutdown reason) are lost. The `log` crate is bridged in
//! too, otherwise whatever actix, tokio or other dependencies say would go
//! nowhere. Under systemd the lines carry journald's priority prefix
//! (`journal.rs`).

mod journal;

use std::io::{self, Write};

use slog::{Drain, Logger};

use crate::config::{LogFormat, LogSettings};

/// Deep enough to absorb a burst (e.g. every member failing at once)
/// without dropping; when it does overflow slog-async drops records and
/// reports how many, which beats blocking the actors on log I/O.
const CHANNEL_SIZE: usize = 8192;

/// The name of the thread that writes the log records.
pub(crate) const LOG_THREAD: &str = "zeoraid-log";

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot route the log crate into slog (a logger is already installed): {0}")]
    Bridge(#[from] log::SetLoggerError),
}

/// Keeps logging alive; drop it last.
///
/// Field order is drop order: the global `slog_scope` logger is released
/// first, then the async worker is flushed and joined, so nothing logged
/// before the drop is lost.
#[must_use = "dropping the guard stops logging and flushes pending records"]
pub struct LogGuard {
    _scope: slog_scope::GlobalLoggerGuard,
    _async: slog_async::AsyncGuard,
}

impl LogGuard {
    /// Flushes every record logged so far, leaving the global logger in
    /// place: other threads may still log until the process image is
    /// replaced (a cluster leader re-executing itself), and an unset
    /// global logger would panic them. Records logged after the flush are
    /// dropped (the drain ignores a closed channel).
    pub fn flush_keeping_global(self) {
        let LogGuard { _scope, _async } = self;
        drop(_async);
        std::mem::forget(_scope);
    }
}

/// Installs logging for the whole process and returns the root logger.
///
/// Can be called once per process: the `log` crate accepts only one
/// logger, and a second call returns `LoggingError::Bridge`.
pub fn init(settings: &LogSettings) -> Result<(Logger, LogGuard), LoggingError> {
    init_with_sink(settings, Sink::Stderr)
}

fn init_with_sink(settings: &LogSettings, sink: Sink) -> Result<(Logger, LogGuard), LoggingError> {
    let (logger, async_guard) = build(settings, sink);
    let scope_guard = slog_scope::set_global_logger(logger.clone());
    slog_stdlog::init_with_level(settings.level.to_log())?;
    Ok((
        logger,
        LogGuard {
            _scope: scope_guard,
            _async: async_guard,
        },
    ))
}

/// Where formatted records go; `Writer` exists so tests can capture output
/// without touching the process-global state `init` installs.
pub(crate) enum Sink {
    Stderr,
    #[cfg_attr(not(test), allow(dead_code))]
    Writer(Box<dyn Write + Send>),
}

pub(crate) fn build(settings: &LogSettings, sink: Sink) -> (Logger, slog_async::AsyncGuard) {
    // Formatting drains can fail (stderr closed by a supervisor); ignoring
    // that is deliberate, as `fuse()` would panic the logging thread and a
    // daemon must not die because nobody reads its logs.
    let format = match settings.format {
        LogFormat::Term if matches!(sink, Sink::Stderr) && journal::stderr_is_journal() => {
            LogFormat::Journald
        }
        chosen => chosen,
    };
    let format: Box<dyn Drain<Ok = (), Err = slog::Never> + Send> = match (format, sink) {
        (LogFormat::Term, Sink::Stderr) => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            Box::new(
                slog_term::FullFormat::new(decorator)
                    .use_original_order()
                    .build()
                    .ignore_res(),
            )
        }
        (LogFormat::Term, Sink::Writer(w)) => {
            let decorator = slog_term::PlainDecorator::new(w);
            Box::new(
                slog_term::FullFormat::new(decorator)
                    .use_original_order()
                    .build()
                    .ignore_res(),
            )
        }
        (LogFormat::Json, Sink::Stderr) => Box::new(json(io::stderr())),
        (LogFormat::Json, Sink::Writer(w)) => Box::new(json(w)),
        (LogFormat::Journald, Sink::Stderr) => {
            Box::new(journal::JournalLines::new(io::stderr()).ignore_res())
        }
        (LogFormat::Journald, Sink::Writer(w)) => Box::new(journal::JournalLines::new(w).ignore_res()),
    };
    let (async_drain, guard) = slog_async::Async::new(format)
        .chan_size(CHANNEL_SIZE)
        .thread_name(LOG_THREAD.to_owned())
        .build_with_guard();
    // Filtering before the channel keeps suppressed debug/trace records
    // from costing a serialisation and a send each.
    let drain = async_drain.filter_level(settings.level.to_slog()).ignore_res();
    (Logger::root(drain, slog::o!()), guard)
}

fn json<W: Write + Send + 'static>(w: W) -> impl Drain<Ok = (), Err = slog::Never> + Send {
    slog_json::Json::new(w)
        .set_newlines(true)
        .add_default_keys()
        .build()
        .ignore_res()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use slog::{debug, info, trace};

    use super::*;
    use crate::config::LogLevel;

    /// An in-memory log sink (also for `journal.rs`' tests).
    #[derive(Clone, Default)]
    pub(super) struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        pub(super) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn capture(format: LogFormat, level: LogLevel, emit: impl FnOnce(&Logger)) -> String {
        let buffer = Buffer::default();
        let (log, guard) = build(
            &LogSettings { format, level },
            Sink::Writer(Box::new(buffer.clone())),
        );
        emit(&log);
        // The guard flushes the worker thread: no sleeping needed.
        drop(guard);
        buffer.text()
    }

    #[test]
    fn json_lines_carry_message_level_and_keys() {
        let out = capture(LogFormat::Json, LogLevel::Info, |log| {
            info!(log, "zeoraid started"; "members" => 2, "listen" => "127.0.0.1:8100");
        });
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(line["msg"], "zeoraid started");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["members"], 2);
        assert_eq!(line["listen"], "127.0.0.1:8100");
        assert!(line["ts"].is_string());
    }

    #[test]
    fn level_filters_records() {
        let out = capture(LogFormat::Term, LogLevel::Info, |log| {
            debug!(log, "hidden debug");
            info!(log, "shown info");
        });
        assert!(out.contains("shown info"), "{out}");
        assert!(!out.contains("hidden debug"), "{out}");
    }

    #[test]
    fn trace_is_not_compiled_out() {
        let out = capture(LogFormat::Term, LogLevel::Trace, |log| {
            trace!(log, "very detailed"; "k" => "v");
        });
        assert!(out.contains("very detailed"), "{out}");
        assert!(out.contains("k: v"), "{out}");
    }

    /// The only test that installs the process-global loggers, since the
    /// `log` crate accepts a logger once per process.
    #[test]
    fn log_crate_records_reach_slog() {
        let buffer = Buffer::default();
        let settings = LogSettings {
            format: LogFormat::Json,
            level: LogLevel::Debug,
        };
        let (_log, guard) = init_with_sink(&settings, Sink::Writer(Box::new(buffer.clone()))).unwrap();
        log::debug!(target: "actix_server", "bridged record");
        log::trace!("below the configured level");
        drop(guard);
        let out = buffer.text();
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(line["msg"], "bridged record");
        assert_eq!(line["level"], "DEBG");
        assert!(!out.contains("below the configured level"), "{out}");
    }

    #[test]
    fn term_keeps_key_order() {
        let out = capture(LogFormat::Term, LogLevel::Info, |log| {
            info!(log, "ordered"; "first" => 1, "second" => 2);
        });
        let first = out.find("first").unwrap();
        let second = out.find("second").unwrap();
        assert!(first < second, "{out}");
    }
}
