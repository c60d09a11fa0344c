//! The one place where request-time failures become HTTP statuses and bodies. Bodies are
//! fixed texts: they never echo payload content, header values or query strings.

use http::StatusCode;

use crate::decode::{AuthError, DecompressError, DsnError, EnvelopeError, StoreBodyError};
use crate::forward::ForwardError;
use crate::ingest::limits::LimitError;

/// Everything that can go wrong while handling one ingest request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("bad project path parameter")]
    BadProjectPath,
    #[error("missing authorization information")]
    MissingAuth,
    #[error("multiple authorization payloads detected")]
    MultipleAuth,
    #[error("bad authorization: {0}")]
    BadAuth(AuthError),
    #[error("unknown public key")]
    UnknownKey,
    #[error("event submission rejected with_reason: ProjectId")]
    ProjectMismatch,
    #[error("bad envelope authentication header")]
    MissingDsn,
    #[error("invalid DSN in envelope header: {0}")]
    BadDsn(DsnError),
    #[error("DSN not allowed")]
    DsnHostNotAllowed,
    #[error("invalid event envelope: {0}")]
    DsnMismatch(&'static str),
    #[error("unsupported content encoding")]
    UnsupportedEncoding,
    #[error("request content exceeded size limits")]
    BodyTooLarge,
    #[error("request body timed out")]
    BodyTimeout,
    #[error("invalid request body")]
    BodyRead,
    #[error("invalid request body: {0}")]
    Decompress(DecompressError),
    #[error("invalid event envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("invalid request body: {0}")]
    StoreBody(StoreBodyError),
    #[error("invalid JSON data")]
    InvalidJson,
    #[error("{0}")]
    Limit(crate::ingest::limits::LimitError),
    #[error("too many requests for this project; retry later")]
    RateLimited { retry_after_secs: u64 },
    #[error("upstream unavailable")]
    UpstreamUnavailable(#[source] ForwardError),
    #[error("upstream timed out")]
    UpstreamTimeout(#[source] ForwardError),
    #[error("audit_unavailable: the audit trail cannot be written; retry later")]
    AuditUnavailable(#[source] crate::audit::AuditError),
    #[error("spool_unavailable: the spool cannot be written; retry later")]
    SpoolUnavailable(#[source] crate::spool::SpoolError),
    #[error("overloaded: too many bytes in flight; retry later")]
    Overloaded,
    #[error("upload kind not accepted by scrubgate policy")]
    UploadNotAccepted,
    #[error("cannot store the envelope")]
    SinkFailed(#[source] ForwardError),
    #[error("spool is full, retry later")]
    SpoolFull,
    #[error("internal error")]
    Internal,
}

impl IngestError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        use IngestError as E;
        match self {
            E::NotFound => StatusCode::NOT_FOUND,
            E::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            E::MissingAuth | E::MultipleAuth | E::UnknownKey | E::MissingDsn => {
                StatusCode::UNAUTHORIZED
            }
            E::BadAuth(AuthError::UnsupportedVersion(_)) => StatusCode::BAD_REQUEST,
            E::BadAuth(_) => StatusCode::UNAUTHORIZED,
            E::ProjectMismatch | E::DsnHostNotAllowed => StatusCode::FORBIDDEN,
            E::BadProjectPath
            | E::BadDsn(_)
            | E::DsnMismatch(_)
            | E::BodyRead
            | E::Envelope(_)
            | E::StoreBody(StoreBodyError::Base64 | StoreBodyError::Zlib | StoreBodyError::Empty)
            | E::InvalidJson
            | E::Decompress(DecompressError::Corrupt { .. }) => StatusCode::BAD_REQUEST,
            E::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            E::BodyTooLarge
            | E::Decompress(DecompressError::TooLarge { .. })
            | E::StoreBody(StoreBodyError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            E::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            E::Decompress(DecompressError::OverBudget) => StatusCode::SERVICE_UNAVAILABLE,
            E::Limit(LimitError::TooDeep) => StatusCode::BAD_REQUEST,
            E::Limit(_) => StatusCode::PAYLOAD_TOO_LARGE,
            E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            E::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            E::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            E::SinkFailed(_)
            | E::SpoolFull
            | E::Internal
            | E::AuditUnavailable(_)
            | E::SpoolUnavailable(_)
            | E::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            E::UploadNotAccepted => StatusCode::FORBIDDEN,
        }
    }

    /// A stable, low-cardinality name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        use IngestError as E;
        match self {
            E::NotFound => "not_found",
            E::MethodNotAllowed => "method_not_allowed",
            E::BadProjectPath => "bad_project_path",
            E::MissingAuth => "missing_auth",
            E::MultipleAuth => "multiple_auth",
            E::BadAuth(_) => "bad_auth",
            E::UnknownKey => "unknown_key",
            E::ProjectMismatch => "project_mismatch",
            E::MissingDsn => "missing_dsn",
            E::BadDsn(_) => "bad_dsn",
            E::DsnHostNotAllowed => "dsn_host_not_allowed",
            E::DsnMismatch(_) => "dsn_mismatch",
            E::UnsupportedEncoding => "unsupported_encoding",
            E::BodyTooLarge => "body_too_large",
            E::BodyTimeout => "body_timeout",
            E::BodyRead => "body_read",
            E::Decompress(DecompressError::TooLarge { .. }) => "decompressed_too_large",
            E::Decompress(_) => "bad_compression",
            E::Envelope(_) => "invalid_envelope",
            E::StoreBody(_) => "invalid_store_body",
            E::InvalidJson => "invalid_json",
            E::Limit(LimitError::TooDeep) => "json_too_deep",
            E::Limit(_) => "item_limit_exceeded",
            E::RateLimited { .. } => "rate_limited",
            E::UpstreamUnavailable(_) => "upstream_unavailable",
            E::UpstreamTimeout(_) => "upstream_timeout",
            E::SinkFailed(_) => "sink_failed",
            E::AuditUnavailable(_) => "audit_unavailable",
            E::SpoolUnavailable(_) => "spool_unavailable",
            E::Overloaded => "overloaded",
            E::UploadNotAccepted => "upload_not_accepted",
            E::SpoolFull => "spool_full",
            E::Internal => "internal",
        }
    }
}

impl From<ForwardError> for IngestError {
    fn from(error: ForwardError) -> Self {
        match error {
            ForwardError::Timeout(_) => Self::UpstreamTimeout(error),
            ForwardError::File(_) | ForwardError::Setup(_) => Self::SinkFailed(error),
            ForwardError::Connect(_) | ForwardError::Request(_) => Self::UpstreamUnavailable(error),
        }
    }
}

impl From<crate::pipeline::PipelineError> for IngestError {
    fn from(error: crate::pipeline::PipelineError) -> Self {
        match error {
            crate::pipeline::PipelineError::Forward(error) => error.into(),
            crate::pipeline::PipelineError::Accept(crate::delivery::AcceptError::SpoolFull) => {
                Self::SpoolFull
            }
            crate::pipeline::PipelineError::Accept(crate::delivery::AcceptError::Spool(error)) => {
                Self::SpoolUnavailable(error)
            }
            crate::pipeline::PipelineError::ScrubTask => Self::Internal,
        }
    }
}

impl IngestError {
    /// The operating system's account of a storage failure (`/spool/seg-…: No space left on
    /// device`), for the log line; `None` for every other error. Never holds request data:
    /// only our own paths and OS messages.
    pub fn storage_cause(&self) -> Option<(&'static str, String, std::io::ErrorKind)> {
        match self {
            Self::AuditUnavailable(error) => Some((
                "audit",
                error.to_string(),
                error.io_kind().unwrap_or(std::io::ErrorKind::Other),
            )),
            Self::SpoolUnavailable(crate::spool::SpoolError::Io(error)) => {
                Some(("spool", error.to_string(), error.kind()))
            }
            Self::SpoolUnavailable(error) => {
                Some(("spool", error.to_string(), std::io::ErrorKind::InvalidData))
            }
            _ => None,
        }
    }
}
