//! Per-item size and count caps (protocol §4), the decompression-ratio cap and the JSON depth
//! check. Pure functions of a parsed [`Envelope`] and `[limits]`, so they are cheap to test
//! and to fuzz.
//!
//! Like Relay, a violation refuses the **whole** envelope with 413 rather than dropping the
//! offending item: an SDK that gets a 413 records a `send_error`, whereas a silently dropped
//! item would look delivered. A JSON payload nested deeper than `limits.max_json_depth` is a
//! 400 for the envelope; it is found by a linear byte scan, never by recursion, so a
//! 10,000-deep document cannot overflow a stack.

use crate::config::LimitSettings;
use crate::decode::{Envelope, Item, ItemType};

/// Inflated bodies below this size are never refused by the ratio cap: small, highly
/// repetitive payloads (a session with default values) legitimately compress very well.
pub const RATIO_FLOOR_BYTES: usize = 1024 * 1024;

/// Which cap an envelope broke. Display texts are fixed and name only the item type label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// An item, or all items of one kind together, is larger than allowed.
    #[error("envelope exceeded size limits for type '{0}'")]
    TooLarge(&'static str),
    /// More items of one kind than allowed.
    #[error("envelope exceeded count limits for type '{0}'")]
    TooMany(&'static str),
    /// A JSON payload is nested deeper than `limits.max_json_depth`.
    #[error("JSON nested too deeply")]
    TooDeep,
}

/// The output cap for decompressing a body of `received` bytes: `max_decompressed_bytes`,
/// lowered to `received * max_decompression_ratio` (but never below [`RATIO_FLOOR_BYTES`]).
pub fn decompression_cap(received: usize, limits: &LimitSettings) -> usize {
    let absolute = limits.max_decompressed_bytes;
    if limits.max_decompression_ratio == 0 {
        return absolute;
    }
    let by_ratio = received
        .saturating_mul(limits.max_decompression_ratio)
        .max(RATIO_FLOOR_BYTES);
    absolute.min(by_ratio)
}

/// Checks every per-type cap of `[limits]` against `envelope`.
///
/// # Errors
/// The first cap that is exceeded.
pub fn check_envelope(envelope: &Envelope, limits: &LimitSettings) -> Result<(), LimitError> {
    let mut attachments_bytes = 0usize;
    let mut attachments = 0usize;
    let mut sessions = 0usize;
    let mut standalone_spans = 0usize;
    let mut singles = SingleItems::default();
    for item in envelope.items() {
        let item_type = item.item_type();
        let label = item_type.label();
        let size = item.payload().len();
        if let Some(max) = max_item_bytes(item, limits) {
            if size > max {
                return Err(LimitError::TooLarge(label));
            }
        }
        match item_type {
            ItemType::Attachment => {
                attachments += 1;
                attachments_bytes = attachments_bytes.saturating_add(size);
                if attachments > limits.max_attachment_count {
                    return Err(LimitError::TooMany(label));
                }
                if attachments_bytes > limits.max_attachments_bytes {
                    return Err(LimitError::TooLarge(label));
                }
            }
            ItemType::Session | ItemType::Sessions => {
                sessions += 1;
                if sessions > limits.max_session_count {
                    return Err(LimitError::TooMany(label));
                }
            }
            ItemType::Span if !is_container(item) => {
                standalone_spans += 1;
                if standalone_spans > limits.max_standalone_span_count {
                    return Err(LimitError::TooMany(label));
                }
            }
            _ => {}
        }
        singles.count(item)?;
        if is_json_type(item) && json_too_deep(item.payload(), limits.max_json_depth) {
            return Err(LimitError::TooDeep);
        }
    }
    Ok(())
}

/// Item kinds of which the protocol allows one per envelope (§3.4, §4).
#[derive(Debug, Default)]
struct SingleItems {
    check_in: bool,
    profile: bool,
    replay_recording: bool,
    replay_video: bool,
    log: bool,
    trace_metric: bool,
    span_container: bool,
}

impl SingleItems {
    fn count(&mut self, item: &Item) -> Result<(), LimitError> {
        let slot = match item.item_type() {
            ItemType::CheckIn => &mut self.check_in,
            ItemType::Profile => &mut self.profile,
            ItemType::ReplayRecording => &mut self.replay_recording,
            ItemType::ReplayVideo => &mut self.replay_video,
            ItemType::Log => &mut self.log,
            ItemType::TraceMetric => &mut self.trace_metric,
            ItemType::Span if is_container(item) => &mut self.span_container,
            _ => return Ok(()),
        };
        if std::mem::replace(slot, true) {
            return Err(LimitError::TooMany(item.item_type().label()));
        }
        Ok(())
    }
}

fn max_item_bytes(item: &Item, limits: &LimitSettings) -> Option<usize> {
    use ItemType as T;
    let max = match item.item_type() {
        t if t.is_event_like() => limits.max_event_bytes,
        T::ReplayEvent | T::FormData | T::UserReport => limits.max_event_bytes,
        T::Attachment | T::UnrealReport => limits.max_attachment_bytes,
        T::Session | T::Sessions => limits.max_session_bytes,
        T::ClientReport => limits.max_client_report_bytes,
        T::CheckIn => limits.max_check_in_bytes,
        T::Profile | T::ProfileChunk => limits.max_profile_bytes,
        T::ReplayRecording | T::ReplayVideo => limits.max_replay_bytes,
        T::Log | T::TraceMetric => limits.max_container_bytes,
        T::Span if is_container(item) => limits.max_container_bytes,
        T::Span => limits.max_event_bytes,
        T::MetricBuckets => limits.max_metric_buckets_bytes,
        _ => return None,
    };
    Some(max)
}

fn is_container(item: &Item) -> bool {
    item.content_type()
        .is_some_and(|ct| ct.starts_with("application/vnd.sentry.items."))
        || item.header().contains_key("item_count")
}

/// Item types whose payload is JSON by protocol (§3.4), and so may be walked by the scrubber.
fn is_json_type(item: &Item) -> bool {
    use ItemType as T;
    match item.item_type() {
        T::Attachment
        | T::ReplayRecording
        | T::ReplayVideo
        | T::UnrealReport
        | T::FormData
        | T::Unknown(_) => false,
        T::ProfileChunk => item
            .content_type()
            .is_none_or(|ct| !ct.contains("perfetto")),
        _ => true,
    }
}

/// True when `json` opens more than `max_depth` nested arrays/objects at some point. A linear
/// scan that understands strings and escapes; it does not validate the JSON (the parser does
/// that later), it only guarantees that nothing recursive ever sees a deeper document.
pub fn json_too_deep(json: &[u8], max_depth: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::decode::EnvelopeLimits;

    fn envelope(text: String) -> Envelope {
        Envelope::parse(Bytes::from(text), &EnvelopeLimits::default()).unwrap()
    }

    fn item(item_type: &str, payload: &str) -> String {
        format!(
            "{{\"type\":\"{item_type}\",\"length\":{}}}\n{payload}\n",
            payload.len()
        )
    }

    #[test]
    fn depth_scan_counts_only_structure_outside_strings() {
        assert!(!json_too_deep(b"{\"a\":[1,{\"b\":2}]}", 3));
        assert!(json_too_deep(b"{\"a\":[1,{\"b\":2}]}", 2));
        assert!(!json_too_deep(b"{\"a\":\"[[[[[[{{{{\\\"[[[\"}", 1));
        let deep = "[".repeat(10_000);
        assert!(json_too_deep(deep.as_bytes(), 128));
        assert!(!json_too_deep("]]]]{}".as_bytes(), 1));
    }

    #[test]
    fn event_items_are_capped_by_max_event_bytes() {
        let mut limits = LimitSettings {
            max_event_bytes: 10,
            ..LimitSettings::default()
        };
        let env = envelope(format!("{{}}\n{}", item("event", "{\"a\":\"0123456789\"}")));
        assert_eq!(
            check_envelope(&env, &limits),
            Err(LimitError::TooLarge("event"))
        );
        limits.max_event_bytes = 1024;
        assert_eq!(check_envelope(&env, &limits), Ok(()));
    }

    #[test]
    fn counts_and_totals_per_type() {
        let limits = LimitSettings {
            max_attachment_count: 2,
            max_session_count: 1,
            max_attachments_bytes: 5,
            ..LimitSettings::default()
        };
        let three = envelope(format!("{{}}\n{}", item("attachment", "a").repeat(3)));
        assert_eq!(
            check_envelope(&three, &limits),
            Err(LimitError::TooMany("attachment"))
        );
        let big = envelope(format!(
            "{{}}\n{}{}",
            item("attachment", "abc"),
            item("attachment", "def")
        ));
        assert_eq!(
            check_envelope(&big, &limits),
            Err(LimitError::TooLarge("attachment"))
        );
        let sessions = envelope(format!(
            "{{}}\n{}{}",
            item("session", "{}"),
            item("sessions", "{}")
        ));
        assert_eq!(
            check_envelope(&sessions, &limits),
            Err(LimitError::TooMany("sessions"))
        );
        let two_check_ins = envelope(format!("{{}}\n{}", item("check_in", "{}").repeat(2)));
        assert_eq!(
            check_envelope(&two_check_ins, &LimitSettings::default()),
            Err(LimitError::TooMany("check_in"))
        );
    }

    #[test]
    fn deep_json_items_are_refused_but_attachments_are_not_scanned() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let limits = LimitSettings::default();
        let env = envelope(format!("{{}}\n{}", item("session", &deep)));
        assert_eq!(check_envelope(&env, &limits), Err(LimitError::TooDeep));
        let env = envelope(format!("{{}}\n{}", item("attachment", &deep)));
        assert_eq!(check_envelope(&env, &limits), Ok(()));
    }

    #[test]
    fn ratio_cap_spares_small_bodies() {
        let limits = LimitSettings::default();
        assert_eq!(decompression_cap(10, &limits), RATIO_FLOOR_BYTES);
        assert_eq!(decompression_cap(100_000, &limits), 10_000_000);
        assert_eq!(
            decompression_cap(usize::MAX, &limits),
            limits.max_decompressed_bytes
        );
        let off = LimitSettings {
            max_decompression_ratio: 0,
            ..LimitSettings::default()
        };
        assert_eq!(decompression_cap(10, &off), off.max_decompressed_bytes);
    }
}
