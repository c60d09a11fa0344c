//! TLS on both sides: the listener serves HTTPS over HTTP/1.1 and h2 (ALPN) with TLS 1.2 and
//! 1.3, reloads its certificate on SIGHUP, and refuses bad certificate files at startup; the
//! upstream is reached over verified TLS with `upstream.ca_file`. Every certificate is made
//! in the test with rcgen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use scrubgate::config::Config;
use scrubgate::server::tls::TlsSettings;
use serde_json::json;

use crate::util::{self, Proxy, ServeProcess, Upstream, PID};

const EVENT_ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

/// A CA and a leaf for `localhost` and `127.0.0.1`, as PEM.
struct Pki {
    ca_pem: String,
    leaf_pem: String,
    key_pem: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        Self {
            ca_pem: ca.pem(),
            leaf_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// Writes the leaf and its key into `dir`; returns the settings naming them.
    fn write(&self, dir: &Path) -> TlsSettings {
        let cert_file = dir.join("cert.pem");
        let key_file = dir.join("key.pem");
        std::fs::write(&cert_file, &self.leaf_pem).unwrap();
        std::fs::write(&key_file, &self.key_pem).unwrap();
        TlsSettings {
            cert_file,
            key_file,
        }
    }

    fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let certs = rustls_pemfile::certs(&mut self.leaf_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A client trusting only `ca_pem`, offering `alpn`, limited to `versions`.
fn client(
    ca_pem: &str,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> reqwest::Client {
    util::install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Offered ALPN protocols, allowed TLS versions, and the HTTP version that must result.
type TlsCase = (
    &'static [&'static [u8]],
    &'static [&'static rustls::SupportedProtocolVersion],
    http::Version,
);

const ALL: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn body() -> Vec<u8> {
    util::event_envelope(EVENT_ID, &json!({"message": "over tls"}))
}

#[tokio::test]
async fn https_listener_serves_http1_and_h2_over_tls12_and_tls13() {
    let upstream = Upstream::start().await;
    let pki = Pki::new("listener CA");
    let dir = tempfile::tempdir().unwrap();
    let mut file = util::config_file(&upstream.url());
    file.server.tls = Some(pki.write(dir.path()));
    let proxy = Proxy::start(file).await;
    let url = format!(
        "https://127.0.0.1:{}/api/{PID}/envelope/",
        proxy.addr.port()
    );
    let cases: [TlsCase; 3] = [
        (&[b"http/1.1"], ALL, http::Version::HTTP_11),
        (&[b"h2"], ALL, http::Version::HTTP_2),
        (&[b"h2", b"http/1.1"], TLS12_ONLY, http::Version::HTTP_2),
    ];
    for (alpn, versions, expected) in cases {
        let response = client(&pki.ca_pem, alpn, versions)
            .post(&url)
            .header("x-sentry-auth", util::auth_header())
            .body(body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), expected);
    }
    assert_eq!(upstream.wait_for(3).await.len(), 3);
    // Cleartext HTTP on the TLS port gets no HTTP answer; a client trusting another CA fails.
    let plain = util::raw_http(proxy.addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
    let stranger = Pki::new("other CA");
    let refused = client(&stranger.ca_pem, &[b"http/1.1"], ALL)
        .get(format!("https://127.0.0.1:{}/healthz", proxy.addr.port()))
        .send()
        .await;
    assert!(refused.is_err());
    // The admin listener stays plain HTTP (loopback probes, the Docker HEALTHCHECK).
    let admin = proxy.admin_addr.unwrap();
    let health = util::raw_http(
        admin,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = util::raw_http(
        admin,
        b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_tls_is_verified_against_ca_file() {
    let pki = Pki::new("upstream CA");
    let upstream = Upstream::start_tls(pki.server_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let upstream_url = format!("https://127.0.0.1:{}", upstream.addr.port());
    let mut file = util::config_file(&upstream_url);
    file.upstream.ca_file = Some(pki.write_ca(dir.path()));
    let proxy = Proxy::start(file).await;
    let response = util::client()
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = upstream.wait_for(1).await;
    // h2 (negotiated by ALPN) carries the absolute URI.
    assert_eq!(
        received[0].uri,
        format!("{upstream_url}/api/{PID}/envelope/")
    );
    proxy.stop().await;

    // Without the CA the upstream's certificate is not trusted: the envelope is accepted into
    // the spool (accepted means delivered, eventually) but never reaches this upstream.
    upstream.clear();
    let proxy = Proxy::start(util::config_file(&upstream_url)).await;
    let response = util::client()
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        upstream.received().is_empty(),
        "delivered over an unverified TLS connection"
    );
    proxy.stop().await;
}

#[test]
fn bad_certificate_files_are_refused_at_load_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("CA");
    let good = pki.write(dir.path());
    let other = Pki::new("other");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not pem").unwrap();
    let cases = [
        (
            dir.path().join("missing.pem"),
            good.key_file.clone(),
            "server.tls.cert_file",
        ),
        (empty.clone(), good.key_file.clone(), "server.tls.cert_file"),
        (good.cert_file.clone(), empty, "server.tls.key_file"),
        (good.cert_file.clone(), other_key, "server.tls.key_file"),
    ];
    for (cert_file, key_file, key) in cases {
        let mut file = util::config_file("http://127.0.0.1:9");
        file.server.tls = Some(TlsSettings {
            cert_file,
            key_file,
        });
        let error = Config::compile(file).unwrap_err().to_string();
        assert!(error.starts_with(key), "{key}: {error}");
        assert!(!error.contains("PRIVATE KEY"), "{error}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_reload_keeps_the_old_one() {
    let first = Pki::new("first CA");
    let second = Pki::new("second CA");
    let dir = tempfile::tempdir().unwrap();
    let tls = first.write(dir.path());
    let extra = format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        tls.cert_file.display(),
        tls.key_file.display()
    );
    let config = util::write_config(dir.path(), "http://127.0.0.1:9", &extra);
    let server = ServeProcess::start(&config, &[]);
    let url = format!("https://127.0.0.1:{}/healthz", server.addr.port());
    let get = |pki: &Pki| {
        let request = client(&pki.ca_pem, &[b"http/1.1"], ALL).get(&url);
        async move { request.send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(get(&first).await.unwrap(), 200);
    assert!(get(&second).await.is_err());

    second.write(dir.path());
    let hup = |pid: u32| {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    hup(server.child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(&second).await.is_err() {
        assert!(Instant::now() < deadline, "certificate not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(get(&first).await.is_err(), "old certificate still served");

    // A broken renewal: the reload fails, the current certificate stays.
    std::fs::write(&tls.cert_file, "garbage").unwrap();
    hup(server.child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.logs().join("\n").contains("reload failed") {
        assert!(Instant::now() < deadline, "no reload failure logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&second).await.unwrap(), 200);
    let logs = server.logs().join("\n");
    assert!(logs.contains("\"scheme\":\"https\""), "{logs}");
    assert!(!logs.contains("PRIVATE KEY"));
}
