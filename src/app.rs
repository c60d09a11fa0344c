//! Wiring: from a validated [`Config`] to a bound, running server. Shared by `serve` and the
//! integration tests so that tests exercise exactly what production runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::forward::{ForwardError, Forwarder};
use crate::ingest::AppState;
use crate::pipeline::Pipeline;

/// Why the server could not start. The config is already valid at this point, so these are
/// environment problems (port taken, TLS roots unreadable).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up the upstream client: {0}")]
    Upstream(#[from] ForwardError),
    #[error("server.tls: {0}")]
    Tls(#[from] crate::server::tls::TlsError),
}

/// The TLS acceptor for `[server.tls]`, if configured.
fn tls_listener(config: &Config) -> Result<Option<crate::server::tls::TlsListener>, StartError> {
    let settings = config.file.server.tls.as_ref();
    Ok(settings
        .map(crate::server::tls::TlsListener::new)
        .transpose()?)
}

/// A server running in the background; dropping the handle does not stop it, call
/// [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, drains in-flight requests and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// Builds the shared state for `config`.
///
/// # Errors
/// The upstream HTTP client could not be built.
pub fn build_state(config: Config) -> Result<Arc<AppState>, StartError> {
    let forwarder = Forwarder::new(&config.file.upstream, config.upstream.clone())?;
    Ok(Arc::new(AppState {
        config: ArcSwap::from_pointee(config),
        pipeline: Pipeline::new(forwarder),
        rate: crate::ingest::rate::RateLimiter::new(),
    }))
}

/// Binds `config.listen` and serves in a background task until [`RunningServer::shutdown`].
///
/// # Errors
/// See [`StartError`].
pub async fn spawn(config: Config) -> Result<RunningServer, StartError> {
    let addr = config.listen;
    let drain = Duration::from_secs(config.file.server.shutdown_timeout_secs);
    let tls = tls_listener(&config)?;
    let state = build_state(config)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::server::serve_with(
        listener,
        Arc::clone(&state),
        tls,
        async move {
            let _ = stopped.await;
        },
        drain,
    ));
    Ok(RunningServer {
        addr,
        state,
        stop: Some(stop),
        task,
    })
}

/// Runs until SIGTERM/SIGINT, then drains. This is `scrubgate serve`.
///
/// # Errors
/// See [`StartError`].
pub async fn run(config: Config) -> Result<(), StartError> {
    let addr = config.listen;
    let drain = Duration::from_secs(config.file.server.shutdown_timeout_secs);
    if config.hash_key_is_ephemeral {
        tracing::warn!(
            "no scrub.hash_key_file or SCRUBGATE_HASH_KEY configured: hashed values use a random per-process key"
        );
    }
    let projects = config.projects.len();
    let upstream = config.upstream.describe();
    let tls = tls_listener(&config)?;
    let state = build_state(config)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    if let Some(tls) = &tls {
        crate::server::tls::reload_on_sighup(Arc::clone(&tls.certs));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %bound, scheme, projects, upstream = %upstream, "listening");
    let shutdown = crate::server::shutdown_signal();
    crate::server::serve_with(listener, state, tls, shutdown, drain).await;
    Ok(())
}
