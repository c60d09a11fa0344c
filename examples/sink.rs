//! A fast stand-in for Sentry in load tests: answers every POST with 200 `{}` at once and
//! counts requests, bodies and distinct event ids. Optionally goes down (connection refused)
//! for a window, to measure an outage.
//!
//! ```text
//! cargo run --release --example sink -- --listen 127.0.0.1:9000 [--outage-at 10 --outage-for 10]
//! ```
//! Prints a JSON summary on SIGINT/SIGTERM or after `--run-secs`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
    ids: Mutex<HashSet<[u8; 32]>>,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = arg(&args, "--listen")
        .unwrap_or_else(|| "127.0.0.1:9000".into())
        .parse()
        .expect("--listen host:port");
    let outage_at =
        arg(&args, "--outage-at").map(|s| Duration::from_secs(s.parse().expect("secs")));
    let outage_for =
        Duration::from_secs(arg(&args, "--outage-for").map_or(0, |s| s.parse().expect("secs")));
    let run_secs = arg(&args, "--run-secs").map(|s| Duration::from_secs(s.parse().expect("secs")));
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let serve = {
        let counts = Arc::clone(&counts);
        async move {
            loop {
                let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
                let accept = accept_loop(listener, Arc::clone(&counts));
                match outage_at {
                    Some(at) if started.elapsed() < at => {
                        let _ = tokio::time::timeout(at.saturating_sub(started.elapsed()), accept)
                            .await;
                        eprintln!("sink: down for {}s", outage_for.as_secs());
                        tokio::time::sleep(outage_for).await;
                        eprintln!("sink: up again");
                    }
                    _ => accept.await,
                }
            }
        }
    };
    let stop = async {
        match run_secs {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("signal");
                tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            }
        }
    };
    tokio::select! { () = serve => {}, () = stop => {} }
    let ids = counts.ids.lock().map(|i| i.len()).unwrap_or(0);
    println!(
        "{{\"requests\":{},\"body_bytes\":{},\"distinct_event_ids\":{}}}",
        counts.requests.load(Ordering::Relaxed),
        counts.bytes.load(Ordering::Relaxed),
        ids
    );
}

/// Connections live in a JoinSet owned by this future, so dropping it (the outage) also cuts
/// every open keep-alive connection, not just the listener.
async fn accept_loop(listener: tokio::net::TcpListener, counts: Arc<Counts>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let counts = Arc::clone(&counts);
        connections.spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let counts = Arc::clone(&counts);
                async move {
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    if let Some(id) = event_id(&body) {
                        if let Ok(mut ids) = counts.ids.lock() {
                            ids.insert(id);
                        }
                    }
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"{}"),
                    )))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The envelope header's `event_id`, from the (possibly gzip/zstd compressed) body.
fn event_id(body: &[u8]) -> Option<[u8; 32]> {
    let decoded;
    let plain: &[u8] = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out).ok()?;
        decoded = out;
        &decoded
    } else if body.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        decoded = zstd::decode_all(body).ok()?;
        &decoded
    } else {
        body
    };
    let line = plain.split(|b| *b == b'\n').next()?;
    let header: serde_json::Value = serde_json::from_slice(line).ok()?;
    let id = header.get("event_id")?.as_str()?.as_bytes();
    id.try_into().ok()
}
