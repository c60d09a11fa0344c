//! The HTTP face of scrubgate: route table, CORS, credentials → configured project, body caps
//! and decoding, and the mapping of every outcome to a status code. Knows nothing about scrub
//! rules or the upstream; it hands an [`Incoming`] envelope to the [`Pipeline`].

pub mod admin;
pub mod auth;
pub mod budget;
pub mod cors;
pub mod error;
pub mod limits;
pub mod rate;
mod readiness;

pub use readiness::StorageHealth;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Map, Value};

pub use error::IngestError;

use crate::audit::{AuditGuard, AuditLog, Outcome, RequestStart, UpstreamRecord};
use crate::config::{Config, Project};
use crate::decode::compression::{decompress, decompress_within, ContentEncoding, DecompressError};
use crate::decode::store::decode_store_body;
use crate::decode::{AuthPairs, Dsn, Envelope, EnvelopeLimits, Item, ItemType};
use crate::delivery::Reservation;
use crate::forward::ClientMeta;
use crate::metrics::{Metrics, Stage};
use crate::pipeline::{Delivery, Incoming, ItemDecision, Pipeline, Processed, Scrubbed};
use budget::Lease;

/// Shared state of the running server: the current config (swapped atomically on reload)
/// and the pipeline.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<ArcSwap<Config>>,
    pub pipeline: Pipeline,
    /// Per-project token buckets (`limits.project_rate_limit_per_sec`).
    pub rate: rate::RateLimiter,
    /// Set on shutdown so `/readyz` fails and load balancers stop sending.
    pub draining: std::sync::atomic::AtomicBool,
    /// The audit trail: one record per ingest request.
    pub audit: AuditLog,
    /// Bytes held by requests in flight (`limits.max_inflight_bytes`).
    pub budget: budget::InflightBudget,
    /// Failed spool writes, remembered so `/readyz` proves recovery by writing as much.
    pub storage: readiness::StorageHealth,
    pub metrics: Arc<Metrics>,
}

/// The routes we serve. Upload kinds we do not handle yet fall through to 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Envelope(u64),
    Store(Option<u64>),
    Tunnel,
    Healthz,
    Readyz,
    Metrics,
    /// Upload kinds scrubgate does not forward (minidump, unreal, attachments, security
    /// reports): answered 403, audited and counted, body never read.
    Upload(&'static str),
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Self::Envelope(_) => "envelope",
            Self::Store(_) => "store",
            Self::Tunnel => "tunnel",
            Self::Healthz => "healthz",
            Self::Readyz => "readyz",
            Self::Metrics => "metrics",
            Self::Upload(kind) => kind,
        }
    }

    fn is_ingest(self) -> bool {
        matches!(
            self,
            Self::Envelope(_) | Self::Store(_) | Self::Tunnel | Self::Upload(_)
        )
    }
}

/// Handles one request. Never fails: every error becomes a response. Every response carries
/// `x-request-id`, and every log line of the request is inside a span that carries it.
pub async fn handle<B>(
    state: Arc<AppState>,
    request: Request<B>,
    peer: SocketAddr,
) -> Response<Full<Bytes>>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use tracing::Instrument as _;
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = handle_routed(state, request, peer, &request_id)
        .instrument(span)
        .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn handle_routed<B>(
    state: Arc<AppState>,
    request: Request<B>,
    peer: SocketAddr,
    request_id: &str,
) -> Response<Full<Bytes>>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let config = state.config.load_full();
    let path = normalize_path(request.uri().path());
    let route = match route(&path, &config.file.server.tunnel_path) {
        Ok(route) => route,
        Err(error) => return error_response(&error),
    };
    let method = request.method().clone();
    if method == Method::OPTIONS && route.is_ingest() {
        let mut response = empty_response(StatusCode::OK);
        cors::add_preflight_headers(response.headers_mut());
        return response;
    }
    // A spooled envelope waits here, undeliverable, until its audit record is durable:
    // dropped (so removed from the spool) if the record fails or the client goes away.
    let mut reserved: Option<Reservation> = None;
    // Opened before anything can fail: from here on, every path writes exactly one record.
    let mut guard = route.is_ingest().then(|| {
        state.audit.guard(
            &config.hash_key,
            &RequestStart {
                request_id,
                endpoint: route.label(),
                client_ip: Some(peer.ip()),
                policy_hash: &config.policy_hash,
            },
        )
    });
    let result = match (route, &method, guard.as_mut()) {
        (Route::Healthz, method, _) => admin::health(method),
        // `/readyz` and `/metrics` live on the admin listener; here only when asked for.
        (Route::Readyz, _, _) if !config.file.admin.readyz_on_main_listener => {
            Err(IngestError::NotFound)
        }
        (Route::Readyz, &Method::GET | &Method::HEAD, _) => {
            Ok(readiness::readiness(&state, &config).await)
        }
        (Route::Metrics, &Method::GET, _)
            if config.file.metrics.enabled && config.file.metrics.on_main_listener =>
        {
            Ok(metrics_response(&state))
        }
        (Route::Metrics, _, _) => Err(IngestError::NotFound),
        (Route::Envelope(pid), &Method::POST, Some(guard)) => {
            handle_envelope(
                &state,
                &config,
                request,
                Some(pid),
                false,
                guard,
                &mut reserved,
            )
            .await
        }
        (Route::Tunnel, &Method::POST, Some(guard)) => {
            handle_envelope(&state, &config, request, None, true, guard, &mut reserved).await
        }
        (Route::Store(pid), &Method::POST, Some(guard)) => {
            handle_store(&state, &config, request, pid, guard, &mut reserved).await
        }
        (Route::Upload(_), _, _) => Err(IngestError::UploadNotAccepted),
        _ => Err(IngestError::MethodNotAllowed),
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let error_kind = result_error_kind(&result);
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            let status = error.status();
            let storage = report_storage_failure(
                &state,
                &config,
                &error,
                "request failed: storage cannot be written",
            );
            if storage {
                // Logged with its cause above.
            } else if status.is_server_error() {
                tracing::error!(
                    route = route.label(),
                    status = status.as_u16(),
                    error = %error,
                    kind = error.kind(),
                    elapsed_ms,
                    peer_port = peer.port(),
                    "request failed"
                );
            } else {
                tracing::info!(
                    route = route.label(),
                    status = status.as_u16(),
                    kind = error.kind(),
                    elapsed_ms,
                    "request rejected"
                );
            }
            error_response(&error)
        }
    };
    if let Some(guard) = guard {
        response = match reserved {
            // The record is handed to the writer before the first await: a client that
            // goes away during the write cannot stop it.
            None => finish_audit(&state, &config, guard, response, error_kind).await,
            // The record and the reservation's fate are decided together, in a task of their
            // own: a client that goes away now (hyper drops this future) cannot leave a
            // record that says 200 beside an envelope that was never released.
            Some(reservation) => {
                let task_state = Arc::clone(&state);
                let task_config = Arc::clone(&config);
                tokio::spawn(async move {
                    let response =
                        finish_audit(&task_state, &task_config, guard, response, error_kind).await;
                    commit_reservation(&task_state, &task_config, reservation, response).await
                })
                .await
                .unwrap_or_else(|_| error_response(&IngestError::Internal))
            }
        };
    }
    state
        .metrics
        .request(route.label(), response.status().as_u16());
    if route.is_ingest() {
        cors::add_response_headers(response.headers_mut());
    }
    response
}

async fn handle_envelope<B>(
    state: &AppState,
    config: &Arc<Config>,
    request: Request<B>,
    path_project: Option<u64>,
    tunnel: bool,
    guard: &mut AuditGuard,
    reserved: &mut Option<Reservation>,
) -> Result<Response<Full<Bytes>>, IngestError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let credentials = if tunnel {
        None
    } else {
        credentials(&parts.headers, parts.uri.query())?
    };
    // Reject unknown keys before reading a single byte of the body.
    let early_project = match &credentials {
        Some(pairs) => Some(authorize(config, &pairs.sentry_key, path_project)?),
        None => None,
    };
    if let Some(project) = &early_project {
        guard.set_project(project.project_id, &project.public_key);
        check_rate(state, config, project)?;
    }
    let encoding = content_encoding(&parts.headers)?;
    let mut lease = lease_for_body(state, &parts.headers, encoding).await?;
    let body = read_body(state, config, body, &parts.headers, &mut lease).await?;
    let decode_started = Instant::now();
    let limits = &config.file.limits;
    let received_bytes = body.len();
    let body = decompress_leased(
        state,
        &mut lease,
        body,
        encoding,
        limits::decompression_cap(received_bytes, limits),
    )?;
    let compressed = encoding != ContentEncoding::Identity;
    lease_for_scrub(state, &mut lease, received_bytes, body.len(), compressed)?;
    tracing::debug!(
        encoding = encoding.as_str(),
        received_bytes,
        decoded_bytes = body.len(),
        "body decoded"
    );
    let envelope_limits = EnvelopeLimits {
        max_items: limits.max_envelope_items,
    };
    let envelope = Envelope::parse(body, &envelope_limits)?;
    state.metrics.stage(Stage::Decode, decode_started.elapsed());
    let project = match early_project {
        Some(project) => {
            check_header_dsn(&envelope, &project, credentials.as_ref())?;
            project
        }
        None => {
            let project = project_from_dsn(config, &envelope, path_project, tunnel)?;
            check_rate(state, config, &project)?;
            project
        }
    };
    limits::check_envelope(&envelope, limits).map_err(IngestError::Limit)?;
    let client = client_meta(&parts.headers, credentials.as_ref());
    process(state, config, project, envelope, client, guard, reserved).await
}

async fn handle_store<B>(
    state: &AppState,
    config: &Arc<Config>,
    request: Request<B>,
    path_project: Option<u64>,
    guard: &mut AuditGuard,
    reserved: &mut Option<Reservation>,
) -> Result<Response<Full<Bytes>>, IngestError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let credentials =
        credentials(&parts.headers, parts.uri.query())?.ok_or(IngestError::MissingAuth)?;
    let project = authorize(config, &credentials.sentry_key, path_project)?;
    guard.set_project(project.project_id, &project.public_key);
    check_rate(state, config, &project)?;
    let encoding = content_encoding(&parts.headers)?;
    let mut lease = lease_for_body(state, &parts.headers, encoding).await?;
    let body = read_body(state, config, body, &parts.headers, &mut lease).await?;
    let received_bytes = body.len();
    let decode_started = Instant::now();
    let limits = &config.file.limits;
    let is_envelope = parts
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/x-sentry-envelope");
    let envelope = if is_envelope {
        let cap = limits::decompression_cap(body.len(), limits);
        let body = decompress_leased(state, &mut lease, body, encoding, cap)?;
        let compressed = encoding != ContentEncoding::Identity;
        lease_for_scrub(state, &mut lease, received_bytes, body.len(), compressed)?;
        let envelope = Envelope::parse(
            body,
            &EnvelopeLimits {
                max_items: limits.max_envelope_items,
            },
        )?;
        check_header_dsn(&envelope, &project, Some(&credentials))?;
        limits::check_envelope(&envelope, limits).map_err(IngestError::Limit)?;
        envelope
    } else {
        let body =
            decompress(body, encoding, limits.max_event_bytes).map_err(IngestError::Decompress)?;
        let event =
            decode_store_body(body, limits.max_event_bytes).map_err(IngestError::StoreBody)?;
        lease_for_scrub(state, &mut lease, received_bytes, event.len(), true)?;
        if limits::json_too_deep(&event, limits.max_json_depth) {
            return Err(IngestError::Limit(limits::LimitError::TooDeep));
        }
        envelope_from_store_event(event)?
    };
    state.metrics.stage(Stage::Decode, decode_started.elapsed());
    let client = client_meta(&parts.headers, Some(&credentials));
    process(state, config, project, envelope, client, guard, reserved).await
}

async fn process(
    state: &AppState,
    config: &Arc<Config>,
    project: Project,
    envelope: Envelope,
    client: ClientMeta,
    guard: &mut AuditGuard,
    reserved: &mut Option<Reservation>,
) -> Result<Response<Full<Bytes>>, IngestError> {
    let project_id = project.project_id;
    let items_received = envelope.items().len();
    let envelope_bytes: u64 = envelope
        .items()
        .iter()
        .map(|i| i.payload().len() as u64)
        .sum();
    guard.set_project(project_id, &project.public_key);
    note_sdk(guard, &envelope, &client);
    if let Some(event_id) = envelope.event_id() {
        guard.set_event_id(event_id);
    }
    // Fail closed before anything can leave: a request whose record cannot be written is
    // answered 503 and forwards nothing.
    guard
        .preflight()
        .await
        .map_err(IngestError::AuditUnavailable)?;
    let incoming = Incoming {
        project,
        envelope,
        client,
    };
    let failed = |error: crate::pipeline::PipelineError, guard: &mut AuditGuard| {
        if let crate::pipeline::PipelineError::Accept(crate::delivery::AcceptError::Spool(_)) =
            &error
        {
            state.storage.spool_failed(envelope_bytes);
        }
        let error = IngestError::from(error);
        guard.set_upstream(UpstreamRecord::Error(error.kind().to_owned()));
        if let Some(kind) = upstream_error_kind(&error) {
            state.metrics.upstream_error(kind);
        }
        error
    };
    let scrubbed = state
        .pipeline
        .scrub(Arc::clone(config), incoming)
        .await
        .map_err(|error| failed(error, guard))?;
    let processed = match scrubbed {
        Scrubbed::Finished(processed) => processed,
        Scrubbed::Outbound(outbound) => {
            if outbound.mode == crate::delivery::DeliveryMode::Sync {
                // Nothing may reach the upstream without its record: in sync mode the
                // record is made durable before the envelope is sent, so it cannot carry
                // the upstream's answer (that goes to the log and metrics).
                record_items(state, guard, &outbound.report, project_id);
                guard.set_outcome(if outbound.report.forwarded_items() == 0 {
                    Outcome::Dropped
                } else {
                    Outcome::Forwarded
                });
                guard.set_upstream(UpstreamRecord::Sending);
                guard
                    .finish_before_send(0)
                    .await
                    .map_err(IngestError::AuditUnavailable)?;
            }
            let processed = state
                .pipeline
                .send(outbound)
                .await
                .map_err(|error| failed(error, guard))?;
            if matches!(processed.delivery, Delivery::Queued(_)) {
                state.storage.spool_ok();
            }
            processed
        }
    };
    let Processed {
        event_id,
        report,
        rate_limited_items,
        delivery,
    } = processed;
    let outcome = match &delivery {
        Delivery::NothingToSend => "nothing_to_send",
        Delivery::RateLimited(_) => "rate_limited",
        Delivery::Queued(_) => "queued",
        Delivery::Upstream(_) => "forwarded",
    };
    let upstream_status = match &delivery {
        Delivery::Upstream(response) => response.status,
        _ => 0,
    };
    record_report(state, guard, &report, &delivery, project_id);
    tracing::info!(
        project_id,
        items_received,
        items_forwarded = report.forwarded_items(),
        items_dropped = report.dropped_items(),
        items_rate_limited = rate_limited_items,
        drops = %drop_summary(&report),
        redactions = report.redactions(),
        echo_not_echoed = report.echo_not_echoed,
        client_report_added = !report.client_report.is_empty(),
        outcome,
        upstream_status,
        scrub_ms = report.scrub_time.as_secs_f64() * 1000.0,
        decide_ms = report.decide_time.as_secs_f64() * 1000.0,
        "envelope processed"
    );
    let id_body = match &event_id {
        Some(id) => json!({ "id": id }),
        None => json!({}),
    };
    match delivery {
        Delivery::NothingToSend => Ok(json_response(StatusCode::OK, &id_body)),
        Delivery::Queued(reservation) => {
            // Committed only once the audit record is durable (see `handle_routed`).
            *reserved = Some(reservation);
            Ok(json_response(StatusCode::OK, &id_body))
        }
        Delivery::RateLimited(limits) => Ok(rate_limited_response(&limits)),
        Delivery::Upstream(response) if (200..300).contains(&response.status) => {
            Ok(json_response(StatusCode::OK, &id_body))
        }
        Delivery::Upstream(response) => {
            let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let detail = if status == StatusCode::TOO_MANY_REQUESTS {
                RATE_LIMITED_DETAIL
            } else {
                "upstream rejected the envelope"
            };
            let mut out = json_response(status, &json!({ "detail": detail }));
            let headers = out.headers_mut();
            if let Some(value) = response
                .retry_after
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert("retry-after", value);
            }
            if let Some(value) = response
                .rate_limits
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert("x-sentry-rate-limits", value);
            }
            Ok(out)
        }
    }
}

/// Takes a token from `project`'s bucket when a per-project rate limit is configured.
fn check_rate(state: &AppState, config: &Config, project: &Project) -> Result<(), IngestError> {
    let limits = &config.file.limits;
    state
        .rate
        .check(
            &project.public_key,
            limits.project_rate_limit_per_sec,
            limits.project_rate_limit_burst,
            Instant::now(),
        )
        .map_err(|retry_after_secs| IngestError::RateLimited { retry_after_secs })
}

const RATE_LIMITED_DETAIL: &str = "Sentry dropped data due to a quota or internal rate limit being reached. This will not affect your application.";

/// 429 for an envelope whose every item is rate limited upstream, with the limits in the
/// SDK's format (integer seconds) so it backs off exactly as it would from Sentry.
fn rate_limited_response(
    limits: &[crate::forward::rate_limits::ActiveLimit],
) -> Response<Full<Bytes>> {
    let mut out = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({ "detail": RATE_LIMITED_DETAIL }),
    );
    let seconds = limits.iter().map(|l| l.seconds).max().unwrap_or(60);
    let entries: Vec<String> = limits.iter().map(|l| l.header_entry()).collect();
    let headers = out.headers_mut();
    headers.insert("retry-after", HeaderValue::from(seconds));
    if let Ok(value) = HeaderValue::from_str(&entries.join(", ")) {
        headers.insert("x-sentry-rate-limits", value);
    }
    out
}

/// Copies what the pipeline did into the audit record and the metrics.
fn record_report(
    state: &AppState,
    guard: &mut AuditGuard,
    report: &crate::pipeline::EnvelopeReport,
    delivery: &Delivery,
    project_id: u64,
) {
    if let Delivery::Upstream(_) = delivery {
        if guard.is_finished() {
            // Sync mode: the record (and these metrics) went out before the send.
            return;
        }
    }
    record_items(state, guard, report, project_id);
    let nothing_forwarded = report.forwarded_items() == 0;
    let (outcome, upstream) = match delivery {
        Delivery::NothingToSend => (Outcome::Dropped, None),
        Delivery::RateLimited(_) => (Outcome::RateLimited, None),
        Delivery::Queued(_) => (
            if nothing_forwarded {
                Outcome::Dropped
            } else {
                Outcome::Forwarded
            },
            Some(UpstreamRecord::Spooled),
        ),
        Delivery::Upstream(response) => {
            let outcome = if !(200..300).contains(&response.status) {
                Outcome::UpstreamError
            } else if nothing_forwarded {
                Outcome::Dropped
            } else {
                Outcome::Forwarded
            };
            (outcome, Some(UpstreamRecord::Status(response.status)))
        }
    };
    guard.set_outcome(outcome);
    if let Some(upstream) = upstream {
        guard.set_upstream(upstream);
    }
}

/// Metrics for every redaction and item decision, and the items part of the audit record.
fn record_items(
    state: &AppState,
    guard: &mut AuditGuard,
    report: &crate::pipeline::EnvelopeReport,
    project_id: u64,
) {
    let metrics = &state.metrics;
    metrics.stage(Stage::Scrub, report.scrub_time);
    metrics.stage(Stage::Decide, report.decide_time);
    for (_, redaction) in report.all_redactions() {
        metrics.redactions(&redaction.rule, u64::from(redaction.count));
    }
    for item in &report.items {
        match item.decision {
            ItemDecision::Forward => metrics.item(item.item_type, "forward", "none"),
            ItemDecision::Drop(reason) => metrics.item(item.item_type, "drop", reason.as_str()),
        }
        if let Some(rule) = &item.rule {
            metrics.drop_rule(rule);
        }
    }
    if let Some(diff) = &report.candidate {
        metrics.candidate(project_id, diff);
        guard.set_candidate(crate::pipeline::audit_candidate(diff));
    }
    guard.set_items(
        &report.header,
        crate::pipeline::audit_items(report),
        report
            .client_report
            .iter()
            .map(|d| crate::audit::DiscardedRecord {
                category: d.category.to_owned(),
                quantity: d.quantity,
            })
            .collect(),
    );
}

/// `reason:count` pairs of dropped items, e.g. `attachment_policy:1,drop_rule:2`: closed
/// names only, safe for logs.
fn drop_summary(report: &crate::pipeline::EnvelopeReport) -> String {
    let mut counts: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for item in &report.items {
        if let ItemDecision::Drop(reason) = item.decision {
            *counts.entry(reason.as_str()).or_default() += 1;
        }
    }
    counts
        .iter()
        .map(|(reason, count)| format!("{reason}:{count}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The SDK's name and version, from the envelope header or `sentry_client`.
fn note_sdk(guard: &mut AuditGuard, envelope: &Envelope, client: &ClientMeta) {
    if let Some(sdk) = envelope.header().get("sdk") {
        if let Some(name) = sdk.get("name").and_then(Value::as_str) {
            guard.set_sdk(name, sdk.get("version").and_then(Value::as_str));
            return;
        }
    }
    if let Some(client) = client.sentry_client.as_deref() {
        let (name, version) = match client.split_once('/') {
            Some((name, version)) => (name, Some(version)),
            None => (client, None),
        };
        guard.set_sdk(name, version);
    }
}

fn upstream_error_kind(error: &IngestError) -> Option<&'static str> {
    matches!(
        error,
        IngestError::UpstreamUnavailable(_) | IngestError::UpstreamTimeout(_)
    )
    .then(|| error.kind())
}

fn result_error_kind(
    result: &Result<Response<Full<Bytes>>, IngestError>,
) -> Option<(&'static str, Outcome)> {
    let error = result.as_ref().err()?;
    let outcome = if upstream_error_kind(error).is_some() {
        Outcome::UpstreamError
    } else if error.status().is_server_error() {
        Outcome::Failed
    } else {
        Outcome::Rejected
    };
    Some((error.kind(), outcome))
}

/// Makes a spooled envelope deliverable once its audit record is written, or removes it
/// from the spool when the answer is not a 2xx (the SDK keeps its copy and retries, so
/// delivering this one too would send the event twice, and without a record).
async fn commit_reservation(
    state: &AppState,
    config: &Config,
    reservation: Reservation,
    response: Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    if !response.status().is_success() {
        drop(reservation);
        return response;
    }
    // Releasing may wait for a group commit (`spool.fsync`): off the async threads.
    let committed = tokio::task::spawn_blocking(move || reservation.commit()).await;
    let error = match committed {
        Ok(Ok(())) => return response,
        Ok(Err(error)) => IngestError::from(crate::pipeline::PipelineError::from(error)),
        Err(_) => IngestError::Internal,
    };
    if !report_storage_failure(
        state,
        config,
        &error,
        "spooled envelope could not be released after its audit record; answering 503 and dropping it",
    ) {
        tracing::error!(
            kind = error.kind(),
            "spooled envelope could not be released; answering 503"
        );
    }
    error_response(&error)
}

/// Counts and logs a spool or audit failure with its part, the configured path and the
/// operating system's cause (never request data); false for any other error.
fn report_storage_failure(
    state: &AppState,
    config: &Config,
    error: &IngestError,
    message: &'static str,
) -> bool {
    let Some((part, cause, io_kind)) = error.storage_cause() else {
        return false;
    };
    state
        .metrics
        .storage_error(part, crate::metrics::storage_error_kind(io_kind));
    let path = match part {
        "spool" => config.file.spool.dir.display().to_string(),
        _ => config.file.audit.path.display().to_string(),
    };
    tracing::error!(kind = error.kind(), part, path, cause, "{message}");
    true
}

/// Writes the request's audit record. If that fails, the answer becomes 503 whatever it
/// was: the SDK retries, and the failure is logged and counted.
async fn finish_audit(
    state: &AppState,
    config: &Config,
    guard: AuditGuard,
    response: Response<Full<Bytes>>,
    error: Option<(&'static str, Outcome)>,
) -> Response<Full<Bytes>> {
    let status = response.status().as_u16();
    let started = Instant::now();
    let (kind, outcome) = match error {
        Some((kind, outcome)) => (Some(kind), Some(outcome)),
        None => (None, None),
    };
    let written = guard.finish(status, outcome, kind).await;
    state.metrics.stage(Stage::Audit, started.elapsed());
    match written {
        Ok(()) => response,
        Err(error) => {
            state.metrics.audit_failure();
            let error = IngestError::AuditUnavailable(error);
            report_storage_failure(
                state,
                config,
                &error,
                "audit record not written; answering 503",
            );
            error_response(&error)
        }
    }
}

fn metrics_response(state: &AppState) -> Response<Full<Bytes>> {
    let delivery = state.pipeline.delivery();
    let (files, bytes) = delivery.spool().usage();
    let metrics = &state.metrics;
    metrics.spool(
        i64::try_from(files).unwrap_or(i64::MAX),
        i64::try_from(bytes).unwrap_or(i64::MAX),
    );
    metrics.inflight_bytes(state.budget.in_use_bytes());
    let text = crate::metrics::with_delivery_counters(metrics.render(), delivery.stats());
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

fn credentials(headers: &HeaderMap, query: Option<&str>) -> Result<Option<AuthPairs>, IngestError> {
    auth::request_credentials(headers, query).map_err(|error| match error {
        auth::CredentialError::Multiple => IngestError::MultipleAuth,
        auth::CredentialError::Bad(error) => IngestError::BadAuth(error),
    })
}

/// The configured project for `key`, checked against the project id in the path.
fn authorize(
    config: &Config,
    key: &str,
    path_project: Option<u64>,
) -> Result<Project, IngestError> {
    let project = config.projects.get(key).ok_or(IngestError::UnknownKey)?;
    if path_project.is_some_and(|pid| pid != project.project_id) {
        return Err(IngestError::ProjectMismatch);
    }
    Ok(project.clone())
}

/// With request credentials, an envelope-header DSN must agree with them (protocol §2).
fn check_header_dsn(
    envelope: &Envelope,
    project: &Project,
    credentials: Option<&AuthPairs>,
) -> Result<(), IngestError> {
    let Some(dsn) = envelope.header().get_str("dsn") else {
        return Ok(());
    };
    let dsn = Dsn::parse(dsn).map_err(IngestError::BadDsn)?;
    if dsn.project_id != project.project_id {
        return Err(IngestError::DsnMismatch(
            "project id header mismatch between envelope and request",
        ));
    }
    if credentials.is_some_and(|c| c.sentry_key != dsn.public_key) {
        return Err(IngestError::DsnMismatch(
            "public key header mismatch between envelope and request",
        ));
    }
    Ok(())
}

/// Authenticates by the envelope header `dsn` (tunnel, or an envelope with no other auth).
/// The DSN must name a configured key and its project exactly; its host is only compared
/// with `server.tunnel_allowed_hosts` and never used to connect anywhere.
fn project_from_dsn(
    config: &Config,
    envelope: &Envelope,
    path_project: Option<u64>,
    tunnel: bool,
) -> Result<Project, IngestError> {
    let raw = envelope.header().get_str("dsn").ok_or(if tunnel {
        IngestError::MissingDsn
    } else {
        IngestError::MissingAuth
    })?;
    let dsn = Dsn::parse(raw).map_err(IngestError::BadDsn)?;
    let allowed = &config.file.server.tunnel_allowed_hosts;
    if !allowed.is_empty() {
        let host_port = dsn.port.map(|port| format!("{}:{port}", dsn.host));
        let ok = allowed.iter().any(|a| {
            a.eq_ignore_ascii_case(&dsn.host) || Some(a.to_ascii_lowercase()) == host_port
        });
        if !ok {
            return Err(IngestError::DsnHostNotAllowed);
        }
    }
    let project = authorize(config, &dsn.public_key, Some(dsn.project_id))?;
    if path_project.is_some_and(|pid| pid != project.project_id) {
        return Err(IngestError::ProjectMismatch);
    }
    Ok(project)
}

fn content_encoding(headers: &HeaderMap) -> Result<ContentEncoding, IngestError> {
    let mut values = headers.get_all(http::header::CONTENT_ENCODING).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(IngestError::UnsupportedEncoding);
    }
    ContentEncoding::from_header(first.map(HeaderValue::as_bytes))
        .map_err(|_| IngestError::UnsupportedEncoding)
}

/// Bytes of body expected when the length is not declared.
const UNKNOWN_LENGTH: u64 = 64 * 1024;
/// Bytes held per inflated byte while scrubbing: the inflated body, the JSON tree over it
/// and the serialised output. Measured: `scrubgate scrub` of a 1 MB PII-dense event peaks
/// 8 MB above the idle process (20.4 vs 12.4 MB maximum RSS, `/usr/bin/time -v`).
const SCRUB_BYTES_PER_BYTE: u64 = 8;
/// Inflated bytes per received byte assumed for a compressed body until it is inflated.
const ASSUMED_COMPRESSION_RATIO: u64 = 4;

/// Leases, before a byte of the body is read, everything the request is expected to hold
/// (its body, the inflated body, scrub buffers), waiting up to `inflight_wait_ms`. This is
/// the only place a request waits for budget: later growth never waits, because a request
/// that waits while holding bytes can deadlock with others doing the same (200 requests
/// each holding their body and waiting for their scrub buffers, measured).
async fn lease_for_body(
    state: &AppState,
    headers: &HeaderMap,
    encoding: ContentEncoding,
) -> Result<Lease, IngestError> {
    let declared = declared_length(headers).unwrap_or(UNKNOWN_LENGTH);
    let expected = expected_hold(declared, encoding != ContentEncoding::Identity);
    let lease = state.budget.lease(expected).await;
    state.metrics.inflight_bytes(state.budget.in_use_bytes());
    lease.map_err(|_| overloaded(state))
}

/// The body length the client declared (`Content-Length`), if any.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// What a request with a `received`-byte body holds at its peak.
fn expected_hold(received: u64, compressed: bool) -> u64 {
    if compressed {
        received.saturating_add(
            received
                .saturating_mul(ASSUMED_COMPRESSION_RATIO)
                .saturating_mul(SCRUB_BYTES_PER_BYTE),
        )
    } else {
        received.saturating_mul(SCRUB_BYTES_PER_BYTE)
    }
}

/// Grows `lease` to what scrubbing `decoded` bytes holds, without waiting.
fn lease_for_scrub(
    state: &AppState,
    lease: &mut Lease,
    received: usize,
    decoded: usize,
    compressed: bool,
) -> Result<(), IngestError> {
    let held = if compressed { received as u64 } else { 0 };
    let want = held.saturating_add((decoded as u64).saturating_mul(SCRUB_BYTES_PER_BYTE));
    let grown = state.budget.try_grow(lease, want);
    state.metrics.inflight_bytes(state.budget.in_use_bytes());
    grown.map_err(|_| overloaded(state))
}

/// Inflates `body` while the inflated bytes fit beside what `lease` already holds: each
/// doubling of the output takes budget first (without waiting: the decoder is synchronous),
/// so a bomb under load is refused with 503 instead of growing memory.
fn decompress_leased(
    state: &AppState,
    lease: &mut Lease,
    body: Bytes,
    encoding: ContentEncoding,
    cap: usize,
) -> Result<Bytes, IngestError> {
    if encoding == ContentEncoding::Identity {
        return decompress(body, encoding, cap).map_err(IngestError::Decompress);
    }
    let received = body.len() as u64;
    let result = decompress_within(body, encoding, cap, &mut |inflated| {
        state
            .budget
            .try_grow(lease, received.saturating_add(inflated as u64))
            .is_ok()
    });
    state.metrics.inflight_bytes(state.budget.in_use_bytes());
    match result {
        Err(DecompressError::OverBudget) => Err(overloaded(state)),
        other => other.map_err(IngestError::Decompress),
    }
}

fn overloaded(state: &AppState) -> IngestError {
    state.metrics.inflight_rejected();
    IngestError::Overloaded
}

async fn read_body<B>(
    state: &AppState,
    config: &Config,
    body: B,
    headers: &HeaderMap,
    lease: &mut Lease,
) -> Result<Bytes, IngestError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let max = config.file.limits.max_body_bytes;
    let declared = declared_length(headers);
    if declared.is_some_and(|len| len > max as u64) {
        return Err(IngestError::BodyTooLarge);
    }
    let timeout = Duration::from_secs(config.file.server.body_read_timeout_secs.max(1));
    let capacity = declared.map_or(0, |len| usize::try_from(len).unwrap_or(0).min(max));
    let collect = async {
        let mut body = std::pin::pin!(Limited::new(body, max));
        let mut buffer = bytes::BytesMut::with_capacity(capacity);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                if error
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    IngestError::BodyTooLarge
                } else {
                    IngestError::BodyRead
                }
            })?;
            if let Ok(data) = frame.into_data() {
                let total = (buffer.len() + data.len()) as u64;
                if total > lease.bytes() {
                    // Undeclared (or understated) length: lease ahead in doubling steps,
                    // without waiting (see `lease_for_body`).
                    let grown = state.budget.try_grow(lease, total.max(lease.bytes() * 2));
                    state.metrics.inflight_bytes(state.budget.in_use_bytes());
                    grown.map_err(|_| overloaded(state))?;
                }
                buffer.extend_from_slice(&data);
            }
        }
        Ok(buffer.freeze())
    };
    tokio::time::timeout(timeout, collect)
        .await
        .map_err(|_| IngestError::BodyTimeout)?
}

/// Wraps a legacy store event into an envelope with one `event` or `transaction` item. The
/// event's own bytes are kept unless an `event_id` had to be added.
fn envelope_from_store_event(event: Bytes) -> Result<Envelope, IngestError> {
    let mut value: Value = serde_json::from_slice(&event).map_err(|_| IngestError::InvalidJson)?;
    let object = value.as_object_mut().ok_or(IngestError::InvalidJson)?;
    let item_type = match object.get("type").and_then(Value::as_str) {
        Some("transaction") => ItemType::Transaction,
        _ => ItemType::Event,
    };
    let existing = object
        .get("event_id")
        .and_then(Value::as_str)
        .and_then(normalize_event_id);
    let (event_id, payload) = match existing {
        Some(id) => (id, event),
        None => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            object.insert("event_id".into(), Value::String(id.clone()));
            let bytes = serde_json::to_vec(&value).map_err(|_| IngestError::InvalidJson)?;
            (id, Bytes::from(bytes))
        }
    };
    let mut header = Map::new();
    header.insert("event_id".into(), Value::String(event_id));
    Ok(Envelope::from_parts(
        header,
        vec![Item::new(item_type, payload)],
    ))
}

/// A UUID as 32 lowercase hex characters, or `None` if it is not one.
fn normalize_event_id(id: &str) -> Option<String> {
    uuid::Uuid::parse_str(id)
        .ok()
        .map(|uuid| uuid.simple().to_string())
}

fn client_meta(headers: &HeaderMap, credentials: Option<&AuthPairs>) -> ClientMeta {
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|ua| ua.starts_with("sentry") || ua.starts_with("raven"))
        .map(str::to_owned);
    ClientMeta {
        sentry_client: credentials.and_then(|c| c.sentry_client.clone()),
        user_agent,
    }
}

fn route(path: &str, tunnel_path: &str) -> Result<Route, IngestError> {
    if path == tunnel_path || path.trim_end_matches('/') == tunnel_path.trim_end_matches('/') {
        return Ok(Route::Tunnel);
    }
    match path {
        "/healthz" => return Ok(Route::Healthz),
        "/readyz" => return Ok(Route::Readyz),
        "/metrics" => return Ok(Route::Metrics),
        _ => {}
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "store"] => Ok(Route::Store(None)),
        ["api", pid, kind @ ("envelope" | "store")] => {
            let pid: u64 = pid.parse().map_err(|_| IngestError::BadProjectPath)?;
            Ok(if *kind == "envelope" {
                Route::Envelope(pid)
            } else {
                Route::Store(Some(pid))
            })
        }
        ["api", pid, rest @ ..] if pid.parse::<u64>().is_ok() => match rest {
            ["minidump"] => Ok(Route::Upload("minidump")),
            ["unreal", _] => Ok(Route::Upload("unreal")),
            ["events", _, "attachments"] => Ok(Route::Upload("attachments")),
            ["security"] | ["csp-report"] => Ok(Route::Upload("security")),
            _ => Err(IngestError::NotFound),
        },
        _ => Err(IngestError::NotFound),
    }
}

/// Folds runs of slashes, as Relay does before routing.
fn normalize_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut previous_slash = false;
    for c in path.chars() {
        if c == '/' && previous_slash {
            continue;
        }
        previous_slash = c == '/';
        out.push(c);
    }
    out
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn empty_response(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn error_response(error: &IngestError) -> Response<Full<Bytes>> {
    let status = error.status();
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        let mut response = empty_response(status);
        response.headers_mut().insert(
            "accept-encoding",
            HeaderValue::from_static(ContentEncoding::ACCEPTED),
        );
        response
    } else {
        let mut response = json_response(status, &json!({ "detail": error.to_string() }));
        if let IngestError::RateLimited { retry_after_secs } = error {
            rate::add_headers(response.headers_mut(), *retry_after_secs);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // The SDK keeps the envelope and retries after this; an overload passes sooner
            // than a broken disk.
            let after = if matches!(error, IngestError::Overloaded) {
                "5"
            } else {
                "60"
            };
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static(after));
        }
        response
    }
}
