//! The frames zeoraid relays most, read and written without a value tree:
//! the four of a relayed `loadBefore` (the client's call, the call to the
//! member, the member's reply, the client's reply), a store on its way
//! in (the client's `storea`) and out (each member's), and the calls that
//! end a transaction (`vote`, `tpc_finish`, `tpc_abort`: the client's, each
//! member's, and the members' plain answers to the first two).
//!
//! For these the generic path (frame → [`Value`] tree →
//! [`Message`](crate::message::Message) → typed request or reply, and
//! back) costs more than the work itself: allocating and dropping the
//! trees, and walking them to encode. Here they are read and written
//! directly, for the one exact shape ZEO's pickler produces (Z5, protocol
//! 3, fast mode: `docs/zeo-protocol.md#encodings`).
//!
//! Every function here answers `None` for anything it does not recognise
//! byte for byte (another encoding, another opcode choice, another
//! method), and the caller then takes the generic path, which accepts or
//! refuses it as before. What it does accept, it decodes to exactly what
//! the generic path decodes, and what it writes is byte-identical to the
//! generic encoder's output (both checked by the tests below and by
//! `zeo/tests/fast_path.rs` on every captured load and store). So this
//! module changes the cost of a load or a store, never its meaning: an oid
//! or tid that is not 8 bytes, a `str` record, a reply that is not a
//! 3-tuple, an error reply, all go the generic way.
//!
//! msgpack (M5) connections always take the generic path.

use bytes::Bytes;

use crate::encoding::Encoding;
use crate::framing::HEADER_LEN;
use crate::message::{MsgId, REPLY_NAME};
use crate::methods::{LoadBefore, Request, Storea, TpcAbort, TpcFinish, TxnId, Vote};
use crate::pickle::save_into;
use crate::reply::{LoadBeforeResult, VoteResult};
use crate::types::P64;
use crate::value::Value;

const PROTO_3: [u8; 2] = [0x80, 3];
const MARK: u8 = b'(';
const TUPLE: u8 = b't';
const STOP: u8 = b'.';
const NONE: u8 = b'N';
const FALSE: u8 = 0x89;
const TRUE: u8 = 0x88;
const LONG1: u8 = 0x8a;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const EMPTY_LIST: u8 = b']';
const TUPLE3: u8 = 0x87;
const SHORT_BINBYTES: u8 = b'C';
const BINBYTES: u8 = b'B';
const BINUNICODE: u8 = b'X';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const BININT: u8 = b'J';
/// The flag of a reply, and the msgid of an asynchronous call: `0`, as
/// BININT1.
const ZERO: [u8; 2] = [BININT1, 0];

/// A client's `loadBefore` call: its msgid and arguments, if the frame is
/// exactly `(msgid, False, 'loadBefore', (oid, tid))` with an int msgid
/// or a tuple of two byte strings (what `ZEO.ClientStorage` uses: the
/// `(oid, tid)` it loads) and 8-byte oid and tid.
pub fn read_load_before_call(encoding: Encoding, payload: &Bytes) -> Option<(MsgId, LoadBefore)> {
    let mut r = Reader::envelope(encoding, payload)?;
    let msgid = r.msgid()?;
    r.expect(&[FALSE])?;
    r.str_equal("loadBefore")?;
    let oid = r.p64()?;
    let tid = r.p64()?;
    r.expect(&[TUPLE2, TUPLE, STOP])?;
    r.at_end()?;
    Some((msgid, LoadBefore { oid, tid }))
}

/// The frame (length prefix included) of a `loadBefore` call to a
/// member, as [`Request::to_message`](crate::methods::Request::to_message)
/// and [`Encoding::encode_frame`] would write it.
pub fn write_load_before_call(encoding: Encoding, msgid: i64, load: &LoadBefore) -> Option<Bytes> {
    let mut out = envelope(encoding, 64, &Value::Int(msgid), &[FALSE], "loadBefore")?;
    push_p64(&mut out, &load.oid);
    push_p64(&mut out, &load.tid);
    out.extend_from_slice(&[TUPLE2, TUPLE, STOP]);
    frame_end(out)
}

/// The msgid of a member's (non-error) reply and where its result starts,
/// if the frame is `(msgid, 0, '.reply', result)` with an int msgid other
/// than the heartbeat's. The result itself is read by the caller that
/// knows which method it answers ([`read_load_before_result`]).
pub fn read_reply_start(encoding: Encoding, payload: &Bytes) -> Option<(i64, usize)> {
    let mut r = Reader::envelope(encoding, payload)?;
    let msgid = r.int()?;
    if msgid == MsgId::HEARTBEAT.as_int()? {
        return None;
    }
    r.expect(&ZERO)?;
    r.str_equal(REPLY_NAME)?;
    Some((msgid, r.at))
}

/// The result of a `loadBefore` reply whose result starts at `at` (from
/// [`read_reply_start`]): `None` unless it is exactly `None` or
/// `(data, start, end)` with 8-byte tids (`end` possibly `None`), followed
/// by the end of the envelope. The record is sliced out of `payload`, not
/// copied.
pub fn read_load_before_result(payload: &Bytes, at: usize) -> Option<Option<LoadBeforeResult>> {
    let mut r = Reader { buf: payload, at };
    let result = if r.none()? {
        None
    } else {
        let data = r.bytes()?;
        let start = r.p64()?;
        let end = r.opt_p64()?;
        r.expect(&[TUPLE3])?;
        Some(LoadBeforeResult { data, start, end })
    };
    r.expect(&[TUPLE, STOP])?;
    r.at_end()?;
    Some(result)
}

/// The frame (length prefix included) of the reply to a client's
/// `loadBefore`, as [`Message::reply`](crate::message::Message::reply) of
/// the result's value and [`Encoding::encode_frame`] would write it.
pub fn write_load_before_reply(
    encoding: Encoding,
    msgid: &MsgId,
    result: &Option<LoadBeforeResult>,
) -> Option<Bytes> {
    let size = result.as_ref().map_or(0, |r| r.data.len()) + 64;
    let mut out = envelope(encoding, size, &msgid.0, &ZERO, REPLY_NAME)?;
    match result {
        None => out.push(NONE),
        Some(r) => {
            push_bytes(&mut out, &r.data)?;
            push_p64(&mut out, &r.start);
            match &r.end {
                Some(end) => push_p64(&mut out, end),
                None => out.push(NONE),
            }
            out.push(TUPLE3);
        }
    }
    out.extend_from_slice(&[TUPLE, STOP]);
    frame_end(out)
}

/// A client's `storea`, if the frame is exactly `(0, True, 'storea',
/// (oid, serial, data, id))` with an 8-byte oid and serial, a `bytes`
/// record and an int transaction id (what `ZEO.ClientStorage` sends).
pub fn read_storea_call(encoding: Encoding, payload: &Bytes) -> Option<Storea> {
    let mut r = Reader::envelope(encoding, payload)?;
    r.expect(&ZERO)?;
    r.expect(&[TRUE])?;
    r.str_equal("storea")?;
    r.expect(&[MARK])?;
    let oid = r.p64()?;
    let serial = r.p64()?;
    let data = r.bytes()?;
    let id = TxnId::from_i64(r.txn_id()?);
    r.expect(&[TUPLE, TUPLE, STOP])?;
    r.at_end()?;
    Some(Storea {
        oid,
        serial,
        data,
        id,
    })
}

/// The frame (length prefix included) of a `storea` to a member, as
/// [`Request::to_message`](crate::methods::Request::to_message) with the
/// asynchronous msgid and [`Encoding::encode_frame`] would write it.
pub fn write_storea_call(encoding: Encoding, store: &Storea) -> Option<Bytes> {
    let mut out = envelope(
        encoding,
        store.data.len() + 64,
        &MsgId::ASYNC.0,
        &[TRUE],
        "storea",
    )?;
    out.push(MARK);
    push_p64(&mut out, &store.oid);
    push_p64(&mut out, &store.serial);
    push_bytes(&mut out, &store.data)?;
    save_into(store.id.value(), &mut out).ok()?;
    out.extend_from_slice(&[TUPLE, TUPLE, STOP]);
    frame_end(out)
}

/// A client's `vote(id)`, `tpc_finish(id)` or `tpc_abort(id)`, if the
/// frame is exactly `(msgid, False, name, (id,))` with an int id.
pub fn read_txn_call(encoding: Encoding, payload: &Bytes) -> Option<(MsgId, Request)> {
    let mut r = Reader::envelope(encoding, payload)?;
    let msgid = r.msgid()?;
    r.expect(&[FALSE])?;
    let name = r.str()?;
    let id = TxnId::from_i64(r.txn_id()?);
    r.expect(&[TUPLE1, TUPLE, STOP])?;
    r.at_end()?;
    let request = match name {
        "vote" => Request::Vote(Vote { id }),
        "tpc_finish" => Request::TpcFinish(TpcFinish { id }),
        "tpc_abort" => Request::TpcAbort(TpcAbort { id }),
        _ => return None,
    };
    Some((msgid, request))
}

/// The frame (length prefix included) of a `vote`, `tpc_finish` or
/// `tpc_abort` to a member, as the generic path would write it; `None`
/// for any other request.
pub fn write_txn_call(encoding: Encoding, msgid: i64, request: &Request) -> Option<Bytes> {
    let (name, id) = match request {
        Request::Vote(Vote { id }) => ("vote", id),
        Request::TpcFinish(TpcFinish { id }) => ("tpc_finish", id),
        Request::TpcAbort(TpcAbort { id }) => ("tpc_abort", id),
        _ => return None,
    };
    let mut out = envelope(encoding, 48, &Value::Int(msgid), &[FALSE], name)?;
    save_into(id.value(), &mut out).ok()?;
    out.extend_from_slice(&[TUPLE1, TUPLE, STOP]);
    frame_end(out)
}

/// The result of a `vote` reply that starts at `at` ([`read_reply_start`]),
/// if it is `None` or an empty list: nothing for the client to
/// invalidate, what a vote without conflicts answers. Oids and conflicts
/// go the generic way.
pub fn read_vote_result(payload: &Bytes, at: usize) -> Option<VoteResult> {
    let mut r = Reader { buf: payload, at };
    match r.take(1)?[0] {
        NONE | EMPTY_LIST => {}
        _ => return None,
    }
    r.expect(&[TUPLE, STOP])?;
    r.at_end()?;
    Some(VoteResult::Oids(Vec::new()))
}

/// The result of a `tpc_finish` reply that starts at `at`: the committed
/// tid (8 bytes), or `None`.
pub fn read_tpc_finish_result(payload: &Bytes, at: usize) -> Option<Option<P64>> {
    let mut r = Reader { buf: payload, at };
    let tid = r.opt_p64()?;
    r.expect(&[TUPLE, STOP])?;
    r.at_end()?;
    Some(tid)
}

/// A frame's buffer, its header reserved, with the envelope written up to
/// the arguments: `(msgid, flag, name, ` (Z5 only).
fn envelope(encoding: Encoding, capacity: usize, msgid: &Value, flag: &[u8], name: &str) -> Option<Vec<u8>> {
    if encoding != Encoding::Pickle {
        return None;
    }
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(&PROTO_3);
    out.push(MARK);
    save_into(msgid, &mut out).ok()?;
    out.extend_from_slice(flag);
    push_str(&mut out, name);
    Some(out)
}

/// Writes the frame header; `None` past the largest frame the header holds.
fn frame_end(mut out: Vec<u8>) -> Option<Bytes> {
    let len = u32::try_from(out.len() - HEADER_LEN).ok()?;
    out[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Some(Bytes::from(out))
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(BINUNICODE);
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn push_p64(out: &mut Vec<u8>, p: &P64) {
    out.extend_from_slice(&[SHORT_BINBYTES, 8]);
    out.extend_from_slice(&p.0);
}

fn push_bytes(out: &mut Vec<u8>, b: &[u8]) -> Option<()> {
    if b.len() < 256 {
        out.extend_from_slice(&[SHORT_BINBYTES, b.len() as u8]);
    } else {
        out.push(BINBYTES);
        out.extend_from_slice(&u32::try_from(b.len()).ok()?.to_le_bytes());
    }
    out.extend_from_slice(b);
    Some(())
}

/// A cursor over a pickle that recognises only the opcodes above.
struct Reader<'a> {
    buf: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader past the start of the envelope, `PROTO 3` and `MARK`
    /// (Z5 only).
    fn envelope(encoding: Encoding, buf: &'a Bytes) -> Option<Reader<'a>> {
        if encoding != Encoding::Pickle {
            return None;
        }
        let mut r = Reader { buf, at: 0 };
        r.expect(&PROTO_3)?;
        r.expect(&[MARK])?;
        Some(r)
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.at).copied()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let buf: &'a [u8] = self.buf;
        let slice = buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    fn expect(&mut self, want: &[u8]) -> Option<()> {
        (self.take(want.len())? == want).then_some(())
    }

    fn at_end(&self) -> Option<()> {
        (self.at == self.buf.len()).then_some(())
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// BININT1, BININT2 or BININT: the ints ZEO's msgids are written as
    /// (LONG1, past 2**31, goes the generic way).
    fn int(&mut self) -> Option<i64> {
        match self.take(1)?[0] {
            BININT1 => Some(i64::from(self.take(1)?[0])),
            BININT2 => Some(i64::from(u16::from_le_bytes(self.array()?))),
            BININT => Some(i64::from(i32::from_le_bytes(self.array()?))),
            _ => None,
        }
    }

    /// A transaction id: an int as [`Reader::int`], or LONG1 of up to 8
    /// bytes (Python's `id()` of the transaction, past 2**31), the minimal
    /// two's complement the pickler writes; longer ones go the generic way.
    fn txn_id(&mut self) -> Option<i64> {
        if self.peek()? != LONG1 {
            return self.int();
        }
        self.at += 1;
        let len = usize::from(self.take(1)?[0]);
        if len == 0 || len > 8 {
            return None;
        }
        let le = self.take(len)?;
        let fill = if le[len - 1] & 0x80 != 0 { 0xff } else { 0 };
        let mut full = [fill; 8];
        full[..len].copy_from_slice(le);
        let n = i64::from_le_bytes(full);
        // The pickler writes the fewest bytes: anything else is not its shape.
        (encode_long_len(n) == len).then_some(n)
    }

    /// SHORT_BINBYTES or BINBYTES, sliced out of the frame.
    fn bytes(&mut self) -> Option<Bytes> {
        let len = match self.take(1)?[0] {
            SHORT_BINBYTES => usize::from(self.take(1)?[0]),
            BINBYTES => usize::try_from(u32::from_le_bytes(self.array()?)).ok()?,
            _ => return None,
        };
        let start = self.at;
        self.take(len)?;
        Some(self.buf.slice(start..start + len))
    }

    /// Takes a `None` if one is next: whether it was (`None` at the end
    /// of the frame).
    fn none(&mut self) -> Option<bool> {
        let none = self.peek()? == NONE;
        self.at += usize::from(none);
        Some(none)
    }

    /// An 8-byte id, or `None`.
    fn opt_p64(&mut self) -> Option<Option<P64>> {
        if self.none()? {
            return Some(None);
        }
        self.p64().map(Some)
    }

    fn p64(&mut self) -> Option<P64> {
        self.expect(&[SHORT_BINBYTES, 8])?;
        Some(P64(self.array()?))
    }

    /// A BINUNICODE string, borrowed from the frame.
    fn str(&mut self) -> Option<&'a str> {
        self.expect(&[BINUNICODE])?;
        let len: [u8; 4] = self.array()?;
        std::str::from_utf8(self.take(u32::from_le_bytes(len) as usize)?).ok()
    }

    fn str_equal(&mut self, want: &str) -> Option<()> {
        self.expect(&[BINUNICODE])?;
        let len: [u8; 4] = self.array()?;
        (u32::from_le_bytes(len) as usize == want.len()).then_some(())?;
        self.expect(want.as_bytes())
    }

    /// A client's msgid: an int, or a pair of byte strings.
    fn msgid(&mut self) -> Option<MsgId> {
        if matches!(self.peek()?, BININT1 | BININT2 | BININT) {
            let id = self.int()?;
            return (id != MsgId::HEARTBEAT.as_int()?).then_some(MsgId::int(id));
        }
        let first = self.bytes()?;
        let second = self.bytes()?;
        self.expect(&[TUPLE2])?;
        Some(MsgId(Value::Tuple(vec![
            Value::Bytes(first),
            Value::Bytes(second),
        ])))
    }
}

/// How many bytes `pickle.encode_long` uses for `n`.
fn encode_long_len(n: i64) -> usize {
    (1..8)
        .find(|&len| {
            let bits = 8 * len as u32;
            let (min, max) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
            (min..=max).contains(&n)
        })
        .unwrap_or(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::methods::Request;
    use crate::reply::Reply;

    fn tid(n: u64) -> P64 {
        P64::from_u64(n)
    }

    fn payload(frame: &Bytes) -> Bytes {
        frame.slice(HEADER_LEN..)
    }

    #[test]
    fn written_frames_are_the_generic_encoders() {
        let load = LoadBefore {
            oid: tid(2),
            tid: P64::MAX_TID,
        };
        for msgid in [1, 255, 256, 65_535, 65_536, i32::MAX as i64, 1 << 40] {
            let generic = Request::LoadBefore(load.clone()).to_message(MsgId::int(msgid));
            let want = Encoding::Pickle.encode_frame(&generic.into_value()).unwrap();
            assert_eq!(
                write_load_before_call(Encoding::Pickle, msgid, &load).unwrap(),
                want
            );
        }
        let big = Bytes::from(vec![7u8; 70_000]);
        for result in [
            None,
            Some(LoadBeforeResult {
                data: Bytes::new(),
                start: tid(1),
                end: None,
            }),
            Some(LoadBeforeResult {
                data: Bytes::from_static(b"x"),
                start: tid(1),
                end: Some(tid(2)),
            }),
            Some(LoadBeforeResult {
                data: big,
                start: tid(3),
                end: None,
            }),
        ] {
            for msgid in [
                MsgId::int(3),
                MsgId(Value::Tuple(vec![
                    Value::Bytes(Bytes::from_static(b"ab")),
                    Value::Bytes(Bytes::new()),
                ])),
            ] {
                let value = Reply::LoadBefore(result.clone()).to_value();
                let want = Encoding::Pickle
                    .encode_frame(&Message::reply(msgid.clone(), value).into_value())
                    .unwrap();
                assert_eq!(
                    write_load_before_reply(Encoding::Pickle, &msgid, &result).unwrap(),
                    want
                );
            }
        }
    }

    #[test]
    fn stores_are_written_and_read_as_the_generic_path_does() {
        let ids = [
            0,
            1,
            300,
            70_000,
            -5,
            i32::MAX as i64 + 1,
            140_234_567_890_123,
            i64::MIN,
            i64::MAX,
        ];
        for (i, id) in ids.into_iter().enumerate() {
            let data = Bytes::from(vec![b'r'; [0, 5, 255, 256, 100_000][i % 5]]);
            let store = Storea {
                oid: tid(i as u64),
                serial: tid(99),
                data,
                id: TxnId::from_i64(id),
            };
            let generic = Request::Storea(store.clone())
                .to_message(MsgId::ASYNC)
                .into_value();
            let want = Encoding::Pickle.encode_frame(&generic).unwrap();
            let written = write_storea_call(Encoding::Pickle, &store).unwrap();
            assert_eq!(written, want, "id {id}");
            let read = read_storea_call(Encoding::Pickle, &payload(&written)).unwrap();
            let Message::Call { name, args, .. } =
                Message::from_value(Encoding::Pickle.decode(&payload(&want)).unwrap()).unwrap()
            else {
                panic!("not a call")
            };
            assert_eq!(
                Request::Storea(read),
                Request::decode(&name, &args).unwrap(),
                "id {id}"
            );
        }
    }

    #[test]
    fn transaction_calls_and_their_answers_are_the_generic_paths() {
        for id in [7, 140_234_567_890_123] {
            let id = TxnId::from_i64(id);
            for request in [
                Request::Vote(Vote { id: id.clone() }),
                Request::TpcFinish(TpcFinish { id: id.clone() }),
                Request::TpcAbort(TpcAbort { id: id.clone() }),
            ] {
                let want = Encoding::Pickle
                    .encode_frame(&request.to_message(MsgId::int(9)).into_value())
                    .unwrap();
                let written = write_txn_call(Encoding::Pickle, 9, &request).unwrap();
                assert_eq!(written, want);
                assert_eq!(
                    read_txn_call(Encoding::Pickle, &payload(&written)),
                    Some((MsgId::int(9), request))
                );
            }
        }
        let store = Request::Storea(Storea {
            oid: tid(1),
            serial: tid(2),
            data: Bytes::new(),
            id: TxnId::from_i64(1),
        });
        assert!(write_txn_call(Encoding::Pickle, 9, &store).is_none());
        for (method, result, fast_path) in [
            ("vote", Value::None, true),
            ("vote", Value::List(vec![]), true),
            (
                "vote",
                Value::List(vec![Value::Bytes(Bytes::from_static(&[0; 8]))]),
                false,
            ),
            ("vote", Value::Tuple(vec![]), false),
            ("tpc_finish", Value::Bytes(Bytes::from_static(&[3; 8])), true),
            ("tpc_finish", Value::None, true),
            ("tpc_finish", Value::Bytes(Bytes::from_static(&[3; 7])), false),
        ] {
            let frame = Encoding::Pickle
                .encode(&Message::reply(MsgId::int(4), result.clone()).into_value())
                .unwrap();
            let (_, at) = read_reply_start(Encoding::Pickle, &frame).unwrap();
            let fast = match method {
                "vote" => read_vote_result(&frame, at).map(Reply::Vote),
                _ => read_tpc_finish_result(&frame, at).map(Reply::TpcFinish),
            };
            let want = fast_path.then(|| Reply::decode(method, &result).unwrap());
            assert_eq!(fast, want, "{method} {result:?}");
        }
        let empty = Encoding::Pickle
            .encode(&Message::reply(MsgId::int(4), Value::List(vec![])).into_value())
            .unwrap();
        let (_, at) = read_reply_start(Encoding::Pickle, &empty).unwrap();
        assert_eq!(read_vote_result(&empty, at), Some(VoteResult::Oids(vec![])));
    }

    #[test]
    fn a_non_minimal_long_is_not_the_picklers_shape() {
        let store = Storea {
            oid: tid(1),
            serial: tid(2),
            data: Bytes::new(),
            id: TxnId::from_i64(1 << 40),
        };
        let frame = payload(&write_storea_call(Encoding::Pickle, &store).unwrap()).to_vec();
        let at = frame.iter().rposition(|&b| b == LONG1).unwrap();
        assert_eq!(frame[at + 1], 6);
        let mut padded = frame[..at].to_vec();
        padded.extend_from_slice(&[LONG1, 7]);
        padded.extend_from_slice(&frame[at + 2..at + 8]);
        padded.push(0);
        padded.extend_from_slice(&frame[at + 8..]);
        assert!(read_storea_call(Encoding::Pickle, &Bytes::from(frame)).is_some());
        assert!(read_storea_call(Encoding::Pickle, &Bytes::from(padded)).is_none());
    }

    #[test]
    fn anything_else_goes_the_generic_way() {
        let load = LoadBefore {
            oid: tid(2),
            tid: tid(9),
        };
        let call = payload(&write_load_before_call(Encoding::Pickle, 5, &load).unwrap());
        assert!(read_load_before_call(Encoding::Pickle, &call).is_some());
        assert!(read_load_before_call(Encoding::Msgpack, &call).is_none());
        // A short oid, a trailing byte, a truncated frame, another method.
        let mut short_oid = call.to_vec();
        let oid_at = short_oid.windows(2).rposition(|w| w == [b'C', 8]).unwrap() - 10;
        short_oid[oid_at + 1] = 7;
        short_oid.remove(oid_at + 2);
        let short_oid = Bytes::from(short_oid);
        assert!(read_load_before_call(Encoding::Pickle, &short_oid).is_none());
        let mut trailing = call.to_vec();
        trailing.push(b'.');
        assert!(read_load_before_call(Encoding::Pickle, &Bytes::from(trailing)).is_none());
        for cut in 0..call.len() {
            assert!(read_load_before_call(Encoding::Pickle, &call.slice(..cut)).is_none());
        }
        let other = Request::decode(
            "loadSerial",
            &Value::Tuple(vec![
                Value::Bytes(Bytes::from_static(&[0; 8])),
                Value::Bytes(Bytes::from_static(&[0; 8])),
            ]),
        )
        .unwrap();
        let other = Encoding::Pickle
            .encode(&other.to_message(MsgId::int(5)).into_value())
            .unwrap();
        assert!(read_load_before_call(Encoding::Pickle, &other).is_none());
        assert!(read_storea_call(Encoding::Pickle, &other).is_none());
        assert!(read_storea_call(Encoding::Pickle, &call).is_none());
        // An oneway flag, and the heartbeat's msgid.
        let oneway = Bytes::from(
            call.iter()
                .map(|&b| if b == FALSE { 0x88 } else { b })
                .collect::<Vec<u8>>(),
        );
        assert!(read_load_before_call(Encoding::Pickle, &oneway).is_none());
        let heartbeat = Encoding::Pickle.encode(&Message::Heartbeat.into_value()).unwrap();
        assert!(read_reply_start(Encoding::Pickle, &heartbeat).is_none());
        // An error reply (flag 2), and a result of the wrong shape.
        let error = Message::error_reply(MsgId::int(4), Value::None).into_value();
        assert!(read_reply_start(Encoding::Pickle, &Encoding::Pickle.encode(&error).unwrap()).is_none());
        let pair = Message::reply(
            MsgId::int(4),
            Value::Tuple(vec![
                Value::Bytes(Bytes::new()),
                Value::Bytes(Bytes::from_static(&[0; 8])),
            ]),
        );
        let pair = Encoding::Pickle.encode(&pair.into_value()).unwrap();
        let (_, at) = read_reply_start(Encoding::Pickle, &pair).unwrap();
        assert!(read_load_before_result(&pair, at).is_none());
    }
}
