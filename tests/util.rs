//! Shared test harness: an in-test upstream that records every request, and helpers that
//! start the real proxy (in-process via `scrubgate::app::spawn`, or the built binary) on
//! 127.0.0.1 with an ephemeral port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use scrubgate::config::{Config, ConfigFile, ProjectSettings};
use scrubgate::decode::{ContentEncoding, Envelope, EnvelopeLimits};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The SDK-side key and project (the develop docs' example key, as in the SDK captures).
pub const KEY: &str = "e12d836b15bb49d7bbf99e64295d995b";
pub const PID: u64 = 42;
/// A second configured project.
pub const OTHER_KEY: &str = "0123456789abcdef0123456789abcdef";
pub const OTHER_PID: u64 = 7;

/// What the upstream answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Default for Reply {
    fn default() -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: "{}".into(),
        }
    }
}

/// One request as the upstream saw it; `body` is decoded per its `Content-Encoding`.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub raw_body: Bytes,
    pub body: Bytes,
    /// The status the upstream answered (0: it answered too late to count).
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn envelope(&self) -> Envelope {
        Envelope::parse(self.body.clone(), &EnvelopeLimits::default())
            .expect("upstream got a valid envelope")
    }

    /// The envelope header as JSON.
    pub fn envelope_header(&self) -> Value {
        Value::Object(self.envelope().header().fields().clone())
    }

    /// Item payloads parsed as JSON, with their types.
    pub fn json_items(&self) -> Vec<(String, Value)> {
        self.envelope()
            .items()
            .iter()
            .map(|item| {
                let value = serde_json::from_slice(item.payload()).unwrap_or(Value::Null);
                (item.item_type().as_str().to_owned(), value)
            })
            .collect()
    }
}

/// Ways the upstream can misbehave (besides answering with a status, see [`Reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Records the request, then waits this long before answering.
    Slow(Duration),
    /// Like `Slow`, but the request counts as delivered (recorded with the reply's status):
    /// a healthy upstream that takes its time.
    Delay(Duration),
    /// Reads the request head, then resets the connection without answering.
    Reset,
    /// Reads the request head, then answers bytes that are not HTTP.
    Garbage,
}

#[derive(Default)]
struct UpstreamState {
    received: Mutex<Vec<Recorded>>,
    reply: Mutex<Reply>,
    fault: Mutex<Fault>,
    notify: Notify,
}

/// A loopback HTTP/1.1 + h2c server standing in for Sentry. It can be taken down (connection
/// refused) and brought back on the same port.
pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(UpstreamState::default());
        let task = spawn_accept_loop(listener, Arc::clone(&state));
        Self {
            addr,
            state,
            task: Mutex::new(Some(task)),
        }
    }

    /// Stops listening: new connections are refused.
    pub async fn go_down(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Listens again on the same port.
    pub async fn come_up(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let task = spawn_accept_loop(listener, Arc::clone(&self.state));
        *self.task.lock().unwrap() = Some(task);
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_reply(&self, reply: Reply) {
        *self.state.reply.lock().unwrap() = reply;
    }

    pub fn clear(&self) {
        self.state.received.lock().unwrap().clear();
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.state.received.lock().unwrap().clone()
    }

    /// Event ids of envelopes answered with 2xx, with how often each arrived.
    pub fn delivered(&self) -> std::collections::HashMap<String, usize> {
        let mut out = std::collections::HashMap::new();
        for request in self.received() {
            if (200..300).contains(&request.status) {
                let id = request.envelope().event_id().unwrap_or("").to_owned();
                *out.entry(id).or_insert(0) += 1;
            }
        }
        out
    }

    /// Waits until `ids` were all delivered (at most `secs`), then returns the delivery counts.
    pub async fn wait_delivered(
        &self,
        ids: &[String],
        secs: u64,
    ) -> std::collections::HashMap<String, usize> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let delivered = self.delivered();
            let missing = ids.iter().filter(|id| !delivered.contains_key(*id)).count();
            if missing == 0 {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} of {} accepted envelopes never arrived",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until at least `count` requests arrived (at most 10 s) and returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Recorded> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.state.notify.notified();
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "upstream got {} requests, expected {count}",
                received.len()
            );
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

/// Connections live in a JoinSet owned by the accept task, so taking the upstream down
/// (aborting that task) also cuts open keep-alive connections, as a real outage would.
fn spawn_accept_loop(
    listener: TcpListener,
    state: Arc<UpstreamState>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            while connections.try_join_next().is_some() {}
            let state = Arc::clone(&state);
            connections.spawn(async move {
                let fault = *state.fault.lock().unwrap();
                if matches!(fault, Fault::Reset | Fault::Garbage) {
                    misbehave(stream, fault).await;
                    return;
                }
                let service = service_fn(move |request: Request<Incoming>| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, std::convert::Infallible>(record(state, request).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn misbehave(mut stream: tokio::net::TcpStream, fault: Fault) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
    if fault == Fault::Garbage {
        let _ = stream
            .write_all(b"\x00\x01 this is not HTTP \r\n\r\n")
            .await;
        let _ = stream.shutdown().await;
    } else {
        // SO_LINGER 0 turns the close into a TCP reset (and does not block with a zero
        // timeout, which is what the deprecation is about).
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
    }
    drop(stream);
}

async fn record(state: Arc<UpstreamState>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let raw_body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let encoding =
        ContentEncoding::from_header(parts.headers.get("content-encoding").map(|v| v.as_bytes()))
            .expect("upstream got a known content encoding");
    let body = scrubgate::decode::compression::decompress(raw_body.clone(), encoding, 1 << 30)
        .expect("upstream body decodes");
    let reply = state.reply.lock().unwrap().clone();
    let fault = *state.fault.lock().unwrap();
    state.received.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        raw_body,
        body,
        status: if matches!(fault, Fault::Slow(_)) {
            0
        } else {
            reply.status
        },
    });
    state.notify.notify_waiters();
    if let Fault::Slow(delay) | Fault::Delay(delay) = fault {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

/// A config accepting [`KEY`]/[`PID`] and [`OTHER_KEY`]/[`OTHER_PID`], listening on an
/// ephemeral port and forwarding to `upstream_url`.
pub fn config_file(upstream_url: &str) -> ConfigFile {
    let mut file = ConfigFile::default();
    file.server.listen = "127.0.0.1:0".into();
    file.admin.listen = "127.0.0.1:0".into();
    file.server.shutdown_timeout_secs = 2;
    file.upstream.url = upstream_url.into();
    file.upstream.timeout_secs = 5;
    file.projects = vec![
        ProjectSettings {
            public_key: KEY.into(),
            project_id: PID,
            upstream_dsn: None,
            delivery: None,
            candidate: None,
        },
        ProjectSettings {
            public_key: OTHER_KEY.into(),
            project_id: OTHER_PID,
            upstream_dsn: None,
            delivery: None,
            candidate: None,
        },
    ];
    file
}

/// The proxy running in-process on an ephemeral port.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    server: Option<scrubgate::app::RunningServer>,
    _spool: Option<tempfile::TempDir>,
    _audit: Option<tempfile::TempDir>,
}

impl Proxy {
    /// Starts the proxy; a config still on the default spool directory gets a temporary one.
    pub async fn start(mut file: ConfigFile) -> Self {
        install_crypto();
        let spool = (file.spool.dir == scrubgate::spool::SpoolSettings::default().dir).then(|| {
            let dir = tempfile::tempdir().unwrap();
            file.spool.dir = dir.path().to_owned();
            dir
        });
        let audit =
            (file.audit.path == scrubgate::audit::AuditSettings::default().path).then(|| {
                let dir = tempfile::tempdir().unwrap();
                file.audit.path = dir.path().join("audit.jsonl");
                dir
            });
        // Tests run in parallel: never the fixed default admin port.
        if file.admin.listen == scrubgate::config::AdminSettings::default().listen {
            file.admin.listen = "127.0.0.1:0".into();
        }
        let config = Config::compile(file).expect("test config is valid");
        let server = scrubgate::app::spawn(config).await.expect("proxy starts");
        Self {
            addr: server.addr,
            admin_addr: server.admin_addr,
            server: Some(server),
            _spool: spool,
            _audit: audit,
        }
    }

    pub fn state(&self) -> &std::sync::Arc<scrubgate::ingest::AppState> {
        &self.server.as_ref().unwrap().state
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL on the admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_url(&self, path: &str) -> String {
        let addr = self.admin_addr.expect("the admin listener is on");
        format!("http://{addr}{path}")
    }

    /// The SDK-side DSN for [`KEY`]/[`PID`].
    pub fn dsn(&self) -> String {
        format!("http://{KEY}@{}/{PID}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Installs the ring provider for rustls once (the crate uses `rustls-no-provider`).
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A plain HTTP client for talking to the proxy.
pub fn client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The body of a GET (e.g. `/metrics`), as text.
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `X-Sentry-Auth` for [`KEY`].
pub fn auth_header() -> String {
    format!("Sentry sentry_key={KEY}, sentry_version=7, sentry_client=sentry.test/1.0")
}

/// A small valid envelope with one event item holding `event`.
pub fn event_envelope(event_id: &str, event: &Value) -> Vec<u8> {
    let payload = serde_json::to_vec(event).unwrap();
    let mut out = format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n",
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(&payload);
    out.push(b'\n');
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).unwrap();
    out
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Reads a file from `../shared/sdk-envelopes/` or, failing that, `fixtures/`.
pub fn sdk_envelope(name: &str) -> Vec<u8> {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read(format!("{root}/../shared/sdk-envelopes/{name}"))
        .unwrap_or_else(|_| panic!("missing ../shared/sdk-envelopes/{name}"))
}

/// Sends raw bytes on a fresh connection and returns everything the server answered until it
/// closed or went quiet for 2 s (for chunked uploads and malformed HTTP).
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything; ignore write errors.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The built `scrubgate` binary.
pub fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_scrubgate"));
    // The test harness's own variables would be reported as unknown settings.
    for (name, _) in std::env::vars() {
        if name.starts_with("SCRUBGATE_TEST_") {
            command.env_remove(name);
        }
    }
    command
}

/// A `scrubgate serve` child process; killed on drop. Its stderr (JSON logs) is collected.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// The admin listener, when the config leaves it on.
    pub admin_addr: Option<SocketAddr>,
    pub logs: Arc<Mutex<Vec<String>>>,
    _audit: tempfile::TempDir,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// Starts `scrubgate serve --config CONFIG` on an ephemeral port and waits for its
    /// "listening" log line (at most 20 s).
    pub fn start(config: &std::path::Path, envs: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let audit = tempfile::tempdir().unwrap();
        let mut command = binary();
        command
            .args(["serve", "--config"])
            .arg(config)
            .env("SCRUBGATE_SERVER__LISTEN", "127.0.0.1:0")
            .env("SCRUBGATE_ADMIN__LISTEN", "127.0.0.1:0")
            .env("SCRUBGATE_AUDIT__PATH", audit.path().join("audit.jsonl"))
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("binary starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if value["message"] == "listening" {
                        let field =
                            |name: &str| value[name].as_str().unwrap_or_default().to_owned();
                        let _ = tx.send((field("addr"), field("admin_addr")));
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (addr, admin_addr) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server logged its address");
        Self {
            child,
            addr: addr.parse().unwrap(),
            admin_addr: admin_addr.parse().ok(),
            logs,
            _audit: audit,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL on the admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_url(&self, path: &str) -> String {
        let addr = self.admin_addr.expect("the admin listener is on");
        format!("http://{addr}{path}")
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

/// Writes a TOML config forwarding to `upstream_url` into `dir` and returns its path.
pub fn write_config(dir: &std::path::Path, upstream_url: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("scrubgate.toml");
    let spool = dir.join("spool");
    let text = format!(
        "[upstream]\nurl = \"{upstream_url}\"\n\n[log]\nlevel = \"debug\"\n\n[spool]\ndir = \"{}\"\n\n[[projects]]\npublic_key = \"{KEY}\"\nproject_id = {PID}\n\n{extra}",
        spool.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Upstream {
    /// Like [`Upstream::start`], but serving HTTPS (HTTP/1.1 and h2 via ALPN) with `tls`.
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(UpstreamState::default());
        let shared = Arc::clone(&state);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request: Request<Incoming>| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, std::convert::Infallible>(record(state, request).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            task: Mutex::new(Some(task)),
        }
    }
}

/// A loopback listener that only counts the connections made to it: the place a request must
/// never reach (a host named by an attacker-controlled DSN).
pub struct Canary {
    pub addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Canary {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Status code of the first response in a raw HTTP answer, or 0 if there was none.
pub fn raw_status(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
