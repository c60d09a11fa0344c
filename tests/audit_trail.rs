//! Issue #4, audit: one record per request on every path (success, 4xx, upstream failure,
//! client disconnect), fail closed when the trail cannot be written, `audit verify` on a
//! real run and on tampered copies, rotation, `audit export`, and `/metrics`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::policy::{audit_records, config, envelope, json_item, post};
use crate::util::{self, Proxy, Reply, Upstream, PID};

const EID: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

async fn wait_records(dir: &std::path::Path, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let records = audit_records(dir);
        if records.len() >= n {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    audit_records(dir)
}

fn event() -> Vec<u8> {
    envelope(
        &json!({"event_id": EID, "sdk": {"name": "sentry.python", "version": "2.75.0"}}),
        &[json_item(
            "event",
            &json!({"message": "m", "extra": {"token": "t"}}),
        )],
    )
}

#[tokio::test]
async fn exactly_one_record_per_request_on_every_path() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(config(&upstream, dir.path(), "")).await;
    // 1. success
    assert_eq!(post(&proxy, event()).await.0, 200);
    // 2. 4xx: unknown key
    let response = util::client()
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header(
            "x-sentry-auth",
            "Sentry sentry_key=ffffffffffffffffffffffffffffffff, sentry_version=7",
        )
        .body(event())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // 3. 4xx: broken envelope
    assert_eq!(
        post(&proxy, b"{\"event_id\":1}\n{oops".to_vec()).await.0,
        400
    );
    // 4. upstream failure
    upstream.set_reply(Reply {
        status: 500,
        ..Reply::default()
    });
    let (status, _) = post(&proxy, event()).await;
    assert!(status >= 500, "{status}");
    upstream.set_reply(Reply::default());
    // 5. an upload kind scrubgate does not forward
    let response = util::client()
        .post(proxy.url(&format!("/api/{PID}/minidump/")))
        .body("MDMP")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // 6. client disconnect mid-body
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /api/{PID}/envelope/ HTTP/1.1\r\nhost: x\r\nx-sentry-auth: {}\r\ncontent-length: 100000\r\n\r\n{{\"event_id\":",
        util::auth_header()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    // 7. client disconnect while scrubgate waits for a slow upstream: in sync mode the
    //    record was written before the envelope left, so the disconnect adds none.
    upstream.set_fault(util::Fault::Slow(Duration::from_secs(3)));
    let body = event();
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /api/{PID}/envelope/ HTTP/1.1\r\nhost: x\r\nx-sentry-auth: {}\r\ncontent-length: {}\r\n\r\n",
        util::auth_header(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    upstream.wait_for(3).await;
    drop(stream);
    // 8. health checks and metrics are not ingest requests: no record.
    util::client()
        .get(proxy.url("/healthz"))
        .send()
        .await
        .unwrap();

    let records = wait_records(dir.path(), 7).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let records_after = audit_records(dir.path());
    assert_eq!(records_after.len(), 7, "{records_after:#?}");
    upstream.set_fault(util::Fault::None);
    let summary: Vec<(u64, &str)> = records
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            // Sync mode: written before sending, so the upstream's answer is not in it.
            (0, "forwarded"),
            (401, "rejected"),
            (400, "rejected"),
            (0, "forwarded"),
            (403, "rejected"),
            (400, "rejected"),
            (0, "forwarded"),
        ]
    );
    assert_eq!(records[5]["error"], "body_read");
    assert_eq!(records[6]["event_id"], EID);
    let first = &records[0];
    assert_eq!(first["project_id"], PID);
    assert_eq!(first["event_id"], EID);
    // Version 2 writes the SDK as `sentry_client` does: name/version.
    assert!(
        first["sdk"].as_str().unwrap().starts_with("sentry.python/"),
        "{}",
        first["sdk"]
    );
    assert_eq!(first["upstream"], "sending");
    // Version 2: redactions by path pattern, then rule.
    let redacted_paths: Vec<&String> = first["items"][0]["redactions"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        redacted_paths.first().map(|p| p.as_str()),
        Some("extra.token")
    );
    assert_eq!(first["v"], 2);
    assert_eq!(first["public_key_hmac"].as_str().unwrap().len(), 32);
    assert_eq!(first["client_ip_hmac"].as_str().unwrap().len(), 32);
    assert_eq!(records[1]["error"], "unknown_key");
    assert_eq!(records[3]["upstream"], "sending");
    assert_eq!(records[4]["endpoint"], "minidump");
    proxy.stop().await;
}

#[tokio::test]
async fn an_unwritable_trail_fails_closed_with_503_and_forwards_nothing() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail");
    let mut file = config(&upstream, &trail, "");
    file.audit.path = trail.join("audit.jsonl");
    let proxy = Proxy::start(file).await;
    assert_eq!(post(&proxy, event()).await.0, 200);
    upstream.wait_for(1).await;
    std::fs::remove_dir_all(&trail).unwrap();
    let (status, body) = post(&proxy, event()).await;
    assert_eq!(status, 503);
    assert!(body.contains("audit_unavailable"), "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        upstream.received().len(),
        1,
        "nothing forwarded without a record"
    );
    let metrics = util::client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("scrubgate_audit_failures_total 1"),
        "{metrics}"
    );
    // The trail recovers once its directory is back.
    std::fs::create_dir_all(&trail).unwrap();
    assert_eq!(post(&proxy, event()).await.0, 200);
    proxy.stop().await;
}

fn scrubgate(args: &[&str]) -> (i32, String, String) {
    let out = util::binary()
        .args(args)
        .env_remove("SCRUBGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn verify_passes_on_a_real_rotated_run_and_fails_on_tampering() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut file = config(&upstream, dir.path(), "");
    file.audit.rotate_max_bytes = 4096;
    let proxy = Proxy::start(file).await;
    for _ in 0..12 {
        assert_eq!(post(&proxy, event()).await.0, 200);
    }
    proxy.stop().await;
    let active = dir.path().join("audit.jsonl");
    let rotated = scrubgate::audit::rotated_files(&active).unwrap();
    assert!(!rotated.is_empty(), "rotation by size happened");
    let active_arg = active.to_str().unwrap();
    let (code, stdout, stderr) = scrubgate(&["audit", "verify", active_arg]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("OK: 12 record(s)"), "{stdout}");

    let pristine = std::fs::read_to_string(&active).unwrap();
    let lines: Vec<&str> = pristine.lines().collect();
    assert!(lines.len() >= 3, "enough lines in the active file");
    let edited = {
        let mut l = lines.clone();
        let changed = l[0].replace("\"status\":0", "\"status\":204");
        l[0] = &changed;
        l.join("\n") + "\n"
    };
    let deleted = {
        let mut l = lines.clone();
        l.remove(1);
        l.join("\n") + "\n"
    };
    let reordered = {
        let mut l = lines.clone();
        l.swap(0, 1);
        l.join("\n") + "\n"
    };
    for (name, text, line) in [
        ("edited", edited, 2),
        ("deleted", deleted, 2),
        ("reordered", reordered, 1),
    ] {
        std::fs::write(&active, text).unwrap();
        let (code, _, stderr) = scrubgate(&["audit", "verify", active_arg]);
        assert_eq!(code, 1, "{name}");
        assert!(
            stderr.contains(&format!("audit.jsonl:{line}:")),
            "{name}: {stderr}"
        );
    }
    std::fs::write(&active, &pristine).unwrap();

    let (code, csv, _) = scrubgate(&[
        "audit",
        "export",
        "--format",
        "csv",
        "--project",
        &PID.to_string(),
        "--since",
        "2000-01-01",
        active_arg,
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        csv.lines().count(),
        13,
        "header plus one row per single-item record"
    );
    let (code, json_out, _) = scrubgate(&["audit", "export", "--until", "2000-01-01", active_arg]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&json_out).unwrap().len(),
        0
    );
    let (code, _, stderr) = scrubgate(&["audit", "export", "--since", "last tuesday", active_arg]);
    assert_eq!(code, 2, "{stderr}");
}

#[tokio::test]
async fn metrics_endpoint_reports_closed_label_sets() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(config(&upstream, dir.path(), "")).await;
    post(&proxy, event()).await;
    let response = util::client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for needle in [
        "scrubgate_requests_total{endpoint=\"envelope\",status=\"200\"} 1",
        "scrubgate_items_total{item_type=\"event\",decision=\"forward\",reason=\"none\"} 1",
        "scrubgate_redactions_total{rule=\"key_secret\"} 1",
        "scrubgate_upstream_responses_total{status=\"200\"} 1",
        "scrubgate_stage_duration_seconds_count{stage=\"decode\"} 1",
        "scrubgate_stage_duration_seconds_count{stage=\"scrub\"} 1",
        "scrubgate_stage_duration_seconds_count{stage=\"decide\"} 1",
        "scrubgate_stage_duration_seconds_count{stage=\"forward\"} 1",
        "scrubgate_stage_duration_seconds_count{stage=\"audit\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle}\n{text}");
    }
    proxy.stop().await;
    let upstream = Upstream::start().await;
    let mut file = config(&upstream, dir.path(), "");
    file.metrics.enabled = false;
    let proxy = Proxy::start(file).await;
    let response = util::client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    proxy.stop().await;
}

/// `[audit.postgres]` is read at start: a reload that changes it names it among the settings
/// that need a restart, and one that does not change it does not.
#[tokio::test]
async fn a_reload_names_audit_postgres_changes_as_needing_a_restart() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(config(&upstream, dir.path(), "")).await;
    let path = dir.path().join("scrubgate.toml");
    let mut file = proxy.state().config.load().file.clone();
    std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
    let ignored = scrubgate::app::reload(proxy.state(), Some(&path)).unwrap();
    assert!(!ignored.contains(&"audit.postgres"), "{ignored:?}");
    file.audit.postgres.batch_size += 7;
    std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
    let ignored = scrubgate::app::reload(proxy.state(), Some(&path)).unwrap();
    assert!(ignored.contains(&"audit.postgres"), "{ignored:?}");
    proxy.stop().await;
}

/// A trail that spans the upgrade from format version 1: the proxy continues the chain of a
/// version 1 record, and verify, export and report read both lines.
#[tokio::test]
async fn a_trail_spanning_the_format_upgrade_verifies_exports_and_reports() {
    use sha2::{Digest, Sha256};
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let active = dir.path().join("audit.jsonl");
    let v1 = concat!(
        r#"{"v":1,"ts":"2026-12-01T10:00:00.123456789Z","request_id":"00000000000000000000000000000001","#,
        r#""endpoint":"envelope","project_id":42,"public_key_hmac":null,"client_ip_hmac":null,"#,
        r#""hash_key_id":"k","sdk":{"name":"sentry.python","version":"2.0.0"},"event_id":null,"#,
        r#""policy_hash":"p","status":200,"outcome":"forwarded","error":null,"header_redactions":[],"#,
        r#""items":[{"type":"event","size":10,"decision":"forward","reason":null,"rule":null,"#,
        r#""redactions":[{"path":"user.id","rule":"user_id","method":"hash","count":1},"#,
        r#"{"path":"message","rule":"email","method":"replace","count":4}]}],"upstream":"spooled","#,
        r#""prev":"0000000000000000000000000000000000000000000000000000000000000000"}"#
    );
    std::fs::write(&active, format!("{v1}\n")).unwrap();
    let proxy = Proxy::start(config(&upstream, dir.path(), "")).await;
    assert_eq!(post(&proxy, event()).await.0, 200);
    proxy.stop().await;

    let text = std::fs::read_to_string(&active).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let v2: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(v2["v"], 2);
    assert_eq!(v2["prev"], hex::encode(Sha256::digest(v1.as_bytes())));
    assert_eq!(v2["items"][0]["redactions"]["extra.token"]["key_secret"], 1);

    let active_arg = active.to_str().unwrap();
    let (code, stdout, stderr) = scrubgate(&["audit", "verify", active_arg]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("OK: 2 record(s)"), "{stdout}");

    let (code, csv, stderr) = scrubgate(&["audit", "export", "--format", "csv", active_arg]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[0].ends_with(",5,email;user_id"), "{}", rows[0]);
    assert!(rows[1].ends_with(",1,key_secret"), "{}", rows[1]);

    let (code, json_out, stderr) = scrubgate(&["audit", "export", active_arg]);
    assert_eq!(code, 0, "{stderr}");
    let exported: Vec<Value> = serde_json::from_str(&json_out).unwrap();
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[0]["v"], 1);
    assert_eq!(exported[0]["items"][0]["redactions"]["message"]["email"], 4);

    let (code, report, stderr) = scrubgate(&["audit", "report", "--format", "json", active_arg]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["totals"]["redactions"], 6, "{report:#}");
}
