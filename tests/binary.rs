//! The real binary: config validation before binding, `check-config`, `scrub`, `serve` on the
//! shipped example config, and a clean exit on SIGTERM.

use std::time::Duration;

use crate::util::{self, ServeProcess, Upstream, KEY, PID};

fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = util::binary();
    command.args(args).env_remove("SCRUBGATE_CONFIG");
    for (k, v) in envs {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["serve", "scrub", "check-config", "test", "audit"] {
        let (code, stdout, _) = run(&[sub, "--help"], &[]);
        assert_eq!(code, 0, "{sub}");
        assert!(stdout.contains("Usage: scrubgate"), "{sub}: {stdout}");
    }
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(dir.path(), "https://sentry.example.com", "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("project_id = {PID}\n"),
        &format!("project_id = {PID}\nupstream_dsn = \"https://realkey0000000000000000000000:topsecret@sentry.example.com/77\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    let (code, stdout, stderr) = run(
        &["check-config", "--config", config.to_str().unwrap()],
        &[("SCRUBGATE_SERVER__LISTEN", "127.0.0.1:4999")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("listen = \"127.0.0.1:4999\""),
        "env overrides the file: {stdout}"
    );
    assert!(stdout.contains("url = \"https://sentry.example.com\""));
    assert!(!stdout.contains("topsecret"));
    assert!(!stdout.contains("realkey0000000000000000000000"));
    assert!(stderr.contains("configuration OK"));
    // The example config checks too.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml.example");
    let (code, _, stderr) = run(&["check-config", "--config", example], &[]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn invalid_configs_exit_non_zero_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[server]\nlisten = \"nope\"\n", "server.listen"),
        ("[server]\nbogus_key = 1\n", "bogus_key"),
        ("[upstream]\nurl = \"ftp://x\"\n", "upstream.url"),
        (
            "[[projects]]\npublic_key = \"short\"\nproject_id = 1\n",
            "projects[0].public_key",
        ),
        (
            &format!("[[projects]]\npublic_key = \"{KEY}\"\nproject_id = 0\n"),
            "projects[0].project_id",
        ),
        ("[upstream]\nurl = \"file://./x\"\n", "projects"),
        ("[spool]\nsegment_bytes = 1000\n", "spool.segment_bytes"),
    ];
    for (text, key) in cases {
        let path = dir.path().join("bad.toml");
        let mut text = text.to_owned();
        if !text.contains("[[projects]]") && key != "projects" {
            text.push_str(&format!(
                "\n[[projects]]\npublic_key = \"{KEY}\"\nproject_id = 1\n"
            ));
        }
        std::fs::write(&path, &text).unwrap();
        for sub in ["check-config", "serve"] {
            let (code, _, stderr) = run(&[sub, "--config", path.to_str().unwrap()], &[]);
            assert_eq!(code, 2, "{sub} {text}: {stderr}");
            assert!(stderr.contains(key), "{key} not named in: {stderr}");
            assert!(!stderr.contains("listening"));
        }
    }
    let (code, _, stderr) = run(
        &["check-config", "--config", "/nonexistent/scrubgate.toml"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/scrubgate.toml"), "{stderr}");
}

#[test]
fn scrub_command_scrubs_an_envelope_offline() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml.example");
    let input = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/python-exception-with-locals/input.envelope"
    );
    let (code, stdout, stderr) = run(&["scrub", "--config", example, "--explain", input], &[]);
    assert_eq!(code, 0, "{stderr}");
    let envelope =
        scrubgate::decode::Envelope::parse(stdout.clone().into_bytes().into(), &Default::default())
            .unwrap();
    assert_eq!(envelope.items().len(), 1);
    assert!(
        stderr.contains("redaction(s), 1 item(s) forwarded, 0 dropped"),
        "{stderr}"
    );
    // --explain names paths and rules, never values.
    assert!(!stderr.contains("4111"));
    let (code, _, stderr) = run(
        &["scrub", "--config", example, "/nonexistent.envelope"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read"));
}

#[tokio::test]
async fn serve_forwards_to_an_http_upstream_and_exits_cleanly_on_sigterm() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(dir.path(), &upstream.url(), "");
    let mut server = ServeProcess::start(&config, &[]);
    let body = util::event_envelope(
        "aaaabbbbccccddddeeeeffff00001111",
        &serde_json::json!({"message": "via binary"}),
    );
    let response = util::client()
        .post(server.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    upstream.wait_for(1).await;
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success());
    let logs = server.logs().join("\n");
    assert!(logs.contains("envelope processed"));
    assert!(!logs.contains("via binary"), "payload in logs");
}

#[tokio::test]
async fn example_config_writes_forwarded_envelopes_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml.example"))
            .unwrap();
    let out = dir.path().join("out");
    let config = dir.path().join("example.toml");
    std::fs::write(
        &config,
        example.replace(
            "file://./scrubgate-out",
            &format!("file://{}", out.display()),
        ),
    )
    .unwrap();
    let spool = dir.path().join("spool");
    let server = ServeProcess::start(
        &config,
        &[("SCRUBGATE_SPOOL__DIR", spool.to_str().unwrap())],
    );
    let input = util::sdk_envelope("01-exception-with-locals.envelope");
    let response = util::client()
        .post(server.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .header("content-encoding", "gzip")
        .body(util::gzip(&input))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Delivery is asynchronous: the file appears shortly after the 200.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(&out)
            .map(|d| {
                d.map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "envelope"))
                    .collect()
            })
            .unwrap_or_default();
        if !files.is_empty() || std::time::Instant::now() > deadline {
            break files;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(".envelope"), "{name}");
    let written = std::fs::read(&files[0]).unwrap();
    let envelope = scrubgate::decode::Envelope::parse(written.into(), &Default::default()).unwrap();
    assert_eq!(envelope.items().len(), 1);
    assert_eq!(envelope.event_id(), Some(name.split('-').nth(2).unwrap()));
    let payload = String::from_utf8_lossy(envelope.items()[0].payload()).into_owned();
    assert!(payload.contains("GatewayError"), "exception types survive");
    for planted in [
        "hunter2",
        "alice@example.com",
        "4111 1111 1111 1111",
        "sk_live_abcdEFGH12345678",
    ] {
        assert!(
            !payload.contains(planted),
            "{planted} reached the file sink"
        );
    }
}
