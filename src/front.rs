//! The front ZEO listener (TCP or a Unix socket, `crate::listen`): accepts
//! application connections and hands each to its own client-session actor,
//! within `[limits] max_client_connections`.
//!
//! A connection over the limit is closed as soon as it is accepted, so
//! clients cannot take the descriptors the members' reconnects and the HTTP
//! endpoint need (neither is counted). Each session holds one permit of the
//! limit until it ends. Accepted TCP sockets get keepalive, so a client
//! whose host vanished (a half-open connection) is noticed and its session
//! ends (a transaction it left voted is aborted by `[timeouts] transaction`
//! long before). With `[tls]`, each connection's TLS handshake runs in its
//! own task before its session starts, holding its permit meanwhile.

use crate::listen::{Accepted, FrontListener};
use rustls::ServerConfig;
use slog::{error, info, warn, Logger};
use socket2::{SockRef, TcpKeepalive};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use zeoraid_actors::controller::Controller;
use zeoraid_actors::session::{ClientPeer, ClientSession, ClientStream, SessionSettings};
use zeoraid_actors::tls::Reloadable;

/// Keepalive probes start after a minute of silence, every 10 s, and 6
/// unanswered ones end the connection: a vanished client is noticed in
/// about two minutes (ZEO clients send heartbeats far more often, so a
/// live one is never probed for long).
const KEEPALIVE: TcpKeepalive = TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10))
    .with_retries(6);

/// At most one log line per this interval about refused connections.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub async fn serve(
    listener: FrontListener,
    settings: Arc<SessionSettings>,
    max_connections: usize,
    tls: Option<Reloadable<ServerConfig>>,
    controller: actix::Addr<Controller>,
    log: Logger,
) {
    let admission = Arc::new(Semaphore::new(max_connections));
    let mut refusals = Refusals::default();
    loop {
        match listener.accept().await {
            Ok(accepted) => match admission.clone().try_acquire_owned() {
                Ok(permit) => {
                    let start = |stream, peer, permit| {
                        ClientSession::start(
                            stream,
                            peer,
                            settings.clone(),
                            controller.clone(),
                            permit,
                            &log,
                        );
                    };
                    match (accepted, &tls) {
                        (Accepted::Tcp(stream, peer), None) => {
                            keep_alive(&stream, &log);
                            start(ClientStream::plain(stream), ClientPeer::Tcp(peer), permit);
                        }
                        (Accepted::Tcp(stream, peer), Some(tls)) => {
                            keep_alive(&stream, &log);
                            let accepting = TlsAccept {
                                config: tls.current(),
                                settings: settings.clone(),
                                controller: controller.clone(),
                                permit,
                                log: log.clone(),
                            };
                            actix_rt::spawn(accepting.run(stream, peer));
                        }
                        // The configuration refuses [tls] with a Unix
                        // socket listen, so this is plain.
                        (Accepted::Unix(stream), _) => {
                            let (stream, peer) = ClientStream::unix(stream);
                            start(stream, peer, permit);
                        }
                    }
                }
                Err(_) => {
                    drop(accepted);
                    zeoraid_actors::metrics::client_refused();
                    refusals.refused(max_connections, &log);
                }
            },
            // Out of file descriptors and the like: keep serving the
            // connections we have and try again shortly.
            Err(e) => {
                error!(log, "accept failed"; "error" => %e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A client connection whose TLS handshake runs in its own task (the
/// accept loop goes on meanwhile), within `[timeouts] handshake`, with the
/// certificates in force when it was accepted.
struct TlsAccept {
    config: Arc<ServerConfig>,
    settings: Arc<SessionSettings>,
    controller: actix::Addr<Controller>,
    permit: OwnedSemaphorePermit,
    log: Logger,
}

impl TlsAccept {
    async fn run(self, stream: TcpStream, peer: SocketAddr) {
        let accepting = TlsAcceptor::from(self.config).accept(stream);
        let failure = match tokio::time::timeout(self.settings.handshake_timeout, accepting).await {
            Ok(Ok(stream)) => {
                let stream = ClientStream::tls(stream);
                ClientSession::start(
                    stream,
                    ClientPeer::Tcp(peer),
                    self.settings,
                    self.controller,
                    self.permit,
                    &self.log,
                );
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no TLS handshake within [timeouts] handshake".to_owned(),
        };
        // A client without an acceptable certificate ends here.
        warn!(self.log, "client TLS handshake failed"; "peer" => %peer, "error" => failure);
    }
}

fn keep_alive(stream: &TcpStream, log: &Logger) {
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&KEEPALIVE) {
        warn!(log, "cannot set TCP keepalive on a client connection"; "error" => %e);
    }
}

/// Connections refused over the limit, logged at most once per
/// [`REFUSAL_LOG_INTERVAL`] with how many were refused since the last line.
#[derive(Default)]
struct Refusals {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl Refusals {
    fn refused(&mut self, limit: usize, log: &Logger) {
        self.unlogged += 1;
        if self
            .last_logged
            .is_some_and(|at| at.elapsed() < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        warn!(log, "client connection refused: [limits] max_client_connections reached";
            "max_client_connections" => limit, "refused" => self.unlogged);
        self.last_logged = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// Raises the soft descriptor limit (up to the hard one) so that
/// `max_connections` clients plus `reserved` other descriptors fit; warns
/// when they cannot, since clients at the limit would then leave no
/// descriptor for a member's reconnect.
pub fn fit_descriptor_limit(max_connections: usize, reserved: u64, log: &Logger) {
    let wanted = max_connections as u64 + reserved;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return warn!(log, "cannot read the descriptor limit"; "error" => %std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= wanted {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct it is given; lowering or raising
    // the soft limit within the hard one affects only this process.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 && raised.rlim_cur >= wanted {
        return info!(log, "descriptor limit raised for the client limit"; "from" => limit.rlim_cur, "to" => raised.rlim_cur);
    }
    warn!(log, "the descriptor limit is too low for [limits] max_client_connections: members may fail to reconnect while clients use every connection";
        "soft_limit" => limit.rlim_cur, "hard_limit" => limit.rlim_max, "wanted" => wanted,
        "max_client_connections" => max_connections);
}
