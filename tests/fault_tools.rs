//! Tests of the fault-injection tools (`tests/common/faults.rs`): every
//! [`Behavior`] of the [`FakeServer`], and every control of the [`Relay`]
//! in front of a real `runzeo`, driven by a plain blocking client built
//! from the `zeo` crate's framing, handshake, encoding and message layers.
//!
//! No sleeps: "nothing arrives" is a socket read that times out after
//! [`SILENCE`] (a bound, not a synchronisation), "it closes promptly" is a
//! read that sees EOF or a reset within [`PROMPT`], and background counters
//! are polled with deadlines ([`wait_until`]).

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::faults::{
    fake_info, wait_until, Behavior, FakeServer, Relay, GARBAGE_PAYLOAD, HUGE_FRAME_LEN, HUGE_FRAME_SENT,
    INSPECT_LIMIT,
};
use common::runzeo::{free_port, ruok, RunZeo, RunZeoOptions};
use zeo::encoding::Encoding;
use zeo::framing::encode_frame;
use zeo::handshake::client_reply;
use zeo::message::{Message, MsgId};
use zeo::methods::{Register, Request, TpcFinish, TxnId};
use zeo::reply::Reply;
use zeo::types::P64;
use zeo::Value;

/// Bound for anything that is expected to arrive.
const READ_BOUND: Duration = Duration::from_secs(10);

/// How long a read must see nothing for "nothing is sent" to hold.
const SILENCE: Duration = Duration::from_millis(300);

/// Bound for a close (cut, drop, refusal) to reach the client.
const PROMPT: Duration = Duration::from_secs(2);

/// Bound for background counters to catch up.
const SETTLE: Duration = Duration::from_secs(5);

fn connect(addr: SocketAddr) -> TcpStream {
    let sock =
        TcpStream::connect_timeout(&addr, READ_BOUND).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    sock.set_read_timeout(Some(READ_BOUND)).unwrap();
    sock.set_write_timeout(Some(READ_BOUND)).unwrap();
    sock.set_nodelay(true).unwrap();
    sock
}

fn read_frame(sock: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    sock.read_exact(&mut header)?;
    let len = u32::from_be_bytes(header) as usize;
    assert!(len <= 64 * 1024 * 1024, "frame of {len} bytes");
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload)?;
    Ok(payload)
}

/// Read the server's announcement and answer it like a ZEO 6 client
/// (always `Z5`).
fn handshake(sock: &mut TcpStream) -> Encoding {
    let announcement = read_frame(sock).expect("announcement");
    let (protocol, answer) = client_reply(&announcement, false).expect("acceptable announcement");
    sock.write_all(&encode_frame(&answer).unwrap()).unwrap();
    protocol.into()
}

fn frame_of(encoding: Encoding, msg: &Message) -> Bytes {
    encode_frame(&encoding.encode(&msg.to_value()).expect("encode")).unwrap()
}

fn send(sock: &mut TcpStream, encoding: Encoding, msg: &Message) {
    sock.write_all(&frame_of(encoding, msg)).unwrap();
}

fn request(msgid: i64, req: Request) -> Message {
    req.to_message(MsgId::int(msgid))
}

fn register_request() -> Request {
    Request::Register(Register {
        storage: "1".into(),
        read_only: false,
    })
}

fn register(msgid: i64) -> Message {
    request(msgid, register_request())
}

/// The next reply or error reply; callbacks in between are skipped.
fn read_reply(sock: &mut TcpStream, encoding: Encoding) -> Message {
    loop {
        let payload = Bytes::from(read_frame(sock).expect("reply frame"));
        let msg = Message::from_value(encoding.decode(&payload).expect("decode")).expect("envelope");
        match msg {
            Message::Reply { .. } | Message::ErrorReply { .. } => return msg,
            Message::Call { oneway: true, .. } => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// Send a sync call and return its (successful) result.
fn call(sock: &mut TcpStream, encoding: Encoding, msgid: i64, req: Request) -> Value {
    send(sock, encoding, &request(msgid, req));
    match read_reply(sock, encoding) {
        Message::Reply { msgid: id, result } if id == MsgId::int(msgid) => result,
        other => panic!("expected the reply to {msgid}, got {other:?}"),
    }
}

/// Handshake and `register` against a real (or relayed) runzeo.
fn session(addr: SocketAddr) -> (TcpStream, Encoding) {
    let mut sock = connect(addr);
    let encoding = handshake(&mut sock);
    send(&mut sock, encoding, &register(1));
    match read_reply(&mut sock, encoding) {
        Message::Reply { msgid, result } if msgid == MsgId::int(1) => {
            assert_eq!(
                Reply::decode("register", &result).unwrap(),
                Reply::Register(Some(P64::ZERO))
            );
        }
        other => panic!("register: {other:?}"),
    }
    (sock, encoding)
}

/// The peer has closed (EOF) or reset the connection, and the client
/// notices within [`PROMPT`].
fn assert_closed(sock: &mut TcpStream, what: &str) {
    sock.set_read_timeout(Some(PROMPT)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    match sock.read(&mut buf) {
        Ok(0) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
            ) => {}
        Ok(n) => panic!(
            "{what}: expected a closed connection, got {n} bytes: {:?}",
            &buf[..n]
        ),
        Err(e) => panic!(
            "{what}: expected a closed connection, got {e} after {:?}",
            start.elapsed()
        ),
    }
    sock.set_read_timeout(Some(READ_BOUND)).unwrap();
}

/// Nothing arrives for [`SILENCE`] and the connection stays open.
fn assert_silent(sock: &mut TcpStream, what: &str) {
    sock.set_read_timeout(Some(SILENCE)).unwrap();
    let mut buf = [0u8; 64];
    match sock.read(&mut buf) {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
        Ok(0) => panic!("{what}: expected silence, the connection was closed"),
        Ok(n) => panic!("{what}: expected silence, got {n} bytes: {:?}", &buf[..n]),
        Err(e) => panic!("{what}: expected silence, got {e}"),
    }
    sock.set_read_timeout(Some(READ_BOUND)).unwrap();
}

fn assert_refused(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, PROMPT) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("{addr} still accepts connections"),
    }
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| name.starts_with(prefix))
        })
        .count()
}

/// Sockets of this process bound to local loopback `port`, as lines of
/// `/proc/net/tcp`.  The table is the whole network namespace's, so a line
/// counts only if its inode is one of this process's descriptors: another
/// process's socket that happens to use the same local port (possible with
/// SO_REUSEADDR once the port's listener is gone) is not ours.  Orphaned
/// sockets in FIN_WAIT or TIME_WAIT have inode 0 and no descriptor.
fn sockets_held_on(port: u16) -> Vec<String> {
    let ours = socket_inodes_of_this_process();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 9 && fields[1].ends_with(&local) && ours.contains(fields[9])
        })
        .map(str::to_owned)
        .collect()
}

/// The inodes of the sockets this process holds open (`socket:[INODE]`
/// links in `/proc/self/fd`).
fn socket_inodes_of_this_process() -> std::collections::HashSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy();
            let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect()
}

/// After a `Drop`: no thread and no socket of the tool is left.  `Drop`
/// joins the threads; the poll only covers the moment a joined thread takes
/// to leave /proc.
fn assert_no_leftovers(prefix: &str, port: u16) {
    assert!(
        wait_until(SETTLE, || threads_named(prefix) == 0),
        "{} threads named {prefix}* survived",
        threads_named(prefix)
    );
    assert_eq!(sockets_held_on(port), Vec::<String>::new(), "sockets survived");
}

/// The number of registered clients runzeo reports.
fn server_connections(server: &RunZeo) -> i64 {
    let status = server.ruok();
    status["1"]["connections"]
        .as_i64()
        .unwrap_or_else(|| panic!("no connection count in {status}"))
}

// ---------------------------------------------------------------- FakeServer

#[test]
fn fake_garbage_after_handshake() {
    let fake = FakeServer::start(Behavior::GarbageAfterHandshake);
    assert_eq!(fake.addr().ip().to_string(), "127.0.0.1");
    let mut sock = connect(fake.addr());
    let encoding = handshake(&mut sock);
    send(&mut sock, encoding, &register(1));
    let payload = read_frame(&mut sock).unwrap();
    assert_eq!(payload, GARBAGE_PAYLOAD);
    assert!(Encoding::Pickle.decode(&Bytes::from(payload)).is_err());
    assert_eq!(fake.connections(), 1);
    assert_eq!(fake.calls(), ["register"]);
    // Nothing more, and the connection stays open until the client leaves.
    assert_silent(&mut sock, "after the garbage");
}

#[test]
fn fake_bad_announcement_is_refused_by_a_zeo6_client() {
    let fake = FakeServer::start(Behavior::BadAnnouncement);
    let mut sock = connect(fake.addr());
    let announcement = read_frame(&mut sock).unwrap();
    assert_eq!(announcement, b"Z4");
    assert!(client_reply(&announcement, true).is_err());
    assert!(client_reply(&announcement, false).is_err());
    assert_silent(&mut sock, "a ZEO 4 server waits for the client");
}

#[test]
fn fake_close_after_handshake() {
    let fake = FakeServer::start(Behavior::CloseAfterHandshake);
    let mut sock = connect(fake.addr());
    let encoding = handshake(&mut sock);
    send(&mut sock, encoding, &register(1));
    assert_closed(&mut sock, "after the handshake");
    assert!(wait_until(SETTLE, || fake.open_connections() == 0));
    assert_eq!(fake.connections(), 1);
}

#[test]
fn fake_silent_sends_nothing() {
    let fake = FakeServer::start(Behavior::Silent);
    let mut sock = connect(fake.addr());
    assert!(wait_until(SETTLE, || fake.connections() == 1));
    assert_silent(&mut sock, "no announcement");
    // Even a handshake sent blindly gets nothing.
    sock.write_all(&encode_frame(b"Z5").unwrap()).unwrap();
    assert_silent(&mut sock, "after a blind handshake");
}

#[test]
fn fake_huge_frame_header() {
    let fake = FakeServer::start(Behavior::HugeFrameHeader);
    let mut sock = connect(fake.addr());
    let encoding = handshake(&mut sock);
    send(&mut sock, encoding, &register(1));
    let mut header = [0u8; 4];
    sock.read_exact(&mut header).unwrap();
    assert_eq!(u32::from_be_bytes(header), HUGE_FRAME_LEN);
    let mut body = [0u8; HUGE_FRAME_SENT];
    sock.read_exact(&mut body).unwrap();
    assert_silent(&mut sock, "the rest of the huge frame never comes");
    assert_eq!(fake.calls(), ["register"]);
}

#[test]
fn fake_reply_then_stall_answers_register_and_get_info_only() {
    let fake = FakeServer::start(Behavior::ReplyThenStall);
    let mut sock = connect(fake.addr());
    let encoding = handshake(&mut sock);
    let tid = call(&mut sock, encoding, 1, register_request());
    assert_eq!(
        Reply::decode("register", &tid).unwrap(),
        Reply::Register(Some(P64::ZERO))
    );
    let info = call(&mut sock, encoding, 2, Request::GetInfo);
    assert_eq!(info, fake_info());
    assert_eq!(
        Reply::decode("get_info", &info).unwrap(),
        Reply::GetInfo(fake_info())
    );
    send(&mut sock, encoding, &request(3, Request::LastTransaction));
    assert_silent(&mut sock, "lastTransaction is never answered");
    // The connection is not wedged: get_info is still answered, only the
    // other calls never are.
    let info = call(&mut sock, encoding, 4, Request::GetInfo);
    assert_eq!(info, fake_info());
    assert_eq!(
        fake.calls(),
        ["register", "get_info", "lastTransaction", "get_info"]
    );

    // It follows the client's encoding like a real server: M5 works too.
    let mut m5 = connect(fake.addr());
    assert_eq!(read_frame(&mut m5).unwrap(), b"Z5");
    m5.write_all(&encode_frame(b"M5").unwrap()).unwrap();
    let tid = call(&mut m5, Encoding::Msgpack, 7, register_request());
    assert_eq!(tid, Value::bytes(vec![0u8; 8]));
}

#[test]
fn fake_counts_reconnects_and_drop_closes_everything() {
    let fake = FakeServer::start(Behavior::Silent);
    let addr = fake.addr();
    let mut socks: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    assert!(wait_until(SETTLE, || fake.connections() == 3 && fake.open_connections() == 3));
    // A client that leaves frees its server side.
    drop(socks.pop());
    assert!(wait_until(SETTLE, || fake.open_connections() == 2));
    let mut again = connect(addr);
    assert!(wait_until(SETTLE, || fake.connections() == 4));
    assert_silent(&mut again, "a reconnect is served like the first connection");
    socks.push(again);

    let prefix = fake.thread_name_prefix().to_owned();
    // The thread and socket of the connection that was closed may take a
    // moment to go.
    assert!(
        wait_until(SETTLE, || threads_named(&prefix) == 4),
        "the acceptor and three connection threads: {}",
        threads_named(&prefix)
    );
    assert!(
        wait_until(SETTLE, || sockets_held_on(addr.port()).len() == 4),
        "the listener and three connections: {:?}",
        sockets_held_on(addr.port())
    );

    drop(fake);
    for sock in &mut socks {
        assert_closed(sock, "after drop");
    }
    assert_refused(addr);
    assert_no_leftovers(&prefix, addr.port());
}

// ---------------------------------------------------------------- Relay

#[test]
fn relay_forwards_ruok_and_a_byte_by_byte_register() {
    let server = RunZeo::start(RunZeoOptions::new());
    let relay = Relay::start(server.addr());
    assert_eq!(relay.upstream(), server.addr());
    assert_eq!(relay.addr().ip().to_string(), "127.0.0.1");

    let status = ruok(relay.addr(), READ_BOUND).expect("ruok through the relay");
    assert!(status["1"].is_object(), "{status}");

    // One byte per write (NODELAY): the relay sees the handshake and the
    // register frame in many partial reads and must reassemble them.
    let mut sock = connect(relay.addr());
    let announcement = read_frame(&mut sock).unwrap();
    assert_eq!(announcement, b"Z5");
    let (protocol, answer) = client_reply(&announcement, false).unwrap();
    let encoding = Encoding::from(protocol);
    let mut wire = encode_frame(&answer).unwrap().to_vec();
    wire.extend_from_slice(&frame_of(encoding, &register(1)));
    for byte in wire {
        sock.write_all(&[byte]).unwrap();
    }
    match read_reply(&mut sock, encoding) {
        Message::Reply { msgid, result } => {
            assert_eq!(msgid, MsgId::int(1));
            assert_eq!(
                Reply::decode("register", &result).unwrap(),
                Reply::Register(Some(P64::ZERO))
            );
        }
        other => panic!("register: {other:?}"),
    }
    assert_eq!(relay.connections(), 2);
    assert_eq!(relay.frames_seen(b"ruok"), 1);
    assert_eq!(relay.frames_seen(b"register"), 1);
    assert_eq!(relay.frames_seen(b""), 3, "ruok, Z5, register");
}

#[test]
fn relay_forwards_large_frames_intact() {
    let server = RunZeo::start(RunZeoOptions::new());
    let relay = Relay::start(server.addr());
    let (mut sock, encoding) = session(relay.addr());
    // `ping` takes no arguments: the server answers a ping with a large
    // argument with an error reply, which it can only do if the frame
    // arrived intact.  One frame that is inspected, one streamed through.
    for (msgid, size, marker) in [
        (2, 1024 * 1024, &b"end-of-inspected-frame"[..]),
        (3, INSPECT_LIMIT + 1, b"end-of-streamed-frame"),
    ] {
        let mut arg = vec![b'x'; size];
        arg.extend_from_slice(marker);
        let msg = Message::call(MsgId::int(msgid), "ping", Value::tuple([Value::bytes(arg)]));
        send(&mut sock, encoding, &msg);
        match read_reply(&mut sock, encoding) {
            Message::ErrorReply { msgid: id, .. } => assert_eq!(id, MsgId::int(msgid)),
            other => panic!("ping({size} bytes): {other:?}"),
        }
    }
    assert_eq!(relay.frames_seen(b"end-of-inspected-frame"), 1);
    assert_eq!(relay.frames_seen(b"end-of-streamed-frame"), 0, "not inspected");
    // The stream is still in step.
    call(&mut sock, encoding, 4, Request::Ping);
}

#[test]
fn relay_stall_holds_both_directions_until_resume() {
    let server = RunZeo::start(RunZeoOptions::new());
    let relay = Relay::start(server.addr());
    let (mut sock, encoding) = session(relay.addr());

    relay.stall();
    // Client -> server held: the call is not answered.
    send(&mut sock, encoding, &request(2, Request::LastTransaction));
    assert_silent(&mut sock, "a call while stalled");
    // Server -> client held: a new connection gets no announcement.
    let mut late = connect(relay.addr());
    assert_silent(&mut late, "an announcement while stalled");
    assert!(wait_until(SETTLE, || relay.connections() == 2));

    relay.resume();
    match read_reply(&mut sock, encoding) {
        Message::Reply { msgid, .. } => assert_eq!(msgid, MsgId::int(2)),
        other => panic!("lastTransaction after resume: {other:?}"),
    }
    assert_eq!(read_frame(&mut late).unwrap(), b"Z5");
    call(&mut sock, encoding, 3, Request::Ping);
}

/// A ping through the relay, timed from the write to the reply.
fn timed_ping(sock: &mut TcpStream, encoding: Encoding, msgid: i64) -> Duration {
    let start = Instant::now();
    call(sock, encoding, msgid, Request::Ping);
    start.elapsed()
}

#[test]
fn relay_delay_server_replies_delays_each_reply_in_order() {
    const DELAY: Duration = Duration::from_millis(200);
    let server = RunZeo::start(RunZeoOptions::new());
    let relay = Relay::start(server.addr());
    let (mut sock, encoding) = session(relay.addr());

    relay.delay_server_replies(DELAY);
    let took = timed_ping(&mut sock, encoding, 2);
    assert!(took >= DELAY, "a ping took {took:?} with a {DELAY:?} delay");

    // Pipelined calls: every reply is delayed, and they arrive in order.
    let start = Instant::now();
    for msgid in 3..=5 {
        send(&mut sock, encoding, &request(msgid, Request::Ping));
    }
    for msgid in 3..=5 {
        match read_reply(&mut sock, encoding) {
            Message::Reply { msgid: id, .. } => assert_eq!(id, MsgId::int(msgid)),
            other => panic!("ping {msgid}: {other:?}"),
        }
    }
    assert!(start.elapsed() >= DELAY, "{:?}", start.elapsed());
    // New connections are delayed too, from their announcement on.
    let start = Instant::now();
    let mut late = connect(relay.addr());
    assert_eq!(read_frame(&mut late).unwrap(), b"Z5");
    assert!(start.elapsed() >= DELAY, "{:?}", start.elapsed());

    relay.delay_server_replies(Duration::ZERO);
    let took = timed_ping(&mut sock, encoding, 6);
    assert!(took < PROMPT, "a ping took {took:?} with the delay off");
}

#[test]
fn relay_delayed_replies_do_not_hold_up_a_cut_or_drop() {
    let server = RunZeo::start(RunZeoOptions::new());
    let relay = Relay::start(server.addr());
    let (mut sock, encoding) = session(relay.addr());
    let (mut other, _) = session(relay.addr());
    // Far longer than any bound below: a pump that slept through its
    // delay would miss them.
    relay.delay_server_replies(Duration::from_secs(60));

    // Held at the relay: runzeo answers a ping within the silence bound.
    send(&mut sock, encoding, &request(2, Request::Ping));
    assert_silent(&mut sock, "a delayed reply");
    relay.cut();
    assert_closed(&mut sock, "cut with a reply held");
    assert_closed(&mut other, "the other connection, cut too");
    assert!(wait_until(SETTLE, || relay.active() == 0), "pumps still running");

    // Again, ended by `Drop` (connected before the delay, whose
    // announcement would otherwise take a minute).
    relay.delay_server_replies(Duration::ZERO);
    let (mut sock, encoding) = session(relay.addr());
    relay.delay_server_replies(Duration::from_secs(60));
    send(&mut sock, encoding, &request(2, Request::Ping));
    assert_silent(&mut sock, "a delayed reply");
    let prefix = relay.thread_name_prefix().to_owned();
    let port = relay.addr().port();
    drop(relay);
    assert_closed(&mut sock, "after drop");
    assert_no_leftovers(&prefix, port);
}

#[test]
fn relay_cut_closes_current_connections_and_keeps_accepting() {
    let server = RunZeo::start(RunZeoOptions::new());
    let relay = Relay::start(server.addr());
    let (mut first, _) = session(relay.addr());
    let (mut second, _) = session(relay.addr());
    assert_eq!(server_connections(&server), 2);

    relay.cut();
    assert_closed(&mut first, "first after cut");
    assert_closed(&mut second, "second after cut");
    assert!(wait_until(SETTLE, || relay.active() == 0));
    // The server side was closed too.
    assert!(wait_until(SETTLE, || server_connections(&server) == 0));

    let (mut third, encoding) = session(relay.addr());
    call(&mut third, encoding, 2, Request::Ping);
    assert_eq!(relay.connections(), 3);
}

#[test]
fn relay_refuse_new_closes_only_new_connections() {
    let server = RunZeo::start(RunZeoOptions::new());
    let relay = Relay::start(server.addr());
    let (mut old, encoding) = session(relay.addr());

    relay.refuse_new(true);
    let mut refused = connect(relay.addr());
    assert_closed(&mut refused, "a new connection while refusing");
    assert!(wait_until(SETTLE, || relay.refused() == 1));
    call(&mut old, encoding, 2, Request::Ping);

    relay.refuse_new(false);
    ruok(relay.addr(), READ_BOUND).expect("ruok after refuse_new(false)");
    assert_eq!(relay.refused(), 1);
    assert_eq!(relay.connections(), 2);
}

#[test]
fn relay_with_unreachable_upstream_closes_the_client() {
    let upstream = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let relay = Relay::start(upstream);
    let mut sock = connect(relay.addr());
    assert_closed(&mut sock, "upstream unreachable");
    assert!(wait_until(SETTLE, || relay.refused() == 1));
    assert_eq!(relay.connections(), 0);
}

#[test]
fn relay_cut_before_frame_containing_tpc_finish() {
    let server = RunZeo::start(RunZeoOptions::new());
    let relay = Relay::start(server.addr());
    relay.cut_before_frame_containing(b"tpc_finish");

    let tpc_finish = |msgid| {
        request(
            msgid,
            Request::TpcFinish(TpcFinish {
                id: TxnId::from_i64(42),
            }),
        )
    };

    // register and ping pass; tpc_finish is dropped and the link cut: the
    // client gets EOF, not the reply the server would have sent.
    let (mut sock, encoding) = session(relay.addr());
    call(&mut sock, encoding, 2, Request::Ping);
    assert_eq!(relay.frames_dropped(), 0);
    send(&mut sock, encoding, &tpc_finish(3));
    assert_closed(&mut sock, "at tpc_finish");
    assert_eq!(relay.frames_dropped(), 1);
    assert_eq!(relay.frames_seen(b"tpc_finish"), 1);
    assert_eq!(relay.frames_seen(b"ping"), 1);
    assert_eq!(relay.frames_seen(b"register"), 1);

    // One-shot: on a reconnect tpc_finish reaches the server (which
    // answers it: there is no transaction to finish).
    let (mut again, encoding) = session(relay.addr());
    send(&mut again, encoding, &tpc_finish(2));
    let reply = read_reply(&mut again, encoding);
    assert_eq!(reply.msgid(), Some(&MsgId::int(2)), "{reply:?}");
    assert_eq!(relay.frames_seen(b"tpc_finish"), 2);
    assert_eq!(relay.frames_dropped(), 1);

    // clear_cut_rule disarms a rule that has not fired.
    relay.cut_before_frame_containing(b"ping");
    relay.clear_cut_rule();
    call(&mut again, encoding, 3, Request::Ping);
    assert_eq!(relay.frames_dropped(), 1);
}

#[test]
fn relay_drop_closes_both_sides_and_the_port() {
    let server = RunZeo::start(RunZeoOptions::new());
    let relay = Relay::start(server.addr());
    let addr = relay.addr();
    let (mut sock, encoding) = session(addr);
    // A stalled relay with a call held back stops just as well.
    relay.stall();
    send(&mut sock, encoding, &request(2, Request::Ping));
    assert!(wait_until(SETTLE, || relay.frames_seen(b"ping") == 1));
    let prefix = relay.thread_name_prefix().to_owned();
    assert_eq!(threads_named(&prefix), 3, "the acceptor and two pumps");
    let held = sockets_held_on(addr.port());
    assert_eq!(held.len(), 2, "the listener and one connection: {held:?}");

    drop(relay);
    assert_closed(&mut sock, "after drop");
    assert_refused(addr);
    assert_no_leftovers(&prefix, addr.port());
    // The upstream side was closed too.
    assert!(wait_until(SETTLE, || server_connections(&server) == 0));
}
