//! One envelope's way to its upstream: read it back if it comes from the backlog, resolve
//! its destination from the current config, rewrite its header for it, and send it with
//! retries while the destination's breaker stays closed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::queue::{DestKey, Job, Release, Source, Work};
use super::{key_of, resolve, warn_unroutable, Inner, Route};
use crate::forward::rate_limits::parse_retry_after;
use crate::forward::{self, ClientMeta, Destination, ForwardError, UpstreamResponse};
use crate::spool::{Completion, RecordId, SpoolError};

/// A worker's hold on its slot: whatever happens (including a panic or an abort at
/// shutdown), the slot is given back, by default parking the envelope on disk.
struct Slot {
    inner: Arc<Inner>,
    key: DestKey,
    id: RecordId,
    probe: bool,
    release: Option<Release>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let release = self.release.take().unwrap_or(Release::Park);
        let project_id = match &release {
            Release::Unroutable { project_id } => Some(*project_id),
            _ => None,
        };
        let first = self
            .inner
            .scheduler()
            .release(&self.key, self.id, self.probe, release);
        if let Some(project_id) = project_id {
            warn_unroutable(first, project_id);
        }
        self.inner.wake.notify_one();
    }
}

/// One envelope: read it if it comes from the backlog, resolve its destination now, and
/// deliver it there.
pub(super) async fn send(inner: Arc<Inner>, work: Work) {
    let id = work.id();
    let Work { key, source, probe } = work;
    let mut slot = Slot {
        inner: Arc::clone(&inner),
        id,
        key,
        probe,
        release: None,
    };
    let job = match source {
        Source::Fresh(job) => job,
        Source::Spooled(id) => {
            let reader = Arc::clone(&inner);
            let read = tokio::task::spawn_blocking(move || reader.spool.read(id)).await;
            match read {
                Ok(Ok(spooled)) => {
                    inner.stats.replayed.fetch_add(1, Ordering::Relaxed);
                    Box::new(Job {
                        id: spooled.id,
                        meta: spooled.meta,
                        body: spooled.body,
                    })
                }
                Ok(Err(SpoolError::Corrupt)) => {
                    tracing::error!(record = %id, "corrupt spool record dropped");
                    inner.spool.complete(id, Completion::Dropped);
                    slot.release = Some(Release::Done);
                    return;
                }
                Ok(Err(SpoolError::Io(error))) if error.kind() == std::io::ErrorKind::NotFound => {
                    // Completed (expired) meanwhile.
                    slot.release = Some(Release::Done);
                    return;
                }
                Ok(Err(error)) => {
                    tracing::error!(error = %error, record = %id, "cannot read a spool record; trying again later");
                    slot.release = Some(Release::Reclassify);
                    return;
                }
                Err(_) => {
                    slot.release = Some(Release::Reclassify);
                    return;
                }
            }
        }
    };
    let config = inner.config.load_full();
    let destination = match resolve(&inner.forwarder, &config, &job.meta) {
        Route::To(destination) => destination,
        Route::Missing { project_id } => {
            slot.release = Some(Release::Unroutable { project_id });
            return;
        }
    };
    drop(config);
    let key = key_of(&destination);
    if key != slot.key {
        // The config changed since it was queued: it belongs to another queue.
        slot.release = Some(Release::Moved(key, job));
        return;
    }
    let release = deliver(&inner, &slot.key, probe, job, &destination).await;
    slot.release = Some(release);
}

enum Attempt {
    Delivered,
    Retry {
        after: Duration,
        rate_limited: bool,
        /// A fixed, metric-safe name of what went wrong.
        reason: &'static str,
    },
    Rejected(u16),
}

fn classify(
    inner: &Inner,
    destination: &Destination,
    result: Result<UpstreamResponse, ForwardError>,
    attempt: u32,
) -> Attempt {
    match result {
        Ok(response) if (200..300).contains(&response.status) => {
            inner.rate_limits.record(
                &destination.public_key,
                response.status,
                response.retry_after.as_deref(),
                response.rate_limits.as_deref(),
            );
            Attempt::Delivered
        }
        Ok(response) if response.status == 429 => {
            inner.rate_limits.record(
                &destination.public_key,
                429,
                response.retry_after.as_deref(),
                response.rate_limits.as_deref(),
            );
            let wait = parse_retry_after(response.retry_after.as_deref());
            Attempt::Retry {
                after: wait.max(inner.backoff(attempt)),
                rate_limited: true,
                reason: "rate_limited",
            }
        }
        Ok(response) if response.status >= 500 => Attempt::Retry {
            after: inner.backoff(attempt),
            rate_limited: false,
            reason: "upstream_5xx",
        },
        Ok(response) => Attempt::Rejected(response.status),
        Err(ForwardError::Setup(_)) => Attempt::Rejected(0),
        Err(error) => Attempt::Retry {
            after: inner.backoff(attempt),
            rate_limited: false,
            reason: match error {
                ForwardError::Connect(_) => "connect",
                ForwardError::Timeout(_) => "timeout",
                ForwardError::File(_) => "file_sink",
                _ => "request",
            },
        },
    }
}

/// Sends one envelope to `destination` with retries; returns how its slot is given back.
/// A probe gets one attempt. Retries stop as soon as the destination's breaker opens (the
/// envelope then waits on disk with the rest).
async fn deliver(
    inner: &Inner,
    key: &DestKey,
    probe: bool,
    job: Box<Job>,
    destination: &Destination,
) -> Release {
    let Job { id, meta, body } = *job;
    let client = ClientMeta {
        sentry_client: meta.sentry_client.clone(),
        user_agent: meta.user_agent.clone(),
    };
    let body = forward::rewrite_header_for(&body, destination);
    // Compressed once here, not once per attempt.
    let body = match inner.forwarder.prepare(body) {
        Ok(body) => body,
        Err(error) => {
            inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %error, "envelope cannot be prepared for the upstream; dropped");
            inner.spool.complete(id, Completion::Dropped);
            return Release::Done;
        }
    };
    let max_attempts = if probe {
        1
    } else {
        inner.settings.max_attempts.max(1)
    };
    let mut attempt = 0;
    let mut first_failure: Option<&'static str> = None;
    loop {
        let result = inner
            .forwarder
            .send(destination, &body, &client, meta.event_id.as_deref())
            .await;
        attempt += 1;
        let outcome = classify(inner, destination, result, attempt - 1);
        match outcome {
            Attempt::Delivered => {
                inner.scheduler().reached(key);
                inner.stats.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(first_failure) = first_failure {
                    tracing::debug!(attempts = attempt, first_failure, "delivered after retries");
                }
                inner.spool.complete(id, Completion::Delivered);
                return Release::Done;
            }
            Attempt::Rejected(status) => {
                if status != 0 {
                    inner.scheduler().reached(key);
                }
                inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    status,
                    project_id = destination.project_id,
                    attempts = attempt,
                    first_failure,
                    "upstream rejected an envelope; not retried"
                );
                inner.spool.complete(id, Completion::Dropped);
                return Release::Done;
            }
            Attempt::Retry {
                after,
                rate_limited: true,
                reason,
            } => {
                inner.scheduler().reached(key);
                first_failure.get_or_insert(reason);
                let max_wait = Duration::from_secs(inner.settings.max_rate_limit_wait_secs);
                if after > max_wait || attempt >= max_attempts {
                    inner
                        .stats
                        .rate_limited_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        project_id = destination.project_id,
                        attempts = attempt,
                        first_failure,
                        "rate limited by the upstream; envelope dropped"
                    );
                    inner.spool.complete(id, Completion::Dropped);
                    return Release::Done;
                }
                if inner.stopping.load(Ordering::SeqCst) {
                    return park(inner, destination, attempt, first_failure);
                }
                inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(after).await;
            }
            Attempt::Retry {
                after,
                rate_limited: false,
                reason,
            } => {
                first_failure.get_or_insert(reason);
                let closed = inner.scheduler().failed(key, Instant::now());
                if attempt >= max_attempts && closed && !probe {
                    // This envelope alone failed `max_attempts` times: stop sending there
                    // until a probe gets through, even if others succeeded in between.
                    inner.scheduler().trip(key, Instant::now());
                }
                if !closed || attempt >= max_attempts || inner.stopping.load(Ordering::SeqCst) {
                    return park(inner, destination, attempt, first_failure);
                }
                inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(after).await;
                if !inner.scheduler().is_closed(key) {
                    // Opened while we slept: wait on disk with the rest.
                    return park(inner, destination, attempt, first_failure);
                }
            }
        }
    }
}

/// Leaves the envelope on disk, in its destination's backlog.
fn park(
    inner: &Inner,
    destination: &Destination,
    attempts: u32,
    first_failure: Option<&'static str>,
) -> Release {
    inner.stats.parked.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(
        project_id = destination.project_id,
        attempts,
        first_failure,
        "delivery failed; envelope parked in the spool"
    );
    Release::Park
}
