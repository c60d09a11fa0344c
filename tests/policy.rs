//! Issue #4, decide: each policy default, each relaxation, each drop-rule condition, strict
//! mode, partial drops and the added client report, asserted on what reaches the in-test
//! upstream (and on the audit record for the one thing the upstream cannot show: which rule).

use std::time::Duration;

use scrubgate::config::ConfigFile;
use serde_json::{json, Value};

use crate::util::{self, Proxy, Recorded, Upstream, PID};

/// An envelope from a header and `(item header, payload)` pairs.
pub fn envelope(header: &Value, items: &[(Value, Vec<u8>)]) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).unwrap();
    out.push(b'\n');
    for (item_header, payload) in items {
        let mut item_header = item_header.clone();
        item_header["length"] = json!(payload.len());
        out.extend(serde_json::to_vec(&item_header).unwrap());
        out.push(b'\n');
        out.extend(payload);
        out.push(b'\n');
    }
    out
}

pub fn json_item(item_type: &str, payload: &Value) -> (Value, Vec<u8>) {
    (
        json!({"type": item_type}),
        serde_json::to_vec(payload).unwrap(),
    )
}

pub async fn post(proxy: &Proxy, body: Vec<u8>) -> (u16, String) {
    let response = util::client()
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn item_types(recorded: &Recorded) -> Vec<String> {
    recorded
        .envelope()
        .items()
        .iter()
        .map(|i| i.item_type().as_str().to_owned())
        .collect()
}

fn client_report(recorded: &Recorded) -> Option<Value> {
    recorded
        .envelope()
        .items()
        .iter()
        .rev()
        .find(|i| i.item_type().as_str() == "client_report")
        .map(|i| serde_json::from_slice(i.payload()).unwrap())
}

/// Audit records written so far to the trail in `dir`.
pub fn audit_records(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A config with its own audit trail in `dir` and synchronous delivery, so a response
/// means the upstream has seen the envelope.
pub fn config(upstream: &Upstream, dir: &std::path::Path, policy: &str) -> ConfigFile {
    let mut file = util::config_file(&upstream.url());
    file.delivery.mode = scrubgate::delivery::DeliveryMode::Sync;
    file.audit.path = dir.join("audit.jsonl");
    file.policy = toml::from_str(policy).expect("test policy");
    file
}

const EID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[tokio::test]
async fn defaults_forward_json_items_and_drop_everything_unscrubbable() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(config(&upstream, dir.path(), "")).await;
    let png = vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3];
    let body = envelope(
        &json!({"event_id": EID}),
        &[
            json_item("event", &json!({"message": "boom"})),
            (
                json!({"type": "attachment", "filename": "shot.png", "content_type": "image/png"}),
                png.clone(),
            ),
            (
                json!({"type": "attachment", "attachment_type": "event.minidump"}),
                b"MDMP....".to_vec(),
            ),
            (
                json!({"type": "attachment", "filename": "log.txt", "content_type": "text/plain"}),
                b"hello".to_vec(),
            ),
            (json!({"type": "brand_new_thing"}), b"{}".to_vec()),
            json_item(
                "client_report",
                &json!({"discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 1}]}),
            ),
            (json!({"type": "event_junk"}), b"{".to_vec()),
        ],
    );
    let (status, _) = post(&proxy, body).await;
    assert_eq!(status, 200);
    let received = upstream.wait_for(1).await;
    assert_eq!(
        item_types(&received[0]),
        ["event", "client_report", "client_report"],
        "the SDK's client report is forwarded as is, ours is appended"
    );
    let report = client_report(&received[0]).unwrap();
    assert_eq!(report["discarded_events"][0]["reason"], "before_send");
    assert_eq!(report["discarded_events"][0]["category"], "attachment");
    assert_eq!(
        report["discarded_events"][0]["quantity"],
        json!(png.len() + 8 + 5)
    );
    let records = audit_records(dir.path());
    let reasons: Vec<&str> = records[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        reasons,
        [
            "-",
            "attachment_policy",
            "binary_item",
            "attachment_policy",
            "unknown_item_type",
            "-",
            "unknown_item_type"
        ]
    );
    // Invalid JSON in a JSON item type is dropped, the rest continues.
    upstream.clear();
    let body = envelope(
        &json!({"event_id": EID}),
        &[
            json_item("event", &json!({"message": "ok"})),
            (json!({"type": "session"}), b"{not json".to_vec()),
        ],
    );
    assert_eq!(post(&proxy, body).await.0, 200);
    let received = upstream.wait_for(1).await;
    assert_eq!(item_types(&received[0]), ["event", "client_report"]);
    proxy.stop().await;
}

#[tokio::test]
async fn each_relaxation_is_an_explicit_switch() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(config(
        &upstream,
        dir.path(),
        r#"
        attachments = "scrub-text"
        unknown_items = "forward"
        client_reports = false
        [attachment_allow]
        filenames = ["*.json", "*.txt"]
        "#,
    ))
    .await;
    let body = envelope(
        &json!({"event_id": EID}),
        &[
            json_item("event", &json!({"message": "boom"})),
            (
                json!({"type": "attachment", "filename": "ctx.json", "content_type": "application/json"}),
                br#"{"password":"hunter2-attach","ok":1}"#.to_vec(),
            ),
            (
                json!({"type": "attachment", "filename": "shot.png", "content_type": "image/png"}),
                b"\x89PNG".to_vec(),
            ),
            (
                json!({"type": "attachment", "filename": "bin.txt", "content_type": "application/octet-stream"}),
                b"\x00\x01".to_vec(),
            ),
            (json!({"type": "brand_new_thing"}), b"opaque".to_vec()),
        ],
    );
    assert_eq!(post(&proxy, body).await.0, 200);
    let received = upstream.wait_for(1).await;
    assert_eq!(
        item_types(&received[0]),
        ["event", "attachment", "brand_new_thing"]
    );
    let attachment = &received[0].envelope().items()[1].payload().clone();
    let value: Value = serde_json::from_slice(attachment).unwrap();
    assert_eq!(value["ok"], 1);
    assert!(!String::from_utf8_lossy(attachment).contains("hunter2-attach"));
    let records = audit_records(dir.path());
    let reasons: Vec<&str> = records[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        reasons,
        [
            "-",
            "-",
            "attachment_not_allowed",
            "attachment_not_text",
            "-"
        ]
    );
    proxy.stop().await;
}

#[tokio::test]
async fn each_drop_rule_condition_drops_the_event_and_names_the_rule() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(config(
        &upstream,
        dir.path(),
        r#"
        [[drop]]
        name = "env"
        environment = "staging"
        [[drop]]
        name = "release"
        release = "legacy@*"
        [[drop]]
        name = "level"
        level = "debug"
        [[drop]]
        name = "platform"
        platform = "cobol"
        [[drop]]
        name = "logger"
        logger = "noisy.*"
        [[drop]]
        name = "exception"
        exception_type = "*Timeout*"
        [[drop]]
        name = "transaction"
        transaction = "/health*"
        [[drop]]
        name = "tags"
        tags = { tier = "free" }
        [[drop]]
        name = "url"
        url = "re:^https://[^/]+/internal/"
        [[drop]]
        name = "item-type"
        item_types = "check_in"
        "#,
    ))
    .await;
    let cases = [
        ("env", json!({"environment": "staging"})),
        ("release", json!({"release": "legacy@0.9"})),
        ("level", json!({"level": "debug"})),
        ("platform", json!({"platform": "cobol"})),
        ("logger", json!({"logger": "noisy.lib"})),
        (
            "exception",
            json!({"exception": {"values": [{"type": "ReadTimeoutError"}]}}),
        ),
        ("transaction", json!({"transaction": "/healthz"})),
        ("tags", json!({"tags": {"tier": "free"}})),
        (
            "url",
            json!({"request": {"url": "https://app.example.com/internal/x"}}),
        ),
    ];
    for (rule, event) in &cases {
        let (status, _) = post(
            &proxy,
            envelope(&json!({"event_id": EID}), &[json_item("event", event)]),
        )
        .await;
        assert_eq!(status, 200, "{rule}");
    }
    // A check-in is dropped by item type; an event matching nothing is forwarded.
    post(
        &proxy,
        envelope(
            &json!({}),
            &[json_item("check_in", &json!({"status": "ok"}))],
        ),
    )
    .await;
    post(
        &proxy,
        envelope(
            &json!({"event_id": EID}),
            &[json_item("event", &json!({"environment": "production"}))],
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let received = upstream.received();
    let events = received
        .iter()
        .filter(|r| item_types(r).contains(&"event".to_owned()))
        .count();
    assert_eq!(events, 1, "only the unmatched event is forwarded");
    for r in received
        .iter()
        .filter(|r| !item_types(r).contains(&"event".to_owned()))
    {
        assert_eq!(item_types(r), ["client_report"]);
        assert!(
            r.envelope_header().get("event_id").is_none(),
            "report-only envelopes carry no ids"
        );
    }
    let records = audit_records(dir.path());
    let rules: Vec<&str> = records
        .iter()
        .map(|r| r["items"][0]["rule"].as_str().unwrap_or("-"))
        .collect();
    let mut expected: Vec<&str> = cases.iter().map(|(rule, _)| *rule).collect();
    expected.extend(["item-type", "-"]);
    assert_eq!(rules, expected);
    let metrics = util::client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("scrubgate_drop_rule_matches_total{rule=\"tags\"} 1"),
        "{metrics}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn strict_mode_partial_drops_and_client_report_switch() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(config(
        &upstream,
        dir.path(),
        r#"
        [[drop]]
        name = "strict-secrets"
        detectors = ["key_secret"]
        [[drop]]
        name = "no-staging-sessions"
        item_types = "session"
        environment = "staging"
        "#,
    ))
    .await;
    // Strict mode: a detector fired somewhere, so nothing of the event leaves, not even a
    // scrubbed copy.
    let body = envelope(
        &json!({"event_id": EID}),
        &[
            json_item("event", &json!({"message": "x"})),
            json_item("transaction_like_extra", &json!({})),
            json_item(
                "session",
                &json!({"attrs": {"release": "r"}, "extra": {"password": "p"}}),
            ),
        ],
    );
    assert_eq!(post(&proxy, body).await.0, 200);
    let received = upstream.wait_for(1).await;
    assert_eq!(item_types(&received[0]), ["client_report"]);
    let report = client_report(&received[0]).unwrap();
    let categories: Vec<&str> = report["discarded_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["category"].as_str().unwrap())
        .collect();
    assert_eq!(categories, ["error", "session"]);
    // Partial drop: the staging session goes, the event stays, the report says so.
    upstream.clear();
    let body = envelope(
        &json!({"event_id": EID}),
        &[
            json_item("event", &json!({"message": "fine"})),
            json_item("session", &json!({"attrs": {"environment": "staging"}})),
        ],
    );
    assert_eq!(post(&proxy, body).await.0, 200);
    let received = upstream.wait_for(1).await;
    assert_eq!(item_types(&received[0]), ["event", "client_report"]);
    assert_eq!(
        client_report(&received[0]).unwrap()["discarded_events"][0]["category"],
        "session"
    );
    let records = audit_records(dir.path());
    assert_eq!(records[0]["items"][2]["rule"], "strict-secrets");
    assert_eq!(records[0]["outcome"], "dropped");
    assert_eq!(records[1]["items"][1]["rule"], "no-staging-sessions");
    assert_eq!(records[1]["outcome"], "forwarded");
    proxy.stop().await;

    // With client reports off, an envelope whose event is dropped is not forwarded at all.
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(config(
        &upstream,
        dir.path(),
        "client_reports = false\n[[drop]]\nname = \"all-events\"\nitem_types = \"event\"\n",
    ))
    .await;
    let body = envelope(
        &json!({"event_id": EID}),
        &[
            json_item("event", &json!({"message": "x"})),
            (
                json!({"type": "attachment", "content_type": "text/plain"}),
                b"log".to_vec(),
            ),
        ],
    );
    assert_eq!(post(&proxy, body).await.0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(upstream.received().is_empty());
    proxy.stop().await;
}
