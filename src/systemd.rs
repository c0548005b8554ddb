//! systemd's notification protocol (`Type=notify`): READY once zeoraid
//! serves (a standby is ready too: it serves its status and waits to be
//! elected), RELOADING and READY around a reload, STOPPING when it drains,
//! and a STATUS line with the array's one-line summary, so `systemctl
//! status zeoraid` says "degraded: 1 of 2 members optimal (...)".
//!
//! Everything here is a no-op unless systemd set `NOTIFY_SOCKET`. A
//! notification that cannot be sent is logged and otherwise ignored: the
//! array must not stop serving because the service manager went away.
//! `systemctl reload` learns whether a reload was accepted from the exit
//! status of its `ExecReload=zeoraid ctl reload` (config/zeoraid.service),
//! since the notification protocol has no way to say "rejected".

use std::time::Duration;

use actix::Addr;
use sd_notify::NotifyState;
use slog::{warn, Logger};
use zeoraid_actors::controller::{Controller, Status};

/// How often the STATUS line is brought up to date with the array.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// The service serves: clients (a leader or a lone zeoraid) or its status
/// (a standby).
pub fn ready(status: &str, log: &Logger) {
    send(&[NotifyState::Ready, NotifyState::Status(status)], log);
}

/// A reload begins; [`ready`] ends it, accepted or not.
pub fn reloading(log: &Logger) {
    // systemd requires the monotonic time with RELOADING=1 (it tells a
    // reload it asked for from one that began on its own).
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now], log),
        Err(e) => warn!(log, "cannot read the monotonic clock for systemd"; "error" => %e),
    }
}

/// Only the STATUS line changes.
pub fn status(status: &str, log: &Logger) {
    send(&[NotifyState::Status(status)], log);
}

/// The daemon drains and stops.
pub fn stopping(status: &str, log: &Logger) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)], log);
}

/// Keeps the STATUS line equal to the array's summary, for as long as the
/// returned task runs (abort it when the array stops serving).
pub fn follow_status(controller: Addr<Controller>, log: Logger) -> Option<actix_rt::task::JoinHandle<()>> {
    std::env::var_os("NOTIFY_SOCKET")?;
    Some(actix_rt::spawn(async move {
        let mut shown = String::new();
        let mut every = tokio::time::interval(STATUS_EVERY);
        loop {
            every.tick().await;
            let Ok(status) = controller.send(Status).await else {
                return;
            };
            if status.summary != shown {
                send(&[NotifyState::Status(&status.summary)], &log);
                shown = status.summary;
            }
        }
    }))
}

fn send(states: &[NotifyState], log: &Logger) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(log, "cannot notify systemd"; "error" => %e,
            "socket" => std::env::var("NOTIFY_SOCKET").unwrap_or_default());
    }
}
