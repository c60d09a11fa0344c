//! Every input a fuzz target ever failed on (`fuzz/regressions/TARGET/`), replayed with the
//! target's own property: every finding is fixed and must stay fixed.

use std::path::PathBuf;

use scrubgate::decode::{Envelope, EnvelopeLimits};
use scrubgate::scrub::{HashKey, PayloadKind, ScrubSettings, Scrubber};
use serde_json::{json, Value};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|_| panic!("missing {}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no regression inputs for {target}");
    out
}

fn scrubber() -> Scrubber {
    let key = HashKey {
        id: "fuzz".to_owned(),
        secret: b"fuzzing-key-0123456789".to_vec(),
    };
    Scrubber::compile(&ScrubSettings::default(), key).unwrap()
}

/// Scrubs `value` twice; the second pass must change and report nothing.
fn assert_idempotent(scrubber: &Scrubber, kind: PayloadKind, mut value: Value, what: &str) {
    let _ = scrubber.scrub_value(kind, &mut value);
    let mut again: Value = serde_json::from_slice(&serde_json::to_vec(&value).unwrap()).unwrap();
    let snapshot = again.clone();
    let second = scrubber.scrub_value(kind, &mut again);
    assert!(second.is_empty(), "{what}: second pass reported {second:?}");
    assert_eq!(again, snapshot, "{what}: second pass changed the value");
}

#[test]
fn envelope_inputs_round_trip_byte_identically() {
    for (path, data) in inputs("envelope") {
        if let Ok(envelope) = Envelope::parse(data.clone().into(), &EnvelopeLimits::default()) {
            assert_eq!(envelope.to_bytes(), data, "{}", path.display());
        }
    }
}

#[test]
fn scrub_json_inputs_are_idempotent() {
    let scrubber = scrubber();
    for (path, data) in inputs("scrub_json") {
        let Some((_, json)) = data.split_first() else {
            continue;
        };
        if let Ok(value) = serde_json::from_slice::<Value>(json) {
            // The fuzz target picks the kind from the first byte; check them all.
            for kind in [
                PayloadKind::Event,
                PayloadKind::Transaction,
                PayloadKind::SecurityReport,
                PayloadKind::SpanContainer,
                PayloadKind::Generic,
            ] {
                assert_idempotent(&scrubber, kind, value.clone(), &path.display().to_string());
            }
        }
    }
}

#[test]
fn scrub_strings_inputs_are_idempotent() {
    let scrubber = scrubber();
    for (path, data) in inputs("scrub_strings") {
        let s = String::from_utf8_lossy(&data).into_owned();
        let event = json!({
            "message": s,
            "request": {"url": s, "query_string": s, "data": s, "cookies": s},
            "spans": [{"op": "db.sql.query", "description": s}],
        });
        assert_idempotent(
            &scrubber,
            PayloadKind::Transaction,
            event,
            &path.display().to_string(),
        );
    }
}
