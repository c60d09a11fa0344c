//! Connection-level limits: the concurrent-connection cap, the per-project rate limit, the
//! idle timeout, and the decompression-ratio cap, each with its exact status.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{self, Proxy, Upstream, PID};

const EVENT_ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

fn body() -> Vec<u8> {
    util::event_envelope(EVENT_ID, &json!({"message": "m"}))
}

fn raw_request() -> Vec<u8> {
    let body = body();
    let mut out = format!(
        "POST /api/{PID}/envelope/ HTTP/1.1\r\nhost: x\r\nx-sentry-auth: {}\r\ncontent-length: {}\r\n\r\n",
        util::auth_header(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Sends one request on `stream` and reads until a full status line arrived (or 1 s passed).
async fn request_on(stream: &mut tokio::net::TcpStream) -> Option<u16> {
    stream.write_all(&raw_request()).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(util::raw_status(&String::from_utf8_lossy(&buf[..n])))
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_a_slot_frees() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    file.server.max_connections = 2;
    let proxy = Proxy::start(file).await;
    let mut first = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut second = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    assert_eq!(request_on(&mut first).await, Some(200));
    assert_eq!(request_on(&mut second).await, Some(200));
    // The third connection sits in the backlog: no answer while both slots are taken.
    let mut third = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    assert_eq!(request_on(&mut third).await, None);
    drop(first);
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), third.read(&mut buf))
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert_eq!(util::raw_status(&String::from_utf8_lossy(&buf[..n])), 200);
    assert_eq!(upstream.wait_for(3).await.len(), 3);
    proxy.stop().await;
}

#[tokio::test]
async fn per_project_rate_limit_answers_429_with_retry_after() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    file.limits.project_rate_limit_per_sec = 0.5;
    file.limits.project_rate_limit_burst = 2;
    let proxy = Proxy::start(file).await;
    let client = util::client();
    let url = proxy.url(&format!("/api/{PID}/envelope/"));
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..4 {
        let response = client
            .post(&url)
            .header("x-sentry-auth", util::auth_header())
            .body(body())
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            limited = Some(response);
        }
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    let limited = limited.unwrap();
    assert_eq!(limited.headers()["retry-after"], "2");
    assert_eq!(limited.headers()["x-sentry-rate-limits"], "2::key");
    assert_eq!(limited.headers()["access-control-allow-origin"], "*");
    // Another project has its own bucket.
    let other = client
        .post(proxy.url(&format!("/api/{}/envelope/", util::OTHER_PID)))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={}, sentry_version=7", util::OTHER_KEY),
        )
        .body(body())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        upstream.received().len(),
        3,
        "rate-limited requests are not forwarded"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_and_silent_connections_are_closed() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    file.server.idle_timeout_secs = 1;
    file.server.header_read_timeout_secs = 1;
    let proxy = Proxy::start(file).await;
    // Keep-alive connection: served, then closed after a second of silence.
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    assert_eq!(request_on(&mut stream).await, Some(200));
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "idle connection kept open"
    );
    let idle_for = started.elapsed();
    assert!(idle_for < Duration::from_secs(3), "{idle_for:?}");
    // HTTP/2 prior knowledge with no request: closed by the idle timeout as well.
    let mut h2 = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), h2.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            Ok(_) => break,
            Err(_) => panic!("idle h2 connection kept open"),
        }
    }
    assert!(!seen.is_empty(), "the server spoke h2 first");
    assert!(started.elapsed() < Duration::from_secs(4));
    proxy.stop().await;
}

#[tokio::test]
async fn decompression_ratio_cap_cuts_bombs_below_the_absolute_cap() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    file.limits.max_decompression_ratio = 10;
    let proxy = Proxy::start(file).await;
    let client = util::client();
    let url = proxy.url(&format!("/api/{PID}/envelope/"));
    // 4 MiB of one repeated byte compresses ~1000:1: over 10:1 and over the 1 MiB floor.
    let mut bomb = b"{}\n{\"type\":\"attachment\"}\n".to_vec();
    bomb.resize(4 << 20, b'A');
    let response = client
        .post(&url)
        .header("x-sentry-auth", util::auth_header())
        .header("content-encoding", "gzip")
        .body(util::gzip(&bomb))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // A normal SDK envelope compresses far less and passes.
    let sdk = util::sdk_envelope("01-exception-with-locals.envelope");
    let response = client
        .post(&url)
        .header("x-sentry-auth", util::auth_header())
        .header("content-encoding", "gzip")
        .body(util::gzip(&sdk))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.wait_for(1).await.len(), 1);
    proxy.stop().await;
}
