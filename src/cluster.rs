//! The daemon's life in a cluster (`[cluster]`, ARCHITECTURE.md §9):
//! campaign as a standby, take over once elected, serve, step down.
//!
//! A standby runs only the election and the HTTP endpoint: it does not
//! listen on the client address (a ZEO client that one standby refused
//! would not ask it again after it is elected) and does not connect to the
//! members. Once elected it reads the array state from etcd, starts the
//! controller, runs the takeover, and only then opens the client address.
//!
//! Stepping down is a re-execution of the process (`crate::cli`): every
//! client and member connection closes at once, and nothing the old term
//! knew (sessions, commit lock, member states, oids) can leak into the next
//! one, which starts as a standby with a new lease.

use crate::config::Config;
use crate::daemon::{open_state, serve_array, DaemonError, Received, Signals, Stopped};
use crate::http::{StandbyReload, StandbyReloaded};
use actix::{Actor, Addr};
use slog::{info, warn, Logger};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use zeoraid_actors::cluster::{
    lease_clock, Advertised, ClusterSettings, ClusterView, Election, EtcdStore, Leadership, LeaseClock,
    LeaseWriter, Resign, WaitLeadership, WatchView,
};
use zeoraid_actors::controller::{Controller, Leading, TakenOver, Takeover};
use zeoraid_actors::state::StateError;
use zeoraid_actors::token::Token;

/// Test only (fault injection a real machine cannot do on demand): the
/// leader trusts its lease for ever, as one whose clock stopped with its
/// virtual machine would, so that the tests can show the members' fence
/// refusing a leader that does not know it was deposed.
const TRUST_EXPIRED_LEASE_FOR_TESTS: &str = "ZEORAID_TEST_TRUST_EXPIRED_LEASE";

/// How long a takeover that failed (a member not answering, a member's
/// lock held by the old leader's transaction until its timeout) waits
/// before the next attempt, as long as the lease is proven.
const TAKEOVER_RETRY: Duration = Duration::from_secs(1);

/// Campaigns until elected (or told to stop), then serves as the leader.
pub(crate) async fn serve(
    config: Config,
    config_path: PathBuf,
    mut signals: Signals,
    log: Logger,
) -> Result<Stopped, DaemonError> {
    let settings = settings(&config);
    let log = log.new(slog::o!("cluster" => settings.name.clone()));
    info!(log, "campaigning"; "etcd" => ?settings.endpoints, "lease_ttl_ms" => settings.lease_ttl.as_millis() as u64,
        "prefix" => &settings.prefix);
    let election = Election::new(settings.clone(), log.clone()).start();
    let view = election
        .send(WatchView)
        .await
        .map_err(|e| DaemonError::Election(e.to_string()))?;
    let (reloads, mut reload_requests) = mpsc::channel(4);
    let standby_http = start_standby_http(&config, view.clone(), reloads, &log)?;
    crate::systemd::ready("standby: campaigning for leadership", &log);
    let mut config = config;
    let won = election.send(WaitLeadership);
    tokio::pin!(won);
    let leadership = loop {
        tokio::select! {
            won = &mut won => break won
                .map_err(|e| DaemonError::Election(e.to_string()))?
                .map_err(|e| DaemonError::Election(e.to_string()))?,
            Some(request) = reload_requests.recv() => {
                let (reread, outcome) = reread_as_standby(&config_path, config, "http", &log);
                config = reread;
                let _ = request.reply.send(outcome);
            }
            received = signals.next() => match received {
                Received::Reload => config = reread_as_standby(&config_path, config, "SIGHUP", &log).0,
                Received::Stop(signal) => {
                    info!(log, "stopping a standby"; "signal" => signal);
                    crate::systemd::stopping("stopping a standby", &log);
                    let _ = election.send(Resign).await;
                    standby_http.stop(true).await;
                    return Ok(Stopped::Signal);
                }
            }
        }
    };
    info!(log, "elected"; "epoch" => leadership.epoch);
    crate::systemd::status("elected, taking over", &log);
    let members = config.members.iter().map(|m| m.name.as_str());
    let opened = EtcdStore::open(&settings, &leadership)
        .map_err(DaemonError::State)
        .and_then(|store| open_state(Box::new(store), members, &log));
    let durable = match opened {
        Ok(durable) => durable,
        // etcd went away, or another was elected meanwhile: campaign again
        // (a state that cannot be read stops zeoraid instead).
        Err(DaemonError::State(e @ (StateError::Etcd { .. } | StateError::Deposed { .. }))) => {
            return Ok(Stopped::SteppedDown(e.to_string()))
        }
        Err(e) => return Err(e),
    };
    let mut term = Term::new(&settings, leadership, election, view);
    if std::env::var_os(TRUST_EXPIRED_LEASE_FOR_TESTS).is_some_and(|v| v == "1") {
        warn!(log, "TEST ONLY: this leader trusts its lease for ever and does not step down when it lapses";
            "variable" => TRUST_EXPIRED_LEASE_FOR_TESTS);
        term.trust_lease_for_ever();
    }
    // It answers "elected, taking over" until the leader's endpoint takes
    // its address, once the takeover is done.
    term.standby_http = Some(standby_http);
    serve_array(config, config_path, signals, durable, Some(term), log).await
}

/// SIGHUP on a standby: the configuration file is read and checked now, so
/// the operator learns of a mistake at once, and applies once elected (a
/// standby that waited for weeks must not take over with the member list
/// it started with). A rejected file keeps the one in force; changes to
/// what the running election uses (`[cluster]`, the HTTP endpoint) are
/// logged as needing a restart.
fn reread_as_standby(
    path: &std::path::Path,
    current: Config,
    source: &'static str,
    log: &Logger,
) -> (Config, Result<StandbyReloaded, String>) {
    const REREAD: &str = "standby: configuration re-read, applies once elected";
    crate::systemd::reloading(log);
    match crate::config::load(path) {
        Ok(new) => {
            let needs_restart: Vec<String> = crate::reload::needs_restart(&current, &new)
                .into_iter()
                .filter(|what| what == "cluster" || what == "http")
                .collect();
            info!(log, "{}", REREAD; "source" => source, "members" => new.members.len(),
                "needs_restart" => ?needs_restart);
            crate::systemd::ready(REREAD, log);
            let reloaded = StandbyReloaded {
                message: REREAD.to_owned(),
                members: new.members.len(),
                needs_restart,
            };
            // The election runs with the settings it started with.
            let config = Config {
                cluster: current.cluster,
                http: current.http,
                ..new
            };
            (config, Ok(reloaded))
        }
        Err(e) => {
            slog::error!(log, "reload rejected"; "source" => source, "error" => %e);
            crate::systemd::ready(&format!("standby: reload rejected: {e}"), log);
            (current, Err(format!("reload rejected, nothing changed: {e}")))
        }
    }
}

/// A standby's HTTP endpoint: status, health, metrics; admin calls are
/// refused with the leader's address.
fn start_standby_http(
    config: &Config,
    view: watch::Receiver<ClusterView>,
    reloads: mpsc::Sender<StandbyReload>,
    log: &Logger,
) -> Result<crate::http::HttpEndpoint, DaemonError> {
    let settings = crate::http::StandbySettings {
        listen: config.http.listen,
        token: config.http.token.clone().map(Token::new),
        token_for_reads: config.http.token_for_reads,
    };
    crate::http::start_standby(settings, view, reloads, log).map_err(|source| DaemonError::Http {
        addr: config.http.listen,
        source,
    })
}

/// The `[cluster]` table as the election needs it.
fn settings(config: &Config) -> ClusterSettings {
    let cluster = config.cluster.as_ref().expect("cluster mode");
    ClusterSettings {
        endpoints: cluster.etcd.clone(),
        name: cluster.name.clone(),
        lease_ttl: cluster.lease_ttl,
        prefix: cluster.prefix.clone(),
        advertised: Advertised {
            name: cluster.name.clone(),
            listen: config.listen.to_string(),
            http: config.http.listen.to_string(),
        },
    }
}

/// A leader's term: from its election to its step-down.
pub(crate) struct Term {
    pub leading: Leading,
    /// The election's view, for the leader's HTTP endpoint.
    pub view: watch::Receiver<ClusterView>,
    /// The standby's endpoint, kept answering through the takeover.
    pub standby_http: Option<crate::http::HttpEndpoint>,
    lease: LeaseClock,
    step_down: mpsc::UnboundedReceiver<String>,
    election: Addr<Election>,
    /// The writer of a test's everlasting lease proof.
    forever: Option<LeaseWriter>,
}

impl Term {
    fn new(
        settings: &ClusterSettings,
        leadership: Leadership,
        election: Addr<Election>,
        view: watch::Receiver<ClusterView>,
    ) -> Term {
        let (tell, step_down) = mpsc::unbounded_channel();
        Term {
            leading: Leading {
                epoch: leadership.epoch,
                name: settings.name.clone(),
                lease: leadership.lease.clone(),
                step_down: tell,
            },
            view,
            standby_http: None,
            lease: leadership.lease,
            step_down,
            election,
            forever: None,
        }
    }

    /// Runs the takeover until it commits; `Err` once this zeoraid must
    /// step down instead, or was told to stop (a takeover waiting for a
    /// frozen old leader may take long; SIGTERM still stops it).
    pub(crate) async fn take_over(
        &mut self,
        controller: &Addr<Controller>,
        signals: &mut Signals,
        log: &Logger,
    ) -> Result<TakenOver, Stopped> {
        loop {
            let (reply, answer) = tokio::sync::oneshot::channel();
            controller.do_send(Takeover { reply });
            let outcome = self.while_leading(signals, log, answer).await?.map_err(|_| {
                Stopped::SteppedDown("the controller stopped during the takeover".to_string())
            })?;
            let why = match outcome {
                Ok(taken) => return Ok(taken),
                Err(why) => why,
            };
            warn!(log, "takeover not finished; trying again"; "reason" => &why,
                "retry_in_ms" => TAKEOVER_RETRY.as_millis() as u64);
            self.while_leading(signals, log, tokio::time::sleep(TAKEOVER_RETRY))
                .await?;
        }
    }

    /// `work`'s output, unless this zeoraid stops leading or is told to
    /// stop first.
    async fn while_leading<T>(
        &mut self,
        signals: &mut Signals,
        log: &Logger,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Stopped> {
        tokio::select! {
            done = work => Ok(done),
            reason = self.deposed() => Err(Stopped::SteppedDown(reason)),
            received = signals.stop() => {
                info!(log, "stopping during the takeover"; "signal" => received);
                Err(Stopped::Signal)
            }
        }
    }

    /// See [`TRUST_EXPIRED_LEASE_FOR_TESTS`]: the proof is made to last a
    /// century, its writer kept with the term.
    fn trust_lease_for_ever(&mut self) {
        let (writer, clock) = lease_clock();
        writer.proven_until(Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
        self.leading.lease = clock.clone();
        self.lease = clock;
        self.forever = Some(writer);
    }

    /// Resolves, with the reason, once this zeoraid can no longer be sure
    /// it leads: its lease is no longer proven (checked at the proof's own
    /// deadline too, should the election actor be late), or the controller
    /// found its fence moved or its state unwritable.
    pub(crate) async fn deposed(&mut self) -> String {
        loop {
            let Some(until) = self.lease.valid_until().filter(|_| self.lease.proven()) else {
                return "the etcd lease is no longer proven".to_string();
            };
            let mut lease = self.lease.clone();
            tokio::select! {
                reason = self.step_down.recv() => {
                    return reason.unwrap_or_else(|| "the controller stopped".to_string());
                }
                () = lease.withdrawn() => {}
                () = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    /// Gives the lease back (orderly shutdown): a standby takes over now
    /// rather than a TTL later.
    pub(crate) async fn resign(self) {
        let _ = self.election.send(Resign).await;
    }
}
