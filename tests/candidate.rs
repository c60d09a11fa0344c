//! Issue #22, safe roll-outs: a project's candidate rule set runs beside the active one on a
//! sample of its envelopes; only its differences (rule, path pattern, count) reach the audit
//! record and `/metrics`, the forwarded bytes are those of a run without it, a rate of 0
//! never runs it, a bad candidate file is a config error naming the file, it is reloaded on
//! SIGHUP, and `scrub --compare` prints the same differences offline. No planted value
//! appears in any of these outputs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::policy::{audit_records, config, envelope, json_item, post};
use crate::util::{self, Proxy, ServeProcess, Upstream, KEY, PID};

const EID: &str = "cccccccccccccccccccccccccccccccc";
/// Only the candidate that adds `favourite_colour` redacts it; the active rules forward it.
const COLOUR: &str = "teal-planted-7731";
const EMAIL: &str = "alice.planted@example.com";
const USER_EMAIL: &str = "bob.planted@example.com";
const PASSWORD: &str = "hunter2-planted";
const PLANTED: [&str; 4] = [COLOUR, EMAIL, USER_EMAIL, PASSWORD];

const ADD_KEY: &str = "[scrub]\nsensitive_keys = [\"favourite_colour\"]\n";
const NO_EMAIL: &str = "[scrub.detectors.email]\nenabled = false\n";

fn event() -> Value {
    json!({
        "message": format!("write to {EMAIL}"),
        "extra": {"favourite_colour": COLOUR, "password": PASSWORD},
        "user": {"email": USER_EMAIL},
    })
}

fn event_envelope() -> Vec<u8> {
    envelope(&json!({"event_id": EID}), &[json_item("event", &event())])
}

/// A fixed HMAC key (mode 600), so two proxies pseudonymise alike.
fn hash_key_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("hash.key");
    std::fs::write(&path, "candidate-test-key-0123456789abcdef").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A sync-delivery config (a 200 means the upstream has the envelope) with its audit trail
/// in `dir`, optionally with a candidate for project [`PID`].
fn candidate_config(
    upstream: &Upstream,
    dir: &Path,
    candidate: Option<&str>,
    sample_rate: f64,
) -> scrubgate::config::ConfigFile {
    let mut file = config(upstream, dir, "");
    file.scrub.hash_key_file = Some(hash_key_file(dir));
    file.candidates.sample_rate = sample_rate;
    if let Some(text) = candidate {
        let path = dir.join("candidate.toml");
        std::fs::write(&path, text).unwrap();
        file.projects[0].candidate = Some(path);
    }
    file
}

fn candidate_hash(path: &Path) -> String {
    let key = scrubgate::scrub::HashKey {
        id: "test".into(),
        secret: vec![7; 32],
    };
    scrubgate::config::load_candidate(path, key).unwrap().hash
}

/// The `scrubgate_candidate_*` sample lines of an exposition.
fn candidate_metrics(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("scrubgate_candidate_") && l.contains('{'))
        .map(str::to_owned)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn assert_nothing_planted(what: &str, text: &str) {
    for value in PLANTED {
        assert!(!text.contains(value), "{value} in {what}:\n{text}");
    }
}

#[tokio::test]
async fn a_candidate_key_rule_shows_exactly_its_additions_and_forwards_the_same_bytes() {
    let upstream = Upstream::start().await;
    // The same envelope through a proxy without a candidate, then one with it.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = Proxy::start(candidate_config(&upstream, plain_dir.path(), None, 1.0)).await;
    assert_eq!(post(&plain, event_envelope()).await.0, 200);
    plain.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(candidate_config(&upstream, dir.path(), Some(ADD_KEY), 1.0)).await;
    assert_eq!(post(&proxy, event_envelope()).await.0, 200);

    let received = upstream.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].body, received[1].body,
        "the candidate changed the forwarded bytes"
    );
    // The active rules still decide: the colour goes out as it came in.
    let (_, payload) = &received[1].json_items()[0];
    assert_eq!(payload["extra"]["favourite_colour"], COLOUR);
    assert_eq!(payload["message"], "write to [email]");

    let records = audit_records(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["candidate"],
        json!({
            "hash": candidate_hash(&dir.path().join("candidate.toml")),
            "added": [{"rule": "key_custom", "path": "extra.favourite_colour", "count": 1}],
            "removed": [],
        })
    );
    // The run without a candidate has no such field.
    let plain_records = audit_records(plain_dir.path());
    assert_eq!(plain_records.len(), 1);
    assert!(plain_records[0].get("candidate").is_none());
    // The active redactions are recorded as before.
    let redactions: Vec<&str> = records[0]["items"][0]["redactions"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|rules| rules.as_object().unwrap().keys())
        .map(String::as_str)
        .collect();
    assert_eq!(redactions, ["email", "key_secret", "user_email"]);

    let metrics = util::get_text(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        candidate_metrics(&metrics),
        [
            format!("scrubgate_candidate_envelopes_total{{project_id=\"{PID}\"}} 1"),
            format!(
                "scrubgate_candidate_redactions_total{{project_id=\"{PID}\",rule=\"key_custom\",change=\"added\"}} 1"
            ),
        ]
    );
    // The candidate's redactions are not counted as real ones.
    assert!(!metrics.contains("scrubgate_redactions_total{rule=\"key_custom\"}"));
    assert_nothing_planted("/metrics", &metrics);
    let trail = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_nothing_planted("the audit trail", &trail);
    proxy.stop().await;

    // The trail with a candidate field still verifies.
    let out = util::binary()
        .args(["audit", "verify"])
        .arg(dir.path().join("audit.jsonl"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_candidate_that_disables_a_detector_shows_removals() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(candidate_config(&upstream, dir.path(), Some(NO_EMAIL), 1.0)).await;
    for _ in 0..2 {
        assert_eq!(post(&proxy, event_envelope()).await.0, 200);
    }
    let records = audit_records(dir.path());
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record["candidate"]["added"], json!([]));
        assert_eq!(
            record["candidate"]["removed"],
            json!([{"rule": "email", "path": "message", "count": 1}])
        );
    }
    // Forwarded by the active rules, which still redact the address.
    for request in upstream.received() {
        assert_eq!(request.json_items()[0].1["message"], "write to [email]");
    }
    let metrics = util::get_text(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        candidate_metrics(&metrics),
        [
            format!("scrubgate_candidate_envelopes_total{{project_id=\"{PID}\"}} 2"),
            format!(
                "scrubgate_candidate_redactions_total{{project_id=\"{PID}\",rule=\"email\",change=\"removed\"}} 2"
            ),
        ]
    );
    assert_nothing_planted("/metrics", &metrics);
    let trail = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_nothing_planted("the audit trail", &trail);
    proxy.stop().await;
}

/// Envelopes over 256 KiB are scrubbed on the scrub pool; the candidate runs there too.
#[tokio::test]
async fn a_large_envelope_is_compared_on_the_scrub_pool() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(candidate_config(&upstream, dir.path(), Some(ADD_KEY), 1.0)).await;
    let mut big = event();
    big["extra"]["padding"] = json!("lorem ipsum ".repeat(30_000));
    let body = envelope(&json!({"event_id": EID}), &[json_item("event", &big)]);
    assert!(body.len() > 256 * 1024);
    assert_eq!(post(&proxy, body).await.0, 200);
    let records = audit_records(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["candidate"]["added"],
        json!([{"rule": "key_custom", "path": "extra.favourite_colour", "count": 1}])
    );
    assert_eq!(records[0]["candidate"]["removed"], json!([]));
    let (_, payload) = &upstream.received()[0].json_items()[0];
    assert_eq!(payload["extra"]["favourite_colour"], COLOUR);
    proxy.stop().await;
}

#[tokio::test]
async fn a_sample_rate_of_zero_never_runs_the_candidate() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(candidate_config(&upstream, dir.path(), Some(ADD_KEY), 0.0)).await;
    for _ in 0..5 {
        assert_eq!(post(&proxy, event_envelope()).await.0, 200);
    }
    let records = audit_records(dir.path());
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.get("candidate").is_none()));
    let metrics = util::get_text(&proxy.admin_url("/metrics")).await;
    assert_eq!(candidate_metrics(&metrics), Vec::<String>::new());
    assert!(metrics.contains("scrubgate_redactions_total{rule=\"email\"} 5"));
    assert_eq!(upstream.received().len(), 5);
    proxy.stop().await;
}

/// Runs the binary; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = util::binary()
        .args(args)
        .env_remove("SCRUBGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_candidate_is_a_config_error_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let candidate = dir.path().join("next-rules.toml");
    let config = dir.path().join("scrubgate.toml");
    std::fs::write(
        &config,
        format!(
            "[[projects]]\npublic_key = \"{KEY}\"\nproject_id = {PID}\ncandidate = \"{}\"\n",
            candidate.display()
        ),
    )
    .unwrap();
    let check = || run(&["check-config", "--config", config.to_str().unwrap()]);
    let shown = candidate.display();

    let (code, _, stderr) = check();
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        format!(
            "scrubgate: invalid configuration: projects[0].candidate: {shown}: file does not exist"
        )
    );

    std::fs::write(&candidate, "[scrub]\nsensitive_keyz = [\"a\"]\n").unwrap();
    let (code, _, stderr) = check();
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        format!("scrubgate: invalid configuration: projects[0].candidate: {shown}:2: scrub.sensitive_keyz: unknown key `sensitive_keyz`; did you mean `sensitive_keys`?")
    );

    std::fs::write(
        &candidate,
        "[[scrub.patterns]]\nname = \"emp\"\nregex = \"EMP-(\"\n",
    )
    .unwrap();
    let (code, _, stderr) = check();
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(&format!(
            "scrubgate: invalid configuration: projects[0].candidate: {shown}: scrub.patterns[0].regex: rule `emp`: "
        )),
        "{stderr}"
    );

    std::fs::write(&candidate, NO_EMAIL).unwrap();
    let (code, stdout, stderr) = check();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("[candidates]\nsample_rate = 0.1\n"),
        "{stdout}"
    );

    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[candidates]\nsample_rate = 1.5\n");
    std::fs::write(&config, text).unwrap();
    let (code, _, stderr) = check();
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        "scrubgate: invalid configuration: candidates.sample_rate: must be a number from 0 (never) to 1 (always)"
    );
}

#[test]
fn scrub_compare_prints_the_differences_for_an_envelope_and_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.envelope");
    std::fs::write(&input, event_envelope()).unwrap();
    let bare = dir.path().join("event.json");
    std::fs::write(&bare, serde_json::to_vec(&event()).unwrap()).unwrap();
    let add = dir.path().join("add.toml");
    std::fs::write(
        &add,
        format!("{ADD_KEY}\n[scrub.detectors.email]\nenabled = false\n"),
    )
    .unwrap();
    for file in [&input, &bare] {
        let (code, stdout, stderr) = run(&[
            "scrub",
            "--compare",
            add.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            stdout,
            "+ extra.favourite_colour <- key_custom (1x)\n\
             - message <- email (1x)\n\
             candidate: 1 redaction(s) added, 1 removed\n"
        );
        assert_nothing_planted("scrub --compare", &format!("{stdout}{stderr}"));
    }
    // The same rules as the config: no difference.
    let same = dir.path().join("same.toml");
    std::fs::write(&same, "[scrub]\nprofile = \"hipaa\"\n").unwrap();
    let (code, stdout, _) = run(&[
        "scrub",
        "--compare",
        same.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "candidate: 0 redaction(s) added, 0 removed\n");
    // A bad candidate: exit 2, naming the file.
    std::fs::write(&same, "[scrub]\nprofile = \"hipa\"\n").unwrap();
    let (code, stdout, stderr) = run(&[
        "scrub",
        "--compare",
        same.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(&format!(
            "scrubgate: invalid candidate: {}:2: scrub.profile: unknown value `hipa`",
            same.display()
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_changed_candidate_is_picked_up_on_sighup() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let candidate = dir.path().join("candidate.toml");
    std::fs::write(&candidate, ADD_KEY).unwrap();
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        &format!(
            "candidate = \"{}\"\n\n[candidates]\nsample_rate = 1.0\n",
            candidate.display()
        ),
    );
    let server = ServeProcess::start(&config, &[]);
    let send = || async {
        util::client()
            .post(server.url(&format!("/api/{PID}/envelope/")))
            .header("x-sentry-auth", util::auth_header())
            .body(event_envelope())
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(send().await, 200);
    std::fs::write(&candidate, NO_EMAIL).unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server
        .logs()
        .iter()
        .any(|l| l.contains("configuration reloaded"))
    {
        assert!(std::time::Instant::now() < deadline, "no reload");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(send().await, 200);
    let metrics = util::get_text(&server.admin_url("/metrics")).await;
    assert_eq!(
        candidate_metrics(&metrics),
        [
            format!("scrubgate_candidate_envelopes_total{{project_id=\"{PID}\"}} 2"),
            format!(
                "scrubgate_candidate_redactions_total{{project_id=\"{PID}\",rule=\"email\",change=\"removed\"}} 1"
            ),
            format!(
                "scrubgate_candidate_redactions_total{{project_id=\"{PID}\",rule=\"key_custom\",change=\"added\"}} 1"
            ),
        ]
    );
    assert_nothing_planted("/metrics", &metrics);
    for line in server.logs() {
        assert_nothing_planted("the log", &line);
    }
}
