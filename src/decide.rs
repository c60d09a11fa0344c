//! Per-item decisions: scrub and forward, forward as is, or drop with a reason from a closed
//! set. Fail closed: whatever cannot be scrubbed is dropped unless the config has an
//! explicit, named switch for it (`[policy]`), and `[[policy.drop]]` rules can drop more.
//!
//! Pure and synchronous; no I/O. The pipeline asks [`Policy::item_action`] before touching
//! a payload, and [`Policy::drop_rule`] once everything is scrubbed (strict-mode rules need
//! to know which detectors fired anywhere in the envelope).

mod client_report;
mod rules;
mod settings;

use std::sync::Arc;

use serde::Serialize;

pub use client_report::{
    client_report_payload, data_category, discarded_events, Discarded, CLIENT_REPORT_REASON,
};
pub use rules::{DropRule, DropRuleSettings, ItemFacts, Patterns, RuleInput};
pub use settings::{
    AttachmentAllow, AttachmentPolicy, BinaryPolicy, PolicySettings, ReplayRecordingPolicy,
    UnknownItemPolicy,
};

use crate::decode::ItemType;
use rules::Matcher;

/// `attachment_type` values whose payload is a crash dump or similar binary capture.
const CRASH_ATTACHMENT_TYPES: &[&str] = &[
    "event.minidump",
    "event.applecrashreport",
    "unreal.context",
    "unreal.logs",
    "playstation.prosperodump",
    "nswitch.dying_message",
    "event.nv_gpudmp",
    "event.nv_shader_debug",
];

/// Why an item was dropped. Stable snake_case names: they appear in audit records, logs and
/// metric labels, so a rename is a breaking change for dashboards and compliance queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The payload of a JSON item type did not parse as JSON.
    InvalidJson,
    /// A payload that should be text or zlib data was not (bad UTF-8, corrupt or oversized
    /// compressed data).
    InvalidPayload,
    /// An attachment under `policy.attachments = "drop"`.
    AttachmentPolicy,
    /// An attachment that matched none of `policy.attachment_allow`'s globs.
    AttachmentNotAllowed,
    /// An attachment under `scrub-text` whose content type is not text or JSON.
    AttachmentNotText,
    /// Binary payloads (minidumps, replay recordings and videos, Unreal reports) cannot be
    /// scrubbed.
    BinaryItem,
    /// An item type scrubgate does not know, under `policy.unknown_items = "drop"`.
    UnknownItemType,
    /// Item types that SDKs must not send.
    ReservedItemType,
    /// The envelope's event item was dropped, so its companions go too.
    EventDropped,
    /// Half of a replay (event or recording) was dropped, so the other half goes too.
    ReplayIncomplete,
    /// A `[[policy.drop]]` rule matched; the rule's name is recorded next to the reason.
    DropRule,
}

impl DropReason {
    /// Every reason, for tests and for pre-registering metric label values.
    pub const ALL: [DropReason; 11] = [
        Self::InvalidJson,
        Self::InvalidPayload,
        Self::AttachmentPolicy,
        Self::AttachmentNotAllowed,
        Self::AttachmentNotText,
        Self::BinaryItem,
        Self::UnknownItemType,
        Self::ReservedItemType,
        Self::EventDropped,
        Self::ReplayIncomplete,
        Self::DropRule,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidPayload => "invalid_payload",
            Self::AttachmentPolicy => "attachment_policy",
            Self::AttachmentNotAllowed => "attachment_not_allowed",
            Self::AttachmentNotText => "attachment_not_text",
            Self::BinaryItem => "binary_item",
            Self::UnknownItemType => "unknown_item_type",
            Self::ReservedItemType => "reserved_item_type",
            Self::EventDropped => "event_dropped",
            Self::ReplayIncomplete => "replay_incomplete",
            Self::DropRule => "drop_rule",
        }
    }
}

/// How a text attachment is read for scrubbing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// `application/json` or `*/*+json`: scrubbed as JSON, keeps its shape.
    Json,
    /// `text/*`: scrubbed as one string.
    Plain,
}

/// What the policy says about an item before looking at its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemAction {
    /// Parse as JSON, scrub, forward.
    Scrub,
    /// A text or JSON attachment under `attachments = "scrub-text"`.
    ScrubText(TextKind),
    /// A replay recording under `replay_recordings = "scrub"`.
    ScrubReplayRecording,
    /// Forward unchanged (client reports, explicit relaxations).
    ForwardAsIs,
    Drop(DropReason),
}

/// The item headers the policy looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemMeta<'a> {
    pub content_type: Option<&'a str>,
    pub filename: Option<&'a str>,
    pub attachment_type: Option<&'a str>,
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    settings: PolicySettings,
    allow_filenames: Option<Matcher>,
    allow_content_types: Option<Matcher>,
    rules: Vec<DropRule>,
}

// === impl Policy ===

impl Policy {
    /// Compiles settings: globs, regexes and rule names are checked here, once.
    ///
    /// # Errors
    /// `(key, problem)` for an invalid setting, the key relative to `[policy]`.
    pub fn compile(settings: &PolicySettings) -> Result<Self, (String, String)> {
        let allow = &settings.attachment_allow;
        let glob_list = |key: &str, globs: &[String]| -> Result<Option<Matcher>, _> {
            if globs.is_empty() {
                return Ok(None);
            }
            if globs.iter().any(|g| g.starts_with("re:")) {
                return Err((key.to_owned(), "only globs are allowed here".to_owned()));
            }
            Matcher::compile(globs, true)
                .map(Some)
                .map_err(|problem| (key.to_owned(), problem))
        };
        let allow_filenames = glob_list("attachment_allow.filenames", &allow.filenames)?;
        let allow_content_types =
            glob_list("attachment_allow.content_types", &allow.content_types)?;
        let mut rules = Vec::with_capacity(settings.drop.len());
        for (index, rule) in settings.drop.iter().enumerate() {
            let compiled = DropRule::compile(index, rule)?;
            if rules.iter().any(|r: &DropRule| r.name() == compiled.name()) {
                return Err((format!("drop[{index}].name"), "listed twice".to_owned()));
            }
            rules.push(compiled);
        }
        Ok(Self {
            settings: settings.clone(),
            allow_filenames,
            allow_content_types,
            rules,
        })
    }

    /// The settings this policy was compiled from.
    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// Whether to add a `client_report` item for dropped items.
    pub fn client_reports(&self) -> bool {
        self.settings.client_reports
    }

    /// The configured drop rule names, in order: the closed set of `rule` label values.
    pub fn rule_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.rules.iter().map(DropRule::name)
    }

    /// The action for an item of `item_type`, ignoring its headers. For attachments this is
    /// the answer for an ordinary attachment without file name or content type.
    pub fn action(&self, item_type: &ItemType) -> ItemAction {
        self.item_action(item_type, &ItemMeta::default())
    }

    /// The action for one item, looking at the headers that matter for attachments.
    pub fn item_action(&self, item_type: &ItemType, meta: &ItemMeta<'_>) -> ItemAction {
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
            T::Attachment => self.attachment_action(meta),
            T::ReplayRecording => match self.settings.replay_recordings {
                ReplayRecordingPolicy::Drop => ItemAction::Drop(DropReason::BinaryItem),
                ReplayRecordingPolicy::Scrub => ItemAction::ScrubReplayRecording,
            },
            T::ReplayVideo | T::UnrealReport => ItemAction::Drop(DropReason::BinaryItem),
            T::Security | T::FormData | T::Integration => {
                ItemAction::Drop(DropReason::ReservedItemType)
            }
            T::Unknown(_) => match self.settings.unknown_items {
                UnknownItemPolicy::Drop => ItemAction::Drop(DropReason::UnknownItemType),
                UnknownItemPolicy::Forward => ItemAction::ForwardAsIs,
            },
        }
    }

    fn attachment_action(&self, meta: &ItemMeta<'_>) -> ItemAction {
        if meta
            .attachment_type
            .is_some_and(|t| CRASH_ATTACHMENT_TYPES.contains(&t))
        {
            return match self.settings.minidumps {
                BinaryPolicy::Drop => ItemAction::Drop(DropReason::BinaryItem),
                BinaryPolicy::Forward => ItemAction::ForwardAsIs,
            };
        }
        if self.settings.attachments == AttachmentPolicy::Drop {
            return ItemAction::Drop(DropReason::AttachmentPolicy);
        }
        let content_type = meta.content_type.map(media_type);
        if self.allow_filenames.is_some() || self.allow_content_types.is_some() {
            let by_name = self
                .allow_filenames
                .as_ref()
                .zip(meta.filename)
                .is_some_and(|(m, name)| m.is_match(name));
            let by_type = self
                .allow_content_types
                .as_ref()
                .zip(content_type.as_deref())
                .is_some_and(|(m, ct)| m.is_match(ct));
            if !by_name && !by_type {
                return ItemAction::Drop(DropReason::AttachmentNotAllowed);
            }
        }
        match self.settings.attachments {
            AttachmentPolicy::Drop => ItemAction::Drop(DropReason::AttachmentPolicy),
            AttachmentPolicy::Forward => ItemAction::ForwardAsIs,
            AttachmentPolicy::ScrubText => match content_type.as_deref().and_then(text_kind) {
                Some(kind) => ItemAction::ScrubText(kind),
                None => ItemAction::Drop(DropReason::AttachmentNotText),
            },
        }
    }

    /// The first drop rule that matches, by name. Call it for every item after scrubbing.
    pub fn drop_rule(&self, input: &RuleInput<'_>) -> Option<&Arc<str>> {
        self.rules
            .iter()
            .find(|rule| rule.matches(input))
            .map(DropRule::name)
    }
}

/// `Text/Plain; charset=utf-8` → `text/plain`.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn text_kind(media_type: &str) -> Option<TextKind> {
    if media_type == "application/json" || media_type.ends_with("+json") {
        Some(TextKind::Json)
    } else if media_type.starts_with("text/") {
        Some(TextKind::Plain)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
