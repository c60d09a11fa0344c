//! The official Node SDK (`@sentry/node`) instrumenting a real express app, against the real
//! binary. The app (`tests/js/node/app.mjs`) runs under Node on an ephemeral port; this test
//! sends it requests full of PII and checks what reached the in-test upstream.
//!
//! `SCRUBGATE_TEST_NODE` names the `node` to run, with `npm ci` done in `tests/js` (the
//! scripts import from `tests/js/node_modules`); `scripts/test` (and so CI) does both and sets
//! `SCRUBGATE_TEST_REQUIRE_JS=1`. Without the variable the JavaScript tests say SKIPPED and
//! pass, unless `SCRUBGATE_TEST_REQUIRE_JS` is set.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::util::{self, Recorded, ServeProcess, Upstream, KEY, PID};

const EMAIL: &str = "lena.planted@example.org";
/// [`EMAIL`] in a query string.
const EMAIL_QUERY: &str = "lena.planted%40example.org";
const SSN: &str = "536-22-8471";
const PASSWORD: &str = "Pw-planted-7781";
const NAME: &str = "Maria Gonzalez";
const CARD: &str = "4111 1111 1111 1111";
const BEARER: &str = "Bearer plantedtoken.eyJ0.sig5521";
const SESSION_COOKIE: &str = "planted-sess-991";
const API_KEY: &str = "planted-api-key-5521";

/// Every planted value, lower-cased, in the forms they could leave in (the e-mail's local
/// part also covers its `%40`-encoded form, the password, the token and the cookie).
const FORBIDDEN: [&str; 7] = [
    "planted",
    "536-22-8471",
    "536%2d22",
    "gonzalez",
    "maria",
    "4111 1111",
    "4111111111111111",
];

/// `tests/js`, where `package.json` and the scripts live.
pub fn js_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js"))
}

/// The `node` to run, or `None` (the test then prints SKIPPED and passes) when
/// `SCRUBGATE_TEST_NODE` is unset and `SCRUBGATE_TEST_REQUIRE_JS` is not set.
pub fn node(test: &str) -> Option<String> {
    let Ok(node) = std::env::var("SCRUBGATE_TEST_NODE") else {
        assert!(
            std::env::var_os("SCRUBGATE_TEST_REQUIRE_JS").is_none(),
            "SCRUBGATE_TEST_REQUIRE_JS is set but SCRUBGATE_TEST_NODE is not"
        );
        eprintln!(
            "SKIPPED {test}: set SCRUBGATE_TEST_NODE to a node and run `npm ci` in tests/js (scripts/test does)"
        );
        return None;
    };
    assert!(
        js_dir()
            .join("node_modules/@sentry/node/package.json")
            .is_file(),
        "SCRUBGATE_TEST_NODE is set but tests/js/node_modules is missing: run `npm ci` in tests/js"
    );
    Some(node)
}

/// Asserts that no planted value is in `bytes` (any case).
pub fn assert_clean(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes).to_lowercase();
    for planted in FORBIDDEN {
        assert!(
            !text.contains(planted),
            "{planted:?} reached the upstream in {what}"
        );
    }
}

/// Item types of all requests, sorted.
pub fn item_types(received: &[Recorded]) -> Vec<String> {
    let mut types: Vec<String> = received
        .iter()
        .flat_map(|r| r.json_items().into_iter().map(|(t, _)| t))
        .collect();
    types.sort();
    types
}

/// All JSON payloads of one item type, over all requests.
pub fn items_of(received: &[Recorded], item_type: &str) -> Vec<Value> {
    received
        .iter()
        .flat_map(|r| r.json_items())
        .filter(|(t, _)| t == item_type)
        .map(|(_, v)| v)
        .collect()
}

/// The `items` of every span v2 / log container, with their `name`/`body` as the key.
pub fn container_items(received: &[Recorded], item_type: &str) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = items_of(received, item_type)
        .into_iter()
        .flat_map(|c| c["items"].as_array().cloned().unwrap_or_default())
        .map(|item| {
            let key = item["name"]
                .as_str()
                .or_else(|| item["body"].as_str())
                .unwrap_or_default()
                .to_owned();
            (key, item)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A typed attribute's value (`{"value": …, "type": …}`) of a span or log item.
pub fn attribute<'a>(item: &'a Value, name: &str) -> &'a Value {
    &item["attributes"][name]["value"]
}

/// The express app, killed on drop; its stdout lines arrive on `lines`.
struct App {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    fn start(node: &str, dsn: &str) -> Self {
        let mut child = Command::new(node)
            .args(["--import", "./node/instrument.mjs", "node/app.mjs"])
            .current_dir(js_dir())
            .env("SCRUBGATE_TEST_DSN", dsn)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the express app printed its port");
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the app: {first:?}"));
        Self { child, lines, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `Sentry.flush()` in the app: everything it captured has been answered by scrubgate.
    fn flush(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"flush\n").unwrap();
        stdin.flush().unwrap();
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the app answered the flush");
        assert_eq!(line, "flushed true");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_with_express_reaches_the_upstream_scrubbed() {
    let Some(node) = node("node_sdk_with_express_reaches_the_upstream_scrubbed") else {
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(dir.path(), &upstream.url(), "");
    let server = ServeProcess::start(&config, &[]);
    let dsn = format!("http://{KEY}@{}/{PID}", server.addr);
    let mut app = tokio::task::spawn_blocking(move || App::start(&node, &dsn))
        .await
        .unwrap();

    let client = util::client();
    // A route that throws, with PII in the query string, the JSON body, cookies, headers
    // and (through the body) the exception message.
    let response = client
        .post(app.url(&format!("/checkout?email={EMAIL_QUERY}&ssn={SSN}")))
        .header("authorization", BEARER)
        .header(
            "cookie",
            format!("session_id={SESSION_COOKIE}; patient_name=Maria%20Gonzalez; theme=dark"),
        )
        .header("x-customer-email", EMAIL)
        .header("x-api-key", API_KEY)
        .header("content-type", "application/json")
        .body(
            serde_json::json!({
                "email": EMAIL, "card_holder": NAME, "password": PASSWORD, "card_number": CARD
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    // captureMessage and a custom span inside the request's transaction.
    let response = client
        .get(app.url(&format!("/notify?email={EMAIL_QUERY}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut app = tokio::task::spawn_blocking(move || {
        app.flush();
        app
    })
    .await
    .unwrap();

    // Two events, one span container per request (the http.server segment with its
    // children) and the request-mode session aggregate.
    let received = upstream.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received_late = upstream.received();
    assert_eq!(
        received_late.len(),
        5,
        "item types: {:?}",
        item_types(&received_late)
    );
    assert_eq!(
        item_types(&received),
        ["event", "event", "sessions", "span", "span"]
    );
    for request in &received {
        assert_clean("a request body", &request.body);
        let auth = request.header("x-sentry-auth").unwrap_or_default();
        assert!(
            auth.contains("sentry_client=sentry.javascript.node/11.12.0"),
            "{auth}"
        );
    }

    let events = items_of(&received, "event");
    let checkout = events
        .iter()
        .find(|e| e["request"]["method"] == "POST")
        .expect("the /checkout error event");
    assert_eq!(
        checkout["exception"]["values"][0]["value"],
        "Card declined for [name] <[email]>"
    );
    let request = &checkout["request"];
    assert_eq!(request["query_string"], "email=[email]&ssn=[ssn]");
    assert!(request["url"]
        .as_str()
        .unwrap()
        .ends_with("/checkout?email=[email]&ssn=[ssn]"));
    assert_eq!(
        request["data"],
        "{\"email\":\"[email]\",\"card_holder\":\"[name]\",\"password\":\"[Filtered]\",\"card_number\":\"[card]\"}"
    );
    assert_eq!(
        request["cookies"],
        serde_json::json!({"session_id": "[Filtered]", "patient_name": "[name]", "theme": "dark"})
    );
    assert_eq!(request["headers"]["authorization"], "[Filtered]");
    assert_eq!(request["headers"]["x-customer-email"], "[email]");
    assert_eq!(request["headers"]["x-api-key"], "[Filtered]");
    // User identifiers are pseudonymised (hashed), not dropped: "users affected" still counts.
    let user = &checkout["user"];
    for (field, prefix) in [
        ("id", "user:"),
        ("email", "email:"),
        ("username", "username:"),
    ] {
        assert!(
            user[field].as_str().unwrap().starts_with(prefix),
            "user.{field}: {}",
            user[field]
        );
    }
    assert!(user.get("ip_address").is_none(), "{user}");

    let notify = events
        .iter()
        .find(|e| e["request"]["method"] == "GET")
        .expect("the /notify message event");
    assert_eq!(notify["message"], "Reminder e-mail bounced for [email]");
    assert_eq!(notify["request"]["query_string"], "email=[email]");

    let spans = container_items(&received, "span");
    let names: Vec<&str> = spans.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "/checkout",
            "/notify",
            "GET /notify",
            "POST /checkout",
            "jsonParser",
            "jsonParser",
            "lookup customer"
        ]
    );
    let post = &spans.iter().find(|(n, _)| n == "POST /checkout").unwrap().1;
    assert_eq!(attribute(post, "url.query"), "email=[email]&ssn=[ssn]");
    assert_eq!(
        attribute(post, "http.request.header.authorization"),
        &serde_json::json!(["[Filtered]"])
    );
    assert_eq!(
        attribute(post, "http.request.header.cookie"),
        &serde_json::json!(["session_id=[Filtered]", "patient_name=[name]", "theme=dark"])
    );
    assert_eq!(
        attribute(post, "http.request.header.x-customer-email"),
        &serde_json::json!(["[email]"])
    );
    for (_, span) in &spans {
        assert!(
            span["attributes"].get("client.address").is_none()
                && span["attributes"].get("user.ip_address").is_none(),
            "a client IP left in span {}",
            span["name"]
        );
    }
    let route = &spans.iter().find(|(n, _)| n == "/checkout").unwrap().1;
    assert_eq!(
        attribute(route, "sentry.status.message"),
        "Card declined for [name] <[email]>"
    );

    let logs = server.logs().join("\n");
    assert_clean("scrubgate's logs", logs.as_bytes());

    // Closing stdin ends the app.
    drop(app.child.stdin.take());
    let status = tokio::task::spawn_blocking(move || app.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the express app exited with {status}");
}
