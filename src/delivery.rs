//! Asynchronous delivery: once an envelope is scrubbed it is written to the [`Spool`] and the
//! SDK gets its 200; a bounded queue feeds worker tasks that forward with retries, and a
//! replayer brings back what is left on disk (after an outage, a full queue or a restart),
//! oldest first.
//!
//! Outcomes of one delivery attempt:
//! - 2xx: delivered, a completion is appended to the spool (its segment is deleted once
//!   everything in it is complete).
//! - connect error, timeout, 5xx, garbage: retried with exponential backoff and jitter up to
//!   `max_attempts`, then parked in the spool for the replayer.
//! - 429: the limits are remembered (the SDK is answered 429 for those categories from then
//!   on); the envelope is retried once the limit has passed if that is within
//!   `max_rate_limit_wait_secs` and attempts remain, else dropped like Relay drops
//!   rate-limited data: it is over quota, and keeping it would only replay it into the
//!   same limit.
//! - other 4xx: final, completed as dropped; the rejection is logged and counted.
//!
//! The body is compressed for the upstream once per job, not once per attempt.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::forward::rate_limits::{parse_retry_after, RateLimits};
use crate::forward::{ClientMeta, Destination, ForwardError, Forwarder, UpstreamResponse};
use crate::spool::{Completion, RecordId, Spool, SpoolError, SpoolMeta};

/// `[delivery]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// `async` (spool, answer 200 at once, forward in the background) or `sync` (forward,
    /// then answer with the upstream's status). Projects may override it.
    pub mode: DeliveryMode,
    /// Concurrent upstream requests.
    pub workers: usize,
    /// Envelopes waiting in memory; beyond it they wait on disk for the replayer.
    pub queue_capacity: usize,
    /// Attempts per envelope before it is parked on disk (or dropped, when rate limited).
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_secs: u64,
    /// A 429 whose limit ends within this is waited out and retried; longer ones drop.
    pub max_rate_limit_wait_secs: u64,
    /// How often the replayer looks at the spool when it has nothing else to do.
    pub replay_interval_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            mode: DeliveryMode::Async,
            workers: 32,
            queue_capacity: 1024,
            max_attempts: 4,
            initial_backoff_ms: 200,
            max_backoff_secs: 30,
            max_rate_limit_wait_secs: 60,
            replay_interval_ms: 1000,
        }
    }
}

/// When the SDK gets its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    Async,
    Sync,
}

/// Counters for logs, `/metrics` and tests.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub accepted: AtomicU64,
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub parked: AtomicU64,
    pub rejected: AtomicU64,
    pub rate_limited_dropped: AtomicU64,
    pub expired: AtomicU64,
    pub replayed: AtomicU64,
}

/// Why an envelope could not be accepted for delivery.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("spool is full")]
    SpoolFull,
    #[error("cannot write to the spool")]
    Spool(#[source] SpoolError),
}

struct Job {
    id: RecordId,
    meta: SpoolMeta,
    body: Bytes,
}

struct Inner {
    forwarder: Forwarder,
    spool: Spool,
    settings: DeliverySettings,
    rate_limits: Arc<RateLimits>,
    busy: Mutex<HashSet<RecordId>>,
    stats: DeliveryStats,
    /// Set on shutdown: workers stop retrying, the replayer stops.
    stopping: AtomicBool,
    /// Replayer pause after parked failures, so an outage is not hammered.
    pause_until: Mutex<Option<Instant>>,
    consecutive_parks: AtomicU64,
    wake_replayer: tokio::sync::Notify,
    /// Set whenever a spooled envelope is not in the queue (queue full, parked, found at
    /// start); the replayer lists the spool directory only then, or every
    /// [`SAFETY_SCAN`], so a healthy proxy with a large spool does not list it every tick.
    backlog: AtomicBool,
    /// Tells the dispatcher to take no new jobs (clones of the sender live on in the
    /// server state, so the channel alone never closes).
    close_queue: tokio::sync::Notify,
}

/// The delivery service. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryService {
    inner: Arc<Inner>,
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for DeliveryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryService")
            .field("spool", &self.inner.spool.dir())
            .finish()
    }
}

/// Tasks to await on shutdown.
#[derive(Debug)]
pub struct DeliveryTasks {
    dispatcher: JoinHandle<()>,
    replayer: JoinHandle<()>,
}

impl DeliveryService {
    /// Starts the dispatcher (bounded worker concurrency) and the replayer.
    pub fn start(
        forwarder: Forwarder,
        spool: Spool,
        settings: DeliverySettings,
        rate_limits: Arc<RateLimits>,
    ) -> (Self, DeliveryTasks) {
        let (queue, receiver) = mpsc::channel(settings.queue_capacity.max(1));
        let inner = Arc::new(Inner {
            forwarder,
            spool,
            settings,
            rate_limits,
            busy: Mutex::new(HashSet::new()),
            stats: DeliveryStats::default(),
            stopping: AtomicBool::new(false),
            pause_until: Mutex::new(None),
            consecutive_parks: AtomicU64::new(0),
            wake_replayer: tokio::sync::Notify::new(),
            close_queue: tokio::sync::Notify::new(),
            backlog: AtomicBool::new(true),
        });
        let dispatcher = tokio::spawn(dispatch(Arc::clone(&inner), receiver));
        let replayer = tokio::spawn(replay(Arc::clone(&inner), queue.clone()));
        (
            Self { inner, queue },
            DeliveryTasks {
                dispatcher,
                replayer,
            },
        )
    }

    pub fn stats(&self) -> &DeliveryStats {
        &self.inner.stats
    }

    pub fn spool(&self) -> &Spool {
        &self.inner.spool
    }

    /// Spools the envelope (the durable acknowledgement) and queues it for delivery.
    ///
    /// # Errors
    /// The spool is full or cannot be written; the SDK should retry later.
    pub async fn accept(&self, meta: SpoolMeta, body: Bytes) -> Result<(), AcceptError> {
        let inner = Arc::clone(&self.inner);
        let write_meta = meta.clone();
        let write_body = body.clone();
        // Released right away for now: the audit-first ordering (release only once the audit
        // record is durable) replaces this.
        let id = tokio::task::spawn_blocking(move || {
            let id = inner.spool.write(&write_meta, &write_body)?;
            if let Err(error) = inner.spool.release(id) {
                inner.spool.complete(id, Completion::Dropped);
                return Err(error);
            }
            Ok(id)
        })
        .await
        .map_err(|error| AcceptError::Spool(SpoolError::Io(std::io::Error::other(error))))?
        .map_err(|error| match error {
            SpoolError::Full => AcceptError::SpoolFull,
            other => AcceptError::Spool(other),
        })?;
        self.inner.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if !self.inner.claim(id) {
            // The replayer saw the new record first and queued it: nothing left to do.
            return Ok(());
        }
        if let Err(error) = self.queue.try_send(Job { id, meta, body }) {
            // Queue full (or shutting down): the record waits for the replayer.
            self.inner.backlog.store(true, Ordering::SeqCst);
            let job = match error {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => {
                    job
                }
            };
            self.inner.unmark_busy(job.id);
        }
        Ok(())
    }

    /// Stops the replayer, lets workers finish what is queued until `deadline`, and leaves
    /// everything undelivered on disk for the next start.
    pub async fn shutdown(self, tasks: DeliveryTasks, deadline: Duration) {
        let Self { inner, queue } = self;
        inner.wake_replayer.notify_one();
        tasks.replayer.abort();
        let _ = tasks.replayer.await;
        drop(queue);
        inner.close_queue.notify_one();
        let mut dispatcher = tasks.dispatcher;
        if tokio::time::timeout(deadline, &mut dispatcher)
            .await
            .is_err()
        {
            inner.stopping.store(true, Ordering::SeqCst);
            dispatcher.abort();
            let _ = dispatcher.await;
        }
        let (envelopes, bytes) = inner.spool.usage();
        tracing::info!(
            delivered = inner.stats.delivered.load(Ordering::Relaxed),
            spooled_envelopes = envelopes,
            spooled_bytes = bytes,
            "delivery stopped"
        );
    }
}

impl Inner {
    /// Marks `id` busy unless it already is; true when this caller now owns it.
    fn claim(&self, id: RecordId) -> bool {
        self.busy
            .lock()
            .map(|mut busy| busy.insert(id))
            .unwrap_or(false)
    }

    fn unmark_busy(&self, id: RecordId) {
        if let Ok(mut busy) = self.busy.lock() {
            busy.remove(&id);
        }
    }

    fn busy_snapshot(&self) -> HashSet<RecordId> {
        self.busy.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn paused(&self) -> bool {
        self.pause_until
            .lock()
            .ok()
            .and_then(|p| *p)
            .is_some_and(|until| Instant::now() < until)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .settings
            .initial_backoff_ms
            .max(1)
            .saturating_mul(1u64 << attempt.min(16));
        let capped = base.min(self.settings.max_backoff_secs.saturating_mul(1000).max(1));
        // Full jitter in [capped/2, capped]: spreads retries of many envelopes apart.
        let jitter = rand::random_range(0..=capped / 2);
        Duration::from_millis(capped - capped / 2 + jitter)
    }

    /// Records a finished envelope: one small append (and, once per segment, an unlink),
    /// cheap enough to do inline.
    fn finish(&self, id: RecordId, outcome: Completion) {
        self.spool.complete(id, outcome);
        self.unmark_busy(id);
    }
}

async fn dispatch(inner: Arc<Inner>, mut receiver: mpsc::Receiver<Job>) {
    let permits = Arc::new(Semaphore::new(inner.settings.workers.max(1)));
    let mut running = tokio::task::JoinSet::new();
    loop {
        let job = tokio::select! {
            job = receiver.recv() => match job {
                Some(job) => job,
                None => break,
            },
            () = inner.close_queue.notified() => {
                // Deliver what is already queued, accept nothing new.
                receiver.close();
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let inner = Arc::clone(&inner);
        running.spawn(async move {
            deliver(&inner, job).await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
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
    meta: &SpoolMeta,
    result: Result<UpstreamResponse, ForwardError>,
    attempt: u32,
) -> Attempt {
    match result {
        Ok(response) if (200..300).contains(&response.status) => {
            inner.rate_limits.record(
                &meta.public_key,
                response.status,
                response.retry_after.as_deref(),
                response.rate_limits.as_deref(),
            );
            Attempt::Delivered
        }
        Ok(response) if response.status == 429 => {
            inner.rate_limits.record(
                &meta.public_key,
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

async fn deliver(inner: &Inner, job: Job) {
    let Job { id, meta, body } = job;
    let destination = Destination {
        base: meta.base.clone(),
        public_key: meta.public_key.clone(),
        project_id: meta.project_id,
        dsn: meta.dsn.clone(),
    };
    let client = ClientMeta {
        sentry_client: meta.sentry_client.clone(),
        user_agent: meta.user_agent.clone(),
    };
    // Compressed once here, not once per attempt.
    let body = match inner.forwarder.prepare(body) {
        Ok(body) => body,
        Err(error) => {
            inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %error, "envelope cannot be prepared for the upstream; dropped");
            inner.finish(id, Completion::Dropped);
            return;
        }
    };
    let max_attempts = inner.settings.max_attempts.max(1);
    let mut attempt = 0;
    let mut first_failure: Option<&'static str> = None;
    loop {
        let result = inner
            .forwarder
            .send(&destination, &body, &client, meta.event_id.as_deref())
            .await;
        attempt += 1;
        match classify(inner, &meta, result, attempt - 1) {
            Attempt::Delivered => {
                inner.stats.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(first_failure) = first_failure {
                    tracing::debug!(attempts = attempt, first_failure, "delivered after retries");
                }
                inner.consecutive_parks.store(0, Ordering::Relaxed);
                if let Ok(mut pause) = inner.pause_until.lock() {
                    *pause = None;
                }
                inner.finish(id, Completion::Delivered);
                return;
            }
            Attempt::Rejected(status) => {
                inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    status,
                    project_id = meta.project_id,
                    attempts = attempt,
                    first_failure,
                    "upstream rejected an envelope; not retried"
                );
                inner.finish(id, Completion::Dropped);
                return;
            }
            Attempt::Retry {
                after,
                rate_limited,
                reason,
            } => {
                first_failure.get_or_insert(reason);
                let max_wait = Duration::from_secs(inner.settings.max_rate_limit_wait_secs);
                if rate_limited && (after > max_wait || attempt >= max_attempts) {
                    inner
                        .stats
                        .rate_limited_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        project_id = meta.project_id,
                        attempts = attempt,
                        first_failure,
                        "rate limited by the upstream; envelope dropped"
                    );
                    inner.finish(id, Completion::Dropped);
                    return;
                }
                if attempt >= max_attempts || inner.stopping.load(Ordering::SeqCst) {
                    tracing::warn!(
                        project_id = meta.project_id,
                        attempts = attempt,
                        first_failure,
                        "delivery failed; envelope parked in the spool"
                    );
                    park(inner, id);
                    return;
                }
                inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(after).await;
            }
        }
    }
}

/// Leaves the envelope on disk for the replayer and pauses replaying a little longer after
/// each consecutive failure (1 s doubling up to `max_backoff_secs`).
fn park(inner: &Inner, id: RecordId) {
    inner.stats.parked.fetch_add(1, Ordering::Relaxed);
    inner.backlog.store(true, Ordering::SeqCst);
    let parks = inner.consecutive_parks.fetch_add(1, Ordering::Relaxed);
    let pause = Duration::from_secs(1u64 << parks.min(10))
        .min(Duration::from_secs(inner.settings.max_backoff_secs.max(1)));
    if let Ok(mut until) = inner.pause_until.lock() {
        *until = Some(Instant::now() + pause);
    }
    tracing::debug!(pause_ms = pause.as_millis() as u64, "replayer paused");
    inner.unmark_busy(id);
}

/// A full look at the spool's index at least this often, even without a known backlog (a
/// missed flag): cheap insurance.
const SAFETY_SCAN: Duration = Duration::from_secs(30);
/// Expiry needs no precision; walking a large spool index for it every tick would.
const EXPIRY_SCAN: Duration = Duration::from_secs(60);

async fn replay(inner: Arc<Inner>, queue: mpsc::Sender<Job>) {
    let interval = Duration::from_millis(inner.settings.replay_interval_ms.max(10));
    let mut last_scan = Instant::now();
    let mut last_expiry: Option<Instant> = None;
    loop {
        let _ = tokio::time::timeout(interval, inner.wake_replayer.notified()).await;
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        // An idle proxy gives back its last, fully completed segment.
        inner.spool.maintain();
        let backlog = inner.backlog.load(Ordering::SeqCst);
        let expiry_due = last_expiry.is_none_or(|t| t.elapsed() >= EXPIRY_SCAN);
        if !backlog && !expiry_due && last_scan.elapsed() < SAFETY_SCAN {
            continue;
        }
        let busy = inner.busy_snapshot();
        if expiry_due {
            last_expiry = Some(Instant::now());
            expire(&inner, &busy).await;
        }
        if inner.paused() {
            continue;
        }
        let room = queue.capacity();
        if room == 0 {
            continue;
        }
        last_scan = Instant::now();
        // Cleared before listing: anything spooled from now on sets it again.
        inner.backlog.store(false, Ordering::SeqCst);
        let ids = inner.spool.oldest(&busy, room);
        if ids.len() >= room {
            // More may be waiting behind these.
            inner.backlog.store(true, Ordering::SeqCst);
        }
        for id in ids {
            // The list may be stale: claim the id first, then read. A worker completes a
            // delivered record before it releases the id, so a claim that succeeds after
            // delivery finds it no longer pending, and a record still being delivered
            // cannot be claimed.
            if !inner.claim(id) {
                continue;
            }
            let read = {
                let inner = Arc::clone(&inner);
                tokio::task::spawn_blocking(move || inner.spool.read(id)).await
            };
            let spooled = match read {
                Ok(Ok(spooled)) => spooled,
                Ok(Err(SpoolError::Corrupt)) => {
                    tracing::error!(record = %id, "corrupt spool record dropped");
                    inner.finish(id, Completion::Dropped);
                    continue;
                }
                _ => {
                    inner.unmark_busy(id);
                    continue;
                }
            };
            let job = Job {
                id: spooled.id,
                meta: spooled.meta,
                body: spooled.body,
            };
            if let Err(error) = queue.try_send(job) {
                let job = match error {
                    mpsc::error::TrySendError::Full(job)
                    | mpsc::error::TrySendError::Closed(job) => job,
                };
                inner.unmark_busy(job.id);
                inner.backlog.store(true, Ordering::SeqCst);
                break;
            }
            inner.stats.replayed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn expire(inner: &Arc<Inner>, busy: &HashSet<RecordId>) {
    let expired = {
        let inner = Arc::clone(inner);
        let busy = busy.clone();
        tokio::task::spawn_blocking(move || inner.spool.expire(&busy))
            .await
            .unwrap_or(0)
    };
    if expired > 0 {
        inner
            .stats
            .expired
            .fetch_add(expired as u64, Ordering::Relaxed);
        tracing::warn!(expired, "spooled envelopes expired undelivered");
    }
}
