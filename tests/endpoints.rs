//! Routes, CORS, health checks, HTTP/2 cleartext and how upstream answers reach the SDK.

use serde_json::json;

use crate::util::{self, Proxy, Reply, Upstream, PID};

const EVENT_ID: &str = "5d2a6f3e9b8c4d1e8f7a6b5c4d3e2f10";

async fn setup() -> (Upstream, Proxy) {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(util::config_file(&upstream.url())).await;
    (upstream, proxy)
}

fn envelope() -> Vec<u8> {
    util::event_envelope(EVENT_ID, &json!({"message": "m"}))
}

#[tokio::test]
async fn cors_preflight_and_simple_posts() {
    let (_upstream, proxy) = setup().await;
    let client = util::client();
    for path in [
        format!("/api/{PID}/envelope/"),
        format!("/api/{PID}/store/"),
        "/tunnel".into(),
    ] {
        let response = client
            .request(reqwest::Method::OPTIONS, proxy.url(&path))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, x-sentry-auth",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-allow-methods"], "POST");
        let allowed = h["access-control-allow-headers"].to_str().unwrap();
        for name in [
            "x-sentry-auth",
            "content-type",
            "authorization",
            "content-encoding",
        ] {
            assert!(allowed.contains(name), "{allowed}");
        }
        assert_eq!(h["access-control-max-age"], "3600");
    }
    // The browser SDK's simple POST: query auth, text/plain.
    let url = proxy.url(&format!(
        "/api/{PID}/envelope/?sentry_key={}&sentry_version=7",
        util::KEY
    ));
    let response = client
        .post(url)
        .header("origin", "https://app.example.com")
        .header("content-type", "text/plain;charset=UTF-8")
        .body(envelope())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(
        h["access-control-expose-headers"],
        "x-sentry-error, x-sentry-rate-limits, retry-after"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn health_routing_and_method_errors() {
    let (upstream, proxy) = setup().await;
    let client = util::client();
    let response = client.get(proxy.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{\"status\":\"ok\"}");
    let response = client.get(proxy.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    for path in ["/", "/api/", "/api/42/unknown/", "/metrics-nope"] {
        let response = client
            .post(proxy.url(path))
            .header("x-sentry-auth", util::auth_header())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = client
        .get(proxy.url(&format!("/api/{PID}/envelope/")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    // Runs of slashes are folded before routing, as Relay does.
    let response = client
        .post(proxy.url(&format!("//api///{PID}//envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(envelope())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    upstream.wait_for(1).await;
    proxy.stop().await;
}

#[tokio::test]
async fn readyz_needs_the_upstream_or_the_spool_and_sync_mode_reports_502() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut file = util::config_file(&format!("http://127.0.0.1:{port}"));
    file.delivery.mode = scrubgate::delivery::DeliveryMode::Sync;
    let proxy = Proxy::start(file.clone()).await;
    let client = util::client();
    let response = client.get(proxy.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the spool can take data");
    assert_eq!(
        response.text().await.unwrap(),
        "{\"ready\":true,\"upstream\":\"unreachable\",\"spool\":\"ok\",\"audit\":\"ok\"}"
    );
    let response = client.get(proxy.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(envelope())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.text().await.unwrap(),
        "{\"detail\":\"upstream unavailable\"}"
    );
    proxy.stop().await;

    let spool = tempfile::tempdir().unwrap();
    file.spool.dir = spool.path().to_owned();
    file.spool.max_bytes = 0;
    let full = Proxy::start(file).await;
    let response = client.get(full.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.text().await.unwrap(),
        "{\"ready\":false,\"upstream\":\"unreachable\",\"spool\":\"unavailable\",\"audit\":\"ok\",\"failing\":[\"spool\",\"upstream\"]}"
    );
    full.stop().await;
}

#[tokio::test]
async fn http2_cleartext_is_served() {
    let (upstream, proxy) = setup().await;
    util::install_crypto();
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(envelope())
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    upstream.wait_for(1).await;
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_rate_limits_are_passed_back_in_sync_mode() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    file.projects[0].delivery = Some(scrubgate::delivery::DeliveryMode::Sync);
    let proxy = Proxy::start(file).await;
    upstream.set_reply(Reply {
        status: 429,
        headers: vec![
            ("retry-after".into(), "60".into()),
            (
                "x-sentry-rate-limits".into(),
                "60:error;transaction:organization:quota_exceeded".into(),
            ),
        ],
        body: "{\"detail\":\"rate limited\"}".into(),
    });
    let response = util::client()
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(envelope())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "60");
    assert_eq!(
        response.headers()["x-sentry-rate-limits"],
        "60:error;transaction:organization:quota_exceeded"
    );
    assert_eq!(upstream.received().len(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn readyz_fails_while_draining() {
    let (_upstream, proxy) = setup().await;
    let client = util::client();
    assert_eq!(
        client
            .get(proxy.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    proxy
        .state()
        .draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let response = client.get(proxy.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.text().await.unwrap(),
        "{\"ready\":false,\"draining\":true}"
    );
    assert_eq!(
        client
            .get(proxy.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    proxy.stop().await;
}
