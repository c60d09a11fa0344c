//! Content encodings, size caps, envelope framing and the legacy store body formats.

use base64::Engine as _;
use serde_json::json;

use crate::util::{self, Proxy, Upstream, PID};

const EVENT_ID: &str = "0f4b2a8e3b6d4c6f9a1e2d3c4b5a6978";

async fn setup_with(edit: impl FnOnce(&mut scrubgate::config::ConfigFile)) -> (Upstream, Proxy) {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    edit(&mut file);
    let proxy = Proxy::start(file).await;
    (upstream, proxy)
}

fn post(proxy: &Proxy, path: &str) -> reqwest::RequestBuilder {
    util::client()
        .post(proxy.url(path))
        .header("x-sentry-auth", util::auth_header())
}

#[tokio::test]
async fn every_content_encoding_is_decoded() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    let envelope =
        util::event_envelope(EVENT_ID, &json!({"message": "encoded", "extra": {"n": 1}}));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("identity", envelope.clone()),
        ("", envelope.clone()),
        ("UTF-8", envelope.clone()),
        ("gzip", util::gzip(&envelope)),
        ("deflate", util::zlib(&envelope)),
        ("br", util::brotli(&envelope)),
        ("zstd", util::zstd(&envelope)),
    ];
    let count = bodies.len();
    for (encoding, body) in bodies {
        let response = post(&proxy, &format!("/api/{PID}/envelope/"))
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{encoding}");
    }
    let received = upstream.wait_for(count).await;
    for request in received {
        // Untouched items are forwarded byte-identical (the upstream leg is gzip by default).
        assert_eq!(request.header("content-encoding"), Some("gzip"));
        assert_eq!(&request.body[..], &envelope[..]);
    }
    proxy.stop().await;
}

#[tokio::test]
async fn unknown_encodings_get_415_with_accept_encoding() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    for encoding in ["compress", "x-gzip", "GZIP", "gzip, br"] {
        let response = post(&proxy, &format!("/api/{PID}/envelope/"))
            .header("content-encoding", encoding)
            .body("{}\n")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{encoding}");
        assert_eq!(
            response.headers()["accept-encoding"],
            "gzip, deflate, br, zstd"
        );
    }
    assert!(upstream.received().is_empty());
    proxy.stop().await;
}

#[tokio::test]
async fn size_caps_and_decompression_bombs_get_413() {
    let (upstream, proxy) = setup_with(|file| {
        file.limits.max_body_bytes = 64 * 1024;
        file.limits.max_decompressed_bytes = 256 * 1024;
    })
    .await;
    let url = format!("/api/{PID}/envelope/");
    // Over the received-body cap, declared and chunked.
    let big = vec![b'x'; 100 * 1024];
    let response = post(&proxy, &url).body(big.clone()).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let mut chunked = format!(
        "POST {url} HTTP/1.1\r\nhost: x\r\nx-sentry-auth: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        util::auth_header()
    )
    .into_bytes();
    for chunk in big.chunks(8192) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let response = util::raw_http(proxy.addr, &chunked).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    // A 50 MiB gzip bomb that is ~50 KiB on the wire.
    let mut bomb_plain = b"{}\n{\"type\":\"attachment\"}\n".to_vec();
    bomb_plain.resize(50 << 20, b'A');
    let bomb = util::gzip(&bomb_plain);
    assert!(bomb.len() < 64 * 1024, "bomb is {} bytes", bomb.len());
    let response = post(&proxy, &url)
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("exceeds"));
    assert!(upstream.received().is_empty());
    proxy.stop().await;
}

#[tokio::test]
async fn malformed_envelopes_get_400_with_a_short_reason() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    let url = format!("/api/{PID}/envelope/");
    let cases: [(&[u8], &str); 6] = [
        (b"", "empty envelope"),
        (b"SECRET-PAYLOAD-123", "invalid envelope header"),
        (
            b"{}\r\n{\"type\":\"event\"}\n{}",
            "missing newline after header or payload",
        ),
        (
            b"{}\n{\"type\":\"event\",\"length\":99}\nSECRET-PAYLOAD-123",
            "unexpected end of file",
        ),
        (
            b"{}\n{\"type\":\"event\"}\n{}\n\n",
            "unexpected end of file",
        ),
        (
            b"{}\n{\"type\":\"event\"}\n{}\n{\"type\":\"transaction\"}\n{}\n",
            "more than one event item",
        ),
    ];
    for (body, reason) in cases {
        let response = post(&proxy, &url).body(body.to_vec()).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        assert_eq!(
            text,
            format!("{{\"detail\":\"invalid event envelope: {reason}\"}}")
        );
        assert!(!text.contains("SECRET"));
    }
    assert!(upstream.received().is_empty());
    proxy.stop().await;
}

#[tokio::test]
async fn store_accepts_json_base64_zlib_and_envelopes() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    let event = json!({"event_id": EVENT_ID, "message": "from store", "platform": "python"});
    let json_body = serde_json::to_vec(&event).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&json_body);
    let b64_zlib = base64::engine::general_purpose::STANDARD.encode(util::zlib(&json_body));
    for (path, body) in [
        (format!("/api/{PID}/store/"), json_body.clone()),
        (format!("/api/{PID}/store/"), b64.into_bytes()),
        ("/api/store/".to_owned(), b64_zlib.into_bytes()),
    ] {
        let response = post(&proxy, &path).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.text().await.unwrap(),
            format!("{{\"id\":\"{EVENT_ID}\"}}")
        );
    }
    let envelope = util::event_envelope(EVENT_ID, &json!({"message": "store envelope"}));
    let response = post(&proxy, &format!("/api/{PID}/store/"))
        .header("content-type", "application/x-sentry-envelope")
        .body(envelope.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A store event without an event id gets one.
    let response = post(&proxy, &format!("/api/{PID}/store/"))
        .body("{\"message\":\"no id\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id: serde_json::Value = response.json().await.unwrap();
    let generated = id["id"].as_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);

    let received = upstream.wait_for(5).await;
    for request in &received[..3] {
        assert_eq!(request.uri, format!("/api/{PID}/envelope/"));
        assert_eq!(request.envelope_header()["event_id"], EVENT_ID);
        let items = request.json_items();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].0, "event");
        assert_eq!(items[0].1, event);
    }
    assert_eq!(&received[3].body[..], &envelope[..]);
    assert_eq!(received[4].json_items()[0].1["event_id"], generated);
    // Bad store bodies.
    for (body, status) in [(&b"%%%"[..], 400), (b"AAAA", 400), (b"{not json", 400)] {
        let response = post(&proxy, &format!("/api/{PID}/store/"))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(upstream.received().len(), 5);
    proxy.stop().await;
}

#[tokio::test]
async fn untouched_envelopes_are_forwarded_byte_identical() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    let client_report = r#"{"timestamp":1732000000.5,"discarded_events":[{"reason":"sample_rate","category":"transaction","quantity":3}]}"#;
    let envelope = format!(
        "{{\"event_id\":\"{EVENT_ID}\",\"sent_at\":\"2026-11-23T10:00:00.000000Z\",\"unknown_key\":[1,2]}}\n{{\"type\":\"event\",\"length\":37,\"x-extra\":true}}\n{{\"message\":\"order shipped\",\"level\":1}}\n{{\"type\":\"client_report\"}}\n{client_report}\n"
    );
    let response = post(&proxy, &format!("/api/{PID}/envelope/"))
        .body(envelope.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = upstream.wait_for(1).await;
    assert_eq!(String::from_utf8_lossy(&received[0].body), envelope);
    proxy.stop().await;
}

#[tokio::test]
async fn real_sdk_envelopes_are_accepted() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    let names = [
        "01-exception-with-locals.envelope",
        "02-message.envelope",
        "03-transaction-with-spans.envelope",
        "04-session.envelope",
        "05-log.envelope",
    ];
    for name in names {
        let body = util::sdk_envelope(name);
        let response = post(&proxy, &format!("/api/{PID}/envelope/"))
            .header("content-encoding", "gzip")
            .body(util::gzip(&body))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let original =
            scrubgate::decode::Envelope::parse(body.into(), &Default::default()).unwrap();
        let received = upstream.wait_for(1).await;
        let forwarded = received.last().unwrap().envelope();
        let types = |e: &scrubgate::decode::Envelope| {
            e.items()
                .iter()
                .map(|i| i.item_type().as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(types(&forwarded), types(&original), "{name}");
        assert_eq!(forwarded.event_id(), original.event_id());
        upstream.clear();
    }
    proxy.stop().await;
}
