//! Text redaction: the primitives structured parsers call (a class, a rule, an action on a
//! value) and the detector pass over free text.

use crate::json::{self, Node};

use super::*;
use crate::scrub::formats::{cda, hl7, x12};
use crate::scrub::structured::url::{is_relative_url, trim_url_end};
use crate::scrub::structured::{encoded, kv, request_line};

/// A reader of structure inside free text: `None` if it changed nothing.
type StructureStep = fn(&Engine, &str, &str, &mut Cx) -> Option<String>;

impl Engine {
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
    pub(super) fn redact_whole(&self, class: KeyClass, value: &mut Node<'_>, cx: &mut Cx) {
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
        if self.is_redacted(action, value) {
            return None;
        }
        let new = self.redact_action(action, value, cx)?;
        self.collect_echo(EchoSource::Class(class), value, action, &new, cx);
        Some(new)
    }

    /// Whether `value` is already what `action` writes: a label, or its own pseudonym
    /// (which must not be echoed either: the echo would replace the pseudonym everywhere).
    fn is_redacted(&self, action: &Action, value: &str) -> bool {
        self.is_label(value)
            || (action.method == Method::Hash && self.redactor.is_pseudonym(&action.label, value))
    }

    /// Redacts with a structural rule (`url_password`, `cookie`, `user_id`, …).
    pub(crate) fn redact_rule(&self, rule: Structural, value: &str, cx: &mut Cx) -> Option<String> {
        if !self.rules.enabled(rule) || self.is_label(value) {
            return None;
        }
        let action = self.rules.action(rule);
        let new = self.redact_action(action, value, cx)?;
        self.collect_echo(EchoSource::Rule(rule), value, action, &new, cx);
        Some(new)
    }

    pub(super) fn redact_action(
        &self,
        action: &Action,
        value: &str,
        cx: &mut Cx,
    ) -> Option<String> {
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
    pub(super) fn rule_field(
        &self,
        rule: Structural,
        value: &mut Node<'_>,
        cx: &mut Cx,
    ) -> Outcome {
        if !self.rules.enabled(rule) {
            self.walk_value(value, rule.name(), cx);
            return Outcome::Keep;
        }
        let action = self.rules.action(rule);
        if action.method == Method::Remove {
            if value.is_null() && rule != Structural::ClientIp {
                return Outcome::Keep;
            }
            if let Some(text) = scalar_text(value) {
                self.collect_echo(EchoSource::Rule(rule), text, action, "", cx);
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
            // An application's session cookie can have any name (`rxsession`,
            // `claims_sid`), so in the hipaa profile only preference cookies keep theirs.
            None if self.cookies_allowlisted && !allowed_cookie(name, cx) => {
                self.redact_rule(Structural::Cookie, value, cx)
            }
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
    pub(super) fn scrub_string_step(
        &self,
        s: &str,
        key: &str,
        cx: &mut Cx,
    ) -> (Option<String>, bool) {
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
        if let Some(opts) = &self.formats.hl7 {
            if let Some(at) = hl7::find(s) {
                return (hl7::scrub(self, s, at, key, opts, cx), false);
            }
        }
        if self.formats.cda {
            if let Some(at) = cda::find(s) {
                return (cda::scrub(self, s, at, key, cx), false);
            }
        }
        if self.formats.x12 {
            if let Some(at) = x12::find(s) {
                return (x12::scrub(self, s, at, key, cx), false);
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

    /// One pass over free text: every detector, then what the detectors cannot see
    /// because it needs structure (see [`Self::structure_once`]).
    pub(super) fn scrub_text_once(&self, text: &str, key: &str, cx: &mut Cx) -> Option<String> {
        let detected = self.detect_once(text, key, cx);
        let structured = self.structure_once(detected.as_deref().unwrap_or(text), key, cx);
        structured.or(detected)
    }

    /// Structure inside free text, read after the detectors (whose labels it then leaves
    /// alone): request targets and relative URLs (`POST /checkout?note=… HTTP/1.1`),
    /// percent-encoded runs (`note%3DJane%20Doe`), and keys (`mrn='A123'`, `ssn: …`).
    fn structure_once(&self, text: &str, key: &str, cx: &mut Cx) -> Option<String> {
        // Like the detector hits, a repeated string's "nothing here" is remembered, when it
        // depends on the text alone: no detector limited to keys or paths, not read at a
        // nesting depth that cut a reader short, and no reader looked at the JSON key.
        let cacheable = self.scanner.text_only
            && cx.depth == 0
            && text.len() <= SCAN_CACHE_MAX_LEN
            && cx.scanned > SCAN_CACHE_AFTER;
        if cacheable && cx.structure_clean.contains(text) {
            return None;
        }
        let outer_keyed = std::mem::replace(&mut cx.structure_keyed, false);
        let steps: [StructureStep; 3] = [
            request_line::scrub_targets,
            encoded::scrub_runs,
            kv::scrub_pairs,
        ];
        let mut current: Option<String> = None;
        for step in steps {
            if let Some(next) = step(self, current.as_deref().unwrap_or(text), key, cx) {
                current = Some(next);
            }
        }
        let current = current.filter(|c| c != text);
        if cacheable
            && current.is_none()
            && !cx.structure_keyed
            && cx.structure_clean.len() < SCAN_CACHE_MAX_ENTRIES
        {
            cx.structure_clean.insert(text.into());
        }
        cx.structure_keyed |= outer_keyed;
        current
    }

    /// One pass of every detector over `text`.
    fn detect_once(&self, text: &str, key: &str, cx: &mut Cx) -> Option<String> {
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
                    self.collect_echo(
                        EchoSource::Detector(&action.rule),
                        original,
                        action,
                        &new,
                        cx,
                    );
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
    pub(super) fn scan(&self, text: &str, key: &str, cx: &mut Cx, hits: &mut Vec<Hit>) -> bool {
        cx.scanned += 1;
        let cacheable = self.scanner.text_only
            && text.len() <= SCAN_CACHE_MAX_LEN
            && cx.scanned > SCAN_CACHE_AFTER
            && !self.key_info(key, cx).scan_context;
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
}

/// Cookie names whose values are preferences, not identities: every word of the name is
/// one of these (`locale`, `theme`, `cookie_consent`, `OptanonConsent`, `dark-mode`).
const ALLOWED_COOKIE_WORDS: &[&str] = &[
    "locale",
    "lang",
    "language",
    "theme",
    "tz",
    "timezone",
    "consent",
    "cookieconsent",
    "optanon",
    "optanonconsent",
    "currency",
    "dark",
    "mode",
    "color",
    "colour",
    "scheme",
    "sidebar",
    "collapsed",
    "font",
    "size",
    "layout",
    "view",
    "cookie",
    "cookies",
    "banner",
    "dismissed",
    "accepted",
    "prefs",
    "preferences",
    "region",
    "country",
    "i18n",
    "next",
    "ui",
    "density",
    "contrast",
    "notice",
    "gdpr",
    "ccpa",
];

fn allowed_cookie(name: &str, cx: &mut Cx) -> bool {
    cx.tokens.split(name);
    let n = cx.tokens.len();
    n > 0 && (0..n).all(|i| ALLOWED_COOKIE_WORDS.contains(&cx.tokens.get(i)))
}

/// What the parsers of structure inside text (`structured::{kv, encoded, request_line,
/// sql_params}`) need from the engine: the JSON key rules, applied the same way.
impl Engine {
    /// Whether `key` is a plain `name` (not made safe by `safe_keys`), which is a person's
    /// name only in a person's context.
    pub(crate) fn is_bare_name_key(&self, key: &str, cx: &mut Cx) -> bool {
        self.key_info(key, cx).bare_name
    }

    /// Whether the JSON key a text sits under names a person, for a plain `name` at the
    /// top of the text (the answer then depends on the key, so it is not cached).
    pub(crate) fn key_names_a_person(&self, key: &str, cx: &mut Cx) -> bool {
        cx.structure_keyed = true;
        self.names_a_person(key, cx)
    }

    /// Whether `name` (an object's key, a class, a table) names a person: `patient`,
    /// `Customer`, `users`, … ([`PERSON_CONTEXT_WORDS`]).
    pub(crate) fn names_a_person(&self, name: &str, cx: &mut Cx) -> bool {
        cx.tokens.split(name);
        PERSON_CONTEXT_WORDS.iter().any(|w| cx.tokens.contains(w))
    }

    /// Whether a sibling of this class makes a plain `name` a person's name.
    pub(crate) fn is_phi_sibling(class: KeyClass) -> bool {
        PHI_SIBLING.contains(&class)
    }

    /// [`Self::redact_class`] for a value found in text; `echo` says whether it is also
    /// looked for elsewhere in the payload (not for literals in source code).
    pub(crate) fn redact_class_in_text(
        &self,
        class: KeyClass,
        value: &str,
        echo: bool,
        cx: &mut Cx,
    ) -> Option<String> {
        if echo {
            return self.redact_class(class, value, cx);
        }
        let action = self.class_actions.get(&class)?;
        if self.is_redacted(action, value) {
            return None;
        }
        self.redact_action(action, value, cx)
    }

    /// Redacts a whole value (containers: every leaf) as if it sat under a key of `class`.
    pub(crate) fn redact_value(&self, class: KeyClass, value: &mut Node<'_>, cx: &mut Cx) {
        self.redact_whole(class, value, cx);
    }

    /// Runs `f` one level deeper into nested structure (a URL in a query value, an encoded
    /// text inside an encoded text), or not at all past [`MAX_NESTING`].
    pub(crate) fn nested<R>(&self, cx: &mut Cx, f: impl FnOnce(&mut Cx) -> Option<R>) -> Option<R> {
        if cx.depth >= MAX_NESTING {
            return None;
        }
        cx.depth += 1;
        let r = f(cx);
        cx.depth -= 1;
        r
    }
}
