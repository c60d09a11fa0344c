//! Structured strings (URLs, query strings, form bodies, cookies, SQL, JSON-in-string) put
//! where an event carries them, scrubbed through the public `Scrubber` API. Properties: never
//! panics, valid JSON out, idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrubgate::scrub::PayloadKind;
use serde_json::Value;

#[path = "scrub_common.rs"]
mod scrub_common;
#[path = "strings_event.rs"]
mod strings_event;
use scrub_common::{check_idempotence, scrubber};
use strings_event::strings_event;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data).into_owned();
    let mut event = strings_event(&s);
    let first = scrubber().scrub_value(PayloadKind::Transaction, &mut event);
    let bytes = serde_json::to_vec(&event).expect("scrubbed value serializes");
    let mut reparsed: Value =
        serde_json::from_slice(&bytes).expect("scrubbed output is valid JSON");
    if !check_idempotence() {
        return;
    }
    let snapshot = reparsed.clone();
    let second = scrubber().scrub_value(PayloadKind::Transaction, &mut reparsed);
    assert!(
        second.is_empty(),
        "second pass reported {:?} after {:?}",
        second,
        first
    );
    assert_eq!(reparsed, snapshot, "second pass changed the value");
});
