//! Healthcare formats inside strings (HL7 v2, X12, CDA, FHIR JSON): the first input byte
//! picks a format header, the rest is the message body, so the fuzzer spends its time
//! inside the parsers rather than finding `MSH|^~\&|` by chance. Properties: never panics,
//! valid JSON out, idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrubgate::scrub::PayloadKind;
use serde_json::{json, Value};

#[path = "scrub_common.rs"]
mod scrub_common;
use scrub_common::{check_idempotence, scrubber};

const ISA: &str =
    "ISA*00*          *00*          *ZZ*SUBMITTERID    *ZZ*RECEIVERID     *240301*1035*^*00501*000000001*0*P*:~";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let body = String::from_utf8_lossy(rest);
    let s = match pick % 6 {
        0 => format!("MSH|^~\\&|{body}"),
        1 => format!("error in segment PID|1||{body}"),
        2 => format!("{ISA}{body}"),
        3 => format!("<ClinicalDocument xmlns=\"urn:hl7-org:v3\">{body}"),
        4 => format!("{{\"resourceType\":\"Patient\",{body}"),
        _ => body.into_owned(),
    };
    let mut event = json!({
        "message": s,
        "exception": {"values": [{"type": "Error", "value": s,
            "stacktrace": {"frames": [{"function": "f", "vars": {"raw": s}}]}}]},
        "request": {"data": s},
        "extra": {"payload": s, "lines": [s, "x|y", s]},
    });
    let first = scrubber().scrub_value(PayloadKind::Event, &mut event);
    let bytes = serde_json::to_vec(&event).expect("scrubbed value serializes");
    let mut reparsed: Value =
        serde_json::from_slice(&bytes).expect("scrubbed output is valid JSON");
    if !check_idempotence() {
        return;
    }
    let snapshot = reparsed.clone();
    let second = scrubber().scrub_value(PayloadKind::Event, &mut reparsed);
    assert!(
        second.is_empty(),
        "second pass reported {:?} after {:?}",
        second,
        first
    );
    assert_eq!(reparsed, snapshot, "second pass changed the value");
});
