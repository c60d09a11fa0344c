use std::collections::BTreeSet;

use serde_json::json;

use crate::json::Node;

use super::*;

fn policy(toml_text: &str) -> Policy {
    let settings: PolicySettings = toml::from_str(toml_text).expect("test policy parses");
    Policy::compile(&settings).expect("test policy compiles")
}

fn compile_err(toml_text: &str) -> (String, String) {
    let settings: PolicySettings = toml::from_str(toml_text).expect("test policy parses");
    Policy::compile(&settings).expect_err("policy must be rejected")
}

fn attachment(policy: &Policy, content_type: Option<&str>, filename: Option<&str>) -> ItemAction {
    policy.item_action(
        &ItemType::Attachment,
        &ItemMeta {
            content_type,
            filename,
            attachment_type: None,
        },
    )
}

#[test]
fn defaults_scrub_json_items_forward_client_reports_and_drop_the_rest() {
    let p = policy("");
    for name in [
        "event",
        "transaction",
        "span",
        "log",
        "check_in",
        "session",
        "sessions",
        "feedback",
        "user_report",
        "replay_event",
        "profile",
        "profile_chunk",
        "metric_buckets",
        "trace_metric",
        "raw_security",
    ] {
        assert_eq!(
            p.action(&ItemType::parse(name)),
            ItemAction::Scrub,
            "{name}"
        );
    }
    assert_eq!(p.action(&ItemType::ClientReport), ItemAction::ForwardAsIs);
    let dropped = [
        ("attachment", DropReason::AttachmentPolicy),
        ("replay_recording", DropReason::BinaryItem),
        ("replay_video", DropReason::BinaryItem),
        ("unreal_report", DropReason::BinaryItem),
        ("security", DropReason::ReservedItemType),
        ("form_data", DropReason::ReservedItemType),
        ("brand_new_type", DropReason::UnknownItemType),
    ];
    for (name, reason) in dropped {
        assert_eq!(
            p.action(&ItemType::parse(name)),
            ItemAction::Drop(reason),
            "{name}"
        );
    }
    assert!(p.client_reports(), "client reports are on by default");
}

#[test]
fn minidumps_are_dropped_even_when_attachments_are_forwarded() {
    let p = policy(r#"attachments = "forward""#);
    let meta = ItemMeta {
        attachment_type: Some("event.minidump"),
        ..ItemMeta::default()
    };
    assert_eq!(
        p.item_action(&ItemType::Attachment, &meta),
        ItemAction::Drop(DropReason::BinaryItem)
    );
    let p = policy(r#"minidumps = "forward""#);
    assert_eq!(
        p.item_action(&ItemType::Attachment, &meta),
        ItemAction::ForwardAsIs
    );
}

#[test]
fn each_relaxation_is_its_own_switch() {
    assert_eq!(
        policy(r#"attachments = "forward""#).action(&ItemType::Attachment),
        ItemAction::ForwardAsIs
    );
    assert_eq!(
        policy(r#"unknown_items = "forward""#).action(&ItemType::parse("nel")),
        ItemAction::ForwardAsIs
    );
    assert_eq!(
        policy(r#"replay_recordings = "scrub""#).action(&ItemType::ReplayRecording),
        ItemAction::ScrubReplayRecording
    );
    assert_eq!(
        policy(r#"replay_recordings = "scrub""#).action(&ItemType::ReplayVideo),
        ItemAction::Drop(DropReason::BinaryItem)
    );
    assert!(!policy("client_reports = false").client_reports());
}

#[test]
fn scrub_text_accepts_only_text_and_json() {
    let p = policy(r#"attachments = "scrub-text""#);
    assert_eq!(
        attachment(&p, Some("text/plain; charset=utf-8"), None),
        ItemAction::ScrubText(TextKind::Plain)
    );
    assert_eq!(
        attachment(&p, Some("Application/JSON"), None),
        ItemAction::ScrubText(TextKind::Json)
    );
    assert_eq!(
        attachment(&p, Some("application/vnd.foo+json"), None),
        ItemAction::ScrubText(TextKind::Json)
    );
    for binary in [Some("image/png"), Some("application/octet-stream"), None] {
        assert_eq!(
            attachment(&p, binary, None),
            ItemAction::Drop(DropReason::AttachmentNotText)
        );
    }
}

#[test]
fn allow_globs_narrow_attachment_relaxations() {
    let p = policy(
        r#"
        attachments = "forward"
        [attachment_allow]
        filenames = ["*.log"]
        content_types = ["text/csv"]
        "#,
    );
    assert_eq!(
        attachment(&p, None, Some("App.LOG")),
        ItemAction::ForwardAsIs
    );
    assert_eq!(
        attachment(&p, Some("text/csv; header=present"), Some("x.bin")),
        ItemAction::ForwardAsIs
    );
    assert_eq!(
        attachment(&p, Some("image/png"), Some("shot.png")),
        ItemAction::Drop(DropReason::AttachmentNotAllowed)
    );
    // Globs never relax `attachments = "drop"`.
    let p = policy(
        r#"
        [attachment_allow]
        filenames = ["*"]
        "#,
    );
    assert_eq!(
        attachment(&p, None, Some("a.txt")),
        ItemAction::Drop(DropReason::AttachmentPolicy)
    );
}

#[test]
fn drop_reason_names_are_stable_snake_case() {
    for reason in DropReason::ALL {
        let serialized = serde_json::to_value(reason).expect("serializes");
        assert_eq!(serialized, json!(reason.as_str()));
        assert!(reason
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_'));
    }
}

fn event_facts() -> ItemFacts {
    ItemFacts::from_json(
        &ItemType::Event,
        &Node::from_value(&json!({
            "environment": "staging",
            "release": "app@1.2.3",
            "platform": "python",
            "logger": "django.request",
            "transaction": "/health",
            "request": {"url": "https://example.com/internal/ping?x=1"},
            "exception": {"values": [{"type": "ValueError"}, {"type": "ConnectionResetError"}]},
            "tags": {"tier": "free", "retries": 3},
        })),
    )
}

fn first_rule(
    p: &Policy,
    item_type: &ItemType,
    facts: Option<&ItemFacts>,
    fired: &[&str],
) -> Option<String> {
    let fired: BTreeSet<String> = fired.iter().map(|s| (*s).to_owned()).collect();
    p.drop_rule(&RuleInput {
        item_type,
        facts,
        fired: &fired,
        sample_key: "0123456789abcdef0123456789abcdef",
    })
    .map(|name| name.to_string())
}

#[test]
fn facts_are_read_from_events_and_sessions() {
    let facts = event_facts();
    assert_eq!(
        facts.level.as_deref(),
        Some("error"),
        "Sentry's default level"
    );
    assert_eq!(facts.exception_types.len(), 2);
    assert!(facts.tags.contains(&("retries".to_owned(), "3".to_owned())));
    let session = ItemFacts::from_json(
        &ItemType::Session,
        &Node::from_value(&json!({"attrs": {"release": "r1", "environment": "prod"}})),
    );
    assert_eq!(session.release.as_deref(), Some("r1"));
    assert_eq!(session.environment.as_deref(), Some("prod"));
    assert_eq!(session.level, None);
    let array_tags = ItemFacts::from_json(
        &ItemType::Event,
        &Node::from_value(&json!({"tags": [["a", "b"], ["c"]]})),
    );
    assert_eq!(array_tags.tags, vec![("a".to_owned(), "b".to_owned())]);
}

#[test]
fn each_condition_matches_and_misses() {
    let facts = event_facts();
    let cases = [
        ("environment = \"stag*\"", "environment = \"prod\""),
        ("release = \"app@1.*\"", "release = \"app@2.*\""),
        ("level = [\"warning\", \"error\"]", "level = \"info\""),
        ("platform = \"python\"", "platform = \"javascript\""),
        ("logger = \"django.*\"", "logger = \"celery*\""),
        (
            "exception_type = \"*Reset*\"",
            "exception_type = \"KeyError\"",
        ),
        ("transaction = \"/health\"", "transaction = \"/api/*\""),
        ("url = \"*/internal/*\"", "url = \"*/public/*\""),
        (
            "url = \"re:^https://[a-z.]+/internal/\"",
            "url = \"re:^http://\"",
        ),
        ("tags = { tier = \"fr*\" }", "tags = { tier = \"paid\" }"),
        ("tags = { retries = \"3\" }", "tags = { missing = \"*\" }"),
        ("item_types = [\"event\"]", "item_types = [\"transaction\"]"),
    ];
    for (hit, miss) in cases {
        let p = policy(&format!("[[drop]]\nname = \"r\"\n{hit}\n"));
        assert_eq!(
            first_rule(&p, &ItemType::Event, Some(&facts), &[]).as_deref(),
            Some("r"),
            "{hit}"
        );
        let p = policy(&format!("[[drop]]\nname = \"r\"\n{miss}\n"));
        assert_eq!(
            first_rule(&p, &ItemType::Event, Some(&facts), &[]),
            None,
            "{miss}"
        );
    }
}

#[test]
fn conditions_are_anded_and_first_match_wins() {
    let facts = event_facts();
    let p = policy(
        r#"
        [[drop]]
        name = "both"
        environment = "staging"
        platform = "javascript"
        [[drop]]
        name = "first"
        environment = "staging"
        [[drop]]
        name = "second"
        platform = "python"
        "#,
    );
    assert_eq!(
        first_rule(&p, &ItemType::Event, Some(&facts), &[]).as_deref(),
        Some("first")
    );
    assert_eq!(
        p.rule_names().map(|n| n.to_string()).collect::<Vec<_>>(),
        ["both", "first", "second"]
    );
}

#[test]
fn fact_conditions_never_match_items_without_json() {
    let p = policy("[[drop]]\nname = \"r\"\nenvironment = \"*\"\n");
    assert_eq!(first_rule(&p, &ItemType::Attachment, None, &[]), None);
    // An item-type-only rule does match.
    let p = policy("[[drop]]\nname = \"r\"\nitem_types = \"attachment\"\n");
    assert_eq!(
        first_rule(&p, &ItemType::Attachment, None, &[]).as_deref(),
        Some("r")
    );
    let p = policy("[[drop]]\nname = \"r\"\nitem_types = \"unknown\"\n");
    assert_eq!(
        first_rule(&p, &ItemType::parse("future_thing"), None, &[]).as_deref(),
        Some("r")
    );
}

#[test]
fn strict_mode_matches_when_a_detector_fired_anywhere() {
    let p = policy("[[drop]]\nname = \"no-ssn\"\ndetectors = [\"ssn\", \"mrn\"]\n");
    let facts = event_facts();
    assert_eq!(
        first_rule(&p, &ItemType::Event, Some(&facts), &["email", "mrn"]).as_deref(),
        Some("no-ssn")
    );
    assert_eq!(
        first_rule(&p, &ItemType::Event, Some(&facts), &["email"]),
        None
    );
    assert_eq!(
        first_rule(&p, &ItemType::Attachment, None, &["ssn"]).as_deref(),
        Some("no-ssn")
    );
}

#[test]
fn sample_rate_is_deterministic_per_key_and_roughly_proportional() {
    let p = policy("[[drop]]\nname = \"half\"\nsample_rate = 0.5\nitem_types = \"event\"\n");
    let fired = BTreeSet::new();
    let decide = |key: &str| {
        p.drop_rule(&RuleInput {
            item_type: &ItemType::Event,
            facts: None,
            fired: &fired,
            sample_key: key,
        })
        .is_some()
    };
    let hits = (0..1000).filter(|i| decide(&format!("event-{i}"))).count();
    assert!((400..600).contains(&hits), "{hits} of 1000 sampled");
    for i in 0..20 {
        let key = format!("event-{i}");
        assert_eq!(decide(&key), decide(&key));
    }
}

#[test]
fn invalid_rules_are_rejected_with_their_key() {
    assert_eq!(
        compile_err("[[drop]]\nenvironment = \"x\"\n").0,
        "drop[0].name"
    );
    assert_eq!(
        compile_err("[[drop]]\nname = \"has space\"\nenvironment = \"x\"\n").0,
        "drop[0].name"
    );
    assert!(compile_err("[[drop]]\nname = \"all\"\n")
        .1
        .contains("at least one condition"));
    assert_eq!(
        compile_err("[[drop]]\nname = \"r\"\nsample_rate = 0.0\nlevel = \"x\"\n").0,
        "drop[0].sample_rate"
    );
    assert_eq!(
        compile_err("[[drop]]\nname = \"r\"\nurl = \"re:(\"\n").0,
        "drop[0].url"
    );
    assert_eq!(
        compile_err("[[drop]]\nname = \"r\"\nitem_types = \"evnt\"\n").0,
        "drop[0].item_types"
    );
    assert_eq!(
        compile_err(
            "[[drop]]\nname = \"r\"\nlevel = \"x\"\n[[drop]]\nname = \"r\"\nlevel = \"y\"\n"
        )
        .0,
        "drop[1].name"
    );
    assert_eq!(
        compile_err("[attachment_allow]\nfilenames = [\"re:.*\"]\n").0,
        "attachment_allow.filenames"
    );
    assert!(
        toml::from_str::<PolicySettings>("[[drop]]\nname = \"r\"\nenvironmnet = \"x\"\n").is_err()
    );
}

#[test]
fn client_report_counts_categories_and_attachment_bytes() {
    let attachment = ItemType::Attachment;
    let event = ItemType::Event;
    let unknown = ItemType::parse("mystery");
    let replay_event = ItemType::ReplayEvent;
    let replay_recording = ItemType::ReplayRecording;
    let discarded = discarded_events([
        (&event, 10),
        (&attachment, 300),
        (&attachment, 200),
        (&unknown, 5),
        (&replay_event, 7),
        (&replay_recording, 9000),
    ]);
    assert_eq!(
        discarded,
        vec![
            Discarded {
                reason: "before_send",
                category: "attachment",
                quantity: 500
            },
            Discarded {
                reason: "before_send",
                category: "error",
                quantity: 1
            },
            Discarded {
                reason: "before_send",
                category: "replay",
                quantity: 1
            },
        ]
    );
    let payload = client_report_payload(&discarded).expect("something to report");
    let value: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
    assert_eq!(
        value.get("timestamp"),
        None,
        "deterministic: no clock in the payload"
    );
    assert_eq!(value["discarded_events"][1]["category"], "error");
    assert!(client_report_payload(&[]).is_none());
}
