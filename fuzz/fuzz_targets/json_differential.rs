//! Our JSON parser against serde_json on arbitrary bytes. The parser is a security boundary
//! (what it reads is what the scrubber sees), so it must read exactly what serde_json reads.
//!
//! Properties, all checked by `scrubgate::json::check_against_serde_json` (the same function
//! the unit tests in `src/json/tests.rs` run, so CI exercises this property too):
//! - the same accept/reject decision as `serde_json::from_slice::<serde_json::Value>`;
//! - for accepted input, the same values, compared strictly (key order, number
//!   representation `u64`/`i64`/`f64` and float bits);
//! - our serializer's output re-parsed by serde_json gives that same value, and re-parsed by
//!   our parser the same tree.
//!
//! Intentional differences, each accounted for explicitly by the check (no input class is
//! skipped):
//! - Duplicate keys: we keep every member (the scrubber must see every value); serde_json
//!   keeps the last value at the first key's position. Our tree is converted the same way
//!   before comparing; the kept members are covered by the round trip through our parser.
//! - Numbers: we keep the text verbatim; each text is parsed by serde_json's number parser
//!   (`float_roundtrip`, as in the main crate) and must match serde_json's number exactly.
//!   Output is compared after re-parsing, since `1E5` is written back as `1E5`.
//! - Error messages and positions differ; only the decision is compared.
//! - Nesting depth: none (127 levels parse in both, 128 in neither).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrubgate::json::check_against_serde_json;

fuzz_target!(|data: &[u8]| {
    if let Err(divergence) = check_against_serde_json(data) {
        panic!("parsers diverge: {divergence}");
    }
});
