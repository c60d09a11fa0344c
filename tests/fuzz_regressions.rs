//! Every input a fuzz target ever failed on (`fuzz/regressions/TARGET/`), replayed with the
//! target's own property: every finding is fixed and must stay fixed.
//!
//! Nothing is skipped silently: each input's expected outcome (parses, or is rejected) is
//! stated here, and an input added to a folder without one fails the test until it is
//! classified. The scrub inputs run through every `PayloadKind`, on both scrub entry points
//! (`Scrubber::scrub_json`, the production path on our own JSON parser, and
//! `Scrubber::scrub_value`), so each kind's walk sees every input.

use std::path::PathBuf;

use scrubgate::decode::{Envelope, EnvelopeLimits};
use scrubgate::json::{check_against_serde_json, Verdict};
use scrubgate::scrub::{HashKey, PayloadKind, ScrubSettings, Scrubber};
use serde_json::{json, Value};

#[path = "../fuzz/fuzz_targets/strings_event.rs"]
mod strings_event;

/// What an input is meant to do at the target's parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Parses,
    #[expect(
        dead_code,
        reason = "no input is meant to be rejected yet; this is how one would be stated"
    )]
    Rejected,
}

/// The inputs of `target`, sorted by name.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|_| panic!("missing {}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let data = std::fs::read(&path).expect("readable regression input");
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, data)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no regression inputs for {target}");
    out
}

/// The inputs of `target` with their stated outcome; every file must be listed and every
/// listed name must exist, so neither a new input nor a removed one goes unnoticed.
fn classified(target: &str, expected: &[(&str, Expect)]) -> Vec<(String, Vec<u8>, Expect)> {
    let found = inputs(target);
    let mut names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    let mut listed: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    listed.sort_unstable();
    assert_eq!(
        names, listed,
        "fuzz/regressions/{target}: state each input's expected outcome"
    );
    found
        .into_iter()
        .map(|(name, data)| {
            let expect = expected
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, e)| *e)
                .expect("listed");
            (name, data, expect)
        })
        .collect()
}

fn scrubber() -> Scrubber {
    let key = HashKey {
        id: "fuzz".to_owned(),
        secret: b"fuzzing-key-0123456789".to_vec(),
    };
    Scrubber::compile(&ScrubSettings::default(), key).expect("default settings compile")
}

/// Scrubs `value` twice; the second pass must change and report nothing.
fn assert_idempotent(scrubber: &Scrubber, kind: PayloadKind, mut value: Value, what: &str) {
    let _ = scrubber.scrub_value(kind, &mut value);
    let mut again: Value = serde_json::from_slice(&serde_json::to_vec(&value).expect("serializes"))
        .expect("scrubbed output is JSON");
    let snapshot = again.clone();
    let second = scrubber.scrub_value(kind, &mut again);
    assert!(second.is_empty(), "{what}: second pass reported {second:?}");
    assert_eq!(again, snapshot, "{what}: second pass changed the value");
}

/// The production path on bytes: the same input gives the same output and report every
/// time, and scrubbing the output again leaves it unchanged and reports nothing.
fn assert_bytes_stable(scrubber: &Scrubber, kind: PayloadKind, input: &[u8], what: &str) {
    let first = scrubber.scrub_json(kind, input).expect("parses");
    let repeat = scrubber.scrub_json(kind, input).expect("parses");
    assert_eq!(repeat, first, "{what}: same input, different result");
    let output = first.0.as_deref().unwrap_or(input);
    let (changed, report) = scrubber
        .scrub_json(kind, output)
        .expect("scrubbed output parses");
    assert!(report.is_empty(), "{what}: second pass reported {report:?}");
    assert_eq!(changed, None, "{what}: second pass changed the output");
}

/// Both are valid envelopes whose serialization once differed from the input: an item header
/// ending the body without a newline (`crash-ff65…`), and tabs before the envelope header
/// (`leading-whitespace`). Parsing must succeed and the round trip reproduce them exactly.
const ENVELOPES: &[(&str, Expect)] = &[
    (
        "crash-ff65e02f5a5b6b4954d0c0b6ea4eab09900e65ad",
        Expect::Parses,
    ),
    ("leading-whitespace", Expect::Parses),
];

#[test]
fn envelope_inputs_round_trip_byte_identically() {
    for (name, data, expect) in classified("envelope", ENVELOPES) {
        let parsed = Envelope::parse(data.clone().into(), &EnvelopeLimits::default());
        match (expect, parsed) {
            (Expect::Parses, Ok(envelope)) => assert_eq!(envelope.to_bytes(), data, "{name}"),
            (Expect::Rejected, Err(_)) => {}
            (expect, parsed) => panic!("{name}: expected {expect:?}, got {parsed:?}"),
        }
    }
}

/// A selector byte (the fuzz target's kind) and a JSON document; every one is JSON.
const SCRUB_JSON: &[(&str, Expect)] = &[
    (
        "crash-0d993a7fe469cff40bd2bea3fe285220817aec09",
        Expect::Parses,
    ),
    (
        "crash-39b26960ebd3d38ddaa736a0bb1bf6497a329a4b",
        Expect::Parses,
    ),
    (
        "crash-cec6b2157556ce5c2febfdfb7ac5068cb72ffa32",
        Expect::Parses,
    ),
    ("idempotence-url-bracket-scope", Expect::Parses),
    ("idempotence-x12-qualifiers-as-names", Expect::Parses),
    ("idempotence-sql-params-beside-cda", Expect::Parses),
    ("idempotence-slug-label-word", Expect::Parses),
    ("idempotence-slug-read-as-key-value", Expect::Parses),
    ("idempotence-sql-bound-by-stripped-form", Expect::Parses),
    (
        "idempotence-sql-binding-readable-after-scrub",
        Expect::Parses,
    ),
    ("idempotence-template-parsed-before-scrub", Expect::Parses),
    ("panic-multibyte-x12-component-separator", Expect::Parses),
    ("idempotence-url-bracket-scope-full", Expect::Parses),
    ("panic-multibyte-before-secret-key", Expect::Parses),
];

#[test]
fn scrub_json_inputs_are_stable_for_every_kind() {
    let scrubber = scrubber();
    for (name, data, expect) in classified("scrub_json", SCRUB_JSON) {
        let (_, json) = data.split_first().expect("a selector byte");
        let verdict = check_against_serde_json(json)
            .unwrap_or_else(|divergence| panic!("{name}: parsers diverge: {divergence}"));
        match expect {
            Expect::Parses => assert_eq!(verdict, Verdict::Accepted, "{name}"),
            Expect::Rejected => {
                assert_eq!(verdict, Verdict::Rejected, "{name}");
                for kind in PayloadKind::ALL {
                    assert!(scrubber.scrub_json(kind, json).is_err(), "{name} {kind:?}");
                }
                continue;
            }
        }
        let value: Value = serde_json::from_slice(json).expect("checked above");
        // The fuzz target picks the kind from the first byte; replay them all.
        for kind in PayloadKind::ALL {
            let what = format!("{name} as {kind:?}");
            assert_idempotent(&scrubber, kind, value.clone(), &what);
            assert_bytes_stable(&scrubber, kind, json, &what);
        }
    }
}

#[test]
fn scrub_strings_inputs_are_stable_for_every_kind() {
    let scrubber = scrubber();
    // Arbitrary bytes used as text (lossily, as the fuzz target does): nothing to reject.
    for (name, data) in inputs("scrub_strings") {
        let s = String::from_utf8_lossy(&data).into_owned();
        // The fuzz target's event, plus the item, CSP and span-item places the other kinds
        // read.
        let mut event = strings_event::strings_event(&s);
        event["items"] =
            json!([{"name": s, "body": s, "attributes": {"k": {"type": "string", "value": s}}}]);
        event["csp-report"] = json!({"document-uri": s, "blocked-uri": s});
        let bytes = serde_json::to_vec(&event).expect("serializes");
        for kind in PayloadKind::ALL {
            let what = format!("{name} as {kind:?}");
            assert_idempotent(&scrubber, kind, event.clone(), &what);
            assert_bytes_stable(&scrubber, kind, &bytes, &what);
        }
    }
}

/// The `scrub_formats` target's framing: the first byte picks a format header, the rest is
/// the body, put where events carry such messages.
#[test]
fn scrub_formats_inputs_are_stable_for_every_kind() {
    const ISA: &str = "ISA*00*          *00*          *ZZ*SUBMITTERID    *ZZ*RECEIVERID     *240301*1035*^*00501*000000001*0*P*:~";
    let scrubber = scrubber();
    for (name, data) in inputs("scrub_formats") {
        let (&pick, rest) = data.split_first().expect("a selector byte");
        let body = String::from_utf8_lossy(rest);
        let s = match pick % 6 {
            0 => format!("MSH|^~\\&|{body}"),
            1 => format!("error in segment PID|1||{body}"),
            2 => format!("{ISA}{body}"),
            3 => format!("<ClinicalDocument xmlns=\"urn:hl7-org:v3\">{body}"),
            4 => format!("{{\"resourceType\":\"Patient\",{body}"),
            _ => body.into_owned(),
        };
        let event = json!({
            "message": s,
            "exception": {"values": [{"type": "Error", "value": s,
                "stacktrace": {"frames": [{"function": "f", "vars": {"raw": s}}]}}]},
            "request": {"data": s},
            "extra": {"payload": s, "lines": [s, "x|y", s]},
        });
        let bytes = serde_json::to_vec(&event).expect("serializes");
        for kind in PayloadKind::ALL {
            let what = format!("{name} as {kind:?}");
            assert_idempotent(&scrubber, kind, event.clone(), &what);
            assert_bytes_stable(&scrubber, kind, &bytes, &what);
        }
    }
}
