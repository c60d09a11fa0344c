//! A real client: the Rust `sentry` crate, pointed at the proxy by DSN only.

use std::sync::Arc;
use std::time::Duration;

use crate::util::{self, Proxy, Upstream, KEY, PID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_error_message_and_transaction_arrive_scrubbed() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    let real_key = "1111222233334444aaaabbbbccccdddd";
    file.projects[0].upstream_dsn = Some(format!("http://{real_key}@{}/9001", upstream.addr));
    let proxy = Proxy::start(file).await;
    let dsn = proxy.dsn();

    tokio::task::spawn_blocking(move || {
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(
            sentry::ClientOptions::new()
                .dsn(&dsn)
                .release("shop@1.2.3")
                .environment("test")
                .traces_sample_rate(1.0),
        )));
        assert!(client.is_enabled(), "sentry client disabled");
        sentry::Hub::run(
            Arc::new(sentry::Hub::new(
                Some(Arc::clone(&client)),
                Arc::new(Default::default()),
            )),
            || {
                sentry::configure_scope(|scope| {
                    scope.set_extra("password", "rust-planted-secret".into());
                    scope.set_extra("cart_items", 2.into());
                    scope.set_tag("feature", "checkout");
                });
                let error = std::io::Error::other("payment declined");
                sentry::capture_error(&error);
                sentry::capture_message("low stock", sentry::Level::Warning);
                let transaction = sentry::start_transaction(sentry::TransactionContext::new(
                    "GET /cart",
                    "http.server",
                ));
                let span = transaction.start_child("db.query", "SELECT 1");
                span.finish();
                transaction.finish();
            },
        );
        assert!(client.flush(Some(Duration::from_secs(10))));
    })
    .await
    .unwrap();

    let received = upstream.wait_for(3).await;
    assert_eq!(received.len(), 3);
    let mut kinds = Vec::new();
    for request in &received {
        assert_eq!(request.uri, "/api/9001/envelope/");
        let auth = request.header("x-sentry-auth").unwrap();
        assert!(
            auth.starts_with(&format!(
                "Sentry sentry_key={real_key}, sentry_version=7, sentry_client=sentry.rust/"
            )),
            "{auth}"
        );
        assert!(!auth.contains(KEY));
        assert!(request.header("x-forwarded-for").is_none());
        let header = request.envelope_header();
        if let Some(dsn) = header.get("dsn") {
            assert_eq!(
                dsn,
                &serde_json::json!(format!("http://{real_key}@{}/9001", upstream.addr))
            );
        }
        if let Some(public_key) = header.pointer("/trace/public_key") {
            assert_eq!(public_key, real_key);
        }
        let body = String::from_utf8_lossy(&request.body);
        assert!(!body.contains("rust-planted-secret"));
        assert!(!body.contains(&format!("/{PID}\"")));
        for (item_type, payload) in request.json_items() {
            if item_type == "event" || item_type == "transaction" {
                assert_eq!(payload["extra"]["cart_items"], 2, "{item_type}");
                assert!(payload["extra"]["password"].is_string());
                kinds.push(match (item_type.as_str(), payload.get("exception")) {
                    ("transaction", _) => "transaction",
                    (_, Some(_)) => "error",
                    _ => "message",
                });
                if item_type == "transaction" {
                    assert_eq!(payload["transaction"], "GET /cart");
                    assert_eq!(payload["spans"].as_array().map(Vec::len), Some(1));
                }
            }
        }
    }
    kinds.sort_unstable();
    assert_eq!(kinds, ["error", "message", "transaction"]);
    proxy.stop().await;
}
