//! Frames larger than a connection accepts, read past instead of ending
//! the connection, for connections whose peer is trusted to frame
//! correctly but may legitimately answer a request with more than we keep
//! (a member answering `undoLog(0, 10**9)`).
//!
//! [`FrameCodec`] refuses such a frame as soon
//! as its header arrives, and the connection must then be dropped. On a
//! connection to a ZEO server that costs every other call in flight on it;
//! [`SkippingFrameCodec`] instead reads the frame's body off the socket in
//! bounded pieces, keeps only its first [`KEPT_PREFIX`] bytes, and hands
//! over a [`Frame::TooLarge`]. The prefix holds the message id
//! ([`int_msgid_in_prefix`]), so the one call it answers can be told that
//! its reply was too large while the connection stays in step: framing
//! never loses its place, since the length of every frame is known.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::encoding::Encoding;
use crate::error::CodecError;
use crate::framing::{FrameCodec, HEADER_LEN, READ_CHUNK};

/// How much of an oversized frame is kept: enough for the envelope's start
/// up to and including the message id, in either encoding.
pub const KEPT_PREFIX: usize = 64;

/// A frame as [`SkippingFrameCodec`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A frame within the limit: its whole payload.
    Whole(Bytes),
    /// A frame over the limit, read and dropped: its announced length and
    /// its first (up to [`KEPT_PREFIX`]) payload bytes.
    TooLarge { len: usize, prefix: Bytes },
}

impl Frame {
    /// The payload of a frame within `max`, or
    /// [`CodecError::FrameTooLarge`] where a whole payload is needed.
    pub fn into_whole(self, max: usize) -> Result<Bytes, CodecError> {
        match self {
            Frame::Whole(payload) => Ok(payload),
            Frame::TooLarge { len, .. } => Err(CodecError::FrameTooLarge { len, max }),
        }
    }

    /// The frame's size on the wire, header included.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Frame::Whole(payload) => payload.len(),
                Frame::TooLarge { len, .. } => *len,
            }
    }
}

/// [`FrameCodec`]'s decoder, reading past frames over its maximum (see the
/// module documentation) once [`SkippingFrameCodec::read_past_oversized`]
/// was called; until then (a handshake, where only small frames belong)
/// it refuses them from the header as [`FrameCodec`] does. Memory stays
/// bounded by the maximum: an oversized frame costs [`KEPT_PREFIX`] bytes
/// plus one read chunk.
#[derive(Debug)]
pub struct SkippingFrameCodec {
    frames: FrameCodec,
    read_past: bool,
    skipping: Option<Skipping>,
}

/// An oversized frame being read past.
#[derive(Debug)]
struct Skipping {
    len: usize,
    prefix: BytesMut,
    left: usize,
}

impl SkippingFrameCodec {
    pub fn new(max_frame: usize) -> SkippingFrameCodec {
        SkippingFrameCodec {
            frames: FrameCodec::new(max_frame),
            read_past: false,
            skipping: None,
        }
    }

    /// Frames over the maximum are read past from now on.
    pub fn read_past_oversized(&mut self) {
        self.read_past = true;
    }

    /// The largest payload handed over whole.
    pub fn max_frame(&self) -> usize {
        self.frames.max_frame()
    }
}

impl Decoder for SkippingFrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let skip = match &mut self.skipping {
            Some(skip) => skip,
            None => match self.frames.decode(src) {
                Ok(frame) => return Ok(frame.map(Frame::Whole)),
                Err(CodecError::FrameTooLarge { len, .. }) if self.read_past => {
                    src.advance(HEADER_LEN);
                    self.skipping.insert(Skipping {
                        len,
                        prefix: BytesMut::with_capacity(KEPT_PREFIX),
                        left: len,
                    })
                }
                Err(e) => return Err(e),
            },
        };
        let take = src.len().min(skip.left);
        let keep = take.min(KEPT_PREFIX.saturating_sub(skip.prefix.len()));
        skip.prefix.extend_from_slice(&src[..keep]);
        src.advance(take);
        skip.left -= take;
        if skip.left > 0 {
            src.reserve(skip.left.min(READ_CHUNK));
            return Ok(None);
        }
        let Skipping { len, prefix, .. } = self.skipping.take().expect("skipping above");
        Ok(Some(Frame::TooLarge {
            len,
            prefix: prefix.freeze(),
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && self.skipping.is_none() => Ok(None),
            None => Err(CodecError::Io("connection closed inside a frame".to_owned())),
        }
    }
}

/// The integer message id at the start of a message's payload `prefix`
/// (the envelope `(msgid, flags, name, args)`), as a ZEO server encodes
/// its replies to a client that numbers its calls with integers; `None`
/// when the prefix does not start that way.
pub fn int_msgid_in_prefix(encoding: Encoding, prefix: &[u8]) -> Option<i64> {
    match encoding {
        Encoding::Pickle => pickled_msgid(prefix),
        Encoding::Msgpack => msgpack_msgid(prefix),
    }
}

/// `PROTO n`, `MARK`, then the id as `BININT1`, `BININT2`, `BININT` or
/// `LONG1` (what a pickler writes for an int first in a 4-tuple).
fn pickled_msgid(prefix: &[u8]) -> Option<i64> {
    let [0x80, _, b'(', opcode, rest @ ..] = prefix else {
        return None;
    };
    match opcode {
        b'K' => rest.first().map(|&b| i64::from(b)),
        b'M' => Some(i64::from(u16::from_le_bytes(rest.get(..2)?.try_into().ok()?))),
        b'J' => Some(i64::from(i32::from_le_bytes(rest.get(..4)?.try_into().ok()?))),
        0x8a => {
            let (&n, digits) = rest.split_first()?;
            let digits = digits.get(..usize::from(n))?;
            if digits.is_empty() || digits.len() > 8 {
                return None;
            }
            // Little-endian two's complement, sign-extended to 8 bytes.
            let fill = if digits[digits.len() - 1] & 0x80 != 0 {
                0xff
            } else {
                0
            };
            let mut bytes = [fill; 8];
            bytes[..digits.len()].copy_from_slice(digits);
            Some(i64::from_le_bytes(bytes))
        }
        _ => None,
    }
}

/// A 4-element array, then the id as any msgpack integer.
fn msgpack_msgid(prefix: &[u8]) -> Option<i64> {
    let [0x94, marker, rest @ ..] = prefix else {
        return None;
    };
    let be = |n: usize| -> Option<[u8; 8]> {
        let bytes = rest.get(..n)?;
        let mut wide = [0; 8];
        wide[8 - n..].copy_from_slice(bytes);
        Some(wide)
    };
    match *marker {
        m @ 0x00..=0x7f => Some(i64::from(m)),
        m @ 0xe0..=0xff => Some(i64::from(m as i8)),
        0xcc => Some(i64::from(*rest.first()?)),
        0xcd => Some(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?).into()),
        0xce => Some(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?).into()),
        0xcf => i64::try_from(u64::from_be_bytes(be(8)?)).ok(),
        0xd0 => Some(i64::from(*rest.first()? as i8)),
        0xd1 => Some(i16::from_be_bytes(rest.get(..2)?.try_into().ok()?).into()),
        0xd2 => Some(i32::from_be_bytes(rest.get(..4)?.try_into().ok()?).into()),
        0xd3 => Some(i64::from_be_bytes(be(8)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, MsgId};
    use crate::value::Value;

    fn reply(msgid: i64, size: usize) -> Value {
        Message::reply(MsgId::int(msgid), Value::bytes(vec![7u8; size])).to_value()
    }

    #[test]
    fn finds_the_msgid_in_either_encoding_whatever_its_size() {
        let ids = [
            0,
            1,
            255,
            256,
            65_535,
            65_536,
            i32::MAX as i64,
            i32::MAX as i64 + 1,
            i64::MAX,
            -1,
        ];
        for encoding in [Encoding::Pickle, Encoding::Msgpack] {
            for id in ids {
                let payload = encoding.encode(&reply(id, 10_000)).unwrap();
                let prefix = &payload[..KEPT_PREFIX];
                assert_eq!(
                    int_msgid_in_prefix(encoding, prefix),
                    Some(id),
                    "{encoding:?} {id}"
                );
            }
            assert_eq!(int_msgid_in_prefix(encoding, b""), None);
            assert_eq!(
                int_msgid_in_prefix(encoding, b"garbage that is no envelope"),
                None
            );
        }
    }

    #[test]
    fn reads_past_an_oversized_frame_and_stays_in_step() {
        let mut codec = SkippingFrameCodec::new(1024);
        codec.read_past_oversized();
        let big = Encoding::Pickle.encode(&reply(42, 5000)).unwrap();
        let small = Encoding::Pickle.encode(&reply(43, 10)).unwrap();
        let mut wire = Vec::new();
        for payload in [&big, &small] {
            wire.extend_from_slice(&crate::framing::encode_frame(payload).unwrap());
        }
        // Arriving in small reads, as from a socket.
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for piece in wire.chunks(700) {
            buf.extend_from_slice(piece);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                frames.push(frame);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(frames.len(), 2, "{frames:?}");
        let Frame::TooLarge { len, prefix } = &frames[0] else {
            panic!("{:?}", frames[0]);
        };
        assert_eq!((*len, prefix.len()), (big.len(), KEPT_PREFIX));
        assert_eq!(int_msgid_in_prefix(Encoding::Pickle, prefix), Some(42));
        assert_eq!(frames[1], Frame::Whole(small));
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn a_connection_closed_inside_an_oversized_frame_is_an_error() {
        let mut codec = SkippingFrameCodec::new(1024);
        codec.read_past_oversized();
        let mut buf = BytesMut::from(&[0, 0, 8, 0, 1, 2, 3][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(codec.decode_eof(&mut buf).is_err());
    }

    #[test]
    fn until_told_it_refuses_oversized_frames_from_the_header() {
        let mut codec = SkippingFrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0, 0, 8, 0][..]);
        assert_eq!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooLarge { len: 2048, max: 1024 })
        );
    }
}
