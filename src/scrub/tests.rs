//! Engine-level tests: the report, the invariant "empty report ⇔ unchanged", hashing.

use super::detectors::builtin::Structural;
use serde_json::json;

use super::*;

fn scrubber() -> Scrubber {
    Scrubber::compile(
        &ScrubSettings::default(),
        HashKey {
            id: "k1".into(),
            secret: b"engine-test-key-0123".to_vec(),
        },
    )
    .expect("compiles")
}

/// A report as `path rule method count` lines, the form the report tests compare.
fn report_lines(report: &crate::scrub::ScrubReport) -> Vec<String> {
    report
        .redactions
        .iter()
        .map(|r| format!("{} {} {} {}", r.path, r.rule, r.method.as_str(), r.count))
        .collect()
}

#[test]
fn report_has_path_rule_method_count_and_no_values() {
    let mut v = json!({"exception": {"values": [{"type": "E", "value": "a@b.co and c@d.co"}]},
                       "user": {"id": "8812", "ip_address": "{{auto}}"}});
    let report = scrubber().scrub_value(PayloadKind::Event, &mut v);
    let lines = report_lines(&report);
    assert_eq!(
        lines,
        [
            "exception.values.0.value email replace 2",
            "user.id user_id hash 1",
            "user.ip_address client_ip remove 1",
        ]
    );
    let text = serde_json::to_string(&report).expect("serializable");
    assert!(!text.contains("a@b.co") && !text.contains("8812"));
}

#[test]
fn unchanged_payload_has_empty_report() {
    let mut v = json!({"message": "all good", "level": "info"});
    let before = v.clone();
    assert!(scrubber()
        .scrub_value(PayloadKind::Event, &mut v)
        .is_empty());
    assert_eq!(v, before);
}

#[test]
fn user_and_session_pseudonyms_match() {
    let s = scrubber();
    let mut event = json!({"user": {"id": "u-1"}});
    let mut session = json!({"sid": "x", "did": "u-1", "status": "ok"});
    s.scrub_value(PayloadKind::Event, &mut event);
    s.scrub_value(PayloadKind::Session, &mut session);
    assert_eq!(event["user"]["id"], session["did"]);
    assert!(event["user"]["id"]
        .as_str()
        .unwrap_or("")
        .starts_with("user:k1:"));
}

#[test]
fn remove_method_override_removes_keys() {
    let settings: ScrubSettings =
        toml::from_str("[detectors.key_email]\nmethod = \"remove\"\n").expect("parses");
    let s = Scrubber::compile(
        &settings,
        HashKey {
            id: "k".into(),
            secret: b"0123456789abcdef".to_vec(),
        },
    )
    .expect("compiles");
    let mut v = json!({"extra": {"email": "a@b.co", "keep": 1}});
    let report = s.scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(v, json!({"extra": {"keep": 1}}));
    assert_eq!(report.redactions[0].method, Method::Remove);
}

#[test]
fn settings_round_trip_through_toml() {
    let text = r#"
profile = "hipaa"
label_format = "[{LABEL}-REDACTED]"
dates_as_dob = true
sensitive_keys = ["employee_id"]
[detectors.card]
method = "mask"
keep_last = 4
[[patterns]]
name = "employee-id"
regex = "EMP-\\d{6}"
method = "hash"
keys = ["note*"]
"#;
    let settings: ScrubSettings = toml::from_str(text).expect("parses");
    let back = toml::to_string(&settings).expect("serializes");
    let again: ScrubSettings = toml::from_str(&back).expect("parses again");
    assert_eq!(again.patterns.len(), 1);
    assert_eq!(again.detectors["card"].keep_last, Some(4));
}

/// The name is in neither Census list, so `full_name` leaves it to the echo pass.
/// The echo pass writes a value's path out only when it labels something: the report must
/// still name each copy where the eager walkers would, through arrays, nested arrays, keys
/// holding a dot and empty keys, and in enum fields such as `op` (only ids, times and SDK
/// metadata are schema fields left unscanned).
#[test]
fn echo_report_names_each_copy_at_its_path() {
    let mut v = json!({
        "exception": {"values": [{"type": "ValueError", "value": "Charge declined for Zelphine Quardo",
            "stacktrace": {"frames": [{"function": "charge", "module": "billing",
                "vars": {"payment": {"name": "Zelphine Quardo", "amount": 1999}}}]}}]},
        "breadcrumbs": {"values": [{"message": "start"}, {"message": "login ok"},
                                   {"message": "card of Zelphine Quardo declined"}]},
        "extra": {"notes": [["x"], ["for Zelphine Quardo, again Zelphine Quardo"]],
                  "a.b": "Zelphine Quardo", "": {"k": "Zelphine Quardo"}},
        "contexts": {"trace": {"op": "Zelphine Quardo"}}
    });
    let report = scrubber().scrub_value(PayloadKind::Event, &mut v);
    let lines = report_lines(&report);
    assert_eq!(
        lines,
        [
            "exception.values.0.stacktrace.frames.0.vars.payment.name key_name replace 1",
            "exception.values.0.value echo replace 1",
            "breadcrumbs.values.2.message echo replace 1",
            "extra.notes.1.0 echo replace 2",
            "extra.a.b echo replace 1",
            "extra..k echo replace 1",
            "contexts.trace.op echo replace 1",
        ]
    );
    assert_eq!(v["extra"]["notes"][1][0], "for [name], again [name]");
    assert_eq!(v["contexts"]["trace"]["op"], "[name]");
}

/// The per-call scan cache must give every repeat of a string the same treatment as the
/// first: each copy redacted, each counted at its own path (the cache only starts after
/// the first few dozen scans, so the payload repeats well past that).
#[test]
fn repeated_strings_are_scrubbed_every_time() {
    let crumbs: Vec<Value> = (0..300)
        .map(|i| {
            json!({"category": if i % 2 == 0 { "ui" } else { "query" },
                   "message": if i % 3 == 0 { "mail alice@example.com now" } else { "clicked Save 42" }})
        })
        .collect();
    let mut v = json!({"breadcrumbs": {"values": crumbs}});
    let report = scrubber().scrub_value(PayloadKind::Event, &mut v);
    let emails = report
        .redactions
        .iter()
        .filter(|r| r.rule == "email")
        .map(|r| r.count)
        .sum::<u32>();
    let mut expected = 0;
    for (i, crumb) in v["breadcrumbs"]["values"]
        .as_array()
        .expect("still a list")
        .iter()
        .enumerate()
    {
        let message = crumb["message"].as_str().expect("still a string");
        assert!(
            !message.contains("alice@example.com"),
            "crumb {i}: {message}"
        );
        if i % 3 == 0 && i % 2 == 0 {
            expected += 1;
            assert_eq!(message, "mail [email] now", "crumb {i}");
        }
    }
    // Odd crumbs are SQL: the literal-free text is scanned after stripping, so the e-mail
    // there is found by the detector as well.
    assert!(emails >= expected);
    assert!(report
        .redactions
        .iter()
        .any(|r| r.path == "breadcrumbs.values.297.message"));
}

#[test]
fn labels_and_pseudonyms_are_not_keyword_context_or_hits() {
    // `[dob]` and `[phone]` are scrubgate's own words, not "DOB"/"phone" before a value;
    // a pseudonym's hex digits are not a number to redact.
    let s = scrubber();
    let pseudonym = s.engine.redactor.pseudonym("user", "8812");
    let text = format!("seen [dob], at 2026-11-22; phone [phone]; build 5550104477; {pseudonym}");
    let mut v = json!({"message": text.clone()});
    let report = s.scrub_value(PayloadKind::Event, &mut v);
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(v["message"], text.as_str());
    // The real keywords still count.
    let mut v = json!({"message": "DOB 2026-11-22, phone 5550104477"});
    s.scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(v["message"], "DOB [dob], phone [phone]");
}

#[test]
fn values_hidden_by_an_overlapping_candidate_are_found_in_the_same_scrub() {
    let mut v = json!({"message": "call +44 20 7946 0958 123-45-6789 now"});
    let report = scrubber().scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(v["message"], "call [phone] [ssn] now");
    assert_eq!(report.total(), 2);
}

#[test]
fn scrub_json_sees_every_duplicate_and_keeps_untouched_bytes() {
    let s = scrubber();
    let input =
        br#"{"extra":{"note":"mail a@b.co","note":"mail c@d.co","ok":"caf\u00e9 1.50","n":1.50}}"#;
    let (out, report) = s.scrub_json(PayloadKind::Event, input).expect("valid JSON");
    let out = String::from_utf8(out.expect("changed")).expect("UTF-8");
    assert!(!out.contains("a@b.co") && !out.contains("c@d.co"), "{out}");
    assert_eq!(out.matches("\"note\"").count(), 2, "{out}");
    // Untouched strings and numbers are written back as they came.
    assert!(out.contains(r#""ok":"caf\u00e9 1.50","n":1.50"#), "{out}");
    assert_eq!(report.total(), 2);

    let clean = br#"{"message": "nothing here",  "n": 1E5}"#;
    let (out, report) = s.scrub_json(PayloadKind::Event, clean).expect("valid JSON");
    assert!(out.is_none() && report.is_empty());
    assert!(s.scrub_json(PayloadKind::Event, b"{\"a\":1,}").is_err());
}

#[test]
fn duplicate_keys_hide_nothing() {
    let s = scrubber();
    let event = br#"{"breadcrumbs":{"values":[{"message":"mail a@b.co"}],"values":[{"message":"mail c@d.co"}]},
        "user":{"email":"x@y.co"},"user":{"email":"z@w.co"}}"#;
    let (out, _) = s.scrub_json(PayloadKind::Event, event).expect("valid JSON");
    let out = String::from_utf8(out.expect("changed")).expect("UTF-8");
    for pii in ["a@b.co", "c@d.co", "x@y.co", "z@w.co"] {
        assert!(!out.contains(pii), "{pii} in {out}");
    }
    let logs = br#"{"items":[{"body":"ok","attributes":{"user.email":{"value":"a@b.co","type":"string","value":"c@d.co"}}}]}"#;
    let (out, _) = s
        .scrub_json(PayloadKind::LogContainer, logs)
        .expect("valid JSON");
    let out = String::from_utf8(out.expect("changed")).expect("UTF-8");
    assert!(!out.contains("a@b.co") && !out.contains("c@d.co"), "{out}");
}

#[test]
fn a_number_under_cookies_is_read_as_a_cookie_header() {
    // Found by the idempotence property test (seed 3): a number under `cookies` was scanned
    // as text (`-[card]`), and the second pass then treated that string as a bare cookie.
    let s = scrubber();
    let mut v =
        json!({"cookies": -6337534033469777318i64, "request": {"cookies": 4111111111111111u64}});
    s.scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(
        v,
        json!({"cookies": "[Filtered]", "request": {"cookies": "[Filtered]"}})
    );
    let again = s.scrub_value(PayloadKind::Event, &mut v);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_rewritten_query_value_escapes_what_the_sender_escaped() {
    // Fuzz finding: `%3b` decoded to `;` and was written back bare, so the cookie header
    // split into one more cookie on the next scrub.
    let s = scrubber();
    // (A preference cookie: any other cookie's value is removed whole in hipaa.)
    let mut v = json!({"request": {"cookies": "theme=at://?=67645-6765%3bk"},
                       "message": "see https://x.org/?q=67645-6765%29k) now"});
    s.scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(v["request"]["cookies"], "theme=at://?=[zip]%3Bk");
    assert_eq!(v["message"], "see https://x.org/?q=[zip]%29k) now");
    assert_settled(&s, PayloadKind::Event, v);
}

/// A second scrub of scrubbed output reports nothing and changes nothing.
fn assert_settled(s: &Scrubber, kind: PayloadKind, mut v: serde_json::Value) {
    let again = v.clone();
    let report = s.scrub_value(kind, &mut v);
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(v, again);
}

#[test]
fn a_string_that_does_not_settle_in_four_passes_is_replaced_whole() {
    // Fuzz finding: each pass of SQL stripping + `token=` peeled one more `--''` layer, so a
    // second scrub still found something after the fourth pass.
    let s = scrubber();
    let mut v = json!({"spans": [{"op": "db.sql.query", "description": "token=--''--''--''--'"}]});
    let report = s.scrub_value(PayloadKind::Transaction, &mut v);
    assert_eq!(v["spans"][0]["description"], "[Filtered]");
    assert!(report.redactions.iter().any(|r| r.rule == "unsettled"));
    // Three layers still settle within the passes and keep the statement's shape.
    let mut short = json!({"spans": [{"op": "db.sql.query", "description": "token=--''--'"}]});
    s.scrub_value(PayloadKind::Transaction, &mut short);
    assert_ne!(short["spans"][0]["description"], "[Filtered]");
    assert_settled(&s, PayloadKind::Transaction, v);
    assert_settled(&s, PayloadKind::Transaction, short);
}

#[test]
fn a_query_value_is_scrubbed_until_it_reads_the_same() {
    // Fuzz finding: `token=' l'` inside a query value lost its space to `[secret]`, so the
    // value read as a query of its own on the next scrub.
    let s = scrubber();
    let mut v = json!({"request": {"query_string": "=/?token=' l'"}});
    s.scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(v["request"]["query_string"], "=/?token%3D[Filtered]");
    assert_settled(&s, PayloadKind::Event, v);
}

#[test]
fn a_body_that_judging_makes_a_form_is_read_as_a_form_in_the_same_scrub() {
    // Fuzz finding: the record's third label took the body's only space, so the next
    // scrub read `7=…` as a form and judged its value as a record holding three labels.
    let s = scrubber();
    let mut v = json!({"request": {"data": "7=08re9,53622-8471,53956 8,53622-8471"}});
    s.scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(v["request"]["data"], "7=[mrn],[zip],[mrn],[zip]");
    assert_settled(&s, PayloadKind::Event, v);
}

#[test]
fn a_query_that_scrubbing_makes_no_statement_is_read_as_a_query_in_the_same_scrub() {
    // Fuzz finding: `[email]` took the `SELECT` of a statement under `query_string`, so the
    // next scrub read the rest as a query string with an `ssn` key.
    let s = scrubber();
    let mut v = json!({"request": {"query_string": "SELECTa@b.co' AND ssn =x' AND ssn =12x&"}});
    s.scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(v["request"]["query_string"], "[email]? AND ssn =[ssn]&");
    assert_settled(&s, PayloadKind::Event, v);
}

#[test]
fn keys_met_by_one_call_are_known_to_the_next_with_the_same_meaning() {
    let s = scrubber();
    let seeded = s.engine.known_keys.len();
    assert!(seeded >= profile::COMMON_KEYS.len() / 2);
    let event = serde_json::json!({"extra": {"patientFullName": "Jane Roe", "shoe_size": "44"}});
    let mut first = event.clone();
    let r1 = s.scrub_value(PayloadKind::Event, &mut first);
    assert_eq!(
        s.engine.known_keys.len(),
        seeded + 2,
        "patientFullName and shoe_size learned"
    );
    let mut second = event.clone();
    let r2 = s.scrub_value(PayloadKind::Event, &mut second);
    assert_eq!(first, second);
    assert_eq!(first["extra"]["patientFullName"], "[name]");
    assert_eq!(first["extra"]["shoe_size"], "44");
    assert_eq!(r1.redactions.len(), r2.redactions.len());
    assert_eq!(
        s.engine.known_keys.len(),
        seeded + 2,
        "nothing new to learn"
    );
}

#[test]
fn made_up_keys_stop_being_learned_at_the_cap() {
    let s = scrubber();
    let seeded = s.engine.known_keys.len();
    let cap = seeded + walk::KnownKeys::MAX_LEARNED;
    for batch in 0..6 {
        let extra: serde_json::Map<String, serde_json::Value> = (0..1000)
            .map(|i| (format!("k{batch}x{i}"), serde_json::Value::from(i)))
            .collect();
        let mut event = serde_json::json!({ "extra": extra });
        s.scrub_value(PayloadKind::Event, &mut event);
        assert!(s.engine.known_keys.len() <= cap);
    }
    assert_eq!(s.engine.known_keys.len(), cap);
    // A key met after the cap is still classified (per call): a secret stays hidden.
    let mut event = serde_json::json!({"extra": {"late_api_key": "abc123"}});
    s.scrub_value(PayloadKind::Event, &mut event);
    assert_eq!(event["extra"]["late_api_key"], "[Filtered]");
    assert_eq!(s.engine.known_keys.len(), cap);
}

#[test]
fn meta_keeps_sdk_remarks_loses_original_values_and_scans_strings() {
    let mut v = json!({
        "extra": {"note": "x"},
        "_meta": {
            "extra": {"note": {"": {"len": 5120, "rem": [["!limit", "x", 512, 515]]}}},
            "request": {"data": {"": {"val": "ssn 078-05-1120 for jane@x.org",
                                      "err": ["invalid_data", {"reason": "mail jane@x.org"}]}}},
            "password": {"": {"rem": [["!config", "s"]]}}
        }
    });
    let report = scrubber().scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(
        v["_meta"],
        json!({
            "extra": {"note": {"": {"len": 5120, "rem": [["!limit", "x", 512, 515]]}}},
            "request": {"data": {"": {"err": ["invalid_data", {"reason": "mail [email]"}]}}},
            "password": {"": {"rem": [["!config", "s"]]}}
        })
    );
    let rules: Vec<(&str, &str)> = report
        .redactions
        .iter()
        .map(|r| (r.path.as_str(), r.rule.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            ("_meta.request.data..val", "meta_value"),
            ("_meta.request.data..err.1.reason", "email"),
        ]
    );
}

/// Source lines in frames say `name: "Optional[str]" = None`. A `person_name` hit is echoed
/// through the whole event, so taking `None` for a name turned every `None` (and, since echo
/// ignores case, every `none`) into `[name]`.
#[test]
fn source_lines_do_not_seed_name_echoes() {
    let mut v = json!({
        "exception": {"values": [{"type": "TypeError", "value": "expected str, got None",
            "stacktrace": {"frames": [{"function": "start_span", "module": "app.tracing",
                "pre_context": ["def start_span(", "    name: \"Optional[str]\" = None,"],
                "context_line": "    span = Span(name=\"My Span\")",
                "post_context": ["    # look for MS Office files"]}]}}]},
        "breadcrumbs": {"values": [{"message": "span My Span done; Office none"}]}
    });
    let before = v.clone();
    let report = scrubber().scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(report_lines(&report), Vec::<String>::new());
    assert_eq!(v, before);
}

#[test]
fn thousands_of_echo_values_are_deduplicated_and_capped() {
    // The same name 2,000 times (the duplicate check on echo values is a set, not a scan of
    // the list), then 2,000 distinct names: the first `MAX_ECHO_VALUES` distinct values are
    // echoed, the rest are still redacted under their keys but counted as not echoed.
    let mut users: Vec<Value> = (0..2000)
        .map(|_| json!({"name": "Repeated Person"}))
        .collect();
    users.extend((0..2000).map(|i| json!({"name": format!("Person{i:04} Example")})));
    let mut v = json!({
        "extra": {"people": users},
        "message": "seen Person0007 Example, Person0254 Example, Person0255 Example and Repeated Person today"
    });
    let mut node = crate::json::Node::from_value(&v);
    let mut echo = EchoSet::new();
    let report = scrubber().scrub_item(PayloadKind::Event, &mut node, &mut echo);
    v = node.to_value();
    assert_eq!(echo::MAX_ECHO_VALUES, 256);
    assert_eq!(echo.len(), 256);
    assert_eq!(echo.not_echoed(), 2000 - 255);
    assert_eq!(
        v["message"],
        "seen [name], [name], Person0255 Example and [name] today"
    );
    assert_eq!(v["extra"]["people"][3999]["name"], "[name]");
    let echoes: u32 = report
        .redactions
        .iter()
        .filter(|r| r.rule == "echo")
        .map(|r| r.count)
        .sum();
    assert_eq!(echoes, 3);
}

#[test]
fn every_structural_rule_is_configurable_by_its_name_and_its_switch_reaches_the_engine() {
    let key = || HashKey {
        id: "k".into(),
        secret: b"0123456789abcdef".to_vec(),
    };
    let names: std::collections::HashSet<&str> = Structural::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names.len(), Structural::COUNT, "names are distinct");
    for rule in Structural::ALL {
        let text = format!("[detectors.{}]\nenabled = false\n", rule.name());
        let settings: ScrubSettings = toml::from_str(&text).expect("parses");
        let off = Scrubber::compile(&settings, key()).expect("a known rule name");
        let on = Scrubber::compile(&ScrubSettings::default(), key()).expect("compiles");
        assert!(!off.engine.rules.enabled(rule), "{}", rule.name());
        assert!(on.engine.rules.enabled(rule), "{}", rule.name());
        for other in Structural::ALL.into_iter().filter(|o| *o != rule) {
            assert!(
                off.engine.rules.enabled(other),
                "{} leaves {} on",
                rule.name(),
                other.name()
            );
        }
    }
    let settings: ScrubSettings =
        toml::from_str("[detectors.user_idd]\nenabled = false\n").expect("parses");
    let error = Scrubber::compile(&settings, key()).expect_err("a misspelt rule");
    assert!(error.to_string().contains("detectors.user_idd"), "{error}");
}
