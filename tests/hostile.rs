//! Hostile input: for every malformed, oversized, lying or slow request, the exact status, that
//! nothing reached the upstream, and that the very next good request is still served and
//! forwarded exactly once.

use std::time::{Duration, Instant};

use bytes::Bytes;
use scrubgate::config::ConfigFile;
use serde_json::json;

use crate::util::{self, Proxy, Upstream, KEY, OTHER_KEY, OTHER_PID, PID};

const EVENT_ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

async fn setup_with(change: impl FnOnce(&mut ConfigFile)) -> (Upstream, Proxy) {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    // A response means the upstream has (or has not) seen the envelope: no background retries
    // can blur "nothing was forwarded".
    file.delivery.mode = scrubgate::delivery::DeliveryMode::Sync;
    change(&mut file);
    let proxy = Proxy::start(file).await;
    (upstream, proxy)
}

fn envelope_url() -> String {
    format!("/api/{PID}/envelope/")
}

async fn post(proxy: &Proxy, body: impl Into<reqwest::Body>) -> (u16, String) {
    let response = util::client()
        .post(proxy.url(&envelope_url()))
        .header("x-sentry-auth", util::auth_header())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn good_body() -> Vec<u8> {
    util::event_envelope(EVENT_ID, &json!({"message": "still serving"}))
}

/// Nothing was forwarded; then one good request gets 200 and is forwarded exactly once.
async fn assert_nothing_forwarded_and_still_serving(
    proxy: &Proxy,
    upstream: &Upstream,
    case: &str,
) {
    assert_eq!(
        upstream.received().len(),
        0,
        "{case}: something was forwarded"
    );
    let (status, _) = post(proxy, good_body()).await;
    assert_eq!(status, 200, "{case}: follow-up request");
    assert_eq!(
        upstream.wait_for(1).await.len(),
        1,
        "{case}: follow-up forwarded"
    );
    upstream.clear();
}

fn item(item_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{{\"type\":\"{item_type}\",\"length\":{}}}\n",
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

fn with_header(items: &[u8]) -> Vec<u8> {
    let mut out = format!("{{\"event_id\":\"{EVENT_ID}\"}}\n").into_bytes();
    out.extend_from_slice(items);
    out
}

/// The audit trail of a proxy started with [`with_audit`].
fn audit_records(dir: &std::path::Path) -> Vec<serde_json::Value> {
    crate::policy::audit_records(dir)
}

/// Puts the audit trail into `dir` so a test can read it.
fn with_audit(dir: &std::path::Path) -> impl FnOnce(&mut ConfigFile) + '_ {
    move |file| file.audit.path = dir.join("audit.jsonl")
}

#[tokio::test]
async fn malformed_envelopes_get_exact_statuses_and_nothing_is_forwarded() {
    let audit = tempfile::tempdir().unwrap();
    let (upstream, proxy) = setup_with(with_audit(audit.path())).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "truncated payload",
            b"{}\n{\"type\":\"event\",\"length\":50}\n{\"a\":1".to_vec(),
            400,
        ),
        ("truncated header", b"{\"event_id\":\"9ec7".to_vec(), 400),
        ("truncated item header", b"{}\n{\"type\":\"ev".to_vec(), 400),
        (
            "negative length",
            b"{}\n{\"type\":\"event\",\"length\":-1}\n{}".to_vec(),
            400,
        ),
        (
            "fractional length",
            b"{}\n{\"type\":\"event\",\"length\":1.5}\n{}".to_vec(),
            400,
        ),
        (
            "string length",
            b"{}\n{\"type\":\"event\",\"length\":\"2\"}\n{}".to_vec(),
            400,
        ),
        (
            "huge length",
            b"{}\n{\"type\":\"event\",\"length\":18446744073709551615}\n{}".to_vec(),
            400,
        ),
        (
            "length past the end",
            b"{}\n{\"type\":\"event\",\"length\":3000}\n{}\n".to_vec(),
            400,
        ),
        (
            "length too short",
            b"{}\n{\"type\":\"event\",\"length\":1}\n{}\n".to_vec(),
            400,
        ),
        (
            "missing newline after header",
            b"{}{\"type\":\"event\"}\n{}".to_vec(),
            400,
        ),
        (
            "two trailing newlines",
            b"{}\n{\"type\":\"event\"}\n{}\n\n".to_vec(),
            400,
        ),
        (
            "CRLF after envelope header",
            b"{}\r\n{\"type\":\"event\"}\n{}".to_vec(),
            400,
        ),
        (
            "CRLF after item header",
            b"{}\n{\"type\":\"event\"}\r\n{}".to_vec(),
            400,
        ),
        (
            "invalid UTF-8 in header",
            b"{\"event_id\":\"\xff\xfe\"}\n".to_vec(),
            400,
        ),
        ("NUL in header", b"{\"a\":1}\0\n".to_vec(), 400),
        ("bare NUL body", b"\0\0\0\0".to_vec(), 400),
        (
            "item header not an object",
            b"{}\n[\"event\"]\n{}".to_vec(),
            400,
        ),
        ("item without type", b"{}\n{\"length\":2}\n{}".to_vec(), 400),
        (
            "internal item type",
            b"{}\n{\"type\":\"integration\"}\n{}".to_vec(),
            400,
        ),
        (
            "duplicate event items",
            with_header(&[item("event", b"{}"), item("event", b"{}")].concat()),
            400,
        ),
        (
            "event and transaction",
            with_header(&[item("event", b"{}"), item("transaction", b"{}")].concat()),
            400,
        ),
        (
            "501 items",
            with_header(&item("client_report", b"{}").repeat(501)),
            400,
        ),
        (
            "10,000-deep array in event",
            with_header(&item("event", deep.as_bytes())),
            400,
        ),
        (
            "10,000-deep object in event",
            with_header(&item("event", deep_object.as_bytes())),
            400,
        ),
        (
            "10,000-deep envelope header",
            format!("{{\"a\":{deep}}}\n").into_bytes(),
            400,
        ),
        (
            "event over 1 MiB",
            with_header(&item(
                "event",
                format!("{{\"m\":\"{}\"}}", "x".repeat(1 << 20)).as_bytes(),
            )),
            413,
        ),
        (
            "31 attachments",
            with_header(&item("attachment", b"abc").repeat(31)),
            413,
        ),
        (
            "101 sessions",
            with_header(&item("session", b"{}").repeat(101)),
            413,
        ),
        (
            "two check-ins",
            with_header(&item("check_in", b"{}").repeat(2)),
            413,
        ),
        (
            "26 standalone spans",
            with_header(&item("span", b"{}").repeat(26)),
            413,
        ),
        (
            "client report over 100 KiB",
            with_header(&item(
                "client_report",
                format!("{{\"m\":\"{}\"}}", "x".repeat(100 * 1024)).as_bytes(),
            )),
            413,
        ),
    ];
    for (case, body, expected) in cases {
        let before = audit_records(audit.path()).len();
        let (status, text) = post(&proxy, body).await;
        assert_eq!(status, expected, "{case}: {text}");
        assert!(!text.contains("xxxx"), "{case}: payload echoed");
        // Exactly one audit record for the refused request, saying why, without the payload.
        let records = audit_records(audit.path());
        assert_eq!(records.len(), before + 1, "{case}: audit records");
        let record = &records[before];
        assert_eq!(record["status"], u64::from(expected), "{case}");
        assert_eq!(record["outcome"], "rejected", "{case}");
        assert!(record["error"].is_string(), "{case}: {record}");
        assert!(
            !record.to_string().contains("xxxx"),
            "{case}: payload in audit"
        );
        assert_nothing_forwarded_and_still_serving(&proxy, &upstream, case).await;
    }
    proxy.stop().await;
}

#[tokio::test]
async fn unparseable_payloads_are_dropped_never_forwarded_raw() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid UTF-8 in event",
            with_header(&item("event", b"{\"m\":\"\xff\xfe secret\"}")),
        ),
        (
            "NUL inside event string",
            with_header(&item("event", b"{\"m\":\"a\0b\"}")),
        ),
        (
            "number out of range",
            with_header(&item("event", b"{\"n\":1e400}")),
        ),
        (
            "not JSON at all",
            with_header(&item("event", b"SECRET-PAYLOAD")),
        ),
        (
            "trailing garbage",
            with_header(&item("event", b"{} SECRET")),
        ),
    ];
    for (case, body) in cases {
        let (status, text) = post(&proxy, body).await;
        assert_eq!(status, 200, "{case}: {text}");
        assert_eq!(text, format!("{{\"id\":\"{EVENT_ID}\"}}"), "{case}");
        // At most a client report saying what was dropped goes out; never the payload.
        for request in upstream.received() {
            let types: Vec<String> = request.json_items().into_iter().map(|(t, _)| t).collect();
            assert_eq!(types, ["client_report"], "{case}");
            let raw = String::from_utf8_lossy(&request.body).to_lowercase();
            assert!(
                !raw.contains("secret") && !raw.contains("1e400"),
                "{case}: {raw}"
            );
        }
        upstream.clear();
        assert_nothing_forwarded_and_still_serving(&proxy, &upstream, case).await;
    }
    // Big but legal: a 900 KB string and huge integers pass and are forwarded.
    let big =
        json!({"message": "y".repeat(900_000), "n": 123456789012345678901234567890u128 as f64});
    let (status, _) = post(&proxy, util::event_envelope(EVENT_ID, &big)).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.wait_for(1).await.len(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn conflicting_credentials_and_projects() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    let client = util::client();
    let url = proxy.url(&envelope_url());
    let other_dsn = format!("http://{OTHER_KEY}@{}/{OTHER_PID}", proxy.addr);
    let mismatched = format!("{{\"dsn\":\"{other_dsn}\"}}\n{{\"type\":\"event\"}}\n{{}}\n");
    let cases = vec![
        (
            "two X-Sentry-Auth headers",
            client
                .post(&url)
                .header("x-sentry-auth", util::auth_header())
                .header("x-sentry-auth", util::auth_header())
                .body(good_body()),
            401,
        ),
        (
            "header and query auth",
            client
                .post(format!("{url}?sentry_key={KEY}"))
                .header("x-sentry-auth", util::auth_header())
                .body(good_body()),
            401,
        ),
        (
            "two Content-Encoding headers",
            client
                .post(&url)
                .header("x-sentry-auth", util::auth_header())
                .header("content-encoding", "gzip")
                .header("content-encoding", "gzip")
                .body(util::gzip(&good_body())),
            415,
        ),
        (
            "DSN names another project than the request auth",
            client
                .post(&url)
                .header("x-sentry-auth", util::auth_header())
                .body(mismatched.clone()),
            400,
        ),
        (
            "DSN-only auth for another project than the URL",
            client.post(&url).body(mismatched),
            403,
        ),
        (
            "key of another project than the URL",
            client
                .post(proxy.url(&format!("/api/{OTHER_PID}/envelope/")))
                .header("x-sentry-auth", util::auth_header())
                .body(good_body()),
            403,
        ),
    ];
    for (case, request, expected) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{case}");
        assert_nothing_forwarded_and_still_serving(&proxy, &upstream, case).await;
    }
    proxy.stop().await;
}

#[tokio::test]
async fn raw_http_abuse_duplicate_lengths_lies_and_oversized_heads() {
    let (upstream, proxy) = setup_with(|file| {
        file.server.body_read_timeout_secs = 1;
        file.server.max_header_count = 50;
        file.server.max_header_bytes = 16 * 1024;
    })
    .await;
    let body = good_body();
    let head = |extra: &str, len: usize| {
        format!(
            "POST {} HTTP/1.1\r\nhost: x\r\nx-sentry-auth: {}\r\n{extra}content-length: {len}\r\n\r\n",
            envelope_url(),
            util::auth_header()
        )
        .into_bytes()
    };
    // Two different Content-Length values: hyper refuses to guess.
    let mut conflicting = head(
        &format!("content-length: {}\r\n", body.len() + 5),
        body.len(),
    );
    conflicting.extend_from_slice(&body);
    let answer = util::raw_http(proxy.addr, &conflicting).await;
    assert_eq!(util::raw_status(&answer), 400, "{answer}");
    assert_nothing_forwarded_and_still_serving(&proxy, &upstream, "two content-lengths").await;

    // Content-Length longer than the body: the body never completes, 408.
    let mut longer = head("", body.len() + 100);
    longer.extend_from_slice(&body);
    let started = Instant::now();
    let answer = util::raw_http(proxy.addr, &longer).await;
    assert_eq!(util::raw_status(&answer), 408, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_nothing_forwarded_and_still_serving(&proxy, &upstream, "content-length too long").await;

    // Content-Length shorter than the body: the envelope is cut (400), and the rest is not a
    // valid second request (400), and nothing is forwarded.
    let mut shorter = head("", body.len() - 10);
    shorter.extend_from_slice(&body);
    let answer = util::raw_http(proxy.addr, &shorter).await;
    assert_eq!(util::raw_status(&answer), 400, "{answer}");
    assert_nothing_forwarded_and_still_serving(&proxy, &upstream, "content-length too short").await;

    // Transfer-Encoding and Content-Length together: chunked wins (RFC 9112 §6.3); a chunked
    // body that lies about its chunk size is a 400.
    let mut smuggle = head("transfer-encoding: chunked\r\n", 4);
    smuggle.extend_from_slice(b"ffff\r\n{}\r\n0\r\n\r\n");
    let answer = util::raw_http(proxy.addr, &smuggle).await;
    assert!(matches!(util::raw_status(&answer), 400 | 408), "{answer}");
    assert_nothing_forwarded_and_still_serving(&proxy, &upstream, "TE + CL").await;

    // Too many header fields, and too many header bytes: 431.
    let many: String = (0..60).map(|i| format!("x-h{i}: v\r\n")).collect();
    let answer = util::raw_http(proxy.addr, &head(&many, 0)).await;
    assert_eq!(util::raw_status(&answer), 431, "{answer}");
    let huge = format!("x-big: {}\r\n", "v".repeat(20 * 1024));
    let answer = util::raw_http(proxy.addr, &head(&huge, 0)).await;
    assert_eq!(util::raw_status(&answer), 431, "{answer}");
    assert!(!answer.contains("vvvv"), "header value echoed");
    assert_nothing_forwarded_and_still_serving(&proxy, &upstream, "431").await;
    proxy.stop().await;
}

#[tokio::test]
async fn oversized_http2_header_lists_get_431() {
    // The same limit over h2c (HTTP/2 has no header-count limit of its own; its header list
    // size is `max_header_bytes`): the stream is answered 431, the connection and the server
    // keep serving.
    let (upstream, proxy) = setup_with(|file| file.server.max_header_bytes = 16 * 1024).await;
    util::install_crypto();
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let huge = "v".repeat(20 * 1024);
    let response = client
        .post(proxy.url(&envelope_url()))
        .header("x-sentry-auth", util::auth_header())
        .header("x-big", huge.as_str())
        .body(good_body())
        .send()
        .await
        .expect("an HTTP/2 answer, not a reset");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 431);
    let body = response.text().await.unwrap_or_default();
    assert!(!body.contains("vvvv"), "header value echoed");
    // The same HTTP/2 client (and connection pool) is still served.
    let response = client
        .post(proxy.url(&envelope_url()))
        .header("x-sentry-auth", util::auth_header())
        .body(good_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.wait_for(1).await.len(), 1);
    upstream.clear();
    assert_nothing_forwarded_and_still_serving(&proxy, &upstream, "h2 431").await;
    proxy.stop().await;
}

#[tokio::test]
async fn slow_senders_get_408_or_are_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (upstream, proxy) = setup_with(|file| {
        file.server.body_read_timeout_secs = 1;
        file.server.header_read_timeout_secs = 1;
    })
    .await;
    let body = good_body();
    // Slow body: a byte every 200 ms; the 1 s body timeout answers 408.
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\nx-sentry-auth: {}\r\ncontent-length: {}\r\n\r\n",
        envelope_url(),
        util::auth_header(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    for byte in &body {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(util::raw_status(&answer), 408, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_nothing_forwarded_and_still_serving(&proxy, &upstream, "slow body").await;

    // Slowloris: header bytes trickle in; the connection is closed without a response.
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in b"POST /api/42/envelope/ HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaa" {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(150), stream.read(&mut buf)).await
        {
            assert!(matches!(read, Ok(0) | Err(_)), "no response to a slowloris");
            closed = true;
            break;
        }
    }
    assert!(closed, "slowloris connection still open");
    assert!(started.elapsed() < Duration::from_secs(4));

    // A connection that never sends a byte is closed after the header timeout too.
    let mut silent = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(4), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "silent connection kept open"
    );
    assert_nothing_forwarded_and_still_serving(&proxy, &upstream, "slowloris").await;
    proxy.stop().await;
}

/// A gzip body that inflates to `total` bytes, generated piece by piece: the same small gzip
/// member (1 MiB of zeros) repeated, which a multi-member gzip decoder reads as one stream.
/// Nothing near `total` is ever held in memory, by the test or (if the cap works) the proxy.
struct GzipBomb {
    member: Bytes,
    left: usize,
}

impl GzipBomb {
    fn new(total: usize) -> Self {
        Self {
            member: Bytes::from(util::gzip(&vec![0u8; 1 << 20])),
            left: total / (1 << 20),
        }
    }
}

impl http_body::Body for GzipBomb {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(self.member.clone()))))
    }
}

#[tokio::test]
async fn one_gigabyte_gzip_bomb_is_cut_off_with_413_quickly() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    let body = GzipBomb::new(1 << 30);
    let wire = body.member.len() * body.left;
    let started = Instant::now();
    let response = util::client()
        .post(proxy.url(&envelope_url()))
        .header("x-sentry-auth", util::auth_header())
        .header("content-encoding", "gzip")
        .body(reqwest::Body::wrap(body))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    assert!(text.contains("exceeds"), "{text}");
    eprintln!(
        "1 GiB gzip bomb ({} KiB on the wire): 413 after {elapsed:?}",
        wire / 1024
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_nothing_forwarded_and_still_serving(&proxy, &upstream, "gzip bomb").await;
    proxy.stop().await;
}

#[tokio::test]
async fn store_endpoint_hostile_bodies() {
    let (upstream, proxy) = setup_with(|_| {}).await;
    let client = util::client();
    let url = proxy.url(&format!("/api/{PID}/store/"));
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("bad base64", b"!!!not-base64!!!".to_vec(), 400),
        ("base64 of bad zlib", b"eHh4eHh4eHh4".to_vec(), 400),
        ("empty", b"   ".to_vec(), 400),
        ("deep JSON", deep.into_bytes(), 400),
        ("invalid JSON", b"{\"message\": SECRET".to_vec(), 400),
        ("not an object", b"{".to_vec(), 400),
        (
            "over 1 MiB",
            format!("{{\"m\":\"{}\"}}", "x".repeat(1 << 20)).into_bytes(),
            413,
        ),
    ];
    for (case, body, expected) in cases {
        let response = client
            .post(&url)
            .header("x-sentry-auth", util::auth_header())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{case}");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("SECRET") && !text.contains("xxxx"),
            "{case}: {text}"
        );
        assert_nothing_forwarded_and_still_serving(&proxy, &upstream, case).await;
    }
    proxy.stop().await;
}
