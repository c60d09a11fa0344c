//! Wiring: from a validated [`Config`] to a bound, running server with its delivery
//! workers, and the process lifecycle around it (SIGHUP reload, SIGTERM drain). Shared by
//! `serve` and the integration tests so that tests exercise exactly what production runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::delivery::{DeliveryService, DeliveryTasks};
use crate::forward::rate_limits::RateLimits;
use crate::forward::{ForwardError, Forwarder};
use crate::ingest::AppState;
use crate::pipeline::Pipeline;
use crate::server::tls::TlsListener;
use crate::server::Face;
use crate::spool::Spool;

/// Why the server could not start. The config is already valid at this point, so these are
/// environment problems (port taken, spool directory unusable, TLS roots unreadable).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up the upstream client: {0}")]
    Upstream(#[from] ForwardError),
    #[error("spool.dir: cannot open the spool directory: {0}")]
    Spool(std::io::Error),
    #[error("audit.path: cannot open the audit trail: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("server.tls: {0}")]
    Tls(#[from] crate::server::tls::TlsError),
    #[error("audit.postgres: {0}")]
    AuditPostgres(#[from] crate::audit::postgres::PgError),
}

/// The TLS acceptor for `[server.tls]`, if configured.
fn tls_listener(config: &Config) -> Result<Option<TlsListener>, StartError> {
    let settings = config.file.server.tls.as_ref();
    Ok(settings.map(TlsListener::new).transpose()?)
}

/// Config reloads, for logs and metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
}

/// A server running in the background (tests); call [`RunningServer::shutdown`] to stop it.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The admin listener's address (`/metrics`, `/healthz`, `/readyz`), if it is on.
    pub admin_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, drains in-flight requests and the delivery queue, and waits.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// Builds the shared state for `config` and starts the delivery workers (needs a runtime).
///
/// # Errors
/// The upstream client could not be built or the spool directory cannot be used.
pub fn build_state(config: Config) -> Result<(Arc<AppState>, DeliveryTasks), StartError> {
    let forwarder = Forwarder::new(&config.file.upstream, config.upstream.clone())?;
    let spool = Spool::open(&config.file.spool).map_err(StartError::Spool)?;
    let recovered = spool.recovered().clone();
    if recovered.segments > 0 || recovered.imported > 0 {
        tracing::info!(
            segments = recovered.segments,
            pending = recovered.pending,
            completed = recovered.completed,
            lost_envelopes = recovered.lost_envelopes,
            damaged_segments = recovered.damaged_segments,
            unconfirmed = recovered.unconfirmed,
            truncated_bytes = recovered.truncated_bytes,
            imported_old_format = recovered.imported,
            spooled_bytes = spool.usage().1,
            "spool recovered; resuming delivery of pending envelopes"
        );
    }
    let rate_limits = Arc::new(RateLimits::default());
    let delivery_settings = config.file.delivery.clone();
    // One swap for the server and delivery: a reload also redirects spooled envelopes.
    let config = Arc::new(ArcSwap::from_pointee(config));
    let (delivery, tasks) = DeliveryService::start(
        forwarder.clone(),
        spool,
        delivery_settings,
        Arc::clone(&config),
        Arc::clone(&rate_limits),
    );
    let audit = crate::audit::AuditLog::open(&config.load().file.audit)?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    if let Some(status) = audit.shipping() {
        // Ships in the background; requests wait on the local trail only.
        crate::audit::postgres::Shipper::new(
            &config.load().file.audit,
            Arc::clone(status),
            Some(Arc::clone(&metrics)),
        )?
        .spawn();
    }
    let budget = crate::ingest::budget::InflightBudget::new(
        config.load().file.limits.max_inflight_bytes,
        std::time::Duration::from_millis(config.load().file.limits.inflight_wait_ms),
    );
    metrics.spool_recovery(
        recovered.lost_envelopes as u64,
        recovered.unconfirmed as u64,
        &recovered.quarantined,
    );
    let state = Arc::new(AppState {
        config,
        pipeline: Pipeline::new(forwarder, delivery, rate_limits)
            .with_metrics(Arc::clone(&metrics)),
        audit,
        storage: crate::ingest::StorageHealth::default(),
        budget,
        metrics,
        draining: std::sync::atomic::AtomicBool::new(false),
        rate: crate::ingest::rate::RateLimiter::new(),
    });
    Ok((state, tasks))
}

/// How long the admin listener waits for a scrape in flight when it stops, after
/// everything else has drained.
const ADMIN_DRAIN: Duration = Duration::from_secs(1);

/// The bound main and admin listeners, with their actual addresses (port 0 resolved).
struct Listeners {
    main: TcpListener,
    main_addr: SocketAddr,
    admin: Option<(TcpListener, SocketAddr)>,
}

impl Listeners {
    /// Binds both before anything is served, so a taken admin port fails the start instead
    /// of leaving a replica without probes.
    async fn bind(config: &Config) -> Result<Self, StartError> {
        let (main, main_addr) = bind(config.listen).await?;
        let admin = match config.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Self {
            main,
            main_addr,
            admin,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Binds `config.listen` (and `admin.listen`) and serves in a background task until
/// [`RunningServer::shutdown`].
///
/// # Errors
/// See [`StartError`].
pub async fn spawn(config: Config) -> Result<RunningServer, StartError> {
    let tls = tls_listener(&config)?;
    let listeners = Listeners::bind(&config).await?;
    let (state, tasks) = build_state(config)?;
    let addr = listeners.main_addr;
    let admin_addr = listeners.admin.as_ref().map(|(_, addr)| *addr);
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(lifecycle(
        listeners,
        tls,
        Arc::clone(&state),
        tasks,
        stopped,
    ));
    Ok(RunningServer {
        addr,
        admin_addr,
        state,
        stop: Some(stop),
        task,
    })
}

/// Runs until SIGTERM/SIGINT, then drains. Reloads the config from `config_path` on SIGHUP.
/// This is `scrubgate serve`.
///
/// # Errors
/// See [`StartError`].
pub async fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), StartError> {
    if config.hash_key_is_ephemeral {
        tracing::warn!(
            "no scrub.hash_key_file or SCRUBGATE_HASH_KEY configured: hashed values use a random per-process key"
        );
    }
    let projects = config.projects.len();
    let upstream = config.upstream.describe();
    let started = Instant::now();
    let tls = tls_listener(&config)?;
    let listeners = Listeners::bind(&config).await?;
    let (state, tasks) = build_state(config)?;
    let bound = listeners.main_addr;
    let admin_addr = listeners.admin.as_ref().map(|(_, addr)| addr.to_string());
    if let Some(tls) = &tls {
        crate::server::tls::reload_on_sighup(Arc::clone(&tls.certs));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        addr = %bound,
        admin_addr = admin_addr.as_deref().unwrap_or("off"),
        scheme,
        projects,
        upstream = %upstream,
        startup_ms = started.elapsed().as_secs_f64() * 1000.0,
        "listening"
    );
    let reloader = tokio::spawn(reload_on_sighup(Arc::clone(&state), config_path));
    let shutdown = crate::server::shutdown_signal();
    lifecycle(listeners, tls, state, tasks, shutdown).await;
    reloader.abort();
    Ok(())
}

/// Serve until `shutdown`, then: fail `/readyz`, finish in-flight requests, drain the
/// delivery queue, all within `server.shutdown_timeout_secs`. Whatever is not delivered by
/// then is already in the spool and goes out after the next start.
///
/// The admin listener stays up through all of it (probes see `/readyz` fail, `/metrics`
/// shows the queue draining) and stops last, after its own short drain.
async fn lifecycle(
    listeners: Listeners,
    tls: Option<TlsListener>,
    state: Arc<AppState>,
    tasks: DeliveryTasks,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let budget = Duration::from_secs(state.config.load().file.server.shutdown_timeout_secs);
    let started = std::sync::OnceLock::<Instant>::new();
    let draining_state = Arc::clone(&state);
    let shutdown = async {
        shutdown.await;
        draining_state.draining.store(true, Ordering::SeqCst);
        let _ = started.set(Instant::now());
    };
    let (admin_stop, admin_stopped) = oneshot::channel::<()>();
    let admin = listeners.admin.map(|(listener, _)| {
        let stopped = async move {
            let _ = admin_stopped.await;
        };
        tokio::spawn(crate::server::serve_with(
            listener,
            Arc::clone(&state),
            None,
            Face::Admin,
            stopped,
            ADMIN_DRAIN,
        ))
    });
    crate::server::serve_with(
        listeners.main,
        Arc::clone(&state),
        tls,
        Face::Ingest,
        shutdown,
        budget,
    )
    .await;
    let spent = started.get().map_or(Duration::ZERO, Instant::elapsed);
    let left = budget.saturating_sub(spent).max(Duration::from_millis(100));
    let delivery = state.pipeline.delivery().clone();
    delivery.shutdown(tasks, left).await;
    final_audit_ship(&state).await;
    let _ = admin_stop.send(());
    if let Some(admin) = admin {
        let _ = admin.await;
    }
}

/// How long a stopping replica tries to ship its last audit records to PostgreSQL.
const FINAL_SHIP: Duration = Duration::from_secs(5);

/// One last pass of the audit shipper after the drain, so a replica that goes away with its
/// disk (a Deployment pod on an emptyDir) leaves nothing unshipped when the database is up.
/// Idempotent with the background shipper, which may still be mid-batch.
async fn final_audit_ship(state: &AppState) {
    if state.audit.shipping().is_none() {
        return;
    }
    let settings = state.config.load().file.audit.clone();
    match tokio::time::timeout(FINAL_SHIP, crate::audit::postgres::ship_once(&settings)).await {
        Ok(Ok(shipped)) => tracing::info!(shipped, "audit trail shipped to PostgreSQL before exit"),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "audit records left unshipped at exit; the next start ships them")
        }
        Err(_) => tracing::warn!(
            "audit records left unshipped at exit (timed out); the next start ships them"
        ),
    }
}

/// Reloads the config on every SIGHUP until the task is aborted.
async fn reload_on_sighup(state: Arc<AppState>, path: Option<PathBuf>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; config reload disabled");
            return;
        };
        let stats = ReloadStats::default();
        while hangups.recv().await.is_some() {
            match reload(&state, path.as_deref()) {
                Ok(ignored) => {
                    stats.succeeded.fetch_add(1, Ordering::Relaxed);
                    state.metrics.config_reload(true);
                    tracing::info!(needs_restart = ?ignored, "configuration reloaded");
                }
                Err(error) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    state.metrics.config_reload(false);
                    tracing::error!(error = %error, "configuration reload failed; keeping the previous configuration");
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (state, path);
    }
}

/// Loads, validates and atomically swaps in a new config. Requests already running keep the
/// config they started with. Returns the sections whose changes need a restart (they keep
/// their old values until then): `server.listen`, `admin.listen`, `[upstream]`, `[delivery]`, `[spool]`.
///
/// # Errors
/// The new config is invalid; the old one stays in force.
pub fn reload(
    state: &AppState,
    path: Option<&std::path::Path>,
) -> Result<Vec<&'static str>, ConfigError> {
    let new = Config::load(path)?;
    let old = state.config.load();
    let mut ignored = Vec::new();
    let differs = |a: &dyn erased::Ser, b: &dyn erased::Ser| a.to_toml() != b.to_toml();
    if new.file.server.listen != old.file.server.listen {
        ignored.push("server.listen");
    }
    if new.file.admin.listen != old.file.admin.listen {
        ignored.push("admin.listen");
    }
    if differs(&new.file.upstream, &old.file.upstream) {
        ignored.push("upstream");
    }
    if differs(&new.file.delivery, &old.file.delivery) {
        ignored.push("delivery");
    }
    if differs(&new.file.spool, &old.file.spool) {
        ignored.push("spool");
    }
    // The shipper and its pool are built at start (a new database or instance id mid-chain
    // would fork the chain it ships).
    if differs(&new.file.audit.postgres, &old.file.audit.postgres) {
        ignored.push("audit.postgres");
    }
    state.config.store(Arc::new(new));
    Ok(ignored)
}

mod erased {
    /// Compares config sections by their TOML form (they are plain data).
    pub trait Ser {
        fn to_toml(&self) -> String;
    }

    impl<T: serde::Serialize> Ser for T {
        fn to_toml(&self) -> String {
            toml::to_string(self).unwrap_or_default()
        }
    }
}
