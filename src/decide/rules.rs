//! `[[policy.drop]]` drop rules: settings, compilation and matching.
//!
//! A rule is a conjunction of conditions; an empty condition list matches anything. Rules are
//! tried in order and the first that matches drops the item; its name becomes the audit and
//! metrics `rule`. Names are validated to a small charset because they end up as metric label
//! values: they are operator-chosen, never payload-supplied.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use crate::decode::ItemType;
use crate::json::Node;

/// Regexes in rules come from the config file; the cap keeps a typo from eating memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Patterns with this prefix are regular expressions; all others are globs.
const REGEX_PREFIX: &str = "re:";

/// One or more patterns. A pattern is a glob (`*`, `?`, `[...]`, `{a,b}`; `*` also matches
/// `/`) unless it starts with `re:`, which makes the rest a regular expression (unanchored:
/// use `^…$` to anchor). Written as a string or a list of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Patterns(pub Vec<String>);

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => Self(vec![one]),
            OneOrMany::Many(many) => Self(many),
        })
    }
}

impl Patterns {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One `[[policy.drop]]` entry as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DropRuleSettings {
    /// Unique name, `[A-Za-z0-9_.-]`, at most 64 characters. It is the drop reason in audit
    /// records, metrics and client reports.
    pub name: String,
    /// Item types the rule applies to (e.g. `["event", "transaction"]`; `"unknown"` for
    /// types scrubgate does not know). Empty: every item type.
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub item_types: Patterns,
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub environment: Patterns,
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub release: Patterns,
    /// Event level; an event without one counts as `error`, as in Sentry.
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub level: Patterns,
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub platform: Patterns,
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub logger: Patterns,
    /// Matches if any exception in the event has a matching `type`.
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub exception_type: Patterns,
    /// The transaction name.
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub transaction: Patterns,
    /// `request.url`.
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub url: Patterns,
    /// Tag name → patterns for its value; every listed tag must match.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Patterns>,
    /// Strict mode: matches when any of these scrub rules redacted something anywhere in the
    /// envelope (e.g. `["ssn"]` drops the event instead of forwarding a scrubbed copy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<String>,
    /// Fraction of matching items to drop, in (0, 1]. Sampling is keyed on the event id, so
    /// every item of one event gets the same answer.
    pub sample_rate: f64,
}

/// The values a rule can look at, read from an item's JSON before scrubbing. They live only
/// in memory for the duration of the decision and are never logged or recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFacts {
    pub environment: Option<String>,
    pub release: Option<String>,
    pub level: Option<String>,
    pub platform: Option<String>,
    pub logger: Option<String>,
    pub transaction: Option<String>,
    pub url: Option<String>,
    pub exception_types: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    pub item_type: &'a ItemType,
    /// `None` for items that are not JSON (their fact conditions never match).
    pub facts: Option<&'a ItemFacts>,
    /// Names of scrub rules that redacted something anywhere in the envelope.
    pub fired: &'a BTreeSet<String>,
    /// Event id (or request id when there is none): keys the sample decision.
    pub sample_key: &'a str,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct DropRule {
    name: Arc<str>,
    item_types: Vec<String>,
    environment: Option<Matcher>,
    release: Option<Matcher>,
    level: Option<Matcher>,
    platform: Option<Matcher>,
    logger: Option<Matcher>,
    exception_type: Option<Matcher>,
    transaction: Option<Matcher>,
    url: Option<Matcher>,
    tags: Vec<(String, Matcher)>,
    detectors: Vec<String>,
    sample_rate: f64,
}

/// Globs and regexes for one condition; matches if any pattern does.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    globs: GlobSet,
    regexes: Vec<Regex>,
}

// === impl DropRuleSettings ===

impl Default for DropRuleSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            item_types: Patterns::default(),
            environment: Patterns::default(),
            release: Patterns::default(),
            level: Patterns::default(),
            platform: Patterns::default(),
            logger: Patterns::default(),
            exception_type: Patterns::default(),
            transaction: Patterns::default(),
            url: Patterns::default(),
            tags: BTreeMap::new(),
            detectors: Vec::new(),
            sample_rate: 1.0,
        }
    }
}

impl DropRuleSettings {
    fn has_condition(&self) -> bool {
        !(self.item_types.is_empty()
            && self.environment.is_empty()
            && self.release.is_empty()
            && self.level.is_empty()
            && self.platform.is_empty()
            && self.logger.is_empty()
            && self.exception_type.is_empty()
            && self.transaction.is_empty()
            && self.url.is_empty()
            && self.tags.is_empty()
            && self.detectors.is_empty())
    }
}

// === impl DropRule ===

impl DropRule {
    /// Compiles rule number `index`.
    ///
    /// # Errors
    /// `(key, problem)` naming the offending key, e.g. `drop[0].url`.
    pub fn compile(index: usize, settings: &DropRuleSettings) -> Result<Self, (String, String)> {
        let key = |field: &str| format!("drop[{index}].{field}");
        let name = &settings.name;
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_name {
            return Err((
                key("name"),
                "required: 1 to 64 characters from A-Z a-z 0-9 _ - .".to_owned(),
            ));
        }
        if !settings.has_condition() {
            return Err((
                key("name"),
                "a drop rule needs at least one condition (it would drop everything)".to_owned(),
            ));
        }
        if !(settings.sample_rate > 0.0 && settings.sample_rate <= 1.0) {
            return Err((key("sample_rate"), "must be in (0, 1]".to_owned()));
        }
        for item_type in &settings.item_types.0 {
            if item_type != "unknown" && matches!(ItemType::parse(item_type), ItemType::Unknown(_))
            {
                return Err((
                    key("item_types"),
                    "unknown item type (use \"unknown\" for types scrubgate does not know)"
                        .to_owned(),
                ));
            }
        }
        if settings.detectors.iter().any(|d| d.trim().is_empty()) {
            return Err((key("detectors"), "empty detector name".to_owned()));
        }
        let matcher = |field: &str, patterns: &Patterns| -> Result<Option<Matcher>, _> {
            if patterns.is_empty() {
                Ok(None)
            } else {
                Matcher::compile(&patterns.0, false)
                    .map(Some)
                    .map_err(|problem| (key(field), problem))
            }
        };
        let mut tags = Vec::with_capacity(settings.tags.len());
        for (tag, patterns) in &settings.tags {
            let compiled = Matcher::compile(&patterns.0, false)
                .map_err(|problem| (key(&format!("tags.{tag}")), problem))?;
            tags.push((tag.clone(), compiled));
        }
        Ok(Self {
            name: Arc::from(name.as_str()),
            item_types: settings
                .item_types
                .0
                .iter()
                .map(|t| ItemType::parse(t).label().to_owned())
                .collect(),
            environment: matcher("environment", &settings.environment)?,
            release: matcher("release", &settings.release)?,
            level: matcher("level", &settings.level)?,
            platform: matcher("platform", &settings.platform)?,
            logger: matcher("logger", &settings.logger)?,
            exception_type: matcher("exception_type", &settings.exception_type)?,
            transaction: matcher("transaction", &settings.transaction)?,
            url: matcher("url", &settings.url)?,
            tags,
            detectors: settings.detectors.clone(),
            sample_rate: settings.sample_rate,
        })
    }

    /// The rule's configured name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Whether this rule drops the item described by `input`.
    pub fn matches(&self, input: &RuleInput<'_>) -> bool {
        if !self.item_types.is_empty()
            && !self.item_types.iter().any(|t| t == input.item_type.label())
        {
            return false;
        }
        if !self.detectors.is_empty() && !self.detectors.iter().any(|d| input.fired.contains(d)) {
            return false;
        }
        if self.needs_facts() {
            let Some(facts) = input.facts else {
                return false;
            };
            let one = |matcher: &Option<Matcher>, value: &Option<String>| match matcher {
                None => true,
                Some(m) => value.as_deref().is_some_and(|v| m.is_match(v)),
            };
            let ok = one(&self.environment, &facts.environment)
                && one(&self.release, &facts.release)
                && one(&self.level, &facts.level)
                && one(&self.platform, &facts.platform)
                && one(&self.logger, &facts.logger)
                && one(&self.transaction, &facts.transaction)
                && one(&self.url, &facts.url)
                && self
                    .exception_type
                    .as_ref()
                    .is_none_or(|m| facts.exception_types.iter().any(|t| m.is_match(t)))
                && self
                    .tags
                    .iter()
                    .all(|(tag, m)| facts.tags.iter().any(|(k, v)| k == tag && m.is_match(v)));
            if !ok {
                return false;
            }
        }
        self.sampled_in(input.sample_key)
    }

    fn needs_facts(&self) -> bool {
        self.environment.is_some()
            || self.release.is_some()
            || self.level.is_some()
            || self.platform.is_some()
            || self.logger.is_some()
            || self.exception_type.is_some()
            || self.transaction.is_some()
            || self.url.is_some()
            || !self.tags.is_empty()
    }

    /// Deterministic per (rule, key): every item of one event gets the same answer, and a
    /// retried envelope is decided the same way.
    fn sampled_in(&self, key: &str) -> bool {
        if self.sample_rate >= 1.0 {
            return true;
        }
        let mut hasher = Sha256::new();
        hasher.update(self.name.as_bytes());
        hasher.update([0]);
        hasher.update(key.as_bytes());
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let unit = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
        unit < self.sample_rate
    }
}

// === impl Matcher ===

impl Matcher {
    /// Compiles globs and `re:` regexes.
    ///
    /// # Errors
    /// A message naming the problem (not the pattern: patterns may be long).
    pub(crate) fn compile(patterns: &[String], case_insensitive: bool) -> Result<Self, String> {
        let mut globs = GlobSetBuilder::new();
        let mut regexes = Vec::new();
        for (i, pattern) in patterns.iter().enumerate() {
            if let Some(regex) = pattern.strip_prefix(REGEX_PREFIX) {
                let compiled = RegexBuilder::new(regex)
                    .case_insensitive(case_insensitive)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|error| format!("pattern {i}: invalid regex: {error}"))?;
                regexes.push(compiled);
            } else {
                let glob = GlobBuilder::new(pattern)
                    .literal_separator(false)
                    .case_insensitive(case_insensitive)
                    .build()
                    .map_err(|error| format!("pattern {i}: invalid glob: {}", error.kind()))?;
                globs.add(glob);
            }
        }
        let globs = globs
            .build()
            .map_err(|error| format!("invalid glob set: {}", error.kind()))?;
        Ok(Self { globs, regexes })
    }

    pub(crate) fn is_match(&self, value: &str) -> bool {
        self.globs.is_match(value) || self.regexes.iter().any(|r| r.is_match(value))
    }
}

// === impl ItemFacts ===

impl ItemFacts {
    /// Reads the rule-relevant fields of an item's JSON. Sessions keep release and
    /// environment under `attrs`.
    pub fn from_json(item_type: &ItemType, value: &Node<'_>) -> Self {
        let text = |v: Option<&Node<'_>>| v.and_then(Node::as_str).map(str::to_owned);
        let attrs = value.get("attrs");
        let mut facts = Self {
            environment: text(value.get("environment"))
                .or_else(|| text(attrs.and_then(|a| a.get("environment")))),
            release: text(value.get("release"))
                .or_else(|| text(attrs.and_then(|a| a.get("release")))),
            level: text(value.get("level")),
            platform: text(value.get("platform")),
            logger: text(value.get("logger")),
            transaction: text(value.get("transaction")),
            url: text(value.get("request").and_then(|r| r.get("url"))),
            exception_types: Vec::new(),
            tags: Vec::new(),
        };
        if facts.level.is_none() && *item_type == ItemType::Event {
            facts.level = Some("error".to_owned());
        }
        let exceptions = match value.get("exception") {
            Some(Node::Object(map)) => map.get("values").and_then(Node::as_array),
            Some(Node::Array(values)) => Some(values),
            _ => None,
        };
        if let Some(values) = exceptions {
            facts.exception_types = values
                .iter()
                .filter_map(|e| e.get("type").and_then(Node::as_str))
                .map(str::to_owned)
                .collect();
        }
        match value.get("tags") {
            Some(Node::Object(map)) => {
                // A duplicated tag counts once, with its last value (as when parsed into a
                // map): members are read last to first, later duplicates skipped.
                let mut seen = HashSet::new();
                let mut tags: Vec<(String, String)> = map
                    .iter()
                    .rev()
                    .filter(|(k, _)| seen.insert(k.as_str()))
                    .filter_map(|(k, v)| tag_value(v).map(|v| (k.as_str().to_owned(), v)))
                    .collect();
                tags.reverse();
                facts.tags = tags;
            }
            Some(Node::Array(pairs)) => {
                facts.tags = pairs
                    .iter()
                    .filter_map(|pair| {
                        let pair = pair.as_array()?;
                        let key = pair.first()?.as_str()?;
                        Some((key.to_owned(), tag_value(pair.get(1)?)?))
                    })
                    .collect();
            }
            _ => {}
        }
        facts
    }
}

fn tag_value(value: &Node<'_>) -> Option<String> {
    match value {
        Node::Str(s) => Some(s.as_str().to_owned()),
        Node::Number(n) => Some(n.to_string()),
        Node::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
