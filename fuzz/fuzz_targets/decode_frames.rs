//! Untrusted bytes through everything a client's frame goes through:
//! pickle and msgpack value decoding. Must never panic, abort or allocate
//! beyond bounds. Run: `cargo +nightly fuzz run decode_frames` (from `fuzz/`'s parent).
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
