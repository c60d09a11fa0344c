//! The rules engine: turns a JSON payload full of PII/PHI into one that is safe to send to a
//! third party, and reports what it did (rule, path, method, count — never a value).
//!
//! Pure and synchronous: no HTTP, no files, no envelopes. The server, `scrubgate scrub` and
//! `scrubgate test` all call [`Scrubber::scrub`], so they cannot disagree. It cannot fail at
//! runtime: every pattern is compiled by [`Scrubber::compile`] when the config loads.
//!
//! Invariant the pipeline relies on: a payload is changed if and only if the returned report
//! is non-empty. Untouched items are then forwarded byte-identical.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
}

impl Default for ScrubSettings {
    fn default() -> Self {
        Self {
            profile: ProfileName::Hipaa,
            sensitive_keys: Vec::new(),
            safe_keys: Vec::new(),
            hash_key_env: "SCRUBGATE_HASH_KEY".to_owned(),
            hash_key_file: None,
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

/// How a value was redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

    fn push(&mut self, path: &str, rule: &str, method: Method) {
        self.redactions.push(Redaction {
            path: path.to_owned(),
            rule: rule.to_owned(),
            method,
            count: 1,
        });
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
    denylist: Vec<String>,
    safe_keys: Vec<String>,
    #[allow(dead_code)]
    hash_key: HashKey,
}

const FILTERED: &str = "[Filtered]";

/// The SDKs' own default denylist (substring match), as the minimal engine.
const SDK_DEFAULT_DENYLIST: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "auth",
    "session",
    "cookie",
    "csrf",
    "xsrf",
    "credentials",
    "api_key",
    "apikey",
    "private_key",
    "bearer",
    "jwt",
];

impl Scrubber {
    /// Compiles settings into a scrubber.
    ///
    /// # Errors
    /// A setting that cannot be compiled (e.g. an empty key).
    pub fn compile(settings: &ScrubSettings, hash_key: HashKey) -> Result<Self, ScrubConfigError> {
        let mut denylist: Vec<String> = SDK_DEFAULT_DENYLIST
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for key in &settings.sensitive_keys {
            if key.trim().is_empty() {
                return Err(ScrubConfigError::Invalid {
                    key: "sensitive_keys".into(),
                    problem: "empty key".into(),
                });
            }
            denylist.push(normalize_key(key));
        }
        let safe_keys = settings
            .safe_keys
            .iter()
            .map(|k| normalize_key(k))
            .collect();
        Ok(Self {
            denylist,
            safe_keys,
            hash_key,
        })
    }

    /// Scrubs `value` in place and reports every change.
    pub fn scrub(&self, kind: PayloadKind, value: &mut Value) -> ScrubReport {
        let mut report = ScrubReport::default();
        if matches!(
            kind,
            PayloadKind::Event | PayloadKind::Transaction | PayloadKind::Feedback
        ) {
            remove_client_ip(value, &mut report);
        }
        self.walk(value, &mut String::new(), &mut report);
        report
    }

    fn is_sensitive(&self, key: &str) -> bool {
        let key = normalize_key(key);
        if self.safe_keys.contains(&key) {
            return false;
        }
        self.denylist.iter().any(|d| key.contains(d.as_str()))
    }

    fn walk(&self, value: &mut Value, path: &mut String, report: &mut ScrubReport) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    if self.is_sensitive(key) && !is_filtered(child) {
                        *child = Value::String(FILTERED.to_owned());
                        report.push(path, "sensitive-key", Method::Replace);
                    } else {
                        self.walk(child, path, report);
                    }
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&index.to_string());
                    self.walk(child, path, report);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
}

fn is_filtered(value: &Value) -> bool {
    matches!(value, Value::String(s) if s == FILTERED) || value.is_null()
}

fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Removes `user.ip_address` (including `{{auto}}`) and asks Sentry not to infer one.
fn remove_client_ip(value: &mut Value, report: &mut ScrubReport) {
    if let Some(user) = value.get_mut("user").and_then(Value::as_object_mut) {
        if user.shift_remove("ip_address").is_some() {
            report.push("user.ip_address", "client-ip", Method::Remove);
        }
    }
    if let Some(sdk) = value.get_mut("sdk").and_then(Value::as_object_mut) {
        let settings = sdk
            .entry("settings")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(settings) = settings.as_object_mut() {
            if settings.get("infer_ip").and_then(Value::as_str) != Some("never") {
                settings.insert("infer_ip".into(), Value::String("never".into()));
                report.push("sdk.settings.infer_ip", "client-ip", Method::Replace);
            }
        }
    }
}
