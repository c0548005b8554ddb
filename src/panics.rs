//! What happens when any thread of the daemon panics: the panic is logged
//! and the process ends with [`EXIT_PANIC`].
//!
//! Without this, a panicking actor dies alone: actix and tokio catch the
//! unwind of a task, the other actors go on, and zeoraid keeps accepting
//! connections while the part that died (the controller, say) answers
//! nothing. A process that exits is restarted by its service manager; a
//! zombie is not. The hook runs before any unwinding, in the thread that
//! panicked, so nothing can catch the panic first.

use std::sync::{Mutex, OnceLock};

use slog::{crit, Logger};

use crate::logging::LogGuard;

/// The exit status after a panic (`EX_SOFTWARE`: an internal error).
pub const EXIT_PANIC: i32 = 70;

/// The logging guard, dropped by the hook to flush the panic's log line
/// before the process exits (or by [`flush_log`] on an orderly exit).
static LOG_GUARD: OnceLock<Mutex<Option<LogGuard>>> = OnceLock::new();

/// Installs the panic policy for the rest of the process; logging (its
/// guard included) belongs to the policy from now on.
pub fn install(log: Logger, guard: LogGuard) {
    let _ = LOG_GUARD.set(Mutex::new(Some(guard)));
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let message = panic_message(info.payload());
        // The logging thread itself cannot log and wait for its own flush.
        if thread != crate::logging::LOG_THREAD {
            crit!(log, "panic: zeoraid exits"; "thread" => thread, "location" => &location,
                "message" => &message, "exit_status" => EXIT_PANIC);
            flush_log();
        }
        // Also where a supervisor captures it, in case the log goes nowhere.
        eprintln!(
            "zeoraid: panic in thread {thread} at {location}: {message}; exiting with status {EXIT_PANIC}"
        );
        std::process::exit(EXIT_PANIC);
    }));
}

/// Flushes and stops logging: what dropping the guard does.
pub fn flush_log() {
    if let Some(guard) = LOG_GUARD.get() {
        // A panic while the lock is held (in this very function) leaves it
        // poisoned; the guard is dropped all the same.
        let taken = match guard.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(taken);
    }
}

/// Flushes logging before the process re-executes itself, leaving the
/// global logger set for the threads still running until then.
pub fn flush_log_before_exec() {
    if let Some(guard) = LOG_GUARD.get() {
        let taken = match guard.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(guard) = taken {
            guard.flush_keeping_global();
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(not a string)".to_string()
    }
}
