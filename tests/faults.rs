//! Integrity under storage faults: a full audit disk forwards nothing and its retries arrive
//! once; a full spool disk answers `spool_unavailable` with the cause in the log; `/readyz`
//! follows both; the in-flight byte budget answers 503 with `Retry-After` instead of
//! growing memory. Real full file systems (a 1 MiB tmpfs) when running as root, skipped with
//! a printed reason otherwise; the fault-injecting audit writer covers the unprivileged path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::util::{self, Proxy, Upstream, PID};

/// A 1 MiB tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot and returns `None`.
    fn mount(test: &str) -> Option<Self> {
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        if uid != "0" {
            eprintln!("{test}: SKIPPED: mounting a tmpfs needs root (uid {uid}); the fault-injection tests cover this path");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("{test}: SKIPPED: mount -t tmpfs failed here ({status:?})");
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Writes zeros until the file system says it is full.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.filler()).unwrap();
        let chunk = [0u8; 4096];
        loop {
            if let Err(error) = file.write_all(&chunk) {
                assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
                break;
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn event(event_id: &str) -> Vec<u8> {
    util::event_envelope(
        event_id,
        &json!({"message": "fault test", "level": "error"}),
    )
}

fn ids(prefix: char, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}{i:031x}", prefix))
        .collect::<Vec<_>>()
}

async fn post(url: &str, body: Vec<u8>) -> (u16, String, Option<String>) {
    let response = util::client()
        .post(format!("{url}/api/{PID}/envelope/"))
        .header("x-sentry-auth", util::auth_header())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), retry_after)
}

async fn get(url: &str) -> (u16, Value) {
    let response = util::client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn metrics(admin: &str) -> String {
    util::get_text(&format!("{admin}/metrics")).await
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sends `ids` while the audit trail cannot be written (every one 503 `audit_unavailable`,
/// nothing forwarded, not even later), then again once it can (every one 200, each
/// delivered exactly once: the SDK's retry is the only copy).
async fn refused_while_audit_fails_then_delivered_once(
    proxy: &Proxy,
    upstream: &Upstream,
    ids: &[String],
    fail: impl Fn(bool),
) {
    let base = proxy.url("");
    let base = base.trim_end_matches('/');
    fail(true);
    for id in ids {
        let (status, body, retry_after) = post(base, event(id)).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("audit_unavailable"), "{body}");
        assert_eq!(retry_after.as_deref(), Some("60"));
    }
    let (status, ready) = get(&proxy.admin_url("/readyz")).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["audit"], "unavailable");
    assert_eq!(ready["failing"], json!(["audit"]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        upstream.received().len(),
        0,
        "nothing refused was forwarded"
    );
    let spool = proxy.state().pipeline.delivery().spool();
    assert_eq!(spool.usage().0, 0, "nothing refused waits in the spool");

    fail(false);
    let (status, ready) = get(&proxy.admin_url("/readyz")).await;
    assert_eq!(status, 200, "{ready}");
    for id in ids {
        assert_eq!(post(base, event(id)).await.0, 200);
    }
    let delivered = upstream.wait_delivered(ids, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered_again = upstream.delivered();
    assert_eq!(delivered, delivered_again);
    for id in ids {
        assert_eq!(delivered_again.get(id), Some(&1), "{id} arrived once");
    }
    assert_eq!(upstream.received().len(), ids.len());
    let rendered = metrics(&proxy.admin_url("")).await;
    assert!(
        rendered.contains(&format!(
            "scrubgate_storage_errors_total{{part=\"audit\",kind=\"no_space\"}} {}",
            ids.len()
        )),
        "{rendered}"
    );
}

#[tokio::test]
async fn a_full_audit_disk_forwards_nothing_and_the_retries_arrive_once() {
    let Some(tmpfs) =
        Tmpfs::mount("a_full_audit_disk_forwards_nothing_and_the_retries_arrive_once")
    else {
        return;
    };
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    let trail = tmpfs.path().join("audit.jsonl");
    file.audit.path = trail.clone();
    let proxy = Proxy::start(file).await;
    let ids = ids('a', 20);
    refused_while_audit_fails_then_delivered_once(&proxy, &upstream, &ids, |full| {
        if full {
            tmpfs.fill();
        } else {
            tmpfs.free();
        }
    })
    .await;
    proxy.stop().await;
    let records = audit_lines(&trail);
    let forwarded: Vec<&Value> = records
        .iter()
        .filter(|r| r["outcome"] == "forwarded")
        .collect();
    assert_eq!(
        forwarded.len(),
        ids.len(),
        "one record per delivered envelope"
    );
}

async fn injected_audit_write_faults_forward_nothing(
    mode: scrubgate::delivery::DeliveryMode,
    prefix: char,
) {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    file.delivery.mode = mode;
    let proxy = Proxy::start(file).await;
    let audit = proxy.state().audit.clone();
    refused_while_audit_fails_then_delivered_once(&proxy, &upstream, &ids(prefix, 10), |on| {
        audit.inject_write_faults(on);
    })
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn injected_audit_write_faults_forward_nothing_in_async_mode() {
    injected_audit_write_faults_forward_nothing(scrubgate::delivery::DeliveryMode::Async, 'b')
        .await;
}

#[tokio::test]
async fn injected_audit_write_faults_forward_nothing_in_sync_mode() {
    injected_audit_write_faults_forward_nothing(scrubgate::delivery::DeliveryMode::Sync, 'c').await;
}

#[tokio::test]
async fn a_full_spool_disk_says_spool_unavailable_with_its_cause_and_readyz_follows() {
    let test = "a_full_spool_disk_says_spool_unavailable_with_its_cause_and_readyz_follows";
    let Some(tmpfs) = Tmpfs::mount(test) else {
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(dir.path(), &upstream.url(), "");
    let spool = tmpfs.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let spool_env = spool.to_str().unwrap().to_owned();
    let serve = util::ServeProcess::start(
        &config,
        &[
            ("SCRUBGATE_SPOOL__DIR", spool_env.as_str()),
            ("SCRUBGATE_LOG__FORMAT", "json"),
        ],
    );
    let base = serve.url("");
    let base = base.trim_end_matches('/').to_owned();
    tmpfs.fill();
    let refused = ids('d', 3);
    for id in &refused {
        let (status, body, retry_after) = post(&base, event(id)).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["detail"],
            "spool_unavailable: the spool cannot be written; retry later"
        );
        assert_eq!(retry_after.as_deref(), Some("60"));
    }
    let (status, ready) = get(&serve.admin_url("/readyz")).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["spool"], "unavailable");
    assert_eq!(ready["failing"], json!(["spool"]));
    let rendered = metrics(&serve.admin_url("")).await;
    assert!(
        rendered.contains("scrubgate_storage_errors_total{part=\"spool\",kind=\"no_space\"} 3"),
        "{rendered}"
    );
    let logs = serve.logs();
    let failures: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request failed: storage cannot be written")
        .collect();
    assert_eq!(failures.len(), 3, "{logs:#?}");
    for failure in &failures {
        assert_eq!(failure["kind"], "spool_unavailable");
        assert_eq!(failure["path"], spool_env.as_str());
        let cause = failure["cause"].as_str().unwrap();
        assert!(cause.contains("No space left on device"), "{cause}");
    }

    tmpfs.free();
    let (status, ready) = get(&serve.admin_url("/readyz")).await;
    assert_eq!(status, 200, "{ready}");
    let accepted = ids('e', 2);
    for id in &accepted {
        assert_eq!(post(&base, event(id)).await.0, 200);
    }
    let delivered = upstream.wait_delivered(&accepted, 20).await;
    assert_eq!(delivered.len(), 2, "only the accepted envelopes arrived");
}

#[tokio::test]
async fn an_exhausted_inflight_budget_answers_503_with_retry_after_and_recovers() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    file.limits.max_inflight_bytes = 16 * 1024 * 1024;
    file.limits.inflight_wait_ms = 200;
    let proxy = Proxy::start(file).await;
    let base = proxy.url("");
    let base = base.trim_end_matches('/').to_owned();

    // A slow sender declares 1.5 MiB: it leases what it will hold (body, tree and output,
    // 8 bytes a byte: 12 MiB of the 16) before reading, and keeps it while it dawdles.
    let mut slow = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let body = event(&ids('f', 1)[0]);
    let padded_len = 1536 * 1024;
    let head = format!(
        "POST /api/{PID}/envelope/ HTTP/1.1\r\nhost: x\r\nx-sentry-auth: {}\r\ncontent-length: {padded_len}\r\n\r\n",
        util::auth_header()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rendered = metrics(&proxy.admin_url("")).await;
    assert!(
        rendered.contains("scrubgate_inflight_bytes 12582912"),
        "{rendered}"
    );

    // 700 KiB (5.6 MiB to hold) does not fit beside it: a short wait, then 503.
    let mut big = serde_json::to_vec(&json!({"message": "x".repeat(700 * 1024)})).unwrap();
    let id = ids('g', 1).remove(0);
    let mut envelope = format!(
        "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n",
        big.len()
    )
    .into_bytes();
    envelope.append(&mut big);
    let (status, body, retry_after) = post(&base, envelope.clone()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("overloaded"), "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    // A small envelope still fits.
    let small = ids('h', 1);
    assert_eq!(post(&base, event(&small[0])).await.0, 200);

    // Once the slow request is gone its bytes are free again.
    drop(slow);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(post(&base, envelope).await.0, 200);
    let rendered = metrics(&proxy.admin_url("")).await;
    assert!(
        rendered.contains("scrubgate_inflight_rejected_total 1"),
        "{rendered}"
    );
    assert!(
        rendered.contains("scrubgate_inflight_bytes 0"),
        "{rendered}"
    );
    upstream.wait_delivered(&[id, small[0].clone()], 10).await;
    proxy.stop().await;
}
