//! Delivery per destination: a dead upstream with a huge backlog never delays a healthy
//! one, destinations are resolved when sending (a corrected `upstream_dsn` redirects the
//! backlog, a removed project is set aside), and reserved envelopes are only delivered
//! once committed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use scrubgate::spool::{Spool, SpoolMeta, SpoolSettings};
use serde_json::json;

use crate::util::{self, Proxy, Reply, ServeProcess, Upstream, KEY, OTHER_KEY, OTHER_PID, PID};

fn event_id(batch: u32, n: u32) -> String {
    format!("{batch:08x}{n:024x}")
}

/// An envelope whose header names a DSN and a trace key, as SDKs send them.
fn envelope(id: &str, dsn: &str, key: &str) -> Vec<u8> {
    let payload = serde_json::to_vec(&json!({"message": "destinations"})).unwrap();
    let mut out = format!(
        "{{\"event_id\":\"{id}\",\"dsn\":\"{dsn}\",\"trace\":{{\"trace_id\":\"4c79f60c11214eb38604f4ae0781bfb2\",\"public_key\":\"{key}\"}}}}\n{{\"type\":\"event\",\"length\":{}}}\n",
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(&payload);
    out.push(b'\n');
    out
}

/// The metadata the proxy writes for an envelope of the configured project `key`/`pid`
/// going to `dsn_key`@`upstream`/`upstream_pid`.
fn meta(
    key: &str,
    pid: u64,
    upstream: &str,
    dsn_key: &str,
    upstream_pid: u64,
    id: &str,
) -> SpoolMeta {
    SpoolMeta {
        base: upstream.to_owned(),
        public_key: dsn_key.to_owned(),
        project_id: upstream_pid,
        dsn: dsn(upstream, dsn_key, upstream_pid),
        sentry_client: Some("sentry.test/1.0".into()),
        user_agent: None,
        event_id: Some(id.to_owned()),
        categories: vec!["error".into()],
        sdk_public_key: Some(key.to_owned()),
        sdk_project_id: Some(pid),
    }
}

fn dsn(upstream: &str, key: &str, pid: u64) -> String {
    let (scheme, rest) = upstream.split_once("://").unwrap();
    format!("{scheme}://{key}@{rest}/{pid}")
}

/// Writes `count` envelopes straight into the spool at `dir`, as a proxy that accepted them
/// earlier would have (released: their requests were answered 2xx).
fn prefill(dir: &std::path::Path, count: u32, batch: u32, meta_for: impl Fn(&str) -> SpoolMeta) {
    let spool = Spool::open(&SpoolSettings {
        dir: dir.to_owned(),
        ..SpoolSettings::default()
    })
    .unwrap();
    for n in 0..count {
        let id = event_id(batch, n);
        let meta = meta_for(&id);
        let body = envelope(&id, &meta.dsn, &meta.public_key);
        let record = spool.write(&meta, &body).unwrap();
        spool.release(record).unwrap();
    }
}

fn post(proxy_base: &str, key: &str, pid: u64, body: Vec<u8>) -> reqwest::RequestBuilder {
    util::client()
        .post(format!("{proxy_base}/api/{pid}/envelope/"))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.test/1.0"),
        )
        .body(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_destinations_backlog_never_delays_a_healthy_one() {
    const BACKLOG: u32 = 10_000;
    const WORKERS: usize = 8;
    let healthy = Upstream::start().await;
    let dead = Upstream::start().await;
    dead.set_reply(Reply {
        status: 503,
        ..Reply::default()
    });
    let spool = tempfile::tempdir().unwrap();
    let mut file = util::config_file(&healthy.url());
    file.projects[0].upstream_dsn = Some(dsn(&healthy.url(), KEY, PID));
    file.projects[1].upstream_dsn = Some(dsn(&dead.url(), OTHER_KEY, OTHER_PID));
    file.spool.dir = spool.path().to_owned();
    file.upstream.timeout_secs = 1;
    file.delivery.workers = WORKERS;
    file.delivery.max_attempts = 2;
    file.delivery.initial_backoff_ms = 50;
    file.delivery.max_backoff_secs = 2;
    file.delivery.replay_interval_ms = 50;
    let dead_url = dead.url();
    prefill(spool.path(), BACKLOG, 1, |id| {
        meta(OTHER_KEY, OTHER_PID, &dead_url, OTHER_KEY, OTHER_PID, id)
    });
    let started = Instant::now();
    let proxy = Proxy::start(file).await;
    let base = format!("http://{}", proxy.addr);
    let proxy_dsn = proxy.dsn();

    let mut worst = Duration::ZERO;
    for n in 0..50 {
        let id = event_id(2, n);
        let response = post(&base, KEY, PID, envelope(&id, &proxy_dsn, KEY))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let acknowledged = Instant::now();
        while !healthy.delivered().contains_key(&id) {
            assert!(
                acknowledged.elapsed() < Duration::from_secs(2),
                "envelope {n} of the healthy project not delivered within 2 s of its 200"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worst = worst.max(acknowledged.elapsed());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let elapsed = started.elapsed();
    let stats = proxy.state().pipeline.delivery().stats();
    let gauges = stats.destinations.lock().unwrap().clone();
    let dead_gauge = gauges
        .iter()
        .find(|g| g.project_id == OTHER_PID)
        .expect("the dead destination is reported");
    assert_eq!(
        dead_gauge.breaker_open, 1,
        "the dead destination's breaker is open"
    );
    assert!(
        dead_gauge.pending >= u64::from(BACKLOG) - 1,
        "{dead_gauge:?}"
    );
    let dead_requests = dead.received();
    // Before the breaker opens, the dead destination may fill the workers once (nobody else
    // has work yet); after that, one probe per cool-down (1 s, then 2 s).
    let bound = WORKERS + elapsed.as_secs() as usize + 2;
    eprintln!(
        "healthy: worst {worst:?} from 200 to arrival; dead upstream: {} requests in {elapsed:?} (bound {bound})",
        dead_requests.len()
    );
    assert!(
        dead_requests.len() <= bound,
        "the dead upstream saw {} requests",
        dead_requests.len()
    );
    assert!(dead_requests
        .iter()
        .all(|r| r.uri == format!("/api/{OTHER_PID}/envelope/")));
    assert_eq!(
        healthy.received().len(),
        50,
        "nothing of the dead project went astray"
    );
    let metrics = util::get_text(&proxy.admin_url("/metrics")).await;
    assert!(
        metrics.contains(&format!(
            "scrubgate_delivery_breaker_open{{project_id=\"{OTHER_PID}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "scrubgate_delivery_breaker_open{{project_id=\"{PID}\"}} 0"
        )),
        "{metrics}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_upstream_dsn_redirects_the_backlog_after_a_restart() {
    const OLD_KEY: &str = "0ld0000000000000000000000000000a";
    const NEW_KEY: &str = "4e30000000000000000000000000000b";
    let old = Upstream::start().await;
    let new = Upstream::start().await;
    let legacy = Upstream::start().await;
    old.go_down().await;
    let spool = tempfile::tempdir().unwrap();
    let config = |upstream: &Upstream, key: &str, pid: u64| {
        let mut file = util::config_file(&upstream.url());
        file.projects[0].upstream_dsn = Some(dsn(&upstream.url(), key, pid));
        file.spool.dir = spool.path().to_owned();
        file.upstream.timeout_secs = 1;
        file.upstream.connect_timeout_secs = 1;
        file.delivery.max_attempts = 2;
        file.delivery.initial_backoff_ms = 20;
        file.delivery.max_backoff_secs = 1;
        file.delivery.replay_interval_ms = 50;
        file
    };

    // Accepted for the old upstream, which is down: they wait in the spool.
    let proxy = Proxy::start(config(&old, OLD_KEY, 100)).await;
    let base = format!("http://{}", proxy.addr);
    let mut ids = Vec::new();
    for n in 0..20 {
        let id = event_id(3, n);
        let response = post(&base, KEY, PID, envelope(&id, &proxy.dsn(), KEY))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        ids.push(id);
    }
    proxy.stop().await;
    assert_eq!(
        Spool::open(&SpoolSettings {
            dir: spool.path().to_owned(),
            ..SpoolSettings::default()
        })
        .unwrap()
        .usage()
        .0,
        20
    );
    // A record of the previous format (no project identity) keeps its stored destination.
    let legacy_id = event_id(4, 0);
    let legacy_url = legacy.url();
    prefill(spool.path(), 1, 4, |id| SpoolMeta {
        sdk_public_key: None,
        sdk_project_id: None,
        ..meta(KEY, PID, &legacy_url, KEY, 55, id)
    });

    // The config is corrected and the proxy restarted on the same spool.
    old.come_up().await;
    let proxy = Proxy::start(config(&new, NEW_KEY, 200)).await;
    let delivered = new.wait_delivered(&ids, 20).await;
    assert!(ids.iter().all(|id| delivered[id] == 1));
    let new_dsn = dsn(&new.url(), NEW_KEY, 200);
    for request in new.received() {
        assert_eq!(request.uri, "/api/200/envelope/");
        assert!(
            request
                .header("x-sentry-auth")
                .unwrap()
                .contains(&format!("sentry_key={NEW_KEY},")),
            "{:?}",
            request.header("x-sentry-auth")
        );
        let header = request.envelope_header();
        assert_eq!(header["dsn"], new_dsn.as_str());
        assert_eq!(header["trace"]["public_key"], NEW_KEY);
        assert_eq!(
            header["trace"]["trace_id"], "4c79f60c11214eb38604f4ae0781bfb2",
            "the rest of the header is kept"
        );
        assert_eq!(
            request.json_items(),
            [("event".to_owned(), json!({"message": "destinations"}))]
        );
    }
    let legacy_delivered = legacy
        .wait_delivered(std::slice::from_ref(&legacy_id), 10)
        .await;
    assert_eq!(legacy_delivered[&legacy_id], 1);
    let legacy_request = &legacy.received()[0];
    assert_eq!(legacy_request.uri, "/api/55/envelope/");
    assert_eq!(
        legacy_request.envelope_header()["dsn"],
        dsn(&legacy.url(), KEY, 55).as_str()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        old.received().is_empty(),
        "nothing goes to the old upstream"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_upstream_dsn_redirects_envelopes_already_queued_for_a_dead_upstream() {
    const NEW_KEY: &str = "4e30000000000000000000000000000c";
    let old = Upstream::start().await;
    old.go_down().await;
    let new = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut file = util::config_file(&old.url());
    file.projects[0].upstream_dsn = Some(dsn(&old.url(), KEY, PID));
    file.spool.dir = dir.path().join("spool");
    file.upstream.connect_timeout_secs = 1;
    file.delivery.max_attempts = 2;
    file.delivery.initial_backoff_ms = 20;
    file.delivery.max_backoff_secs = 1;
    file.delivery.replay_interval_ms = 50;
    let proxy = Proxy::start(file).await;
    let base = format!("http://{}", proxy.addr);
    let mut ids = Vec::new();
    for n in 0..30 {
        let id = event_id(8, n);
        let response = post(&base, KEY, PID, envelope(&id, &proxy.dsn(), KEY))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        ids.push(id);
    }
    // The old upstream's breaker opens; the envelopes wait in its backlog.
    let stats = proxy.state().pipeline.delivery().stats();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats
        .breaker_opened
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(Instant::now() < deadline, "the breaker never opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let path = dir.path().join("scrubgate.toml");
    std::fs::write(
        &path,
        format!(
            "[upstream]\nurl = \"{}\"\n\n[spool]\ndir = \"{}\"\n\n[[projects]]\npublic_key = \"{KEY}\"\nproject_id = {PID}\nupstream_dsn = \"{}\"\n",
            old.url(),
            dir.path().join("spool").display(),
            dsn(&new.url(), NEW_KEY, 300)
        ),
    )
    .unwrap();
    scrubgate::app::reload(proxy.state(), Some(&path)).unwrap();
    let delivered = new.wait_delivered(&ids, 20).await;
    assert!(ids.iter().all(|id| delivered[id] == 1));
    assert!(new.received().iter().all(|r| r.uri == "/api/300/envelope/"
        && r.envelope_header()["dsn"] == dsn(&new.url(), NEW_KEY, 300).as_str()));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_removed_from_the_config_is_set_aside_not_sent_and_not_retried() {
    const REMOVED: u32 = 200;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The spooled envelopes belong to OTHER_KEY/OTHER_PID, which this config no longer has.
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        "[delivery]\nreplay_interval_ms = 20\n",
    );
    let upstream_url = upstream.url();
    prefill(&dir.path().join("spool"), REMOVED, 5, |id| {
        meta(
            OTHER_KEY,
            OTHER_PID,
            &upstream_url,
            OTHER_KEY,
            OTHER_PID,
            id,
        )
    });
    let server = ServeProcess::start(&config, &[]);
    // A configured project still gets through.
    let fresh = event_id(6, 0);
    let response = post(
        &format!("http://{}", server.addr),
        KEY,
        PID,
        envelope(&fresh, &format!("http://{KEY}@{}/{PID}", server.addr), KEY),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    upstream
        .wait_delivered(std::slice::from_ref(&fresh), 10)
        .await;
    // Many dispatcher ticks later: nothing else was sent, nothing spins.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        upstream.received().len(),
        1,
        "only the configured project's envelope"
    );
    let metrics = util::get_text(&server.admin_url("/metrics")).await;
    assert!(
        metrics.contains(&format!("scrubgate_delivery_unroutable {REMOVED}\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("scrubgate_spool_envelopes {REMOVED}\n")),
        "kept on disk until they expire\n{metrics}"
    );
    let logs = server.logs();
    let warnings: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("project no longer in the config"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one line for the project, not one per envelope"
    );
    assert!(warnings[0].contains(&format!("\"project_id\":{OTHER_PID}")));
    assert!(
        !warnings[0].contains(OTHER_KEY),
        "no key in the log line: {}",
        warnings[0]
    );
    assert!(
        logs.len() < 20,
        "bounded logging, not a line per tick or envelope: {} lines:\n{logs:#?}",
        logs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_committed_reservations_are_delivered_also_after_a_restart() {
    let upstream = Upstream::start().await;
    let spool = tempfile::tempdir().unwrap();
    let mut file = util::config_file(&upstream.url());
    file.spool.dir = spool.path().to_owned();
    file.delivery.replay_interval_ms = 20;
    let url = upstream.url();
    let meta_for = |id: &str| meta(KEY, PID, &url, KEY, PID, id);
    let body_for = |id: &str| Bytes::from(envelope(id, &dsn(&url, KEY, PID), KEY));

    let proxy = Proxy::start(file.clone()).await;
    let delivery = proxy.state().pipeline.delivery().clone();
    let (dropped, held, committed) = (event_id(7, 0), event_id(7, 1), event_id(7, 2));
    let reservation = delivery
        .accept(meta_for(&dropped), body_for(&dropped))
        .await
        .unwrap();
    drop(reservation);
    let held_reservation = delivery
        .accept(meta_for(&held), body_for(&held))
        .await
        .unwrap();
    // Held across many dispatcher ticks: nothing picks it up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(upstream.received().is_empty());
    assert_eq!(delivery.spool().usage().0, 1, "the held one is on disk");
    delivery
        .accept(meta_for(&committed), body_for(&committed))
        .await
        .unwrap()
        .commit()
        .unwrap();
    upstream
        .wait_delivered(std::slice::from_ref(&committed), 10)
        .await;
    drop(held_reservation);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = delivery.stats();
    assert_eq!(
        stats.abandoned.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(stats.accepted.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(delivery.spool().usage().0, 0, "nothing pending");
    drop(delivery);
    proxy.stop().await;

    let proxy = Proxy::start(file).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = upstream.delivered();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[&committed], 1);
    proxy.stop().await;
}
