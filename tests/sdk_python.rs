//! A second real client: the official Python SDK (`sentry-sdk`), run against the real binary.
//! `SCRUBGATE_TEST_PYTHON` names a Python with `sentry-sdk` and `brotli` installed; `scripts/test`
//! (and so CI) creates that venv and sets it. Without it the test says so and passes only when
//! `SCRUBGATE_TEST_REQUIRE_PYTHON` is unset.

use std::process::Command;

use crate::util::{self, ServeProcess, Upstream, KEY, PID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_gzip_and_br_reach_the_upstream_scrubbed() {
    let Ok(python) = std::env::var("SCRUBGATE_TEST_PYTHON") else {
        assert!(
            std::env::var_os("SCRUBGATE_TEST_REQUIRE_PYTHON").is_none(),
            "SCRUBGATE_TEST_REQUIRE_PYTHON is set but SCRUBGATE_TEST_PYTHON is not"
        );
        eprintln!("SKIPPED: set SCRUBGATE_TEST_PYTHON to a python with sentry-sdk and brotli (scripts/test does)");
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(dir.path(), &upstream.url(), "");
    let server = ServeProcess::start(&config, &[]);
    let dsn = format!("http://{KEY}@{}/{PID}", server.addr);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/python_client.py");
    for algo in ["gzip", "br"] {
        let status = tokio::task::spawn_blocking({
            let (python, dsn) = (python.clone(), dsn.clone());
            move || {
                Command::new(python)
                    .args([script, &dsn, algo])
                    .status()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        assert!(status.success(), "python client failed for {algo}");
    }
    let received = upstream.wait_for(6).await;
    assert_eq!(received.len(), 6);
    let mut seen = Vec::new();
    for request in &received {
        assert!(request
            .header("x-sentry-auth")
            .unwrap()
            .contains("sentry_client=sentry.python/"));
        assert_eq!(
            request
                .header("user-agent")
                .map(|ua| ua.starts_with("sentry.python/")),
            Some(true)
        );
        let body = String::from_utf8_lossy(&request.body);
        for planted in ["py-planted-password", "py-planted-token"] {
            assert!(!body.contains(planted), "{planted} reached the upstream");
        }
        for (item_type, payload) in request.json_items() {
            let tag = payload["tags"]["compression"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            seen.push(format!("{item_type}:{tag}"));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "event:br",
            "event:br",
            "event:gzip",
            "event:gzip",
            "transaction:br",
            "transaction:gzip"
        ]
    );
    // The proxy really received both encodings from the SDK.
    let logs = server.logs().join("\n");
    assert!(logs.contains("\"encoding\":\"gzip\""), "no gzip body seen");
    assert!(logs.contains("\"encoding\":\"br\""), "no br body seen");
    for planted in [
        "pat.planted@example.org",
        "py-planted-password",
        "py-planted-token",
    ] {
        assert!(!logs.contains(planted), "payload value in logs");
    }
}
