//! Lying lengths must not turn into allocations: a few bytes on the wire that
//! announce a huge frame, array or byte string may only cost memory in
//! proportion to the bytes that really arrived.
//!
//! Measured with a global allocator that records, per thread, the largest
//! single allocation (tests run on several threads, so a global counter
//! would see the other tests' allocations).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;
use zeo::framing::FrameCodec;
use zeo::{msgpack, CodecError};

struct Recording;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: the thread-local may already be gone while a thread exits.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Recording = Recording;

/// Runs `f` and returns its result and the largest allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let r = f();
    (r, LARGEST.with(|l| l.get()))
}

const SMALL: usize = 1024 * 1024;

#[test]
fn frame_header_claiming_200_mib() {
    let ((), largest) = largest_allocation(|| {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(200u32 << 20).to_be_bytes());
        buf.extend_from_slice(&[0xaa; 10]);
        for _ in 0..100 {
            assert_eq!(codec.decode(&mut buf), Ok(None));
            buf.extend_from_slice(&[0xaa; 100]);
        }
        assert_eq!(
            codec
                .decode_eof(&mut buf)
                .map_err(|e| matches!(e, CodecError::Io(_))),
            Err(true)
        );
    });
    assert!(largest < SMALL, "largest allocation {largest} bytes");
}

#[test]
fn msgpack_lengths_claiming_gigabytes() {
    for wire in [
        &b"\xdd\xff\xff\xff\xff\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0"[..], // array32
        b"\xdf\xff\xff\xff\xff\xa1k\xc0\xa1k\xc0",                            // map32
        b"\xc6\xff\xff\xff\xff0123456789",                                    // bin32
        b"\xdb\xff\xff\xff\xff0123456789",                                    // str32
        b"\x94\x01\xc2\xa8register\x92\xdd\x7f\xff\xff\xff\xc0",              // nested array32
    ] {
        let data = Bytes::copy_from_slice(wire);
        let (result, largest) = largest_allocation(|| msgpack::decode_bytes(&data));
        assert!(result.is_err(), "{wire:?}");
        assert!(largest < SMALL, "{wire:?}: largest allocation {largest} bytes");
    }
}

#[test]
fn msgpack_array_one_item_short_fails_before_allocating() {
    // An array32 announcing 100 000 items followed by 99 999 nils: one item
    // short, so it fails before anything is allocated for the items.
    let mut wire = vec![0xdd, 0, 1, 0x86, 0xa0];
    wire.extend(std::iter::repeat_n(0xc0, 99_999));
    let data = Bytes::from(wire);
    let (result, largest) = largest_allocation(|| msgpack::decode_bytes(&data));
    assert!(result.is_err());
    assert!(largest < 64 * 1024, "largest allocation {largest} bytes");
}
