//! The audit record: what scrubgate did with one request, by rule, path and count, with
//! identifiers replaced by keyed hashes. It never holds a payload value: every string in it
//! is either ours (closed enums, configured names), a fixed-format id (request id, event id,
//! digests), a redaction path produced by the scrubber, or an SDK name/version squeezed
//! through a strict charset.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::scrub::{HashKey, Redaction};

pub mod redaction_map;

/// The record format version; bump on an incompatible change. Version 2 writes redactions
/// grouped by path ([`redaction_map`]), leaves out empty and absent fields, and keeps the
/// keyed digests at 128 bits; readers take versions 1 and 2 alike.
pub const RECORD_VERSION: u32 = 2;
/// Hex characters kept of a keyed digest: 128 bits, the truncation RFC 2104 allows for
/// HMAC-SHA256, enough to tell a billion keys or addresses apart and half the bytes.
pub const DIGEST_HEX: usize = 32;
/// `prev` of the very first record of a trail.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub v: u32,
    /// When the request arrived (UTC, RFC 3339).
    pub ts: String,
    pub request_id: String,
    /// `envelope`, `store`, `tunnel`, `security`, …
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<u64>,
    /// HMAC-SHA256 of the DSN public key (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_hmac: Option<String>,
    /// HMAC-SHA256 of the client IP address (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip_hmac: Option<String>,
    /// Which HMAC key made the two digests above (key rotation).
    pub hash_key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<SdkInfo>,
    /// 32 lowercase hex characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// sha256 of the effective config, so a reviewer can tell which rules applied.
    pub policy_hash: String,
    /// The HTTP status answered; 0 when it was not known when the record was written: the
    /// request was aborted before an answer, or (sync mode) the record was made durable
    /// before the envelope was sent, so the answer is the upstream's.
    pub status: u16,
    pub outcome: Outcome,
    /// A stable error kind (e.g. `unknown_key`) when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Redactions in the envelope header.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "redaction_map")]
    pub header_redactions: Vec<RedactionRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemRecord>,
    /// Categories and quantities in the `client_report` scrubgate added, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_report: Vec<DiscardedRecord>,
    /// What the project's candidate rules would have redacted differently, when the
    /// envelope was sampled for them (absent otherwise, so older readers and records agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidateRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamRecord>,
    /// sha256 (hex) of the previous record's line: the hash chain.
    pub prev: String,
}

/// Which SDK sent the request. Written as `name/version`, the form of `sentry_client`
/// (`sentry.python/2.75.0`), since version 2; an object `{name, version}` when the name
/// itself holds a `/` and in version 1 records. Both read back the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkInfo {
    pub name: String,
    pub version: Option<String>,
}

/// The object form of [`SdkInfo`].
#[derive(Serialize, Deserialize)]
struct SdkObject {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

/// Either form of [`SdkInfo`] on read.
#[derive(Deserialize)]
#[serde(untagged)]
enum SdkForm {
    Joined(String),
    Object(SdkObject),
}

impl Serialize for SdkInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.version {
            _ if self.name.contains('/') => SdkObject {
                name: self.name.clone(),
                version: self.version.clone(),
            }
            .serialize(serializer),
            Some(version) => serializer.collect_str(&format_args!("{}/{version}", self.name)),
            None => serializer.serialize_str(&self.name),
        }
    }
}

impl<'de> Deserialize<'de> for SdkInfo {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match SdkForm::deserialize(deserializer)? {
            SdkForm::Joined(joined) => match joined.split_once('/') {
                Some((name, version)) => Self {
                    name: name.to_owned(),
                    version: Some(version.to_owned()),
                },
                None => Self {
                    name: joined,
                    version: None,
                },
            },
            SdkForm::Object(SdkObject { name, version }) => Self { name, version },
        })
    }
}

/// What happened to the request as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Sent and accepted by the upstream (or spooled).
    Forwarded,
    /// Every item was dropped; at most a client report was sent.
    Dropped,
    /// Refused before processing (4xx: auth, limits, malformed body).
    Rejected,
    /// Sent, but the upstream refused or could not be reached.
    UpstreamError,
    /// Every item is in a category the upstream currently rate limits: answered 429.
    RateLimited,
    /// scrubgate failed (5xx), e.g. the audit sink was unavailable.
    Failed,
    /// The request ended without an answer: client disconnect, panic, shutdown.
    Aborted,
}

/// One envelope item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Metric-safe item type label (`unknown` for types scrubgate does not know).
    #[serde(rename = "type")]
    pub item_type: String,
    pub size: usize,
    /// `forward` or `drop`.
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The `[[policy.drop]]` rule, when one dropped the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "redaction_map")]
    pub redactions: Vec<RedactionRecord>,
}

/// One redaction, as in the scrub report: never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionRecord {
    pub path: String,
    pub rule: String,
    pub method: String,
    pub count: u32,
}

/// A candidate rule set's differences from the active rules for one envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// sha256 of the candidate's `[scrub]`: which version of the candidate this was.
    pub hash: String,
    pub added: Vec<CandidateChangeRecord>,
    pub removed: Vec<CandidateChangeRecord>,
}

/// Redactions one rule would add or remove at one path pattern (array indices as `*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateChangeRecord {
    pub rule: String,
    pub path: String,
    pub count: u64,
}

/// One line of an added client report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscardedRecord {
    pub category: String,
    pub quantity: u64,
}

/// What the upstream said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamRecord {
    /// The upstream's (or file sink's) HTTP status.
    Status(u16),
    /// Written to the spool for later delivery.
    Spooled,
    /// Sync mode: the record was made durable before the envelope was handed to the
    /// upstream, so the upstream's answer is in the log and metrics, not here.
    Sending,
    /// No answer: a stable error kind such as `upstream_timeout`.
    Error(String),
}

/// Keyed hashing of identifiers with the scrubber's HMAC key, domain-separated so a client
/// IP and a public key with the same bytes never share a digest.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: HashKey,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer")
            .field("key_id", &self.key.id)
            .finish_non_exhaustive()
    }
}

// === impl Pseudonymizer ===

impl Pseudonymizer {
    pub fn new(key: HashKey) -> Self {
        Self { key }
    }

    pub fn key_id(&self) -> &str {
        &self.key.id
    }

    /// HMAC-SHA256(key, domain ‖ 0 ‖ value), its first 128 bits in hex ([`DIGEST_HEX`]).
    pub fn digest(&self, domain: &str, value: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key.secret) else {
            return String::new();
        };
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let mut digest = hex::encode(mac.finalize().into_bytes());
        digest.truncate(DIGEST_HEX);
        digest
    }

    pub fn public_key(&self, key: &str) -> String {
        self.digest("public_key", key.as_bytes())
    }

    pub fn client_ip(&self, ip: IpAddr) -> String {
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.digest("client_ip", canonical.to_string().as_bytes())
    }
}

// === impl AuditRecord ===

impl AuditRecord {
    /// The line as written (without the newline), `prev` included.
    ///
    /// # Errors
    /// Serialization cannot fail for this type; the error is passed on for completeness.
    pub fn to_line(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

impl From<&Redaction> for RedactionRecord {
    fn from(redaction: &Redaction) -> Self {
        Self {
            path: safe_path(&redaction.path),
            rule: redaction.rule.clone(),
            method: redaction.method.as_str().to_owned(),
            count: redaction.count,
        }
    }
}

/// A scrub report's redactions as the audit record keeps them: one entry per rule, method
/// and path pattern (the [`safe_path`] with array indices as `*`), counts summed, grouped by
/// path in the order each path first occurred (the order [`redaction_map`] writes them, so a
/// record read back equals the record written). An event with 60 frames whose variables all
/// held a password is one `exception.values.*.stacktrace.frames.*.vars.password` entry with
/// its count, not 60: records stay small and the same size whatever the payload repeats,
/// and a record still says where in the payload's shape each rule fired and how often.
pub fn compact_redactions<'a>(
    redactions: impl IntoIterator<Item = &'a Redaction>,
) -> Vec<RedactionRecord> {
    use std::collections::hash_map::Entry;
    use std::collections::HashMap;
    let mut out: Vec<RedactionRecord> = Vec::new();
    let mut at: HashMap<(String, String, &'static str), usize> = HashMap::new();
    let mut path_rank: HashMap<String, usize> = HashMap::new();
    for redaction in redactions {
        let path = crate::audit::report::indexes_as_stars(&safe_path(&redaction.path));
        let method = redaction.method.as_str();
        let next_rank = path_rank.len();
        path_rank.entry(path.clone()).or_insert(next_rank);
        match at.entry((path, redaction.rule.clone(), method)) {
            Entry::Occupied(slot) => {
                if let Some(entry) = out.get_mut(*slot.get()) {
                    entry.count = entry.count.saturating_add(redaction.count);
                }
            }
            Entry::Vacant(slot) => {
                let (path, rule, method) = slot.key().clone();
                slot.insert(out.len());
                out.push(RedactionRecord {
                    path,
                    rule,
                    method: method.to_owned(),
                    count: redaction.count,
                });
            }
        }
    }
    // Stable: within a path, entries keep the order they first occurred in.
    out.sort_by_key(|entry| path_rank.get(&entry.path).copied().unwrap_or(usize::MAX));
    out
}

/// sha256 of a record line, hex: the next record's `prev`.
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// Redaction paths are built from the payload's object keys, and a key can itself be data
/// (`extra.users.alice@example.com`). Segments that do not look like an identifier or a
/// small array index are replaced by `*`.
pub fn safe_path(path: &str) -> String {
    path.split('.')
        .map(|segment| {
            let identifier = !segment.is_empty()
                && segment.len() <= 48
                && segment
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$'));
            let index = !segment.is_empty()
                && segment.len() <= 4
                && segment.bytes().all(|b| b.is_ascii_digit());
            if identifier || index {
                segment
            } else {
                "*"
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// An SDK name or version as sent by the client, kept only if it looks like one.
pub fn safe_sdk_token(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'/' | b'@')
        });
    ok.then(|| value.to_owned())
}

/// An event id as 32 lowercase hex characters, or `None`.
pub fn safe_event_id(value: &str) -> Option<String> {
    let hex: String = value.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}
