//! Decode-side micro-benchmarks: body decompression per encoding, envelope parsing, and
//! envelope serialization (untouched, where raw bytes are reused, and with one changed item).
//!
//! `cargo bench --bench decode`

use std::io::Write;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scrubgate::decode::compression::decompress;
use scrubgate::decode::{ContentEncoding, Envelope, EnvelopeLimits};

fn sample_envelope(target: usize) -> Vec<u8> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut out = std::fs::read(format!(
        "{root}/../shared/sdk-envelopes/01-exception-with-locals.envelope"
    ))
    .unwrap_or_else(|_| b"{}\n".to_vec());
    let mut n = 0;
    while out.len() < target {
        let payload = format!(
            "{{\"message\":\"log line {n} for order {n} with user jane{n}@example.com\",\"level\":\"info\",\"extra\":{{\"n\":{n}}}}}"
        );
        out.extend_from_slice(
            format!("{{\"type\":\"attachment\",\"length\":{}}}\n", payload.len()).as_bytes(),
        );
        out.extend_from_slice(payload.as_bytes());
        out.push(b'\n');
        n += 1;
    }
    out
}

fn encode(data: &[u8], encoding: ContentEncoding) -> Vec<u8> {
    match encoding {
        ContentEncoding::Identity => data.to_vec(),
        ContentEncoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        ContentEncoding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        ContentEncoding::Brotli => {
            let mut out = Vec::new();
            let params = brotli::enc::BrotliEncoderParams {
                quality: 4,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
            out
        }
        ContentEncoding::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

fn bench_decompress(c: &mut Criterion) {
    let mut group = c.benchmark_group("decompress");
    for size in [4 * 1024, 256 * 1024] {
        let plain = sample_envelope(size);
        group.throughput(Throughput::Bytes(plain.len() as u64));
        for encoding in [
            ContentEncoding::Identity,
            ContentEncoding::Gzip,
            ContentEncoding::Deflate,
            ContentEncoding::Brotli,
            ContentEncoding::Zstd,
        ] {
            let wire = Bytes::from(encode(&plain, encoding));
            group.bench_with_input(
                BenchmarkId::new(encoding.as_str(), size),
                &wire,
                |b, wire| {
                    b.iter(|| decompress(black_box(wire.clone()), encoding, 100 << 20).unwrap())
                },
            );
        }
    }
    group.finish();
}

fn bench_envelope(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    let limits = EnvelopeLimits {
        max_items: usize::MAX,
    };
    for size in [4 * 1024, 256 * 1024] {
        let plain = Bytes::from(sample_envelope(size));
        group.throughput(Throughput::Bytes(plain.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse", size), &plain, |b, plain| {
            b.iter(|| Envelope::parse(black_box(plain.clone()), &limits).unwrap())
        });
        let parsed = Envelope::parse(plain.clone(), &limits).unwrap();
        group.bench_with_input(
            BenchmarkId::new("serialize_untouched", size),
            &parsed,
            |b, parsed| b.iter(|| black_box(parsed.to_bytes())),
        );
        let mut changed = parsed.clone();
        changed.items_mut()[0].set_payload(Bytes::from_static(b"{\"message\":\"[Filtered]\"}"));
        group.bench_with_input(
            BenchmarkId::new("serialize_one_changed", size),
            &changed,
            |b, changed| b.iter(|| black_box(changed.to_bytes())),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_decompress, bench_envelope);
criterion_main!(benches);
