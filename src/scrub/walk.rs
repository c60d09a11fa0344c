//! The walker: visits every value of a payload with its dotted path, knows where data hides
//! in each payload kind (the `user`, `request`, breadcrumbs, spans, typed attributes,
//! sessions, …), and applies key rules, structured-string parsing and value detectors.
//!
//! Every change is recorded in the report at the moment it is made, and only if the new
//! text differs from the old: the report is empty if and only if nothing changed.

use std::collections::{HashMap, HashSet};

use crate::json::{Node, Object, Text};

use super::detectors::builtin::Structural;
use super::detectors::{Hit, HitKind, Scanner};
use super::echo::EchoSet;
use super::hashing::{FxBuild, KeyedBuild};
use super::keys::{KeyClass, KeyMatcher, Tokens};
use super::profile::{Shape, IP_HEADERS, PERSON_CONTEXT_WORDS};
use super::redact::{Action, Redactor};
use super::rule_table::RuleTable;
use super::structured::{cookie, query, sql, url};
use super::{Method, PayloadKind, Redaction, ScrubReport};

mod clinical_pass;
mod cluster;
mod echo_pass;
mod fhir;
mod generic;
mod kinds;
mod template;
mod text;

use echo_pass::{scalar_text, EchoSource};

/// How deep JSON-in-string and URL-in-query nesting is followed.
const MAX_NESTING: u32 = 4;
/// Passes of the detectors over one string before giving up on a fixed point (each pass
/// only ever replaces text with labels, so two or three always suffice in practice).
const MAX_TEXT_PASSES: usize = 4;
/// Echo pass + re-walk rounds per item before giving up on a fixed point.
const MAX_ECHO_ROUNDS: usize = 3;
/// Deeper JSON than this is still scanned, one level at a time, but not re-entered
/// recursively beyond it (parsing itself is limited to 127 levels, as in serde_json).
const MAX_JSON_DEPTH: usize = 100;

/// The compiled engine behind [`super::Scrubber`].
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) scanner: Scanner,
    /// Unkeyed (`FxBuild`) like every table of the engine below: keys are rule names, key
    /// classes and labels from the config and the built-ins; payloads only look them up.
    /// The structural rules' actions, indexed by rule ([`Structural`]).
    pub(crate) rules: RuleTable,
    /// Whether values rules removed are removed wherever else they appear (echo).
    pub(crate) echo_enabled: bool,
    /// Unkeyed: the fixed set of key classes.
    pub(crate) class_actions: HashMap<KeyClass, Action, FxBuild>,
    pub(crate) deny: KeyMatcher,
    pub(crate) safe: KeyMatcher,
    pub(crate) cookie_names: KeyMatcher,
    pub(crate) redactor: Redactor,
    /// Unkeyed: the replacement labels of the config's rules.
    pub(crate) labels: HashSet<String, FxBuild>,
    /// Longest label and the bytes labels can start with: a quick "not a label" test.
    pub(crate) label_max_len: usize,
    pub(crate) label_first: [bool; 256],
    /// Unkeyed: the rules whose redactions are PHI (what makes a record a cluster).
    pub(crate) phi_rules: HashSet<String, FxBuild>,
    /// Unkeyed: the rules whose redactions name a patient, after which a payload's prose
    /// is read for clinical phrases without context words ([`Self::clinical_round`]).
    pub(crate) patient_rules: HashSet<String, FxBuild>,
    /// Every cookie value is removed unless its name is a preference (hipaa profile).
    pub(crate) cookies_allowlisted: bool,
    /// Keys that name a person's name or plan id by their parts (`billing.name`,
    /// `insured.id_number`) are sensitive (hipaa profile).
    pub(crate) person_compound_keys: bool,
    /// Healthcare formats parsed inside strings.
    pub(crate) formats: super::formats::Formats,
    /// Unkeyed: static key names. The schema fields left unscanned while their value
    /// has the field's shape ([`super::profile::SCHEMA_FIELDS`]).
    pub(crate) structural: HashMap<&'static str, Shape, FxBuild>,
    /// What keys mean, shared by every call: seeded with the common keys at compile time
    /// and extended with the keys calls meet (an application sends the same keys event
    /// after event), so a small event rarely classifies a key itself.
    pub(crate) known_keys: KnownKeys,
}

/// A memo of [`Engine::compute_key_info`], a pure function of the key. Readers take a
/// snapshot once per call (no lock per key); a call that classified new keys publishes a
/// copy with them added. The table stops growing at [`KnownKeys::MAX_LEARNED`] entries
/// beyond the seed, so keys made up by a client cannot make it grow without bound (they
/// are then classified per call, as before). Two calls publishing at once may lose one
/// of their additions, which only means those keys are learned on a later call.
#[derive(Debug, Default)]
pub(crate) struct KnownKeys {
    table: arc_swap::ArcSwap<KeyTable>,
    seeded: usize,
}

/// Keyed: the table learns keys from payloads.
type KeyTable = HashMap<Box<str>, KeyInfo, KeyedBuild>;

impl KnownKeys {
    pub(crate) const MAX_LEARNED: usize = 4096;

    fn snapshot(&self) -> std::sync::Arc<KeyTable> {
        self.table.load_full()
    }

    /// How many keys are known now (tests watch the table grow and stop).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.load().len()
    }

    /// Publishes the keys one call classified, if there is room.
    fn learn(&self, seen: &std::sync::Arc<KeyTable>, new: &HashMap<String, KeyInfo, KeyedBuild>) {
        let room = (self.seeded + Self::MAX_LEARNED).saturating_sub(seen.len());
        if new.is_empty() || room == 0 {
            return;
        }
        let mut table = KeyTable::clone(seen);
        table.extend(
            new.iter()
                .take(room)
                .map(|(k, v)| (Box::<str>::from(k.as_str()), *v)),
        );
        self.table.store(std::sync::Arc::new(table));
    }
}

/// Per-call state: the current path, the report, scratch buffers.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    pub(crate) path: String,
    pub(crate) report: ScrubReport,
    tokens: Tokens,
    /// The envelope's echo values: lent by the caller for the call, values added as rules
    /// remove them.
    echo: EchoSet,
    depth: u32,
    json_depth: usize,
    /// The shared key table as it was when the call began.
    known: std::sync::Arc<KeyTable>,
    /// Keys not in `known`, classified by this call (keys repeat a lot within an event).
    /// Keyed: up to 10,000 keys chosen by the sender.
    keys: HashMap<String, KeyInfo, KeyedBuild>,
    /// The detector hits of each distinct short string, computed once per call: context
    /// lines, breadcrumb messages and paths repeat within an event, and the regex set
    /// pass is the most expensive step per string. Values are `(start, len)` in
    /// `scan_hits`. Only used when hits depend on the text alone ([`Scanner::text_only`]).
    /// Keyed: up to 10,000 strings chosen by the sender.
    scans: HashMap<Box<str>, (u32, u32), KeyedBuild>,
    scan_hits: Vec<Hit>,
    /// Strings scanned so far in this call.
    scanned: usize,
    /// Short strings in which the readers of structure inside text (keys, request targets,
    /// encoded runs) found nothing, when that did not depend on the JSON key; cached like
    /// `scans`. Keyed: strings chosen by the sender.
    structure_clean: std::collections::HashSet<Box<str>, KeyedBuild>,
    /// Set when a reader of structure looked at the JSON key (a plain `name` at the top of
    /// a text is a person's if the key names one): its answer is then not cached.
    structure_keyed: bool,
}

/// Strings longer than this are scanned every time: long texts rarely repeat, and
/// keeping them would make the cache as big as the payload.
const SCAN_CACHE_MAX_LEN: usize = 512;
/// At most this many distinct strings are remembered per call.
const SCAN_CACHE_MAX_ENTRIES: usize = 10_000;
/// The cache starts after this many scans. Small payloads rarely repeat a string, but
/// the recall passes scan what they write again, so from the first scan the map saves
/// more than it costs (2.4 % fewer instructions on the SDK captures than from the 65th).
const SCAN_CACHE_AFTER: usize = 0;

/// A key's meaning, independent of where it occurs.
#[derive(Debug, Clone, Copy)]
struct KeyInfo {
    /// The role outside person contexts.
    role: Role,
    /// The key's class (denylist minus safe list), for sibling and query-key checks.
    class: Option<KeyClass>,
    /// The key is just `name`.
    bare_name: bool,
    /// A schema field: its value is left unscanned while it has this shape.
    schema: Option<Shape>,
    /// The key is context to a detector (`cell`, `dob`): what a scan finds under it
    /// depends on it, so the walker does not reuse another key's scan of the same text.
    scan_context: bool,
}

impl Cx {
    pub(crate) fn push(&mut self, seg: &str) -> usize {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(seg);
        len
    }

    pub(crate) fn push_index(&mut self, i: usize) -> usize {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        push_decimal(&mut self.path, i);
        len
    }

    pub(crate) fn pop(&mut self, len: usize) {
        self.path.truncate(len);
    }

    /// A fingerprint of everything recorded so far: equal before and after a step means the
    /// step changed nothing (a change is always recorded).
    fn changes(&self) -> (usize, u64) {
        (self.report.redactions.len(), self.report.total())
    }

    pub(crate) fn record(&mut self, rule: &str, method: Method, count: u32) {
        if count == 0 {
            return;
        }
        for r in self.report.redactions.iter_mut().rev() {
            if r.path != self.path {
                break;
            }
            if r.rule == rule && r.method == method {
                r.count = r.count.saturating_add(count);
                return;
            }
        }
        self.report.redactions.push(Redaction {
            path: self.path.clone(),
            rule: rule.to_owned(),
            method,
            count,
        });
    }
}

/// What to do with an object member after looking at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Keep,
    Remove,
}

/// How a key's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `_meta`: SDK remarks kept, original values removed ([`Engine::meta`]).
    Meta,
    Cookie,
    Query,
    Sql,
    Body,
    Class(KeyClass),
    Generic,
}

const PHI_SIBLING: &[KeyClass] = &[
    KeyClass::Email,
    KeyClass::Phone,
    KeyClass::Ssn,
    KeyClass::Dob,
    KeyClass::Address,
    KeyClass::Card,
    KeyClass::Mrn,
    KeyClass::Insurance,
];

impl Engine {
    // === entry ===

    /// Scrubs one payload: walks it, adding what rules remove to `echo`, then removes
    /// every value of `echo` (those of earlier payloads of the envelope too) wherever it
    /// appears in the payload. Echo labels can change how a string parses (a query value,
    /// a SQL statement), so after an echo pass that changed something the payload is
    /// walked again, as a second scrub would, until a round changes nothing.
    pub(crate) fn scrub(
        &self,
        kind: PayloadKind,
        value: &mut Node<'_>,
        echo: &mut EchoSet,
    ) -> ScrubReport {
        let mut cx = self.cx(echo);
        self.walk_kind(kind, value, &mut cx);
        self.echo_rounds(kind, value, &mut cx);
        // After the echo rounds, so a removed value keeps the replacement its first
        // removal gave it (`Lyme disease` under `diagnosis` is `[phi]` in the message too).
        if self.clinical_round(kind, value, &mut cx) {
            self.echo_rounds(kind, value, &mut cx);
        }
        self.finish(cx, echo)
    }

    /// Only the echo rounds of [`Self::scrub`]: for a payload already scrubbed, whose
    /// envelope has learnt values since.
    pub(crate) fn echo(
        &self,
        kind: PayloadKind,
        value: &mut Node<'_>,
        echo: &mut EchoSet,
    ) -> ScrubReport {
        let mut cx = self.cx(echo);
        self.echo_rounds(kind, value, &mut cx);
        self.finish(cx, echo)
    }

    fn cx(&self, echo: &mut EchoSet) -> Cx {
        Cx {
            known: self.known_keys.snapshot(),
            echo: std::mem::take(echo),
            ..Cx::default()
        }
    }

    fn finish(&self, mut cx: Cx, echo: &mut EchoSet) -> ScrubReport {
        self.known_keys.learn(&cx.known, &cx.keys);
        *echo = std::mem::take(&mut cx.echo);
        cx.report
    }

    /// The walk for one payload kind, from its root.
    fn walk_kind(&self, kind: PayloadKind, value: &mut Node<'_>, cx: &mut Cx) {
        cx.path.clear();
        match (kind, value.as_object_mut()) {
            (
                PayloadKind::Event
                | PayloadKind::Transaction
                | PayloadKind::Feedback
                | PayloadKind::ReplayEvent,
                Some(map),
            ) => self.event_root(map, cx),
            (PayloadKind::Span, Some(map)) => self.span(map, cx),
            (
                PayloadKind::SpanContainer
                | PayloadKind::LogContainer
                | PayloadKind::TraceMetricContainer,
                Some(map),
            ) => self.container(map, cx),
            (PayloadKind::Session, Some(map)) => self.session(map, cx),
            (PayloadKind::Sessions, Some(map)) => self.sessions(map, cx),
            (PayloadKind::UserReport, Some(map)) => self.walk_map(map, "user_report", true, cx),
            (PayloadKind::EnvelopeHeader, Some(map)) => self.envelope_header(map, cx),
            _ => self.walk_value(value, "", cx),
        }
    }
}

/// Applies `step` to `text`, then to its own output, until it changes nothing (at most
/// `MAX_TEXT_PASSES` times); `None` if the first step changed nothing. Scrubbing can turn a
/// string into another kind (a URL whose password swallowed `&…` now reads as `k=v`), which
/// a second scrub would treat differently: repeating keeps scrubbing idempotent.
///
/// A text that still changes after the last pass (each pass peeling one more layer, as in
/// SQL `token=--''--''--''--'`) is replaced whole by the `unsettled` rule's label: over-
/// redacting a pathological string is safe, and a label is what every later scrub keeps.
fn until_stable(
    eng: &Engine,
    text: &str,
    cx: &mut Cx,
    step: impl FnMut(&str, &mut Cx) -> Option<String>,
) -> Option<String> {
    until_stable_settled(eng, text, cx, step).0
}

/// [`until_stable`], also saying whether the result settled by itself: `step` changes
/// nothing more on it. `false` when the pass limit replaced it whole, or left it as it was
/// because the `unsettled` rule is disabled.
fn until_stable_settled(
    eng: &Engine,
    text: &str,
    cx: &mut Cx,
    mut step: impl FnMut(&str, &mut Cx) -> Option<String>,
) -> (Option<String>, bool) {
    let mut current: Option<String> = None;
    for _ in 0..MAX_TEXT_PASSES {
        match step(current.as_deref().unwrap_or(text), cx) {
            Some(next) => current = Some(next),
            None => return (current, true),
        }
    }
    let last = current.as_deref().unwrap_or(text);
    if step(last, cx).is_some() {
        if let Some(whole) = eng.redact_rule(Structural::Unsettled, text, cx) {
            return (Some(whole), false);
        }
        return (current, false);
    }
    (current, true)
}

/// A JSON object or non-empty array held in a string (already trimmed).
fn json_like(trimmed: &str) -> bool {
    (trimmed.starts_with('{') && trimmed.ends_with('}'))
        || (trimmed.starts_with('[') && trimmed.ends_with(']') && trimmed.len() > 2)
}

/// Visits every member of `map` with its key on the path, then removes the members the
/// visitor answered `Remove` for: the path bookkeeping and remove-after-iteration every
/// object walker needs, in one place.
fn visit_members(
    map: &mut Object<'_>,
    cx: &mut Cx,
    mut visit: impl FnMut(&str, &mut Node<'_>, &mut Cx) -> Outcome,
) {
    let mut remove = Vec::new();
    for (idx, (key, child)) in map.iter_mut().enumerate() {
        let len = cx.push(key);
        if visit(key, child, cx) == Outcome::Remove {
            remove.push(idx);
        }
        cx.pop(len);
    }
    map.remove_indices(&remove);
}

/// Appends `n` in decimal. Array indices are pushed onto the path for every element, and
/// `core::fmt` machinery was ~4 % of the scrub profile.
fn push_decimal(out: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// Nine to eleven digits under a key (`{"cell": 4155550123}`, a log attribute typed
/// `integer`): the length of a phone, an SSN or an account number, which only a context
/// detector can claim, so the key decides. Scanned as text with that key.
fn is_keyed_number(raw: &str, key: &str) -> bool {
    !key.is_empty() && (9..=11).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit())
}

/// An integer (no fraction, no exponent) of at least 12 digits that fits a 64-bit integer:
/// what serde_json reads as `u64 >= 100_000_000_000` or `i64 <= -100_000_000_000` (larger
/// integers it reads as floats).
fn is_big_integer(raw: &str) -> bool {
    if raw.len() < 12 || raw.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return false;
    }
    match raw.strip_prefix('-') {
        Some(_) => raw.parse::<i64>().is_ok_and(|i| i <= -100_000_000_000),
        None => raw.parse::<u64>().is_ok_and(|u| u >= 100_000_000_000),
    }
}

fn is_pair_list(items: &[Node<'_>]) -> bool {
    !items.is_empty()
        && items.iter().all(|p| {
            matches!(p, Node::Array(kv) if kv.len() == 2 && kv.first().is_some_and(Node::is_string))
        })
}

fn is_pair_key(key: &str) -> bool {
    matches!(
        key,
        "tags" | "headers" | "cookies" | "query_string" | "env" | "data" | "extra" | "params"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_end_keeps_closing_brackets_that_close_something() {
        use crate::scrub::structured::url::trim_url_end;
        assert_eq!(trim_url_end("http://x/a)"), "http://x/a");
        assert_eq!(trim_url_end("http://x/(a)"), "http://x/(a)");
        assert_eq!(
            trim_url_end("http://x/?q=[Filtered]"),
            "http://x/?q=[Filtered]"
        );
        assert_eq!(
            trim_url_end("http://1.2.3.4]:80/?q=[Filtered]."),
            "http://1.2.3.4]:80/?q=[Filtered]"
        );
        assert_eq!(trim_url_end("http://x/]]"), "http://x/");
        // Fuzz finding: only the last value's own brackets count once there is a query.
        assert_eq!(trim_url_end("ps://?card[=]]]]"), "ps://?card[=");
        assert_eq!(trim_url_end("http://x/?ids=[1,2]"), "http://x/?ids=[1,2]");
        assert_eq!(trim_url_end("(see http://x/?a=1)"), "(see http://x/?a=1");
        assert_eq!(trim_url_end("http://x/?a=[card]]"), "http://x/?a=[card]");
    }

    #[test]
    fn push_decimal_matches_display() {
        for n in [0usize, 7, 9, 10, 99, 100, 12_345, usize::MAX] {
            let mut s = String::from("a.");
            super::push_decimal(&mut s, n);
            assert_eq!(s, format!("a.{n}"));
        }
    }
}
