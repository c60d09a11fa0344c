//! The scrub engine on arbitrary JSON, through the public `Scrubber` API only. Properties: it
//! never panics, its output is valid JSON, and scrubbing is idempotent (a second pass changes
//! nothing and reports nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrubgate::scrub::PayloadKind;
use serde_json::Value;

#[path = "scrub_common.rs"]
mod scrub_common;
use scrub_common::{check_idempotence, scrubber};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let kind = PayloadKind::ALL[usize::from(selector) % PayloadKind::ALL.len()];
    let first = scrubber().scrub_value(kind, &mut value);
    let bytes = serde_json::to_vec(&value).expect("scrubbed value serializes");
    let mut reparsed: Value =
        serde_json::from_slice(&bytes).expect("scrubbed output is valid JSON");
    if !check_idempotence() {
        return;
    }
    let snapshot = reparsed.clone();
    let second = scrubber().scrub_value(kind, &mut reparsed);
    assert!(
        second.is_empty(),
        "second pass reported {:?} after {:?}",
        second,
        first
    );
    assert_eq!(reparsed, snapshot, "second pass changed the value");
});
