//! Delivery guarantees under upstream faults: whatever scrubgate acknowledged with 2xx
//! reaches the upstream once it is healthy again, across retries, parking in the spool,
//! restarts, SIGKILL, SIGTERM and config reloads.

use std::time::Duration;

use serde_json::json;

use crate::util::{self, Fault, Proxy, Reply, ServeProcess, Upstream, PID};

fn fast_retries(file: &mut scrubgate::config::ConfigFile) {
    file.upstream.timeout_secs = 1;
    file.upstream.connect_timeout_secs = 1;
    file.delivery.max_attempts = 2;
    file.delivery.initial_backoff_ms = 20;
    file.delivery.max_backoff_secs = 1;
    file.delivery.replay_interval_ms = 50;
}

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn event_id(batch: usize, n: usize) -> String {
    format!("{batch:08x}{n:024x}")
}

/// Posts `count` envelopes concurrently (16 at a time); returns the ids answered 200.
async fn send_batch(base: &str, batch: usize, count: usize) -> Vec<String> {
    let client = util::client();
    let mut accepted = Vec::new();
    let ids: Vec<String> = (0..count).map(|n| event_id(batch, n)).collect();
    for chunk in ids.chunks(16) {
        let mut requests = Vec::new();
        for id in chunk.iter().cloned() {
            let body =
                util::event_envelope(&id, &json!({"message": "delivery test", "extra": {"n": 1}}));
            let request = client
                .post(format!("{base}/api/{PID}/envelope/"))
                .header("x-sentry-auth", util::auth_header())
                .body(body)
                .send();
            requests.push(async move { (id, request.await) });
        }
        for (id, result) in futures_join(requests).await {
            if let Ok(response) = result {
                if response.status() == 200 {
                    accepted.push(id);
                }
            }
        }
    }
    accepted
}

async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_envelope_arrives_after_each_fault() {
    type ApplyFault = Box<dyn Fn(&Upstream)>;
    let faults: Vec<(&str, ApplyFault)> = vec![
        (
            "500",
            Box::new(|u: &Upstream| {
                u.set_reply(Reply {
                    status: 500,
                    ..Reply::default()
                })
            }),
        ),
        (
            "slow",
            Box::new(|u: &Upstream| u.set_fault(Fault::Slow(Duration::from_secs(3)))),
        ),
        ("reset", Box::new(|u: &Upstream| u.set_fault(Fault::Reset))),
        (
            "garbage",
            Box::new(|u: &Upstream| u.set_fault(Fault::Garbage)),
        ),
        // Taken down (connection refused, open connections cut) after traffic has flowed.
        ("down", Box::new(|_: &Upstream| {})),
        // Rate limited: what was accepted before the limit was known is retried after it.
        (
            "429",
            Box::new(|u: &Upstream| {
                u.set_reply(Reply {
                    status: 429,
                    headers: vec![
                        ("retry-after".into(), "1".into()),
                        ("x-sentry-rate-limits".into(), "1:error:key".into()),
                    ],
                    body: "{}".into(),
                })
            }),
        ),
    ];
    for (batch, (name, apply)) in faults.into_iter().enumerate() {
        let upstream = Upstream::start().await;
        let mut file = util::config_file(&upstream.url());
        fast_retries(&mut file);
        let proxy = Proxy::start(file).await;
        if name == "down" {
            let warm = send_batch(&format!("http://{}", proxy.addr), 100 + batch, 5).await;
            upstream.wait_delivered(&warm, 10).await;
            upstream.go_down().await;
        }
        apply(&upstream);
        let accepted = send_batch(&format!("http://{}", proxy.addr), batch, 200).await;
        let expected = if name == "429" {
            // The proxy answers 429 itself once it knows the limit; those are not accepted.
            assert!(
                !accepted.is_empty() && accepted.len() < 200,
                "{name}: {}",
                accepted.len()
            );
            accepted.len()
        } else {
            assert_eq!(
                accepted.len(),
                200,
                "{name}: every envelope is acknowledged while the upstream fails"
            );
            200
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        upstream.set_fault(Fault::None);
        upstream.set_reply(Reply::default());
        if name == "down" {
            upstream.come_up().await;
        }
        let delivered = upstream.wait_delivered(&accepted, 30).await;
        let delivered: std::collections::HashMap<_, _> = delivered
            .into_iter()
            .filter(|(id, _)| accepted.contains(id))
            .collect();
        assert_eq!(
            delivered.len(),
            expected,
            "{name}: exactly the accepted envelopes arrive"
        );
        let duplicates: usize = delivered.values().map(|n| n - 1).sum();
        if name != "slow" {
            assert_eq!(
                duplicates, 0,
                "{name}: no duplicates where delivery was never ambiguous"
            );
        }
        let stats = proxy.state().pipeline.delivery().stats();
        let warm_up = if name == "down" { 5 } else { 0 };
        assert_eq!(
            stats.accepted.load(std::sync::atomic::Ordering::Relaxed),
            (expected + warm_up) as u64
        );
        proxy.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_parks_envelopes_on_disk_and_they_replay_when_it_ends() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    fast_retries(&mut file);
    let spool = tempfile::tempdir().unwrap();
    file.spool.dir = spool.path().to_owned();
    let proxy = Proxy::start(file).await;
    upstream.go_down().await;
    let accepted = send_batch(&format!("http://{}", proxy.addr), 7, 300).await;
    assert_eq!(accepted.len(), 300);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivery = proxy.state().pipeline.delivery();
    assert_eq!(
        delivery.spool().usage().0,
        300,
        "everything waits in the spool during the outage"
    );
    assert_eq!(
        delivery.spool().pending_bytes() + scrubgate::spool::format::FILE_HEADER_LEN as u64,
        delivery.spool().usage().1,
        "nothing completed yet: every byte on disk but the segment header is pending"
    );
    assert_eq!(
        segment_files(spool.path()),
        vec!["seg-00000000000000000000.log"],
        "one append-only segment, not one file per envelope"
    );
    upstream.come_up().await;
    let delivered = upstream.wait_delivered(&accepted, 30).await;
    assert_eq!(delivered.len(), 300);
    assert!(delivered.values().all(|n| *n == 1));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while delivery.spool().usage() != (0, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "spool never emptied: {:?}",
            delivery.spool().usage()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        std::fs::read_dir(spool.path()).unwrap().count(),
        0,
        "the completed segment is deleted"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_with_retry_after() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    fast_retries(&mut file);
    file.spool.max_bytes = 4000;
    let proxy = Proxy::start(file).await;
    upstream.go_down().await;
    let client = util::client();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for n in 0..40 {
        let id = event_id(9, n);
        let response = client
            .post(proxy.url(&format!("/api/{PID}/envelope/")))
            .header("x-sentry-auth", util::auth_header())
            .body(util::event_envelope(
                &id,
                &json!({"message": "x".repeat(100)}),
            ))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => accepted.push(id),
            503 => {
                assert_eq!(response.headers()["retry-after"], "60");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        !accepted.is_empty() && refused > 0,
        "accepted {}, refused {refused}",
        accepted.len()
    );
    upstream.come_up().await;
    let delivered = upstream.wait_delivered(&accepted, 30).await;
    assert_eq!(
        delivered.len(),
        accepted.len(),
        "no silent drop: only refused envelopes are missing"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_rate_limits_are_remembered_per_category() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    fast_retries(&mut file);
    file.delivery.max_attempts = 3;
    let proxy = Proxy::start(file).await;
    upstream.set_reply(Reply {
        status: 429,
        headers: vec![
            ("retry-after".into(), "2".into()),
            (
                "x-sentry-rate-limits".into(),
                "2:error:organization:quota_exceeded".into(),
            ),
        ],
        body: "{}".into(),
    });
    let client = util::client();
    let post = |body: Vec<u8>| {
        client
            .post(proxy.url(&format!("/api/{PID}/envelope/")))
            .header("x-sentry-auth", util::auth_header())
            .body(body)
            .send()
    };
    let first = event_id(3, 1);
    let response = post(util::event_envelope(&first, &json!({"message": "m"})))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "accepted before any limit is known");
    upstream.wait_for(1).await;
    upstream.set_reply(Reply::default());
    // Wait until the worker has seen the 429 (it then sleeps before its retry).
    let stats = proxy.state().pipeline.delivery().stats();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.retries.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the 429 was never processed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Errors are limited now: answered 429 without forwarding.
    let response = post(util::event_envelope(
        &event_id(3, 2),
        &json!({"message": "m"}),
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 429);
    let seconds: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&seconds));
    assert_eq!(
        response.headers()["x-sentry-rate-limits"],
        format!("{seconds}:error:key:quota_exceeded").as_str()
    );
    // A mixed envelope loses only the limited item.
    let mixed = format!(
        "{{\"event_id\":\"{}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"m\"}}\n{{\"type\":\"session\"}}\n{{\"sid\":\"7c7b6b8a9d3e4f5a8b9c0d1e2f3a4b5c\",\"status\":\"ok\",\"init\":true,\"started\":\"2026-11-23T10:00:00Z\",\"attrs\":{{\"release\":\"r@1\"}}}}\n",
        event_id(3, 3)
    );
    let response = post(mixed.into_bytes()).await.unwrap();
    assert_eq!(response.status(), 200);
    let received = upstream.wait_for(2).await;
    let types: Vec<String> = received[1]
        .json_items()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(types, ["session"]);
    // The rate-limited envelope is retried once the limit has passed.
    let delivered = upstream
        .wait_delivered(std::slice::from_ref(&first), 10)
        .await;
    assert_eq!(delivered[&first], 1);
    assert!(!upstream.delivered().contains_key(&event_id(3, 2)));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_acknowledgement_loses_nothing() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        "[delivery]\nmax_attempts = 1\ninitial_backoff_ms = 20\nmax_backoff_secs = 1\nreplay_interval_ms = 50\n",
    );
    upstream.go_down().await;
    let mut server = ServeProcess::start(&config, &[]);
    let accepted = send_batch(&format!("http://{}", server.addr), 11, 100).await;
    assert_eq!(accepted.len(), 100);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    upstream.come_up().await;
    let _restarted = ServeProcess::start(&config, &[]);
    let delivered = upstream.wait_delivered(&accepted, 30).await;
    assert_eq!(delivered.len(), 100);
}

/// SIGKILL while envelopes are being delivered: after a restart every acknowledged event
/// arrives at least once. Exactly once for all but the few whose upstream request was in
/// flight at the kill: the upstream had them, but the completion record was never
/// appended, so they are sent again. That window is at most `delivery.workers` envelopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_sends_every_acknowledged_envelope_at_least_once() {
    const WORKERS: usize = 2;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        &format!("[delivery]\nworkers = {WORKERS}\nreplay_interval_ms = 50\n"),
    );
    let mut server = ServeProcess::start(&config, &[]);
    // Two workers at 50 ms per delivery cannot keep up with the burst: most envelopes are
    // still pending at the kill, some are delivered, up to two are in flight (the upstream
    // has them, the proxy never hears back).
    upstream.set_fault(Fault::Delay(Duration::from_millis(50)));
    let accepted = send_batch(&format!("http://{}", server.addr), 14, 400).await;
    assert_eq!(accepted.len(), 400);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    // Let the upstream finish recording what was already on the wire.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = upstream.delivered();
    assert!(before.values().all(|n| *n == 1));
    assert!(
        before.len() < accepted.len(),
        "the kill must land while envelopes are pending ({} delivered)",
        before.len()
    );
    upstream.set_fault(Fault::None);
    let restarted = ServeProcess::start(&config, &[]);
    let after = upstream.wait_delivered(&accepted, 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_settled = upstream.delivered();
    assert_eq!(after, after_settled, "nothing arrives once all did");
    assert_eq!(after.len(), accepted.len(), "no unknown event ids");
    let mut duplicates = 0;
    for id in &accepted {
        let count = after[id];
        match before.get(id) {
            None => assert_eq!(count, 1, "{id}: first sent after the restart, exactly once"),
            Some(_) => {
                assert!(count <= 2, "{id}: {count} deliveries");
                duplicates += count - 1;
            }
        }
    }
    eprintln!(
        "sigkill: {} accepted, {} delivered before the kill, {duplicates} sent twice",
        accepted.len(),
        before.len()
    );
    assert!(duplicates <= WORKERS, "{duplicates} duplicates");
    // The restart recovered exactly what had no completion record.
    let recovered = restarted
        .logs()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find(|v| v["message"] == "spool recovered; resuming delivery of pending envelopes")
        .expect("recovery logged");
    let pending = recovered["pending"].as_u64().unwrap() as usize;
    assert_eq!(pending, accepted.len() - before.len() + duplicates);
    assert_eq!(recovered["lost_envelopes"], 0);
    assert_eq!(recovered["damaged_segments"], 0);
    assert_eq!(
        recovered["unconfirmed"], 0,
        "every envelope was answered before the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_loses_nothing() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        "[server]\nshutdown_timeout_secs = 5\n",
    );
    let mut server = ServeProcess::start(&config, &[]);
    let base = format!("http://{}", server.addr);
    let load = tokio::spawn(async move { send_batch(&base, 12, 300).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let accepted = load.await.unwrap();
    let exit = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        drop(server);
        status
    })
    .await
    .unwrap();
    assert!(exit.success(), "exit 0 after SIGTERM");
    assert!(!accepted.is_empty());
    // Anything acknowledged but not yet delivered is in the spool; a restart sends it.
    let _restarted = ServeProcess::start(&config, &[]);
    let delivered = upstream.wait_delivered(&accepted, 30).await;
    assert!(delivered.len() >= accepted.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_switches_cleanly_and_bad_configs_are_refused() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(dir.path(), &upstream.url(), "");
    let original = std::fs::read_to_string(&config).unwrap();
    let server = ServeProcess::start(&config, &[]);
    let pid = server.child.id().to_string();
    let client = util::client();
    let send = |seq: usize| {
        let body = util::event_envelope(
            &event_id(13, seq),
            &json!({"message": "reload", "extra": {"seq": seq, "flavor": "vanilla-planted"}}),
        );
        client
            .post(server.url(&format!("/api/{PID}/envelope/")))
            .header("x-sentry-auth", util::auth_header())
            .body(body)
            .send()
    };
    let mut reloaded_at = None;
    for seq in 0..60 {
        assert_eq!(send(seq).await.unwrap().status(), 200);
        if seq == 20 {
            std::fs::write(
                &config,
                original.replace(
                    "[[projects]]",
                    "[scrub]\nsensitive_keys = [\"flavor\"]\n\n[[projects]]",
                ),
            )
            .unwrap();
            std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap();
            while !server
                .logs()
                .iter()
                .any(|l| l.contains("configuration reloaded"))
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            reloaded_at = Some(seq);
        }
    }
    let reloaded_at = reloaded_at.unwrap();
    let ids: Vec<String> = (0..60).map(|n| event_id(13, n)).collect();
    upstream.wait_delivered(&ids, 20).await;
    let mut flavors = vec![String::new(); 60];
    for request in upstream.received() {
        for (_, payload) in request.json_items() {
            let seq = payload["extra"]["seq"].as_u64().unwrap() as usize;
            flavors[seq] = payload["extra"]["flavor"].as_str().unwrap().to_owned();
        }
    }
    for (seq, flavor) in flavors.iter().enumerate() {
        if seq <= reloaded_at {
            assert_eq!(
                flavor, "vanilla-planted",
                "seq {seq} sent before the reload"
            );
        } else {
            assert_ne!(flavor, "vanilla-planted", "seq {seq} sent after the reload");
        }
    }
    // An invalid config is refused and the running one stays.
    std::fs::write(&config, "[server]\nbogus = 1\n").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.logs().iter().any(|l| l.contains("reload failed")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload failure logged"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(send(60).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_delivery_outcomes_and_spool_depth() {
    let upstream = Upstream::start().await;
    let mut file = util::config_file(&upstream.url());
    fast_retries(&mut file);
    let proxy = Proxy::start(file).await;
    let accepted = send_batch(&format!("http://{}", proxy.addr), 21, 3).await;
    upstream.wait_delivered(&accepted, 10).await;
    upstream.go_down().await;
    let parked = send_batch(&format!("http://{}", proxy.addr), 22, 2).await;
    assert_eq!(parked.len(), 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = util::client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "scrubgate_delivery_total{outcome=\"accepted\"} 5",
        "scrubgate_delivery_total{outcome=\"delivered\"} 3",
        "scrubgate_spool_envelopes 2",
    ] {
        assert!(text.contains(needle), "missing {needle}\n{text}");
    }
    assert!(text.trim_end().ends_with("# EOF"));
    proxy.stop().await;
}
