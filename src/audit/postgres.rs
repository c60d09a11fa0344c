//! The audit trail in PostgreSQL, for compliance teams that query one database for years and
//! for every replica at once.
//!
//! The local JSONL trail stays the write-ahead log and the only thing a request waits on: a
//! database outage never fails or slows ingestion. A background [`Shipper`] reads the trail
//! and inserts its records in batches, each with the replica's `instance_id` and a gapless
//! `seq`, idempotently on `(instance_id, seq)`, so a restart or an outage resends at most
//! what the database already has and the database ignores it. Periodic anchors (head `seq`
//! and hash into an INSERT-only table) let `verify` see a chain whose newest records were
//! cut off or rewritten.
//!
//! Layout: [`migrate`] (versioned schema, roles, append-only triggers), `ship` (the shipper
//! and its lag), `chain` (verify and export over SQL), `cursor` (the place in the local trail).

mod chain;
mod cursor;
mod migrate;
mod report;
mod ship;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use chain::{export_postgres, verify_postgres, ChainReport, ChainStatus};
pub use migrate::{apply_retention, migrate, MIGRATIONS};
pub use report::report_postgres;
pub use ship::{ship_once, ShipStatus, Shipper};

/// The environment variable holding the connection URL (never the TOML: it holds a password).
pub const DATABASE_URL_ENV: &str = "SCRUBGATE_AUDIT_DATABASE_URL";

/// The schema every table and function lives in, so nothing collides with other applications
/// sharing the database.
pub const SCHEMA: &str = "scrubgate_audit";

/// `[audit.postgres]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// Ship records to PostgreSQL (the local file stays the write-ahead log).
    pub enabled: bool,
    /// A file holding the connection URL, when `SCRUBGATE_AUDIT_DATABASE_URL` is not set.
    pub url_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for the database's TLS certificate, beside the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// This replica's chain name; stable per pod or host. Default: the host name.
    pub instance_id: Option<String>,
    /// Records per INSERT.
    pub batch_size: usize,
    /// How often the shipper looks for new records when it has caught up.
    pub poll_interval_ms: u64,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Partitions whose whole month is older than this are dropped (recorded in
    /// `audit_retention`). Default: `audit.retention_days`.
    pub retention_days: Option<u32>,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            url_file: None,
            ca_file: None,
            instance_id: None,
            batch_size: 500,
            poll_interval_ms: 200,
            pool_size: 2,
            retention_days: None,
        }
    }
}

/// Why the database could not be used. Never carries a record's content.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("no database URL: set {DATABASE_URL_ENV} or audit.postgres.url_file")]
    NoUrl,
    #[error("audit.postgres.url_file: {0}")]
    UrlFile(std::io::Error),
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    #[error("audit.postgres.ca_file: {0}")]
    Tls(String),
    #[error("database: {}", with_causes(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("audit trail: {0}")]
    Trail(std::io::Error),
    #[error("{0}")]
    Chain(String),
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => Self::Db(error),
            other => Self::Pool(other.to_string()),
        }
    }
}

impl PostgresSettings {
    /// Checks values that would make shipping unusable.
    ///
    /// # Errors
    /// `(key, problem)`, the key relative to `[audit.postgres]`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(id) = &self.instance_id {
            if !valid_instance_id(id) {
                return Err((
                    "instance_id".into(),
                    "1 to 128 characters of A-Z a-z 0-9 . _ -".into(),
                ));
            }
        }
        if self.batch_size == 0 || self.batch_size > 5000 {
            return Err(("batch_size".into(), "must be 1 to 5000".into()));
        }
        if self.poll_interval_ms == 0 {
            return Err(("poll_interval_ms".into(), "must be positive".into()));
        }
        if self.pool_size == 0 {
            return Err(("pool_size".into(), "must be at least 1".into()));
        }
        if self.retention_days == Some(0) {
            return Err(("retention_days".into(), "must be at least 1".into()));
        }
        if let Some(ca) = &self.ca_file {
            if !ca.exists() {
                return Err(("ca_file".into(), "file does not exist".into()));
            }
        }
        Ok(())
    }

    /// This replica's `instance_id`: configured, else the host name (a pod's name in
    /// Kubernetes, stable across restarts of a StatefulSet pod).
    pub fn instance_id(&self) -> String {
        if let Some(id) = &self.instance_id {
            return id.clone();
        }
        let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
        let from_env = std::env::var("HOSTNAME").ok();
        [from_kernel, from_env]
            .into_iter()
            .flatten()
            .map(|name| name.trim().to_owned())
            .find(|name| valid_instance_id(name))
            .unwrap_or_else(|| "scrubgate".to_owned())
    }

    /// The connection URL: the environment variable first, else `url_file`.
    ///
    /// # Errors
    /// Neither is set, or the file cannot be read.
    pub fn url(&self) -> Result<String, PgError> {
        if let Ok(url) = std::env::var(DATABASE_URL_ENV) {
            if !url.trim().is_empty() {
                return Ok(url.trim().to_owned());
            }
        }
        match &self.url_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|text| text.trim().to_owned())
                .map_err(PgError::UrlFile),
            None => Err(PgError::NoUrl),
        }
    }
}

/// The error and its causes: tokio-postgres says "error performing TLS handshake" and keeps
/// the why (an unknown issuer, say) in its source.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = cause_of(source);
    }
    text
}

fn cause_of<'a>(
    error: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    error.and_then(std::error::Error::source)
}

fn valid_instance_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// TLS for the database: rustls with the system's roots (Mozilla's if the system has none)
/// plus `ca_file`. Whether TLS is used is the URL's `sslmode` (`require` recommended).
fn tls(ca_file: Option<&Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| PgError::Tls(e.to_string()))?;
        let mut found = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| PgError::Tls(e.to_string()))?;
            roots.add(cert).map_err(|e| PgError::Tls(e.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(PgError::Tls("no PEM certificate found".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A connection pool for `url`. Connections are made lazily, so this succeeds while the
/// database is down (the shipper retries).
///
/// # Errors
/// The URL does not parse or the TLS setup fails.
pub fn pool(
    url: &str,
    ca_file: Option<&Path>,
    size: usize,
) -> Result<deadpool_postgres::Pool, PgError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::BadUrl(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config.application_name("scrubgate");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tls(ca_file)?,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(15)))
        .create_timeout(Some(std::time::Duration::from_secs(15)))
        .build()
        .map_err(|e| PgError::Pool(e.to_string()))
}

/// One connection for a command (`migrate`, `verify --postgres`, `export --postgres`).
///
/// # Errors
/// Connecting failed.
pub async fn connect(settings: &PostgresSettings) -> Result<deadpool_postgres::Object, PgError> {
    let url = settings.url()?;
    let pool = pool(&url, settings.ca_file.as_deref(), 1)?;
    Ok(pool.get().await?)
}
