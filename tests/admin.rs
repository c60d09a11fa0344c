//! The admin listener: `/metrics`, `/healthz` and `/readyz` on `[admin] listen`, not on the
//! SDKs' port (unless switched on there on purpose), and both listeners through a SIGTERM
//! drain, which is what a StatefulSet scale-down does to a replica.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{self, Fault, Proxy, ServeProcess, Upstream, PID};

async fn status(url: &str) -> u16 {
    util::client()
        .get(url)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn admin_port_serves_metrics_health_and_readiness_and_the_main_port_does_not() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(util::config_file(&upstream.url())).await;
    assert_ne!(proxy.admin_addr, Some(proxy.addr));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(status(&proxy.admin_url(path)).await, 200, "admin {path}");
    }
    let metrics = util::get_text(&proxy.admin_url("/metrics")).await;
    assert!(metrics.contains("scrubgate_requests_total"), "{metrics}");
    let ready: Value =
        serde_json::from_str(&util::get_text(&proxy.admin_url("/readyz")).await).unwrap();
    assert_eq!(ready["ready"], true);
    // The SDKs' port: liveness only.
    assert_eq!(status(&proxy.url("/healthz")).await, 200);
    assert_eq!(status(&proxy.url("/metrics")).await, 404);
    assert_eq!(status(&proxy.url("/readyz")).await, 404);
    // The admin port is no ingest port: envelopes and unknown paths are 404 there.
    let response = util::client()
        .post(proxy.admin_url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(util::event_envelope(
            "0123456789abcdef0123456789abcdef",
            &json!({"message": "m"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(status(&proxy.admin_url("/tunnel")).await, 404);
    assert!(upstream.received().is_empty());
    let response = util::client()
        .post(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    proxy.stop().await;
}

#[tokio::test]
async fn metrics_and_readyz_come_back_on_the_main_port_only_when_switched_on() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    file.metrics.on_main_listener = true;
    let proxy = Proxy::start(file.clone()).await;
    assert_eq!(status(&proxy.url("/metrics")).await, 200);
    assert_eq!(status(&proxy.admin_url("/metrics")).await, 200);
    assert_eq!(status(&proxy.url("/readyz")).await, 404);
    proxy.stop().await;

    file.metrics.on_main_listener = false;
    file.admin.readyz_on_main_listener = true;
    let proxy = Proxy::start(file.clone()).await;
    assert_eq!(status(&proxy.url("/readyz")).await, 200);
    assert_eq!(status(&proxy.url("/metrics")).await, 404);
    proxy.stop().await;

    // `metrics.enabled = false` turns /metrics off everywhere, the switch notwithstanding.
    file.metrics.enabled = false;
    file.metrics.on_main_listener = true;
    let proxy = Proxy::start(file.clone()).await;
    assert_eq!(status(&proxy.url("/metrics")).await, 404);
    assert_eq!(status(&proxy.admin_url("/metrics")).await, 404);
    assert_eq!(status(&proxy.admin_url("/healthz")).await, 200);
    proxy.stop().await;

    // An empty `admin.listen` means no admin listener at all.
    file.admin.listen = String::new();
    let proxy = Proxy::start(file).await;
    assert_eq!(proxy.admin_addr, None);
    assert_eq!(status(&proxy.url("/healthz")).await, 200);
    proxy.stop().await;
}

#[test]
fn the_admin_port_must_differ_from_the_main_port() {
    let mut file = util::config_file("http://127.0.0.1:9");
    file.server.listen = "127.0.0.1:3000".into();
    file.admin.listen = "0.0.0.0:3000".into();
    let error = scrubgate::config::Config::compile(file.clone()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "admin.listen: must use another port than server.listen"
    );
    file.admin.listen = "nope".into();
    let error = scrubgate::config::Config::compile(file).unwrap_err();
    assert!(error
        .to_string()
        .starts_with("admin.listen: expected host:port"));
}

/// A scale-down: SIGTERM while envelopes wait for a slow upstream. The main port closes,
/// the admin port keeps answering through the drain (`/readyz` 503 draining, `/metrics`
/// shows the pending envelopes), the process exits 0 within `server.shutdown_timeout_secs`,
/// and everything acknowledged is sent when the same spool (the same ordinal) comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_both_listeners_and_the_spool_is_sent_when_the_replica_returns() {
    const DRAIN_SECS: u64 = 3;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        &format!("[server]\nshutdown_timeout_secs = {DRAIN_SECS}\n\n[delivery]\nworkers = 1\n"),
    );
    // The upstream takes far longer than the drain: nothing can be delivered in time.
    upstream.set_fault(Fault::Slow(Duration::from_secs(20)));
    let mut server = ServeProcess::start(&config, &[]);
    let ids: Vec<String> = (0..3).map(|i| format!("{i:032x}")).collect();
    for id in &ids {
        let response = util::client()
            .post(server.url(&format!("/api/{PID}/envelope/")))
            .header("x-sentry-auth", util::auth_header())
            .body(util::event_envelope(id, &json!({"message": "drain"})))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let pid = server.child.id().to_string();
    let terminated = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // Draining: the admin port says so, and shows what is still pending.
    let deadline = Instant::now() + Duration::from_secs(2);
    let ready = loop {
        let response = util::client()
            .get(server.admin_url("/readyz"))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            break response.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready, "{\"ready\":false,\"draining\":true}");
    let metrics = util::get_text(&server.admin_url("/metrics")).await;
    assert!(
        metrics.contains("scrubgate_spool_envelopes 3\n"),
        "pending envelopes visible while draining:\n{metrics}"
    );
    // The main port stops taking connections.
    let deadline = Instant::now() + Duration::from_secs(2);
    while util::client()
        .get(server.url("/healthz"))
        .send()
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "the main port still answers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            terminated.elapsed() < Duration::from_secs(DRAIN_SECS + 5),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success());
    assert!(
        terminated.elapsed() >= Duration::from_secs(DRAIN_SECS - 1),
        "the drain waited for the upstream"
    );
    let logs = server.logs().join("\n");
    assert!(logs.contains("\"spooled_envelopes\":3"), "{logs}");
    drop(server);
    // The replica comes back with its volume: the backlog goes out.
    upstream.set_fault(Fault::None);
    let restarted = ServeProcess::start(&config, &[]);
    let delivered = upstream.wait_delivered(&ids, 30).await;
    assert_eq!(delivered.len(), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = util::get_text(&restarted.admin_url("/metrics")).await;
        if metrics.contains("scrubgate_spool_envelopes 0\n") {
            break;
        }
        assert!(Instant::now() < deadline, "spool not empty:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
