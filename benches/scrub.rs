//! Scrub engine throughput: parse → scrub → serialize, over the captured SDK envelopes and
//! synthetic events from 1 KB to 10 MB. Run with:
//!
//! ```text
//! cargo bench --bench scrub
//! ```
//!
//! Figures are recorded in `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::Value;

use scrubgate::decide::{Policy, PolicySettings};
use scrubgate::decode::{Envelope, EnvelopeLimits};
use scrubgate::json;
use scrubgate::scrub::{HashKey, PayloadKind, ScrubSettings, Scrubber};

fn scrubber() -> Scrubber {
    Scrubber::compile(
        &ScrubSettings::default(),
        HashKey {
            id: "bench".into(),
            secret: b"bench-key-0123456789abcdef".to_vec(),
        },
    )
    .expect("the default settings compile")
}

#[path = "support/synthetic.rs"]
mod synthetic;
use synthetic::synthetic_event;

#[path = "support/dense.rs"]
mod dense;

/// The allocator the scrubgate binary uses, so the figures are the proxy's own.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench_events(c: &mut Criterion) {
    let scrubber = scrubber();
    let mut group = c.benchmark_group("event");
    for &(label, size) in &[
        ("1KB", 1_000usize),
        ("10KB", 10_000),
        ("100KB", 100_000),
        ("1MB", 1_000_000),
        ("10MB", 10_000_000),
    ] {
        let body = synthetic_event(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        if size >= 1_000_000 {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(8));
        }
        group.bench_with_input(
            BenchmarkId::new("parse_serialize_only", label),
            &body,
            |b, body| {
                b.iter(|| {
                    let node = json::parse_bytes(body).expect("valid JSON");
                    black_box(json::to_vec(&node, body.len()))
                })
            },
        );
        // The floor of the previous engine, for comparison.
        group.bench_with_input(
            BenchmarkId::new("serde_value_parse_serialize_only", label),
            &body,
            |b, body| {
                b.iter(|| {
                    let value: Value = serde_json::from_slice(body).expect("valid JSON");
                    let mut out = Vec::with_capacity(body.len() + body.len() / 16);
                    serde_json::to_writer(&mut out, &value).expect("serializable");
                    black_box(out)
                })
            },
        );
        parse_scrub_serialize(&mut group, &scrubber, label, &body);
    }
    group.finish();
}

/// The engine's whole job on one event body: parse, scrub, serialize.
fn parse_scrub_serialize(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    scrubber: &Scrubber,
    label: &str,
    body: &[u8],
) {
    group.bench_with_input(
        BenchmarkId::new("parse_scrub_serialize", label),
        body,
        |b, body| {
            b.iter(|| {
                let mut node = json::parse_bytes(body).expect("valid JSON");
                let report = scrubber.scrub(PayloadKind::Event, &mut node);
                let out = json::to_vec(&node, body.len());
                black_box((report, out))
            })
        },
    );
}

/// The load benchmark's PII-dense event (a redaction every ~60 bytes): the payload the
/// synthetic events above flatter, and where per-redaction costs show.
fn bench_dense_events(c: &mut Criterion) {
    let scrubber = scrubber();
    let mut group = c.benchmark_group("event_pii_dense");
    for &(label, size) in &[("10KB", 10_000usize), ("200KB", 200_000)] {
        let body = dense::pii_dense_event(size, 40);
        group.throughput(Throughput::Bytes(body.len() as u64));
        parse_scrub_serialize(&mut group, &scrubber, label, &body);
    }
    group.finish();
}

fn bench_sdk_envelopes(c: &mut Criterion) {
    let scrubber = scrubber();
    let policy = Policy::compile(&PolicySettings::default()).expect("default policy");
    let limits = EnvelopeLimits { max_items: 500 };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let mut bodies: Vec<u8> = Vec::new();
    let mut envelopes: Vec<Vec<u8>> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("input.envelope"))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let name = path.to_string_lossy().into_owned();
            if name.contains("/python-") || name.contains("/js-") {
                if let Ok(bytes) = std::fs::read(&path) {
                    bodies.extend_from_slice(&bytes);
                    envelopes.push(bytes);
                }
            }
        }
    }
    let mut group = c.benchmark_group("sdk_envelopes");
    group.throughput(Throughput::Bytes(bodies.len() as u64));
    group.bench_function("all", |b| {
        b.iter(|| {
            for bytes in &envelopes {
                if let Ok(mut envelope) = Envelope::parse(bytes.clone().into(), &limits) {
                    let report =
                        scrubgate::pipeline::scrub_envelope(&mut envelope, &scrubber, &policy);
                    black_box((report, envelope.to_bytes()));
                }
            }
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_sdk_envelopes,
    bench_events,
    bench_dense_events
);
criterion_main!(benches);
