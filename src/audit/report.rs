//! `scrubgate audit report`: what a compliance reviewer signs off on, from the same records
//! `export` reads (files or PostgreSQL): envelopes by outcome over time, redactions by rule
//! and method, drops by reason, projects, the redacted path patterns (never values), the
//! state of every chain, retention, and the policies in force. As JSON, or as one
//! self-contained HTML page ([`html`]) with inline SVG charts and no network requests.
//!
//! Built in one pass over the records with hourly buckets (folded into days for periods longer
//! than three days), so a year of records costs a few thousand buckets, not the records.

mod html;
mod pdf;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::export::ExportFilter;
use super::record::{AuditRecord, Outcome};

pub use html::render_html;
pub use pdf::{html_to_pdf, PdfError};

/// Periods longer than this are charted by day instead of by hour.
const HOURLY_MAX_HOURS: usize = 72;
/// Rows in the "top redacted paths" table.
const TOP_PATHS: usize = 25;

/// Every outcome, in the order charts stack them.
pub const OUTCOMES: [&str; 7] = [
    "forwarded",
    "dropped",
    "rejected",
    "rate_limited",
    "upstream_error",
    "failed",
    "aborted",
];

/// The report, as written by `--format json` and rendered by [`render_html`].
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated: Generated,
    pub period: Period,
    pub totals: Totals,
    pub timeline: Timeline,
    pub redactions_by_rule: Vec<Count>,
    pub redactions_by_method: Vec<Count>,
    pub drops_by_reason: Vec<Count>,
    pub projects: Vec<ProjectRow>,
    pub top_paths: Vec<Count>,
    pub chains: Vec<ChainRow>,
    pub retention: Retention,
    pub policy_hashes: Vec<PolicyRow>,
}

/// How the report was produced.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub by: String,
    pub command: String,
    pub at: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Period {
    pub since: Option<String>,
    pub until: Option<String>,
    pub project: Option<u64>,
    pub first_record: Option<String>,
    pub last_record: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub records: u64,
    pub items: u64,
    pub items_dropped: u64,
    pub redactions: u64,
    pub by_outcome: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// `hour` or `day`.
    pub granularity: &'static str,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Bucket {
    pub start: String,
    pub by_outcome: BTreeMap<String, u64>,
    pub redactions: u64,
    pub redactions_by_method: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectRow {
    pub project_id: Option<u64>,
    pub records: u64,
    pub by_outcome: BTreeMap<String, u64>,
    pub items_dropped: u64,
    pub redactions: u64,
}

/// One chain's verification, as the `verify` command would print it.
#[derive(Debug, Clone, Serialize)]
pub struct ChainRow {
    pub chain: String,
    pub intact: bool,
    pub records: u64,
    pub head: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Retention {
    pub retention_days: Option<u32>,
    pub oldest_record: Option<String>,
    pub dropped: Vec<DroppedPartition>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DroppedPartition {
    pub name: String,
    pub range_start: String,
    pub range_end: String,
    pub dropped_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyRow {
    pub policy_hash: String,
    pub first_seen: String,
    pub last_seen: String,
    pub records: u64,
}

/// Accumulates records into a [`Report`].
#[derive(Debug, Default)]
pub struct ReportBuilder {
    filter: ExportFilter,
    totals: Totals,
    hours: BTreeMap<i64, Bucket>,
    rules: HashMap<String, u64>,
    methods: HashMap<String, u64>,
    reasons: HashMap<String, u64>,
    projects: BTreeMap<Option<u64>, ProjectRow>,
    paths: HashMap<String, u64>,
    policies: HashMap<String, PolicyRow>,
    first: Option<(OffsetDateTime, String)>,
    last: Option<(OffsetDateTime, String)>,
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Forwarded => "forwarded",
        Outcome::Dropped => "dropped",
        Outcome::Rejected => "rejected",
        Outcome::UpstreamError => "upstream_error",
        Outcome::RateLimited => "rate_limited",
        Outcome::Failed => "failed",
        Outcome::Aborted => "aborted",
    }
}

/// A redaction path as a pattern: array indexes become `*`, so the table counts places in
/// the payload's shape, not individual events.
pub(crate) fn indexes_as_stars(path: &str) -> String {
    path.split('.')
        .map(|segment| {
            if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn sorted(map: HashMap<String, u64>) -> Vec<Count> {
    let mut counts: Vec<Count> = map
        .into_iter()
        .map(|(name, count)| Count { name, count })
        .collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    counts
}

fn format_ts(ts: OffsetDateTime) -> String {
    ts.format(&Rfc3339).unwrap_or_default()
}

impl ReportBuilder {
    /// Records outside `filter` are skipped by [`ReportBuilder::add`], so callers can feed
    /// whole files.
    pub fn new(filter: ExportFilter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Counts `record` if the filter accepts it.
    pub fn add(&mut self, record: &AuditRecord) {
        if !self.filter.accepts(record) {
            return;
        }
        let Ok(ts) = OffsetDateTime::parse(&record.ts, &Rfc3339) else {
            return;
        };
        let ts = ts.to_offset(time::UtcOffset::UTC);
        let outcome = outcome_name(record.outcome);
        let totals = &mut self.totals;
        totals.records += 1;
        *totals.by_outcome.entry(outcome.to_owned()).or_default() += 1;
        let hour = ts.unix_timestamp().div_euclid(3600);
        let bucket = self.hours.entry(hour).or_default();
        *bucket.by_outcome.entry(outcome.to_owned()).or_default() += 1;
        let project = self.projects.entry(record.project_id).or_default();
        project.project_id = record.project_id;
        project.records += 1;
        *project.by_outcome.entry(outcome.to_owned()).or_default() += 1;
        let redactions = record
            .header_redactions
            .iter()
            .chain(record.items.iter().flat_map(|item| item.redactions.iter()));
        for redaction in redactions {
            let count = u64::from(redaction.count);
            totals.redactions += count;
            bucket.redactions += count;
            project.redactions += count;
            *bucket
                .redactions_by_method
                .entry(redaction.method.clone())
                .or_default() += count;
            *self.rules.entry(redaction.rule.clone()).or_default() += count;
            *self.methods.entry(redaction.method.clone()).or_default() += count;
            *self
                .paths
                .entry(indexes_as_stars(&redaction.path))
                .or_default() += count;
        }
        for item in &record.items {
            totals.items += 1;
            if item.decision == "drop" {
                totals.items_dropped += 1;
                project.items_dropped += 1;
                let reason = item.reason.clone().unwrap_or_else(|| "unknown".to_owned());
                *self.reasons.entry(reason).or_default() += 1;
            }
        }
        let policy = self
            .policies
            .entry(record.policy_hash.clone())
            .or_insert_with(|| PolicyRow {
                policy_hash: record.policy_hash.clone(),
                first_seen: record.ts.clone(),
                last_seen: record.ts.clone(),
                records: 0,
            });
        policy.records += 1;
        if record.ts < policy.first_seen {
            policy.first_seen.clone_from(&record.ts);
        }
        if record.ts > policy.last_seen {
            policy.last_seen.clone_from(&record.ts);
        }
        if self.first.as_ref().is_none_or(|(first, _)| ts < *first) {
            self.first = Some((ts, record.ts.clone()));
        }
        if self.last.as_ref().is_none_or(|(last, _)| ts > *last) {
            self.last = Some((ts, record.ts.clone()));
        }
    }

    /// The report, with the chains' state and retention as the caller found them.
    pub fn finish(
        self,
        generated: Generated,
        chains: Vec<ChainRow>,
        mut retention: Retention,
    ) -> Report {
        let hourly = match (self.hours.keys().next(), self.hours.keys().next_back()) {
            (Some(first), Some(last)) => {
                usize::try_from(last - first).unwrap_or(usize::MAX) < HOURLY_MAX_HOURS
            }
            _ => true,
        };
        let step = if hourly { 1 } else { 24 };
        let mut folded: BTreeMap<i64, Bucket> = BTreeMap::new();
        for (hour, bucket) in self.hours {
            let key = hour.div_euclid(step) * step;
            let into = folded.entry(key).or_default();
            for (outcome, n) in bucket.by_outcome {
                *into.by_outcome.entry(outcome).or_default() += n;
            }
            into.redactions += bucket.redactions;
            for (method, n) in bucket.redactions_by_method {
                *into.redactions_by_method.entry(method).or_default() += n;
            }
        }
        // Every bucket of the period, empty ones too, so time reads evenly along the axis.
        let mut buckets = Vec::new();
        if let (Some(first), Some(last)) = (
            folded.keys().next().copied(),
            folded.keys().next_back().copied(),
        ) {
            let mut key = first;
            while key <= last {
                let mut bucket = folded.remove(&key).unwrap_or_default();
                bucket.start = OffsetDateTime::from_unix_timestamp(key * 3600)
                    .map(format_ts)
                    .unwrap_or_default();
                buckets.push(bucket);
                key += step;
            }
        }
        let mut policy_hashes: Vec<PolicyRow> = self.policies.into_values().collect();
        policy_hashes.sort_by(|a, b| a.first_seen.cmp(&b.first_seen));
        let mut top_paths = sorted(self.paths);
        top_paths.truncate(TOP_PATHS);
        if retention.oldest_record.is_none() {
            retention.oldest_record = self.first.as_ref().map(|(_, ts)| ts.clone());
        }
        Report {
            generated,
            period: Period {
                since: self.filter.since.map(format_ts),
                until: self.filter.until.map(format_ts),
                project: self.filter.project,
                first_record: self.first.map(|(_, ts)| ts),
                last_record: self.last.map(|(_, ts)| ts),
            },
            totals: self.totals,
            timeline: Timeline {
                granularity: if hourly { "hour" } else { "day" },
                buckets,
            },
            redactions_by_rule: sorted(self.rules),
            redactions_by_method: sorted(self.methods),
            drops_by_reason: sorted(self.reasons),
            projects: self.projects.into_values().collect(),
            top_paths,
            chains,
            retention,
            policy_hashes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ItemRecord, RedactionRecord};

    fn record(ts: &str, outcome: Outcome, project: u64, redactions: u32) -> AuditRecord {
        AuditRecord {
            v: 1,
            ts: ts.to_owned(),
            request_id: "r".into(),
            endpoint: "envelope".into(),
            project_id: Some(project),
            public_key_hmac: None,
            client_ip_hmac: None,
            hash_key_id: "k".into(),
            sdk: None,
            event_id: None,
            policy_hash: "p1".into(),
            status: 200,
            outcome,
            error: None,
            header_redactions: vec![],
            items: vec![ItemRecord {
                item_type: "event".into(),
                size: 1,
                decision: if outcome == Outcome::Dropped {
                    "drop"
                } else {
                    "forward"
                }
                .into(),
                reason: (outcome == Outcome::Dropped).then(|| "drop_rule".into()),
                rule: None,
                redactions: vec![RedactionRecord {
                    path: "exception.values.0.value".into(),
                    rule: "email".into(),
                    method: "mask".into(),
                    count: redactions,
                }],
            }],
            client_report: vec![],
            candidate: None,
            upstream: None,
            prev: String::new(),
        }
    }

    #[test]
    fn counts_buckets_and_patterns() {
        let mut builder = ReportBuilder::new(ExportFilter::default());
        builder.add(&record("2024-01-01T10:05:00Z", Outcome::Forwarded, 1, 2));
        builder.add(&record("2024-01-01T10:55:00Z", Outcome::Dropped, 1, 1));
        builder.add(&record("2024-01-01T13:00:00Z", Outcome::Forwarded, 2, 3));
        let generated = Generated {
            by: "t".into(),
            command: "t".into(),
            at: "t".into(),
            source: "t".into(),
        };
        let report = builder.finish(generated, vec![], Retention::default());
        assert_eq!(report.totals.records, 3);
        assert_eq!(report.totals.redactions, 6);
        assert_eq!(report.timeline.granularity, "hour");
        // 10:00, 11:00 (empty), 12:00 (empty), 13:00.
        assert_eq!(report.timeline.buckets.len(), 4);
        assert_eq!(
            report.timeline.buckets[0].by_outcome.get("forwarded"),
            Some(&1)
        );
        assert_eq!(
            report.timeline.buckets[0].by_outcome.get("dropped"),
            Some(&1)
        );
        assert_eq!(report.timeline.buckets[1].redactions, 0);
        assert_eq!(
            report.top_paths,
            vec![Count {
                name: "exception.values.*.value".into(),
                count: 6
            }]
        );
        assert_eq!(
            report.drops_by_reason,
            vec![Count {
                name: "drop_rule".into(),
                count: 1
            }]
        );
        assert_eq!(report.projects.len(), 2);
        assert_eq!(report.policy_hashes[0].records, 3);
        assert_eq!(
            report.period.first_record.as_deref(),
            Some("2024-01-01T10:05:00Z")
        );
    }
}
