//! Property tests for the scrub engine: whatever the JSON, scrubbing never panics, returns
//! valid JSON of the same shape, reports a change if and only if it made one, and is
//! idempotent (scrubbing scrubbed output changes nothing).

use proptest::prelude::*;
use serde_json::{Map, Value};

use scrubgate::scrub::{HashKey, PayloadKind, ScrubSettings, Scrubber};

fn scrubber() -> Scrubber {
    Scrubber::compile(
        &ScrubSettings::default(),
        HashKey {
            id: "prop".into(),
            secret: b"property-test-key-0123456789".to_vec(),
        },
    )
    .expect("default settings compile")
}

/// Fragments that trigger detectors, mixed with arbitrary text.
fn text() -> impl Strategy<Value = String> {
    let fragments = prop::sample::select(vec![
        "jane@example.org",
        "4111 1111 1111 1111",
        "123-45-6789",
        "(555) 010-4477",
        "+44 20 7946 0958",
        "203.0.113.42",
        "2001:db8::1",
        "DOB 03/12/1984",
        "MRN: A1234567",
        "NPI 1234567893",
        "DE89 3704 0044 0532 0130 00",
        "password=hunter2",
        "Bearer abcdefgh12345678",
        "https://u:p@h.example/p/patients/42?email=a%40b.co&x=1#f",
        "/home/jdoe/x",
        "SELECT * FROM t WHERE a = 'x'",
        "patient Jane Doe",
        "sessionid=abc; theme=dark",
        "{\"email\":\"a@b.co\"}",
        "a=1&ssn=123-45-6789",
        "[email]",
        "[Filtered]",
        "",
        " ",
        "é漢字",
    ]);
    prop::collection::vec(
        prop_oneof![
            fragments.prop_map(str::to_owned),
            any::<String>(),
            "[ -~]{0,20}"
        ],
        0..4,
    )
    .prop_map(|parts| parts.join(" "))
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "user",
            "id",
            "email",
            "username",
            "ip_address",
            "request",
            "url",
            "headers",
            "cookies",
            "data",
            "query_string",
            "env",
            "REMOTE_ADDR",
            "name",
            "password",
            "message",
            "exception",
            "values",
            "value",
            "breadcrumbs",
            "spans",
            "description",
            "op",
            "tags",
            "extra",
            "contexts",
            "attributes",
            "items",
            "did",
            "attrs",
            "patientName",
            "x-forwarded-for",
            "Cookie",
            "db.statement",
            "sdk",
            "settings",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z_.-]{1,12}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn kind() -> impl Strategy<Value = PayloadKind> {
    prop::sample::select(PayloadKind::ALL.to_vec())
}

/// Same shape: the same container types; objects keep a subset of their keys; arrays keep
/// their length (generic payloads remove nothing from arrays).
fn same_shape(before: &Value, after: &Value) -> bool {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => b
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|old| same_shape(old, v))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_shape(x, y))
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
        _ => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_output_is_valid_json(kind in kind(), value in json()) {
        let scrubber = scrubber();
        let mut v = value.clone();
        let report = scrubber.scrub_value(kind, &mut v);
        let text = serde_json::to_string(&v).expect("serializable");
        let back: Value = serde_json::from_str(&text).expect("valid JSON");
        prop_assert_eq!(back, v.clone());
        prop_assert_eq!(report.is_empty(), v == value, "report empty iff unchanged");
    }

    /// The hot path (bytes -> borrowed tree -> bytes) and the `Value` convenience agree:
    /// same report, same result.
    #[test]
    fn scrub_json_agrees_with_scrub_value(kind in kind(), value in json(), pretty in any::<bool>()) {
        let scrubber = scrubber();
        let bytes = if pretty {
            serde_json::to_vec_pretty(&value).expect("serializable")
        } else {
            serde_json::to_vec(&value).expect("serializable")
        };
        let (out, report) = scrubber.scrub_json(kind, &bytes).expect("valid JSON");
        let mut v = value.clone();
        let expected = scrubber.scrub_value(kind, &mut v);
        prop_assert_eq!(&report, &expected);
        prop_assert_eq!(out.is_none(), report.is_empty());
        if let Some(out) = out {
            let back: Value = serde_json::from_slice(&out).expect("valid JSON");
            prop_assert_eq!(back, v);
        }
    }

    #[test]
    fn generic_walk_keeps_the_shape(value in json()) {
        let scrubber = scrubber();
        let mut v = value.clone();
        scrubber.scrub_value(PayloadKind::Generic, &mut v);
        prop_assert!(same_shape(&value, &v), "{} -> {}", value, v);
    }

    #[test]
    fn scrubbing_is_idempotent(kind in kind(), value in json()) {
        let scrubber = scrubber();
        let mut once = value;
        scrubber.scrub_value(kind, &mut once);
        let mut twice = once.clone();
        let report = scrubber.scrub_value(kind, &mut twice);
        prop_assert!(report.is_empty(), "second pass changed {:?}", report);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>(), t in text()) {
        let scrubber = scrubber();
        for text in [s, t] {
            let mut v = serde_json::json!({
                "message": text.clone(),
                "request": {"url": text.clone(), "data": text.clone(), "query_string": text.clone(),
                            "headers": {"Cookie": text.clone()}},
                "spans": [{"op": "db", "description": text.clone()}],
            });
            let report = scrubber.scrub_value(PayloadKind::Transaction, &mut v);
            let _ = report.total();
            let mut again = v.clone();
            prop_assert!(scrubber.scrub_value(PayloadKind::Transaction, &mut again).is_empty());
        }
    }
}
