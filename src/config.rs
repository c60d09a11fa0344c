//! Loading and validating configuration: built-in defaults < TOML file < `SCRUBGATE_`
//! environment variables (`__` for nesting), then one validation pass that compiles every
//! rule and checks every project before a port is bound.
//!
//! Raw settings ([`ConfigFile`]) are kept apart from the compiled [`Config`]: each module owns
//! its settings type, this module only composes them and turns them into runtime values.

mod candidate;
mod report;

pub use candidate::{load as load_candidate, Candidate, CandidateFile, CandidateSettings};
pub use report::{unknown_env_vars, ENV_DEFAULTS_PREFIX};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::audit::AuditSettings;
use crate::decide::{Policy, PolicySettings};
use crate::decode::Dsn;
use crate::delivery::{DeliveryMode, DeliverySettings};
use crate::forward::{UpstreamSettings, UpstreamTarget};
use crate::scrub::{HashKey, ScrubSettings, Scrubber};
use crate::spool::SpoolSettings;

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_PATH_ENV: &str = "SCRUBGATE_CONFIG";

/// Everything in the config file, as written (after defaults and environment overrides).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    pub server: ServerSettings,
    pub limits: LimitSettings,
    pub upstream: UpstreamSettings,
    pub projects: Vec<ProjectSettings>,
    pub scrub: ScrubSettings,
    pub policy: PolicySettings,
    pub delivery: DeliverySettings,
    pub spool: SpoolSettings,
    pub audit: AuditSettings,
    pub metrics: MetricsSettings,
    pub admin: AdminSettings,
    pub candidates: CandidateSettings,
    pub log: LogSettings,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` (on the admin listener).
    pub enabled: bool,
    /// Also serve it on the main listener. Labels never carry payload values, but they do
    /// name project ids, rules and upstream errors, which the SDKs' (often public) port
    /// should not hand to anyone who asks.
    pub on_main_listener: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            on_main_listener: false,
        }
    }
}

/// `[admin]`: the operator's listener for `/metrics`, `/healthz` and `/readyz`, apart from the
/// SDKs' port so that port can face the internet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// `host:port`, plain HTTP (keep it on loopback or a private network); empty for none.
    pub listen: String,
    /// Also answer `/readyz` on the main listener, for load balancers that can only probe
    /// the traffic port. Each probe writes to the spool and audit disks.
    pub readyz_on_main_listener: bool,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9898".to_owned(),
            readyz_on_main_listener: false,
        }
    }
}

/// `[server]`: where and how we listen.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// `host:port` to listen on (HTTP/1.1 and HTTP/2 cleartext).
    pub listen: String,
    /// Path of the JavaScript SDK `tunnel` endpoint.
    pub tunnel_path: String,
    /// If non-empty, a tunnel envelope's DSN host must be one of these (lowercase host names,
    /// optionally `host:port`). The request always goes to the configured upstream, whatever
    /// the DSN names.
    pub tunnel_allowed_hosts: Vec<String>,
    /// Slow clients that have not sent their headers by then are disconnected.
    pub header_read_timeout_secs: u64,
    /// A request whose body has not fully arrived by then gets 408.
    pub body_read_timeout_secs: u64,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// A connection with no request in flight and no bytes received for this long is closed
    /// (idle keep-alive, and connections that never send anything).
    pub idle_timeout_secs: u64,
    /// Connections served at once; further clients wait in the listen backlog, so memory stays
    /// bounded under a connection flood.
    pub max_connections: usize,
    /// Request header fields per request (HTTP/1.1); more gets 431.
    pub max_header_count: usize,
    /// Bytes of request line plus headers (HTTP/1.1; at least 8192), or of the header list
    /// (HTTP/2); more gets 431.
    pub max_header_bytes: usize,
    /// `[server.tls]`: serve HTTPS (HTTP/1.1 and HTTP/2 via ALPN) instead of cleartext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::server::tls::TlsSettings>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:3000".to_owned(),
            tunnel_path: "/tunnel".to_owned(),
            tunnel_allowed_hosts: Vec::new(),
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            shutdown_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 1024,
            max_header_count: 100,
            max_header_bytes: 64 * 1024,
            tls: None,
        }
    }
}

const MIB: usize = 1024 * 1024;

/// `[limits]`: caps on what a client may send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Received (possibly compressed) body.
    pub max_body_bytes: usize,
    /// Body after decompression (envelope endpoint and tunnel).
    pub max_decompressed_bytes: usize,
    /// A legacy store event after decoding (Relay's `max_event_size`).
    pub max_event_bytes: usize,
    /// Items per envelope (Relay: 500).
    pub max_envelope_items: usize,
    /// Decompressed bytes per received byte; 0 disables. Bodies that inflate to less than
    /// 1 MiB are never refused by it, so only bombs hit it.
    pub max_decompression_ratio: usize,
    /// Nesting depth of JSON payloads and store events (at most 128, serde_json's own limit).
    pub max_json_depth: usize,
    /// Per-item caps by type (Relay's defaults; a violation is 413 for the whole envelope).
    /// Event-like items (`event`, `transaction`, `feedback`, security reports, …) use
    /// `max_event_bytes`.
    pub max_attachment_bytes: usize,
    /// All `attachment` items of one envelope together.
    pub max_attachments_bytes: usize,
    pub max_attachment_count: usize,
    /// One `session` or `sessions` item.
    pub max_session_bytes: usize,
    pub max_session_count: usize,
    pub max_client_report_bytes: usize,
    pub max_check_in_bytes: usize,
    /// `profile` and `profile_chunk`.
    pub max_profile_bytes: usize,
    /// `replay_recording` and `replay_video` (compressed as sent).
    pub max_replay_bytes: usize,
    /// One `log`, `trace_metric` or span v2 container item.
    pub max_container_bytes: usize,
    /// Standalone (non-container) `span` items per envelope.
    pub max_standalone_span_count: usize,
    pub max_metric_buckets_bytes: usize,
    /// Requests per second per project key (token bucket); 0 disables. Excess gets 429 with
    /// `Retry-After`.
    pub project_rate_limit_per_sec: f64,
    /// Requests a project key may send in a burst before the rate applies.
    pub project_rate_limit_burst: u32,
    /// Bytes all requests together may hold at once (received and inflated bodies, scrub
    /// buffers); 0 disables. A request that finds it used up waits `inflight_wait_ms`, then
    /// gets 503 with `Retry-After`. Read at start (a reload does not resize it).
    pub max_inflight_bytes: u64,
    pub inflight_wait_ms: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 20 * 1024 * 1024,
            max_decompressed_bytes: 100 * 1024 * 1024,
            max_event_bytes: 1024 * 1024,
            max_envelope_items: 500,
            max_decompression_ratio: 100,
            max_json_depth: 128,
            max_attachment_bytes: 200 * MIB,
            max_attachments_bytes: 200 * MIB,
            max_attachment_count: 30,
            max_session_bytes: 10 * MIB,
            max_session_count: 100,
            max_client_report_bytes: 100 * 1024,
            max_check_in_bytes: 100 * 1024,
            max_profile_bytes: 50 * MIB,
            max_replay_bytes: 10 * MIB,
            max_container_bytes: 12 * MIB,
            max_standalone_span_count: 25,
            max_metric_buckets_bytes: MIB,
            project_rate_limit_per_sec: 0.0,
            project_rate_limit_burst: 10,
            max_inflight_bytes: 64 * MIB as u64,
            inflight_wait_ms: 2000,
        }
    }
}

/// `[[projects]]`: the only keys we accept (no open relay).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    /// The public key the SDK's DSN carries (32 characters).
    pub public_key: String,
    /// The project id in the SDK's DSN.
    pub project_id: u64,
    /// Where this project's envelopes go: key, project id and host of the real Sentry
    /// project. Without it they go to `upstream.url` with the SDK's own key and project id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_dsn: Option<String>,
    /// Overrides `delivery.mode` for this project (`sync` suits tunnel-style deployments
    /// that want the upstream's own answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryMode>,
    /// A file holding a `[scrub]` table: the rule set this project may move to next. A
    /// sample of its envelopes (`candidates.sample_rate`) is also scrubbed with it, and
    /// only the differences are recorded; what is forwarded never depends on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<PathBuf>,
}

/// `[log]`: operational logs (never payload values, at any level).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `error`, `warn`, `info`, `debug` or `trace`; `RUST_LOG` wins when set.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Json,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A config that cannot be used. The message names the key and the problem, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    NotFound(PathBuf),
    /// Syntax, type and unknown-key errors, one per line, each with its file and line or
    /// environment variable.
    #[error("{0}")]
    Load(String),
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A configured project, resolved.
#[derive(Debug, Clone)]
pub struct Project {
    pub public_key: String,
    pub project_id: u64,
    /// The parsed `upstream_dsn`, if any.
    pub upstream_dsn: Option<Dsn>,
    /// Per-project override of `delivery.mode`.
    pub delivery: Option<DeliveryMode>,
    /// The compiled `candidate` rule set, if the project names one.
    pub candidate: Option<Arc<Candidate>>,
}

/// The validated, compiled configuration the server runs on. Immutable; a reload builds a
/// new one.
#[derive(Debug)]
pub struct Config {
    pub file: ConfigFile,
    pub listen: SocketAddr,
    /// `admin.listen`, if the admin listener is on.
    pub admin_listen: Option<SocketAddr>,
    pub upstream: UpstreamTarget,
    pub projects: HashMap<String, Project>,
    pub scrubber: Scrubber,
    pub policy: Policy,
    /// The HMAC key, shared with the scrubber; the audit trail hashes identifiers with it.
    pub hash_key: HashKey,
    /// sha256 (hex) of the effective config: audit records name the rules that applied.
    pub policy_hash: String,
    /// True when no HMAC key was configured and a random one is used for this process.
    pub hash_key_is_ephemeral: bool,
}

// === impl Config ===

impl Config {
    /// Loads from `path` (or `SCRUBGATE_CONFIG`, or defaults only) plus the environment.
    ///
    /// # Errors
    /// A missing file, a syntax or type error, an unknown key, or a failed validation.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::compile(load_file(path)?)
    }

    /// Like [`Config::load`], for offline scrubbing: no `[[projects]]` needed, since nothing
    /// is accepted from or sent to anyone.
    ///
    /// # Errors
    /// As [`Config::load`], except for a missing `[[projects]]`.
    pub fn load_offline(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::compile_with(load_file(path)?, false)
    }

    /// Validates and compiles settings.
    ///
    /// # Errors
    /// The first invalid setting, named by its key.
    pub fn compile(file: ConfigFile) -> Result<Self, ConfigError> {
        Self::compile_with(file, true)
    }

    fn compile_with(file: ConfigFile, require_projects: bool) -> Result<Self, ConfigError> {
        let listen: SocketAddr = file.server.listen.parse().map_err(|_| {
            ConfigError::invalid("server.listen", "expected host:port, e.g. 127.0.0.1:3000")
        })?;
        let admin_listen = admin_listen(&file.admin, listen)?;
        let tunnel = &file.server.tunnel_path;
        if !tunnel.starts_with('/') || tunnel.starts_with("/api/") || tunnel.len() < 2 {
            return Err(ConfigError::invalid(
                "server.tunnel_path",
                "must start with / and not be under /api/",
            ));
        }
        let upstream = UpstreamTarget::parse(&file.upstream.url)
            .map_err(|problem| ConfigError::invalid("upstream.url", problem))?;
        if let Some(ca) = &file.upstream.ca_file {
            if !ca.exists() {
                return Err(ConfigError::invalid(
                    "upstream.ca_file",
                    "file does not exist",
                ));
            }
        }
        validate_limits(&file.server, &file.limits)?;
        if let Some(tls) = &file.server.tls {
            tls.validate().map_err(|(key, problem)| {
                ConfigError::invalid(format!("server.tls.{key}"), problem)
            })?;
        }
        if require_projects && file.projects.is_empty() {
            return Err(ConfigError::invalid(
                "projects",
                "at least one [[projects]] entry is required; scrubgate accepts only configured keys",
            ));
        }
        validate_delivery(&file.delivery, &file.spool)?;
        let (hash_key, hash_key_is_ephemeral) = load_hash_key(&file.scrub)?;
        file.candidates
            .validate()
            .map_err(|(key, problem)| ConfigError::invalid(format!("candidates.{key}"), problem))?;
        let projects = compile_projects(&file.projects, &hash_key)?;
        let scrubber = Scrubber::compile(&file.scrub, hash_key.clone()).map_err(|error| {
            ConfigError::invalid(format!("scrub.{}", error.key()), error.problem())
        })?;
        let policy = Policy::compile(&file.policy)
            .map_err(|(key, problem)| ConfigError::invalid(format!("policy.{key}"), problem))?;
        file.audit
            .validate()
            .map_err(|(key, problem)| ConfigError::invalid(format!("audit.{key}"), problem))?;
        let policy_hash = policy_hash(&file);
        Ok(Self {
            file,
            listen,
            admin_listen,
            upstream,
            projects,
            scrubber,
            policy,
            hash_key,
            policy_hash,
            hash_key_is_ephemeral,
        })
    }

    /// The effective config as TOML, with credentials masked, for `check-config`.
    pub fn to_masked_toml(&self) -> String {
        let mut file = self.file.clone();
        for project in &mut file.projects {
            if let Some(dsn) = &project.upstream_dsn {
                project.upstream_dsn = Some(mask_dsn(dsn));
            }
        }
        toml::to_string_pretty(&file).unwrap_or_else(|error| format!("# cannot render: {error}\n"))
    }
}

/// Reads the raw settings from defaults, the file and the environment.
///
/// # Errors
/// A missing file, a syntax or type error, or an unknown key.
pub fn load_file(path: Option<&Path>) -> Result<ConfigFile, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(ConfigFile::default()));
    // Defaults set by an image or package (e.g. the Docker image's `0.0.0.0:3000`), which a
    // config file must be able to override: they sit below the file.
    figment = figment.merge(Env::prefixed(ENV_DEFAULTS_PREFIX).split("__"));
    let env_path = std::env::var_os(CONFIG_PATH_ENV).map(PathBuf::from);
    if let Some(path) = path.map(Path::to_path_buf).or(env_path) {
        if !path.is_file() {
            return Err(ConfigError::NotFound(path));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(
        // Only nested keys (`SCRUBGATE_SECTION__KEY`) are settings: every top-level key is a
        // section, so `SCRUBGATE_CONFIG`, `SCRUBGATE_HASH_KEY` and unrelated variables that
        // happen to share the prefix are not mistaken for config.
        Env::prefixed(report::ENV_PREFIX)
            .filter(|key| {
                let key = key.as_str();
                key.contains("__") && !key.to_ascii_lowercase().starts_with("defaults__")
            })
            .split("__"),
    );
    figment
        .extract()
        .map_err(|error| ConfigError::Load(report::describe(error)))
}

fn admin_listen(
    admin: &AdminSettings,
    main: SocketAddr,
) -> Result<Option<SocketAddr>, ConfigError> {
    if admin.listen.trim().is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = admin.listen.parse().map_err(|_| {
        ConfigError::invalid(
            "admin.listen",
            "expected host:port, e.g. 127.0.0.1:9898, or \"\" for no admin listener",
        )
    })?;
    if addr.port() != 0 && addr.port() == main.port() {
        return Err(ConfigError::invalid(
            "admin.listen",
            "must use another port than server.listen",
        ));
    }
    Ok(Some(addr))
}

fn validate_limits(server: &ServerSettings, limits: &LimitSettings) -> Result<(), ConfigError> {
    if server.max_connections == 0 {
        return Err(ConfigError::invalid(
            "server.max_connections",
            "must be at least 1",
        ));
    }
    if server.max_header_count == 0 {
        return Err(ConfigError::invalid(
            "server.max_header_count",
            "must be at least 1",
        ));
    }
    if server.max_header_bytes < 8192 {
        return Err(ConfigError::invalid(
            "server.max_header_bytes",
            "must be at least 8192",
        ));
    }
    for (key, secs) in [
        (
            "server.header_read_timeout_secs",
            server.header_read_timeout_secs,
        ),
        (
            "server.body_read_timeout_secs",
            server.body_read_timeout_secs,
        ),
        ("server.idle_timeout_secs", server.idle_timeout_secs),
    ] {
        if secs == 0 {
            return Err(ConfigError::invalid(key, "must be at least 1"));
        }
    }
    if limits.max_inflight_bytes != 0 && limits.max_inflight_bytes < MIB as u64 {
        return Err(ConfigError::invalid(
            "limits.max_inflight_bytes",
            "must be 0 (off) or at least 1048576",
        ));
    }
    if !(1..=128).contains(&limits.max_json_depth) {
        return Err(ConfigError::invalid(
            "limits.max_json_depth",
            "must be between 1 and 128 (serde_json refuses deeper documents anyway)",
        ));
    }
    let rate = limits.project_rate_limit_per_sec;
    if !rate.is_finite() || rate < 0.0 {
        return Err(ConfigError::invalid(
            "limits.project_rate_limit_per_sec",
            "must be 0 (off) or a positive number",
        ));
    }
    if rate > 0.0 && limits.project_rate_limit_burst == 0 {
        return Err(ConfigError::invalid(
            "limits.project_rate_limit_burst",
            "must be at least 1 when a rate limit is set",
        ));
    }
    Ok(())
}

fn validate_delivery(
    delivery: &DeliverySettings,
    spool: &SpoolSettings,
) -> Result<(), ConfigError> {
    if delivery.workers == 0 {
        return Err(ConfigError::invalid(
            "delivery.workers",
            "must be at least 1",
        ));
    }
    if delivery.queue_capacity == 0 {
        return Err(ConfigError::invalid(
            "delivery.queue_capacity",
            "must be at least 1",
        ));
    }
    if delivery.max_attempts == 0 {
        return Err(ConfigError::invalid(
            "delivery.max_attempts",
            "must be at least 1",
        ));
    }
    if spool.dir.as_os_str().is_empty() {
        return Err(ConfigError::invalid("spool.dir", "must name a directory"));
    }
    let (min, max) = crate::spool::SEGMENT_BYTES_RANGE;
    if !(min..=max).contains(&spool.segment_bytes) {
        return Err(ConfigError::invalid(
            "spool.segment_bytes",
            "must be between 65536 (64 KiB) and 1073741824 (1 GiB)",
        ));
    }
    Ok(())
}

fn compile_projects(
    settings: &[ProjectSettings],
    hash_key: &HashKey,
) -> Result<HashMap<String, Project>, ConfigError> {
    let mut projects = HashMap::new();
    let mut candidates = candidate::Loader::default();
    for (index, project) in settings.iter().enumerate() {
        let key = format!("projects[{index}]");
        let public_key = &project.public_key;
        if public_key.len() != 32 || !public_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigError::invalid(
                format!("{key}.public_key"),
                "must be the 32-character public key from the SDK's DSN",
            ));
        }
        if project.project_id == 0 {
            return Err(ConfigError::invalid(
                format!("{key}.project_id"),
                "must be a positive integer",
            ));
        }
        let upstream_dsn = match &project.upstream_dsn {
            Some(dsn) => Some(Dsn::parse(dsn).map_err(|error| {
                ConfigError::invalid(format!("{key}.upstream_dsn"), error.to_string())
            })?),
            None => None,
        };
        let candidate = match &project.candidate {
            Some(path) => Some(candidates.get(&format!("{key}.candidate"), path, hash_key)?),
            None => None,
        };
        let resolved = Project {
            public_key: public_key.clone(),
            project_id: project.project_id,
            upstream_dsn,
            delivery: project.delivery,
            candidate,
        };
        if projects.insert(public_key.clone(), resolved).is_some() {
            return Err(ConfigError::invalid(
                format!("{key}.public_key"),
                "listed twice",
            ));
        }
    }
    Ok(projects)
}

fn load_hash_key(settings: &ScrubSettings) -> Result<(HashKey, bool), ConfigError> {
    if let Some(secret) = std::env::var_os(&settings.hash_key_env) {
        let secret = secret.into_encoded_bytes();
        return Ok((hash_key_from(secret, "scrub.hash_key_env")?, false));
    }
    if let Some(path) = &settings.hash_key_file {
        check_secret_file_mode(path)?;
        let secret = std::fs::read(path).map_err(|error| {
            ConfigError::invalid(
                "scrub.hash_key_file",
                format!("cannot read: {}", error.kind()),
            )
        })?;
        let trimmed = secret.trim_ascii().to_vec();
        return Ok((hash_key_from(trimmed, "scrub.hash_key_file")?, false));
    }
    let mut secret = vec![0u8; 32];
    rand::fill(&mut secret[..]);
    Ok((
        HashKey {
            id: "ephemeral".to_owned(),
            secret,
        },
        true,
    ))
}

/// A key file others can read is a key others know: refuse it rather than hash with it.
#[cfg(unix)]
fn check_secret_file_mode(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = std::fs::metadata(path).map_err(|error| {
        ConfigError::invalid(
            "scrub.hash_key_file",
            format!("cannot read: {}", error.kind()),
        )
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::invalid(
            "scrub.hash_key_file",
            format!(
                "must not be readable or writable by group or others (mode {mode:04o}); run chmod 600 on it"
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_secret_file_mode(_path: &Path) -> Result<(), ConfigError> {
    Ok(())
}

/// The key id is derived from the key itself so pseudonyms say which key made them, without
/// revealing it.
fn hash_key_from(secret: Vec<u8>, key: &str) -> Result<HashKey, ConfigError> {
    const MIN_LEN: usize = 16;
    if secret.len() < MIN_LEN {
        return Err(ConfigError::invalid(
            key,
            format!("the HMAC key must be at least {MIN_LEN} bytes"),
        ));
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&secret);
    let id = hex::encode(&digest[..4]);
    Ok(HashKey { id, secret })
}

/// sha256 of the effective settings as canonical JSON (the key itself is never part of
/// them), its first 128 bits in hex: it names a configuration in every audit record, where
/// half a digest is half the bytes and still no two configurations share one by chance.
fn policy_hash(file: &ConfigFile) -> String {
    use sha2::Digest;
    let canonical = serde_json::to_vec(file).unwrap_or_default();
    hex::encode(&sha2::Sha256::digest(&canonical)[..16])
}

fn mask_dsn(dsn: &str) -> String {
    match Dsn::parse(dsn) {
        Ok(mut parsed) => {
            parsed.public_key = mask_secret(&parsed.public_key);
            parsed.secret_key = parsed.secret_key.as_deref().map(|_| "****".to_owned());
            parsed.to_string()
        }
        Err(_) => "****".to_owned(),
    }
}

fn mask_secret(value: &str) -> String {
    let prefix: String = value.chars().take(4).collect();
    format!("{prefix}****")
}
