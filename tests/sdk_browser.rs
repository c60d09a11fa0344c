//! The official browser SDK (`@sentry/browser`, bundled by esbuild) in Debian's headless
//! Chromium, driven by puppeteer-core (`tests/js/browser/driver.mjs`), against the real
//! binary: once with `tunnel` set to scrubgate's tunnel path, once with the DSN pointing
//! straight at scrubgate (a cross-origin page: CORS), and once against a tight rate limit.
//! The page is served from another origin (the driver's own static server on 127.0.0.1).
//!
//! Needs `SCRUBGATE_TEST_NODE` (see tests/sdk_node.rs) and `/usr/bin/chromium` (or
//! `SCRUBGATE_TEST_CHROMIUM`); nothing is downloaded.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::sdk_node::{
    assert_clean, attribute, container_items, item_types, items_of, js_dir, node,
};
use crate::util::{self, Recorded, ServeProcess, Upstream, KEY, OTHER_KEY, OTHER_PID, PID};

const EMAIL: &str = "lena.planted@example.org";
const SSN: &str = "536-22-8471";
const PASSWORD: &str = "Pw-planted-7781";
const NAME: &str = "Maria Gonzalez";
/// Not the default `/tunnel`: the page must reach the configured path.
const TUNNEL: &str = "/monitoring";

/// The browser: `SCRUBGATE_TEST_CHROMIUM`, else Debian's. `None` (SKIPPED) only when the
/// JavaScript tests are not required.
fn chromium(test: &str) -> Option<String> {
    let path = std::env::var("SCRUBGATE_TEST_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    if std::path::Path::new(&path).is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("SCRUBGATE_TEST_REQUIRE_JS").is_none(),
        "SCRUBGATE_TEST_REQUIRE_JS is set but there is no Chromium at {path} (apt-get install chromium)"
    );
    eprintln!("SKIPPED {test}: no Chromium at {path} (apt-get install chromium)");
    None
}

/// Runs the driver with `scenario` and returns its report: `result` (what the page saw),
/// `console`, `pageErrors`, `preflights`, `failedRequests`, `origin`.
async fn drive(node: &str, chromium: &str, scenario: Value) -> Value {
    let (node, chromium) = (node.to_owned(), chromium.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg("browser/driver.mjs")
            .arg(scenario.to_string())
            .current_dir(js_dir())
            .env("CHROMIUM", chromium)
            .output()
            .expect("node starts")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the driver failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("the driver's JSON report");
    assert!(
        report["result"]["failed"].is_null(),
        "the page failed: {}",
        report["result"]["failed"]
    );
    report
}

fn planted() -> Value {
    json!({"email": EMAIL, "ssn": SSN, "password": PASSWORD, "name": NAME})
}

/// The inflated rrweb JSON of every `replay_recording` item (header line, then zlib).
fn replay_segments(received: &[Recorded]) -> Vec<String> {
    use std::io::Read;
    let mut out = Vec::new();
    for request in received {
        for item in request.envelope().items() {
            if item.item_type().as_str() != "replay_recording" {
                continue;
            }
            let payload = item.payload();
            let newline = payload.iter().position(|b| *b == b'\n').unwrap();
            assert_eq!(&payload[..newline], br#"{"segment_id":0}"#);
            let mut json = String::new();
            flate2::read::ZlibDecoder::new(&payload[newline + 1..])
                .read_to_string(&mut json)
                .expect("the recording is zlib-compressed rrweb JSON");
            out.push(json);
        }
    }
    out
}

/// What one page load of the "full" scenario must have delivered, scrubbed.
fn assert_full_scenario(received: &[Recorded], mode: &str) {
    let mut expected = vec![
        "event",
        "event",
        "event",
        "feedback",
        "log",
        "replay_event",
        "replay_recording",
        "session",
        "session",
        "span",
    ];
    if mode == "direct" {
        // The preflighted envelope the page sent itself.
        expected.insert(0, "event");
    }
    assert_eq!(item_types(received), expected, "{mode}");
    for request in received {
        assert_clean(&format!("a {mode} request body"), &request.body);
        let auth = request.header("x-sentry-auth").unwrap_or_default();
        assert!(auth.contains(&format!("sentry_key={KEY}")), "{auth}");
    }
    let segments = replay_segments(received);
    assert_eq!(segments.len(), 1);
    assert_clean("the replay recording", segments[0].as_bytes());
    // The page's text and the typed input, scrubbed inside the recording.
    assert!(
        segments[0].contains("Receipt goes to [email], account holder [name]"),
        "{mode}: page text in the recording"
    );
    assert!(
        segments[0].contains(r#""text":"[name] [ssn]""#),
        "{mode}: the input event in the recording"
    );

    let events = items_of(received, "event");
    let exception = |value: &str| {
        events
            .iter()
            .find(|e| e["exception"]["values"][0]["value"] == value)
            .unwrap_or_else(|| panic!("{mode}: no event with exception {value:?}"))
    };
    let uncaught = exception("Payment failed for [email] (SSN [ssn])");
    assert_eq!(
        uncaught["exception"]["values"][0]["mechanism"]["handled"],
        false
    );
    let caught = exception("Charge declined for [name] <[email]>");
    assert_eq!(caught["extra"]["password"], "[Filtered]");
    assert_eq!(
        caught["extra"]["note"],
        "customer [name] called about order 5521"
    );
    let message = events
        .iter()
        .find(|e| e["message"].is_string() && e["message"] != "preflighted envelope")
        .unwrap_or_else(|| panic!("{mode}: no message event"));
    assert_eq!(message["message"], "Address check failed for [email]");
    let feedback = &items_of(received, "feedback")[0];
    assert_eq!(feedback["contexts"]["feedback"]["contact_email"], "[email]");
    assert_eq!(feedback["contexts"]["feedback"]["name"], "[name]");
    assert_eq!(
        feedback["contexts"]["feedback"]["message"],
        "My SSN [ssn] shows on the receipt page"
    );
    let replay_event = &items_of(received, "replay_event")[0];
    for event in [uncaught, caught, message, feedback, replay_event] {
        let url = event["request"]["url"].as_str().unwrap_or_default();
        assert!(url.ends_with("/checkout?email=[email]"), "{mode}: {url}");
        assert_eq!(event["user"]["name"], "[name]", "{mode}");
        let email = event["user"]["email"].as_str().unwrap_or_default();
        assert!(email.starts_with("email:"), "{mode}: user.email {email}");
        assert_eq!(event["tags"]["scenario"], mode);
    }

    let logs = container_items(received, "log");
    let bodies: Vec<&str> = logs.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "card holder [name] failed 3-D Secure",
            "order 5521 placed by [email]"
        ]
    );
    assert_eq!(attribute(&logs[0].1, "password"), "[Filtered]");
    assert_eq!(
        attribute(&logs[1].1, "sentry.message.parameter.0"),
        "[email]"
    );

    let spans = container_items(received, "span");
    let names: Vec<&str> = spans.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["checkout submit", "validate card"]);
    let root = &spans[0].1;
    let email = attribute(root, "user.email").as_str().unwrap_or_default();
    assert!(
        email.starts_with("email:"),
        "{mode}: span user.email {email}"
    );
    let url = attribute(root, "url.full").as_str().unwrap_or_default();
    assert!(url.ends_with("/checkout?email=[email]"), "{mode}: {url}");
}

/// The page itself: every transport answer 200, no console message, and exactly the one
/// uncaught error the scenario throws on purpose.
fn assert_page_clean(report: &Value, sdk_requests: usize) {
    let result = &report["result"];
    assert_eq!(result["flushed"], true);
    let responses = result["responses"].as_array().unwrap();
    assert_eq!(responses.len(), sdk_requests, "{responses:?}");
    for response in responses {
        assert_eq!(response["status"], 200, "{response}");
    }
    assert_eq!(report["console"], json!([]), "console messages");
    assert_eq!(
        report["pageErrors"],
        json!([format!("Payment failed for {EMAIL} (SSN {SSN})")])
    );
    assert_eq!(report["failedRequests"], json!([]));
    assert!(result["replayId"].as_str().is_some_and(|id| id.len() == 32));
}

async fn wait_exactly(upstream: &Upstream, count: usize) -> Vec<Recorded> {
    upstream.wait_for(count).await;
    // Anything more would be a duplicate or an item we did not expect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = upstream.received();
    assert_eq!(
        received.len(),
        count,
        "item types: {:?}",
        item_types(&received)
    );
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sdk_through_tunnel_and_direct_reaches_the_upstream_scrubbed() {
    let test = "browser_sdk_through_tunnel_and_direct_reaches_the_upstream_scrubbed";
    let (Some(node), Some(chromium)) = (node(test), chromium(test)) else {
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        &format!(
            "[server]\ntunnel_path = \"{TUNNEL}\"\n\n[policy]\nreplay_recordings = \"scrub\"\n"
        ),
    );
    let server = ServeProcess::start(&config, &[]);
    // The tunnel mode's DSN names a host that never resolves: scrubgate takes the project
    // from it and sends to its configured upstream, never to that host.
    let tunnel = drive(
        &node,
        &chromium,
        json!({
            "scenario": "full",
            "mode": "tunnel",
            "dsn": format!("http://{KEY}@sentry.invalid/{PID}"),
            "tunnel": server.url(TUNNEL),
            "planted": planted(),
        }),
    )
    .await;
    assert_page_clean(&tunnel, 9);
    for response in tunnel["result"]["responses"].as_array().unwrap() {
        assert_eq!(response["url"], server.url(TUNNEL));
    }
    // Text bodies without custom headers: the SDK never needs a preflight.
    assert_eq!(tunnel["preflights"], json!([]));
    let received = wait_exactly(&upstream, 9).await;
    assert_full_scenario(&received, "tunnel");

    upstream.clear();
    let direct = drive(
        &node,
        &chromium,
        json!({
            "scenario": "full",
            "mode": "direct",
            "dsn": format!("http://{KEY}@{}/{PID}", server.addr),
            "tunnel": null,
            "envelopeUrl": server.url(&format!("/api/{PID}/envelope/")),
            "auth": util::auth_header(),
            "planted": planted(),
        }),
    )
    .await;
    assert_page_clean(&direct, 9);
    let sdk_url = format!(
        "{}?sentry_version=7&sentry_key={KEY}",
        server.url(&format!("/api/{PID}/envelope/"))
    );
    for response in direct["result"]["responses"].as_array().unwrap() {
        let url = response["url"].as_str().unwrap();
        assert!(url.starts_with(&sdk_url), "{url}");
    }
    // The page's own envelope with X-Sentry-Auth and an envelope content type went through,
    // which Chromium allows only after a successful preflight; here is that preflight.
    assert_eq!(direct["result"]["direct"]["status"], 200);
    let preflights = direct["preflights"].as_array().unwrap();
    assert_eq!(preflights.len(), 1, "{preflights:?}");
    let preflight = &preflights[0];
    assert_eq!(preflight["status"], 200);
    assert_eq!(
        preflight["requestHeaders"]["Origin"], direct["origin"],
        "the page is another origin"
    );
    assert_eq!(
        preflight["requestHeaders"]["Access-Control-Request-Headers"],
        "content-type,x-sentry-auth"
    );
    let headers = &preflight["headers"];
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-allow-methods"], "POST");
    assert_eq!(headers["access-control-max-age"], "3600");
    let allowed = headers["access-control-allow-headers"].as_str().unwrap();
    for name in ["x-sentry-auth", "content-type", "content-encoding"] {
        assert!(allowed.split(", ").any(|h| h == name), "{allowed}");
    }
    assert_eq!(
        headers["access-control-expose-headers"],
        "x-sentry-error, x-sentry-rate-limits, retry-after"
    );
    let received = wait_exactly(&upstream, 10).await;
    assert_full_scenario(&received, "direct");

    let logs = server.logs().join("\n");
    assert_clean("scrubgate's logs", logs.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sdk_reads_the_rate_limit_headers_and_backs_off() {
    let test = "browser_sdk_reads_the_rate_limit_headers_and_backs_off";
    let (Some(node), Some(chromium)) = (node(test), chromium(test)) else {
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // One request per project key, then one token per 100 s. Two projects, so the tunnel
    // and the direct run each start with a full bucket.
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        &format!(
            "[[projects]]\npublic_key = \"{OTHER_KEY}\"\nproject_id = {OTHER_PID}\n\n\
             [limits]\nproject_rate_limit_per_sec = 0.01\nproject_rate_limit_burst = 1\n"
        ),
    );
    let server = ServeProcess::start(&config, &[]);
    for (mode, key, pid, tunnel) in [
        ("tunnel", KEY, PID, Some(server.url("/tunnel"))),
        ("direct", OTHER_KEY, OTHER_PID, None),
    ] {
        upstream.clear();
        let dsn = match tunnel {
            Some(_) => format!("http://{key}@sentry.invalid/{pid}"),
            None => format!("http://{key}@{}/{pid}", server.addr),
        };
        let report = drive(
            &node,
            &chromium,
            json!({"scenario": "ratelimit", "mode": mode, "dsn": dsn, "tunnel": tunnel, "planted": planted()}),
        )
        .await;
        let responses = report["result"]["responses"].as_array().unwrap();
        // The third message never left the page: the SDK honoured the limit it read.
        assert_eq!(responses.len(), 2, "{mode}: {responses:?}");
        assert_eq!(responses[0]["status"], 200);
        assert_eq!(responses[0]["retryAfter"], Value::Null);
        assert_eq!(responses[1]["status"], 429, "{mode}");
        // Readable by the page only because scrubgate exposes them to this origin.
        let retry_after = responses[1]["retryAfter"].as_str().unwrap_or_default();
        let secs: u64 = retry_after.parse().unwrap_or_default();
        assert!(
            (90..=100).contains(&secs),
            "{mode}: Retry-After {retry_after:?}"
        );
        assert_eq!(responses[1]["rateLimits"], format!("{secs}::key"), "{mode}");
        assert_eq!(report["pageErrors"], json!([]));
        // Chromium's own note about the 429, nothing else.
        assert_eq!(
            report["console"],
            json!([{"type": "error", "text": "Failed to load resource: the server responded with a status of 429 (Too Many Requests)"}]),
            "{mode}"
        );
        let received = wait_exactly(&upstream, 1).await;
        let events = items_of(&received, "event");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["message"], "rate limit probe 1");
    }
}
