//! Sending scrubbed envelopes to the real Sentry: destination and key rewriting, the upstream
//! HTTP client (reqwest + rustls, pooled), and the `file://` sink for trying scrubgate with
//! nothing else running.
//!
//! The upstream request is built from scratch with an allowlist of headers, so nothing the
//! client sent (its IP in `X-Forwarded-For`, cookies, …) can leak through by accident.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod rate_limits;

use crate::config::Project;
use crate::decode::Envelope;

/// `[upstream]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    /// Base URL of the real Sentry (`https://o0.ingest.sentry.io`), or `file://DIR` to write
    /// each forwarded envelope to a file in DIR instead.
    pub url: String,
    /// Whole-request timeout towards the upstream.
    pub timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Extra PEM CA certificates to trust (self-hosted Sentry with a private CA). The
    /// built-in Mozilla roots stay trusted.
    pub ca_file: Option<PathBuf>,
    /// How request bodies to the upstream are compressed.
    pub compression: UpstreamCompression,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            url: "file://./scrubgate-out".to_owned(),
            timeout_secs: 30,
            connect_timeout_secs: 5,
            ca_file: None,
            compression: UpstreamCompression::Gzip,
        }
    }
}

/// Body compression towards the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamCompression {
    None,
    Gzip,
    Zstd,
}

/// Where envelopes go, parsed from `upstream.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// `scheme://host[:port][/path]` without a trailing slash.
    Http(String),
    /// A directory; each envelope becomes one file, written atomically.
    File(PathBuf),
}

impl UpstreamTarget {
    /// Parses `upstream.url`.
    ///
    /// # Errors
    /// A problem description for the config error.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// needs a directory, e.g. file://./scrubgate-out".into());
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        let parsed = url::Url::parse(url).map_err(|error| format!("not a URL ({error})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("scheme must be http, https or file".into());
        }
        if parsed.host_str().is_none() {
            return Err("URL has no host".into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("URL must not contain credentials; use [[projects]] upstream_dsn".into());
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err("URL must not have a query or fragment".into());
        }
        Ok(Self::Http(url.trim_end_matches('/').to_owned()))
    }

    /// A log-safe description (the URL has no credentials: `parse` rejects them).
    pub fn describe(&self) -> String {
        match self {
            Self::Http(base) => base.clone(),
            Self::File(dir) => format!("file://{}", dir.display()),
        }
    }
}

/// Where one project's envelopes go and with which credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Base URL (no trailing slash); unused for the file sink.
    pub base: String,
    pub public_key: String,
    pub project_id: u64,
    /// The DSN string to put into envelope headers that carry one.
    pub dsn: String,
}

/// What the SDK told us about itself; passed on so Sentry attributes events correctly.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub sentry_client: Option<String>,
    pub user_agent: Option<String>,
}

/// The upstream's answer, reduced to what the SDK needs to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamResponse {
    pub status: u16,
    pub retry_after: Option<String>,
    pub rate_limits: Option<String>,
}

/// A failed delivery attempt. Display texts are fixed and safe to log.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot connect to upstream")]
    Connect(#[source] reqwest::Error),
    #[error("upstream timed out")]
    Timeout(#[source] reqwest::Error),
    #[error("upstream request failed")]
    Request(#[source] reqwest::Error),
    #[error("cannot write to the file sink")]
    File(#[source] std::io::Error),
    #[error("cannot build the upstream client: {0}")]
    Setup(String),
}

/// An envelope body ready for the upstream: compressed (per `upstream.compression`) once,
/// then sent as is by every attempt. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PreparedBody {
    /// The serialized envelope, as the file sink writes it.
    raw: bytes::Bytes,
    /// What goes over HTTP, and its `Content-Encoding`.
    wire: bytes::Bytes,
    encoding: Option<&'static str>,
}

impl PreparedBody {
    /// The bytes an HTTP attempt sends.
    pub fn wire(&self) -> &bytes::Bytes {
        &self.wire
    }

    pub fn encoding(&self) -> Option<&'static str> {
        self.encoding
    }
}

/// The upstream client. Cheap to clone; connections are pooled.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: reqwest::Client,
    target: Arc<UpstreamTarget>,
    compression: UpstreamCompression,
}

// === impl Forwarder ===

impl Forwarder {
    /// Builds the client (TLS roots, timeouts, pool).
    ///
    /// # Errors
    /// An unreadable or invalid CA file, or a client that cannot be built.
    pub fn new(settings: &UpstreamSettings, target: UpstreamTarget) -> Result<Self, ForwardError> {
        let tls = tls_config(settings.ca_file.as_deref())?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs.max(1)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("scrubgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ForwardError::Setup(error.to_string()))?;
        Ok(Self {
            client,
            target: Arc::new(target),
            compression: settings.compression,
        })
    }

    pub fn target(&self) -> &UpstreamTarget {
        &self.target
    }

    /// Where `project`'s envelopes go: its `upstream_dsn` if set, else `upstream.url` with
    /// the SDK's own key and project id.
    pub fn destination(&self, project: &Project) -> Destination {
        match &project.upstream_dsn {
            Some(dsn) => {
                let mut public = dsn.clone();
                public.secret_key = None;
                Destination {
                    base: dsn.origin_with_path(),
                    public_key: dsn.public_key.clone(),
                    project_id: dsn.project_id,
                    dsn: public.to_string(),
                }
            }
            None => {
                let base = match self.target.as_ref() {
                    UpstreamTarget::Http(base) => base.clone(),
                    UpstreamTarget::File(_) => "http://localhost".to_owned(),
                };
                let (scheme, rest) = base.split_once("://").unwrap_or(("https", base.as_str()));
                Destination {
                    dsn: format!(
                        "{scheme}://{}@{rest}/{}",
                        project.public_key, project.project_id
                    ),
                    base,
                    public_key: project.public_key.clone(),
                    project_id: project.project_id,
                }
            }
        }
    }

    /// Compresses a serialized envelope for the upstream, once: retries reuse the result.
    /// The file sink gets the body as is.
    ///
    /// # Errors
    /// The compressor failed (zstd setup).
    pub fn prepare(&self, body: bytes::Bytes) -> Result<PreparedBody, ForwardError> {
        let (wire, encoding) = match (self.target.as_ref(), self.compression) {
            (UpstreamTarget::File(_), _) | (_, UpstreamCompression::None) => (body.clone(), None),
            (UpstreamTarget::Http(_), UpstreamCompression::Gzip) => {
                (bytes::Bytes::from(gzip(&body)), Some("gzip"))
            }
            (UpstreamTarget::Http(_), UpstreamCompression::Zstd) => (
                bytes::Bytes::from(
                    zstd::bulk::compress(&body, 3)
                        .map_err(|error| ForwardError::Setup(error.to_string()))?,
                ),
                Some("zstd"),
            ),
        };
        Ok(PreparedBody {
            raw: body,
            wire,
            encoding,
        })
    }

    /// Sends one prepared envelope. A non-2xx answer is a response, not an error.
    ///
    /// # Errors
    /// The upstream could not be reached, timed out, or the file could not be written.
    pub async fn send(
        &self,
        destination: &Destination,
        body: &PreparedBody,
        client: &ClientMeta,
        event_id: Option<&str>,
    ) -> Result<UpstreamResponse, ForwardError> {
        match self.target.as_ref() {
            UpstreamTarget::File(dir) => {
                let dir = dir.clone();
                let body = body.raw.clone();
                let name = file_name(destination.project_id, event_id);
                tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &body))
                    .await
                    .map_err(|error| ForwardError::File(std::io::Error::other(error)))?
                    .map_err(ForwardError::File)?;
                Ok(UpstreamResponse {
                    status: 200,
                    retry_after: None,
                    rate_limits: None,
                })
            }
            UpstreamTarget::Http(_) => self.send_http(destination, body, client).await,
        }
    }

    async fn send_http(
        &self,
        destination: &Destination,
        body: &PreparedBody,
        client: &ClientMeta,
    ) -> Result<UpstreamResponse, ForwardError> {
        let url = format!(
            "{}/api/{}/envelope/",
            destination.base, destination.project_id
        );
        let sentry_client = client
            .sentry_client
            .clone()
            .unwrap_or_else(|| concat!("scrubgate/", env!("CARGO_PKG_VERSION")).to_owned());
        let auth = format!(
            "Sentry sentry_key={}, sentry_version=7, sentry_client={}",
            destination.public_key, sentry_client
        );
        let mut request = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/x-sentry-envelope")
            .header("x-sentry-auth", auth);
        if let Some(user_agent) = &client.user_agent {
            request = request.header(http::header::USER_AGENT, user_agent);
        }
        if let Some(encoding) = body.encoding {
            request = request.header(http::header::CONTENT_ENCODING, encoding);
        }
        let response = request
            .body(body.wire.clone())
            .send()
            .await
            .map_err(classify)?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(UpstreamResponse {
            status: response.status().as_u16(),
            retry_after: header("retry-after"),
            rate_limits: header("x-sentry-rate-limits"),
        })
    }
}

/// Points an envelope at `destination`: the `dsn` header (when present) and
/// `trace.public_key` must name the upstream project, or Sentry rejects the envelope.
pub fn rewrite_envelope_for(envelope: &mut Envelope, destination: &Destination) {
    let header = envelope.header();
    let dsn_differs = header
        .get_str("dsn")
        .is_some_and(|dsn| dsn != destination.dsn);
    let key_differs = header
        .get("trace")
        .and_then(|trace| trace.get("public_key"))
        .and_then(Value::as_str)
        .is_some_and(|key| key != destination.public_key);
    if dsn_differs {
        envelope
            .header_mut()
            .set("dsn", Value::String(destination.dsn.clone()));
    }
    if key_differs {
        if let Some(trace) = envelope
            .header_mut()
            .fields_mut()
            .get_mut("trace")
            .and_then(Value::as_object_mut)
        {
            trace.insert(
                "public_key".into(),
                Value::String(destination.public_key.clone()),
            );
        }
    }
}

/// [`rewrite_envelope_for`] on a serialized envelope, for envelopes spooled for an older
/// destination: only the header line is parsed and, if it must change, re-encoded. A header that needs
/// no change (the common case) returns `body` itself, and a header line that cannot name a
/// DSN or key (no `dsn`, no `public_key`, no escapes) is not even parsed. Items are copied
/// byte for byte.
pub fn rewrite_header_for(body: &bytes::Bytes, destination: &Destination) -> bytes::Bytes {
    let end = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
    let line = &body[..end];
    let mentions = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    if !line.contains(&b'\\') && !mentions(b"dsn") && !mentions(b"public_key") {
        return body.clone();
    }
    let Ok(mut fields) = serde_json::from_slice::<serde_json::Map<String, Value>>(line) else {
        // Our own serializer wrote this line; unparsable means not ours to fix.
        return body.clone();
    };
    let dsn_differs = fields
        .get("dsn")
        .and_then(Value::as_str)
        .is_some_and(|dsn| dsn != destination.dsn);
    let trace_key = fields
        .get_mut("trace")
        .and_then(Value::as_object_mut)
        .and_then(|trace| trace.get_mut("public_key"));
    let mut changed = false;
    if let Some(key) = trace_key {
        if key.as_str().is_some_and(|k| k != destination.public_key) {
            *key = Value::String(destination.public_key.clone());
            changed = true;
        }
    }
    if dsn_differs {
        fields.insert("dsn".into(), Value::String(destination.dsn.clone()));
        changed = true;
    }
    if !changed {
        return body.clone();
    }
    let mut out = Vec::with_capacity(body.len() + destination.dsn.len());
    if serde_json::to_writer(&mut out, &fields).is_err() {
        return body.clone();
    }
    out.extend_from_slice(&body[end..]);
    bytes::Bytes::from(out)
}

fn classify(error: reqwest::Error) -> ForwardError {
    if error.is_timeout() {
        ForwardError::Timeout(error)
    } else if error.is_connect() {
        ForwardError::Connect(error)
    } else {
        ForwardError::Request(error)
    }
}

thread_local! {
    /// One gzip compressor per thread, reused for every body: setting one up per request
    /// (miniz_oxide allocates and zeroes its tables each time) cost more than compressing a
    /// typical 4 KB envelope. libdeflate's fastest level also compresses tighter than
    /// miniz_oxide's (`BENCHMARKS.md`, "Upstream gzip").
    static GZIP: std::cell::RefCell<libdeflater::Compressor> =
        std::cell::RefCell::new(libdeflater::Compressor::new(libdeflater::CompressionLvl::fastest()));
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let fast = GZIP.with(|cell| {
        let mut compressor = cell.try_borrow_mut().ok()?;
        let mut out = vec![0; compressor.gzip_compress_bound(body.len())];
        let written = compressor.gzip_compress(body, &mut out).ok()?;
        out.truncate(written);
        Some(out)
    });
    // The bound makes room for any input, so this fallback is for the impossible case.
    fast.unwrap_or_else(|| {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 3),
            flate2::Compression::fast(),
        );
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(body);
        encoder.finish().unwrap_or_default()
    })
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ForwardError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|error| ForwardError::Setup(format!("upstream.ca_file: {error}")))?;
        let mut found = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|error| ForwardError::Setup(format!("upstream.ca_file: {error}")))?;
            roots
                .add(cert)
                .map_err(|error| ForwardError::Setup(format!("upstream.ca_file: {error}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(ForwardError::Setup(
                "upstream.ca_file: no PEM certificate found".into(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ForwardError::Setup(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn file_name(project_id: u64, event_id: Option<&str>) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let id = event_id
        .filter(|id| id.len() <= 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    format!(
        "{millis}-{project_id}-{id}-{}.envelope",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Writes `name` into `dir` via a temporary file and a rename, so readers never see a
/// half-written envelope.
fn write_atomically(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(body)?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination() -> Destination {
        Destination {
            base: "https://new.example".into(),
            public_key: "newkey".into(),
            project_id: 9,
            dsn: "https://newkey@new.example/9".into(),
        }
    }

    #[test]
    fn header_rewrite_changes_only_the_header_line() {
        let items = "{\"type\":\"event\",\"length\":11}\n{\"dsn\":\"x\"}\n";
        let body = bytes::Bytes::from(format!(
            "{{\"event_id\":\"ab\",\"dsn\":\"https://old@old.example/1\",\"trace\":{{\"public_key\":\"old\",\"trace_id\":\"t\"}}}}\n{items}"
        ));
        let out = rewrite_header_for(&body, &destination());
        assert_eq!(
            out,
            format!(
                "{{\"event_id\":\"ab\",\"dsn\":\"https://newkey@new.example/9\",\"trace\":{{\"public_key\":\"newkey\",\"trace_id\":\"t\"}}}}\n{items}"
            )
            .as_bytes()
        );
        // Already pointing there: the very same bytes, not a copy.
        let again = rewrite_header_for(&out, &destination());
        assert_eq!(again.as_ptr(), out.as_ptr());
        // No DSN, no key: not parsed, not copied.
        let plain = bytes::Bytes::from_static(b"{\"event_id\":\"ab\"}\n{\"type\":\"event\"}\n{}\n");
        assert_eq!(
            rewrite_header_for(&plain, &destination()).as_ptr(),
            plain.as_ptr()
        );
        // A header without a trailing item section is rewritten too.
        let bare = bytes::Bytes::from_static(b"{\"dsn\":\"https://old@old.example/1\"}");
        assert_eq!(
            rewrite_header_for(&bare, &destination()),
            &b"{\"dsn\":\"https://newkey@new.example/9\"}"[..]
        );
    }

    fn forwarder(url: &str, compression: UpstreamCompression) -> Forwarder {
        let settings = UpstreamSettings {
            url: url.to_owned(),
            compression,
            ..UpstreamSettings::default()
        };
        Forwarder::new(&settings, UpstreamTarget::parse(url).unwrap()).unwrap()
    }

    #[test]
    fn gzip_bodies_of_any_size_decode_to_themselves_on_every_reuse() {
        let mut varied = Vec::new();
        for i in 0u32..60_000 {
            varied
                .extend_from_slice(format!("{},", i.wrapping_mul(2_654_435_761) % 997).as_bytes());
        }
        for body in [
            Vec::new(),
            b"x".to_vec(),
            varied.clone(),
            b"{}".to_vec(),
            varied,
        ] {
            let wire = gzip(&body);
            let mut decoded = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&wire[..]), &mut decoded)
                .unwrap();
            assert_eq!(decoded, body);
        }
    }

    #[test]
    fn bodies_are_compressed_once_when_prepared() {
        let raw =
            bytes::Bytes::from(b"{\"event_id\":\"e\"}\n{\"type\":\"event\"}\n{}\n".repeat(20));
        let gzip = forwarder("http://127.0.0.1:1", UpstreamCompression::Gzip)
            .prepare(raw.clone())
            .unwrap();
        assert_eq!(gzip.encoding(), Some("gzip"));
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&gzip.wire()[..]),
            &mut decoded,
        )
        .unwrap();
        assert_eq!(decoded, raw);
        // Every attempt sends these same bytes: a clone shares them, nothing is recompressed.
        let again = gzip.clone();
        assert_eq!(again.wire().as_ptr(), gzip.wire().as_ptr());

        let zstd = forwarder("http://127.0.0.1:1", UpstreamCompression::Zstd)
            .prepare(raw.clone())
            .unwrap();
        assert_eq!(zstd.encoding(), Some("zstd"));
        assert_eq!(zstd::bulk::decompress(zstd.wire(), 1 << 20).unwrap(), raw);

        for (url, compression) in [
            ("http://127.0.0.1:1", UpstreamCompression::None),
            ("file:///nonexistent", UpstreamCompression::Gzip),
        ] {
            let plain = forwarder(url, compression).prepare(raw.clone()).unwrap();
            assert_eq!(plain.encoding(), None, "{url}");
            assert_eq!(plain.wire().as_ptr(), raw.as_ptr(), "{url}: not copied");
        }
    }
}
