//! The rules engine: turns a JSON payload full of PII/PHI into one that is safe to send to a
//! third party, and reports what it did (rule, path, method, count — never a value).
//!
//! Pure and synchronous: no HTTP, no files, no envelopes. The server, `scrubgate scrub` and
//! `scrubgate test` all call [`Scrubber::scrub`], so they cannot disagree. It cannot fail at
//! runtime: every pattern is compiled by [`Scrubber::compile`] when the config loads.
//!
//! Invariant the pipeline relies on: a payload is changed if and only if the returned report
//! is non-empty. Untouched items are then forwarded byte-identical.
//!
//! Echo: a value a rule removes is removed wherever else it appears in the same envelope.
//! [`Scrubber::scrub`] does that within one payload; the pipeline carries one [`EchoSet`]
//! through every payload of an envelope with [`Scrubber::scrub_item`], then searches the
//! payloads scrubbed before the set's last values were learnt with [`Scrubber::echo_item`].

mod compile;
mod detectors;
mod echo;
mod formats;
mod hashing;
mod keys;
mod profile;
mod redact;
mod rule_table;
mod structured;
mod walk;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::{self, JsonError, Node};

pub use detectors::validate::Validator;
pub use echo::EchoSet;

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
    /// Healthcare message formats recognised inside strings.
    pub formats: FormatSettings,
}

/// `[scrub.formats]`: which healthcare formats are parsed inside strings (each judged
/// field by field by its own structure) and what a site adds to their field tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormatSettings {
    /// HL7 v2 messages (`MSH|^~\&|…`).
    pub hl7: bool,
    /// Doctors' names in HL7 provider fields (PV1-7/8/9/17, PD1-4, ORC-12, OBR-16) and
    /// FHIR Practitioner resources and references: a provider is not the patient, so
    /// they are kept unless this is on.
    pub redact_providers: bool,
    /// Site-specific HL7 fields that hold PHI, as `SEG-N` (`ZPI-4`).
    pub hl7_phi_fields: Vec<String>,
    /// X12 005010 EDI interchanges (`ISA*00*…~`).
    pub x12: bool,
    /// FHIR R4/R5 JSON resources (objects with a `resourceType`).
    pub fhir: bool,
    /// C-CDA / CDA R2 XML documents (`<ClinicalDocument …>`).
    pub cda: bool,
}

impl Default for FormatSettings {
    fn default() -> Self {
        Self {
            hl7: true,
            redact_providers: false,
            hl7_phi_fields: Vec::new(),
            x12: true,
            fhir: true,
            cda: true,
        }
    }
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
            formats: FormatSettings::default(),
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
    /// A setting that cannot be used as written.
    #[error("scrub.{key}: {problem}")]
    Invalid { key: String, problem: String },
    /// An override for a rule that does not exist: a typo here would otherwise leave the
    /// rule the user meant to change as it was.
    #[error("scrub.detectors.{rule}: no such rule")]
    UnknownRule { rule: String },
    /// A rule whose pattern does not compile.
    #[error("scrub.{key}: rule `{rule}`: {problem}")]
    Pattern {
        rule: String,
        key: String,
        problem: String,
    },
}

impl ScrubConfigError {
    /// The failing setting, relative to `[scrub]`.
    pub fn key(&self) -> String {
        match self {
            Self::Invalid { key, .. } | Self::Pattern { key, .. } => key.clone(),
            Self::UnknownRule { rule } => format!("detectors.{rule}"),
        }
    }

    /// What is wrong with it, naming the rule where there is one.
    pub fn problem(&self) -> String {
        match self {
            Self::Invalid { problem, .. } => problem.clone(),
            Self::UnknownRule { .. } => "no such rule".to_owned(),
            Self::Pattern { rule, problem, .. } => format!("rule `{rule}`: {problem}"),
        }
    }
}

/// The compiled rule set. Cheap to share (`Arc`) across requests.
#[derive(Debug)]
pub struct Scrubber {
    engine: walk::Engine,
}

impl Scrubber {
    /// Compiles settings into a scrubber: every regex is built here, once, with a size
    /// limit.
    ///
    /// # Errors
    /// A setting that cannot be compiled, named by its key relative to `[scrub]` (an empty
    /// key, an unknown rule in `detectors`, a bad `patterns[i].regex`, …).
    pub fn compile(settings: &ScrubSettings, hash_key: HashKey) -> Result<Self, ScrubConfigError> {
        Ok(Self {
            engine: compile::compile(settings, hash_key)?,
        })
    }

    /// Scrubs `node` in place and reports every change. Never fails and never panics:
    /// whatever the JSON, the result is JSON of the same shape (some leaves become
    /// labels, a few known fields are removed).
    pub fn scrub(&self, kind: PayloadKind, node: &mut Node<'_>) -> ScrubReport {
        self.engine.scrub(kind, node, &mut EchoSet::new())
    }

    /// [`Self::scrub`] for one payload of an envelope: the values rules remove are added
    /// to `echo`, and every value in `echo` (also those of the envelope's earlier payloads)
    /// is removed wherever it appears in `node`, with the replacement its first removal
    /// wrote. The report counts those as rule `echo`.
    pub fn scrub_item(
        &self,
        kind: PayloadKind,
        node: &mut Node<'_>,
        echo: &mut EchoSet,
    ) -> ScrubReport {
        self.engine.scrub(kind, node, echo)
    }

    /// The echo part of [`Self::scrub_item`] alone, for a payload that was already scrubbed
    /// with this `echo` when it held fewer values (the caller compares
    /// [`EchoSet::len`]): removes the values added since. May add values itself (a string
    /// an echo label changed is scrubbed again).
    pub fn echo_item(
        &self,
        kind: PayloadKind,
        node: &mut Node<'_>,
        echo: &mut EchoSet,
    ) -> ScrubReport {
        self.engine.echo(kind, node, echo)
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
mod echo_tests;
#[cfg(test)]
mod sentry_superset_tests;
#[cfg(test)]
mod tests;
