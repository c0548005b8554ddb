//! A minimal synchronous ZEO client built only from the `zeo` crate, for
//! tests that talk to a real `runzeo` or to zeoraid frame by frame.
//!
//! [`RawClient::connect`] does the handshake (the server speaks first, the
//! client echoes its letter); after that a test can
//! - call typed methods ([`RawClient::call`], [`RawClient::oneway`]) and get
//!   typed replies or typed error replies,
//! - call any name with any arguments ([`RawClient::call_value`]): the
//!   `zeo` crate's typed layer refuses a 3-byte oid, the value layer does
//!   not,
//! - send hand-made frames and raw bytes ([`RawClient::send_frame`],
//!   [`RawClient::send_bytes`]) and read replies to them
//!   ([`RawClient::read_reply`]),
//! - check that the server closed the connection
//!   ([`RawClient::expect_closed`]).
//!
//! Server callbacks (`invalidateTransaction`, `info`, ...) that arrive
//! while a call waits for its reply are decoded and kept in
//! [`RawClient::callbacks`], in arrival order.
//!
//! Every read is bounded ([`RawClient::timeout`], 20 s by default): a
//! server that does not answer fails the test instead of hanging it.

use bytes::Bytes;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use zeo::callbacks::Callback;
use zeo::encoding::Encoding;
use zeo::exceptions::ZeoError;
use zeo::handshake::client_reply;
use zeo::message::{Message, MsgId};
use zeo::methods::{
    IteratorNext, IteratorRecordNext, IteratorRecordStart, IteratorStart, LoadBefore, NewOids, Register,
    Request, Storea, TpcAbort, TpcBegin, TpcFinish, TxnId, Vote,
};
use zeo::reply::{DataRecord, LoadBeforeResult, Reply, TxnRecord, VoteResult};
use zeo::types::{Oid, Tid, P64};
use zeo::Value;

/// Default bound for connecting and for every read.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The largest frame this client reads (zeoraid's default limit).
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// How a read ended without a frame.
#[derive(Debug)]
pub enum ReadEnd {
    /// The server closed the connection (EOF at a frame boundary, or a
    /// reset).
    Closed,
    /// Nothing arrived within the bound.
    TimedOut,
    /// Anything else: EOF inside a frame, an oversized frame, an I/O error.
    Broken(String),
}

/// See the module documentation.
pub struct RawClient {
    sock: TcpStream,
    /// The encoding the handshake chose.
    pub encoding: Encoding,
    next_msgid: i64,
    next_txn: i64,
    /// Callbacks received while waiting for replies, in arrival order.
    pub callbacks: Vec<Callback>,
    /// Bound for each wait for a frame.
    pub timeout: Duration,
}

impl RawClient {
    /// Connects and completes a Z5 (pickle) handshake. Panics if the server
    /// does not announce a protocol within [`DEFAULT_TIMEOUT`].
    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::connect_with(addr, false)
    }

    /// Connects and completes the handshake; with `allow_msgpack` an `M5`
    /// announcement is accepted (and answered `M5`).
    pub fn connect_with(addr: SocketAddr, allow_msgpack: bool) -> RawClient {
        let sock = TcpStream::connect_timeout(&addr, DEFAULT_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        sock.set_nodelay(true).expect("TCP_NODELAY");
        let mut client = RawClient {
            sock,
            encoding: Encoding::Pickle,
            next_msgid: 1,
            next_txn: 1,
            callbacks: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        };
        let announcement = match client.read_frame() {
            Ok(frame) => frame,
            Err(end) => panic!("no protocol announcement from {addr}: {end:?}"),
        };
        let (protocol, answer) = client_reply(&announcement, allow_msgpack)
            .unwrap_or_else(|e| panic!("handshake with {addr}: {e}"));
        client.send_frame(&answer).expect("send the handshake answer");
        client.encoding = protocol.into();
        client
    }

    /// Connects and registers storage `"1"` read-write; panics unless the
    /// server accepts.
    pub fn connect_registered(addr: SocketAddr) -> RawClient {
        let mut client = RawClient::connect(addr);
        client.register("1");
        client
    }

    /// This end's address, as the server sees it (zeoraid logs it as the
    /// session's `peer`).
    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local_addr")
    }

    /// The socket itself, for tests that need more than this API.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    // ----- sending ------------------------------------------------------

    /// Writes raw bytes (no framing). Errors are returned, not panics: a
    /// test may be writing to a server that already closed.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sock.set_write_timeout(Some(self.timeout))?;
        self.sock.write_all(bytes)?;
        self.sock.flush()
    }

    /// Writes one frame: the 4-byte big-endian length of `payload`, then
    /// `payload` (which may be empty: a zero-length frame).
    pub fn send_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send_frames(&[payload])
    }

    /// Writes several frames with one write.
    pub fn send_frames(&mut self, payloads: &[&[u8]]) -> io::Result<()> {
        let mut wire = Vec::new();
        for payload in payloads {
            let len = u32::try_from(payload.len()).expect("frame fits a u32 length");
            wire.extend_from_slice(&len.to_be_bytes());
            wire.extend_from_slice(payload);
        }
        self.send_bytes(&wire)
    }

    /// Encodes a value (normally a message envelope) with the connection's
    /// encoding, without the typed layer's checks.
    pub fn encode(&self, envelope: &Value) -> Vec<u8> {
        self.encoding.encode(envelope).expect("encode").to_vec()
    }

    /// Sends one message; panics if it cannot be written.
    pub fn send(&mut self, msg: &Message) {
        let payload = self.encode(&msg.to_value());
        self.send_frame(&payload).expect("send a message");
    }

    /// Sends an async call (no reply expected).
    pub fn oneway(&mut self, req: Request) {
        self.send(&req.to_message(MsgId::ASYNC));
    }

    /// Sends an async call with any name and arguments (not typed).
    pub fn oneway_value(&mut self, name: &str, args: Value) {
        self.send(&Message::oneway(name, args));
    }

    /// A fresh integer msgid for a sync call.
    pub fn next_msgid(&mut self) -> MsgId {
        let msgid = MsgId::int(self.next_msgid);
        self.next_msgid += 1;
        msgid
    }

    /// A fresh transaction id for `tpc_begin`.
    pub fn next_txn(&mut self) -> TxnId {
        let txn = TxnId::from_i64(self.next_txn);
        self.next_txn += 1;
        txn
    }

    // ----- calls --------------------------------------------------------

    /// A typed sync call; the reply is typed by the method's name.
    pub fn call(&mut self, req: Request) -> Result<Reply, ZeoError> {
        let msgid = self.next_msgid();
        self.call_with_msgid(msgid, req)
    }

    /// [`RawClient::call`] with a chosen msgid (e.g. `loadBefore`'s
    /// `(oid, tid)` tuple).
    pub fn call_with_msgid(&mut self, msgid: MsgId, req: Request) -> Result<Reply, ZeoError> {
        let name = req.name().to_owned();
        self.send(&req.to_message(msgid.clone()));
        self.read_reply(&msgid).map(|result| {
            Reply::decode(&name, &result).unwrap_or_else(|e| panic!("reply to {name}: {e}: {result:?}"))
        })
    }

    /// A sync call with any name and any argument value (not typed: a
    /// 3-byte oid goes out as it is); returns the raw result.
    pub fn call_value(&mut self, name: &str, args: Value) -> Result<Value, ZeoError> {
        let msgid = self.next_msgid();
        self.send(&Message::call(msgid.clone(), name, args));
        self.read_reply(&msgid)
    }

    /// A typed sync call that returns how the read ended instead of
    /// panicking when no reply comes within [`RawClient::timeout`] (or the
    /// server closes the connection).
    pub fn try_call(&mut self, req: Request) -> Result<Result<Reply, ZeoError>, ReadEnd> {
        let name = req.name().to_owned();
        let msgid = self.next_msgid();
        self.send(&req.to_message(msgid.clone()));
        let result = self.try_read_reply(&msgid)?;
        Ok(result.map(|result| {
            Reply::decode(&name, &result).unwrap_or_else(|e| panic!("reply to {name}: {e}: {result:?}"))
        }))
    }

    /// Reads until the reply to `msgid` arrives; callbacks meanwhile go to
    /// [`RawClient::callbacks`]. Panics on EOF, on a timeout, on a reply to
    /// another msgid and on anything undecodable.
    pub fn read_reply(&mut self, msgid: &MsgId) -> Result<Value, ZeoError> {
        match self.try_read_reply(msgid) {
            Ok(result) => result,
            Err(end) => panic!("no reply to msgid {msgid:?}: {end:?}"),
        }
    }

    /// [`RawClient::read_reply`] that returns how the read ended instead of
    /// panicking on EOF or a timeout.
    pub fn try_read_reply(&mut self, msgid: &MsgId) -> Result<Result<Value, ZeoError>, ReadEnd> {
        loop {
            match self.read_message()? {
                Message::Reply { msgid: id, result } if &id == msgid => return Ok(Ok(result)),
                Message::ErrorReply { msgid: id, error } if &id == msgid => {
                    return Ok(Err(ZeoError::from_value(&error)
                        .unwrap_or_else(|e| panic!("untyped error reply {error:?}: {e}"))))
                }
                Message::Call {
                    name,
                    args,
                    oneway: true,
                    ..
                } => self.callbacks.push(
                    Callback::decode(&name, &args)
                        .unwrap_or_else(|e| panic!("callback {name}: {e}: {args:?}")),
                ),
                other => panic!("waiting for the reply to {msgid:?}, got {other:?}"),
            }
        }
    }

    // ----- reading ------------------------------------------------------

    /// Reads one frame within [`RawClient::timeout`].
    pub fn read_frame(&mut self) -> Result<Vec<u8>, ReadEnd> {
        self.read_frame_by(Instant::now() + self.timeout)
    }

    fn read_frame_by(&mut self, deadline: Instant) -> Result<Vec<u8>, ReadEnd> {
        let mut header = [0u8; 4];
        match self.read_exact_by(&mut header, deadline) {
            Ok(0) => return Err(ReadEnd::Closed),
            Ok(4) => {}
            Ok(n) => return Err(ReadEnd::Broken(format!("EOF after {n} bytes of a frame header"))),
            Err(end) => return Err(end),
        }
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_FRAME {
            return Err(ReadEnd::Broken(format!("frame of {len} bytes announced")));
        }
        let mut payload = vec![0u8; len];
        match self.read_exact_by(&mut payload, deadline) {
            Ok(n) if n == len => Ok(payload),
            Ok(n) => Err(ReadEnd::Broken(format!("EOF after {n} of {len} payload bytes"))),
            Err(end) => Err(end),
        }
    }

    /// Fills `buf` unless EOF comes first; returns how much was read.
    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, ReadEnd> {
        let mut done = 0;
        while done < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadEnd::TimedOut);
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(|e| ReadEnd::Broken(e.to_string()))?;
            match self.sock.read(&mut buf[done..]) {
                Ok(0) => return Ok(done),
                Ok(n) => done += n,
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted => {}
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Err(ReadEnd::TimedOut),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                        return if done == 0 {
                            Err(ReadEnd::Closed)
                        } else {
                            Err(ReadEnd::Broken(format!("reset after {done} bytes of a frame")))
                        }
                    }
                    _ => return Err(ReadEnd::Broken(e.to_string())),
                },
            }
        }
        Ok(done)
    }

    /// Reads and decodes one message within [`RawClient::timeout`].
    pub fn read_message(&mut self) -> Result<Message, ReadEnd> {
        let frame = self.read_frame()?;
        Ok(self.decode(frame))
    }

    fn decode(&self, frame: Vec<u8>) -> Message {
        let value = self
            .encoding
            .decode(&Bytes::from(frame))
            .unwrap_or_else(|e| panic!("undecodable frame from the server: {e}"));
        Message::from_value(value).unwrap_or_else(|e| panic!("bad envelope from the server: {e}"))
    }

    /// Waits up to `within` for the server to close the connection and
    /// returns every message that arrived before it did. Panics if the
    /// connection is still open after `within`.
    pub fn expect_closed(&mut self, within: Duration) -> Vec<Message> {
        match self.closed_within(within) {
            Ok(messages) => messages,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }

    /// [`RawClient::expect_closed`] that returns the problem instead of
    /// panicking.
    pub fn closed_within(&mut self, within: Duration) -> Result<Vec<Message>, String> {
        let deadline = Instant::now() + within;
        let mut messages = Vec::new();
        loop {
            match self.read_frame_by(deadline) {
                Ok(frame) => messages.push(self.decode(frame)),
                Err(ReadEnd::Closed) => return Ok(messages),
                Err(ReadEnd::TimedOut) => {
                    return Err(format!(
                        "still open after {within:?} (messages meanwhile: {messages:?})"
                    ))
                }
                Err(ReadEnd::Broken(e)) => return Err(format!("{e} (messages before: {messages:?})")),
            }
        }
    }

    /// Whether the connection is still open, checked without waiting:
    /// complete frames that already arrived are read first (callbacks go to
    /// [`RawClient::callbacks`]; a reply or anything else panics, since
    /// nothing was asked), then the socket must show neither EOF nor a
    /// reset.
    pub fn is_open(&mut self) -> bool {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            self.sock.set_nonblocking(true).expect("set_nonblocking");
            let peeked = self.sock.peek(&mut buf);
            self.sock.set_nonblocking(false).expect("set_nonblocking");
            let n = match peeked {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            };
            let whole = n >= 4 && {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                n >= 4 + len
            };
            if !whole {
                // Part of a frame is on its way: open.
                return true;
            }
            // The frame is all there: reading it cannot block.
            match self.read_message() {
                Ok(Message::Call {
                    name,
                    args,
                    oneway: true,
                    ..
                }) => self.callbacks.push(
                    Callback::decode(&name, &args)
                        .unwrap_or_else(|e| panic!("callback {name}: {e}: {args:?}")),
                ),
                Ok(other) => panic!("unexpected message on a connection that asked nothing: {other:?}"),
                Err(ReadEnd::Closed) => return false,
                Err(end) => panic!("reading a frame that had arrived: {end:?}"),
            }
        }
    }

    // ----- conveniences -------------------------------------------------

    /// `register(storage, False)`; returns the last tid. Panics on an error.
    pub fn register(&mut self, storage: &str) -> Tid {
        let register = Request::Register(Register {
            storage: storage.into(),
            read_only: false,
        });
        match self.call(register) {
            Ok(Reply::Register(Some(tid))) => tid,
            other => panic!("register({storage:?}): {other:?}"),
        }
    }

    /// `lastTransaction`.
    pub fn last_transaction(&mut self) -> Tid {
        match self.call(Request::LastTransaction) {
            Ok(Reply::LastTransaction(tid)) => tid,
            other => panic!("lastTransaction: {other:?}"),
        }
    }

    /// One fresh oid (`new_oids(1)`).
    pub fn new_oid(&mut self) -> Oid {
        match self.call(Request::NewOids(NewOids { n: Some(1) })) {
            Ok(Reply::NewOids(oids)) if oids.len() == 1 => oids[0],
            other => panic!("new_oids(1): {other:?}"),
        }
    }

    /// `tpc_begin` of a new transaction (user `/ raw-client`); returns its id.
    pub fn begin(&mut self) -> TxnId {
        self.begin_as(None, " ", b"from a zeoraid test")
    }

    /// [`RawClient::begin`] asking for `tid` and `status`, described by
    /// `description`.
    pub fn begin_as(&mut self, tid: Option<Tid>, status: &str, description: &[u8]) -> TxnId {
        let txn = self.next_txn();
        self.oneway(Request::TpcBegin(TpcBegin {
            id: txn.clone(),
            user: Value::bytes(&b"/ raw-client"[..]),
            description: Value::bytes(description.to_vec()),
            extension: Value::Dict(vec![]),
            tid,
            status: status.into(),
        }));
        txn
    }

    /// One transaction begun with [`RawClient::begin_as`] storing
    /// `stores`: the tid `tpc_finish` returned, or the vote's error (the
    /// transaction then aborted, as a ZODB client aborts it). Panics on
    /// conflicts.
    pub fn try_commit_as(
        &mut self,
        tid: Option<Tid>,
        status: &str,
        description: &[u8],
        stores: &[(Oid, Tid, &[u8])],
    ) -> Result<Tid, ZeoError> {
        let txn = self.begin_as(tid, status, description);
        for (oid, serial, data) in stores {
            self.store(&txn, *oid, *serial, data);
        }
        match self.vote(&txn) {
            Ok(VoteResult::Oids(oids)) if oids.is_empty() => self.finish(&txn),
            Ok(other) => panic!("vote: unexpected answer {other:?}"),
            Err(error) => {
                self.call(Request::TpcAbort(TpcAbort { id: txn }))
                    .expect("tpc_abort of the refused transaction");
                Err(error)
            }
        }
    }

    /// `storea` in transaction `txn`.
    pub fn store(&mut self, txn: &TxnId, oid: Oid, serial: Tid, data: &[u8]) {
        self.oneway(Request::Storea(Storea {
            oid,
            serial,
            data: Bytes::copy_from_slice(data),
            id: txn.clone(),
        }));
    }

    /// `vote`.
    pub fn vote(&mut self, txn: &TxnId) -> Result<VoteResult, ZeoError> {
        match self.call(Request::Vote(Vote { id: txn.clone() }))? {
            Reply::Vote(v) => Ok(v),
            other => panic!("vote: unexpected reply {other:?}"),
        }
    }

    /// `tpc_finish`; returns the committed tid.
    pub fn finish(&mut self, txn: &TxnId) -> Result<Tid, ZeoError> {
        match self.call(Request::TpcFinish(TpcFinish { id: txn.clone() }))? {
            Reply::TpcFinish(Some(tid)) => Ok(tid),
            other => panic!("tpc_finish: unexpected reply {other:?}"),
        }
    }

    /// Commits one transaction storing `(oid, serial, data)` records;
    /// returns its tid. Panics unless the vote (without conflicts) and the
    /// finish succeed.
    pub fn commit(&mut self, stores: &[(Oid, Tid, &[u8])]) -> Tid {
        let txn = self.begin();
        for (oid, serial, data) in stores {
            self.store(&txn, *oid, *serial, data);
        }
        match self.vote(&txn) {
            Ok(VoteResult::Oids(oids)) if oids.is_empty() => {}
            other => panic!("vote: {other:?}"),
        }
        self.finish(&txn).unwrap_or_else(|e| panic!("tpc_finish: {e:?}"))
    }

    /// The current revision of `oid` (`loadBefore(oid, maxtid)` with the
    /// `(oid, tid)` msgid ClientStorage uses).
    pub fn load(&mut self, oid: Oid) -> Result<Option<LoadBeforeResult>, ZeoError> {
        let tid = P64::MAX_TID;
        let msgid = MsgId(Value::tuple([
            Value::bytes(oid.0.to_vec()),
            Value::bytes(tid.0.to_vec()),
        ]));
        match self.call_with_msgid(msgid, Request::LoadBefore(LoadBefore { oid, tid }))? {
            Reply::LoadBefore(result) => Ok(result),
            other => panic!("loadBefore: unexpected reply {other:?}"),
        }
    }

    /// Packs at the current time and waits for the pack.
    pub fn pack_now(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs_f64();
        let pack = Request::Pack(zeo::methods::Pack {
            t: now,
            wait: Value::Bool(true),
        });
        if let Err(e) = self.call(pack) {
            panic!("pack: {e:?}");
        }
    }

    /// The server's whole history, read with its own iterator: every
    /// transaction with its records, oldest first.
    pub fn history(&mut self) -> Vec<(TxnRecord, Vec<DataRecord>)> {
        let start = Request::IteratorStart(IteratorStart {
            start: None,
            stop: None,
        });
        let Ok(Reply::IteratorStart(iid)) = self.call(start) else {
            panic!("iterator_start")
        };
        let mut transactions = Vec::new();
        while let Ok(Reply::IteratorNext(Some(txn))) = self.call(Request::IteratorNext(IteratorNext { iid }))
        {
            let records = Request::IteratorRecordStart(IteratorRecordStart {
                txn_iid: iid,
                tid: txn.tid,
            });
            let Ok(Reply::IteratorRecordStart(riid)) = self.call(records) else {
                panic!("iterator_record_start")
            };
            let mut records = Vec::new();
            while let Ok(Reply::IteratorRecordNext(Some(r))) =
                self.call(Request::IteratorRecordNext(IteratorRecordNext { riid }))
            {
                records.push(r);
            }
            transactions.push((txn, records));
        }
        transactions
    }
}

/// An oid or tid as the bytes value it is on the wire.
pub fn p64_value(p: zeo::types::P64) -> zeo::Value {
    zeo::Value::bytes(p.0.to_vec())
}
