//! A damaged spool on restart: one overwritten record length costs that envelope only; the
//! damaged segment is kept in `quarantine/` and everything else is delivered.

use std::time::Duration;

use scrubgate::spool::format::{scan, KIND_ENVELOPE};
use serde_json::json;

use crate::util::{self, Proxy, Upstream, PID};

const N: usize = 12;
const SEGMENT: &str = "seg-00000000000000000000.log";

fn event_id(n: usize) -> String {
    format!("d4a4a6e0{n:024x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwritten_record_length_costs_one_envelope_and_quarantines_the_segment() {
    let upstream = Upstream::start().await;
    let spool = tempfile::tempdir().unwrap();
    let mut file = util::config_file(&upstream.url());
    file.upstream.timeout_secs = 1;
    file.upstream.connect_timeout_secs = 1;
    file.delivery.max_attempts = 1;
    file.delivery.initial_backoff_ms = 20;
    file.delivery.replay_interval_ms = 50;
    file.spool.dir = spool.path().to_owned();
    upstream.go_down().await;

    // Spooled during the outage, one at a time so the records are in event order.
    let proxy = Proxy::start(file.clone()).await;
    let client = util::client();
    let ids: Vec<String> = (0..N).map(event_id).collect();
    for id in &ids {
        let body = util::event_envelope(id, &json!({"message": "spool damage test"}));
        let response = client
            .post(proxy.url(&format!("/api/{PID}/envelope/")))
            .header("x-sentry-auth", util::auth_header())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.stop().await;

    // Overwrite the length field of the 6th envelope record.
    let path = spool.path().join(SEGMENT);
    let mut data = std::fs::read(&path).unwrap();
    let envelopes: Vec<_> = scan(&data)
        .records
        .into_iter()
        .filter(|r| data[r.rest.start] == KIND_ENVELOPE)
        .collect();
    assert_eq!(envelopes.len(), N, "nothing delivered or completed yet");
    let victim = &envelopes[5];
    let victim_bytes = data[victim.offset..victim.end].to_vec();
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| memchr::memmem::find(&victim_bytes, id.as_bytes()).is_some())
        .collect();
    assert_eq!(lost, vec![&ids[5]]);
    data[victim.offset + 4..victim.offset + 8].copy_from_slice(&0x00ab_cdefu32.to_le_bytes());
    std::fs::write(&path, &data).unwrap();

    // Restart on the same spool with the upstream back.
    upstream.come_up().await;
    let proxy = Proxy::start(file).await;
    let recovered = proxy
        .state()
        .pipeline
        .delivery()
        .spool()
        .recovered()
        .clone();
    assert_eq!(recovered.lost_envelopes, 1);
    assert_eq!(recovered.damaged_segments, 1);
    assert_eq!(recovered.quarantined, vec![(SEGMENT.to_owned(), 1)]);
    assert_eq!(recovered.pending, N - 1);
    let expected: Vec<String> = ids.iter().filter(|id| *id != &ids[5]).cloned().collect();
    upstream.wait_delivered(&expected, 30).await;
    // Give a wrongly surfaced record time to show up too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = upstream.delivered();
    let mut got: Vec<String> = delivered.keys().cloned().collect();
    got.sort();
    assert_eq!(got, expected, "exactly the N-1 intact envelopes");
    assert!(delivered.values().all(|n| *n == 1));
    assert_eq!(
        std::fs::read(spool.path().join("quarantine").join(SEGMENT)).unwrap(),
        data,
        "the damaged segment is kept, byte for byte"
    );
    assert!(!path.exists());
    let metrics = util::get_text(&proxy.admin_url("/metrics")).await;
    for needle in [
        "scrubgate_spool_lost_envelopes_total 1".to_owned(),
        format!("scrubgate_spool_quarantined_lost_envelopes{{file=\"{SEGMENT}\"}} 1"),
        "scrubgate_spool_unconfirmed_total 0".to_owned(),
    ] {
        assert!(metrics.contains(&needle), "missing {needle}");
    }
    proxy.stop().await;
}
