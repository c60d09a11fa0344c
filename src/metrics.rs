//! One catalogue of every metric scrubgate exports, in Prometheus text format at
//! `GET /metrics`.
//!
//! Label values come only from closed sets: our own enums and `&'static str` labels
//! (endpoint, item type, decision, reason, stage), HTTP status codes, and rule names that the
//! operator configured or that are built in. Nothing from a payload, header or query ever
//! becomes a label; rule names are additionally squeezed to a safe charset and capped in
//! number, so even a misbehaving rule engine cannot blow up cardinality.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Distinct rule label values kept before further names are folded into `other`.
const MAX_RULE_LABELS: usize = 256;

/// A pipeline stage with its own latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Decode,
    Scrub,
    Decide,
    Forward,
    Audit,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Scrub => "scrub",
            Self::Decide => "decide",
            Self::Forward => "forward",
            Self::Audit => "audit",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvelopeLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    item_type: &'static str,
    decision: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectLabels {
    project_id: u64,
}

/// `change` is `added` or `removed`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CandidateLabels {
    project_id: u64,
    rule: String,
    change: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

/// A spool segment file name (`seg-<sequence>.log`, ours, never from a payload).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    file: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    part: &'static str,
    kind: &'static str,
}

/// A closed, metric-safe name for an I/O error kind (a label never carries an OS message).
pub fn storage_error_kind(kind: std::io::ErrorKind) -> &'static str {
    use std::io::ErrorKind as K;
    match kind {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => "no_space",
        K::PermissionDenied => "permission_denied",
        K::ReadOnlyFilesystem => "read_only",
        K::NotFound => "not_found",
        K::Other => "other",
        _ => "io",
    }
}

/// Every metric. Cheap to share (`Arc`); recording is lock-free except for the first use of
/// a label set.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    envelopes: Family<EnvelopeLabels, Counter>,
    items: Family<ItemLabels, Counter>,
    drop_rules: Family<RuleLabels, Counter>,
    redactions: Family<RuleLabels, Counter>,
    candidate_envelopes: Family<ProjectLabels, Counter>,
    candidate_redactions: Family<CandidateLabels, Counter>,
    upstream: Family<StatusLabels, Counter>,
    upstream_errors: Family<ResultLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
    audit_failures: Counter,
    storage_errors: Family<StorageLabels, Counter>,
    inflight_bytes: Gauge,
    inflight_rejected: Counter,
    spool_depth: Gauge,
    spool_bytes: Gauge,
    spool_lost: Counter,
    spool_unconfirmed: Counter,
    spool_quarantined: Family<FileLabels, Gauge>,
    stages: Family<StageLabels, Histogram>,
    audit_shipped: Counter,
    audit_ship_errors: Family<ResultLabels, Counter>,
    audit_ship_lag_bytes: Gauge,
    audit_ship_lag_seconds: Gauge,
    known_rules: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Metrics ===

impl Metrics {
    /// Builds and registers the catalogue.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("scrubgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by endpoint and the HTTP status answered",
            requests.clone(),
        );
        let envelopes = Family::<EnvelopeLabels, Counter>::default();
        registry.register(
            "envelopes",
            "Envelopes by endpoint and outcome (forwarded, dropped, rejected, upstream_error, failed, aborted)",
            envelopes.clone(),
        );
        let items = Family::<ItemLabels, Counter>::default();
        registry.register(
            "items",
            "Envelope items by type, decision and drop reason",
            items.clone(),
        );
        let drop_rules = Family::<RuleLabels, Counter>::default();
        registry.register(
            "drop_rule_matches",
            "Items dropped by each configured [[policy.drop]] rule",
            drop_rules.clone(),
        );
        let redactions = Family::<RuleLabels, Counter>::default();
        registry.register(
            "redactions",
            "Redacted values by scrub rule",
            redactions.clone(),
        );
        let candidate_envelopes = Family::<ProjectLabels, Counter>::default();
        registry.register(
            "candidate_envelopes",
            "Envelopes also scrubbed by their project's candidate rules (sampled)",
            candidate_envelopes.clone(),
        );
        let candidate_redactions = Family::<CandidateLabels, Counter>::default();
        registry.register(
            "candidate_redactions",
            "Redactions the candidate rules would add or remove, by project and rule",
            candidate_redactions.clone(),
        );
        let upstream = Family::<StatusLabels, Counter>::default();
        registry.register(
            "upstream_responses",
            "Upstream answers by HTTP status",
            upstream.clone(),
        );
        let upstream_errors = Family::<ResultLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream requests that got no answer, by error kind",
            upstream_errors.clone(),
        );
        let config_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads by result (ok, error)",
            config_reloads.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_failures",
            "Audit records that could not be written (each answered 503)",
            audit_failures.clone(),
        );
        let storage_errors = Family::<StorageLabels, Counter>::default();
        registry.register(
            "storage_errors",
            "Failed writes to the spool or the audit trail, by part and error kind (no_space, \
             permission_denied, read_only, io, other)",
            storage_errors.clone(),
        );
        let inflight_bytes = Gauge::default();
        registry.register(
            "inflight_bytes",
            "Bytes of request bodies, inflated bodies and scrub buffers held now \
             (capped by limits.max_inflight_bytes)",
            inflight_bytes.clone(),
        );
        let inflight_rejected = Counter::default();
        registry.register(
            "inflight_rejected",
            "Requests answered 503 because the in-flight byte budget stayed exhausted",
            inflight_rejected.clone(),
        );
        let spool_depth = Gauge::default();
        registry.register(
            "spool_envelopes",
            "Envelopes waiting in the spool",
            spool_depth.clone(),
        );
        let spool_bytes = Gauge::default();
        registry.register(
            "spool_bytes",
            "Bytes of spool segment files on disk (what spool.max_bytes caps)",
            spool_bytes.clone(),
        );
        let spool_lost = Counter::default();
        registry.register(
            "spool_lost_envelopes",
            "Spooled envelopes lost to damaged segment files, found at start",
            spool_lost.clone(),
        );
        let spool_unconfirmed = Counter::default();
        registry.register(
            "spool_unconfirmed",
            "Held envelopes found at start (never acknowledged), dropped",
            spool_unconfirmed.clone(),
        );
        let spool_quarantined = Family::<FileLabels, Gauge>::default();
        registry.register(
            "spool_quarantined_lost_envelopes",
            "Envelopes lost in each damaged segment file moved to <spool.dir>/quarantine/ at start",
            spool_quarantined.clone(),
        );
        let stages = Family::<StageLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0001, 2.5, 14))) as fn() -> Histogram,
        );
        registry.register(
            "stage_duration_seconds",
            "Time spent per pipeline stage (decode, scrub, decide, forward, audit)",
            stages.clone(),
        );
        let audit_shipped = Counter::default();
        registry.register(
            "audit_shipped_records",
            "Audit records inserted into PostgreSQL by the shipper (new rows only)",
            audit_shipped.clone(),
        );
        let audit_ship_errors = Family::<ResultLabels, Counter>::default();
        registry.register(
            "audit_ship_errors",
            "Failed shipping attempts to PostgreSQL, by kind (connect, insert, trail, chain); \
             retried, ingestion goes on",
            audit_ship_errors.clone(),
        );
        let audit_ship_lag_bytes = Gauge::default();
        registry.register(
            "audit_ship_lag_bytes",
            "Bytes of the local audit trail not yet in PostgreSQL",
            audit_ship_lag_bytes.clone(),
        );
        let audit_ship_lag_seconds = Gauge::default();
        registry.register(
            "audit_ship_lag_seconds",
            "Age of the oldest audit record not yet in PostgreSQL (0 when caught up)",
            audit_ship_lag_seconds.clone(),
        );
        Self {
            registry,
            requests,
            envelopes,
            items,
            drop_rules,
            redactions,
            candidate_envelopes,
            candidate_redactions,
            upstream,
            upstream_errors,
            config_reloads,
            audit_failures,
            storage_errors,
            inflight_bytes,
            inflight_rejected,
            spool_depth,
            spool_bytes,
            spool_lost,
            spool_unconfirmed,
            spool_quarantined,
            stages,
            audit_shipped,
            audit_ship_errors,
            audit_ship_lag_bytes,
            audit_ship_lag_seconds,
            known_rules: Mutex::new(HashSet::new()),
        }
    }

    pub fn request(&self, endpoint: &'static str, status: u16) {
        let status = if (100..600).contains(&status) {
            status
        } else {
            0
        };
        self.requests
            .get_or_create(&RequestLabels { endpoint, status })
            .inc();
    }

    pub fn envelope(&self, endpoint: &'static str, outcome: &'static str) {
        self.envelopes
            .get_or_create(&EnvelopeLabels { endpoint, outcome })
            .inc();
    }

    /// One item; `reason` is `none` for forwarded items.
    pub fn item(&self, item_type: &'static str, decision: &'static str, reason: &'static str) {
        self.items
            .get_or_create(&ItemLabels {
                item_type,
                decision,
                reason,
            })
            .inc();
    }

    /// A `[[policy.drop]]` rule (a configured name) dropped an item.
    pub fn drop_rule(&self, rule: &str) {
        let rule = self.rule_label(rule);
        self.drop_rules.get_or_create(&RuleLabels { rule }).inc();
    }

    /// `count` values redacted by scrub rule `rule`.
    pub fn redactions(&self, rule: &str, count: u64) {
        let rule = self.rule_label(rule);
        self.redactions
            .get_or_create(&RuleLabels { rule })
            .inc_by(count);
    }

    /// One envelope of `project_id` scrubbed by its candidate as well, and what the candidate
    /// would have changed. Rules only: a path could spell a payload key.
    pub fn candidate(&self, project_id: u64, diff: &crate::pipeline::candidate::CandidateDiff) {
        self.candidate_envelopes
            .get_or_create(&ProjectLabels { project_id })
            .inc();
        for (change, changes) in [("added", &diff.added), ("removed", &diff.removed)] {
            for item in changes {
                let rule = self.rule_label(&item.rule);
                self.candidate_redactions
                    .get_or_create(&CandidateLabels {
                        project_id,
                        rule,
                        change,
                    })
                    .inc_by(item.count);
            }
        }
    }

    pub fn upstream_response(&self, status: u16) {
        let status = if (100..600).contains(&status) {
            status
        } else {
            0
        };
        self.upstream.get_or_create(&StatusLabels { status }).inc();
    }

    /// The upstream did not answer; `kind` is a stable error kind.
    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&ResultLabels { result: kind })
            .inc();
    }

    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn audit_failure(&self) {
        self.audit_failures.inc();
    }

    /// A failed spool or audit write; `kind` comes from [`storage_error_kind`].
    pub fn storage_error(&self, part: &'static str, kind: &'static str) {
        self.storage_errors
            .get_or_create(&StorageLabels { part, kind })
            .inc();
    }

    /// The in-flight byte budget now in use.
    pub fn inflight_bytes(&self, bytes: u64) {
        self.inflight_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn inflight_rejected(&self) {
        self.inflight_rejected.inc();
    }

    pub fn spool(&self, envelopes: i64, bytes: i64) {
        self.spool_depth.set(envelopes);
        self.spool_bytes.set(bytes);
    }

    /// What the spool's start-up recovery found (`Spool::recovered()`): envelopes lost to
    /// damage, unconfirmed held envelopes dropped, and each quarantined file with its loss.
    pub fn spool_recovery(&self, lost: u64, unconfirmed: u64, quarantined: &[(String, usize)]) {
        self.spool_lost.inc_by(lost);
        self.spool_unconfirmed.inc_by(unconfirmed);
        for (file, lost) in quarantined {
            self.spool_quarantined
                .get_or_create(&FileLabels { file: file.clone() })
                .set(i64::try_from(*lost).unwrap_or(i64::MAX));
        }
    }

    pub fn stage(&self, stage: Stage, elapsed: Duration) {
        self.stages
            .get_or_create(&StageLabels {
                stage: stage.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// `count` new rows inserted into PostgreSQL by the audit shipper.
    pub fn audit_shipped(&self, count: u64) {
        self.audit_shipped.inc_by(count);
    }

    /// A failed shipping attempt; `kind` is one of a closed set (connect, insert, trail, chain).
    pub fn audit_ship_error(&self, kind: &'static str) {
        self.audit_ship_errors
            .get_or_create(&ResultLabels { result: kind })
            .inc();
    }

    /// The shipper's lag, in bytes of the local trail and in seconds of record age.
    pub fn audit_ship_lag(&self, bytes: u64, seconds: u64) {
        self.audit_ship_lag_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.audit_ship_lag_seconds
            .set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    /// The Prometheus/OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Rule names are config- or engine-defined, but are still squeezed to a safe shape and
    /// capped in number before they become label values.
    fn rule_label(&self, rule: &str) -> String {
        let safe = !rule.is_empty()
            && rule.len() <= 64
            && rule
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !safe {
            return "other".to_owned();
        }
        let Ok(mut known) = self.known_rules.lock() else {
            return "other".to_owned();
        };
        if known.contains(rule) {
            return rule.to_owned();
        }
        if known.len() >= MAX_RULE_LABELS {
            return "other".to_owned();
        }
        known.insert(rule.to_owned());
        rule.to_owned()
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Appends the delivery workers' counters (kept as atomics next to the queue, where they are
/// cheapest to bump) to a rendered exposition, before the OpenMetrics `# EOF` line.
pub fn with_delivery_counters(rendered: String, stats: &crate::delivery::DeliveryStats) -> String {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let (body, eof) = match rendered.strip_suffix("# EOF\n") {
        Some(body) => (body.to_owned(), "# EOF\n"),
        None => (rendered, ""),
    };
    let mut out = body;
    out.push_str("# HELP scrubgate_delivery Envelopes by asynchronous delivery outcome.\n");
    out.push_str("# TYPE scrubgate_delivery counter\n");
    for (outcome, value) in [
        ("accepted", &stats.accepted),
        ("delivered", &stats.delivered),
        ("retried", &stats.retries),
        ("parked", &stats.parked),
        ("rejected", &stats.rejected),
        ("rate_limited_dropped", &stats.rate_limited_dropped),
        ("expired", &stats.expired),
        ("replayed", &stats.replayed),
        ("abandoned", &stats.abandoned),
    ] {
        let _ = writeln!(
            out,
            "scrubgate_delivery_total{{outcome=\"{outcome}\"}} {}",
            value.load(Relaxed)
        );
    }
    // Per destination, labelled by the upstream project id (from the config; never a URL).
    let destinations = stats
        .destinations
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    out.push_str("# HELP scrubgate_delivery_breaker_open 1 while a destination's circuit breaker is open or probing.\n");
    out.push_str("# TYPE scrubgate_delivery_breaker_open gauge\n");
    for gauge in &destinations {
        let _ = writeln!(
            out,
            "scrubgate_delivery_breaker_open{{project_id=\"{}\"}} {}",
            gauge.project_id, gauge.breaker_open
        );
    }
    out.push_str(
        "# HELP scrubgate_delivery_pending Envelopes waiting or in flight per destination.\n",
    );
    out.push_str("# TYPE scrubgate_delivery_pending gauge\n");
    for gauge in &destinations {
        let _ = writeln!(
            out,
            "scrubgate_delivery_pending{{project_id=\"{}\"}} {}",
            gauge.project_id, gauge.pending
        );
    }
    out.push_str(
        "# HELP scrubgate_delivery_breaker_openings Breaker openings (failed probes included).\n",
    );
    out.push_str("# TYPE scrubgate_delivery_breaker_openings counter\n");
    let _ = writeln!(
        out,
        "scrubgate_delivery_breaker_openings_total {}",
        stats.breaker_opened.load(Relaxed)
    );
    out.push_str("# HELP scrubgate_delivery_unroutable Spooled envelopes of projects no longer configured.\n");
    out.push_str("# TYPE scrubgate_delivery_unroutable gauge\n");
    let _ = writeln!(
        out,
        "scrubgate_delivery_unroutable {}",
        stats.unroutable.load(Relaxed)
    );
    out.push_str(eof);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_closed_labels() {
        let m = Metrics::new();
        m.request("envelope", 200);
        m.request("store", 999);
        m.envelope("envelope", "forwarded");
        m.item("attachment", "drop", "attachment_policy");
        m.drop_rule("no-ssn");
        m.redactions("email", 3);
        m.upstream_response(429);
        m.upstream_error("upstream_timeout");
        m.config_reload(true);
        m.audit_failure();
        m.spool(2, 2048);
        m.spool_recovery(3, 2, &[("seg-00000000000000000007.log".into(), 3)]);
        m.stage(Stage::Scrub, Duration::from_micros(250));
        let text = m.render();
        for needle in [
            "scrubgate_requests_total{endpoint=\"envelope\",status=\"200\"} 1",
            "scrubgate_requests_total{endpoint=\"store\",status=\"0\"} 1",
            "scrubgate_envelopes_total{endpoint=\"envelope\",outcome=\"forwarded\"} 1",
            "scrubgate_items_total{item_type=\"attachment\",decision=\"drop\",reason=\"attachment_policy\"} 1",
            "scrubgate_drop_rule_matches_total{rule=\"no-ssn\"} 1",
            "scrubgate_redactions_total{rule=\"email\"} 3",
            "scrubgate_upstream_responses_total{status=\"429\"} 1",
            "scrubgate_audit_failures_total 1",
            "scrubgate_spool_bytes 2048",
            "scrubgate_spool_lost_envelopes_total 3",
            "scrubgate_spool_unconfirmed_total 2",
            "scrubgate_spool_quarantined_lost_envelopes{file=\"seg-00000000000000000007.log\"} 3",
            "scrubgate_stage_duration_seconds_count{stage=\"scrub\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn odd_rule_names_fold_into_other_and_cardinality_is_capped() {
        let m = Metrics::new();
        m.redactions("alice@example.com", 1);
        m.redactions("has space", 1);
        for i in 0..(MAX_RULE_LABELS + 10) {
            m.redactions(&format!("r{i}"), 1);
        }
        let text = m.render();
        assert!(!text.contains("alice"));
        assert!(text.contains("rule=\"other\"} 12"), "{text}");
    }
}
