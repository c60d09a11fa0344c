//! Closed by construction: whatever a client names (DSN hosts, ports, schemes, userinfo tricks,
//! IPv6 literals, percent-encoding), scrubgate connects only to its configured upstream; error
//! bodies and logs (even at trace level) never echo payloads, header values or query strings;
//! the HMAC key is never shown and its file must be private.

use std::time::Duration;

use serde_json::json;

use crate::util::{self, Canary, Proxy, ServeProcess, Upstream, KEY, PID};

const EVENT_ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

fn tunnel_envelope(dsn: &str) -> String {
    let dsn = serde_json::to_string(dsn).unwrap();
    format!("{{\"event_id\":\"{EVENT_ID}\",\"dsn\":{dsn}}}\n{{\"type\":\"event\"}}\n{{\"message\":\"m\"}}\n")
}

/// `KEY`, every character percent-encoded.
fn percent_encoded_key() -> String {
    KEY.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn tunnel_dsns_never_choose_where_we_connect() {
    let upstream = Upstream::start().await;
    let canary = Canary::start().await;
    let c = canary.addr.port();
    let mut file = util::config_file(&upstream.url());
    file.server.tunnel_allowed_hosts = vec!["o0.ingest.sentry.io".into()];
    let proxy = Proxy::start(file).await;
    let client = util::client();
    let cases: Vec<(String, u16)> = vec![
        // Other hosts and ports: refused by the host allowlist.
        (format!("http://{KEY}@127.0.0.1:{c}/{PID}"), 403),
        (format!("http://{KEY}@localhost:{c}/{PID}"), 403),
        (format!("http://{KEY}@[::1]:{c}/{PID}"), 403),
        (format!("http://{KEY}@[::ffff:127.0.0.1]:{c}/{PID}"), 403),
        (
            format!("http://{KEY}@o0.ingest.sentry.io.127.0.0.1.nip.io:{c}/{PID}"),
            403,
        ),
        (format!("http://{KEY}@2130706433:{c}/{PID}"), 403),
        (format!("http://{KEY}@o0.ingest.sentry.io:{c}/{PID}"), 200),
        // Userinfo tricks: the key is everything before the last `@`.
        (
            format!("https://{KEY}@evil.com@o0.ingest.sentry.io/{PID}"),
            401,
        ),
        (
            format!("https://o0.ingest.sentry.io@127.0.0.1:{c}/{PID}"),
            403,
        ),
        // Here `x@127.0.0.1:PORT` is the (ignored) secret and the host is the allowed one.
        (
            format!("https://{KEY}:x@127.0.0.1:{c}@o0.ingest.sentry.io/{PID}"),
            200,
        ),
        (
            format!("https://{KEY}%40127.0.0.1:{c}@o0.ingest.sentry.io/{PID}"),
            401,
        ),
        // Percent-encoding: decodes to the real key (fine: the host is still ours) or is invalid.
        (
            format!(
                "https://{}@o0.ingest.sentry.io/{PID}",
                percent_encoded_key()
            ),
            200,
        ),
        (format!("https://{KEY}@127.0.0.1%3A{c}/{PID}"), 400),
        (
            format!("https://{KEY}@o0.ingest.sentry.io%2F@127.0.0.1:{c}/{PID}"),
            403,
        ),
        (format!("https://{KEY}@o0.ingest.sentry.io/%34%32"), 400),
        // Schemes and shapes that are not a DSN at all.
        (format!("file:///etc/passwd#{KEY}"), 400),
        (format!("ftp://{KEY}@127.0.0.1:{c}/{PID}"), 400),
        (format!("gopher://{KEY}@127.0.0.1:{c}/{PID}"), 400),
        ("javascript:alert(1)".to_owned(), 400),
        (format!("//{KEY}@127.0.0.1:{c}/{PID}"), 400),
        (
            format!("https://{KEY}@o0.ingest.sentry.io/{PID}?next=http://127.0.0.1:{c}/"),
            400,
        ),
        (
            format!("https://{KEY}@o0.ingest.sentry.io:99999/{PID}"),
            400,
        ),
        // Path games: the project id is the last segment, after normalisation.
        (format!("https://{KEY}@o0.ingest.sentry.io/{PID}/../7"), 403),
        (format!("https://{KEY}@O0.INGEST.SENTRY.IO/{PID}"), 200),
    ];
    let mut accepted = 0;
    for (dsn, expected) in &cases {
        let response = client
            .post(proxy.url("/tunnel"))
            .body(tunnel_envelope(dsn))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), *expected, "{dsn}");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("127.0.0.1") && !text.contains("evil"),
            "{dsn}: {text}"
        );
        if *expected == 200 {
            accepted += 1;
        }
    }
    // Accepted envelopes all went to the configured upstream, with the DSN rewritten to it.
    let received = upstream.wait_for(accepted).await;
    assert_eq!(received.len(), accepted);
    for request in &received {
        assert_eq!(request.uri, format!("/api/{PID}/envelope/"));
        let dsn = request.envelope_header()["dsn"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(dsn, format!("http://{KEY}@{}/{PID}", upstream.addr));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        canary.connections(),
        0,
        "a DSN made scrubgate connect elsewhere"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn without_a_host_allowlist_the_dsn_host_is_ignored_not_followed() {
    let upstream = Upstream::start().await;
    let canary = Canary::start().await;
    let proxy = Proxy::start(util::config_file(&upstream.url())).await;
    let client = util::client();
    let evil = format!("http://{KEY}@{}/{PID}", canary.addr);
    // Tunnel, DSN-only auth on the envelope route, and header auth plus a DSN header.
    let requests = [
        client
            .post(proxy.url("/tunnel"))
            .body(tunnel_envelope(&evil)),
        client
            .post(proxy.url(&format!("/api/{PID}/envelope/")))
            .body(tunnel_envelope(&evil)),
        client
            .post(proxy.url(&format!("/api/{PID}/envelope/")))
            .header("x-sentry-auth", util::auth_header())
            .body(tunnel_envelope(&evil)),
    ];
    for request in requests {
        assert_eq!(request.send().await.unwrap().status(), 200);
    }
    let received = upstream.wait_for(3).await;
    assert_eq!(received.len(), 3);
    for request in &received {
        let header = request.envelope_header();
        assert!(!header.to_string().contains(&canary.addr.to_string()));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(canary.connections(), 0);
    proxy.stop().await;
}

#[tokio::test]
async fn nothing_planted_shows_up_in_responses_or_trace_logs() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(dir.path(), &upstream.url(), "");
    let server = ServeProcess::start(&config, &[("RUST_LOG", "trace")]);
    let client = util::client();
    let envelope_url = server.url(&format!("/api/{PID}/envelope/"));
    let planted_event = util::event_envelope(
        EVENT_ID,
        &json!({"message": "PLANTBODY1", "user": {"email": "PLANTBODY2@example.com"}}),
    );
    let mut bodies = Vec::new();
    let requests = vec![
        // Good request: the payload travels, but never into a log line.
        client
            .post(&envelope_url)
            .header("x-sentry-auth", util::auth_header())
            .header("user-agent", "PLANTUA")
            .header("x-custom", "PLANTHEADER1")
            .body(planted_event.clone()),
        // Unknown key in the header, in the query, in a DSN.
        client
            .post(&envelope_url)
            .header(
                "x-sentry-auth",
                "Sentry sentry_key=PLANTKEY000000000000000000000000, sentry_version=7",
            )
            .body(planted_event.clone()),
        client
            .post(format!(
                "{envelope_url}?sentry_key=PLANTQUERY1&x=PLANTQUERY2"
            ))
            .body(planted_event.clone()),
        client.post(server.url("/tunnel")).body(tunnel_envelope(
            "https://PLANTDSNKEY@PLANTDSNHOST.example.com/42",
        )),
        // Broken envelopes and bodies carrying planted bytes.
        client
            .post(&envelope_url)
            .header("x-sentry-auth", util::auth_header())
            .body("{\"PLANTHDR\":1} trailing PLANTBODY3"),
        client
            .post(&envelope_url)
            .header("x-sentry-auth", util::auth_header())
            .body("{}\n{\"type\":\"event\",\"length\":5}\nPLANTBODY4-too-long"),
        client
            .post(server.url(&format!("/api/{PID}/store/")))
            .header("x-sentry-auth", util::auth_header())
            .body("PLANTBODY5!!"),
        client
            .post(&envelope_url)
            .header("x-sentry-auth", util::auth_header())
            .header("content-encoding", "PLANTENCODING")
            .body(planted_event.clone()),
        client
            .post(&envelope_url)
            .header("x-sentry-auth", util::auth_header())
            .header("content-encoding", "gzip")
            .body("PLANTBODY6 not gzip"),
        client
            .get(server.url("/PLANTPATH?PLANTQUERY3=1"))
            .header("authorization", "Bearer PLANTHEADER2"),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        bodies.push(response.text().await.unwrap());
    }
    upstream.wait_for(1).await;
    // Give the logger a moment to flush the last lines.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.logs().join("\n");
    assert!(
        logs.contains("envelope processed"),
        "trace logs were captured"
    );
    assert!(logs.lines().count() > 20, "trace level is on");
    for marker in [
        "PLANTBODY",
        "PLANTUA",
        "PLANTHEADER",
        "PLANTKEY",
        "PLANTQUERY",
        "PLANTDSN",
        "PLANTHDR",
        "PLANTENCODING",
        "PLANTPATH",
        KEY,
    ] {
        let hit = logs.lines().find(|line| line.contains(marker));
        assert!(
            hit.is_none(),
            "{marker} in logs: {}",
            hit.unwrap_or_default()
        );
        for body in &bodies {
            assert!(!body.contains(marker), "{marker} in a response: {body}");
        }
    }
}

#[cfg(unix)]
#[test]
fn hash_key_file_must_be_private_and_the_key_is_never_shown() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let secret = "PLANTSECRET-0123456789abcdef";
    let key_path = dir.path().join("hash.key");
    std::fs::write(&key_path, secret).unwrap();
    let extra = format!("[scrub]\nhash_key_file = \"{}\"\n", key_path.display());
    let config = util::write_config(dir.path(), "https://sentry.example.com", &extra);
    let run = |envs: &[(&str, &str)]| {
        let mut command = util::binary();
        command
            .args(["check-config", "--config"])
            .arg(&config)
            .env_remove("SCRUBGATE_HASH_KEY")
            .env_remove("SCRUBGATE_CONFIG");
        for (k, v) in envs {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, output) = run(&[]);
        assert_eq!(code, 2, "mode {mode:o}: {output}");
        assert!(output.contains("scrub.hash_key_file"), "{output}");
        assert!(output.contains("chmod 600"), "{output}");
        assert!(!output.contains("PLANTSECRET"), "{output}");
    }
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, output) = run(&[]);
    assert_eq!(code, 0, "{output}");
    assert!(!output.contains("PLANTSECRET"), "{output}");
    // Too short, from the environment: refused, named, not echoed.
    let (code, output) = run(&[("SCRUBGATE_HASH_KEY", "PLANTSHORT")]);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("scrub.hash_key_env"), "{output}");
    assert!(output.contains("at least 16 bytes"), "{output}");
    assert!(!output.contains("PLANTSHORT"), "{output}");
    // Long enough, from the environment: used, never printed.
    let (code, output) = run(&[("SCRUBGATE_HASH_KEY", "PLANTENVSECRET-0123456789")]);
    assert_eq!(code, 0, "{output}");
    assert!(!output.contains("PLANTENVSECRET"), "{output}");
}
