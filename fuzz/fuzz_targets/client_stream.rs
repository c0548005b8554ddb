//! Untrusted bytes as a client's connection delivers them after the
//! handshake: the frame decoder (lengths, limits, frames split across
//! reads), then each frame's payload as Z5 and as M5 through the
//! envelope and the typed request layer. Must never panic, abort or
//! allocate beyond the frame limit. The first byte picks the read size,
//! so frames arrive split at every boundary.
//! Run: `cargo +nightly fuzz run client_stream` (from `fuzz/`'s parent).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use zeo::encoding::Encoding;
use zeo::framing::FrameCodec;
use zeo::message::Message;
use zeo::methods::Request;

/// Small, so that the limit is hit by short inputs too.
const MAX_FRAME: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut codec = FrameCodec::new(MAX_FRAME);
    let mut buffer = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX_FRAME);
                    for encoding in [Encoding::Pickle, Encoding::Msgpack] {
                        let Ok(value) = encoding.decode(&frame) else { continue };
                        if let Ok(Message::Call { name, args, .. }) = Message::from_value(value) {
                            let _ = Request::decode(&name, &args);
                        }
                    }
                }
                Ok(None) => break,
                // A bad length closes the connection: nothing more is read.
                Err(_) => return,
            }
        }
        assert!(buffer.capacity() <= 2 * MAX_FRAME + 64 * 1024, "buffer grew past the limit");
    }
});
