//! The admin listener (`[admin] listen`): `/metrics`, `/healthz` and `/readyz` for the
//! operator, on a port that is not the SDKs' one. The SDK-facing port is often reachable from
//! the internet (browser SDKs); metrics name project ids, per-rule redaction counts and
//! upstream errors, and every `/readyz` makes a probe write to the spool and audit disks, so
//! neither belongs there by default (`metrics.on_main_listener`,
//! `admin.readyz_on_main_listener` bring them back on purpose).

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::{error_response, json_response, metrics_response, readiness, AppState, IngestError};

/// Answers one admin request. The body is never read: every admin route is a GET.
pub async fn handle<B>(state: Arc<AppState>, request: Request<B>) -> Response<Full<Bytes>> {
    let config = state.config.load_full();
    let path = super::normalize_path(request.uri().path());
    let method = request.method();
    let (label, result) = match path.as_str() {
        "/healthz" => ("healthz", health(method)),
        "/readyz" if is_get(method) => ("readyz", Ok(readiness::readiness(&state, &config).await)),
        "/readyz" => ("readyz", Err(IngestError::MethodNotAllowed)),
        "/metrics" if !config.file.metrics.enabled => ("metrics", Err(IngestError::NotFound)),
        "/metrics" if is_get(method) => ("metrics", Ok(metrics_response(&state))),
        "/metrics" => ("metrics", Err(IngestError::MethodNotAllowed)),
        // Like the main listener, unknown paths are not counted: no label for them.
        _ => return error_response(&IngestError::NotFound),
    };
    let response = result.unwrap_or_else(|error| error_response(&error));
    state.metrics.request(label, response.status().as_u16());
    response
}

fn is_get(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// `/healthz`: the process is up and serving HTTP.
pub(super) fn health(method: &Method) -> Result<Response<Full<Bytes>>, IngestError> {
    if is_get(method) {
        Ok(json_response(StatusCode::OK, &json!({"status":"ok"})))
    } else {
        Err(IngestError::MethodNotAllowed)
    }
}
