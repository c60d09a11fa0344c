//! What must never reach the upstream: client IPs (headers, envelope-header meta keys,
//! `{{auto}}` placeholders) and values under denylisted keys.

use serde_json::json;

use crate::util::{self, Proxy, Upstream, PID};

const EVENT_ID: &str = "3c1b9e7f2a6d4e8b9c0d1e2f3a4b5c6d";
const PLANTED: &[&str] = &[
    "hunter2-planted",
    "tok-planted-998",
    "sess-planted-cookie",
    "203.0.113.77",
    "198.51.100.23",
];

#[tokio::test]
async fn client_ip_and_denylisted_values_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(util::config_file(&upstream.url())).await;
    let event = json!({
        "message": "checkout failed",
        "user": {"ip_address": "{{auto}}"},
        "request": {
            "url": "https://shop.example.com/cart",
            "headers": {"Authorization": "Bearer tok-planted-998", "Cookie": "sid=sess-planted-cookie", "Accept": "text/html"},
            "env": {"REMOTE_ADDR": "198.51.100.23"}
        },
        "extra": {"password": "hunter2-planted", "order_count": 3}
    });
    let payload = serde_json::to_vec(&event).unwrap();
    let mut body = format!(
        "{{\"event_id\":\"{EVENT_ID}\",\"forwarded_for\":\"203.0.113.77\",\"remote_addr\":\"198.51.100.23\",\"user_agent\":\"Mozilla/5.0\"}}\n{{\"type\":\"event\",\"length\":{}}}\n",
        payload.len()
    )
    .into_bytes();
    body.extend_from_slice(&payload);
    let response = util::client()
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .header("x-forwarded-for", "203.0.113.77")
        .header("x-real-ip", "203.0.113.77")
        .header("forwarded", "for=203.0.113.77")
        .header("cf-connecting-ip", "203.0.113.77")
        .header("true-client-ip", "203.0.113.77")
        .header("cookie", "sid=sess-planted-cookie")
        .header("user-agent", "sentry.python/2.75.0")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = upstream.wait_for(1).await;
    let request = &received[0];
    for name in [
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
        "cf-connecting-ip",
        "true-client-ip",
        "cookie",
        "authorization",
    ] {
        assert!(request.header(name).is_none(), "{name} forwarded");
    }
    assert_eq!(request.header("user-agent"), Some("sentry.python/2.75.0"));
    for (_, value) in request.headers.iter() {
        let value = value.to_str().unwrap_or("");
        assert!(
            !value.contains("203.0.113.77"),
            "client IP in an upstream header"
        );
    }
    let header = request.envelope_header();
    assert!(header.get("forwarded_for").is_none());
    assert!(header.get("remote_addr").is_none());
    assert!(header.get("user_agent").is_none());
    let body = String::from_utf8_lossy(&request.body);
    for planted in PLANTED {
        assert!(!body.contains(planted), "{planted} reached the upstream");
    }
    assert!(!body.contains("{{auto}}"));
    let items = request.json_items();
    let forwarded = &items[0].1;
    assert_eq!(forwarded["message"], "checkout failed");
    assert_eq!(forwarded["extra"]["order_count"], 3);
    assert!(
        forwarded["extra"]["password"].is_string(),
        "key kept, value replaced"
    );
    assert_eq!(forwarded["request"]["headers"]["Accept"], "text/html");
    assert_eq!(forwarded["user"].get("ip_address"), None);
    proxy.stop().await;
}
