//! The `serve` lifecycle: start the actix system, serve until SIGTERM or
//! SIGINT (SIGHUP reloads the configuration), then shut down gracefully:
//! stop accepting clients, let the transactions already voting finish
//! (bounded by the commit deadline, then aborted on every member), close
//! the members, exit 0. The HTTP management endpoint (`crate::http`)
//! opens after the front listener and stops last: `/readyz` answers 503
//! from the first signal on, the other routes answer while draining.
//!
//! Signal handlers are installed before "zeoraid started" is logged, so
//! anything that waits for that line (supervisors, the integration tests)
//! can signal right away without killing the process with the default
//! disposition.

use std::io;

use slog::{debug, info, Logger};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::Config;
use crate::listen::{FrontListener, ListenError};
use crate::reload::Reloader;
use actix::{Actor, Addr, Recipient};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zeoraid_actors::controller::{
    ArrayReady, Controller, Drain, DurableState, ReloadConfiguration, Status, WaitReady,
};
use zeoraid_actors::session::SessionSettings;
use zeoraid_actors::state::{ArrayRecord, FileStore, StateStore};
use zeoraid_actors::token::Token;
use zeoraid_actors::transaction;

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
    #[error("{0}")]
    Listen(#[source] crate::listen::ListenError),
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Http {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot use the TLS certificates: {0}")]
    Tls(#[source] crate::tls::TlsFileError),
    #[error("the array cannot start: {0}")]
    Array(#[source] actix::MailboxError),
    #[error("refusing to start: {0}")]
    State(#[source] zeoraid_actors::state::StateError),
    #[error("the cluster election failed: {0}")]
    Election(String),
    #[error("the signal handling task failed: {0}")]
    SignalTask(String),
    #[error("cannot use the spool dir {dir}: {source}")]
    Spool {
        dir: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How much longer than the commit deadline an HTTP admin call may wait
/// for its answer (a reload waits for the commit lock).
const HTTP_ADMIN_SLACK: Duration = Duration::from_secs(10);

/// How the daemon stopped serving.
#[derive(Debug)]
pub enum Stopped {
    /// An orderly shutdown: exit 0 (what init systems expect after they
    /// sent SIGTERM).
    Signal,
    /// This zeoraid led a cluster and is no longer sure it does: the
    /// process re-executes itself at once, as a standby (`crate::cluster`).
    SteppedDown(String),
}

/// Runs zeoraid until it is told to stop or, in a cluster, must step
/// down.
pub fn run(config: Config, config_path: PathBuf, log: &Logger) -> Result<Stopped, DaemonError> {
    // Built here rather than by `System::new()` so that failing to create
    // the runtime is reported as an error instead of a panic.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(DaemonError::Runtime)?;
    actix_rt::System::with_tokio_rt(move || runtime).block_on(serve(config, config_path, log.clone()))
}

/// The three signals the daemon handles: SIGTERM and SIGINT stop it,
/// SIGHUP reloads the configuration.
pub(crate) struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

/// A signal the daemon acts on.
pub(crate) enum Received {
    /// SIGTERM or SIGINT (named).
    Stop(&'static str),
    /// SIGHUP.
    Reload,
}

impl Signals {
    /// The next signal.
    pub(crate) async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.terminate.recv() => Received::Stop("SIGTERM"),
            _ = self.interrupt.recv() => Received::Stop("SIGINT"),
            _ = self.hangup.recv() => Received::Reload,
        }
    }

    /// Resolves with the name of the first stop signal (SIGTERM, SIGINT);
    /// SIGHUP is ignored (a takeover is under way: nothing to reload yet).
    pub(crate) async fn stop(&mut self) -> &'static str {
        loop {
            if let Received::Stop(name) = self.next().await {
                return name;
            }
        }
    }
}

async fn serve(config: Config, config_path: PathBuf, log: Logger) -> Result<Stopped, DaemonError> {
    let signals = Signals {
        terminate: install(SignalKind::terminate(), "SIGTERM")?,
        interrupt: install(SignalKind::interrupt(), "SIGINT")?,
        hangup: install(SignalKind::hangup(), "SIGHUP")?,
    };
    log_configuration(&config, &log);
    if config.cluster.is_some() {
        return crate::cluster::serve(config, config_path, signals, log).await;
    }
    let members = config.members.iter().map(|m| m.name.as_str());
    let store = FileStore::open(&config.state_dir).map_err(DaemonError::State)?;
    let durable = open_state(Box::new(store), members, &log)?;
    serve_array(config, config_path, signals, durable, None, log).await
}

/// Serves the array: alone, or as a cluster's elected leader (`term`),
/// which first takes over and steps down when it is no longer sure it
/// leads.
pub(crate) async fn serve_array(
    config: Config,
    config_path: PathBuf,
    mut signals: Signals,
    durable: DurableState,
    term: Option<crate::cluster::Term>,
    log: Logger,
) -> Result<Stopped, DaemonError> {
    let mut tls = crate::tls::TlsMaterial::default();
    let prepared = tls.prepare(&config).map_err(DaemonError::Tls)?;
    let mut settings = crate::members::controller_settings(&config, &prepared);
    tls.install(prepared);
    settings.leading = term.as_ref().map(|t| t.leading.clone());

    // The controller starts and owns the member actors. The front server
    // opens once the members answered (or the startup wait is over: members
    // not reachable by then start degraded), so "zeoraid started" means
    // ready for clients. The HTTP endpoint opens right after the front
    // listener, before "zeoraid started" (which names both addresses).
    let controller = Controller::new(settings, durable, log.clone()).start();
    let mut array = wait_ready(&controller, config.timeouts.connect * 2).await?;
    let mut term = term;
    if let Some(leader) = term.as_mut() {
        match leader.take_over(&controller, &mut signals, &log).await {
            Ok(taken) => array.last_tid = taken.tid,
            Err(Stopped::Signal) => {
                // Nothing was served: the lease goes back at once, and the
                // members abort the fence as the process's connections close.
                if let Some(term) = term {
                    term.resign().await;
                }
                return Ok(Stopped::Signal);
            }
            Err(stepped_down) => return Ok(stepped_down),
        }
    }
    // Dropped (removing a Unix socket's file) whenever this returns.
    let (listener, socket_file) = FrontListener::bind(&config.listen, config.listen_mode, &log)
        .await
        .map_err(DaemonError::Listen)?;
    let listen = listener.local().map_err(|source| {
        DaemonError::Listen(ListenError::Bind {
            address: config.listen.to_string(),
            source,
        })
    })?;
    prepare_spool(&config.spool_dir, &log)?;
    let front_tls = tls.front();
    let reloader = Reloader::new(config_path, config.clone(), tls, controller.clone(), log.clone()).start();
    if let Some(standby) = term.as_mut().and_then(|t| t.standby_http.take()) {
        // The leader's endpoint takes the same address.
        standby.stop(true).await;
    }
    let view = term.as_ref().map(|t| crate::http::ClusterFeed {
        view: t.view.clone(),
        lease: t.leading.lease.clone(),
    });
    let http = start_http(
        &config,
        reloader.clone().recipient(),
        controller.clone(),
        view,
        &log,
    )?;
    let sessions = Arc::new(SessionSettings {
        storage: config.storage.clone(),
        msgpack: config.msgpack,
        max_frame: config.max_frame_size,
        spool_dir: config.spool_dir.clone(),
        explicit_tid_skew: config.limits.explicit_tid_skew,
        reloader: Some(reloader.clone().recipient()),
        handshake_timeout: config.timeouts.handshake,
        client_backlog: config.limits.client_backlog,
        transaction_memory: config.limits.transaction_memory,
        blob_downloads: config.limits.blob_downloads_per_session,
        admin_calls: config.zeo_admin_calls,
        admin_token: config.http.token.clone().map(Token::new),
    });
    let max_clients = config.limits.max_client_connections;
    crate::front::fit_descriptor_limit(max_clients, crate::config::RESERVED_DESCRIPTORS, &log);
    let front = actix_rt::spawn(crate::front::serve(
        listener,
        sessions,
        max_clients,
        front_tls,
        controller.clone(),
        log.clone(),
    ));
    info!(log, "zeoraid started";
        "pid" => std::process::id(),
        "listen" => listen,
        "http" => %http.addr(),
        "array" => array.status,
        "last_tid" => array.last_tid.to_hex(),
        "optimal_members" => array.optimal,
        "members" => array.members,
    );
    let summary = match controller.send(Status).await {
        Ok(status) => status.summary,
        Err(_) => array.status.to_string(),
    };
    crate::systemd::ready(&summary, &log);
    let status_line = crate::systemd::follow_status(controller.clone(), log.clone());

    let until_signal = until_stop_signal(signals, reloader.recipient(), log.clone());
    let (received, signals) = match term.as_mut() {
        None => until_signal.await?,
        Some(term) => tokio::select! {
            stopped = until_signal => stopped?,
            reason = term.deposed() => return Ok(Stopped::SteppedDown(reason)),
        },
    };
    info!(log, "shutting down"; "signal" => received, "then" => "no new clients, finishing transactions in flight",
        "within_ms" => config.timeouts.commit.as_millis() as u64);
    front.abort();
    drop(socket_file);
    if let Some(task) = status_line {
        task.abort();
    }
    crate::systemd::stopping("draining: finishing the transactions in flight", &log);
    shut_down(&controller, http, signals, config.timeouts.commit, &log).await;
    if let Some(term) = term {
        term.resign().await;
    }
    Ok(Stopped::Signal)
}

/// Logs the configuration the daemon starts with, one line per member.
fn log_configuration(config: &Config, log: &Logger) {
    info!(log, "starting zeoraid";
        "version" => env!("CARGO_PKG_VERSION"),
        "listen" => %config.listen,
        "storage" => &config.storage,
        "cluster_mode" => %config.cluster_mode,
        "fail_mode" => %config.fail_mode,
        "msgpack" => config.msgpack,
        "http" => %config.http.listen,
        "http_token" => config.http.token.is_some(),
        "http_token_for_reads" => config.http.token_for_reads,
        "zeo_admin_calls" => config.zeo_admin_calls.as_str(),
        "members" => config.members.len(),
    );
    for member in &config.members {
        debug!(log, "member configured";
            "member" => &member.name,
            "address" => %member.address,
            "restart" => %member.restart,
        );
    }
}

/// Reads what the last run wrote to `store` (this zeoraid's state file,
/// or a cluster's state in etcd); a first start writes the first state. A
/// state that is missing or unreadable stops the start with what to do.
pub(crate) fn open_state<'a>(
    mut store: Box<dyn StateStore>,
    members: impl IntoIterator<Item = &'a str>,
    log: &Logger,
) -> Result<DurableState, DaemonError> {
    let record = match store.load().map_err(DaemonError::State)? {
        Some(record) => record,
        None => {
            info!(log, "first start: no array state yet"; "location" => store.location());
            let record = ArrayRecord::first_start(members);
            store.save(&record).map_err(DaemonError::State)?;
            record
        }
    };
    Ok(DurableState {
        store,
        record: Some(record),
    })
}

/// Waits until every member connected or failed a first attempt, or
/// `within` passed.
async fn wait_ready(controller: &Addr<Controller>, within: Duration) -> Result<ArrayReady, DaemonError> {
    let answer = controller
        .send(WaitReady { within })
        .await
        .map_err(DaemonError::Array)?;
    let Ok(array) = answer;
    Ok(array)
}

fn start_http(
    config: &Config,
    reloader: Recipient<ReloadConfiguration>,
    controller: Addr<Controller>,
    cluster: Option<crate::http::ClusterFeed>,
    log: &Logger,
) -> Result<crate::http::HttpEndpoint, DaemonError> {
    crate::http::start(
        crate::http::Settings {
            listen: config.http.listen,
            token: config.http.token.clone().map(Token::new),
            token_for_reads: config.http.token_for_reads,
            reloader,
            admin_timeout: config.timeouts.commit + HTTP_ADMIN_SLACK,
        },
        controller,
        cluster,
        log,
    )
    .map_err(|source| DaemonError::Http {
        addr: config.http.listen,
        source,
    })
}

/// Serves SIGHUP (a reload) until SIGTERM or SIGINT arrives; answers which
/// one, and hands the signals back so that a second one can cut the
/// shutdown short.
///
/// The signal loop is a task of its own: the root future of the runtime
/// is polled at every wake-up of any actor (tokio's LocalSet polls it on
/// each tick), and three signal receivers polled there cost 1.5 % of the
/// daemon's CPU under load.
async fn until_stop_signal(
    mut signals: Signals,
    reloader: Recipient<ReloadConfiguration>,
    log: Logger,
) -> Result<(&'static str, Signals), DaemonError> {
    let task = actix_rt::spawn(async move {
        let received = loop {
            tokio::select! {
                _ = signals.terminate.recv() => break "SIGTERM",
                _ = signals.interrupt.recv() => break "SIGINT",
                _ = signals.hangup.recv() => {
                    info!(log, "reloading the configuration"; "signal" => "SIGHUP");
                    let reloader = reloader.clone();
                    let log = log.clone();
                    // Logged by the reloader either way; the loop keeps serving.
                    actix_rt::spawn(async move {
                        if let Err(e) = reloader.send(ReloadConfiguration { source: "SIGHUP" }).await {
                            slog::error!(log, "reload failed: reloader unreachable"; "error" => %e);
                        }
                    });
                }
            }
        };
        (received, signals)
    });
    task.await.map_err(|e| DaemonError::SignalTask(e.to_string()))
}

/// Stops the HTTP endpoint's readiness, drains the controller (bounded by
/// `within`; a second signal stops at once), then stops the endpoint.
async fn shut_down(
    controller: &Addr<Controller>,
    http: crate::http::HttpEndpoint,
    mut signals: Signals,
    within: Duration,
    log: &Logger,
) {
    // /readyz says 503 from now on; status reads go on while draining.
    http.begin_shutdown();
    // A second signal while draining stops at once.
    let drained = tokio::select! {
        outcome = controller.send(Drain { within }) => outcome.ok(),
        _ = signals.terminate.recv() => None,
        _ = signals.interrupt.recv() => None,
    };
    http.stop(drained.is_some()).await;
    match drained {
        Some(outcome) => info!(log, "zeoraid stopped"; "transactions_aborted" => outcome.aborted),
        None => slog::warn!(log, "zeoraid stopped without draining"; "reason" => "second signal"),
    }
}

/// Creates the spool dir and removes blob spools a crashed zeoraid left
/// (their transactions died with it); the spools of other zeoraids sharing
/// the directory are locked and stay.
fn prepare_spool(dir: &std::path::Path, log: &Logger) -> Result<(), DaemonError> {
    let spool_error = |source| DaemonError::Spool {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(spool_error)?;
    for entry in std::fs::read_dir(dir).map_err(spool_error)?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(transaction::SPOOL_PREFIX) {
            continue;
        }
        match transaction::is_stale_spool(&entry.path()) {
            Ok(true) => match std::fs::remove_file(entry.path()) {
                Ok(()) => info!(log, "removed a stale blob spool"; "path" => %entry.path().display()),
                Err(e) => slog::warn!(log, "cannot remove a stale blob spool";
                    "path" => %entry.path().display(), "error" => %e),
            },
            Ok(false) => {}
            Err(e) => slog::warn!(log, "cannot tell whether a blob spool is stale";
                "path" => %entry.path().display(), "error" => %e),
        }
    }
    Ok(())
}

fn install(kind: SignalKind, name: &'static str) -> Result<Signal, DaemonError> {
    signal(kind).map_err(|source| DaemonError::Signal { name, source })
}
