//! "Never less than Sentry": for each data-scrubbing default Sentry documents (Server-Side
//! Data Scrubbing: the default sensitive field names, the credit-card rule, "scrub IP
//! addresses"; the session and CSRF cookies it filters by name), a value Sentry removes is
//! removed by the `hipaa` profile too. Written from the documentation's facts, not from
//! Relay's code. The deliberate differences (docs/scrubbing.md, "Compared with Sentry's
//! defaults") are asserted the other way round at the end, so a change to them is a
//! decision, not an accident.

use serde_json::{json, Value};

use super::*;

fn scrubber() -> Scrubber {
    Scrubber::compile(
        &ScrubSettings::default(),
        HashKey {
            id: "k1".into(),
            secret: b"superset-test-key-0123".to_vec(),
        },
    )
    .expect("compiles")
}

/// The default sensitive field names Sentry's docs list (a key containing one of them has
/// its value removed).
const SENTRY_DEFAULT_FIELDS: &[&str] = &[
    "password",
    "secret",
    "passwd",
    "api_key",
    "apikey",
    "access_token",
    "auth",
    "credentials",
    "mysql_pwd",
    "stripetoken",
    "github_token",
    "privatekey",
    "private_key",
    "token",
    "bearer",
];

/// Session and CSRF cookie names Sentry filters by name.
const SENTRY_COOKIES: &[&str] = &[
    "sentrysid",
    "su",
    "sudo",
    "symfony",
    "mysession",
    "user_session",
    "fasthttpsessionid",
    "irissessionid",
    "fastcsrf",
    "sessionid",
    "csrftoken",
    "session",
    "phpsessid",
    "jsessionid",
];

/// Every string in `v`, depth first.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

/// Scrubs `event` and asserts that `secret` is nowhere in it any more.
fn assert_removed(mut event: Value, secret: &str, what: &str) {
    scrubber().scrub_value(PayloadKind::Event, &mut event);
    let mut all = Vec::new();
    strings(&event, &mut all);
    assert!(
        !all.iter().any(|s| s.contains(secret)),
        "{what}: `{secret}` survived in {event}"
    );
}

#[test]
fn default_sensitive_fields_as_keys_everywhere() {
    for field in SENTRY_DEFAULT_FIELDS {
        let secret = "Zq8-value-7731";
        for (where_, event) in [
            ("extra", json!({"extra": {*field: secret}})),
            (
                "request.data",
                json!({"request": {"data": {*field: secret}}}),
            ),
            ("headers", json!({"request": {"headers": {*field: secret}}})),
            (
                "frame vars",
                json!({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [
                    {"function": "f", "vars": {*field: secret}}]}}]}}),
            ),
            ("contexts", json!({"contexts": {"app": {*field: secret}}})),
            (
                "compound key",
                json!({"extra": {format!("user_{field}"): secret}}),
            ),
            (
                "query string",
                json!({"request": {"query_string": format!("{field}={secret}")}}),
            ),
        ] {
            assert_removed(event, secret, &format!("{field} in {where_}"));
        }
    }
}

#[test]
fn session_and_csrf_cookies() {
    for name in SENTRY_COOKIES {
        let secret = "c00kie-77aa88bb";
        assert_removed(
            json!({"request": {"cookies": {*name: secret}}}),
            secret,
            &format!("cookie {name} in request.cookies"),
        );
        assert_removed(
            json!({"request": {"headers": {"Cookie": format!("theme=dark; {name}={secret}")}}}),
            secret,
            &format!("cookie {name} in a Cookie header"),
        );
        assert_removed(
            json!({"contexts": {"response": {"cookies": {*name: secret}}}}),
            secret,
            &format!("cookie {name} in contexts.response.cookies"),
        );
    }
}

#[test]
fn second_factors() {
    for key in [
        "two_factor",
        "two-factor",
        "otp",
        "mfa_code",
        "totp",
        "2fa",
        "one_time_code",
    ] {
        let secret = "493817";
        assert_removed(json!({"request": {"data": {key: secret}}}), secret, key);
        assert_removed(json!({"extra": {key: secret}}), secret, key);
    }
}

#[test]
fn credit_cards_anywhere() {
    for card in [
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "378282246310005",
    ] {
        assert_removed(
            json!({"message": format!("charge {card} failed")}),
            card,
            "card",
        );
        assert_removed(json!({"extra": {"note": card}}), card, "card");
    }
}

#[test]
fn client_ip_with_ip_scrubbing() {
    assert_removed(
        json!({"user": {"ip_address": "203.0.113.7"}}),
        "203.0.113.7",
        "user.ip",
    );
    assert_removed(
        json!({"sdk": {"name": "sentry.python", "client_ip": "203.0.113.7"}}),
        "203.0.113.7",
        "sdk.client_ip",
    );
    assert_removed(
        json!({"request": {"env": {"REMOTE_ADDR": "203.0.113.7"}}}),
        "203.0.113.7",
        "REMOTE_ADDR",
    );
}

#[test]
fn short_secrets() {
    assert_removed(
        json!({"logentry": {"message": "login password=%s", "params": ["x"],
            "formatted": "login password=x"}}),
        "password=x",
        "a one-character password in logentry params",
    );
    assert_removed(
        json!({"request": {"headers": {"Authorization": "Bearer zzz"}}}),
        "zzz",
        "a short bearer token",
    );
}

#[test]
fn token_in_a_url_without_scheme() {
    assert_removed(
        json!({"message": "GET foo.bar/endpoint?token_foobar=sensitive1 failed"}),
        "sensitive1",
        "token in a schemeless URL",
    );
}

/// The deliberate differences: each is kept on purpose (docs/scrubbing.md says why).
#[test]
fn deliberate_differences_stay_deliberate() {
    let mut event = json!({"extra": {
        "not_luhn": "4111 1111 1111 1112",
        "loopback": "127.0.0.1",
        "sql": "SELECT password FROM users WHERE id = 1",
        "tokens_count": "12",
        "is_authenticated": "true"
    }});
    scrubber().scrub_value(PayloadKind::Event, &mut event);
    assert_eq!(
        event,
        json!({"extra": {
            "not_luhn": "4111 1111 1111 1112",
            "loopback": "127.0.0.1",
            "sql": "SELECT password FROM users WHERE id = ?",
            "tokens_count": "12",
            "is_authenticated": "true"
        }}),
        "the statement stays readable (its literal is stripped like any SQL literal)"
    );
}
