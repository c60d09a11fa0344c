//! HTTPS on the listener: rustls with the ring provider, TLS 1.2 and 1.3 only, ALPN `h2` and
//! `http/1.1`, and a certificate that can be swapped while running (SIGHUP re-reads
//! `server.tls.cert_file` and `key_file`; in-flight connections keep the key they started with).
//!
//! A failed reload keeps the old certificate and logs why, so a half-written renewal never
//! takes the listener down.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

/// `[server.tls]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Why the certificate or key cannot be used. Names the file and the problem, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {kind}")]
    Read {
        path: PathBuf,
        kind: std::io::ErrorKind,
    },
    #[error("{0}: no PEM certificate found")]
    NoCertificate(PathBuf),
    #[error("{0}: no PEM private key found")]
    NoKey(PathBuf),
    #[error("{path}: invalid PEM")]
    Pem { path: PathBuf },
    #[error("certificate and key are not usable together: {0}")]
    Key(rustls::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
}

impl TlsSettings {
    /// Loads both files once, so `check-config` and startup fail on a bad certificate.
    ///
    /// # Errors
    /// The key that is wrong (`cert_file` or `key_file`) and the problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        load_certified_key(self).map(drop).map_err(|error| {
            let key = match &error {
                TlsError::Read { path, .. } | TlsError::Pem { path } if path == &self.key_file => {
                    "key_file"
                }
                TlsError::NoKey(_) | TlsError::Key(_) => "key_file",
                _ => "cert_file",
            };
            (key, error.to_string())
        })
    }
}

/// The current certificate, swapped atomically on reload.
#[derive(Debug)]
pub struct ReloadableCert {
    settings: TlsSettings,
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    /// Loads the certificate and key named by `settings`.
    ///
    /// # Errors
    /// See [`TlsError`].
    pub fn load(settings: &TlsSettings) -> Result<Self, TlsError> {
        Ok(Self {
            settings: settings.clone(),
            current: ArcSwap::from_pointee(load_certified_key(settings)?),
        })
    }

    /// Re-reads both files; on failure the previous certificate stays in use.
    ///
    /// # Errors
    /// See [`TlsError`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load_certified_key(&self.settings)?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// What the accept loop needs: the acceptor and a handle to reload its certificate.
#[derive(Clone)]
pub struct TlsListener {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub certs: Arc<ReloadableCert>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener").finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Builds the rustls server configuration for `settings`.
    ///
    /// # Errors
    /// See [`TlsError`].
    pub fn new(settings: &TlsSettings) -> Result<Self, TlsError> {
        let certs = Arc::new(ReloadableCert::load(settings)?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            certs,
        })
    }
}

/// Re-reads the certificate on every SIGHUP until the process ends. Unix only.
pub fn reload_on_sighup(certs: Arc<ReloadableCert>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; TLS certificates will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match certs.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(error) => {
                    tracing::error!(error = %error, "TLS certificate reload failed; keeping the previous one");
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = certs;
}

fn load_certified_key(settings: &TlsSettings) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(&settings.cert_file)?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem {
            path: settings.cert_file.clone(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(settings.cert_file.clone()));
    }
    let key_pem = read(&settings.key_file)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|_| TlsError::Pem {
            path: settings.key_file.clone(),
        })?
        .ok_or_else(|| TlsError::NoKey(settings.key_file.clone()))?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map_err(TlsError::Key)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        kind: error.kind(),
    })
}
