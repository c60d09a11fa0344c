//! A deterministic harness for instruction counts of the scrub path (parse → scrub →
//! serialize) on the same synthetic events as `benches/scrub.rs`. Criterion's wall-clock
//! figures are noisy on a shared machine; callgrind's instruction counts are not:
//!
//! ```text
//! cargo build --release --example scrub_profile
//! valgrind --tool=callgrind --toggle-collect='*run_once*' \
//!     target/release/examples/scrub_profile 100KB
//! ```
//!
//! Argument: `1KB`, `10KB`, `100KB`, `1MB`, `10MB`, `dense-10KB`, `dense-200KB` (the
//! load benchmark's PII-dense event, `benches/support/dense.rs`) or `sdk` (the Python/JS SDK captures,
//! through `pipeline::scrub_envelope`; `sdk-warm` runs them once first, outside the
//! collected function, so a profile holds warm runs only); a size with `-floor` appended (`1MB-floor`) only
//! parses and serializes, `-serde-floor` does the same with `serde_json::Value` (the
//! previous engine's floor), or `dir:PATH` / `dir-warm:PATH` (every `*.envelope` in PATH,
//! like `sdk`). An optional second argument repeats the run (for `perf stat`).

use std::hint::black_box;

use serde_json::Value;

use scrubgate::decide::{Policy, PolicySettings};
use scrubgate::decode::{Envelope, EnvelopeLimits};
use scrubgate::scrub::{HashKey, PayloadKind, ScrubSettings, Scrubber};

/// The allocator the scrubgate binary uses, so the figures are the proxy's own.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

#[path = "../benches/support/dense.rs"]
mod dense;

/// One parse → scrub → serialize; not inlined so callgrind can collect just this.
#[inline(never)]
fn run_once(scrubber: Option<&Scrubber>, body: &[u8]) -> usize {
    let Ok(mut node) = scrubgate::json::parse_bytes(body) else {
        return 0;
    };
    let report = scrubber
        .map(|s| s.scrub(PayloadKind::Event, &mut node))
        .unwrap_or_default();
    let out = scrubgate::json::to_vec(&node, body.len());
    black_box(report.redactions.len()) + out.len()
}

/// The `serde_json::Value` round trip the engine used before; not inlined (see
/// [`run_once`]).
#[inline(never)]
fn run_once_serde(body: &[u8]) -> usize {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    let mut out = Vec::with_capacity(body.len() + body.len() / 16);
    if serde_json::to_writer(&mut out, &value).is_err() {
        return 0;
    }
    black_box(out.len())
}

/// All SDK captures through the envelope pipeline; not inlined (see [`run_once`]).
#[inline(never)]
fn run_once_sdk(scrubber: &Scrubber, policy: &Policy, envelopes: &[Vec<u8>]) -> usize {
    let limits = EnvelopeLimits { max_items: 500 };
    let mut n = 0;
    for bytes in envelopes {
        if let Ok(mut envelope) = Envelope::parse(bytes.clone().into(), &limits) {
            let report = scrubgate::pipeline::scrub_envelope(&mut envelope, scrubber, policy);
            n += black_box(report).redactions() as usize + envelope.to_bytes().len();
        }
    }
    n
}

/// The same work as [`run_once_sdk`] under another name, so that callgrind's
/// `--toggle-collect='*run_once*'` leaves it out: `sdk-warm` runs it first, and the
/// profile then holds warm runs only (no lazy-DFA or dictionary warm-up to subtract).
#[inline(never)]
fn warm_up_sdk(scrubber: &Scrubber, policy: &Policy, envelopes: &[Vec<u8>]) -> usize {
    let limits = EnvelopeLimits { max_items: 500 };
    let mut n = 1;
    for bytes in envelopes {
        if let Ok(mut envelope) = Envelope::parse(bytes.clone().into(), &limits) {
            let report = scrubgate::pipeline::scrub_envelope(&mut envelope, scrubber, policy);
            n += black_box(report).redactions() as usize;
        }
    }
    n
}

fn sdk_envelopes() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("input.envelope"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            name.contains("/python-") || name.contains("/js-")
        })
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// Every `*.envelope` directly in `dir`, sorted by name.
fn envelopes_in(dir: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "envelope"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "100KB".to_owned());
    let repeat: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(1);
    let Ok(scrubber) = Scrubber::compile(
        &ScrubSettings::default(),
        HashKey {
            id: "bench".into(),
            secret: b"bench-key-0123456789abcdef".to_vec(),
        },
    ) else {
        eprintln!("the default settings do not compile");
        std::process::exit(1);
    };
    let mut total = 0usize;
    // `dir:PATH` / `dir-warm:PATH`: every `*.envelope` in PATH, like `sdk` (e.g. the
    // recall harness's dense mix from `scripts/recall --keep PATH`).
    let dir = what
        .strip_prefix("dir:")
        .or_else(|| what.strip_prefix("dir-warm:"));
    if what == "sdk" || what == "sdk-warm" || dir.is_some() {
        let Ok(policy) = Policy::compile(&PolicySettings::default()) else {
            eprintln!("the default policy does not compile");
            std::process::exit(1);
        };
        let envelopes = match dir {
            Some(dir) => envelopes_in(dir),
            None => sdk_envelopes(),
        };
        if what == "sdk-warm" || what.starts_with("dir-warm:") {
            total += warm_up_sdk(&scrubber, &policy, &envelopes);
        }
        for _ in 0..repeat {
            total += run_once_sdk(&scrubber, &policy, &envelopes);
        }
    } else if let Some(size) = what.strip_prefix("dense-") {
        let size = match size {
            "10KB" => 10_000,
            "200KB" => 200_000,
            other => {
                eprintln!("unknown size {other}");
                std::process::exit(2);
            }
        };
        let body = dense::pii_dense_event(size, 40);
        for _ in 0..repeat {
            total += run_once(Some(&scrubber), &body);
        }
    } else {
        let (size, floor, serde) = if let Some(size) = what.strip_suffix("-serde-floor") {
            (size, true, true)
        } else if let Some(size) = what.strip_suffix("-floor") {
            (size, true, false)
        } else {
            (what.as_str(), false, false)
        };
        let size = match size {
            "1KB" => 1_000,
            "10KB" => 10_000,
            "100KB" => 100_000,
            "1MB" => 1_000_000,
            "10MB" => 10_000_000,
            other => {
                eprintln!("unknown size {other}");
                std::process::exit(2);
            }
        };
        // Building a 10 MB event serializes it many times over, which is slow under
        // valgrind: the body is generated once (natively) and cached in the temp dir.
        let cache = std::env::temp_dir().join(format!("scrubgate-synthetic-{size}.json"));
        let body = match std::fs::read(&cache) {
            Ok(body) => body,
            Err(_) => {
                let body = synthetic::synthetic_event(size);
                if let Err(e) = std::fs::write(&cache, &body) {
                    eprintln!("cannot cache {}: {e}", cache.display());
                }
                body
            }
        };
        for _ in 0..repeat {
            total += if serde {
                run_once_serde(&body)
            } else {
                run_once((!floor).then_some(&scrubber), &body)
            };
        }
    }
    println!("{total}");
}
