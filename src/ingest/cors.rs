//! CORS for browser SDKs, as Relay does it: any origin, POST only, a fixed list of request
//! headers, and the rate-limit headers exposed so the SDK can back off.

use http::header::{HeaderMap, HeaderValue};

const ALLOW_HEADERS: &str = "x-sentry-auth, x-requested-with, x-forwarded-for, origin, referer, \
     accept, content-type, authentication, authorization, content-encoding, transfer-encoding";
const EXPOSE_HEADERS: &str = "x-sentry-error, x-sentry-rate-limits, retry-after";

/// Headers on every response of an ingest route.
pub fn add_response_headers(headers: &mut HeaderMap) {
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
}

/// Headers of a preflight (`OPTIONS`) answer.
pub fn add_preflight_headers(headers: &mut HeaderMap) {
    add_response_headers(headers);
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST"),
    );
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert("access-control-max-age", HeaderValue::from_static("3600"));
}
