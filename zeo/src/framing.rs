//! ZEO framing: every message (including the handshake) is a 4-byte
//! big-endian length followed by that many payload bytes (`docs/zeo-protocol.md#framing`).
//!
//! ZEO itself has no size limit; we add one ([`DEFAULT_MAX_FRAME`]) because a
//! frame header is untrusted input that arrives before any handshake. Just as
//! important: the decoder never *allocates* the announced length up front.
//! `tokio_util::codec::LengthDelimitedCodec` reserves the whole announced
//! frame as soon as it has parsed the header, so a 4-byte header claiming
//! 256 MiB costs 256 MiB of memory per connection. [`FrameCodec`] only
//! reserves a bounded chunk ([`READ_CHUNK`]) at a time and lets the buffer grow
//! with the bytes that really arrive.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::CodecError;

/// Length of the big-endian `u32` frame header.
pub const HEADER_LEN: usize = 4;

/// Default maximum payload size accepted by [`FrameCodec`]: 256 MiB.
///
/// Real ZEO frames are far smaller (blob chunks are ~59 KB, the largest
/// ordinary messages are records of a few MB), so this only stops abuse.
pub const DEFAULT_MAX_FRAME: usize = 256 * 1024 * 1024;

/// The most the decoder reserves in one go for a partially received frame.
///
/// Big enough that a typical blob chunk (59 KB) needs a single reservation,
/// small enough that a lying header costs nothing worth mentioning.
pub const READ_CHUNK: usize = 64 * 1024;

/// Largest payload the wire format can describe (the length is a `u32`).
const WIRE_MAX: usize = u32::MAX as usize;

/// A [`Decoder`]/[`Encoder`] for ZEO frames; items are frame payloads
/// (without the length prefix).
///
/// Decoding rejects a zero length ([`CodecError::EmptyFrame`]: ZEO never sends
/// one and would fail to decode it) and a length above the configured maximum
/// ([`CodecError::FrameTooLarge`], reported as soon as the header is seen,
/// before any of the body is read). After an error the connection must be
/// dropped: the stream position inside the byte stream is lost.
///
/// Encoding enforces only what the wire format needs (non-empty, fits in a
/// `u32`), not the configured maximum: the maximum protects *us*, and the
/// Python peers accept any size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A codec accepting payloads of up to `max_frame` bytes (capped at
    /// `u32::MAX`, the largest length the header can express).
    pub fn new(max_frame: usize) -> FrameCodec {
        FrameCodec {
            max_frame: max_frame.min(WIRE_MAX),
        }
    }

    /// The largest payload this codec decodes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Parses the header at the start of `src` if complete, validating the
    /// announced length.
    fn announced_len(&self, src: &[u8]) -> Result<Option<usize>, CodecError> {
        let Some(header) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut be = [0u8; HEADER_LEN];
        be.copy_from_slice(header);
        let len = u32::from_be_bytes(be) as usize;
        if len == 0 {
            return Err(CodecError::EmptyFrame);
        }
        if len > self.max_frame {
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        Ok(Some(len))
    }

    /// Appends one frame (header + payload) to `dst`.
    fn put_frame(&self, payload: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = check_encodable(payload)?;
        dst.reserve(HEADER_LEN + payload.len());
        dst.put_u32(len);
        dst.extend_from_slice(payload);
        Ok(())
    }
}

impl Default for FrameCodec {
    fn default() -> FrameCodec {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let Some(len) = self.announced_len(src)? else {
            return Ok(None);
        };
        let total = HEADER_LEN + len;
        if src.len() < total {
            // Make room for (part of) the rest, but never for more than one
            // chunk: the announced length is only a claim.
            src.reserve((total - src.len()).min(READ_CHUNK));
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::Io(format!(
                "connection closed inside a frame ({} bytes of an incomplete frame buffered)",
                src.len()
            ))),
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.put_frame(&payload, dst)
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        self.put_frame(payload, dst)
    }
}

/// The payload length as it goes into the header, if the payload can be sent.
pub(crate) fn check_encodable(payload: &[u8]) -> Result<u32, CodecError> {
    if payload.is_empty() {
        return Err(CodecError::EmptyFrame);
    }
    u32::try_from(payload.len()).map_err(|_| CodecError::FrameTooLarge {
        len: payload.len(),
        max: WIRE_MAX,
    })
}

/// One complete frame (header + payload) as bytes; for tests and one-off
/// writes outside a `Framed` sink.
pub fn encode_frame(payload: &[u8]) -> Result<Bytes, CodecError> {
    let mut dst = BytesMut::new();
    FrameCodec::default().put_frame(payload, &mut dst)?;
    Ok(dst.freeze())
}

/// Splits a byte string that holds whole frames back to back into their
/// payloads (limit [`DEFAULT_MAX_FRAME`]). A trailing incomplete frame is an
/// error. Meant for tests and captured traffic, not for sockets.
pub fn split_frames(data: &[u8]) -> Result<Vec<Bytes>, CodecError> {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode_eof(&mut buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed(codec: &mut FrameCodec, buf: &mut BytesMut, bytes: &[u8]) -> Vec<Bytes> {
        buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(buf).expect("valid input") {
            out.push(f);
        }
        out
    }

    #[test]
    fn captured_handshake_frame() {
        // [C s01]: 00 00 00 02 5a 35 = "Z5"
        let frames = split_frames(&[0, 0, 0, 2, 0x5a, 0x35]).unwrap();
        assert_eq!(frames, vec![Bytes::from_static(b"Z5")]);
        assert_eq!(&encode_frame(b"M5").unwrap()[..], &[0, 0, 0, 2, 0x4d, 0x35]);
    }

    #[test]
    fn several_frames_in_one_read() {
        let mut data = Vec::new();
        for p in [&b"Z5"[..], b"abc", b"x"] {
            data.extend_from_slice(&encode_frame(p).unwrap());
        }
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let frames = feed(&mut codec, &mut buf, &data);
        assert_eq!(frames, vec![&b"Z5"[..], b"abc", b"x"]);
        assert!(buf.is_empty());
    }

    #[test]
    fn frame_split_across_reads_byte_by_byte() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let wire = encode_frame(&payload).unwrap();
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in wire.iter() {
            frames.extend(feed(&mut codec, &mut buf, &[*b]));
        }
        assert_eq!(frames.len(), 1);
        assert_eq!(&frames[0][..], &payload[..]);
    }

    #[test]
    fn header_split_across_reads() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        assert!(feed(&mut codec, &mut buf, &[0, 0]).is_empty());
        assert!(feed(&mut codec, &mut buf, &[0, 3, b'a']).is_empty());
        assert_eq!(feed(&mut codec, &mut buf, b"bc\0"), vec![&b"abc"[..]]);
        assert_eq!(&buf[..], &[0]);
    }

    #[test]
    fn zero_length_frame_is_rejected() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(codec.decode(&mut buf), Err(CodecError::EmptyFrame));
        assert_eq!(encode_frame(b""), Err(CodecError::EmptyFrame));
        let mut dst = BytesMut::new();
        assert_eq!(codec.encode(Bytes::new(), &mut dst), Err(CodecError::EmptyFrame));
    }

    #[test]
    fn oversized_frame_is_rejected_from_the_header_alone() {
        let mut codec = FrameCodec::new(1000);
        let mut buf = BytesMut::from(&[0u8, 0, 3, 0xe9][..]); // 1001
        assert_eq!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooLarge { len: 1001, max: 1000 })
        );
        let mut buf = BytesMut::from(&[0u8, 0, 3, 0xe8][..]); // 1000: fine, wait for body
        assert_eq!(codec.decode(&mut buf), Ok(None));
        // The default limit is 256 MiB.
        let mut buf = BytesMut::from(&[0x10u8, 0, 0, 1][..]);
        assert_eq!(
            FrameCodec::default().decode(&mut buf),
            Err(CodecError::FrameTooLarge {
                len: 0x1000_0001,
                max: DEFAULT_MAX_FRAME
            })
        );
    }

    #[test]
    fn lying_header_does_not_allocate_the_announced_size() {
        // 200 MiB announced, 10 bytes delivered.
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(200u32 * 1024 * 1024).to_be_bytes());
        buf.extend_from_slice(&[7u8; 10]);
        assert_eq!(codec.decode(&mut buf), Ok(None));
        assert!(buf.capacity() <= 2 * READ_CHUNK, "capacity {}", buf.capacity());
        // Feeding more data grows the buffer with the data, not with the claim.
        for _ in 0..10 {
            buf.extend_from_slice(&[7u8; 1000]);
            assert_eq!(codec.decode(&mut buf), Ok(None));
        }
        assert!(buf.capacity() <= 4 * READ_CHUNK, "capacity {}", buf.capacity());
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 5, 1, 2][..]);
        assert!(matches!(codec.decode_eof(&mut buf), Err(CodecError::Io(_))));
        let mut empty = BytesMut::new();
        assert_eq!(codec.decode_eof(&mut empty), Ok(None));
        assert!(split_frames(&[0, 0, 0, 5, 1, 2]).is_err());
        assert!(split_frames(&[0, 0]).is_err());
        assert_eq!(split_frames(&[]), Ok(vec![]));
    }

    #[test]
    fn encoder_for_bytes_and_slices_agree() {
        let mut codec = FrameCodec::new(2); // limit does not apply to encoding
        let mut a = BytesMut::new();
        let mut b = BytesMut::new();
        codec.encode(Bytes::from_static(b"hello"), &mut a).unwrap();
        codec.encode(&b"hello"[..], &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(&a[..], b"\0\0\0\x05hello");
    }

    #[tokio::test]
    async fn works_under_framed_read() {
        use futures::StreamExt;
        use tokio_util::codec::FramedRead;
        let mut data = encode_frame(b"Z5").unwrap().to_vec();
        data.extend_from_slice(&encode_frame(b"payload").unwrap());
        data.extend_from_slice(&[0, 0, 0]); // truncated trailer
        let mut reader = FramedRead::new(&data[..], FrameCodec::default());
        assert_eq!(reader.next().await.unwrap().unwrap(), &b"Z5"[..]);
        assert_eq!(reader.next().await.unwrap().unwrap(), &b"payload"[..]);
        assert!(matches!(reader.next().await, Some(Err(CodecError::Io(_)))));
    }

    proptest! {
        /// Any byte soup, delivered in arbitrary pieces: no panic, the same
        /// outcome as decoding it in one piece, and the buffer never holds
        /// much more than what was delivered.
        #[test]
        fn arbitrary_input_in_arbitrary_pieces(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(1usize..64, 0..40),
            max in 1usize..600,
        ) {
            let mut whole_codec = FrameCodec::new(max);
            let mut whole = BytesMut::from(&data[..]);
            let mut expected = Vec::new();
            let expected_err = loop {
                match whole_codec.decode(&mut whole) {
                    Ok(Some(f)) => expected.push(f),
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };

            let mut codec = FrameCodec::new(max);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut got_err = None;
            let mut rest = &data[..];
            let mut cuts = cuts.into_iter();
            'outer: while !rest.is_empty() {
                let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(f)) => got.push(f),
                        Ok(None) => break,
                        Err(e) => { got_err = Some(e); break 'outer; }
                    }
                }
                prop_assert!(buf.capacity() <= 4 * (data.len() + READ_CHUNK));
            }
            prop_assert_eq!(got, expected);
            prop_assert_eq!(got_err, expected_err);
        }

        /// Frames survive encode -> split at any point -> decode.
        #[test]
        fn roundtrip(payloads in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 1..300), 0..10),
            cut in 0usize..4000,
        ) {
            let mut wire = Vec::new();
            for p in &payloads {
                wire.extend_from_slice(&encode_frame(p).unwrap());
            }
            let cut = cut.min(wire.len());
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::new();
            let mut got = feed(&mut codec, &mut buf, &wire[..cut]);
            got.extend(feed(&mut codec, &mut buf, &wire[cut..]));
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got.len(), payloads.len());
            for (g, p) in got.iter().zip(&payloads) {
                prop_assert_eq!(&g[..], &p[..]);
            }
            prop_assert_eq!(split_frames(&wire).unwrap(), got);
        }
    }
}
