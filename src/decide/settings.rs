//! `[policy]` as written in the config file. Every default is the fail-closed choice; every
//! relaxation is a named switch that a reviewer can grep for.

use serde::{Deserialize, Serialize};

use super::rules::DropRuleSettings;

/// `[policy]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// What to do with `attachment` items, which are opaque bytes unless proven to be text.
    pub attachments: AttachmentPolicy,
    /// Optional globs that narrow `attachments = "scrub-text"` or `"forward"`: when any list
    /// is non-empty, only attachments whose file name or content type matches one of them
    /// are eligible; the others are dropped (`attachment_not_allowed`).
    pub attachment_allow: AttachmentAllow,
    /// Crash dumps (`attachment_type` `event.minidump`, Apple crash reports, console and GPU
    /// dumps, Unreal context/logs) carry raw process memory: dropped unless `"forward"`.
    pub minidumps: BinaryPolicy,
    /// `replay_recording` items: `"drop"`, or `"scrub"` (inflate the rrweb JSON, scrub text
    /// nodes and attributes like any JSON, deflate again).
    pub replay_recordings: ReplayRecordingPolicy,
    /// What to do with item types scrubgate does not know.
    pub unknown_items: UnknownItemPolicy,
    /// Add a `client_report` item counting what scrubgate dropped, so Sentry's stats stay
    /// honest. Counts only: no ids, no values.
    pub client_reports: bool,
    /// `[[policy.drop]]`: drop rules, first match wins.
    pub drop: Vec<DropRuleSettings>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            attachments: AttachmentPolicy::Drop,
            attachment_allow: AttachmentAllow::default(),
            minidumps: BinaryPolicy::Drop,
            replay_recordings: ReplayRecordingPolicy::Drop,
            unknown_items: UnknownItemPolicy::Drop,
            client_reports: true,
            drop: Vec::new(),
        }
    }
}

/// Attachments are opaque bytes; anything but `drop` is a deliberate relaxation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachmentPolicy {
    /// Drop every attachment (`attachment_policy`).
    Drop,
    /// Forward text and JSON attachments after scrubbing them; drop everything else.
    ScrubText,
    /// Forward attachments unscrubbed. Only for deployments that accept the risk.
    Forward,
}

/// `[policy.attachment_allow]`: globs (`*`, `?`, `[...]`, `{a,b}`) that narrow the attachment
/// relaxations. Matching is case-insensitive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentAllow {
    /// File name globs, e.g. `"*.log"`.
    pub filenames: Vec<String>,
    /// Content type globs, e.g. `"text/*"`; parameters (`; charset=…`) are ignored.
    pub content_types: Vec<String>,
}

/// Binary payloads that no scrubber can clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinaryPolicy {
    Drop,
    /// Forward unscrubbed. Only for deployments that accept the risk.
    Forward,
}

/// Replay recordings are zlib-compressed rrweb JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayRecordingPolicy {
    Drop,
    /// Inflate, scrub every text node and attribute, deflate.
    Scrub,
}

/// Unknown item types cannot be scrubbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownItemPolicy {
    Drop,
    /// Forward unknown items unscrubbed. Only for deployments that accept the risk.
    Forward,
}
