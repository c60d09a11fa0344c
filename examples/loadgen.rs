//! Load generator for scrubgate (and, for comparison, any reverse proxy in front of the same
//! sink). POSTs a realistic mix of envelopes at a fixed concurrency for a fixed time:
//! the real SDK captures in `../shared/sdk-envelopes/`, the `fixtures/*/input.envelope`
//! cases, and generated events from 1 KB to 200 KB with PII in realistic places; about a
//! third gzip-compressed.
//!
//!
//! `--mix typical` posts only the SDK captures (0.3–7 KB: errors, messages, spans, logs,
//! sessions, check-ins, feedback), the typical mix of the performance issue; `--mix-dir DIR`
//! posts every `*.envelope` in DIR, e.g. the recall harness's PHI-heavy medical-app
//! envelopes (`scripts/recall --keep DIR`), the dense mix. Either way a third go gzipped.
//!
//! ```text
//! cargo run --release --example loadgen -- --target http://127.0.0.1:3000 \
//!     --concurrency 64 --duration 20 [--proxy-pid PID] [--label scrubgate] \
//!     [--rate REQ_PER_SEC] [--body-bytes N] [--mix realistic|typical] [--mix-dir DIR]
//! ```
//! Prints one JSON line: requests/s, MB/s of decoded payload, latency percentiles, errors,
//! and (with `--proxy-pid`) the proxy's CPU seconds and peak RSS.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

const KEY: &str = "e12d836b15bb49d7bbf99e64295d995b";
const PID: u64 = 42;

struct Body {
    wire: Bytes,
    decoded_len: usize,
    gzip: bool,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

#[path = "../benches/support/dense.rs"]
mod dense;

/// The PII-dense event (see `benches/support/dense.rs`) as a one-item envelope.
fn generated_event(size: usize, seed: usize) -> Vec<u8> {
    let payload = dense::pii_dense_event(size, seed);
    let mut envelope = format!(
        "{{\"event_id\":\"{seed:032x}\",\"sent_at\":\"2026-11-23T10:00:00Z\"}}\n{{\"type\":\"event\",\"length\":{}}}\n",
        payload.len()
    )
    .into_bytes();
    envelope.extend_from_slice(&payload);
    envelope.push(b'\n');
    envelope
}

/// Every `*.envelope` directly in `dir` (or as `input.envelope` of a subdirectory), sorted.
fn envelopes_in(dir: &std::path::Path, plain: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let file = if path.is_dir() {
            path.join("input.envelope")
        } else {
            path
        };
        if file.extension().is_some_and(|e| e == "envelope") {
            if let Ok(data) = std::fs::read(&file) {
                plain.push(data);
            }
        }
    }
}

/// Plain bodies as posted: every third gzip-compressed.
fn with_wire_forms(plain: Vec<Vec<u8>>) -> Vec<Body> {
    plain
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let gzip_it = i % 3 == 0;
            let decoded_len = data.len();
            let wire = if gzip_it { gzip(&data) } else { data };
            Body {
                wire: Bytes::from(wire),
                decoded_len,
                gzip: gzip_it,
            }
        })
        .collect()
}

/// The realistic mix: SDK captures, every fixture, and generated PII-dense events.
fn load_mix(root: &std::path::Path) -> Vec<Body> {
    let mut plain: Vec<Vec<u8>> = Vec::new();
    for dir in [root.join("../shared/sdk-envelopes"), root.join("fixtures")] {
        envelopes_in(&dir, &mut plain);
    }
    for (i, size) in [1_000, 4_000, 16_000, 64_000, 200_000]
        .into_iter()
        .enumerate()
    {
        for copy in 0..3 {
            plain.push(generated_event(size, i * 10 + copy));
        }
    }
    with_wire_forms(plain)
}

#[derive(Default)]
struct WorkerResult {
    latencies_us: Vec<u32>,
    ok: u64,
    errors: u64,
    statuses: std::collections::BTreeMap<u16, u64>,
    decoded_bytes: u64,
}

fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn proc_peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index.min(sorted.len() - 1)]) / 1000.0
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let target = arg(&args, "--target").unwrap_or_else(|| "http://127.0.0.1:3000".into());
    let concurrency: usize =
        arg(&args, "--concurrency").map_or(64, |s| s.parse().expect("--concurrency N"));
    let duration = Duration::from_secs(
        arg(&args, "--duration").map_or(10, |s| s.parse().expect("--duration SECS")),
    );
    let proxy_pid: Option<u32> =
        arg(&args, "--proxy-pid").map(|s| s.parse().expect("--proxy-pid PID"));
    let label = arg(&args, "--label").unwrap_or_else(|| "target".into());
    // Optional fixed total request rate (open-loop pacing per worker), for latency at a
    // given load rather than at saturation.
    let rate: Option<f64> = arg(&args, "--rate").map(|s| s.parse().expect("--rate REQ_PER_SEC"));
    // Optional: every request a generated event of this many bytes, uncompressed (the
    // memory-ceiling load of scripts/memory-load) instead of the realistic mix.
    let body_bytes: Option<usize> =
        arg(&args, "--body-bytes").map(|s| s.parse().expect("--body-bytes N"));
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mix = Arc::new(match body_bytes {
        Some(size) => (0..4)
            .map(|seed| {
                let data = generated_event(size, 1000 + seed);
                Body {
                    decoded_len: data.len(),
                    wire: Bytes::from(data),
                    gzip: false,
                }
            })
            .collect(),
        None => match (arg(&args, "--mix-dir"), arg(&args, "--mix").as_deref()) {
            (Some(dir), _) => {
                let mut plain = Vec::new();
                envelopes_in(std::path::Path::new(&dir), &mut plain);
                assert!(!plain.is_empty(), "--mix-dir {dir}: no *.envelope files");
                with_wire_forms(plain)
            }
            (None, Some("typical")) => {
                let mut plain = Vec::new();
                envelopes_in(&root.join("../shared/sdk-envelopes"), &mut plain);
                assert!(!plain.is_empty(), "--mix typical: no SDK captures");
                with_wire_forms(plain)
            }
            (None, None | Some("realistic")) => load_mix(&root),
            (None, Some(other)) => panic!("--mix {other}: expected realistic or typical"),
        },
    });
    let url = format!("{target}/api/{PID}/envelope/");
    let auth = format!("Sentry sentry_key={KEY}, sentry_version=7, sentry_client=loadgen/1.0");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let cpu_before = proxy_pid.and_then(proc_cpu_secs);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, mix, url, auth) =
            (client.clone(), Arc::clone(&mix), url.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut result = WorkerResult::default();
            let mut i = worker * 7;
            let interval = rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r.max(0.001)));
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |iv| {
                    iv.mul_f64(worker as f64 / concurrency as f64)
                });
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += interval;
                }
                let body = &mix[i % mix.len()];
                i += 1;
                let mut request = client
                    .post(&url)
                    .header("x-sentry-auth", &auth)
                    .body(body.wire.clone());
                if body.gzip {
                    request = request.header("content-encoding", "gzip");
                }
                let sent = Instant::now();
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        result
                            .latencies_us
                            .push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        *result.statuses.entry(status).or_insert(0) += 1;
                        if status == 200 {
                            result.ok += 1;
                            result.decoded_bytes += body.decoded_len as u64;
                        } else {
                            result.errors += 1;
                        }
                    }
                    Err(_) => result.errors += 1,
                }
            }
            result
        }));
    }
    let mut all = WorkerResult::default();
    for task in tasks {
        let r = task.await.expect("worker");
        all.latencies_us.extend(r.latencies_us);
        all.ok += r.ok;
        all.errors += r.errors;
        all.decoded_bytes += r.decoded_bytes;
        for (status, n) in r.statuses {
            *all.statuses.entry(status).or_insert(0) += n;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let cpu = match (cpu_before, proxy_pid.and_then(proc_cpu_secs)) {
        (Some(a), Some(b)) => serde_json::json!(((b - a) * 100.0).round() / 100.0),
        _ => serde_json::Value::Null,
    };
    let summary = serde_json::json!({
        "label": label,
        "concurrency": concurrency,
        "target_rate": rate,
        "duration_secs": (elapsed * 100.0).round() / 100.0,
        "bodies_in_mix": mix.len(),
        "requests_ok": all.ok,
        "errors": all.errors,
        "statuses": all.statuses,
        "rps": ((all.ok as f64 / elapsed) * 10.0).round() / 10.0,
        "decoded_mb_per_s": ((all.decoded_bytes as f64 / elapsed / 1e6) * 100.0).round() / 100.0,
        "p50_ms": percentile(&all.latencies_us, 0.50),
        "p90_ms": percentile(&all.latencies_us, 0.90),
        "p99_ms": percentile(&all.latencies_us, 0.99),
        "max_ms": percentile(&all.latencies_us, 1.0),
        "proxy_cpu_secs": cpu,
        "proxy_peak_rss_mb": proxy_pid.and_then(proc_peak_rss_mb),
    });
    println!("{summary}");
}
