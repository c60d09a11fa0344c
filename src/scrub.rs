//! The rules engine: turns a JSON payload full of PII/PHI into one that is safe to send to a
//! third party, and reports what it did (rule, path, method, count — never a value).
//!
//! Pure and synchronous: no HTTP, no files, no envelopes. The server, `scrubgate scrub` and
//! `scrubgate test` all call [`Scrubber::scrub`], so they cannot disagree. It cannot fail at
//! runtime: every pattern is compiled by [`Scrubber::compile`] when the config loads.
//!
//! Invariant the pipeline relies on: a payload is changed if and only if the returned report
//! is non-empty. Untouched items are then forwarded byte-identical.

mod detectors;
mod echo;
mod hashing;
mod keys;
mod profile;
mod redact;
mod rule_table;
mod structured;
mod walk;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::{self, JsonError, Node};

use detectors::builtin::{Structural, Tier, BUILTINS};
pub use detectors::validate::Validator;
use detectors::{
    Check, DetectorSpec, HitKind, Scanner, ScannerError, Scope, CUSTOM_PATTERN_SIZE_LIMIT,
};
use keys::{KeyClass, KeyMatcher};
use redact::Redactor;

/// `[scrub]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrubSettings {
    /// The built-in rule set.
    pub profile: ProfileName,
    /// Extra keys whose values are always replaced, added to the profile's denylist.
    pub sensitive_keys: Vec<String>,
    /// Keys never treated as sensitive; wins over the denylist.
    pub safe_keys: Vec<String>,
    /// Environment variable holding the HMAC key for the `hash` method.
    pub hash_key_env: String,
    /// File holding the HMAC key (used when the environment variable is unset).
    pub hash_key_file: Option<std::path::PathBuf>,
    /// How a `replace` label is written: `{label}` is the rule's label (`email`), `{LABEL}`
    /// the same in capitals; without either, the text is used for every rule.
    pub label_format: String,
    /// Treat every US-style date (`MM/DD/YYYY`) in free text as a date of birth.
    pub dates_as_dob: bool,
    /// Per-rule overrides: `[scrub.detectors.card] method = "mask"`.
    pub detectors: BTreeMap<String, RuleOverride>,
    /// Custom value rules.
    pub patterns: Vec<PatternSettings>,
}

/// `[scrub.detectors.<rule>]`: changes how one built-in rule redacts, or turns it off/on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Characters kept by `mask` (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<usize>,
}

/// `[[scrub.patterns]]`: a custom value rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSettings {
    /// Rule name, used in reports and as the default label.
    pub name: String,
    /// A regex (Rust syntax). With a capture group named `redact` (or any capture group),
    /// only that part is redacted.
    pub regex: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<Validator>,
    #[serde(default = "default_method")]
    pub method: Method,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<usize>,
    /// Only apply under these keys (key syntax of `sensitive_keys`, globs allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Only apply at these dotted paths (`*` = one segment, `**` = any number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

fn default_method() -> Method {
    Method::Replace
}

impl Default for ScrubSettings {
    fn default() -> Self {
        Self {
            profile: ProfileName::Hipaa,
            sensitive_keys: Vec::new(),
            safe_keys: Vec::new(),
            hash_key_env: "SCRUBGATE_HASH_KEY".to_owned(),
            hash_key_file: None,
            label_format: "[{label}]".to_owned(),
            dates_as_dob: false,
            detectors: BTreeMap::new(),
            patterns: Vec::new(),
        }
    }
}

/// The built-in rule sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileName {
    /// PHI/PII and secrets: the default for regulated data.
    Hipaa,
    /// Only what the Sentry SDKs' own default denylist does.
    SecretsOnly,
}

/// The secret for the `hash` method. The id is written into every pseudonym so keys can be
/// rotated without confusing old and new pseudonyms.
#[derive(Clone)]
pub struct HashKey {
    pub id: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What kind of payload is being scrubbed; the engine knows where data hides in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// The envelope's first line (`trace.user_id`, `trace.transaction`, …).
    EnvelopeHeader,
    Event,
    Transaction,
    Feedback,
    UserReport,
    Session,
    Sessions,
    /// A legacy standalone span.
    Span,
    /// `{"items":[…]}` of span v2.
    SpanContainer,
    LogContainer,
    TraceMetricContainer,
    CheckIn,
    ReplayEvent,
    Profile,
    ProfileChunk,
    MetricBuckets,
    SecurityReport,
    /// Any other JSON: walked generically.
    Generic,
}

impl PayloadKind {
    /// Every kind, for tests and fuzz targets that must cover them all (a new kind added
    /// here is picked up by both).
    pub const ALL: [PayloadKind; 18] = [
        PayloadKind::EnvelopeHeader,
        PayloadKind::Event,
        PayloadKind::Transaction,
        PayloadKind::Feedback,
        PayloadKind::UserReport,
        PayloadKind::Session,
        PayloadKind::Sessions,
        PayloadKind::Span,
        PayloadKind::SpanContainer,
        PayloadKind::LogContainer,
        PayloadKind::TraceMetricContainer,
        PayloadKind::CheckIn,
        PayloadKind::ReplayEvent,
        PayloadKind::Profile,
        PayloadKind::ProfileChunk,
        PayloadKind::MetricBuckets,
        PayloadKind::SecurityReport,
        PayloadKind::Generic,
    ];
}

/// How a value was redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Replace,
    Mask,
    Hash,
    Remove,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Mask => "mask",
            Self::Hash => "hash",
            Self::Remove => "remove",
        }
    }
}

/// One redaction: where, by which rule, how, how many times. Never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redaction {
    /// Dotted JSON path, e.g. `exception.values.0.value`.
    pub path: String,
    pub rule: String,
    pub method: Method,
    pub count: u32,
}

/// Everything one `scrub` call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScrubReport {
    pub redactions: Vec<Redaction>,
}

impl ScrubReport {
    pub fn is_empty(&self) -> bool {
        self.redactions.is_empty()
    }

    /// Total number of redacted values.
    pub fn total(&self) -> u64 {
        self.redactions.iter().map(|r| u64::from(r.count)).sum()
    }
}

/// A bad scrub setting found at load time; names the rule or key.
#[derive(Debug, thiserror::Error)]
pub enum ScrubConfigError {
    #[error("scrub.{key}: {problem}")]
    Invalid { key: String, problem: String },
}

/// The compiled rule set. Cheap to share (`Arc`) across requests.
#[derive(Debug)]
pub struct Scrubber {
    engine: walk::Engine,
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ScrubConfigError {
    ScrubConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Scrubber {
    /// Compiles settings into a scrubber: every regex is built here, once, with a size
    /// limit.
    ///
    /// # Errors
    /// A setting that cannot be compiled, named by its key relative to `[scrub]` (an empty
    /// key, an unknown rule in `detectors`, a bad `patterns[i].regex`, …).
    pub fn compile(settings: &ScrubSettings, hash_key: HashKey) -> Result<Self, ScrubConfigError> {
        let hipaa = settings.profile == ProfileName::Hipaa;
        if settings.label_format.is_empty() {
            return Err(invalid("label_format", "must not be empty"));
        }
        let redactor = Redactor::new(&settings.label_format, hash_key)
            .map_err(|problem| invalid("hash_key", problem))?;

        // Keys.
        let mut deny = KeyMatcher::default();
        for key in profile::SECRET_KEYS {
            deny.add(key, KeyClass::Secret);
        }
        if hipaa {
            for (class, list) in profile::HIPAA_KEYS {
                for key in *list {
                    deny.add(key, *class);
                }
            }
        }
        for (i, key) in settings.sensitive_keys.iter().enumerate() {
            if !deny.add(key, KeyClass::Custom) {
                return Err(invalid(format!("sensitive_keys[{i}]"), "empty key"));
            }
        }
        let mut safe = KeyMatcher::default();
        for (i, key) in settings.safe_keys.iter().enumerate() {
            if !safe.add(key, KeyClass::Custom) {
                return Err(invalid(format!("safe_keys[{i}]"), "empty key"));
            }
        }
        let mut cookie_names = KeyMatcher::default();
        for name in profile::SECRET_COOKIE_NAMES {
            cookie_names.add(&format!("={name}"), KeyClass::Secret);
        }

        // Which rule names exist (for override validation).
        let mut known: HashSet<String> = BUILTINS.iter().map(|b| b.rule.to_owned()).collect();
        known.extend(Structural::ALL.iter().map(|r| r.name().to_owned()));
        known.extend(KeyClass::ALL.iter().map(|c| c.rule().to_owned()));
        known.insert("echo".to_owned());
        for name in settings.detectors.keys() {
            if !known.contains(name) {
                return Err(invalid(format!("detectors.{name}"), "no such rule"));
            }
        }
        for (rule, o) in &settings.detectors {
            if o.label.as_deref() == Some("") {
                return Err(invalid(
                    format!("detectors.{rule}.label"),
                    "must not be empty",
                ));
            }
        }
        let over = |rule: &str| settings.detectors.get(rule);
        let action = |rule: &str, method: Method, label: &str| {
            let o = over(rule);
            redactor.action(
                rule,
                o.and_then(|o| o.method).unwrap_or(method),
                o.and_then(|o| o.label.as_deref()).unwrap_or(label),
                o.and_then(|o| o.keep_last).unwrap_or(4),
            )
        };

        // Detectors: built-ins, then custom patterns.
        let mut specs = Vec::new();
        for b in BUILTINS {
            let default_on = match b.tier {
                Tier::Secret => true,
                Tier::Phi => hipaa,
                Tier::Optional => b.rule == "us_date" && settings.dates_as_dob,
            };
            if !over(b.rule).and_then(|o| o.enabled).unwrap_or(default_on) {
                continue;
            }
            specs.push(DetectorSpec {
                rule: b.rule.to_owned(),
                pattern: b.pattern.to_owned(),
                check: b.check,
                context: b.context,
                shrink: b.shrink,
                isolated: b.isolated,
                last_segment: b.last_segment,
                kind: b.kind,
                scope: None,
                size_limit: 32 << 20,
                custom: false,
                action: action(b.rule, b.method, b.label),
            });
        }
        let builtin_count = specs.len();
        let mut names: HashSet<&str> = HashSet::new();
        for (i, p) in settings.patterns.iter().enumerate() {
            if p.name.trim().is_empty() {
                return Err(invalid(format!("patterns[{i}].name"), "must not be empty"));
            }
            if known.contains(&p.name) || !names.insert(p.name.as_str()) {
                return Err(invalid(
                    format!("patterns[{i}].name"),
                    format!("`{}` is already a rule name", p.name),
                ));
            }
            if p.regex.is_empty() {
                return Err(invalid(format!("patterns[{i}].regex"), "must not be empty"));
            }
            let keys = if p.keys.is_empty() {
                None
            } else {
                let mut m = KeyMatcher::default();
                for (j, k) in p.keys.iter().enumerate() {
                    if !m.add(k, KeyClass::Custom) {
                        return Err(invalid(format!("patterns[{i}].keys[{j}]"), "empty key"));
                    }
                }
                Some(m)
            };
            let paths: Vec<Vec<String>> = p
                .paths
                .iter()
                .map(|path| path.split('.').map(str::to_owned).collect())
                .collect();
            let scope = (keys.is_some() || !paths.is_empty()).then_some(Scope { keys, paths });
            specs.push(DetectorSpec {
                rule: p.name.clone(),
                pattern: p.regex.clone(),
                check: p.validator.map_or(Check::None, Check::Validator),
                context: None,
                shrink: false,
                isolated: false,
                last_segment: false,
                kind: HitKind::Redact,
                scope,
                size_limit: CUSTOM_PATTERN_SIZE_LIMIT,
                custom: true,
                action: redactor.action(
                    &p.name,
                    p.method,
                    p.label.as_deref().unwrap_or(&p.name),
                    p.keep_last.unwrap_or(4),
                ),
            });
        }
        let mut scanner = Scanner::compile(specs).map_err(|error| match error {
            ScannerError::Pattern { index, problem } if index >= builtin_count => invalid(
                format!("patterns[{}].regex", index - builtin_count),
                problem,
            ),
            ScannerError::Pattern { index, problem } => invalid(
                "detectors",
                format!(
                    "built-in pattern {} failed: {problem}",
                    BUILTINS.get(index).map_or("?", |b| b.rule)
                ),
            ),
            ScannerError::SetTooBig(problem) => invalid(
                "patterns",
                format!("the patterns together are too big: {problem}"),
            ),
        })?;

        // Structural rules and key classes.
        let rules = rule_table::RuleTable::build(
            |r| {
                let spec = r.spec();
                let mut a = action(spec.rule, spec.method, spec.label);
                if over(spec.rule).and_then(|o| o.keep_last).is_none() {
                    a.keep_last = spec.keep_last;
                }
                a
            },
            |r| {
                let enabled = over(r.name()).and_then(|o| o.enabled);
                // secrets-only: session ids and user ids are what the SDK sends; leave them
                // unless the config turns them on.
                if !hipaa && r.user_identity() {
                    enabled == Some(true)
                } else {
                    enabled != Some(false)
                }
            },
        );
        let echo_enabled = over("echo").and_then(|o| o.enabled) != Some(false) && hipaa;
        let mut class_actions = HashMap::default();
        let mut echo_label = HashMap::default();
        for class in KeyClass::ALL {
            if over(class.rule()).and_then(|o| o.enabled) == Some(false) {
                continue;
            }
            let a = action(class.rule(), Method::Replace, class.label());
            echo_label.insert(class, a.replacement.clone());
            class_actions.insert(class, a);
        }

        let mut labels: HashSet<String, hashing::FxBuild> = HashSet::default();
        labels.insert("[Filtered]".to_owned());
        for a in scanner
            .actions()
            .chain(rules.actions())
            .chain(class_actions.values())
        {
            if a.method == Method::Replace {
                labels.insert(a.replacement.clone());
            }
        }
        let mut pseudonym_prefixes: Vec<String> = Vec::new();
        for a in scanner
            .actions()
            .chain(rules.actions())
            .chain(class_actions.values())
        {
            let prefix = redactor.pseudonym_prefix(&a.label);
            if a.method == Method::Hash && !pseudonym_prefixes.contains(&prefix) {
                pseudonym_prefixes.push(prefix);
            }
        }
        let mut inert_labels: Vec<String> = labels.iter().cloned().collect();
        inert_labels.sort();
        scanner.set_inert(&inert_labels, &pseudonym_prefixes, redact::HASH_HEX_LEN);
        let structural = profile::STRUCTURAL_KEYS.iter().copied().collect();
        let label_max_len = labels.iter().map(String::len).max().unwrap_or(0);
        let mut label_first = [false; 256];
        for l in &labels {
            if let Some(&b) = l.as_bytes().first() {
                label_first[usize::from(b)] = true;
            }
        }
        let mut engine = walk::Engine {
            scanner,
            rules,
            echo_enabled,
            class_actions,
            deny,
            safe,
            cookie_names,
            redactor,
            labels,
            label_max_len,
            label_first,
            structural,
            echo_label,
            known_keys: walk::KnownKeys::default(),
        };
        engine.seed_known_keys(profile::COMMON_KEYS);
        Ok(Self { engine })
    }

    /// Scrubs `node` in place and reports every change. Never fails and never panics:
    /// whatever the JSON, the result is JSON of the same shape (some leaves become
    /// labels, a few known fields are removed).
    pub fn scrub(&self, kind: PayloadKind, node: &mut Node<'_>) -> ScrubReport {
        self.engine.scrub(kind, node)
    }

    /// Parses `input`, scrubs it and serializes it again if anything changed: `None` means
    /// unchanged (the caller keeps the original bytes).
    ///
    /// # Errors
    /// `input` is not JSON (serde_json's grammar and limits).
    pub fn scrub_json(
        &self,
        kind: PayloadKind,
        input: &[u8],
    ) -> Result<(Option<Vec<u8>>, ScrubReport), JsonError> {
        let mut node = json::parse_bytes(input)?;
        let report = self.scrub(kind, &mut node);
        if report.is_empty() {
            return Ok((None, report));
        }
        Ok((Some(json::to_vec(&node, input.len())), report))
    }

    /// [`Self::scrub`] for a `serde_json::Value` (tests, fixtures, cold paths): the value is
    /// converted to a [`Node`] and back, the latter only if something changed.
    pub fn scrub_value(&self, kind: PayloadKind, value: &mut Value) -> ScrubReport {
        let mut node = Node::from_value(value);
        let report = self.scrub(kind, &mut node);
        if !report.is_empty() {
            *value = node.to_value();
        }
        report
    }
}

#[cfg(test)]
mod tests;
