//! Upstream rate limits (protocol §5): parse `X-Sentry-Rate-Limits` / `Retry-After`, remember
//! them per upstream project and category, and answer for envelopes that would only be
//! rejected again.
//!
//! Like Relay, limits are keyed by the destination's public key (one Sentry project key):
//! scopes `organization`, `project` and `key` all collapse onto the key we send with, which
//! is the coarsest scope scrubgate can observe.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::decode::ItemType;

/// Longest limit we honour; a buggy header must not silence a project for days.
const MAX_LIMIT: Duration = Duration::from_secs(3600);
/// `Retry-After` without a usable value (protocol §5: 60 s).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One limit from the header: which categories (empty = all) until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub categories: Vec<String>,
    pub retry_after: Duration,
    /// The reason code, if the upstream gave one (e.g. `quota_exceeded`); passed back as is.
    pub reason: Option<String>,
}

/// Parses `X-Sentry-Rate-Limits`: comma-separated `retry_after:categories:scope:reason:…`,
/// categories `;`-separated, empty meaning every category. Malformed entries are skipped.
pub fn parse_rate_limits(header: &str) -> Vec<Limit> {
    header
        .split(',')
        .filter_map(|entry| {
            let mut fields = entry.trim().split(':');
            let seconds: f64 = fields.next()?.trim().parse().ok()?;
            if !seconds.is_finite() || seconds < 0.0 {
                return None;
            }
            let categories = fields
                .next()
                .unwrap_or("")
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            let _scope = fields.next();
            let reason = fields
                .next()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned);
            Some(Limit {
                categories,
                retry_after: Duration::from_secs_f64(seconds.ceil()).min(MAX_LIMIT),
                reason,
            })
        })
        .collect()
}

/// Parses `Retry-After` as delay-seconds (the only form Sentry sends); anything else means
/// the protocol default of 60 s.
pub fn parse_retry_after(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_RETRY_AFTER, |s| {
            Duration::from_secs_f64(s.ceil()).min(MAX_LIMIT)
        })
}

/// The rate-limit data category an item counts against (Sentry's `DataCategory` names).
/// `None` for items that are never rate limited (client reports).
pub fn category(item_type: &ItemType) -> Option<&'static str> {
    Some(match item_type {
        ItemType::Event | ItemType::Security | ItemType::RawSecurity | ItemType::UnrealReport => {
            "error"
        }
        ItemType::Transaction => "transaction",
        ItemType::Span => "span",
        ItemType::Session | ItemType::Sessions => "session",
        ItemType::Attachment | ItemType::FormData => "attachment",
        ItemType::UserReport => "user_report_v2",
        ItemType::Feedback => "feedback",
        ItemType::CheckIn => "monitor",
        ItemType::Log => "log_item",
        ItemType::ReplayEvent | ItemType::ReplayRecording | ItemType::ReplayVideo => "replay",
        ItemType::Profile => "profile",
        ItemType::ProfileChunk => "profile_chunk",
        ItemType::MetricBuckets => "metric_bucket",
        ItemType::TraceMetric => "trace_metric",
        ItemType::ClientReport => return None,
        _ => "default",
    })
}

/// An active limit as the SDK should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveLimit {
    /// Whole seconds left, at least 1.
    pub seconds: u64,
    pub categories: Vec<String>,
    pub reason: Option<String>,
}

impl ActiveLimit {
    /// One `X-Sentry-Rate-Limits` entry: `seconds:cat;cat:key[:reason]`.
    pub fn header_entry(&self) -> String {
        let mut entry = format!("{}:{}:key", self.seconds, self.categories.join(";"));
        if let Some(reason) = &self.reason {
            entry.push(':');
            entry.push_str(reason);
        }
        entry
    }
}

#[derive(Debug, Default)]
struct ProjectLimits {
    /// `""` is the all-categories limit.
    until: HashMap<String, (Instant, Option<String>)>,
}

/// Limits currently in force, per destination public key.
#[derive(Debug, Default)]
pub struct RateLimits {
    projects: Mutex<HashMap<String, ProjectLimits>>,
}

impl RateLimits {
    /// Records what an upstream answer says. Returns whether anything was recorded.
    pub fn record(
        &self,
        key: &str,
        status: u16,
        retry_after: Option<&str>,
        header: Option<&str>,
    ) -> bool {
        let now = Instant::now();
        let limits = match header {
            Some(header) => parse_rate_limits(header),
            None if status == 429 => vec![Limit {
                categories: Vec::new(),
                retry_after: parse_retry_after(retry_after),
                reason: None,
            }],
            None => Vec::new(),
        };
        if limits.is_empty() {
            return false;
        }
        let Ok(mut projects) = self.projects.lock() else {
            return false;
        };
        let project = projects.entry(key.to_owned()).or_default();
        for limit in limits {
            let until = now + limit.retry_after;
            let names = if limit.categories.is_empty() {
                vec![String::new()]
            } else {
                limit.categories
            };
            for name in names {
                let slot = project.until.entry(name).or_insert((until, None));
                if slot.0 <= until {
                    *slot = (until, limit.reason.clone());
                }
            }
        }
        true
    }

    /// The active limit for `category` under `key`, if any.
    pub fn check(&self, key: &str, category: &str) -> Option<ActiveLimit> {
        let now = Instant::now();
        let mut projects = self.projects.lock().ok()?;
        let project = projects.get_mut(key)?;
        project.until.retain(|_, (until, _)| *until > now);
        let hit = |name: &str| project.until.get(name).cloned();
        let (until, reason, categories) = match (hit(category), hit("")) {
            (Some((a, ra)), Some((b, rb))) => {
                if a >= b {
                    (a, ra, vec![category.to_owned()])
                } else {
                    (b, rb, Vec::new())
                }
            }
            (Some((a, ra)), None) => (a, ra, vec![category.to_owned()]),
            (None, Some((b, rb))) => (b, rb, Vec::new()),
            (None, None) => return None,
        };
        let left = until.saturating_duration_since(now);
        let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(ActiveLimit {
            seconds: seconds.max(1),
            categories,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_header_grammar() {
        let limits = parse_rate_limits(
            "60:error;transaction:organization:quota_exceeded, 2.5::key, bad, -1:x",
        );
        assert_eq!(
            limits,
            vec![
                Limit {
                    categories: vec!["error".into(), "transaction".into()],
                    retry_after: Duration::from_secs(60),
                    reason: Some("quota_exceeded".into()),
                },
                Limit {
                    categories: vec![],
                    retry_after: Duration::from_secs(3),
                    reason: None
                },
            ]
        );
        assert_eq!(parse_retry_after(Some("120")), Duration::from_secs(120));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Duration::from_secs(60)
        );
        assert_eq!(parse_retry_after(None), Duration::from_secs(60));
        assert_eq!(parse_retry_after(Some("999999")), MAX_LIMIT);
    }

    #[test]
    fn limits_apply_per_key_and_category() {
        let limits = RateLimits::default();
        assert!(limits.record(
            "k1",
            429,
            Some("30"),
            Some("60:transaction:key:quota_exceeded")
        ));
        let active = limits.check("k1", "transaction").unwrap();
        assert!(active.seconds > 58 && active.seconds <= 60);
        assert_eq!(
            active.header_entry(),
            format!("{}:transaction:key:quota_exceeded", active.seconds)
        );
        assert_eq!(limits.check("k1", "error"), None);
        assert_eq!(limits.check("k2", "transaction"), None);
        // A bare 429 limits every category.
        assert!(limits.record("k2", 429, Some("10"), None));
        let all = limits.check("k2", "error").unwrap();
        assert!(all.categories.is_empty());
        assert_eq!(all.header_entry(), format!("{}::key", all.seconds));
        // A 200 without the header records nothing.
        assert!(!limits.record("k3", 200, None, None));
    }

    #[test]
    fn categories_match_sentry_names() {
        assert_eq!(category(&ItemType::Event), Some("error"));
        assert_eq!(category(&ItemType::Transaction), Some("transaction"));
        assert_eq!(category(&ItemType::ClientReport), None);
        assert_eq!(category(&ItemType::Log), Some("log_item"));
    }
}
