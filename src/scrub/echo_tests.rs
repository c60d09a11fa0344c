//! Echo across the envelope: every redaction's original is removed wherever else it
//! appears, with the first removal's replacement, within the bounds (length, specificity,
//! whole tokens, a cap).

use serde_json::{json, Value};

use super::*;
use crate::json::Node;

fn scrubber_with(toml_text: &str) -> Scrubber {
    let settings: ScrubSettings = toml::from_str(toml_text).expect("settings parse");
    Scrubber::compile(
        &settings,
        HashKey {
            id: "k1".into(),
            secret: b"engine-test-key-0123".to_vec(),
        },
    )
    .expect("compiles")
}

fn scrubber() -> Scrubber {
    scrubber_with("")
}

/// One payload scrubbed with (and adding to) `echo`.
fn item(s: &Scrubber, kind: PayloadKind, v: &mut Value, echo: &mut EchoSet) -> Vec<String> {
    let mut node = Node::from_value(v);
    let report = s.scrub_item(kind, &mut node, echo);
    assert_eq!(
        report.is_empty(),
        node == Node::from_value(v),
        "empty ⇔ unchanged"
    );
    *v = node.to_value();
    lines(&report)
}

/// The echo pass alone over a payload scrubbed before.
fn echo_back(s: &Scrubber, kind: PayloadKind, v: &mut Value, echo: &mut EchoSet) -> Vec<String> {
    let mut node = Node::from_value(v);
    let report = s.echo_item(kind, &mut node, echo);
    assert_eq!(
        report.is_empty(),
        node == Node::from_value(v),
        "empty ⇔ unchanged"
    );
    *v = node.to_value();
    lines(&report)
}

fn lines(report: &ScrubReport) -> Vec<String> {
    report
        .redactions
        .iter()
        .map(|r| format!("{} {} {} {}", r.path, r.rule, r.method.as_str(), r.count))
        .collect()
}

fn one(s: &Scrubber, v: &mut Value) -> Vec<String> {
    item(s, PayloadKind::Event, v, &mut EchoSet::new())
}

/// sentry-python sends a frame's locals as reprs and its source lines as they are: the
/// `password` local is filtered by its key, and its literal elsewhere in the frame (here a
/// call the `secret_pair` detector has no key for) gets the same label.
#[test]
fn a_filtered_local_is_removed_from_the_frame_source_lines() {
    let s = scrubber();
    let mut v = json!({"exception": {"values": [{"type": "AuthError", "stacktrace": {"frames": [{
        "function": "login", "module": "app", "lineno": 12,
        "vars": {"password": "'hunter2-Secret!'", "retries": "3"},
        "context_line": "    db.connect(DB_USER, \"hunter2-Secret!\")",
        "post_context": ["    log(\"hunter2-Secret!!\")", "    # xhunter2-Secret! stays"]
    }]}}]}});
    assert_eq!(
        one(&s, &mut v),
        [
            "exception.values.0.stacktrace.frames.0.vars.password key_secret replace 1",
            "exception.values.0.stacktrace.frames.0.context_line echo replace 1",
            "exception.values.0.stacktrace.frames.0.post_context.0 echo replace 1",
        ]
    );
    let frame = &v["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["vars"]["password"], "[Filtered]");
    assert_eq!(
        frame["context_line"],
        "    db.connect(DB_USER, \"[Filtered]\")"
    );
    assert_eq!(frame["post_context"][0], "    log(\"[Filtered]!\")");
    assert_eq!(frame["post_context"][1], "    # xhunter2-Secret! stays");
}

/// A hashed `user.username` also stands in source lines (`const username = 'jdoe_1975';`):
/// it becomes the same pseudonym there, whichever comes first in the event.
#[test]
fn a_hashed_username_becomes_its_pseudonym_in_source_lines() {
    let s = scrubber();
    let pseudonym = s.engine.redactor.pseudonym("username", "jdoe_1975");
    let mut v = json!({
        "exception": {"values": [{"type": "Error", "stacktrace": {"frames": [{
            "function": "main", "lineno": 3,
            "pre_context": ["const username = 'jdoe_1975';"],
            "context_line": "login(username); // JDOE_1975 too, not jdoe_19755"}]}}]},
        "user": {"username": "jdoe_1975"}
    });
    assert_eq!(
        one(&s, &mut v),
        [
            "user.username user_username hash 1",
            "exception.values.0.stacktrace.frames.0.pre_context.0 echo hash 1",
            "exception.values.0.stacktrace.frames.0.context_line echo hash 1",
        ]
    );
    let frame = &v["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(v["user"]["username"], pseudonym.as_str());
    assert_eq!(
        frame["pre_context"][0],
        format!("const username = '{pseudonym}';").as_str()
    );
    assert_eq!(
        frame["context_line"],
        format!("login(username); // {pseudonym} too, not jdoe_19755").as_str()
    );
}

/// The envelope's set goes from item to item: a later item is searched for the values of
/// the earlier ones in its own pass, and an earlier item for the values a later one added
/// with the echo pass alone. Each report says what changed in its own item.
#[test]
fn values_cross_items_both_ways() {
    let s = scrubber();
    let mut echo = EchoSet::new();
    let mut event = json!({"user": {"id": "u-77812"},
                           "message": "payment for u-77812 with promo SAVE-9917"});
    let mut logs = json!({"items": [
        {"body": "user u-77812 checked out", "attributes": {
            "coupon_code": {"value": "x", "type": "string"},
            "api_token": {"value": "SAVE-9917", "type": "string"}}}]});
    let user = s.engine.redactor.pseudonym("user", "u-77812");
    assert_eq!(
        item(&s, PayloadKind::Event, &mut event, &mut echo),
        ["user.id user_id hash 1", "message echo hash 1"]
    );
    assert_eq!(echo.len(), 1);
    assert_eq!(
        item(&s, PayloadKind::LogContainer, &mut logs, &mut echo),
        [
            "items.0.attributes.api_token.value key_secret replace 1",
            "items.0.body echo hash 1",
        ]
    );
    assert_eq!(
        logs["items"][0]["body"],
        format!("user {user} checked out").as_str()
    );
    assert_eq!(echo.len(), 2);
    assert_eq!(
        echo_back(&s, PayloadKind::Event, &mut event, &mut echo),
        ["message echo replace 1"]
    );
    assert_eq!(
        event["message"],
        format!("payment for {user} with promo [Filtered]").as_str()
    );
    // Nothing left to find: the echo pass reports nothing and changes nothing.
    assert_eq!(
        echo_back(&s, PayloadKind::Event, &mut event, &mut echo),
        Vec::<String>::new()
    );
    assert_eq!(
        echo_back(&s, PayloadKind::LogContainer, &mut logs, &mut echo),
        Vec::<String>::new()
    );
}

/// Key hits of every class, structural rules and context-dependent detector hits are
/// echoed; hits the detector finds wherever they stand (emails) need not be.
#[test]
fn every_kind_of_removal_is_echoed() {
    let s = scrubber();
    let mut v = json!({
        "extra": {"mrn": "MR-20931", "diagnosis": "Lyme disease", "cookie": "sessionid=9f8e7d6c5b4a"},
        "request": {"url": "https://bob:Sw0rdfish-42@db.internal/x"},
        "breadcrumbs": {"values": [{"message": "ssn: 219099999 on file"}]},
        "message": "MR-20931 has lyme disease; 9f8e7d6c5b4a; Sw0rdfish-42; 219099999 ok"
    });
    one(&s, &mut v);
    assert_eq!(
        v["message"],
        "[mrn] has [phi]; [Filtered]; [password]; [ssn] ok"
    );
}

/// Values that are not specific stay where they are: too short, common words, placeholders,
/// and (for detector guesses) words without a digit or symbol.
#[test]
fn unspecific_values_are_not_echoed() {
    let s = scrubber();
    let mut v = json!({
        "extra": {"password": "changeme", "secret": "abc", "token": "<redacted>",
                  "api_key": "********", "user_name": "None"},
        "user": {"username": "admin", "id": "7"},
        "logentry": {"formatted": "token = nextchar"},
        "message": "changeme abc <redacted> ******** None admin 7 nextchar"
    });
    let before = v["message"].clone();
    one(&s, &mut v);
    assert_eq!(v["message"], before);
    assert_eq!(v["logentry"]["formatted"], "token = [secret]");
}

/// A value is only replaced as a whole token: not inside a longer word or number.
#[test]
fn only_whole_tokens_are_echoed() {
    let s = scrubber();
    let mut v = json!({
        "user": {"id": "1234"},
        "message": "1234 123456 12.1234 1234.5 1234-56 x1234 1234_b (1234) id=1234&"
    });
    one(&s, &mut v);
    let p = s.engine.redactor.pseudonym("user", "1234");
    assert_eq!(
        v["message"],
        format!("{p} 123456 12.1234 1234.5 1234-56 x1234 1234_b ({p}) id={p}&").as_str()
    );
}

/// What scrubgate wrote is never matched into: a secret that happens to be the hash key id
/// leaves the pseudonyms (which carry the key id) whole.
#[test]
fn labels_and_pseudonyms_are_not_echoed_into() {
    let settings: ScrubSettings = toml::from_str("").expect("parses");
    let s = Scrubber::compile(
        &settings,
        HashKey {
            id: "acme2024".into(),
            secret: b"engine-test-key-0123".to_vec(),
        },
    )
    .expect("compiles");
    let mut v = json!({"user": {"id": "u-1"}, "extra": {"password": "acme2024"},
                       "message": "key acme2024"});
    one(&s, &mut v);
    assert_eq!(
        v["user"]["id"],
        s.engine.redactor.pseudonym("user", "u-1").as_str()
    );
    assert_eq!(v["message"], "key [Filtered]");
}

/// The first removal's replacement wins: the same value later found by another rule is
/// echoed with what the first wrote.
#[test]
fn the_first_replacement_is_kept() {
    let s = scrubber();
    let mut v = json!({"user": {"username": "jdoe_1975"},
                       "extra": {"first_name": "jdoe_1975", "note": "by jdoe_1975"}});
    one(&s, &mut v);
    let p = s.engine.redactor.pseudonym("username", "jdoe_1975");
    assert_eq!(v["extra"]["first_name"], "[name]");
    assert_eq!(v["extra"]["note"], format!("by {p}").as_str());
}

/// `remove` deletes the value's copies too; a mask is made again for the bare value.
#[test]
fn remove_and_mask_methods_carry_over() {
    let s = scrubber_with(
        "[detectors.key_secret]\nmethod = \"remove\"\n[detectors.key_account]\nmethod = \"mask\"\n",
    );
    let mut v = json!({"extra": {"password": "hunter2-x", "account_number": "'12345678'"},
                       "message": "pw hunter2-x ref 12345678."});
    let report = one(&s, &mut v);
    assert_eq!(v["extra"], json!({"account_number": "'****5678'"}));
    assert_eq!(v["message"], "pw  ref ****5678.");
    assert_eq!(
        report,
        [
            "extra.password key_secret remove 1",
            "extra.account_number key_account mask 1",
            "message echo remove 1",
            "message echo mask 1"
        ]
    );
}

/// `[scrub.detectors.echo] enabled = false` turns echo off; so does nothing else.
#[test]
fn echo_can_be_turned_off() {
    let s = scrubber_with("[detectors.echo]\nenabled = false\n");
    let mut v = json!({"extra": {"password": "hunter2-x"}, "message": "pw hunter2-x"});
    let mut echo = EchoSet::new();
    item(&s, PayloadKind::Event, &mut v, &mut echo);
    assert_eq!(v["message"], "pw hunter2-x");
    assert!(echo.is_empty());
}

/// An item with nothing to echo and nothing to redact is unchanged with an empty report,
/// even when the envelope's set has values.
#[test]
fn an_untouched_item_stays_untouched() {
    let s = scrubber();
    let mut echo = EchoSet::new();
    let mut first = json!({"extra": {"password": "hunter2-x"}});
    item(&s, PayloadKind::Event, &mut first, &mut echo);
    let mut clean = json!({"message": "all good", "extra": {"n": 1}});
    let before = clean.clone();
    assert!(item(&s, PayloadKind::Event, &mut clean, &mut echo).is_empty());
    assert!(echo_back(&s, PayloadKind::Event, &mut clean, &mut echo).is_empty());
    assert_eq!(clean, before);
}

/// The set's `Debug` shows counts, never values.
#[test]
fn echo_set_debug_shows_no_values() {
    let s = scrubber();
    let mut echo = EchoSet::new();
    let mut v = json!({"extra": {"password": "hunter2-x"}});
    item(&s, PayloadKind::Event, &mut v, &mut echo);
    let text = format!("{echo:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("values: 1"), "{text}");
}
