//! Body decoding: the first byte picks the Content-Encoding, the rest is the body. Properties:
//! never panics, and the output never exceeds the cap.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scrubgate::decode::compression::{decompress, ContentEncoding};

const CAP: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let encoding = match selector % 5 {
        0 => ContentEncoding::Identity,
        1 => ContentEncoding::Gzip,
        2 => ContentEncoding::Deflate,
        3 => ContentEncoding::Brotli,
        _ => ContentEncoding::Zstd,
    };
    if let Ok(out) = decompress(Bytes::copy_from_slice(body), encoding, CAP) {
        assert!(out.len() <= CAP);
    }
    let _ = ContentEncoding::from_header(Some(body));
});
