//! Issue #4, the leak test: PHI-laden envelopes through the real binary with logging at
//! trace level; no planted value may appear in the logs, the audit trail, `/metrics` or any
//! HTTP response body. (What reaches the upstream is the scrubber's business and is tested
//! there; this test is about scrubgate's own output.)

use std::time::Duration;

use serde_json::json;

use crate::policy::{envelope, json_item};
use crate::util::{self, ServeProcess, Upstream, PID};

const PLANTED: &[&str] = &[
    "123-45-6789",
    "MRN-778899",
    "Zebulon Quixote",
    "zq-planted@example.org",
    "hunter2-leak",
    "tok-leak-5521",
    "198.51.100.77",
    "+1-555-0199-321",
    "1979-02-29-dob",
    "/Users/zebulon",
    "cookie-leak-77",
];

#[tokio::test]
async fn no_planted_value_in_logs_audit_metrics_or_responses() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        "[policy]\nattachments = \"scrub-text\"\nreplay_recordings = \"scrub\"\n\n[[policy.drop]]\nname = \"strict\"\ndetectors = [\"key_secret\"]\nitem_types = \"session\"\n",
    );
    let audit_path = dir.path().join("trail").join("audit.jsonl");
    let server = ServeProcess::start(
        &config,
        &[
            ("SCRUBGATE_LOG__LEVEL", "trace"),
            ("SCRUBGATE_AUDIT__PATH", audit_path.to_str().unwrap()),
        ],
    );
    let event = json!({
        "message": "Patient Zebulon Quixote SSN 123-45-6789 MRN-778899",
        "user": {"email": "zq-planted@example.org", "ip_address": "198.51.100.77", "username": "Zebulon Quixote"},
        "request": {
            "url": "https://clinic.example.com/p?ssn=123-45-6789&token=tok-leak-5521",
            "headers": {"Cookie": "sid=cookie-leak-77", "Authorization": "Bearer tok-leak-5521"},
            "data": {"password": "hunter2-leak", "dob": "1979-02-29-dob"}
        },
        "exception": {"values": [{"type": "ValueError", "value": "bad phone +1-555-0199-321"}]},
        "breadcrumbs": {"values": [{"message": "opened /Users/zebulon/chart.pdf"}]},
        "tags": {"patient": "Zebulon Quixote"},
        "extra": {"mrn": "MRN-778899", "secret_token": "tok-leak-5521"}
    });
    let bodies = vec![
        envelope(
            &json!({"event_id": "cccccccccccccccccccccccccccccccc", "forwarded_for": "198.51.100.77",
                    "trace": {"trace_id": "dddddddddddddddddddddddddddddddd", "public_key": "e12d836b15bb49d7bbf99e64295d995b", "user_id": "zq-planted@example.org"}}),
            &[
                json_item("event", &event),
                (
                    json!({"type": "attachment", "filename": "/Users/zebulon/notes.txt", "content_type": "text/plain"}),
                    b"Zebulon Quixote 123-45-6789 hunter2-leak".to_vec(),
                ),
                (
                    json!({"type": "attachment", "filename": "/Users/zebulon/x.bin"}),
                    b"MRN-778899".to_vec(),
                ),
                (
                    json!({"type": "zebulon_quixote_type"}),
                    b"123-45-6789".to_vec(),
                ),
                json_item(
                    "session",
                    &json!({"did": "zq-planted@example.org", "attrs": {"ip_address": "198.51.100.77", "release": "r"}, "extra": {"password": "hunter2-leak"}}),
                ),
                (json!({"type": "session"}), b"{broken 123-45-6789".to_vec()),
            ],
        ),
        // Not an envelope at all, with planted values in it.
        b"{\"event_id\":\"Zebulon Quixote\"}\nnot an item 123-45-6789".to_vec(),
        envelope(
            &json!({"event_id": "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"}),
            &[(
                json!({"type": "event"}),
                b"{\"message\": \"123-45-6789\", broken".to_vec(),
            )],
        ),
    ];
    let client = util::client();
    let mut responses = String::new();
    for body in bodies {
        let response = client
            .post(server.url(&format!("/api/{PID}/envelope/")))
            .header("x-sentry-auth", util::auth_header())
            .header("x-forwarded-for", "198.51.100.77")
            .header("user-agent", "sentry.python/2.75.0")
            .body(body)
            .send()
            .await
            .unwrap();
        responses.push_str(&response.text().await.unwrap());
    }
    // Legacy store endpoint and a JSON event with the planted values in the query string.
    let response = client
        .post(server.url(&format!(
            "/api/{PID}/store/?sentry_key={}&sentry_version=7&x=Zebulon%20Quixote",
            util::KEY
        )))
        .body(serde_json::to_vec(&event).unwrap())
        .send()
        .await
        .unwrap();
    responses.push_str(&response.text().await.unwrap());
    let response = client
        .post(server.url(&format!("/api/{PID}/security/?sentry_key={}", util::KEY)))
        .header("content-type", "application/csp-report")
        .body("{\"csp-report\":{\"document-uri\":\"https://x/?ssn=123-45-6789\"}}")
        .send()
        .await
        .unwrap();
    responses.push_str(&response.text().await.unwrap());
    upstream.wait_for(2).await;
    let metrics = client
        .get(server.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.logs().join("\n");
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    assert_eq!(audit.lines().count(), 5, "one record per request");
    assert!(logs.lines().count() > 10, "trace logging was on");
    assert!(
        logs.contains("envelope processed"),
        "the per-request info line is there"
    );
    assert!(metrics.contains("scrubgate_requests_total"));
    for value in PLANTED {
        for (place, text) in [
            ("logs", &logs),
            ("audit trail", &audit),
            ("/metrics", &metrics),
            ("responses", &responses),
        ] {
            assert!(!text.contains(value), "{value:?} leaked into {place}");
        }
    }
    // The request id in the log line ties it to the audit record.
    let first: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    let request_id = first["request_id"].as_str().unwrap();
    assert!(logs.contains(request_id));
}
