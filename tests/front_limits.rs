//! The front's limits against real members: `[limits]
//! max_client_connections` (connections over it are closed at once, while
//! the HTTP endpoint and the members' reconnects keep working), `[timeouts]
//! handshake` (a connection that never speaks is closed), and `[limits]
//! client_backlog` (a client that stops reading while it is sent large
//! replies is disconnected; the array stays optimal).

mod common;

use common::array::{Array, ArrayOptions, LOG_WAIT};
use common::faults::wait_until;
use common::http;
use common::rawclient::RawClient;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use zeo::methods::{LoadBefore, Request};
use zeo::types::{Tid, P64};

fn array_with(tables: &str) -> Array {
    let mut options = ArrayOptions::new(2);
    options.tables = tables.to_string();
    Array::start_with(options)
}

/// The local address of a new connection if zeoraid announces its
/// protocol on it (accepted; the connection is then closed), `None` if
/// zeoraid closes it instead (refused).
fn accepted(addr: SocketAddr) -> Option<SocketAddr> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let local = stream.local_addr().expect("local address");
    let mut announcement = [0u8; 6];
    match stream.read_exact(&mut announcement) {
        Ok(()) => {
            assert_eq!(&announcement[4..], b"Z5");
            Some(local)
        }
        Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => None,
        Err(e) => panic!("neither announced nor closed within 5s: {e}"),
    }
}

/// Closes `client` and waits until zeoraid has ended its session (its
/// place under the limit is free again).
fn leave(array: &Array, since: usize, client: RawClient) {
    let peer = client.local_addr();
    drop(client);
    array.wait_for_close_log(since, peer);
}

fn http_status(array: &Array) -> serde_json::Value {
    let answer = http::get(array.http_addr(), "/status");
    assert_eq!(answer.code, 200, "{}", answer.body);
    answer.json()
}

#[test]
fn connections_over_the_limit_are_closed_and_the_rest_keeps_working() {
    const LIMIT: usize = 3;
    let mut array = array_with(&format!("[limits]\nmax_client_connections = {LIMIT}\n"));
    let since = array.log_mark();
    let mut clients: Vec<RawClient> = (0..LIMIT).map(|_| array.client()).collect();
    assert_eq!(
        accepted(array.addr()),
        None,
        "a connection over the limit is closed"
    );
    array.wait_for_log(since, LOG_WAIT, "about the refused connection", |l| {
        l["msg"] == "client connection refused: [limits] max_client_connections reached"
    });
    // Counted too, whatever the log's rate limit left out.
    let metrics = http::get(array.http_addr(), "/metrics").body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "zeoraid_client_connections_refused_total 1"),
        "the refusal is not counted:\n{metrics}"
    );

    // The HTTP endpoint answers, and a member that restarts reconnects
    // and is optimal again.
    assert_eq!(http_status(&array)["status"], "optimal");
    let restarted = array.log_mark();
    array.members_mut()[1].kill9();
    array.members_mut()[1].restart();
    array.wait_for_log(restarted, Duration::from_secs(30), "zeo2 connected again", |l| {
        l["msg"] == "member state change" && l["member"] == "zeo2" && l["to"] == "ready"
    });
    assert!(
        wait_until(LOG_WAIT, || http_status(&array)["status"] == "optimal"),
        "not optimal again: {}",
        http_status(&array)
    );
    for client in &mut clients {
        assert!(client.is_open(), "a client within the limit was closed");
    }

    // Once one client leaves, a new one gets its place.
    leave(&array, since, clients.pop().expect("a client"));
    let newcomer = accepted(array.addr()).expect("a new client gets the place that was freed");
    array.wait_for_close_log(since, newcomer);
    for client in clients {
        leave(&array, since, client);
    }
    array.assert_serving(&[]);
}

#[test]
fn a_connection_that_never_sends_its_handshake_is_closed() {
    let array = array_with("[timeouts]\nhandshake = \"1s\"\n");
    let since = array.log_mark();
    let mut silent = TcpStream::connect(array.addr()).expect("connect");
    let mut speaking = array.client();
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let mut received = Vec::new();
    match silent.read_to_end(&mut received) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the silent connection was not closed: {e} (received {received:?})\n{}",
            array.context()
        ),
    }
    assert!(received.ends_with(b"Z5"), "only the announcement: {received:?}");
    array.wait_for_log(since, LOG_WAIT, "about the missing handshake", |l| {
        l["msg"] == "closing client connection"
            && l["reason"] == "no protocol handshake within [timeouts] handshake"
    });
    // A client that answered the handshake is served on.
    assert!(speaking.is_open());
    speaking.last_transaction();
}

#[test]
fn a_client_that_stops_reading_large_replies_is_disconnected() {
    let mut array = array_with("[limits]\nclient_backlog = 65536\n");
    let mut writer = array.client();
    let oid = writer.new_oid();
    let big = vec![b'x'; 1 << 20];
    writer.commit(&[(oid, Tid::ZERO, &big)]);

    let since = array.log_mark();
    let mut reader = array.client();
    let peer = reader.local_addr().to_string();
    // 64 loads of a 1 MiB record, none of whose replies it reads: far more
    // than the socket buffers hold.
    for _ in 0..64 {
        let msgid = reader.next_msgid();
        let load = Request::LoadBefore(LoadBefore {
            oid,
            tid: P64::MAX_TID,
        });
        reader.send(&load.to_message(msgid));
    }
    let line = array.wait_for_log(
        since,
        Duration::from_secs(40),
        "closing the stalled reader",
        |l| l["msg"] == "closing client connection" && l["peer"] == peer.as_str(),
    );
    let reason = line["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("stopped reading"), "{reason}");

    assert_eq!(
        array.raid_status()["status"],
        "optimal",
        "{}",
        array.raid_status()
    );
    match writer.load(oid) {
        Ok(Some(r)) => assert_eq!(r.data.len(), big.len()),
        other => panic!("a reading client loads the large record: {other:?}"),
    }
    array.assert_serving(&[]);
}

/// The timer field (`tr`) of zeoraid's end of the connection from
/// `client`, as the kernel shows it in /proc/net/tcp: 2 is the keepalive
/// timer.
fn timer_of_server_side(server: SocketAddr, client: SocketAddr) -> Option<String> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port()),
        SocketAddr::V6(_) => panic!("loopback IPv4 only"),
    };
    let (local, remote) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields[5].split(':').next().unwrap_or_default().to_string())
    })
}

#[test]
fn client_connections_have_tcp_keepalive() {
    let array = array_with("");
    let mut client = array.client();
    client.last_transaction();
    // "01" (retransmission) while its last reply is not acknowledged yet.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut timer = timer_of_server_side(array.addr(), client.local_addr());
    while timer.as_deref() == Some("01") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        timer = timer_of_server_side(array.addr(), client.local_addr());
    }
    assert_eq!(
        timer.as_deref(),
        Some("02"),
        "the keepalive timer runs on zeoraid's socket"
    );
}
