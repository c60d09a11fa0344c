//! The HTTP listener: HTTP/1.1 and HTTP/2 on one port (cleartext, or TLS with ALPN), a cap on
//! concurrent connections, slow-header and idle protection, header count/size caps, and
//! graceful shutdown that lets in-flight requests finish within a bound.
//!
//! Knows nothing about Sentry: every request on the main listener goes to [`ingest::handle`],
//! every request on the admin listener to [`ingest::admin::handle`].

pub mod idle;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ServerSettings;
use crate::ingest::{self, AppState};

use self::idle::{IdleIo, InFlight};
use self::tls::TlsListener;

/// Accepts cleartext connections until `shutdown` resolves; see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    serve_with(listener, state, None, Face::Ingest, shutdown, drain_timeout).await;
}

/// Which routes a listener answers: the SDK-facing ingest routes, or the operator's
/// `/metrics`, `/healthz` and `/readyz` (kept off the public port, see [`ingest::admin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Ingest,
    Admin,
}

impl Face {
    fn label(self) -> &'static str {
        match self {
            Self::Ingest => "main",
            Self::Admin => "admin",
        }
    }
}

/// Accepts connections (TLS-wrapped when `tls` is set) until `shutdown` resolves, then waits up
/// to `drain_timeout` for open connections to finish their current requests.
///
/// At most `server.max_connections` connections are served at once: the loop stops accepting
/// while all permits are taken, so excess clients wait in the kernel's listen backlog instead
/// of costing memory here.
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<TlsListener>,
    face: Face,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let settings = state.config.load().file.server.clone();
    let header_timeout = Duration::from_secs(settings.header_read_timeout_secs);
    let idle_timeout = Duration::from_secs(settings.idle_timeout_secs);
    let builder = Arc::new(connection_builder(&settings));
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let in_flight = InFlight::default();
        let io = IdleIo::new(stream, header_timeout, idle_timeout, in_flight.clone());
        let connection = Connection {
            state: Arc::clone(&state),
            builder: Arc::clone(&builder),
            watcher: graceful.watcher(),
            in_flight,
            peer,
            face,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => connection.serve(io).await,
                Some(tls) => {
                    match tokio::time::timeout(header_timeout, tls.acceptor.accept(io)).await {
                        Ok(Ok(stream)) => connection.serve(stream).await,
                        Ok(Err(error)) => {
                            tracing::debug!(error = %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    tracing::info!(
        listener = face.label(),
        "shutting down: no longer accepting connections"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(listener = face.label(), "all connections drained"),
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!(timeout_secs = drain_timeout.as_secs(), "drain timeout reached; closing remaining connections");
        }
    }
}

/// HTTP/1.1 and HTTP/2 settings shared by every connection.
fn connection_builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(settings.header_read_timeout_secs))
        .max_headers(settings.max_header_count)
        .max_buf_size(settings.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(100);
    builder
}

/// One accepted connection, ready to be served over a (possibly TLS-wrapped) transport.
struct Connection {
    state: Arc<AppState>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    in_flight: InFlight,
    peer: SocketAddr,
    face: Face,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            state,
            builder,
            watcher,
            in_flight,
            peer,
            face,
        } = self;
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let state = Arc::clone(&state);
            let guard = in_flight.enter();
            async move {
                let response = handle(state, request, peer, face).await;
                drop(guard);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        if let Err(error) = watcher.watch(connection).await {
            tracing::debug!(error = %error, "connection ended with an error");
        }
    }
}

async fn handle(
    state: Arc<AppState>,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    face: Face,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    match face {
        Face::Ingest => ingest::handle(state, request, peer).await,
        Face::Admin => ingest::admin::handle(state, request).await,
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
