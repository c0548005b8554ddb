//! A TCP relay that adds a fixed one-way delay: a member "on another host".
//!
//! ```text
//! link_delay LISTEN_ADDR UPSTREAM_ADDR DELAY_US     e.g. link_delay 127.0.0.1:8100 127.0.0.1:8101 500
//! ```
//!
//! Every byte read from either side is written to the other side
//! `DELAY_US` microseconds after it was read, in order; the relay keeps
//! reading meanwhile, so the delay adds latency and no bandwidth limit (a
//! long link, not a slow one). A round trip through it takes two delays
//! longer. This kernel has no `netem` queueing discipline, so
//! `bench/run --link-delay-us` puts one of these in front of each member and
//! one in front of the plain reference server, and compares them like that.
//!
//! Each direction of each connection has a reading thread and a writing
//! thread joined by a channel: a blocking thread that sleeps until a chunk
//! is due wakes within microseconds (the timer slack is set to 1 µs),
//! where an async runtime's timer rounds sleeps up to whole milliseconds.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn usage(msg: &str) -> ExitCode {
    eprintln!("link_delay: {msg}");
    eprintln!(
        "usage: link_delay LISTEN_ADDR UPSTREAM_ADDR DELAY_US   (e.g. 127.0.0.1:8100 127.0.0.1:8101 500)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, delay] = args.as_slice() else {
        return usage(&format!("expected 3 arguments, got {}", args.len()));
    };
    let listen: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => return usage(&format!("bad LISTEN_ADDR {listen:?}: {e}")),
    };
    let upstream: SocketAddr = match upstream.parse() {
        Ok(a) => a,
        Err(e) => return usage(&format!("bad UPSTREAM_ADDR {upstream:?}: {e}")),
    };
    let delay = match delay.parse::<u64>() {
        Ok(us) => Duration::from_micros(us),
        Err(e) => return usage(&format!("bad DELAY_US {delay:?}: {e}")),
    };
    // Sleeps end within 1 µs of their deadline instead of the default 50 µs
    // slack; threads inherit the setting.
    // SAFETY: prctl with PR_SET_TIMERSLACK takes one integer argument and
    // changes nothing but this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000u64) };
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("link_delay: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    for client in listener.incoming() {
        match client {
            Ok(client) => {
                thread::spawn(move || {
                    if let Err(e) = relay(client, upstream, delay) {
                        eprintln!("link_delay: connection to {upstream}: {e}");
                    }
                });
            }
            Err(e) => eprintln!("link_delay: accept: {e}"),
        }
    }
    ExitCode::SUCCESS
}

/// Connects to `upstream` and delays both directions until either side closes.
fn relay(client: TcpStream, upstream: SocketAddr, delay: Duration) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let up = delayed_copy(client.try_clone()?, server.try_clone()?, delay);
    let down = delayed_copy(server, client, delay);
    let _ = up.join();
    let _ = down.join();
    Ok(())
}

/// Copies `from` to `to`, each chunk `delay` after it was read. Returns the
/// reading thread; the writing thread ends when the reader has ended and
/// every chunk is written (then it shuts `to`'s writing side, so the peer
/// sees the end of the stream as it would without the relay).
fn delayed_copy(mut from: TcpStream, mut to: TcpStream, delay: Duration) -> thread::JoinHandle<()> {
    let (chunks, due_chunks) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        for (due, chunk) in due_chunks {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if chunks.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        drop(chunks);
        let _ = writer.join();
        let _ = from.shutdown(Shutdown::Read);
    })
}
