//! A do-nothing TCP byte relay: the "physical floor" of any ZEO proxy.
//!
//! ```text
//! tcp_relay LISTEN_ADDR UPSTREAM_ADDR      e.g. tcp_relay 127.0.0.1:8100 127.0.0.1:8101
//! ```
//!
//! For every accepted client it opens one connection to the upstream server,
//! sets `TCP_NODELAY` on both sockets and copies bytes both ways until either
//! side closes. It parses nothing and buffers nothing beyond what a copy
//! needs, so any proxy in front of a ZEO server costs at least what this one
//! costs: one extra loopback hop per request and per reply.
//!
//! `bench/run --floor` puts it in front of one plain `runzeo` and measures it
//! against a plain `runzeo`, the same way it measures zeoraid; the ratio it
//! reaches is the floor quoted in docs/performance.md, which separates the
//! cost of the extra hop (unavoidable for any proxy) from zeoraid's own work.
//!
//! It runs on a current-thread runtime, as zeoraid's daemon does, so both use
//! at most one core for relaying and the comparison is fair.

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::{TcpListener, TcpStream};

fn usage(msg: &str) -> ExitCode {
    eprintln!("tcp_relay: {msg}");
    eprintln!("usage: tcp_relay LISTEN_ADDR UPSTREAM_ADDR   (e.g. 127.0.0.1:8100 127.0.0.1:8101)");
    ExitCode::from(2)
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|e| format!("bad {what} {s:?}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        return usage(&format!("expected 2 arguments, got {}", args.len()));
    };
    let (listen, upstream) = match (
        parse_addr("LISTEN_ADDR", listen),
        parse_addr("UPSTREAM_ADDR", upstream),
    ) {
        (Ok(l), Ok(u)) => (l, u),
        (Err(e), _) | (_, Err(e)) => return usage(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tcp_relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(listen, upstream)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp_relay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts clients forever; each one gets its own task and upstream connection.
async fn serve(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    loop {
        let (client, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = relay(client, upstream).await {
                eprintln!("tcp_relay: {peer} <-> {upstream}: {e}");
            }
        });
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
