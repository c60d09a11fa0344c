//! The closed set of envelope item types we know, plus a catch-all that keeps the raw name so
//! policy can decide (and audit) what to do with types we have never seen.

use std::fmt;

/// An envelope item's `type`. Unknown names are kept verbatim in [`ItemType::Unknown`] so an
/// audit record can say what was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemType {
    Event,
    Transaction,
    Attachment,
    Session,
    Sessions,
    UserReport,
    Feedback,
    ClientReport,
    CheckIn,
    Profile,
    ProfileChunk,
    ReplayEvent,
    ReplayRecording,
    ReplayVideo,
    Span,
    Log,
    TraceMetric,
    MetricBuckets,
    RawSecurity,
    Security,
    UnrealReport,
    FormData,
    /// Relay-internal; a client sending it is rejected (protocol §3.1).
    Integration,
    Unknown(String),
}

impl ItemType {
    /// Parses the `type` header value. Never fails: unknown names become [`ItemType::Unknown`].
    pub fn parse(name: &str) -> Self {
        match name {
            "event" => Self::Event,
            "transaction" => Self::Transaction,
            "attachment" => Self::Attachment,
            "session" => Self::Session,
            "sessions" => Self::Sessions,
            "user_report" => Self::UserReport,
            "feedback" => Self::Feedback,
            "client_report" => Self::ClientReport,
            "check_in" => Self::CheckIn,
            "profile" => Self::Profile,
            "profile_chunk" | "profile_chunk_ui" => Self::ProfileChunk,
            "replay_event" => Self::ReplayEvent,
            "replay_recording" => Self::ReplayRecording,
            "replay_video" => Self::ReplayVideo,
            "span" => Self::Span,
            "log" => Self::Log,
            "trace_metric" => Self::TraceMetric,
            "metric_buckets" => Self::MetricBuckets,
            "raw_security" => Self::RawSecurity,
            "security" => Self::Security,
            "unreal_report" => Self::UnrealReport,
            "form_data" => Self::FormData,
            "integration" => Self::Integration,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// The wire name. For unknown types this is the name the client sent, so callers that
    /// put it into metrics labels must map unknown types to a fixed label instead.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Event => "event",
            Self::Transaction => "transaction",
            Self::Attachment => "attachment",
            Self::Session => "session",
            Self::Sessions => "sessions",
            Self::UserReport => "user_report",
            Self::Feedback => "feedback",
            Self::ClientReport => "client_report",
            Self::CheckIn => "check_in",
            Self::Profile => "profile",
            Self::ProfileChunk => "profile_chunk",
            Self::ReplayEvent => "replay_event",
            Self::ReplayRecording => "replay_recording",
            Self::ReplayVideo => "replay_video",
            Self::Span => "span",
            Self::Log => "log",
            Self::TraceMetric => "trace_metric",
            Self::MetricBuckets => "metric_buckets",
            Self::RawSecurity => "raw_security",
            Self::Security => "security",
            Self::UnrealReport => "unreal_report",
            Self::FormData => "form_data",
            Self::Integration => "integration",
            Self::Unknown(name) => name,
        }
    }

    /// A label safe for metrics and logs: the wire name for known types, `unknown` otherwise.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unknown(_) => "unknown",
            known => known.static_name(),
        }
    }

    fn static_name(&self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Transaction => "transaction",
            Self::Attachment => "attachment",
            Self::Session => "session",
            Self::Sessions => "sessions",
            Self::UserReport => "user_report",
            Self::Feedback => "feedback",
            Self::ClientReport => "client_report",
            Self::CheckIn => "check_in",
            Self::Profile => "profile",
            Self::ProfileChunk => "profile_chunk",
            Self::ReplayEvent => "replay_event",
            Self::ReplayRecording => "replay_recording",
            Self::ReplayVideo => "replay_video",
            Self::Span => "span",
            Self::Log => "log",
            Self::TraceMetric => "trace_metric",
            Self::MetricBuckets => "metric_buckets",
            Self::RawSecurity => "raw_security",
            Self::Security => "security",
            Self::UnrealReport => "unreal_report",
            Self::FormData => "form_data",
            Self::Integration => "integration",
            Self::Unknown(_) => "unknown",
        }
    }

    /// Items that create an event in Sentry; the protocol allows at most one per envelope.
    pub fn is_event_like(&self) -> bool {
        matches!(
            self,
            Self::Event | Self::Transaction | Self::Feedback | Self::RawSecurity | Self::Security
        )
    }
}

impl fmt::Display for ItemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}
