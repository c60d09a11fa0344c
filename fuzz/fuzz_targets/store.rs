//! Legacy store bodies (JSON, base64, base64+zlib). Properties: never panics, and the decoded
//! event never exceeds the cap.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scrubgate::decode::store::decode_store_body;

const CAP: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = decode_store_body(Bytes::copy_from_slice(data), CAP) {
        assert!(event.len() <= CAP);
    }
});
