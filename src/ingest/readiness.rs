//! `/readyz`: whether this replica should get traffic. An orchestrator stops sending to a
//! replica that answers 503 here, so it must say 503 exactly while ingest requests would
//! fail: while draining, while neither the upstream nor the spool can take data, and while
//! the spool or the audit trail cannot be written (every ingest request is then 503 too).
//! Write-ability is proven by writing, not by opening a file: on a full disk, opening and
//! creating empty files still succeed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::{json_response, AppState};
use crate::config::Config;
use crate::decode::Dsn;
use crate::forward::UpstreamTarget;
use crate::spool::SpoolError;

/// The largest: a probe after a failed 20 MB envelope need not write 20 MB every time.
const PROBE_MAX_BYTES: u64 = 1024 * 1024;

/// What the request path learned about the spool's disk.
#[derive(Debug, Default)]
pub struct StorageHealth {
    /// Size of the last spool write that failed for lack of space or an I/O error; 0 once
    /// a write (or a probe of that size) succeeded again.
    spool_failed_bytes: AtomicU64,
}

impl StorageHealth {
    pub fn spool_failed(&self, bytes: u64) {
        self.spool_failed_bytes
            .store(bytes.max(1), Ordering::SeqCst);
    }

    pub fn spool_ok(&self) {
        self.spool_failed_bytes.store(0, Ordering::SeqCst);
    }

    /// How many bytes a spool probe must write to show the failure is over.
    fn spool_probe_bytes(&self) -> u64 {
        self.spool_failed_bytes
            .load(Ordering::SeqCst)
            .clamp(crate::fs_probe::MIN_BYTES, PROBE_MAX_BYTES)
    }
}

/// Ready when not draining, data can go somewhere (the upstream, or the spool until the
/// upstream is back), and the spool and the audit trail can both be written.
pub async fn readiness(state: &AppState, config: &Config) -> Response<Full<Bytes>> {
    if state.draining.load(Ordering::SeqCst) {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "ready": false, "draining": true }),
        );
    }
    let upstream_ok = upstream_ok(config).await;
    let spool_probe = {
        let delivery = state.pipeline.delivery().clone();
        let bytes = state.storage.spool_probe_bytes();
        tokio::task::spawn_blocking(move || match delivery.spool().probe_write(bytes) {
            Ok(()) => (true, None),
            // At its configured cap: no room, but nothing says the disk refuses writes.
            Err(SpoolError::Full) => (false, None),
            Err(error) => (true, Some(error.to_string())),
        })
        .await
        .unwrap_or_else(|_| (false, Some("probe task failed".to_owned())))
    };
    let (spool_room, spool_error) = spool_probe;
    if spool_error.is_none() {
        state.storage.spool_ok();
    }
    let audit_error = state.audit.probe_write().await.err();
    if let Some(error) = &spool_error {
        tracing::warn!(path = %config.file.spool.dir.display(), cause = %error, "not ready: the spool cannot be written");
    }
    if let Some(error) = &audit_error {
        tracing::warn!(cause = %error, "not ready: the audit trail cannot be written");
    }
    // A spool at its configured cap is fine while the upstream takes data directly; a spool
    // whose disk refuses writes fails every async request, whatever the upstream does.
    let spool_writable = spool_error.is_none();
    let spool_ok = spool_writable && spool_room;
    let audit_ok = audit_error.is_none();
    let ready = spool_writable && audit_ok && (upstream_ok || spool_ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "ready": ready,
        "upstream": if upstream_ok { "reachable" } else { "unreachable" },
        "spool": if spool_ok { "ok" } else { "unavailable" },
        "audit": if audit_ok { "ok" } else { "unavailable" },
    });
    if let Some(shipping) = state.audit.shipping() {
        // Informational only: shipping to PostgreSQL never makes a replica unready.
        body["audit_shipping"] = shipping.detail();
    }
    if !ready {
        let failing: Vec<&str> = [
            (!spool_ok, "spool"),
            (!audit_ok, "audit"),
            (!upstream_ok && !spool_ok, "upstream"),
        ]
        .into_iter()
        .filter_map(|(bad, part)| bad.then_some(part))
        .collect();
        body["failing"] = json!(failing);
    }
    json_response(status, &body)
}

async fn upstream_ok(config: &Config) -> bool {
    match &config.upstream {
        UpstreamTarget::File(dir) => {
            std::fs::create_dir_all(dir).is_ok()
                && std::fs::metadata(dir)
                    .map(|m| !m.permissions().readonly())
                    .unwrap_or(false)
        }
        UpstreamTarget::Http(base) => {
            let mut targets = vec![base.clone()];
            targets.extend(
                config
                    .projects
                    .values()
                    .filter_map(|p| p.upstream_dsn.as_ref())
                    .map(Dsn::origin_with_path),
            );
            targets.sort();
            targets.dedup();
            let mut all = true;
            for target in targets {
                all &= reachable(&target).await;
            }
            all
        }
    }
}

async fn reachable(base: &str) -> bool {
    let Ok(url) = url::Url::parse(base) else {
        return false;
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let connect = tokio::net::TcpStream::connect((host, port));
    matches!(
        tokio::time::timeout(Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}
