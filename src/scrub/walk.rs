//! The walker: visits every value of a payload with its dotted path, knows where data hides
//! in each payload kind (the `user`, `request`, breadcrumbs, spans, typed attributes,
//! sessions, …), and applies key rules, structured-string parsing and value detectors.
//!
//! Every change is recorded in the report at the moment it is made, and only if the new
//! text differs from the old: the report is empty if and only if nothing changed.

use std::collections::{HashMap, HashSet};

use crate::json::{self, Node, Object, Text};

use super::detectors::builtin::Structural;
use super::detectors::{Hit, HitKind, Scanner};
use super::echo::EchoMatcher;
use super::hashing::{FxBuild, KeyedBuild};
use super::keys::{KeyClass, KeyMatcher, Tokens};
use super::profile::{IP_HEADERS, PERSON_CONTEXT_WORDS};
use super::redact::{Action, Redactor};
use super::rule_table::RuleTable;
use super::structured::{cookie, query, sql, url};
use super::{Method, PayloadKind, Redaction, ScrubReport};

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
    /// Whether values found under name and id keys are removed wherever else they appear.
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
    /// Unkeyed: static key names.
    pub(crate) structural: HashSet<&'static str, FxBuild>,
    /// Unkeyed: the fixed set of key classes.
    pub(crate) echo_label: HashMap<KeyClass, String, FxBuild>,
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
    echo: Vec<(String, KeyClass)>,
    /// The values in `echo`, for the duplicate check: a linear scan made collecting n
    /// distinct values from one request cost n² (keyed: the values are the sender's).
    echo_seen: std::collections::HashSet<Box<str>, KeyedBuild>,
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
}

/// Strings longer than this are scanned every time: long texts rarely repeat, and
/// keeping them would make the cache as big as the payload.
const SCAN_CACHE_MAX_LEN: usize = 512;
/// At most this many distinct strings are remembered per call.
const SCAN_CACHE_MAX_ENTRIES: usize = 10_000;
/// The cache starts after this many scans: small payloads rarely repeat a string, and
/// for them the map would cost more than it saves.
const SCAN_CACHE_AFTER: usize = 64;

/// A key's meaning, independent of where it occurs.
#[derive(Debug, Clone, Copy)]
struct KeyInfo {
    /// The role outside person contexts.
    role: Role,
    /// The key's class (denylist minus safe list), for sibling and query-key checks.
    class: Option<KeyClass>,
    /// The key is just `name`.
    bare_name: bool,
}

impl Cx {
    fn push(&mut self, seg: &str) -> usize {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(seg);
        len
    }

    fn push_index(&mut self, i: usize) -> usize {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        push_decimal(&mut self.path, i);
        len
    }

    fn pop(&mut self, len: usize) {
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
    Skip,
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

    pub(crate) fn scrub(&self, kind: PayloadKind, value: &mut Node<'_>) -> ScrubReport {
        let mut cx = Cx {
            known: self.known_keys.snapshot(),
            ..Cx::default()
        };
        self.walk_kind(kind, value, &mut cx);
        // Echo labels can change how a string parses (a query value, a SQL statement), so
        // after an echo pass that changed something the item is walked again, as a second
        // scrub would, until a round changes nothing.
        for _ in 0..MAX_ECHO_ROUNDS {
            if cx.echo.is_empty() {
                break;
            }
            let before = cx.changes();
            self.echo_pass(value, &mut cx);
            if cx.changes() == before {
                break;
            }
            let before = cx.changes();
            self.walk_kind(kind, value, &mut cx);
            if cx.changes() == before {
                break;
            }
        }
        self.known_keys.learn(&cx.known, &cx.keys);
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

    // === payload kinds ===

    fn event_root(&self, map: &mut Object<'_>, cx: &mut Cx) {
        let mut remove = Vec::new();
        for (idx, (key, child)) in map.iter_mut().enumerate() {
            let len = cx.push(key);
            let outcome = match key.as_str() {
                "user" => {
                    if let Node::Object(user) = child {
                        self.user(user, cx);
                    }
                    Outcome::Keep
                }
                "request" => {
                    if let Node::Object(request) = child {
                        self.request(request, cx);
                    } else {
                        self.walk_value(child, key, cx);
                    }
                    Outcome::Keep
                }
                "breadcrumbs" => {
                    self.breadcrumbs(child, cx);
                    Outcome::Keep
                }
                "spans" => {
                    if let Node::Array(spans) = child {
                        for (i, span) in spans.iter_mut().enumerate() {
                            let l = cx.push_index(i);
                            if let Node::Object(span) = span {
                                self.span(span, cx);
                            }
                            cx.pop(l);
                        }
                    }
                    Outcome::Keep
                }
                "sdk" => Outcome::Keep,
                "_meta" => {
                    self.meta(child, cx);
                    Outcome::Keep
                }
                "urls" => {
                    self.walk_value(child, key, cx);
                    Outcome::Keep
                }
                _ => self.apply_key(key, child, false, cx),
            };
            if outcome == Outcome::Remove {
                remove.push(idx);
            }
            cx.pop(len);
        }
        map.remove_indices(&remove);
        self.never_infer_ip(map, cx);
    }

    /// `_meta` is where SDKs annotate what they trimmed (sentry-python sends `len` and `rem`
    /// remarks for cut strings) and where Relay keeps original values (`val`). Its keys
    /// mirror the event's field names, so key rules would misfire on them; instead every
    /// original value goes (`meta_value` rule) and every other string is scanned as text,
    /// so nothing an SDK puts here reaches Sentry unscrubbed.
    fn meta(&self, value: &mut Node<'_>, cx: &mut Cx) {
        match value {
            Node::Str(s) => {
                if let Some(new) = self.scrub_text(s, "", cx) {
                    s.set(new);
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.meta(item, cx);
                    cx.pop(len);
                }
            }
            Node::Object(map) => {
                if cx.json_depth >= MAX_JSON_DEPTH {
                    return;
                }
                cx.json_depth += 1;
                visit_members(map, cx, |key, child, cx| {
                    if key == "val" {
                        self.rule_field(Structural::MetaValue, child, cx)
                    } else {
                        self.meta(child, cx);
                        Outcome::Keep
                    }
                });
                cx.json_depth -= 1;
            }
            Node::Number(_) | Node::Null | Node::Bool(_) => {}
        }
    }

    /// Asks Sentry not to infer the client IP from the connection (which is ours anyway).
    fn never_infer_ip(&self, map: &mut Object<'_>, cx: &mut Cx) {
        if !self.rules.enabled(Structural::ClientIp) {
            return;
        }
        let Some(sdk) = map.get_mut("sdk").and_then(Node::as_object_mut) else {
            return;
        };
        if !sdk.contains_key("settings") {
            sdk.push("settings", Node::Object(Object::new()));
        }
        if let Some(settings) = sdk.get_mut("settings").and_then(Node::as_object_mut) {
            if settings.get("infer_ip").and_then(Node::as_str) != Some("never") {
                settings.insert("infer_ip", Node::string("never"));
                let len = cx.push("sdk.settings.infer_ip");
                cx.record("client_ip", Method::Replace, 1);
                cx.pop(len);
            }
        }
    }

    fn user(&self, user: &mut Object<'_>, cx: &mut Cx) {
        visit_members(user, cx, |key, child, cx| match key {
            "id" => self.rule_field(Structural::UserId, child, cx),
            "email" => self.rule_field(Structural::UserEmail, child, cx),
            "username" => self.rule_field(Structural::UserUsername, child, cx),
            "name" => {
                if let Some(s) = child.as_str() {
                    self.collect_echo(KeyClass::Name, s, cx);
                }
                self.rule_field(Structural::UserName, child, cx)
            }
            "ip_address" => self.rule_field(Structural::ClientIp, child, cx),
            "geo" => self.rule_field(Structural::UserGeo, child, cx),
            "segment" => Outcome::Keep,
            _ => self.apply_key(key, child, true, cx),
        });
    }

    fn request(&self, request: &mut Object<'_>, cx: &mut Cx) {
        for (key, child) in request.iter_mut() {
            let len = cx.push(key);
            match key.as_str() {
                "headers" => self.headers(child, cx),
                "cookies" => self.apply_role(Role::Cookie, key, child, cx),
                "query_string" => self.apply_role(Role::Query, key, child, cx),
                "data" => self.apply_role(Role::Body, key, child, cx),
                "env" => {
                    if let Node::Object(env) = child {
                        let mut remove = Vec::new();
                        for (idx, (k, v)) in env.iter_mut().enumerate() {
                            let l = cx.push(k);
                            let outcome = match k.as_str() {
                                "REMOTE_ADDR"
                                | "REMOTE_HOST"
                                | "HTTP_X_FORWARDED_FOR"
                                | "HTTP_X_REAL_IP"
                                | "HTTP_CLIENT_IP" => self.rule_field(Structural::ClientIp, v, cx),
                                _ => self.apply_key(k, v, false, cx),
                            };
                            if outcome == Outcome::Remove {
                                remove.push(idx);
                            }
                            cx.pop(l);
                        }
                        env.remove_indices(&remove);
                    } else {
                        self.walk_value(child, key, cx);
                    }
                }
                "url" | "method" | "fragment" => self.walk_value(child, key, cx),
                _ => {
                    // apply_key on a request member never removes (no Remove-method
                    // class applies to these names by default); keep it generic.
                    if self.apply_key(key, child, false, cx) == Outcome::Remove {
                        *child = Node::Null;
                    }
                }
            }
            cx.pop(len);
        }
    }

    /// `request.headers` as an object or a list of `[name, value]` pairs.
    fn headers(&self, headers: &mut Node<'_>, cx: &mut Cx) {
        match headers {
            Node::Object(map) => {
                let mut remove = Vec::new();
                for (idx, (name, value)) in map.iter_mut().enumerate() {
                    let len = cx.push(name);
                    if self.header(name, value, cx) == Outcome::Remove {
                        remove.push(idx);
                    }
                    cx.pop(len);
                }
                map.remove_indices(&remove);
            }
            Node::Array(pairs) => self.pairs(pairs, false, cx, |eng, name, value, cx| {
                eng.header(name, value, cx)
            }),
            _ => self.walk_value(headers, "headers", cx),
        }
    }

    fn header(&self, name: &str, value: &mut Node<'_>, cx: &mut Cx) -> Outcome {
        let lower = name.to_ascii_lowercase();
        let lower = lower.replace('_', "-");
        if IP_HEADERS.contains(&lower.as_str()) {
            return self.rule_field(Structural::ClientIp, value, cx);
        }
        match lower.as_str() {
            "cookie" | "set-cookie" => {
                self.apply_role(Role::Cookie, name, value, cx);
                Outcome::Keep
            }
            "referer" | "referrer" | "origin" | "location" | "user-agent" => {
                self.walk_value(value, name, cx);
                Outcome::Keep
            }
            _ => self.apply_key(name, value, false, cx),
        }
    }

    fn breadcrumbs(&self, crumbs: &mut Node<'_>, cx: &mut Cx) {
        let list = match crumbs {
            Node::Object(map) => {
                if !matches!(map.get("values"), Some(Node::Array(_))) {
                    self.walk_value(crumbs, "breadcrumbs", cx);
                    return;
                }
                // Every `values` member: a duplicate key must not hide a list (or anything
                // else) from the scrubber; what a reader sees is the last one.
                for (key, values) in map.iter_mut() {
                    if key.as_str() != "values" {
                        continue;
                    }
                    let len = cx.push("values");
                    match values {
                        Node::Array(list) => self.crumb_list(list, cx),
                        other => self.walk_value(other, "values", cx),
                    }
                    cx.pop(len);
                }
                return;
            }
            Node::Array(list) => list,
            _ => return,
        };
        self.crumb_list(list, cx);
    }

    fn crumb_list(&self, list: &mut [Node<'_>], cx: &mut Cx) {
        for (i, crumb) in list.iter_mut().enumerate() {
            let len = cx.push_index(i);
            if let Node::Object(crumb) = crumb {
                let category = crumb.get("category").and_then(Node::as_str).unwrap_or("");
                let kind = crumb.get("type").and_then(Node::as_str).unwrap_or("");
                let is_sql = matches!(category, "query" | "sql" | "db")
                    || category.starts_with("db.")
                    || kind == "query";
                for (key, child) in crumb.iter_mut() {
                    let l = cx.push(key);
                    if key == "message" {
                        let role = if is_sql { Role::Sql } else { Role::Generic };
                        self.apply_role(role, key, child, cx);
                    } else if self.apply_key(key, child, false, cx) == Outcome::Remove {
                        *child = Node::Null;
                    }
                    cx.pop(l);
                }
            } else {
                self.walk_value(crumb, "breadcrumbs", cx);
            }
            cx.pop(len);
        }
    }

    /// A transaction's span or a legacy standalone span.
    fn span(&self, span: &mut Object<'_>, cx: &mut Cx) {
        let is_db = span
            .get("op")
            .and_then(Node::as_str)
            .is_some_and(|op| op.starts_with("db"));
        visit_members(span, cx, |key, child, cx| {
            if key == "description" {
                let sql_like = is_db || child.as_str().is_some_and(sql::looks_like_sql);
                let role = if sql_like { Role::Sql } else { Role::Generic };
                self.apply_role(role, key, child, cx);
                Outcome::Keep
            } else {
                self.apply_key(key, child, false, cx)
            }
        });
    }

    /// `{"version":…, "ingest_settings":…, "items":[…]}` of logs, spans v2, trace metrics.
    fn container(&self, map: &mut Object<'_>, cx: &mut Cx) {
        for (key, child) in map.iter_mut() {
            let len = cx.push(key);
            match (key.as_str(), child) {
                ("items", Node::Array(items)) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        let l = cx.push_index(i);
                        match item {
                            Node::Object(item) => self.container_item(item, cx),
                            other => self.walk_value(other, "items", cx),
                        }
                        cx.pop(l);
                    }
                }
                ("ingest_settings", Node::Object(settings)) => {
                    if self.rules.enabled(Structural::ClientIp) {
                        for k in ["infer_ip", "infer_user_agent"] {
                            if let Some(v) = settings.get_mut(k) {
                                if v.as_str() != Some("never") {
                                    *v = Node::string("never");
                                    let l = cx.push(k);
                                    cx.record("client_meta", Method::Replace, 1);
                                    cx.pop(l);
                                }
                            }
                        }
                    }
                }
                ("version", _) => {}
                (_, child) => {
                    if self.apply_key(key, child, false, cx) == Outcome::Remove {
                        *child = Node::Null;
                    }
                }
            }
            cx.pop(len);
        }
    }

    fn container_item(&self, item: &mut Object<'_>, cx: &mut Cx) {
        let is_db = item
            .get("attributes")
            .and_then(|a| a.get("sentry.op"))
            .and_then(|op| op.get("value"))
            .and_then(Node::as_str)
            .is_some_and(|op| op.starts_with("db"));
        visit_members(item, cx, |key, child, cx| match (key, child) {
            ("attributes", Node::Object(attrs)) => {
                self.attributes(attrs, cx);
                Outcome::Keep
            }
            ("name", child) => {
                let sql_like = is_db || child.as_str().is_some_and(sql::looks_like_sql);
                let role = if sql_like { Role::Sql } else { Role::Generic };
                self.apply_role(role, key, child, cx);
                Outcome::Keep
            }
            ("body", child) => {
                self.walk_value(child, key, cx);
                Outcome::Keep
            }
            (_, child) => self.apply_key(key, child, false, cx),
        });
    }

    /// Typed attributes: `{"name": {"value": …, "type": …}}`. The attribute name is the key.
    fn attributes(&self, attrs: &mut Object<'_>, cx: &mut Cx) {
        let mut remove = Vec::new();
        for (idx, (name, attr)) in attrs.iter_mut().enumerate() {
            if self.structural.contains(name.as_str()) {
                continue;
            }
            let len = cx.push(name);
            let outcome = match attr {
                Node::Object(obj) if obj.contains_key("value") => {
                    // Every `value` member (duplicates included); one `Remove` removes the
                    // attribute.
                    let mut outcome = Outcome::Keep;
                    for (key, target) in obj.iter_mut() {
                        if key.as_str() != "value" {
                            continue;
                        }
                        let l2 = cx.push("value");
                        if self.attribute(name, target, cx) == Outcome::Remove {
                            outcome = Outcome::Remove;
                        }
                        cx.pop(l2);
                    }
                    outcome
                }
                other => self.attribute(name, other, cx),
            };
            if outcome == Outcome::Remove {
                remove.push(idx);
            }
            cx.pop(len);
        }
        attrs.remove_indices(&remove);
    }

    /// One typed attribute's value, by the attribute's name.
    fn attribute(&self, name: &str, target: &mut Node<'_>, cx: &mut Cx) -> Outcome {
        match name {
            "user.ip_address" | "client.address" => {
                self.rule_field(Structural::ClientIp, target, cx)
            }
            "user.id" => self.rule_field(Structural::UserId, target, cx),
            "user.email" => self.rule_field(Structural::UserEmail, target, cx),
            "user.name" | "user.username" => self.rule_field(Structural::UserUsername, target, cx),
            "user.geo.city"
            | "user.geo.region"
            | "user.geo.subdivision"
            | "user.geo.country_code" => self.rule_field(Structural::UserGeo, target, cx),
            "url.query" | "http.query" => {
                self.apply_role(Role::Query, name, target, cx);
                Outcome::Keep
            }
            "db.query.text" | "db.statement" => {
                self.apply_role(Role::Sql, name, target, cx);
                Outcome::Keep
            }
            "http.request.body.data" | "http.response.body.data" => {
                self.apply_role(Role::Body, name, target, cx);
                Outcome::Keep
            }
            n => {
                if let Some(header) = n
                    .strip_prefix("http.request.header.")
                    .or_else(|| n.strip_prefix("http.response.header."))
                {
                    self.header(header, target, cx)
                } else {
                    self.apply_key(n, target, false, cx)
                }
            }
        }
    }

    fn session(&self, map: &mut Object<'_>, cx: &mut Cx) {
        visit_members(map, cx, |key, child, cx| match (key, child) {
            ("did", child) => self.rule_field(Structural::SessionDid, child, cx),
            ("sid", _) => Outcome::Keep,
            ("attrs", Node::Object(attrs)) => {
                self.session_attrs(attrs, cx);
                Outcome::Keep
            }
            (_, child) => self.apply_key(key, child, false, cx),
        });
    }

    fn session_attrs(&self, attrs: &mut Object<'_>, cx: &mut Cx) {
        visit_members(attrs, cx, |key, child, cx| match key {
            "ip_address" => self.rule_field(Structural::ClientIp, child, cx),
            "user_agent" => self.rule_field(Structural::ClientMeta, child, cx),
            _ => self.apply_key(key, child, false, cx),
        });
    }

    fn sessions(&self, map: &mut Object<'_>, cx: &mut Cx) {
        for (key, child) in map.iter_mut() {
            let len = cx.push(key);
            match (key.as_str(), child) {
                ("attrs", Node::Object(attrs)) => self.session_attrs(attrs, cx),
                ("aggregates", Node::Array(aggs)) => {
                    for (i, agg) in aggs.iter_mut().enumerate() {
                        let l = cx.push_index(i);
                        if let Node::Object(agg) = agg {
                            self.session(agg, cx);
                        }
                        cx.pop(l);
                    }
                }
                (_, child) => {
                    if self.apply_key(key, child, false, cx) == Outcome::Remove {
                        *child = Node::Null;
                    }
                }
            }
            cx.pop(len);
        }
    }

    fn envelope_header(&self, map: &mut Object<'_>, cx: &mut Cx) {
        let mut remove = Vec::new();
        for (idx, (key, child)) in map.iter_mut().enumerate() {
            let len = cx.push(key);
            let outcome = match (key.as_str(), child) {
                ("trace", Node::Object(trace)) => {
                    let mut drop = Vec::new();
                    for (idx, (k, v)) in trace.iter_mut().enumerate() {
                        let l = cx.push(k);
                        let o = match k.as_str() {
                            "user_id" => self.rule_field(Structural::UserId, v, cx),
                            "user_segment" => self.rule_field(Structural::ClientMeta, v, cx),
                            _ => self.apply_key(k, v, false, cx),
                        };
                        if o == Outcome::Remove {
                            drop.push(idx);
                        }
                        cx.pop(l);
                    }
                    trace.remove_indices(&drop);
                    Outcome::Keep
                }
                ("unreal_user_id", child) => self.rule_field(Structural::UserId, child, cx),
                ("dsn" | "sdk", _) => Outcome::Keep,
                (_, child) => self.apply_key(key, child, false, cx),
            };
            if outcome == Outcome::Remove {
                remove.push(idx);
            }
            cx.pop(len);
        }
        map.remove_indices(&remove);
    }

    // === generic walk ===

    /// [`Self::scrub_string_in`] repeated until the string reads the same (see
    /// [`until_stable`]): a redaction can change what kind of string it is (`/?token=' l'`
    /// loses its space and reads as a query).
    pub(crate) fn scrub_string_settled(&self, s: &str, key: &str, cx: &mut Cx) -> Option<String> {
        let (out, settled_text) = self.scrub_string_step(s, key, cx);
        let out = out?;
        // Free text already repeats until its output scans clean; when that output still
        // reads as free text, another round would only scan it again to learn nothing.
        if settled_text && self.reads_as_plain_text(&out) {
            return Some(out);
        }
        let again = until_stable(self, &out, cx, |t, cx| self.scrub_string_in(t, key, cx));
        Some(again.unwrap_or(out))
    }

    /// Whether [`Self::scrub_string_in`] would treat `s` as free text (not JSON, not a
    /// relative URL, not a form body, not too short, not a label). Errs towards `false`:
    /// a JSON-looking string counts as structured even if it would not parse.
    fn reads_as_plain_text(&self, s: &str) -> bool {
        let structured = json_like(s.trim())
            || is_relative_url(s)
            || (s.contains('&') && query::looks_like_form(s));
        s.len() >= 4 && !self.is_label(s) && !structured
    }

    pub(crate) fn walk_value(&self, value: &mut Node<'_>, key: &str, cx: &mut Cx) {
        match value {
            Node::Str(s) => {
                if let Some(new) = self.scrub_string_settled(s, key, cx) {
                    s.set(new);
                }
            }
            Node::Number(n) => {
                if is_big_integer(n) {
                    if let Some(new) = self.scrub_text(n, key, cx) {
                        *value = Node::string(new);
                    }
                }
            }
            Node::Array(items) => {
                if is_pair_list(items) && is_pair_key(key) {
                    self.pairs(items, false, cx, |eng, k, v, cx| {
                        eng.apply_key(k, v, false, cx)
                    });
                    return;
                }
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.walk_value(item, key, cx);
                    cx.pop(len);
                }
            }
            Node::Object(map) => {
                if cx.json_depth >= MAX_JSON_DEPTH {
                    return;
                }
                cx.json_depth += 1;
                self.walk_map(map, key, false, cx);
                cx.json_depth -= 1;
            }
            Node::Null | Node::Bool(_) => {}
        }
    }

    /// Walks an object. `person` says the object describes a person (so `name` is PII).
    fn walk_map(&self, map: &mut Object<'_>, parent: &str, person: bool, cx: &mut Cx) {
        let person = person || (map.contains_key("name") && self.person_context(map, parent, cx));
        visit_members(map, cx, |key, child, cx| {
            self.apply_key(key, child, person, cx)
        });
    }

    /// `[["name", value], …]` lists (tags, headers, cookies, query strings).
    fn pairs<'a>(
        &self,
        pairs: &mut Vec<Node<'a>>,
        _person: bool,
        cx: &mut Cx,
        f: impl Fn(&Self, &str, &mut Node<'a>, &mut Cx) -> Outcome,
    ) {
        let mut remove = Vec::new();
        for (i, pair) in pairs.iter_mut().enumerate() {
            let len = cx.push_index(i);
            match pair {
                Node::Array(kv) if kv.len() == 2 => {
                    let (first, rest) = kv.split_at_mut(1);
                    let name = first.first().and_then(Node::as_str).unwrap_or("");
                    let l = cx.push("1");
                    if let Some(v) = rest.first_mut() {
                        if f(self, name, v, cx) == Outcome::Remove {
                            remove.push(i);
                        }
                    }
                    cx.pop(l);
                }
                other => self.walk_value(other, "", cx),
            }
            cx.pop(len);
        }
        for i in remove.into_iter().rev() {
            pairs.remove(i);
        }
    }

    fn person_context(&self, map: &Object<'_>, parent: &str, cx: &mut Cx) -> bool {
        cx.tokens.split(parent);
        if PERSON_CONTEXT_WORDS.iter().any(|w| cx.tokens.contains(w)) {
            return true;
        }
        map.keys().any(|k| {
            self.key_class(k, cx)
                .is_some_and(|c| PHI_SIBLING.contains(&c))
        })
    }

    /// Classifies the keys SDKs send in almost every payload once, at compile time.
    pub(crate) fn seed_known_keys(&mut self, keys: &[&str]) {
        let mut cx = Cx::default();
        let mut table = KeyTable::with_capacity_and_hasher(keys.len(), KeyedBuild::default());
        for key in keys {
            table.insert(Box::<str>::from(*key), self.compute_key_info(key, &mut cx));
        }
        self.known_keys = KnownKeys {
            seeded: table.len(),
            table: arc_swap::ArcSwap::from_pointee(table),
        };
    }

    fn key_info(&self, key: &str, cx: &mut Cx) -> KeyInfo {
        if let Some(info) = cx.known.get(key) {
            return *info;
        }
        if let Some(info) = cx.keys.get(key) {
            return *info;
        }
        let info = self.compute_key_info(key, cx);
        if cx.keys.len() < 10_000 {
            cx.keys.insert(key.to_owned(), info);
        }
        info
    }

    fn compute_key_info(&self, key: &str, cx: &mut Cx) -> KeyInfo {
        cx.tokens.split(key);
        let safe = !self.safe.is_empty() && self.safe.find(&mut cx.tokens).is_some();
        let class = if safe {
            None
        } else {
            self.deny.find(&mut cx.tokens)
        };
        let bare_name = !safe && cx.tokens.len() == 1 && cx.tokens.get(0) == "name";
        let role = if self.structural.contains(key) || cx.tokens.last() == "version" {
            Role::Skip
        } else {
            match key {
                "cookie" | "cookies" | "Cookie" | "set-cookie" | "Set-Cookie" | "set_cookie" => {
                    Role::Cookie
                }
                "query_string" | "url.query" | "http.query" | "query" | "querystring" => {
                    Role::Query
                }
                "db.statement" | "db.query.text" | "db.sql" | "sql" => Role::Sql,
                _ => match class {
                    Some(class) => Role::Class(class),
                    None => match key {
                        "data" | "body" | "form" | "request_body" | "payload" => Role::Body,
                        _ => Role::Generic,
                    },
                },
            }
        };
        KeyInfo {
            role,
            class,
            bare_name,
        }
    }

    fn role(&self, key: &str, person: bool, cx: &mut Cx) -> Role {
        let info = self.key_info(key, cx);
        if person && info.bare_name && matches!(info.role, Role::Generic | Role::Body) {
            return Role::Class(KeyClass::Name);
        }
        info.role
    }

    fn apply_key(&self, key: &str, child: &mut Node<'_>, person: bool, cx: &mut Cx) -> Outcome {
        let role = self.role(key, person, cx);
        if let Role::Class(class) = role {
            if let Some(action) = self.class_actions.get(&class) {
                if action.method == Method::Remove {
                    if child.is_null() {
                        return Outcome::Keep;
                    }
                    cx.record(&action.rule, Method::Remove, 1);
                    return Outcome::Remove;
                }
            }
        }
        self.apply_role(role, key, child, cx);
        Outcome::Keep
    }

    fn apply_role(&self, role: Role, key: &str, child: &mut Node<'_>, cx: &mut Cx) {
        match (role, child) {
            (Role::Skip, _) => {}
            (Role::Class(class), child) => self.redact_whole(class, child, cx),
            (Role::Cookie, Node::Str(s)) => {
                if let Some(new) = cookie::scrub_cookies(self, s, cx) {
                    s.set(new);
                }
            }
            (Role::Cookie, node @ Node::Number(_)) => {
                // Read as the cookie header it stands for, as a second pass (which sees the
                // redacted string) would: anything else is not idempotent.
                let new = match &*node {
                    Node::Number(n) => cookie::scrub_cookies(self, n, cx),
                    _ => None,
                };
                if let Some(new) = new {
                    *node = Node::Str(Text::from(new));
                }
            }
            (Role::Cookie, Node::Array(items)) if !is_pair_list(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    if let Node::Str(s) = item {
                        if let Some(new) = cookie::scrub_cookies(self, s, cx) {
                            s.set(new);
                        }
                    }
                    cx.pop(len);
                }
            }
            (Role::Cookie, Node::Array(items)) => {
                self.pairs(items, false, cx, |eng, name, v, cx| {
                    eng.cookie_member(name, v, cx);
                    Outcome::Keep
                });
            }
            (Role::Cookie, Node::Object(map)) => {
                for (name, v) in map.iter_mut() {
                    let len = cx.push(name);
                    self.cookie_member(name, v, cx);
                    cx.pop(len);
                }
            }
            (Role::Query, Node::Str(s)) => {
                if let Some(new) = query::scrub_query(self, s, key, cx) {
                    s.set(new);
                }
            }
            (Role::Sql, Node::Str(s)) => {
                if let Some(new) = self.scrub_sql(s, key, cx) {
                    s.set(new);
                }
            }
            (Role::Body, Node::Str(s)) => {
                let new = until_stable(self, s, cx, |text, cx| {
                    if query::looks_like_form(text) {
                        query::scrub_query(self, text, key, cx)
                    } else {
                        self.scrub_string_in(text, key, cx)
                    }
                });
                if let Some(new) = new {
                    s.set(new);
                }
            }
            (_, child) => self.walk_value(child, key, cx),
        }
    }

    fn cookie_member(&self, name: &str, v: &mut Node<'_>, cx: &mut Cx) {
        match v {
            Node::Str(s) => {
                if let Some(new) = self.scrub_cookie_value(name, s, cx) {
                    s.set(new);
                }
            }
            other => self.walk_value(other, name, cx),
        }
    }

    /// SQL: literals become `?`, then the value detectors run over what is left. A label
    /// can change how the statement lexes (`…[email].789` makes `.789` a number), so both
    /// steps repeat until neither changes anything, as a second scrub would.
    fn scrub_sql(&self, s: &str, key: &str, cx: &mut Cx) -> Option<String> {
        let strip = self.rules.enabled(Structural::SqlLiteral);
        until_stable(self, s, cx, |text, cx| {
            let (stripped, count) = if strip {
                sql::strip_literals(text)
            } else {
                (text.to_owned(), 0)
            };
            if count > 0 {
                cx.record(Structural::SqlLiteral.name(), Method::Replace, count);
            }
            match self.scrub_text(&stripped, key, cx) {
                Some(new) => Some(new),
                None if count > 0 => Some(stripped),
                None => None,
            }
        })
    }

    // === redaction primitives (used by structured/) ===

    pub(crate) fn key_class(&self, key: &str, cx: &mut Cx) -> Option<KeyClass> {
        self.key_info(key, cx).class
    }

    pub(crate) fn is_label(&self, s: &str) -> bool {
        let Some(&first) = s.as_bytes().first() else {
            return true;
        };
        s.len() <= self.label_max_len
            && self.label_first[usize::from(first)]
            && self.labels.contains(s)
    }

    /// Redacts a whole value under a sensitive key (containers: every leaf).
    fn redact_whole(&self, class: KeyClass, value: &mut Node<'_>, cx: &mut Cx) {
        match value {
            Node::Str(s) => {
                if let Some(new) = self.redact_class(class, s, cx) {
                    s.set(new);
                }
            }
            Node::Number(n) => {
                if let Some(new) = self.redact_class(class, n, cx) {
                    *value = Node::string(new);
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.redact_whole(class, item, cx);
                    cx.pop(len);
                }
            }
            Node::Object(map) => {
                for (k, item) in map.iter_mut() {
                    let len = cx.push(k);
                    self.redact_whole(class, item, cx);
                    cx.pop(len);
                }
            }
            Node::Null | Node::Bool(_) => {}
        }
    }

    /// Redacts one string found under a key of `class`; `None` if unchanged.
    pub(crate) fn redact_class(&self, class: KeyClass, value: &str, cx: &mut Cx) -> Option<String> {
        let action = self.class_actions.get(&class)?;
        if self.is_label(value) {
            return None;
        }
        self.collect_echo(class, value, cx);
        self.redact_action(action, value, cx)
    }

    /// Redacts with a structural rule (`url_password`, `cookie`, `user_id`, …).
    pub(crate) fn redact_rule(&self, rule: Structural, value: &str, cx: &mut Cx) -> Option<String> {
        if !self.rules.enabled(rule) || self.is_label(value) {
            return None;
        }
        self.redact_action(self.rules.action(rule), value, cx)
    }

    fn redact_action(&self, action: &Action, value: &str, cx: &mut Cx) -> Option<String> {
        if action.method == Method::Hash && self.redactor.is_pseudonym(&action.label, value) {
            return None;
        }
        let new = self.redactor.apply(action, value);
        if new == value {
            return None;
        }
        cx.record(&action.rule, action.method, 1);
        Some(new)
    }

    /// Applies a structural rule to a whole field (`user.id`, session `did`, …).
    fn rule_field(&self, rule: Structural, value: &mut Node<'_>, cx: &mut Cx) -> Outcome {
        if !self.rules.enabled(rule) {
            self.walk_value(value, rule.name(), cx);
            return Outcome::Keep;
        }
        let action = self.rules.action(rule);
        if action.method == Method::Remove {
            if value.is_null() && rule != Structural::ClientIp {
                return Outcome::Keep;
            }
            cx.record(&action.rule, Method::Remove, 1);
            return Outcome::Remove;
        }
        match value {
            Node::Str(s) => {
                if let Some(new) = self.redact_rule(rule, s, cx) {
                    s.set(new);
                }
            }
            Node::Number(n) => {
                if let Some(new) = self.redact_rule(rule, n, cx) {
                    *value = Node::string(new);
                }
            }
            Node::Array(_) | Node::Object(_) => self.walk_value(value, rule.name(), cx),
            Node::Null | Node::Bool(_) => {}
        }
        Outcome::Keep
    }

    pub(crate) fn scrub_cookie_value(
        &self,
        name: &str,
        value: &str,
        cx: &mut Cx,
    ) -> Option<String> {
        cx.tokens.split(name);
        if self.cookie_names.find(&mut cx.tokens).is_some() {
            return self.redact_rule(Structural::Cookie, value, cx);
        }
        match self.key_class(name, cx) {
            Some(class) => self.redact_class(class, value, cx),
            None => self.scrub_text(value, name, cx),
        }
    }

    /// A string that may hold JSON: parsed, walked and re-encoded if anything changed;
    /// otherwise scanned as text.
    pub(crate) fn scrub_string_in(&self, s: &str, key: &str, cx: &mut Cx) -> Option<String> {
        self.scrub_string_step(s, key, cx).0
    }

    /// [`Self::scrub_string_in`], also saying whether `s` went the free-text way and its
    /// result settled there (scanning it again finds nothing).
    fn scrub_string_step(&self, s: &str, key: &str, cx: &mut Cx) -> (Option<String>, bool) {
        if s.len() < 4 || self.is_label(s) {
            return (None, false);
        }
        let trimmed = s.trim();
        if json_like(trimmed) && cx.depth < MAX_NESTING {
            if let Ok(mut parsed) = json::parse(trimmed) {
                if parsed.is_object() || parsed.is_array() {
                    let before = cx.report.redactions.len();
                    let before_total = cx.report.total();
                    cx.depth += 1;
                    self.walk_value(&mut parsed, key, cx);
                    cx.depth -= 1;
                    if cx.report.redactions.len() != before || cx.report.total() != before_total {
                        return (Some(json::to_string(&parsed)), false);
                    }
                    return (None, false);
                }
            }
        }
        if is_relative_url(s) {
            return (url::scrub_relative(self, s, key, cx), false);
        }
        if s.contains('&') && query::looks_like_form(s) && cx.depth < MAX_NESTING {
            cx.depth += 1;
            let r = query::scrub_query(self, s, key, cx);
            cx.depth -= 1;
            return (r, false);
        }
        until_stable_settled(self, s, cx, |t, cx| self.scrub_text_once(t, key, cx))
    }

    /// Free text: every detector, redacted in place, token by token. Repeated on its own
    /// output until nothing changes (a value hidden by an overlapping candidate in one pass,
    /// like a phone number glued to an SSN, is found in the next), so scrubbing scrubbed
    /// text changes nothing.
    pub(crate) fn scrub_text(&self, text: &str, key: &str, cx: &mut Cx) -> Option<String> {
        until_stable(self, text, cx, |t, cx| self.scrub_text_once(t, key, cx))
    }

    /// One pass of every detector over `text`.
    fn scrub_text_once(&self, text: &str, key: &str, cx: &mut Cx) -> Option<String> {
        let mut hits = Vec::new();
        if !self.scan(text, key, cx, &mut hits) {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0usize;
        let mut counts: Vec<(usize, u32)> = Vec::new();
        for hit in &hits {
            let Some(det) = self.scanner.detectors.get(hit.detector) else {
                continue;
            };
            let Some(original) = text.get(hit.start..hit.end) else {
                continue;
            };
            let replacement = match det.kind {
                HitKind::Url => {
                    if cx.depth >= MAX_NESTING {
                        continue;
                    }
                    let trimmed = trim_url_end(original);
                    cx.depth += 1;
                    let new = url::scrub_url(self, trimmed, key, cx);
                    cx.depth -= 1;
                    match new {
                        Some(mut n) => {
                            n.push_str(&original[trimmed.len()..]);
                            n
                        }
                        None => continue,
                    }
                }
                HitKind::Redact => {
                    // A hit always names one of the scanner's detectors; were it not so, the
                    // text is still redacted (whole-value rule), never kept.
                    let action = self
                        .scanner
                        .action(hit.detector)
                        .unwrap_or_else(|| self.rules.action(Structural::Unsettled));
                    if self.is_label(original) {
                        continue;
                    }
                    if action.method == Method::Hash
                        && self.redactor.is_pseudonym(&action.label, original)
                    {
                        continue;
                    }
                    let new = self.redactor.apply(action, original);
                    if new == original {
                        continue;
                    }
                    if action.rule == "person_name" {
                        self.collect_echo(KeyClass::Name, original, cx);
                    }
                    match counts.iter_mut().find(|(d, _)| *d == hit.detector) {
                        Some((_, c)) => *c += 1,
                        None => counts.push((hit.detector, 1)),
                    }
                    new
                }
            };
            out.push_str(text.get(last..hit.start).unwrap_or(""));
            out.push_str(&replacement);
            last = hit.end;
        }
        if last == 0 {
            return None;
        }
        out.push_str(text.get(last..).unwrap_or(""));
        for (det, count) in counts {
            let action = self
                .scanner
                .action(det)
                .unwrap_or_else(|| self.rules.action(Structural::Unsettled));
            cx.record(&action.rule, action.method, count);
        }
        if out == text {
            return None;
        }
        Some(out)
    }

    /// The detector hits in `text`, from the per-call cache when the same string was
    /// scanned before. Returns whether there are any.
    fn scan(&self, text: &str, key: &str, cx: &mut Cx, hits: &mut Vec<Hit>) -> bool {
        cx.scanned += 1;
        let cacheable = self.scanner.text_only
            && text.len() <= SCAN_CACHE_MAX_LEN
            && cx.scanned > SCAN_CACHE_AFTER;
        if cacheable {
            if let Some(&(start, len)) = cx.scans.get(text) {
                if len == 0 {
                    return false;
                }
                let (start, len) = (start as usize, len as usize);
                if let Some(cached) = cx.scan_hits.get(start..start + len) {
                    hits.clear();
                    hits.extend_from_slice(cached);
                    return true;
                }
            }
        }
        self.scanner.scan(text, key, &cx.path, hits);
        if cacheable && cx.scans.len() < SCAN_CACHE_MAX_ENTRIES {
            let start = u32::try_from(cx.scan_hits.len()).ok();
            let len = u32::try_from(hits.len()).ok();
            if let (Some(start), Some(len)) = (start, len) {
                cx.scan_hits.extend_from_slice(hits);
                cx.scans.insert(text.into(), (start, len));
            }
        }
        !hits.is_empty()
    }

    // === echo: values found under name/id keys, wherever else they appear ===

    fn collect_echo(&self, class: KeyClass, value: &str, cx: &mut Cx) {
        if !class.echoes() || !self.echo_enabled {
            return;
        }
        let v = value.trim().trim_matches(['\'', '"']);
        let chars = v.chars().count();
        let ok = match class {
            KeyClass::Name | KeyClass::Address => {
                chars >= 3 && v.chars().any(char::is_alphabetic) && !self.is_label(v)
            }
            _ => chars >= 5 && v.bytes().any(|b| b.is_ascii_digit()),
        };
        if ok && chars <= 200 && cx.echo_seen.insert(Box::from(v)) {
            cx.echo.push((v.to_owned(), class));
        }
    }

    fn echo_pass(&self, value: &mut Node<'_>, cx: &mut Cx) {
        let mut matcher = EchoMatcher::new(cx.echo.iter().map(|(v, _)| v.as_str()));
        let labels: Vec<&str> = cx
            .echo
            .iter()
            .map(|(_, class)| {
                self.echo_label
                    .get(class)
                    .map_or("[Filtered]", String::as_str)
            })
            .collect();
        cx.path.clear();
        self.echo_walk(value, &mut matcher, &labels, cx);
    }

    fn echo_walk(
        &self,
        value: &mut Node<'_>,
        matcher: &mut EchoMatcher,
        labels: &[&str],
        cx: &mut Cx,
    ) {
        match value {
            Node::Str(s) => {
                if self.is_label(s) {
                    return;
                }
                let mut out = String::new();
                let mut last = 0usize;
                let mut count = 0u32;
                for m in matcher.find_iter(s.as_str()) {
                    let before = s.get(..m.start).and_then(|t| t.chars().next_back());
                    let after = s.get(m.end..).and_then(|t| t.chars().next());
                    if before.is_some_and(char::is_alphanumeric)
                        || after.is_some_and(char::is_alphanumeric)
                    {
                        continue;
                    }
                    let Some(label) = labels.get(m.pattern) else {
                        continue;
                    };
                    out.push_str(s.get(last..m.start).unwrap_or(""));
                    out.push_str(label);
                    last = m.end;
                    count += 1;
                }
                if count > 0 {
                    out.push_str(s.get(last..).unwrap_or(""));
                    if out != s.as_str() {
                        s.set(out);
                        cx.record("echo", Method::Replace, count);
                    }
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.echo_walk(item, matcher, labels, cx);
                    cx.pop(len);
                }
            }
            Node::Object(map) => {
                for (k, item) in map.iter_mut() {
                    if self.structural.contains(k.as_str()) {
                        continue;
                    }
                    let len = cx.push(k);
                    self.echo_walk(item, matcher, labels, cx);
                    cx.pop(len);
                }
            }
            _ => {}
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

/// A path with a query and no whitespace: `/search?q=…`.
fn is_relative_url(s: &str) -> bool {
    s.starts_with('/') && s.contains('?') && !s.contains(char::is_whitespace)
}

/// Appends `n` in decimal. Array indices are pushed onto the path for every element, and
/// `core::fmt` machinery was ~4 % of the scrub profile.
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

/// Drops trailing punctuation that belongs to the sentence, not the URL; closing brackets
/// only when unbalanced (`(see http://x/a)` vs `http://x/?q=[Filtered]`).
fn trim_url_end(url: &str) -> &str {
    let mut end = url.len();
    loop {
        let s = &url[..end];
        let Some(c) = s.chars().next_back() else {
            return s;
        };
        let drop = match c {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"' => true,
            ')' => !closes_open(bracket_scope(s), '(', ')'),
            ']' => !closes_open(bracket_scope(s), '[', ']'),
            '}' => !closes_open(bracket_scope(s), '{', '}'),
            _ => false,
        };
        if !drop {
            return s;
        }
        end -= c.len_utf8();
    }
}

/// Where a closing bracket at the end of a URL must find its opener to belong to the URL:
/// in a URL with a query or fragment, the last key or value (`?q=[Filtered]`), else the
/// whole URL (`http://x/(a)`). Scoping it to the last value keeps the boundary where it
/// was after that value is redacted: a value `]` that closed `card[` in `?card[=]]]` would
/// otherwise become a balanced label, and every later pass would pull one more `]` into
/// the URL.
fn bracket_scope(url: &str) -> &str {
    if !url.contains(['?', '#']) {
        return url;
    }
    match url.rfind(['?', '&', '=', '#']) {
        Some(at) => &url[at + 1..],
        None => url,
    }
}

/// Whether the last character of `s` (a `close`) closes an `open` before it. Scanned left
/// to right so a stray `close` earlier on (`http://1.2.3.4]:80/?q=[Filtered]`) does not
/// make the final one look unbalanced: trimming it would make every pass append one more.
fn closes_open(s: &str, open: char, close: char) -> bool {
    let mut chars = s.chars();
    chars.next_back();
    let mut depth = 0usize;
    for c in chars {
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.saturating_sub(1);
        }
    }
    depth > 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_end_keeps_closing_brackets_that_close_something() {
        use super::trim_url_end;
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
