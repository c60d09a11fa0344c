//! Envelope parsing on arbitrary bytes. Properties: never panics; an envelope that parses and
//! is not touched serializes back byte-identically; the per-type limit checks and the JSON
//! depth scan never panic on what the parser accepted.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scrubgate::config::LimitSettings;
use scrubgate::decode::{Envelope, EnvelopeLimits};
use scrubgate::ingest::limits;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::parse(Bytes::copy_from_slice(data), &EnvelopeLimits::default())
    else {
        return;
    };
    assert_eq!(
        envelope.to_bytes(),
        data,
        "untouched envelope must round-trip"
    );
    let _ = limits::check_envelope(&envelope, &LimitSettings::default());
    for item in envelope.items() {
        let _ = limits::json_too_deep(item.payload(), 128);
    }
});
