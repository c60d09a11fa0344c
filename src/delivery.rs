//! Asynchronous delivery, per destination. Once an envelope is scrubbed it is written to the
//! [`Spool`] as a [`Reservation`]; committing it (after the request's audit record is safe)
//! queues it, and the SDK gets its 200. Dropping the reservation instead completes the
//! record as dropped: it is never sent, also not after a restart.
//!
//! # Destinations
//!
//! Where an envelope goes is decided when it is sent, not when it was accepted: the spool
//! record names the configured project (the SDK's key and project id), and each send looks
//! that project up in the config current at that moment and asks the [`Forwarder`] for its
//! [`Destination`]; the envelope header's `dsn` (and `trace.public_key`) are rewritten for
//! it ([`crate::forward::rewrite_header_for`], only the header line changes). So a corrected
//! `upstream.url` or `upstream_dsn` also redirects the backlog after a restart or reload.
//! Records of older versions carry no project and go to their stored destination. An
//! envelope whose project is no longer configured is set aside (one WARN per project id,
//! no requests, no retries) and expires after `spool.max_age_secs`, unless a config change
//! brings its project back.
//!
//! A destination is the upstream origin plus the upstream project ([`queue::DestKey`]):
//! the unit that fails on its own. Each has its own queue, its own share of
//! `delivery.workers` and its own circuit breaker ([`breaker`]): after consecutive failures
//! it opens, its envelopes wait on disk and only one probe per cool-down (1 s doubling to
//! `max_backoff_secs`) is sent until one gets through. Destinations take turns
//! round-robin, and within one, fresh envelopes alternate with the spooled backlog
//! ([`queue`]), so a dead upstream with a huge backlog neither takes a healthy one's
//! workers nor makes fresh envelopes wait behind old ones.
//!
//! # One envelope
//!
//! - 2xx: delivered, a completion is appended to the spool (its segment is deleted once
//!   everything in it is complete).
//! - connect error, timeout, 5xx, garbage: a failure for the breaker; retried with
//!   exponential backoff and jitter up to `max_attempts` while the breaker stays closed,
//!   then parked on disk (in its destination's backlog) and the breaker opens.
//! - 429: the limits are remembered (the SDK is answered 429 for those categories from then
//!   on); the envelope is retried once the limit has passed if that is within
//!   `max_rate_limit_wait_secs` and attempts remain, else dropped like Relay drops
//!   rate-limited data: it is over quota, and keeping it would only replay it into the
//!   same limit.
//! - other 4xx: final, completed as dropped; the rejection is logged and counted.
//!
//! Any answer of the upstream (2xx, 4xx, 429) closes the breaker: it is reachable. The
//! body is compressed for the upstream once per send, not once per attempt. At start every
//! pending spool record is classified (its metadata read) into its destination's backlog
//! in the background, oldest first, while fresh envelopes already flow. On shutdown the
//! in-memory queues drain until the deadline; everything else is already on disk, and is
//! delivered at least once after the next start.

mod breaker;
mod queue;
mod send;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::forward::rate_limits::RateLimits;
use crate::forward::{Destination, Forwarder};
use crate::spool::{Completion, RecordId, Spool, SpoolError, SpoolMeta};

use breaker::Transition;
pub use queue::DestinationGauge;
use queue::{DestKey, Job, Scheduler};

/// `[delivery]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// `async` (spool, answer 200 at once, forward in the background) or `sync` (forward,
    /// then answer with the upstream's status). Projects may override it.
    pub mode: DeliveryMode,
    /// Concurrent upstream requests, shared among the destinations that have work.
    pub workers: usize,
    /// Envelopes waiting in memory over all destinations; beyond it they wait on disk in
    /// their destination's backlog.
    pub queue_capacity: usize,
    /// Attempts per envelope before it is parked on disk (or dropped, when rate limited);
    /// also the consecutive failures that open a destination's breaker.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    /// Cap of the retry backoff and of a breaker's cool-down between probes.
    pub max_backoff_secs: u64,
    /// A 429 whose limit ends within this is waited out and retried; longer ones drop.
    pub max_rate_limit_wait_secs: u64,
    /// How often the dispatcher does its housekeeping (idle segment clean-up, metrics
    /// gauges) when nothing else wakes it.
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
    /// Envelopes committed (acknowledged to the SDK).
    pub accepted: AtomicU64,
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub parked: AtomicU64,
    pub rejected: AtomicU64,
    pub rate_limited_dropped: AtomicU64,
    pub expired: AtomicU64,
    /// Envelopes sent from the spooled backlog.
    pub replayed: AtomicU64,
    /// Reservations dropped without commit: spooled, never delivered.
    pub abandoned: AtomicU64,
    /// Breaker openings (closed → open and failed probes).
    pub breaker_opened: AtomicU64,
    /// Envelopes set aside because their project is no longer configured (a gauge).
    pub unroutable: AtomicU64,
    /// Per-destination pending envelopes and breaker state, refreshed by the dispatcher
    /// (at most `delivery.replay_interval_ms` old).
    pub destinations: Mutex<Vec<DestinationGauge>>,
}

/// Why an envelope could not be accepted for delivery.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("spool is full")]
    SpoolFull,
    #[error("cannot write to the spool")]
    Spool(#[source] SpoolError),
}

/// A spooled envelope that is not yet queued: [`Reservation::commit`] queues it, dropping
/// it completes the record as dropped, so an envelope whose request fails after the spool
/// write (its audit record could not be written, the client went away) is never sent. The
/// replayer never picks up a reserved record.
#[must_use = "an uncommitted reservation is dropped: the envelope is never delivered"]
pub struct Reservation {
    inner: Arc<Inner>,
    job: Option<Box<Job>>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("record", &self.job.as_ref().map(|job| job.id))
            .finish()
    }
}

impl Reservation {
    /// Makes the envelope deliverable and queues it for its destination.
    ///
    /// # Errors
    /// The spool could not release the record; the reservation is then dropped (the
    /// envelope is not delivered, the SDK should be told to retry).
    pub fn commit(mut self) -> Result<(), AcceptError> {
        let Some(job) = self.job.take() else {
            return Ok(());
        };
        if let Err(error) = self.inner.spool.release(job.id) {
            self.job = Some(job);
            return Err(AcceptError::Spool(error));
        }
        self.inner.stats.accepted.fetch_add(1, Ordering::Relaxed);
        self.inner.enqueue(job);
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            // One small append, as for any completion.
            self.inner.spool.complete(job.id, Completion::Dropped);
            self.inner.scheduler().forget(job.id);
            self.inner.stats.abandoned.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(record = %job.id, "reservation dropped; envelope will not be delivered");
        }
    }
}

struct Inner {
    forwarder: Forwarder,
    spool: Spool,
    settings: DeliverySettings,
    /// The live config (shared with the server): destinations are resolved from it.
    config: Arc<ArcSwap<Config>>,
    rate_limits: Arc<RateLimits>,
    scheduler: Mutex<Scheduler>,
    stats: DeliveryStats,
    /// Set on shutdown: take only in-memory work, leave the backlog on disk.
    draining: AtomicBool,
    /// Set when the shutdown deadline passed: workers stop retrying.
    stopping: AtomicBool,
    /// Something changed (work queued, a slot freed, shutdown): the dispatcher looks again.
    wake: tokio::sync::Notify,
    /// Records a classification task is reading.
    classifying: AtomicUsize,
}

/// The delivery service. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryService {
    inner: Arc<Inner>,
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
}

/// Where the config sends an envelope now.
enum Route {
    To(Destination),
    /// Its project is no longer configured.
    Missing {
        project_id: u64,
    },
}

/// Resolves `meta`'s destination from `config`: the configured project it was accepted
/// for (same key, same project id), or for records of older versions, the destination
/// stored with it.
fn resolve(forwarder: &Forwarder, config: &Config, meta: &SpoolMeta) -> Route {
    match (&meta.sdk_public_key, meta.sdk_project_id) {
        (Some(key), Some(project_id)) => match config.projects.get(key) {
            Some(project) if project.project_id == project_id => {
                Route::To(forwarder.destination(project))
            }
            _ => Route::Missing { project_id },
        },
        _ => Route::To(Destination {
            base: meta.base.clone(),
            public_key: meta.public_key.clone(),
            project_id: meta.project_id,
            dsn: meta.dsn.clone(),
        }),
    }
}

fn key_of(destination: &Destination) -> DestKey {
    DestKey {
        base: destination.base.clone(),
        project_id: destination.project_id,
    }
}

impl DeliveryService {
    /// Starts the dispatcher; every envelope pending in `spool` is classified into its
    /// destination's backlog in the background.
    pub fn start(
        forwarder: Forwarder,
        spool: Spool,
        settings: DeliverySettings,
        config: Arc<ArcSwap<Config>>,
        rate_limits: Arc<RateLimits>,
    ) -> (Self, DeliveryTasks) {
        let mut scheduler = Scheduler::new(
            settings.workers,
            settings.queue_capacity,
            settings.max_attempts.max(1),
            Duration::from_secs(settings.max_backoff_secs.max(1)),
        );
        // Taken before anything new can be written: every record is either in this list
        // or comes through a reservation.
        scheduler.add_unclassified(spool.oldest(&std::collections::HashSet::new(), usize::MAX));
        let inner = Arc::new(Inner {
            forwarder,
            spool,
            settings,
            config,
            rate_limits,
            scheduler: Mutex::new(scheduler),
            stats: DeliveryStats::default(),
            draining: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            classifying: AtomicUsize::new(0),
        });
        let dispatcher = tokio::spawn(dispatch(Arc::clone(&inner)));
        (Self { inner }, DeliveryTasks { dispatcher })
    }

    pub fn stats(&self) -> &DeliveryStats {
        &self.inner.stats
    }

    pub fn spool(&self) -> &Spool {
        &self.inner.spool
    }

    /// Spools the envelope (the durable acknowledgement) and reserves it: nothing is sent
    /// until the returned [`Reservation`] is committed.
    ///
    /// # Errors
    /// The spool is full or cannot be written; the SDK should retry later.
    pub async fn accept(&self, meta: SpoolMeta, body: Bytes) -> Result<Reservation, AcceptError> {
        let inner = Arc::clone(&self.inner);
        // The reservation is made on the blocking thread: if this request is cancelled
        // while the write runs, the finished task's output (the reservation) is dropped,
        // which completes the record instead of leaving it reserved forever.
        tokio::task::spawn_blocking(move || {
            let id = inner.spool.write(&meta, &body)?;
            // Busy before anyone else can look at it (expiry skips busy records).
            inner.scheduler().reserve(id);
            Ok(Reservation {
                inner,
                job: Some(Box::new(Job { id, meta, body })),
            })
        })
        .await
        .map_err(|error| AcceptError::Spool(SpoolError::Io(std::io::Error::other(error))))?
        .map_err(|error| match error {
            SpoolError::Full => AcceptError::SpoolFull,
            other => AcceptError::Spool(other),
        })
    }

    /// Lets workers finish the in-memory queues until `deadline` (the backlog stays on
    /// disk), then stops; everything undelivered is in the spool for the next start.
    pub async fn shutdown(self, tasks: DeliveryTasks, deadline: Duration) {
        let Self { inner } = self;
        inner.draining.store(true, Ordering::SeqCst);
        inner.wake.notify_one();
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
    fn scheduler(&self) -> MutexGuard<'_, Scheduler> {
        self.scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a committed envelope for the destination the current config gives it.
    fn enqueue(&self, job: Box<Job>) {
        let config = self.config.load();
        match resolve(&self.forwarder, &config, &job.meta) {
            Route::To(destination) => self.scheduler().push_fresh(&key_of(&destination), job),
            Route::Missing { project_id } => {
                // Reloaded away between the request and its commit.
                let first = self.scheduler().park_unroutable(job.id, project_id);
                warn_unroutable(first, project_id);
            }
        }
        self.wake.notify_one();
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

    /// Logs breaker changes (project id and host only: no URL, no credentials) and counts
    /// openings.
    fn log_events(&self, events: Vec<(DestKey, Transition)>) {
        for (key, transition) in events {
            let host = key.host();
            match transition {
                Transition::Opened { failures, cooldown } => {
                    self.stats.breaker_opened.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        project_id = key.project_id,
                        host = %host,
                        failures,
                        cooldown_ms = cooldown.as_millis() as u64,
                        "upstream failing; breaker open, envelopes wait on disk"
                    );
                }
                Transition::Reopened { cooldown } => {
                    self.stats.breaker_opened.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        project_id = key.project_id,
                        host = %host,
                        cooldown_ms = cooldown.as_millis() as u64,
                        "breaker probe failed; open again"
                    );
                }
                Transition::HalfOpened => tracing::debug!(
                    project_id = key.project_id,
                    host = %host,
                    "breaker half-open; probing"
                ),
                Transition::Closed => tracing::info!(
                    project_id = key.project_id,
                    host = %host,
                    "upstream answers again; breaker closed"
                ),
            }
        }
    }

    fn refresh_gauges(&self) {
        let (gauges, unroutable) = {
            let scheduler = self.scheduler();
            (scheduler.gauges(), scheduler.unroutable_len())
        };
        self.stats
            .unroutable
            .store(unroutable as u64, Ordering::Relaxed);
        if let Ok(mut destinations) = self.stats.destinations.lock() {
            *destinations = gauges;
        }
    }
}

fn warn_unroutable(first: bool, project_id: u64) {
    if first {
        tracing::warn!(
            project_id,
            "spooled envelopes for a project no longer in the config; kept until they expire (spool.max_age_secs) or the project returns"
        );
    }
}

/// Expiry needs no precision; walking a large spool index for it every tick would.
const EXPIRY_SCAN: Duration = Duration::from_secs(60);
/// Spool records classified per background read.
const CLASSIFY_BATCH: usize = 256;

/// The one task that hands out work: fills free worker slots from the scheduler, keeps the
/// classification of the spool going, expires old envelopes, and refreshes the gauges.
async fn dispatch(inner: Arc<Inner>) {
    let tick = Duration::from_millis(inner.settings.replay_interval_ms.max(10));
    let mut running = tokio::task::JoinSet::new();
    let mut last_expiry: Option<Instant> = None;
    let mut expiry: Option<JoinHandle<()>> = None;
    let mut config = inner.config.load_full();
    let mut last_maintenance = Instant::now();
    loop {
        let draining = inner.draining.load(Ordering::SeqCst);
        if !draining {
            let current = inner.config.load_full();
            if !Arc::ptr_eq(&current, &config) {
                config = current;
                inner.scheduler().config_changed();
            }
            if inner.classifying.load(Ordering::SeqCst) == 0 {
                let ids = inner.scheduler().take_unclassified(CLASSIFY_BATCH);
                if !ids.is_empty() {
                    inner.classifying.store(ids.len(), Ordering::SeqCst);
                    tokio::spawn(classify_records(Arc::clone(&inner), ids));
                }
            }
            if last_expiry.is_none_or(|t| t.elapsed() >= EXPIRY_SCAN)
                && expiry.as_ref().is_none_or(JoinHandle::is_finished)
            {
                last_expiry = Some(Instant::now());
                expiry = Some(tokio::spawn(expire(Arc::clone(&inner))));
            }
        }
        let now = Instant::now();
        let (events, done, reopen) = {
            let mut scheduler = inner.scheduler();
            while let Some(work) = scheduler.next(now, draining) {
                running.spawn(send::send(Arc::clone(&inner), work));
            }
            let done = draining && scheduler.fresh_total() == 0 && scheduler.in_flight() == 0;
            (scheduler.take_events(), done, scheduler.next_reopen())
        };
        inner.log_events(events);
        inner.refresh_gauges();
        if done {
            break;
        }
        // At least a little: a due probe may be held back by full worker slots, and a
        // freed slot wakes us anyway.
        let wait = reopen
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or(tick)
            .clamp(Duration::from_millis(10), tick);
        tokio::select! {
            () = inner.wake.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            () = tokio::time::sleep(wait) => {}
        }
        while running.try_join_next().is_some() {}
        if last_maintenance.elapsed() >= tick {
            last_maintenance = Instant::now();
            // An idle proxy gives back its last, fully completed segment.
            inner.spool.maintain();
        }
    }
    while running.join_next().await.is_some() {}
    if let Some(expiry) = expiry {
        expiry.abort();
    }
}

/// Reads the metadata of spooled records (found at start, or unroutable before a config
/// change) and files them under their destination.
async fn classify_records(inner: Arc<Inner>, ids: Vec<RecordId>) {
    let reader = Arc::clone(&inner);
    let batch = ids.clone();
    let read = tokio::task::spawn_blocking(move || {
        batch
            .into_iter()
            .map(|id| (id, reader.spool.read(id).map(|spooled| spooled.meta)))
            .collect::<Vec<_>>()
    })
    .await;
    let mut retry = Vec::new();
    let read = match read {
        Ok(read) => read,
        Err(_) => {
            retry = ids;
            Vec::new()
        }
    };
    let config = inner.config.load();
    let mut warn = Vec::new();
    let mut corrupt = Vec::new();
    {
        let mut scheduler = inner.scheduler();
        for (id, meta) in read {
            match meta {
                Ok(meta) => match resolve(&inner.forwarder, &config, &meta) {
                    Route::To(destination) => scheduler.push_backlog(&key_of(&destination), id),
                    Route::Missing { project_id } => {
                        if scheduler.park_unroutable(id, project_id) {
                            warn.push(project_id);
                        }
                    }
                },
                Err(SpoolError::Corrupt) => corrupt.push(id),
                // Completed or expired meanwhile.
                Err(SpoolError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::error!(error = %error, record = %id, "cannot read a spool record; trying again later");
                    retry.push(id);
                }
            }
        }
    }
    if !retry.is_empty() {
        // Not in a tight loop: a spool that cannot be read now is looked at next tick.
        tokio::time::sleep(Duration::from_millis(
            inner.settings.replay_interval_ms.max(10),
        ))
        .await;
        inner.scheduler().add_unclassified(retry);
    }
    for id in corrupt {
        tracing::error!(record = %id, "corrupt spool record dropped");
        inner.spool.complete(id, Completion::Dropped);
    }
    for project_id in warn {
        warn_unroutable(true, project_id);
    }
    inner.classifying.store(0, Ordering::SeqCst);
    inner.wake.notify_one();
}

async fn expire(inner: Arc<Inner>) {
    let worker = Arc::clone(&inner);
    let result = tokio::task::spawn_blocking(move || {
        let busy = worker.scheduler().busy();
        let expired = worker.spool.expire(&busy);
        // What expired may still be listed in a backlog: forget it there.
        let pending = (expired > 0).then(|| {
            worker
                .spool
                .oldest(&std::collections::HashSet::new(), usize::MAX)
                .into_iter()
                .collect::<std::collections::HashSet<_>>()
        });
        if let Some(pending) = &pending {
            worker.scheduler().retain_pending(pending);
        }
        expired
    })
    .await
    .unwrap_or(0);
    if result > 0 {
        inner
            .stats
            .expired
            .fetch_add(result as u64, Ordering::Relaxed);
        tracing::warn!(expired = result, "spooled envelopes expired undelivered");
    }
}
