//! Untrusted bytes as one frame's Z5 payload: the pickle decoder, and
//! its canonical re-encoding as a fixed point. Must never panic, abort or
//! allocate beyond bounds. (`client_stream` covers framing and M5.) Run: `cargo +nightly fuzz run decode_frames` (from `fuzz/`'s parent).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(v) = zeo::pickle::decode(&payload) {
        // Canonical form is a fixed point (compared as bytes: NaN != NaN).
        let once = zeo::pickle::encode(&v).expect("a decoded value re-encodes");
        let v2 = zeo::pickle::decode(&Bytes::from(once.clone())).expect("re-encoded value decodes");
        assert_eq!(zeo::pickle::encode(&v2).expect("re-encodes"), once);
    }
});
