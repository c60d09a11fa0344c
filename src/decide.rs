//! Per-item decisions: forward or drop, with a closed set of reasons. Fail closed: whatever
//! cannot be scrubbed is dropped unless the config has an explicit, named switch for it.
//!
//! Pure and synchronous; no I/O.

use serde::{Deserialize, Serialize};

use crate::decode::ItemType;

/// `[policy]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// What to do with `attachment` items, which we cannot scrub.
    pub attachments: AttachmentPolicy,
    /// What to do with item types scrubgate does not know.
    pub unknown_items: UnknownItemPolicy,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            attachments: AttachmentPolicy::Drop,
            unknown_items: UnknownItemPolicy::Drop,
        }
    }
}

/// Attachments are opaque bytes; forwarding them is a deliberate relaxation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachmentPolicy {
    Drop,
    /// Forward attachments unscrubbed. Only for deployments that accept the risk.
    Forward,
}

/// Unknown item types cannot be scrubbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownItemPolicy {
    Drop,
    /// Forward unknown items unscrubbed. Only for deployments that accept the risk.
    Forward,
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    settings: PolicySettings,
}

/// Why an item was dropped. Stable snake_case names: they appear in audit records, logs and
/// metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The payload of a JSON item type did not parse as JSON.
    InvalidJson,
    /// An attachment under `policy.attachments = "drop"`.
    AttachmentPolicy,
    /// Binary payloads (minidumps, replay recordings and videos) cannot be scrubbed.
    BinaryItem,
    /// An item type scrubgate does not know, under `policy.unknown_items = "drop"`.
    UnknownItemType,
    /// Item types that SDKs must not send.
    ReservedItemType,
    /// The envelope's event item was dropped, so its companions go too.
    EventDropped,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::AttachmentPolicy => "attachment_policy",
            Self::BinaryItem => "binary_item",
            Self::UnknownItemType => "unknown_item_type",
            Self::ReservedItemType => "reserved_item_type",
            Self::EventDropped => "event_dropped",
        }
    }
}

/// What the policy says about an item type before looking at its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemAction {
    /// Parse as JSON, scrub, forward.
    Scrub,
    /// Forward unchanged (client reports, explicit relaxations).
    ForwardAsIs,
    Drop(DropReason),
}

impl Policy {
    /// Compiles settings.
    ///
    /// # Errors
    /// `(key, problem)` for an invalid setting.
    pub fn compile(settings: &PolicySettings) -> Result<Self, (String, String)> {
        Ok(Self {
            settings: settings.clone(),
        })
    }

    /// The action for an item of `item_type`.
    pub fn action(&self, item_type: &ItemType) -> ItemAction {
        use ItemType as T;
        match item_type {
            T::Event
            | T::Transaction
            | T::Feedback
            | T::UserReport
            | T::Session
            | T::Sessions
            | T::CheckIn
            | T::Profile
            | T::ProfileChunk
            | T::ReplayEvent
            | T::Span
            | T::Log
            | T::TraceMetric
            | T::MetricBuckets
            | T::RawSecurity => ItemAction::Scrub,
            T::ClientReport => ItemAction::ForwardAsIs,
            T::Attachment => match self.settings.attachments {
                AttachmentPolicy::Drop => ItemAction::Drop(DropReason::AttachmentPolicy),
                AttachmentPolicy::Forward => ItemAction::ForwardAsIs,
            },
            T::ReplayRecording | T::ReplayVideo => ItemAction::Drop(DropReason::BinaryItem),
            T::Security | T::UnrealReport | T::FormData | T::Integration => {
                ItemAction::Drop(DropReason::ReservedItemType)
            }
            T::Unknown(_) => match self.settings.unknown_items {
                UnknownItemPolicy::Drop => ItemAction::Drop(DropReason::UnknownItemType),
                UnknownItemPolicy::Forward => ItemAction::ForwardAsIs,
            },
        }
    }
}
