//! One envelope's way through scrubgate, top-down: scrub and decide every item
//! ([`scrub_envelope`], pure), then forward what is left ([`Pipeline::process`]).
//!
//! No hyper types here: `ingest` turns HTTP into an [`Envelope`] and a [`Project`], and turns
//! a [`Processed`] or [`PipelineError`] back into HTTP.

pub mod candidate;
mod payloads;
mod scrub_pool;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::config::{Config, Project};
use crate::decide::{DropReason, ItemAction, ItemFacts, ItemMeta, Policy, RuleInput};
use crate::decode::{Envelope, Item, ItemType};
use crate::delivery::{AcceptError, DeliveryMode, DeliveryService, Reservation};
use crate::forward::rate_limits::{self, ActiveLimit, RateLimits};
use crate::forward::{self, ClientMeta, ForwardError, Forwarder, UpstreamResponse};
use crate::scrub::{EchoSet, Method, PayloadKind, ScrubReport, Scrubber};

use crate::spool::SpoolMeta;
use payloads::Pass;

/// Envelope header keys through which a client (or a Relay) tells Sentry the end user's IP
/// and user agent (protocol §6). They never leave scrubgate.
const CLIENT_META_HEADER_KEYS: &[&str] = &[
    "forwarded_for",
    "remote_addr",
    "user_agent",
    "client_hints",
    "origin",
    "client",
];

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemOutcome {
    /// Metric-safe item type label.
    pub item_type: &'static str,
    /// Payload size as received.
    pub size: usize,
    pub decision: ItemDecision,
    /// The `[[policy.drop]]` rule that dropped the item (reason `drop_rule`).
    pub rule: Option<Arc<str>>,
    pub report: ScrubReport,
}

/// Forward or drop, per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemDecision {
    Forward,
    Drop(DropReason),
}

/// What scrubbing did to a whole envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvelopeReport {
    /// Redactions in the envelope header (client IP meta, trace user ids, …).
    pub header: ScrubReport,
    pub items: Vec<ItemOutcome>,
    /// What the added `client_report` item counted (empty when none was added).
    pub client_report: Vec<crate::decide::Discarded>,
    /// Time spent scrubbing items and deciding on them (rules, cascades, client report).
    pub scrub_time: std::time::Duration,
    pub decide_time: std::time::Duration,
    /// Values redacted but not echoed through the envelope because its echo set was full
    /// (a count, never the values).
    pub echo_not_echoed: u64,
    /// What the project's candidate rules would have done differently, when this envelope
    /// was sampled for them.
    pub candidate: Option<candidate::CandidateDiff>,
}

impl EnvelopeReport {
    pub fn forwarded_items(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.decision == ItemDecision::Forward)
            .count()
    }

    pub fn dropped_items(&self) -> usize {
        self.items.len() - self.forwarded_items()
    }

    pub fn redactions(&self) -> u64 {
        self.header.total() + self.items.iter().map(|i| i.report.total()).sum::<u64>()
    }

    /// Every redaction with its item index (`None` for the envelope header), for `--explain`.
    pub fn all_redactions(
        &self,
    ) -> impl Iterator<Item = (Option<usize>, &crate::scrub::Redaction)> {
        let header = self.header.redactions.iter().map(|r| (None, r));
        let items =
            self.items.iter().enumerate().flat_map(|(index, item)| {
                item.report.redactions.iter().map(move |r| (Some(index), r))
            });
        header.chain(items)
    }
}

/// Scrubs and decides every item of `envelope` in place and removes dropped items. Pure: the
/// server, `scrubgate scrub` and `scrubgate test` all call this.
///
/// Order: the header and every item are scrubbed (or dropped by type policy) first, in
/// order, with one echo set: a value removed anywhere is removed everywhere in the
/// envelope, so each item is searched for the values of the items before it, and then the
/// items scrubbed before the set's last values were learnt are searched again for those
/// ([`echo_back`]). Then `[[policy.drop]]` rules run, because strict-mode rules need every
/// detector that fired in the envelope. If an event-like item is dropped, every item is
/// dropped: its attachments and companions would reach Sentry without the event they
/// belong to. Finally, with `client_reports` on, a `client_report` item counts what was
/// dropped (it may be all that is left to send).
pub fn scrub_envelope(
    envelope: &mut Envelope,
    scrubber: &Scrubber,
    policy: &Policy,
) -> EnvelopeReport {
    let started = std::time::Instant::now();
    let mut echo = EchoSet::new();
    let mut header = scrub_envelope_header(envelope, scrubber, &mut echo, Pass::Scrub);
    let mut header_seen = echo.len();
    let mut items = Vec::with_capacity(envelope.items().len());
    let mut facts = Vec::with_capacity(envelope.items().len());
    let mut rescans = Vec::with_capacity(envelope.items().len());
    for item in envelope.items_mut() {
        let (outcome, item_facts, rescan) = scrub_item(item, scrubber, policy, &mut echo);
        items.push(outcome);
        facts.push(item_facts);
        rescans.push(rescan.map(|how| (how, echo.len())));
    }
    let mut scrubbed = FirstPass {
        header: (&mut header, &mut header_seen),
        items: &mut items,
        rescans: &mut rescans,
    };
    echo_back(envelope, scrubber, &mut echo, &mut scrubbed);
    let scrub_time = started.elapsed();
    let fired: BTreeSet<String> = header
        .redactions
        .iter()
        .chain(items.iter().flat_map(|i| i.report.redactions.iter()))
        .map(|r| r.rule.clone())
        .collect();
    let sample_key = envelope
        .event_id()
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    for ((outcome, item), item_facts) in items.iter_mut().zip(envelope.items()).zip(&facts) {
        if outcome.decision != ItemDecision::Forward || *item.item_type() == ItemType::ClientReport
        {
            continue;
        }
        let input = RuleInput {
            item_type: item.item_type(),
            facts: item_facts.as_ref(),
            fired: &fired,
            sample_key: &sample_key,
        };
        if let Some(rule) = policy.drop_rule(&input) {
            outcome.decision = ItemDecision::Drop(DropReason::DropRule);
            outcome.rule = Some(Arc::clone(rule));
        }
    }
    drop(facts);
    let types: Vec<ItemType> = envelope
        .items()
        .iter()
        .map(|i| i.item_type().clone())
        .collect();
    cascade_drops(&types, &mut items);
    let mut decisions = items.iter().map(|o| o.decision);
    envelope.retain_items(|_| decisions.next() == Some(ItemDecision::Forward));
    let client_report = if policy.client_reports() {
        add_client_report(envelope, &types, &items)
    } else {
        Vec::new()
    };
    EnvelopeReport {
        header,
        items,
        client_report,
        scrub_time,
        decide_time: started.elapsed().saturating_sub(scrub_time),
        echo_not_echoed: echo.not_echoed(),
        candidate: None,
    }
}

/// How an item's payload is read when it is searched again for echo values.
#[derive(Debug, Clone, Copy)]
enum Rescan {
    Json(PayloadKind),
    Text(crate::decide::TextKind),
    ReplayRecording,
}

/// What the first pass left for [`echo_back`]: the reports to extend, and per payload how
/// many echo values it was searched for (`None`: an item not scrubbed, or dropped).
struct FirstPass<'a> {
    header: (&'a mut ScrubReport, &'a mut usize),
    items: &'a mut [ItemOutcome],
    rescans: &'a mut [Option<(Rescan, usize)>],
}

/// At most this many rounds of [`echo_back`]: a round only repeats when an echo label made
/// a string parse differently and its new scrub found a value not seen before.
const ECHO_BACK_ROUNDS: usize = 3;

/// Searches the header and every item that was scrubbed before the envelope's echo set
/// learnt its last values (those of later items) for those values. An envelope whose
/// values all come before the items they appear in (one event; an event and its
/// attachments) costs nothing here.
fn echo_back(
    envelope: &mut Envelope,
    scrubber: &Scrubber,
    echo: &mut EchoSet,
    scrubbed: &mut FirstPass<'_>,
) {
    for _ in 0..ECHO_BACK_ROUNDS {
        let learnt = echo.len();
        let (header, header_seen) = &mut scrubbed.header;
        if **header_seen < echo.len() {
            let report = scrub_envelope_header(envelope, scrubber, echo, Pass::Echo);
            header.redactions.extend(report.redactions);
            **header_seen = echo.len();
        }
        let items = envelope.items_mut().iter_mut();
        for ((item, outcome), rescan) in items
            .zip(scrubbed.items.iter_mut())
            .zip(scrubbed.rescans.iter_mut())
        {
            let Some((how, seen)) = rescan else {
                continue;
            };
            if *seen == echo.len() {
                continue;
            }
            match rescan_item(item, *how, scrubber, echo) {
                Ok(report) => outcome.report.redactions.extend(report.redactions),
                Err(reason) => {
                    outcome.decision = ItemDecision::Drop(reason);
                    *rescan = None;
                    continue;
                }
            }
            *seen = echo.len();
        }
        if echo.len() == learnt {
            break;
        }
    }
}

/// The echo pass over one item's current payload (and its file name).
fn rescan_item(
    item: &mut Item,
    how: Rescan,
    scrubber: &Scrubber,
    echo: &mut EchoSet,
) -> Result<ScrubReport, DropReason> {
    let (bytes, mut report) = match how {
        Rescan::Json(kind) => {
            let (bytes, report) =
                payloads::scrub_json(item.payload(), kind, scrubber, echo, Pass::Echo)
                    .map_err(|_| DropReason::InvalidJson)?;
            (bytes.map(Bytes::from), report)
        }
        Rescan::Text(kind) => {
            payloads::scrub_text(item.payload(), kind, scrubber, echo, Pass::Echo)?
        }
        Rescan::ReplayRecording => {
            payloads::scrub_replay_recording(item.payload(), scrubber, echo, Pass::Echo)?
        }
    };
    if let Some(bytes) = bytes {
        item.set_payload(bytes);
    }
    if !matches!(how, Rescan::Json(_)) {
        report
            .redactions
            .extend(scrub_filename(item, scrubber, echo, Pass::Echo).redactions);
    }
    Ok(report)
}

/// Scrubs an attachment's `filename` header in place.
fn scrub_filename(
    item: &mut Item,
    scrubber: &Scrubber,
    echo: &mut EchoSet,
    pass: Pass,
) -> ScrubReport {
    let Some(name) = item.filename().map(str::to_owned) else {
        return ScrubReport::default();
    };
    let (scrubbed, report) = payloads::scrub_string(&name, scrubber, echo, pass);
    if let Some(scrubbed) = scrubbed {
        item.set_header("filename", Value::String(scrubbed));
    }
    report
}

/// A dropped event takes every item with it; half a replay is no replay.
fn cascade_drops(types: &[ItemType], items: &mut [ItemOutcome]) {
    let is_replay = |t: &ItemType| matches!(t, ItemType::ReplayEvent | ItemType::ReplayRecording);
    let any_dropped = |pred: &dyn Fn(&ItemType) -> bool, items: &[ItemOutcome]| {
        types
            .iter()
            .zip(items)
            .any(|(t, o)| pred(t) && o.decision != ItemDecision::Forward)
    };
    let (reason, scope): (DropReason, &dyn Fn(&ItemType) -> bool) =
        if any_dropped(&ItemType::is_event_like, items) {
            (DropReason::EventDropped, &|_| true)
        } else if any_dropped(&is_replay, items) {
            (DropReason::ReplayIncomplete, &is_replay)
        } else {
            return;
        };
    for (item_type, outcome) in types.iter().zip(items.iter_mut()) {
        if scope(item_type) && outcome.decision == ItemDecision::Forward {
            outcome.decision = ItemDecision::Drop(reason);
        }
    }
}

/// Appends a `client_report` item for the dropped items. When nothing else is left, the
/// envelope header is cut down to what routing needs, so the report carries no ids.
fn add_client_report(
    envelope: &mut Envelope,
    types: &[ItemType],
    items: &[ItemOutcome],
) -> Vec<crate::decide::Discarded> {
    let dropped = types
        .iter()
        .zip(items)
        .filter(|(_, o)| o.decision != ItemDecision::Forward)
        .map(|(t, o)| (t, o.size));
    let discarded = crate::decide::discarded_events(dropped);
    let Some(payload) = crate::decide::client_report_payload(&discarded) else {
        return Vec::new();
    };
    if envelope.items().is_empty() {
        envelope
            .header_mut()
            .fields_mut()
            .retain(|key, _| matches!(key.as_str(), "dsn" | "sent_at" | "sdk"));
    }
    let mut item = Item::new(ItemType::ClientReport, Bytes::from(payload));
    item.set_header("content_type", Value::String("application/json".to_owned()));
    envelope.push_item(item);
    discarded
}

fn scrub_envelope_header(
    envelope: &mut Envelope,
    scrubber: &Scrubber,
    echo: &mut EchoSet,
    pass: Pass,
) -> ScrubReport {
    let mut report = ScrubReport::default();
    if pass == Pass::Scrub {
        for key in CLIENT_META_HEADER_KEYS {
            if envelope.header_mut().remove(key) {
                report.redactions.push(crate::scrub::Redaction {
                    path: (*key).to_owned(),
                    rule: "client-meta".to_owned(),
                    method: Method::Remove,
                    count: 1,
                });
            }
        }
    }
    let value = Value::Object(envelope.header().fields().clone());
    let mut node = crate::json::Node::from_value(&value);
    let header_report = pass.run(scrubber, PayloadKind::EnvelopeHeader, &mut node, echo);
    if !header_report.is_empty() {
        if let Value::Object(fields) = node.to_value() {
            *envelope.header_mut().fields_mut() = fields;
        }
        report.redactions.extend(header_report.redactions);
    }
    report
}

/// The first pass over one item: its outcome, the facts drop rules look at, and how to
/// read it again if the envelope learns echo values after it (`None`: not scrubbed).
fn scrub_item(
    item: &mut Item,
    scrubber: &Scrubber,
    policy: &Policy,
    echo: &mut EchoSet,
) -> (ItemOutcome, Option<ItemFacts>, Option<Rescan>) {
    let item_type = item.item_type().label();
    let size = item.payload().len();
    let outcome = |decision, report| ItemOutcome {
        item_type,
        size,
        decision,
        rule: None,
        report,
    };
    let meta = ItemMeta {
        content_type: item.content_type(),
        filename: item.filename(),
        attachment_type: item.header_str("attachment_type"),
    };
    let action = policy.item_action(item.item_type(), &meta);
    let relaxed =
        |item: &mut Item, result: payloads::Scrubbed, echo: &mut EchoSet, how: Rescan| match result
        {
            Err(reason) => (
                outcome(ItemDecision::Drop(reason), ScrubReport::default()),
                None,
                None,
            ),
            Ok((bytes, mut report)) => {
                if let Some(bytes) = bytes {
                    item.set_payload(bytes);
                }
                let name_report = scrub_filename(item, scrubber, echo, Pass::Scrub);
                report.redactions.extend(name_report.redactions);
                (outcome(ItemDecision::Forward, report), None, Some(how))
            }
        };
    match action {
        ItemAction::Drop(reason) => (
            outcome(ItemDecision::Drop(reason), ScrubReport::default()),
            None,
            None,
        ),
        ItemAction::ForwardAsIs => (
            outcome(ItemDecision::Forward, ScrubReport::default()),
            None,
            None,
        ),
        ItemAction::ScrubText(kind) => {
            let result = payloads::scrub_text(item.payload(), kind, scrubber, echo, Pass::Scrub);
            relaxed(item, result, echo, Rescan::Text(kind))
        }
        ItemAction::ScrubReplayRecording => {
            let result =
                payloads::scrub_replay_recording(item.payload(), scrubber, echo, Pass::Scrub);
            relaxed(item, result, echo, Rescan::ReplayRecording)
        }
        ItemAction::Scrub => {
            // A cheap handle on the payload: the tree borrows from it while the item's
            // payload is replaced.
            let payload = item.payload().clone();
            let Ok(mut node) = crate::json::parse_bytes(&payload) else {
                return (
                    outcome(
                        ItemDecision::Drop(DropReason::InvalidJson),
                        ScrubReport::default(),
                    ),
                    None,
                    None,
                );
            };
            let facts = ItemFacts::from_json(item.item_type(), &node);
            let kind = payload_kind(item);
            let report = scrubber.scrub_item(kind, &mut node, echo);
            if !report.is_empty() {
                let bytes = crate::json::to_vec(&node, payload.len());
                item.set_payload(Bytes::from(bytes));
            }
            (
                outcome(ItemDecision::Forward, report),
                Some(facts),
                Some(Rescan::Json(kind)),
            )
        }
    }
}

/// A human-readable account of `report` for `scrubgate scrub --explain`: one line per
/// redaction (where, which rule, how, how often) and one per dropped item. Never values.
pub fn explain(report: &EnvelopeReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (index, redaction) in report.all_redactions() {
        let place = match index {
            None => "envelope header".to_owned(),
            Some(i) => format!("item {i} ({})", report.items[i].item_type),
        };
        let _ = writeln!(
            out,
            "{place}: {} <- {} ({}, {}x)",
            redaction.path,
            redaction.rule,
            redaction.method.as_str(),
            redaction.count
        );
    }
    for (i, item) in report.items.iter().enumerate() {
        if let ItemDecision::Drop(reason) = item.decision {
            let rule = item
                .rule
                .as_deref()
                .map(|r| format!(", rule {r}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "item {i} ({}): dropped ({}{rule})",
                item.item_type,
                reason.as_str()
            );
        }
    }
    let _ = writeln!(
        out,
        "{} redaction(s), {} item(s) forwarded, {} dropped",
        report.redactions(),
        report.forwarded_items(),
        report.dropped_items()
    );
    out
}

/// The per-item part of an audit record.
pub fn audit_items(report: &EnvelopeReport) -> Vec<crate::audit::ItemRecord> {
    report
        .items
        .iter()
        .map(|item| {
            let (decision, reason) = match item.decision {
                ItemDecision::Forward => ("forward", None),
                ItemDecision::Drop(reason) => ("drop", Some(reason.as_str().to_owned())),
            };
            crate::audit::ItemRecord {
                item_type: item.item_type.to_owned(),
                size: item.size,
                decision: decision.to_owned(),
                reason,
                rule: item.rule.as_deref().map(str::to_owned),
                redactions: crate::audit::compact_redactions(&item.report.redactions),
            }
        })
        .collect()
}

/// The candidate part of an audit record.
pub fn audit_candidate(diff: &candidate::CandidateDiff) -> crate::audit::CandidateRecord {
    let changes = |list: &[candidate::RuleChange]| {
        list.iter()
            .map(|c| crate::audit::CandidateChangeRecord {
                rule: c.rule.clone(),
                path: c.path.clone(),
                count: c.count,
            })
            .collect()
    };
    crate::audit::CandidateRecord {
        hash: diff.hash.clone(),
        added: changes(&diff.added),
        removed: changes(&diff.removed),
    }
}

/// How the scrubber should read an item's JSON.
pub fn payload_kind(item: &Item) -> PayloadKind {
    let is_container = item
        .content_type()
        .is_some_and(|ct| ct.starts_with("application/vnd.sentry.items."))
        || item.header().contains_key("item_count");
    match item.item_type() {
        ItemType::Event => PayloadKind::Event,
        ItemType::Transaction => PayloadKind::Transaction,
        ItemType::Feedback => PayloadKind::Feedback,
        ItemType::UserReport => PayloadKind::UserReport,
        ItemType::Session => PayloadKind::Session,
        ItemType::Sessions => PayloadKind::Sessions,
        ItemType::Span if is_container => PayloadKind::SpanContainer,
        ItemType::Span => PayloadKind::Span,
        ItemType::Log => PayloadKind::LogContainer,
        ItemType::TraceMetric => PayloadKind::TraceMetricContainer,
        ItemType::CheckIn => PayloadKind::CheckIn,
        ItemType::ReplayEvent => PayloadKind::ReplayEvent,
        ItemType::Profile => PayloadKind::Profile,
        ItemType::ProfileChunk => PayloadKind::ProfileChunk,
        ItemType::MetricBuckets => PayloadKind::MetricBuckets,
        ItemType::RawSecurity | ItemType::Security => PayloadKind::SecurityReport,
        _ => PayloadKind::Generic,
    }
}

/// An envelope accepted from a configured project, ready to be processed.
#[derive(Debug)]
pub struct Incoming {
    pub project: Project,
    pub envelope: Envelope,
    pub client: ClientMeta,
}

/// The result of processing one envelope.
#[derive(Debug)]
pub struct Processed {
    /// The id to answer the SDK with (`{"id": …}`).
    pub event_id: Option<String>,
    pub report: EnvelopeReport,
    /// Items removed because their category is rate limited upstream.
    pub rate_limited_items: usize,
    pub delivery: Delivery,
}

/// Where [`Pipeline::scrub`] leaves an envelope.
#[derive(Debug)]
pub enum Scrubbed {
    /// Nothing will leave (every item dropped or rate limited).
    Finished(Processed),
    /// Scrubbed bytes ready for [`Pipeline::send`].
    Outbound(Outbound),
}

/// A scrubbed envelope that has not left yet.
#[derive(Debug)]
pub struct Outbound {
    pub event_id: Option<String>,
    pub report: EnvelopeReport,
    pub rate_limited_items: usize,
    pub mode: DeliveryMode,
    destination: forward::Destination,
    body: Bytes,
    categories: Vec<String>,
    client: ClientMeta,
    /// The configured project, by which delivery finds the destination when it sends.
    sdk_public_key: String,
    sdk_project_id: u64,
}

/// What happened after scrubbing.
#[derive(Debug)]
pub enum Delivery {
    /// Every item was dropped; nothing was sent.
    NothingToSend,
    /// Every item is in a category the upstream currently rate limits: answer 429 with
    /// these limits, forward nothing.
    RateLimited(Vec<ActiveLimit>),
    /// Spooled (async mode) and reserved: commit the reservation once the request's audit
    /// record is written, then the SDK gets 200; dropping it means the envelope is never
    /// sent.
    Queued(Reservation),
    /// The upstream (or file sink) answered (sync mode).
    Upstream(UpstreamResponse),
}

/// Processing failed after the envelope was accepted for processing.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error(transparent)]
    Accept(#[from] AcceptError),
    #[error("scrubbing task failed")]
    ScrubTask,
}

/// The long-lived parts the pipeline needs: upstream client, delivery queue, rate limits.
#[derive(Debug, Clone)]
pub struct Pipeline {
    forwarder: Forwarder,
    delivery: DeliveryService,
    rate_limits: Arc<RateLimits>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Large envelopes are scrubbed off the async threads, on these threads (one per core).
    large_scrubs: Arc<scrub_pool::ScrubPool>,
}

impl Pipeline {
    pub fn new(
        forwarder: Forwarder,
        delivery: DeliveryService,
        rate_limits: Arc<RateLimits>,
    ) -> Self {
        Self {
            forwarder,
            delivery,
            rate_limits,
            metrics: Arc::default(),
            large_scrubs: Arc::new(scrub_pool::ScrubPool::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            )),
        }
    }

    /// Records stage timings and upstream answers into `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    pub fn delivery(&self) -> &DeliveryService {
        &self.delivery
    }

    /// Rate limits → scrub → decide, up to the point where something would leave: what is
    /// left to send comes back as an [`Outbound`], so the caller can make the request's audit
    /// record durable before [`Pipeline::send`] lets anything go (fail closed). Scrubbing
    /// runs on a blocking thread for large envelopes so it never stalls the accept loop.
    ///
    /// # Errors
    /// Only a failed scrubbing task; bad items are dropped, not errors.
    pub async fn scrub(
        &self,
        config: Arc<Config>,
        incoming: Incoming,
    ) -> Result<Scrubbed, PipelineError> {
        let Incoming {
            project,
            mut envelope,
            client,
        } = incoming;
        let event_id = envelope.event_id().map(str::to_owned);
        let destination = self.forwarder.destination(&project);

        let (rate_limited_items, limits) =
            self.apply_rate_limits(&mut envelope, &destination.public_key);
        if envelope.items().is_empty() && rate_limited_items > 0 {
            return Ok(Scrubbed::Finished(Processed {
                event_id,
                report: EnvelopeReport::default(),
                rate_limited_items,
                delivery: Delivery::RateLimited(limits),
            }));
        }

        let candidate = project
            .candidate
            .as_ref()
            .filter(|_| config.file.candidates.sampled())
            .map(Arc::clone);
        let report =
            scrub_off_thread_if_large(&config, &mut envelope, candidate, &self.large_scrubs)
                .await?;
        if envelope.items().is_empty() {
            return Ok(Scrubbed::Finished(Processed {
                event_id,
                report,
                rate_limited_items,
                delivery: Delivery::NothingToSend,
            }));
        }
        forward::rewrite_envelope_for(&mut envelope, &destination);
        let categories = categories_of(&envelope);
        let body = Bytes::from(envelope.to_bytes());
        let mode = project.delivery.unwrap_or(config.file.delivery.mode);
        Ok(Scrubbed::Outbound(Outbound {
            event_id,
            report,
            rate_limited_items,
            mode,
            destination,
            body,
            categories,
            client,
            sdk_public_key: project.public_key.clone(),
            sdk_project_id: project.project_id,
        }))
    }

    /// Lets a scrubbed envelope go: spools and reserves it (async mode: it is delivered
    /// once the caller commits the reservation) or forwards it and waits for the upstream
    /// (sync mode).
    ///
    /// # Errors
    /// Only delivery failures.
    pub async fn send(&self, outbound: Outbound) -> Result<Processed, PipelineError> {
        let Outbound {
            event_id,
            report,
            rate_limited_items,
            mode,
            destination,
            body,
            categories,
            client,
            sdk_public_key,
            sdk_project_id,
        } = outbound;
        let forward_started = std::time::Instant::now();
        let delivery = match mode {
            DeliveryMode::Sync => {
                let response = match self.forwarder.prepare(body) {
                    Ok(prepared) => {
                        self.forwarder
                            .send(&destination, &prepared, &client, event_id.as_deref())
                            .await
                    }
                    Err(error) => Err(error),
                };
                self.metrics
                    .stage(crate::metrics::Stage::Forward, forward_started.elapsed());
                let response = response?;
                self.metrics.upstream_response(response.status);
                self.rate_limits.record(
                    &destination.public_key,
                    response.status,
                    response.retry_after.as_deref(),
                    response.rate_limits.as_deref(),
                );
                Delivery::Upstream(response)
            }
            DeliveryMode::Async => {
                let meta = SpoolMeta {
                    base: destination.base,
                    public_key: destination.public_key,
                    project_id: destination.project_id,
                    dsn: destination.dsn,
                    sentry_client: client.sentry_client,
                    user_agent: client.user_agent,
                    event_id: event_id.clone(),
                    categories,
                    sdk_public_key: Some(sdk_public_key),
                    sdk_project_id: Some(sdk_project_id),
                };
                let reservation = self.delivery.accept(meta, body).await?;
                self.metrics
                    .stage(crate::metrics::Stage::Forward, forward_started.elapsed());
                Delivery::Queued(reservation)
            }
        };
        Ok(Processed {
            event_id,
            report,
            rate_limited_items,
            delivery,
        })
    }

    /// Removes items whose category the upstream rate limits for this key; returns how many
    /// and the distinct limits that applied.
    fn apply_rate_limits(&self, envelope: &mut Envelope, key: &str) -> (usize, Vec<ActiveLimit>) {
        let mut limits: Vec<ActiveLimit> = Vec::new();
        let mut removed = 0;
        envelope.retain_items(|item| {
            let Some(category) = rate_limits::category(item.item_type()) else {
                return true;
            };
            match self.rate_limits.check(key, category) {
                Some(limit) => {
                    if !limits.contains(&limit) {
                        limits.push(limit);
                    }
                    removed += 1;
                    false
                }
                None => true,
            }
        });
        (removed, limits)
    }
}

async fn scrub_off_thread_if_large(
    config: &Arc<Config>,
    envelope: &mut Envelope,
    candidate: Option<Arc<crate::config::Candidate>>,
    large_scrubs: &scrub_pool::ScrubPool,
) -> Result<EnvelopeReport, PipelineError> {
    let size: usize = envelope.items().iter().map(|i| i.payload().len()).sum();
    if size <= 256 * 1024 {
        return Ok(scrub_with_candidate(envelope, config, candidate.as_deref()));
    }
    let config = Arc::clone(config);
    let mut owned = std::mem::replace(
        envelope,
        Envelope::from_parts(serde_json::Map::new(), Vec::new()),
    );
    let (owned, report) = large_scrubs
        .run(move || {
            let report = scrub_with_candidate(&mut owned, &config, candidate.as_deref());
            (owned, report)
        })
        .await
        .ok_or(PipelineError::ScrubTask)?;
    *envelope = owned;
    Ok(report)
}

/// The active scrub, which alone changes `envelope`; with a candidate, a second scrub of a
/// copy of the input, reported as the difference between the two.
fn scrub_with_candidate(
    envelope: &mut Envelope,
    config: &Config,
    candidate: Option<&crate::config::Candidate>,
) -> EnvelopeReport {
    let input = candidate.map(|_| envelope.clone());
    let mut report = scrub_envelope(envelope, &config.scrubber, &config.policy);
    if let (Some(candidate), Some(input)) = (candidate, input) {
        report.candidate = Some(candidate::compare_envelope(
            &input,
            &candidate.scrubber,
            &config.policy,
            &report,
            &candidate.hash,
        ));
    }
    report
}

fn categories_of(envelope: &Envelope) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in envelope.items() {
        if let Some(category) = rate_limits::category(item.item_type()) {
            if !out.iter().any(|c| c == category) {
                out.push(category.to_owned());
            }
        }
    }
    out
}
