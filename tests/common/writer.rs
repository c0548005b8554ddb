//! A write load from a real ZEO client given several addresses: the
//! oracle of the failover tests.
//!
//! [`Writer::start`] runs the project Python on a loop that commits one
//! new object per transaction through
//! `ZEO.ClientStorage.ClientStorage([addr1, addr2, ...])`. That client
//! connects to whichever address listens (only the leading zeoraid does),
//! and after a drop finds the next one by its own retry loop. Every
//! transaction whose `tpc_finish` returned is printed as one JSON line
//! (`{"ack": tid, "oid": oid, "t": monotonic seconds}`) and kept here as an
//! [`Ack`]: what the application was told is durable. Failed attempts
//! (`ClientDisconnected` during a failover, a refused vote) are kept as
//! errors and retried with a new transaction.
//!
//! The script's clock is `time.monotonic()`, Linux's `CLOCK_MONOTONIC`,
//! the same clock as [`monotonic_now`], so a test can compare when an
//! acknowledgement arrived with when it froze etcd.
//!
//! Every wait is bounded; dropping a [`Writer`] kills the script.

use super::runzeo::python;
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use zeo::types::{Oid, Tid, P64};

/// How long one call of the client waits for a connection before it
/// raises `ClientDisconnected` (and the loop tries again).
const CLIENT_WAIT_TIMEOUT_SECS: u32 = 10;

/// Bound for the script to end once asked to (a call in progress may wait
/// up to [`CLIENT_WAIT_TIMEOUT_SECS`] for a connection).
const STOP_BOUND: Duration = Duration::from_secs(15);

/// The script's output lines shown by [`Writer::context`].
const TAIL_LINES: usize = 20;

const SCRIPT: &str = r#"
import json, logging, pickle, sys, threading, time
from persistent.mapping import PersistentMapping
from ZEO.ClientStorage import ClientStorage
from ZODB.Connection import TransactionMetaData
from ZODB.utils import z64

logging.basicConfig(level=logging.CRITICAL)
wait_timeout = float(sys.argv[1])
addrs = [(h, int(p)) for h, p in (a.rsplit(':', 1) for a in sys.argv[2:])]
stop = threading.Event()

def watch_stdin():
    sys.stdin.read()
    stop.set()

def emit(**fields):
    fields['t'] = time.monotonic()
    print(json.dumps(fields), flush=True)

threading.Thread(target=watch_stdin, daemon=True).start()
record = pickle.dumps(PersistentMapping, 3) + pickle.dumps({'data': {}}, 3)
storage = ClientStorage(addrs, storage='1', wait_timeout=wait_timeout)
emit(connected=True)
n = 0
while not stop.is_set():
    n += 1
    txn = TransactionMetaData(b'', b'writer %d' % n)
    try:
        oid = storage.new_oid()
        storage.tpc_begin(txn)
        storage.store(oid, z64, record, '', txn)
        storage.tpc_vote(txn)
        tid = storage.tpc_finish(txn)
        emit(ack=tid.hex(), oid=oid.hex())
    except Exception as e:
        emit(error=repr(e)[:300])
        try:
            storage.tpc_abort(txn)
        except Exception:
            pass
        time.sleep(0.05)
storage.close()
emit(stopped=True)
"#;

/// `CLOCK_MONOTONIC` in seconds: the clock of the script's `t` fields.
pub fn monotonic_now() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass and nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// One transaction the client was told is committed.
#[derive(Clone, Debug, PartialEq)]
pub struct Ack {
    pub tid: Tid,
    /// The object it created.
    pub oid: Oid,
    /// When the client got the answer to `tpc_finish` ([`monotonic_now`]).
    pub at: f64,
}

#[derive(Default)]
struct Seen {
    acks: Vec<Ack>,
    errors: Vec<String>,
    /// Every line, for [`Writer::context`].
    lines: Vec<String>,
    ended: bool,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Seen>,
    grew: Condvar,
}

impl Shared {
    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// See the module documentation.
pub struct Writer {
    child: Child,
    stdin: Option<ChildStdin>,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the load on `addrs` (all of them, in this order).
    pub fn start(addrs: &[SocketAddr]) -> Writer {
        let mut child = Command::new(python())
            .arg("-c")
            .arg(SCRIPT)
            .arg(CLIENT_WAIT_TIMEOUT_SECS.to_string())
            .args(addrs.iter().map(SocketAddr::to_string))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("ZEO_MSGPACK")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
        let shared = Arc::new(Shared::default());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let reader = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || read_lines(BufReader::new(stdout), &shared))
        };
        {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    shared.seen().lines.push(format!("stderr: {line}"));
                }
            });
        }
        Writer {
            stdin: child.stdin.take(),
            child,
            shared,
            reader: Some(reader),
        }
    }

    /// The acknowledgements so far, in order.
    pub fn acks(&self) -> Vec<Ack> {
        self.shared.seen().acks.clone()
    }

    /// The failed attempts so far.
    pub fn errors(&self) -> Vec<String> {
        self.shared.seen().errors.clone()
    }

    /// Waits (bounded) until `count` transactions in all were
    /// acknowledged; panics with the script's output otherwise.
    pub fn wait_acks(&self, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        let mut seen = self.shared.seen();
        while seen.acks.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && !seen.ended,
                "{} of {count} commits acknowledged within {within:?}\n{}",
                seen.acks.len(),
                tail(&seen.lines)
            );
            seen = match self.shared.grew.wait_timeout(seen, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Waits for `more` acknowledgements after the ones so far.
    pub fn wait_more_acks(&self, more: usize, within: Duration) {
        let count = self.acks().len() + more;
        self.wait_acks(count, within);
    }

    /// Asks the script to end after its current transaction (killed after
    /// a bound); returns every acknowledgement.
    pub fn stop(mut self) -> Vec<Ack> {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_BOUND;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.acks()
    }

    /// The script's last output lines, for panic messages.
    pub fn context(&self) -> String {
        tail(&self.shared.seen().lines)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(stdout: impl BufRead, shared: &Shared) {
    for line in stdout.lines().map_while(Result::ok) {
        let parsed: Json = serde_json::from_str(&line).unwrap_or(Json::Null);
        let mut seen = shared.seen();
        if let Some(tid) = parsed["ack"].as_str() {
            let ack = Ack {
                tid: p64_from_hex(tid),
                oid: p64_from_hex(parsed["oid"].as_str().expect("an oid")),
                at: parsed["t"].as_f64().expect("a time"),
            };
            seen.acks.push(ack);
        } else if let Some(error) = parsed["error"].as_str() {
            seen.errors.push(error.to_owned());
        }
        seen.lines.push(line);
        shared.grew.notify_all();
    }
    shared.seen().ended = true;
    shared.grew.notify_all();
}

fn p64_from_hex(hex: &str) -> P64 {
    let bytes: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    P64(bytes.try_into().expect("8 bytes"))
}

fn tail(lines: &[String]) -> String {
    let start = lines.len().saturating_sub(TAIL_LINES);
    format!("--- last writer lines ---\n{}", lines[start..].join("\n"))
}
