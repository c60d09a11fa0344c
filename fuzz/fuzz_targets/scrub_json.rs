//! The scrub engine on arbitrary JSON, through the public `Scrubber` API only. Properties: it
//! never panics, its output is valid JSON, and scrubbing is idempotent (a second pass changes
//! nothing and reports nothing).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scrubgate::scrub::{HashKey, PayloadKind, ScrubSettings, Scrubber};
use serde_json::Value;

const KINDS: [PayloadKind; 18] = [
    PayloadKind::EnvelopeHeader,
    PayloadKind::Event,
    PayloadKind::Transaction,
    PayloadKind::Feedback,
    PayloadKind::UserReport,
    PayloadKind::Session,
    PayloadKind::Sessions,
    PayloadKind::Span,
    PayloadKind::SpanContainer,
    PayloadKind::LogContainer,
    PayloadKind::TraceMetricContainer,
    PayloadKind::CheckIn,
    PayloadKind::ReplayEvent,
    PayloadKind::Profile,
    PayloadKind::ProfileChunk,
    PayloadKind::MetricBuckets,
    PayloadKind::SecurityReport,
    PayloadKind::Generic,
];

fn scrubber() -> &'static Scrubber {
    static SCRUBBER: OnceLock<Scrubber> = OnceLock::new();
    SCRUBBER.get_or_init(|| {
        let key = HashKey {
            id: "fuzz".to_owned(),
            secret: b"fuzzing-key-0123456789".to_vec(),
        };
        Scrubber::compile(&ScrubSettings::default(), key).expect("default settings compile")
    })
}

/// `FUZZ_SKIP_IDEMPOTENCE=1` keeps fuzzing for panics and invalid JSON once an idempotence
/// bug is known and reported (libFuzzer stops at the first failure).
fn check_idempotence() -> bool {
    static CHECK: OnceLock<bool> = OnceLock::new();
    *CHECK.get_or_init(|| std::env::var_os("FUZZ_SKIP_IDEMPOTENCE").is_none())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let kind = KINDS[usize::from(selector) % KINDS.len()];
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
