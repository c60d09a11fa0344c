//! Every credential form the SDKs use, and every way a request is refused. A refused request
//! never reaches the upstream.

use base64::Engine as _;
use serde_json::json;

use crate::util::{self, Proxy, Upstream, KEY, OTHER_KEY, OTHER_PID, PID};

const EVENT_ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

fn body() -> Vec<u8> {
    util::event_envelope(EVENT_ID, &json!({"message": "hello", "level": "info"}))
}

async fn setup() -> (Upstream, Proxy) {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(util::config_file(&upstream.url())).await;
    (upstream, proxy)
}

#[tokio::test]
async fn every_accepted_auth_form_forwards_with_rewritten_auth() {
    let (upstream, proxy) = setup().await;
    let client = util::client();
    let url = proxy.url(&format!("/api/{PID}/envelope/"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"));
    let requests = vec![
        client.post(&url).header("x-sentry-auth", util::auth_header()),
        client.post(&url).header("authorization", format!("Sentry sentry_key={KEY}, sentry_version=7")),
        client.post(&url).header("authorization", format!("Basic {basic}")),
        client.post(format!("{url}?sentry_key={KEY}&sentry_version=7&sentry_client=sentry.javascript.browser%2F10.0.0")),
    ];
    for request in requests {
        let response = request.body(body()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.text().await.unwrap(),
            format!("{{\"id\":\"{EVENT_ID}\"}}")
        );
    }
    // DSN in the envelope header and no other credential (how the tunnel authenticates).
    let dsn_body = format!(
        "{{\"event_id\":\"{EVENT_ID}\",\"dsn\":\"{}\"}}\n{{\"type\":\"event\"}}\n{{}}\n",
        proxy.dsn()
    );
    let response = client.post(&url).body(dsn_body).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let received = upstream.wait_for(5).await;
    assert_eq!(received.len(), 5);
    for request in &received {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.uri,
            format!("/api/{PID}/envelope/"),
            "no query auth upstream"
        );
        let auth = request.header("x-sentry-auth").unwrap();
        assert!(
            auth.starts_with(&format!(
                "Sentry sentry_key={KEY}, sentry_version=7, sentry_client="
            )),
            "{auth}"
        );
        assert!(request.header("authorization").is_none());
        assert_eq!(
            request.header("content-type"),
            Some("application/x-sentry-envelope")
        );
    }
    assert!(received[0]
        .header("x-sentry-auth")
        .unwrap()
        .ends_with("sentry_client=sentry.test/1.0"));
    assert!(received[3]
        .header("x-sentry-auth")
        .unwrap()
        .ends_with("sentry_client=sentry.javascript.browser/10.0.0"));
    proxy.stop().await;
}

#[tokio::test]
async fn refused_requests_get_their_status_and_nothing_is_forwarded() {
    let (upstream, proxy) = setup().await;
    let client = util::client();
    let url = proxy.url(&format!("/api/{PID}/envelope/"));
    let unknown = "ffffffffffffffffffffffffffffffff";
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (client.post(&url), 401, "missing authorization information"),
        (
            client
                .post(&url)
                .header("x-sentry-auth", format!("Sentry sentry_key={unknown}")),
            401,
            "unknown public key",
        ),
        (
            client
                .post(format!("{url}?sentry_key={KEY}"))
                .header("x-sentry-auth", util::auth_header()),
            401,
            "multiple authorization payloads detected",
        ),
        (
            client
                .post(&url)
                .header("x-sentry-auth", util::auth_header())
                .header("authorization", format!("Sentry sentry_key={KEY}")),
            401,
            "multiple authorization payloads detected",
        ),
        // A known key, but for another project.
        (
            client
                .post(proxy.url(&format!("/api/{OTHER_PID}/envelope/")))
                .header("x-sentry-auth", util::auth_header()),
            403,
            "",
        ),
        (
            client.post(&url).header(
                "x-sentry-auth",
                format!("Sentry sentry_key={KEY}, sentry_version=8"),
            ),
            400,
            "unsupported",
        ),
        (
            client
                .post(proxy.url("/api/abc/envelope/"))
                .header("x-sentry-auth", util::auth_header()),
            400,
            "bad project path parameter",
        ),
    ];
    for (request, status, detail) in cases {
        let response = request.body(body()).send().await.unwrap();
        assert_eq!(response.status(), status);
        let text = response.text().await.unwrap();
        assert!(text.contains(detail), "{text}");
        assert!(!text.contains("hello"), "payload never echoed");
    }
    // A header DSN that disagrees with the request's key.
    let other_dsn = format!("http://{OTHER_KEY}@{}/{OTHER_PID}", proxy.addr);
    let body = format!("{{\"dsn\":\"{other_dsn}\"}}\n{{\"type\":\"event\"}}\n{{}}\n");
    let response = client
        .post(&url)
        .header("x-sentry-auth", util::auth_header())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        upstream.received().len(),
        0,
        "nothing from a rejected request is forwarded"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn tunnel_accepts_only_configured_dsns() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    file.server.tunnel_allowed_hosts = vec!["errors.example.com".into()];
    let proxy = Proxy::start(file).await;
    let client = util::client();
    let tunnel = proxy.url("/tunnel");
    let envelope = |dsn: &str| {
        format!("{{\"event_id\":\"{EVENT_ID}\",\"dsn\":\"{dsn}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"m\"}}\n")
    };

    let ok = format!("https://{KEY}@errors.example.com/{PID}");
    let response = client
        .post(&tunnel)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(envelope(&ok))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    let refused = [
        (
            format!("https://ffffffffffffffffffffffffffffffff@errors.example.com/{PID}"),
            401,
        ),
        (format!("https://{KEY}@errors.example.com/{OTHER_PID}"), 403),
        (format!("https://{KEY}@evil.example.net/{PID}"), 403),
        ("not a dsn".to_owned(), 400),
    ];
    for (dsn, status) in refused {
        let response = client
            .post(&tunnel)
            .body(envelope(&dsn))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{dsn}");
    }
    let response = client
        .post(&tunnel)
        .body("{}\n{\"type\":\"event\"}\n{}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no dsn at all");

    let received = upstream.wait_for(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(upstream.received().len(), 1);
    // Delivered to the configured upstream, never to the host named in the DSN.
    assert_eq!(received[0].uri, format!("/api/{PID}/envelope/"));
    assert_eq!(
        received[0].envelope_header()["dsn"],
        format!("http://{KEY}@{}/{PID}", upstream.addr)
    );
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_dsn_rewrites_key_project_dsn_and_trace_public_key() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    let real_key = "abcdefabcdefabcdefabcdefabcdef12";
    file.projects[0].upstream_dsn = Some(format!("http://{real_key}@{}/4242", upstream.addr));
    let proxy = Proxy::start(file).await;
    let body = format!(
        "{{\"event_id\":\"{EVENT_ID}\",\"dsn\":\"{}\",\"trace\":{{\"trace_id\":\"771a43a4192642f0b136d5159a501700\",\"public_key\":\"{KEY}\"}}}}\n{{\"type\":\"event\"}}\n{{\"message\":\"m\"}}\n",
        proxy.dsn()
    );
    let response = util::client()
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = upstream.wait_for(1).await;
    assert_eq!(received[0].uri, "/api/4242/envelope/");
    assert!(received[0]
        .header("x-sentry-auth")
        .unwrap()
        .starts_with(&format!("Sentry sentry_key={real_key},")));
    let header = received[0].envelope_header();
    assert_eq!(
        header["dsn"],
        format!("http://{real_key}@{}/4242", upstream.addr)
    );
    assert_eq!(header["trace"]["public_key"], real_key);
    assert_eq!(
        header["trace"]["trace_id"],
        "771a43a4192642f0b136d5159a501700"
    );
    proxy.stop().await;
}
