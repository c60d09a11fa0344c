//! The `client_report` item scrubgate adds when it drops items, so that Sentry's usage stats
//! show the data as discarded instead of silently missing. It holds counts per data category
//! and nothing else: no ids, no rule names, no values.
//!
//! Format (Sentry's client reports):
//! `{"discarded_events": [{"reason", "category", "quantity"}]}`. The optional `timestamp` is
//! left out: Sentry then uses the time it received the report, which is within moments of
//! ours, and scrubbing stays a pure function of its input (golden fixtures need that).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use crate::decode::ItemType;

/// The reason Sentry shows for data a `before_send`-style hook discarded; scrubgate acts as
/// the SDK's hook would.
pub const CLIENT_REPORT_REASON: &str = "before_send";

/// One line of `discarded_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discarded {
    pub reason: &'static str,
    pub category: &'static str,
    pub quantity: u64,
}

/// Sentry's data category for an item type, or `None` for items that are not billed
/// (client reports themselves, unknown types).
pub fn data_category(item_type: &ItemType) -> Option<&'static str> {
    use ItemType as T;
    Some(match item_type {
        T::Event => "error",
        T::Transaction => "transaction",
        T::Attachment => "attachment",
        T::Session | T::Sessions => "session",
        T::UserReport | T::Feedback => "feedback",
        T::CheckIn => "monitor",
        T::Profile => "profile",
        T::ProfileChunk => "profile_chunk",
        T::ReplayEvent | T::ReplayRecording | T::ReplayVideo => "replay",
        T::Span => "span",
        T::Log => "log_item",
        T::TraceMetric => "trace_metric",
        T::MetricBuckets => "metric_bucket",
        T::RawSecurity | T::Security => "security",
        T::UnrealReport => "error",
        T::ClientReport | T::FormData | T::Integration | T::Unknown(_) => return None,
    })
}

/// Sums dropped items per category. Attachments count bytes (Sentry's `attachment`
/// category is in bytes); everything else counts items. One replay is counted once even
/// though it spans a `replay_event` and a `replay_recording`.
pub fn discarded_events<'a>(
    dropped: impl IntoIterator<Item = (&'a ItemType, usize)>,
) -> Vec<Discarded> {
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (item_type, size) in dropped {
        let Some(category) = data_category(item_type) else {
            continue;
        };
        if matches!(item_type, ItemType::ReplayRecording) {
            continue;
        }
        let quantity = if category == "attachment" {
            size as u64
        } else {
            1
        };
        *counts.entry(category).or_default() += quantity;
    }
    counts
        .into_iter()
        .filter(|(_, quantity)| *quantity > 0)
        .map(|(category, quantity)| Discarded {
            reason: CLIENT_REPORT_REASON,
            category,
            quantity,
        })
        .collect()
}

/// The payload of a `client_report` item, or `None` when there is nothing to report.
pub fn client_report_payload(discarded: &[Discarded]) -> Option<Vec<u8>> {
    if discarded.is_empty() {
        return None;
    }
    serde_json::to_vec(&json!({
        "discarded_events": discarded,
    }))
    .ok()
}
