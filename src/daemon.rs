//! The `serve` lifecycle: start the actix system, run until SIGTERM or
//! SIGINT, shut down.
//!
//! Signal handlers are installed before "zeoraid started" is logged, so
//! anything that waits for that line (supervisors, the integration tests)
//! can signal right away without killing the process with the default
//! disposition.

use std::io;

use slog::{debug, info, Logger};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot build the async runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("cannot install the {name} handler: {source}")]
    Signal {
        name: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Runs zeoraid until it is told to stop; returns `Ok` on an orderly
/// shutdown so the process can exit 0 (what init systems expect after
/// they sent SIGTERM).
pub fn run(config: Config, log: &Logger) -> Result<(), DaemonError> {
    // Built here rather than by `System::new()` so that failing to create
    // the runtime is reported as an error instead of a panic.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(DaemonError::Runtime)?;
    actix_rt::System::with_tokio_rt(move || runtime).block_on(serve(config, log.clone()))
}

async fn serve(config: Config, log: Logger) -> Result<(), DaemonError> {
    let mut terminate = install(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = install(SignalKind::interrupt(), "SIGINT")?;

    info!(log, "starting zeoraid";
        "version" => env!("CARGO_PKG_VERSION"),
        "listen" => %config.listen,
        "storage" => &config.storage,
        "cluster_mode" => %config.cluster_mode,
        "fail_mode" => %config.fail_mode,
        "msgpack" => config.msgpack,
        "http" => %config.http.listen,
        "http_token" => config.http.token.is_some(),
        "members" => config.members.len(),
    );
    for member in &config.members {
        debug!(log, "member configured";
            "member" => &member.name,
            "address" => %member.address,
            "restart" => %member.restart,
        );
    }

    // Each member connects on its own and logs its state changes; the
    // controller (issue 5) will own these addresses. The front ZEO server
    // and the HTTP endpoint start here too (issues 5, 7), before "zeoraid
    // started" so that line keeps meaning "ready".
    let members = crate::members::start(&config, &log);
    info!(log, "zeoraid started"; "pid" => std::process::id(), "members" => members.len());

    let received = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    info!(log, "shutting down"; "signal" => received);
    drop(members);
    Ok(())
}

fn install(kind: SignalKind, name: &'static str) -> Result<Signal, DaemonError> {
    signal(kind).map_err(|source| DaemonError::Signal { name, source })
}
