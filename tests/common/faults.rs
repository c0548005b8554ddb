//! Fault injection for integration tests: faults a real `runzeo` cannot
//! produce on demand.
//!
//! - [`FakeServer`]: a scripted fake ZEO server ([`Behavior`]) for the
//!   member actor's error paths: garbage replies, a ZEO 4 announcement, a
//!   close right after the handshake, total silence, a lying frame header,
//!   and a server that answers `register`/`get_info` and then never again
//!   (call deadlines without SIGSTOP).
//! - [`Relay`]: a TCP relay in front of a real server that can cut, stall
//!   and refuse connections, cut a link exactly before a given call
//!   reaches the server (failure semantics: a member lost at `tpc_finish`),
//!   and delay the server's replies (a slow member that still answers).
//!
//! Both listen on a free loopback port (`127.0.0.1:0`, so no port race) and
//! run on plain std threads: tests may be sync or async, no tokio runtime
//! is needed.  Like `runzeo.rs`, every wait is bounded and `Drop` always
//! cleans up: it stops accepting, shuts down every socket (which wakes any
//! thread blocked on it), and joins every thread within [`STOP_BOUND`].  A
//! thread that misses the bound is reported on stderr and left detached
//! rather than hanging the test (that would be a bug in this module).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zeo::encoding::Encoding;
use zeo::framing::{encode_frame, HEADER_LEN};
use zeo::handshake::{server_accept, ClientHello};
use zeo::message::Message;
use zeo::Value;

/// How long `Drop` waits, in total, for the threads of a [`FakeServer`] or
/// [`Relay`] to finish.
pub const STOP_BOUND: Duration = Duration::from_secs(5);

/// The payload [`Behavior::GarbageAfterHandshake`] answers with: a pickle
/// protocol header followed by bytes that are no opcode.
pub const GARBAGE_PAYLOAD: &[u8] = b"\x80\x03\xff\xff";

/// The length [`Behavior::HugeFrameHeader`] announces (2 GiB - 1: above any
/// sane frame limit, and a client that allocates it up front is caught).
pub const HUGE_FRAME_LEN: u32 = 0x7fff_ffff;

/// How many payload bytes [`Behavior::HugeFrameHeader`] sends after the
/// lying header.
pub const HUGE_FRAME_SENT: usize = 10;

/// The tid [`Behavior::ReplyThenStall`] returns for `register` (z64: a
/// storage that has never committed).
pub const FAKE_TID: [u8; 8] = [0; 8];

/// Client->server frames up to this payload size are buffered whole by the
/// [`Relay`], inspected for [`Relay::cut_before_frame_containing`] and
/// counted by [`Relay::frames_seen`].  Larger ones (none in ordinary ZEO
/// traffic) are streamed through uninspected, so a lying header cannot make
/// the relay buffer gigabytes.
pub const INSPECT_LIMIT: usize = 16 * 1024 * 1024;

/// How many bytes of client->server payloads the relay keeps for
/// [`Relay::frames_seen`]; beyond that `frames_seen` panics instead of
/// answering wrongly.
const LOG_LIMIT: usize = 64 * 1024 * 1024;

/// The largest frame a [`FakeServer`] reads (it only ever gets small calls).
const MAX_FAKE_FRAME: usize = 16 * 1024 * 1024;

/// How often the accept loops look at their stop flag.  Accepting is
/// non-blocking so that `Drop` never depends on waking a blocked `accept`.
const ACCEPT_POLL: Duration = Duration::from_millis(5);

/// Bound for the relay's connect to its upstream.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound for [`Relay::stall`] to wait until no write is in progress.
const STALL_DRAIN_BOUND: Duration = Duration::from_secs(2);

/// How long a stalled pump sleeps between looks at its stop conditions (it
/// is also woken by [`Relay::resume`], cuts and `Drop`).
const STALL_RECHECK: Duration = Duration::from_millis(100);

/// Relay read buffer size.
const CHUNK: usize = 64 * 1024;

/// Where a reply held by [`Relay::delay_server_replies`] would be due
/// beyond what an `Instant` can express: far enough to be "never" in a
/// test.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 86_400);

/// Poll `cond` until it is true or `timeout` has passed; returns the last
/// result.  For counters such as [`FakeServer::connections`] that the
/// background threads update shortly after a client's `connect` returns.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// What a [`FakeServer`] does with each connection it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Announce `Z5`, read the client's handshake, and answer the client's
    /// first message with a frame whose payload is no valid pickle
    /// ([`GARBAGE_PAYLOAD`]); then read and ignore until the client closes.
    GarbageAfterHandshake,
    /// Announce `Z4`, like a ZEO 4 server: a ZEO 6 client must refuse it.
    /// Then read and ignore until the client closes.
    BadAnnouncement,
    /// Announce `Z5`, read the client's handshake frame, close.
    CloseAfterHandshake,
    /// Accept and never send anything, not even the announcement; read and
    /// ignore until the client closes.
    Silent,
    /// Announce `Z5`, read the handshake, and on the client's first message
    /// send a header announcing [`HUGE_FRAME_LEN`] bytes followed by
    /// [`HUGE_FRAME_SENT`] bytes; hold the connection open.
    HugeFrameHeader,
    /// Answer `register` with [`FAKE_TID`] and `get_info` with a small
    /// info dict (see [`fake_info`]) like a real server, in the client's
    /// encoding; never answer anything else (the connection stays open and
    /// keeps reading).  For call deadlines without SIGSTOP.
    ReplyThenStall,
}

/// The `get_info` answer of [`Behavior::ReplyThenStall`]:
/// `{'interfaces': (), 'supportsUndo': True, 'length': 0, 'size': 0,
/// 'name': 'fake', 'supports_record_iternext': True}`.
pub fn fake_info() -> Value {
    Value::Dict(vec![
        (Value::str("interfaces"), Value::Tuple(Vec::new())),
        (Value::str("supportsUndo"), Value::Bool(true)),
        (Value::str("length"), Value::Int(0)),
        (Value::str("size"), Value::Int(0)),
        (Value::str("name"), Value::str("fake")),
        (Value::str("supports_record_iternext"), Value::Bool(true)),
    ])
}

/// A scripted fake ZEO server on a free loopback port.  Every accepted
/// connection is served independently by its own thread according to the
/// [`Behavior`]; the server keeps accepting, so reconnects are seen and
/// counted.  Dropping it closes the port and every connection.
pub struct FakeServer {
    addr: SocketAddr,
    behavior: Behavior,
    shared: Arc<FakeShared>,
    acceptor: Option<JoinHandle<()>>,
}

struct FakeShared {
    thread_prefix: String,
    stop: AtomicBool,
    connections: AtomicUsize,
    next_id: AtomicU64,
    /// A clone of every open connection, so `Drop` can shut them down (and
    /// thereby wake handlers blocked reading).  Handlers remove their entry
    /// when they finish, or the clone would keep the socket open.
    open: Mutex<HashMap<u64, TcpStream>>,
    handlers: Mutex<Vec<JoinHandle<()>>>,
    calls: Mutex<Vec<String>>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .field("behavior", &self.behavior)
            .field("connections", &self.connections())
            .finish()
    }
}

impl FakeServer {
    /// Listen on a free loopback port and serve every connection with
    /// `behavior`.  Panics if no port can be bound.
    pub fn start(behavior: Behavior) -> FakeServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("FakeServer: cannot bind a loopback port: {e}"));
        let addr = listener.local_addr().expect("FakeServer: local_addr");
        let shared = Arc::new(FakeShared {
            thread_prefix: format!("fake{}:", addr.port()),
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            handlers: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&shared);
            spawn_acceptor(
                format!("{}a", shared.thread_prefix),
                listener,
                move || stop.stop.load(Ordering::SeqCst),
                move |stream| fake_accept(&shared, behavior, stream),
            )
        };
        FakeServer {
            addr,
            behavior,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The address it listens on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The behavior it was started with.
    pub fn behavior(&self) -> Behavior {
        self.behavior
    }

    /// How many connections it has accepted so far (all of them, closed
    /// ones included).  A client's `connect` can return before the accept
    /// thread has counted it: poll with [`wait_until`].
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every thread of this server has a name starting with this
    /// (`fake<port>:`), so a test can check that none survives `Drop`
    /// (Linux shows the first 15 bytes of a name, which keep the prefix).
    pub fn thread_name_prefix(&self) -> &str {
        &self.shared.thread_prefix
    }

    /// How many connections are still open on the server's side.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.open).len()
    }

    /// Names of the calls it has received after a handshake, over all
    /// connections in arrival order (as far as it read and could decode
    /// them: every message for [`Behavior::ReplyThenStall`], the first one
    /// for the behaviors that react to it, none for the others).
    pub fn calls(&self) -> Vec<String> {
        lock(&self.shared.calls).clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let deadline = Instant::now() + STOP_BOUND;
        self.shared.stop.store(true, Ordering::SeqCst);
        // The acceptor first: once it has stopped, no new connection can
        // slip past the shutdown below.
        join_bounded(
            "FakeServer acceptor",
            self.acceptor.take().into_iter().collect(),
            deadline,
        );
        for stream in lock(&self.shared.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let handlers = std::mem::take(&mut *lock(&self.shared.handlers));
        join_bounded("FakeServer connection", handlers, deadline);
        lock(&self.shared.open).clear();
    }
}

fn fake_accept(shared: &Arc<FakeShared>, behavior: Behavior, stream: TcpStream) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    match stream.try_clone() {
        Ok(clone) => {
            lock(&shared.open).insert(id, clone);
        }
        Err(e) => {
            // Without a clone `Drop` could not wake the handler: do not serve.
            eprintln!("FakeServer: cannot clone an accepted socket: {e}");
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
    let handler_shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(format!("{}{id}", shared.thread_prefix))
        .spawn(move || {
            let mut stream = stream;
            // Errors only mean the client (or `Drop`) closed the connection.
            let _ = fake_serve(&handler_shared, behavior, &mut stream);
            let _ = stream.shutdown(Shutdown::Both);
            lock(&handler_shared.open).remove(&id);
        });
    match spawned {
        Ok(handle) => push_handle(&shared.handlers, handle),
        Err(e) => {
            eprintln!("FakeServer: cannot spawn a connection thread: {e}");
            if let Some(stream) = lock(&shared.open).remove(&id) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

/// One connection, start to finish.
fn fake_serve(shared: &FakeShared, behavior: Behavior, stream: &mut TcpStream) -> io::Result<()> {
    match behavior {
        Behavior::Silent => drain(stream),
        Behavior::BadAnnouncement => {
            write_frame(stream, b"Z4")?;
            drain(stream)
        }
        Behavior::CloseAfterHandshake => {
            write_frame(stream, b"Z5")?;
            read_frame(stream)?;
            Ok(())
        }
        Behavior::GarbageAfterHandshake => {
            let Some(encoding) = fake_handshake(stream)? else {
                return Ok(());
            };
            let Some(first) = read_frame(stream)? else {
                return Ok(());
            };
            record_call(shared, encoding, first);
            write_frame(stream, GARBAGE_PAYLOAD)?;
            drain(stream)
        }
        Behavior::HugeFrameHeader => {
            let Some(encoding) = fake_handshake(stream)? else {
                return Ok(());
            };
            let Some(first) = read_frame(stream)? else {
                return Ok(());
            };
            record_call(shared, encoding, first);
            let mut wire = HUGE_FRAME_LEN.to_be_bytes().to_vec();
            wire.extend_from_slice(&[0xab; HUGE_FRAME_SENT]);
            stream.write_all(&wire)?;
            drain(stream)
        }
        Behavior::ReplyThenStall => {
            let Some(encoding) = fake_handshake(stream)? else {
                return Ok(());
            };
            while let Some(payload) = read_frame(stream)? {
                let Some(message) = decode_message(encoding, payload) else {
                    // A real server closes on an undecodable message too.
                    return Ok(());
                };
                let Message::Call {
                    msgid, oneway, name, ..
                } = message
                else {
                    continue;
                };
                lock(&shared.calls).push(name.clone());
                if oneway {
                    continue;
                }
                let result = match name.as_str() {
                    "register" => Value::bytes(FAKE_TID.to_vec()),
                    "get_info" => fake_info(),
                    _ => continue,
                };
                let reply = encoding
                    .encode(&Message::reply(msgid, result).into_value())
                    .map_err(invalid_data)?;
                write_frame(stream, &reply)?;
            }
            Ok(())
        }
    }
}

/// Announce `Z5` and read the client's handshake; the encoding the client
/// chose (a ZEO server follows the client's letter), or `None` if the
/// client closed, asked `ruok` or sent a bad handshake (the fake then
/// closes, as a real server does after a bad handshake).
fn fake_handshake(stream: &mut TcpStream) -> io::Result<Option<Encoding>> {
    write_frame(stream, b"Z5")?;
    let Some(hello) = read_frame(stream)? else {
        return Ok(None);
    };
    Ok(match server_accept(&hello) {
        Ok(ClientHello::Speak(protocol)) => Some(protocol.into()),
        Ok(ClientHello::Ruok) | Err(_) => None,
    })
}

fn decode_message(encoding: Encoding, payload: Vec<u8>) -> Option<Message> {
    let value = encoding.decode(&Bytes::from(payload)).ok()?;
    Message::from_value(value).ok()
}

fn record_call(shared: &FakeShared, encoding: Encoding, payload: Vec<u8>) {
    if let Some(Message::Call { name, .. }) = decode_message(encoding, payload) {
        lock(&shared.calls).push(name);
    }
}

fn write_frame(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    stream.write_all(&encode_frame(payload).map_err(invalid_data)?)
}

/// One frame's payload; `None` on a clean EOF before its header.
fn read_frame(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match stream.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FAKE_FRAME {
        return Err(invalid_data(format!("frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    Ok(Some(payload))
}

/// Read and ignore until the peer closes (or `Drop` shuts the socket down).
fn drain(stream: &mut TcpStream) -> io::Result<()> {
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A TCP relay between clients and one upstream server, on a free loopback
/// port.  Each accepted connection gets its own upstream connection and
/// two forwarding threads; bytes are forwarded in order, whatever the read
/// sizes.  The controls act on all current connections.  Dropping the relay
/// closes its port and every connection (both sides).
///
/// Client->server traffic is forwarded frame by frame (the relay parses
/// the ZEO length prefixes; the first frame is the client's handshake), so
/// a frame can be dropped whole by [`Relay::cut_before_frame_containing`].
/// Server->client traffic is forwarded as it comes, or held for
/// [`Relay::delay_server_replies`].
pub struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<RelayShared>,
    acceptor: Option<JoinHandle<()>>,
}

struct RelayShared {
    thread_prefix: String,
    upstream: SocketAddr,
    stop: AtomicBool,
    refuse_new: AtomicBool,
    connections: AtomicUsize,
    refused: AtomicUsize,
    frames_dropped: AtomicUsize,
    next_id: AtomicU64,
    /// Open links; a link removes itself when both of its pumps are done
    /// (dropping its socket clones).
    links: Mutex<HashMap<u64, Arc<Link>>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
    flow: Mutex<Flow>,
    /// Signalled on resume, on every finished write and on cuts.
    flow_changed: Condvar,
    cut_rule: Mutex<Option<Vec<u8>>>,
    /// [`Relay::corrupt_next_frame_containing`].
    corrupt_rule: Mutex<Option<Vec<u8>>>,
    log: Mutex<FrameLog>,
    /// [`Relay::delay_server_replies`], in nanoseconds.
    reply_delay_nanos: AtomicU64,
}

impl RelayShared {
    fn reply_delay(&self) -> Duration {
        Duration::from_nanos(self.reply_delay_nanos.load(Ordering::SeqCst))
    }
}

#[derive(Default)]
struct Flow {
    stalled: bool,
    /// Writes in progress (started before a stall).
    in_flight: usize,
}

#[derive(Default)]
struct FrameLog {
    payloads: Vec<Vec<u8>>,
    bytes: usize,
    overflowed: bool,
}

/// One relayed connection: the client's socket and the upstream socket.
struct Link {
    client: TcpStream,
    server: TcpStream,
    closed: AtomicBool,
    pumps_done: AtomicUsize,
}

impl Link {
    /// Close both sides now.  Shutting the sockets down also wakes the
    /// pumps blocked on them.
    fn cut(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    /// For thread names, which the OS cuts to 15 bytes.
    fn letter(self) -> char {
        match self {
            Direction::ClientToServer => 'c',
            Direction::ServerToClient => 's',
        }
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("connections", &self.connections())
            .field("active", &self.active())
            .finish()
    }
}

impl Relay {
    /// A relay in front of each member whose index is in `relayed`, by
    /// member (`None`: reached directly).
    pub fn in_front_of(members: &[super::runzeo::RunZeo], relayed: &[usize]) -> Vec<Option<Relay>> {
        (0..members.len())
            .map(|i| relayed.contains(&i).then(|| Relay::start(members[i].addr())))
            .collect()
    }

    /// Listen on a free loopback port and relay every connection to
    /// `upstream` (e.g. a `RunZeo`'s address).  Panics if no port can be
    /// bound.
    pub fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("Relay: cannot bind a loopback port: {e}"));
        let addr = listener.local_addr().expect("Relay: local_addr");
        let shared = Arc::new(RelayShared {
            thread_prefix: format!("relay{}:", addr.port()),
            upstream,
            stop: AtomicBool::new(false),
            refuse_new: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            frames_dropped: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            links: Mutex::new(HashMap::new()),
            pumps: Mutex::new(Vec::new()),
            flow: Mutex::new(Flow::default()),
            flow_changed: Condvar::new(),
            cut_rule: Mutex::new(None),
            corrupt_rule: Mutex::new(None),
            log: Mutex::new(FrameLog::default()),
            reply_delay_nanos: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&shared);
            spawn_acceptor(
                format!("{}a", shared.thread_prefix),
                listener,
                move || stop.stop.load(Ordering::SeqCst),
                move |stream| relay_accept(&shared, stream),
            )
        };
        Relay {
            addr,
            upstream,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The address clients connect to (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server it relays to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Connections accepted and relayed so far (cut and closed ones
    /// included; refused ones not).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections closed at once without relaying: while
    /// [`Relay::refuse_new`] was on, or because the upstream did not accept.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Every thread of this relay has a name starting with this
    /// (`relay<port>:`), so a test can check that none survives `Drop`.
    pub fn thread_name_prefix(&self) -> &str {
        &self.shared.thread_prefix
    }

    /// Relayed connections not yet finished in both directions.
    pub fn active(&self) -> usize {
        lock(&self.shared.links).len()
    }

    /// Close both sides of every current connection now (the client sees
    /// EOF, the server sees EOF); new connections are still accepted and
    /// relayed.  A network failure without a process failing.
    pub fn cut(&self) {
        for link in lock(&self.shared.links).values() {
            link.cut();
        }
        self.shared.flow_changed.notify_all();
    }

    /// Stop forwarding bytes in both directions without closing anything,
    /// on current and new connections: a hung network.  Once this returns
    /// no more bytes are forwarded until [`Relay::resume`] (a write that
    /// was already in progress is waited for, up to 2 s).  Bytes keep
    /// arriving at the relay (held, then the kernel buffers fill up).
    pub fn stall(&self) {
        let deadline = Instant::now() + STALL_DRAIN_BOUND;
        let mut flow = lock(&self.shared.flow);
        flow.stalled = true;
        while flow.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!("Relay::stall: a write is still blocked after {STALL_DRAIN_BOUND:?}");
                break;
            }
            flow = wait_timeout(&self.shared.flow_changed, flow, left);
        }
    }

    /// Forward again what [`Relay::stall`] held back, in order.
    pub fn resume(&self) {
        lock(&self.shared.flow).stalled = false;
        self.shared.flow_changed.notify_all();
    }

    /// Hold every byte the server sends for `delay` after it reached the
    /// relay before forwarding it to the client, on current and new
    /// connections: a member that still answers, only late.  A latency,
    /// not a throughput limit: replies that arrive together leave together,
    /// in order, `delay` later (the relay keeps reading meanwhile).  Applies
    /// to bytes arriving from now on; bytes already held keep their time.
    /// `Duration::ZERO` turns it off.  Cuts, [`Relay::stall`] and `Drop`
    /// work as without a delay (held bytes are discarded by a cut).
    pub fn delay_server_replies(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.shared.reply_delay_nanos.store(nanos, Ordering::SeqCst);
    }

    /// While `refuse`, close new connections as soon as they are accepted
    /// (the client sees its connect succeed and then EOF: a server that is
    /// reachable but not serving).  Current connections are not affected.
    pub fn refuse_new(&self, refuse: bool) {
        self.shared.refuse_new.store(refuse, Ordering::SeqCst);
    }

    /// Arm a one-shot cut: the next client->server frame whose payload
    /// contains `needle` (e.g. `b"tpc_finish"`, the method name inside the
    /// pickled call) is dropped, not forwarded, and its connection is cut
    /// (both sides).  Frames before it are forwarded normally.  The rule
    /// then disarms itself, so a reconnected client works again; arm it
    /// again for another cut.  Replaces a rule that has not fired yet.
    pub fn cut_before_frame_containing(&self, needle: &[u8]) {
        *lock(&self.shared.cut_rule) = Some(needle.to_vec());
    }

    /// Arm a one-shot corruption: the next client->server frame whose
    /// payload contains `needle` (e.g. `b"storeBlobChunk"`) is forwarded
    /// with the byte in the middle of its payload inverted (inside a blob
    /// chunk's data, for a chunk of any size), as a faulty network card or
    /// disk would leave it; the frame still decodes. The rule then disarms
    /// itself.
    pub fn corrupt_next_frame_containing(&self, needle: &[u8]) {
        *lock(&self.shared.corrupt_rule) = Some(needle.to_vec());
    }

    /// Disarm a rule set by [`Relay::cut_before_frame_containing`] that has
    /// not fired.
    pub fn clear_cut_rule(&self) {
        *lock(&self.shared.cut_rule) = None;
    }

    /// How many frames were dropped by [`Relay::cut_before_frame_containing`]
    /// (one per fired rule).
    pub fn frames_dropped(&self) -> usize {
        self.shared.frames_dropped.load(Ordering::SeqCst)
    }

    /// How many client->server frames whose payload contains `needle` have
    /// arrived at the relay, over all connections, handshake frames and
    /// dropped frames included (frames above [`INSPECT_LIMIT`] are not
    /// inspected and never count).  An empty needle counts every frame.
    /// Panics if more than 64 MiB of payloads went through, because the
    /// relay stopped keeping them then.
    pub fn frames_seen(&self, needle: &[u8]) -> usize {
        let log = lock(&self.shared.log);
        assert!(
            !log.overflowed,
            "Relay::frames_seen: more than {LOG_LIMIT} bytes of frames went through; the log is incomplete"
        );
        log.payloads.iter().filter(|p| contains(p, needle)).count()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let deadline = Instant::now() + STOP_BOUND;
        self.shared.stop.store(true, Ordering::SeqCst);
        join_bounded(
            "Relay acceptor",
            self.acceptor.take().into_iter().collect(),
            deadline,
        );
        self.cut();
        let pumps = std::mem::take(&mut *lock(&self.shared.pumps));
        join_bounded("Relay pump", pumps, deadline);
        lock(&self.shared.links).clear();
    }
}

fn relay_accept(shared: &Arc<RelayShared>, client: TcpStream) {
    if shared.refuse_new.load(Ordering::SeqCst) {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let server = match TcpStream::connect_timeout(&shared.upstream, UPSTREAM_CONNECT_TIMEOUT) {
        Ok(server) => server,
        Err(_) => {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let clones = (|| {
        Ok::<_, io::Error>((
            client.try_clone()?,
            server.try_clone()?,
            client.try_clone()?,
            server.try_clone()?,
        ))
    })();
    let Ok((c2s_src, c2s_dst, s2c_dst, s2c_src)) = clones else {
        eprintln!("Relay: cannot clone sockets; closing the connection");
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    };
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let link = Arc::new(Link {
        client,
        server,
        closed: AtomicBool::new(false),
        pumps_done: AtomicUsize::new(0),
    });
    lock(&shared.links).insert(id, Arc::clone(&link));
    for (direction, src, dst) in [
        (Direction::ClientToServer, c2s_src, c2s_dst),
        (Direction::ServerToClient, s2c_src, s2c_dst),
    ] {
        let shared_for_pump = Arc::clone(shared);
        let link_for_pump = Arc::clone(&link);
        let spawned = thread::Builder::new()
            .name(format!("{}{id}{}", shared.thread_prefix, direction.letter()))
            .spawn(move || {
                pump(&shared_for_pump, &link_for_pump, direction, src, dst);
                if link_for_pump.pumps_done.fetch_add(1, Ordering::SeqCst) == 1 {
                    lock(&shared_for_pump.links).remove(&id);
                }
            });
        match spawned {
            Ok(handle) => push_handle(&shared.pumps, handle),
            Err(e) => {
                eprintln!("Relay: cannot spawn a pump thread: {e}");
                link.cut();
                if link.pumps_done.fetch_add(1, Ordering::SeqCst) == 1 {
                    lock(&shared.links).remove(&id);
                }
            }
        }
    }
}

/// Forward one direction of a link until EOF, an error or a cut.  EOF is
/// passed on as a half-close (ZEO peers close the whole connection on EOF,
/// so the other direction ends soon after); an error cuts the link.
fn pump(shared: &RelayShared, link: &Link, direction: Direction, mut src: TcpStream, mut dst: TcpStream) {
    if direction == Direction::ServerToClient {
        return pump_replies(shared, link, src, dst);
    }
    let mut buf = vec![0u8; CHUNK];
    let mut scanner = FrameScanner::default();
    let mut pieces = Vec::new();
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => {
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                link.cut();
                return;
            }
        };
        scanner.push(&buf[..n], &mut pieces);
        for piece in pieces.drain(..) {
            let bytes = match piece {
                Piece::Raw(bytes) => bytes,
                Piece::Frame(mut frame) => {
                    corrupt(shared, &mut frame[HEADER_LEN..]);
                    if inspect(shared, &frame[HEADER_LEN..]) {
                        shared.frames_dropped.fetch_add(1, Ordering::SeqCst);
                        link.cut();
                        shared.flow_changed.notify_all();
                        return;
                    }
                    frame
                }
            };
            if forward(shared, link, &mut dst, &bytes).is_err() {
                link.cut();
                return;
            }
        }
    }
}

/// The server->client direction of a link: bytes are forwarded as they
/// come unless [`Relay::delay_server_replies`] is set; then each chunk is
/// queued with the time it is due and the pump keeps reading, with a read
/// timeout up to the first chunk's due time, so it sleeps in `read` and
/// wakes for new bytes or a due chunk, never spinning.  (The read timeout
/// is this socket's own: only this pump reads from the server side.)
fn pump_replies(shared: &RelayShared, link: &Link, mut src: TcpStream, mut dst: TcpStream) {
    let mut buf = vec![0u8; CHUNK];
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut read_timeout: Option<Duration> = None;
    loop {
        while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            let (_, bytes) = held.pop_front().expect("a front chunk");
            if forward(shared, link, &mut dst, &bytes).is_err() {
                link.cut();
                return;
            }
        }
        // A zero read timeout is refused by the OS; what is due was sent
        // above, so the wait is rounded up to a millisecond.
        let timeout = held.front().map(|(due, _)| {
            due.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        if timeout != read_timeout {
            if src.set_read_timeout(timeout).is_err() {
                link.cut();
                return;
            }
            read_timeout = timeout;
        }
        let n = match src.read(&mut buf) {
            Ok(0) => {
                // The server closed: what it sent before still arrives,
                // late, then the EOF.
                for (due, bytes) in held.drain(..) {
                    if !sleep_until(shared, link, due) || forward(shared, link, &mut dst, &bytes).is_err() {
                        link.cut();
                        return;
                    }
                }
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => {
                link.cut();
                return;
            }
        };
        let delay = shared.reply_delay();
        if delay.is_zero() && held.is_empty() {
            if forward(shared, link, &mut dst, &buf[..n]).is_err() {
                link.cut();
                return;
            }
        } else {
            // Behind held bytes even when the delay was just turned off,
            // so the order is kept.
            let now = Instant::now();
            let due = now.checked_add(delay).unwrap_or_else(|| now + FAR_FUTURE);
            held.push_back((due, buf[..n].to_vec()));
        }
    }
}

/// Wait until `due`; false if the link is cut or the relay stops first.
/// [`Relay::cut`] and `Drop` wake the wait at once; a cut by the other
/// pump is noticed within [`STALL_RECHECK`].
fn sleep_until(shared: &RelayShared, link: &Link, due: Instant) -> bool {
    let mut flow = lock(&shared.flow);
    loop {
        if link.is_closed() || shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        flow = wait_timeout(&shared.flow_changed, flow, left.min(STALL_RECHECK));
    }
}

/// Log a client->server payload; true if the armed cut rule matches it
/// (the rule is then disarmed).
fn inspect(shared: &RelayShared, payload: &[u8]) -> bool {
    {
        let mut log = lock(&shared.log);
        if log.bytes + payload.len() > LOG_LIMIT {
            log.overflowed = true;
        } else {
            log.bytes += payload.len();
            log.payloads.push(payload.to_vec());
        }
    }
    let mut rule = lock(&shared.cut_rule);
    if rule.as_deref().is_some_and(|needle| contains(payload, needle)) {
        *rule = None;
        return true;
    }
    false
}

/// Inverts the middle byte of `payload` if the armed corruption rule
/// matches it (the rule is then disarmed).
fn corrupt(shared: &RelayShared, payload: &mut [u8]) {
    let mut rule = lock(&shared.corrupt_rule);
    if rule.as_deref().is_some_and(|needle| contains(payload, needle)) {
        *rule = None;
        let middle = payload.len() / 2;
        payload[middle] ^= 0xff;
    }
}

/// Write `bytes` to `dst` unless stalled (then wait for resume, a cut or
/// stop).  Counts the write as in flight so [`Relay::stall`] can wait for it.
fn forward(shared: &RelayShared, link: &Link, dst: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    {
        let mut flow = lock(&shared.flow);
        loop {
            if link.is_closed() || shared.stop.load(Ordering::SeqCst) {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
            if !flow.stalled {
                break;
            }
            flow = wait_timeout(&shared.flow_changed, flow, STALL_RECHECK);
        }
        flow.in_flight += 1;
    }
    let result = dst.write_all(bytes);
    lock(&shared.flow).in_flight -= 1;
    shared.flow_changed.notify_all();
    result
}

/// Splits a byte stream into whole ZEO frames (header + payload) without
/// trusting the announced length for allocation; frames above
/// [`INSPECT_LIMIT`] come out as raw pieces as their bytes arrive.
#[derive(Default)]
struct FrameScanner {
    buf: Vec<u8>,
    /// Bytes of an uninspected (oversized) frame still to pass through.
    passthrough: usize,
}

enum Piece {
    /// A whole frame, header included.
    Frame(Vec<u8>),
    /// Part of an oversized frame.
    Raw(Vec<u8>),
}

impl FrameScanner {
    fn push(&mut self, mut data: &[u8], out: &mut Vec<Piece>) {
        if self.passthrough > 0 {
            let n = self.passthrough.min(data.len());
            out.push(Piece::Raw(data[..n].to_vec()));
            self.passthrough -= n;
            data = &data[n..];
        }
        if data.is_empty() {
            return;
        }
        self.buf.extend_from_slice(data);
        while self.buf.len() >= HEADER_LEN {
            let mut header = [0u8; HEADER_LEN];
            header.copy_from_slice(&self.buf[..HEADER_LEN]);
            let len = u32::from_be_bytes(header) as usize;
            let total = HEADER_LEN + len;
            if len > INSPECT_LIMIT {
                let take = total.min(self.buf.len());
                out.push(Piece::Raw(self.buf.drain(..take).collect()));
                self.passthrough = total - take;
                if self.passthrough > 0 {
                    return;
                }
                continue;
            }
            if self.buf.len() < total {
                return;
            }
            out.push(Piece::Frame(self.buf.drain(..total).collect()));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Accept connections until `stopped()`; `on_accept` runs on the accept
/// thread, so whatever it registers is registered before `Drop` (which
/// joins this thread first) shuts the registered sockets down.
fn spawn_acceptor(
    name: String,
    listener: TcpListener,
    stopped: impl Fn() -> bool + Send + 'static,
    mut on_accept: impl FnMut(TcpStream) + Send + 'static,
) -> JoinHandle<()> {
    listener
        .set_nonblocking(true)
        .expect("set_nonblocking on a listener");
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            while !stopped() {
                match listener.accept() {
                    Ok((stream, _)) => {
                        // Accepted sockets may inherit O_NONBLOCK.
                        if stream.set_nonblocking(false).is_err() {
                            continue;
                        }
                        let _ = stream.set_nodelay(true);
                        on_accept(stream);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // WouldBlock, or e.g. EMFILE: look again shortly.
                    Err(_) => thread::sleep(ACCEPT_POLL),
                }
            }
            // The listener is dropped here: the port is closed.
        })
        .expect("spawn an accept thread")
}

/// Keep a thread's handle for `Drop`, joining the ones already finished so
/// the list does not grow with every connection.
fn push_handle(handles: &Mutex<Vec<JoinHandle<()>>>, handle: JoinHandle<()>) {
    let mut handles = lock(handles);
    let (done, running): (Vec<_>, Vec<_>) = handles.drain(..).partition(|h| h.is_finished());
    *handles = running;
    handles.push(handle);
    drop(handles);
    for h in done {
        let _ = h.join();
    }
}

/// Join `handles`, waiting until `deadline` at most; a thread still running
/// then is reported and left detached.
fn join_bounded(what: &str, handles: Vec<JoinHandle<()>>, deadline: Instant) {
    for handle in handles {
        while !handle.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        if handle.is_finished() {
            if handle.join().is_err() {
                eprintln!("{what} thread panicked");
            }
        } else {
            eprintln!("{what} thread did not stop within {STOP_BOUND:?}; leaving it detached");
        }
    }
}

/// Lock, ignoring poisoning: the data here stays consistent even if a
/// thread panicked, and `Drop` must not panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn wait_timeout<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>, timeout: Duration) -> MutexGuard<'a, T> {
    match cv.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

fn invalid_data(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}
