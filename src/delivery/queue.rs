//! The delivery scheduler: one queue and one breaker per destination, and the choice of
//! what to send next. Pure bookkeeping under one mutex, no I/O and no clock of its own, so
//! the fairness rules are unit-tested directly.
//!
//! Per destination there are two kinds of work:
//! - fresh: envelopes committed while the destination is healthy, kept in memory with
//!   their bodies (at most `delivery.queue_capacity` over all destinations; beyond that,
//!   and whenever the breaker is not closed, they wait on disk like the backlog);
//! - backlog: ids of spooled envelopes (parked, found at start, spilled), oldest first;
//!   their bodies are read from the spool when they are sent.
//!
//! [`Scheduler::next`] walks the destinations round-robin, so each one with work gets a turn
//! in order, and within a destination alternates between fresh work and backlog when both
//! wait: a huge backlog costs fresh envelopes at most every other slot, never a place
//! behind it. A destination sends at most its share of `delivery.workers` at a time (the
//! workers divided by the destinations that have work, at least 1), so a failing one
//! cannot take the slots of a healthy one; an open breaker sends nothing but its probe.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use super::breaker::{Admit, Breaker, State, Transition};
use crate::spool::{RecordId, SpoolMeta};

/// What identifies "an upstream that can fail on its own": the upstream's origin (scheme,
/// host, port, path prefix: one server or load balancer) and the upstream project on it
/// (Sentry rejects, rate limits and fails per project too). The key is not part of it: two
/// SDK keys sending to the same upstream project share its fate. No credentials in it (the
/// base never carries any), so it may be logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DestKey {
    pub base: String,
    pub project_id: u64,
}

impl DestKey {
    /// `host[:port]` of the base, for log lines; never a path or credentials.
    pub(crate) fn host(&self) -> String {
        match url::Url::parse(&self.base) {
            Ok(url) => match (url.host_str(), url.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                (None, _) => "unknown".to_owned(),
            },
            Err(_) => "file-sink".to_owned(),
        }
    }
}

/// Body bytes the in-memory queues may hold together; beyond it a committed envelope waits
/// in the spool (read back when its turn comes, usually from the page cache).
pub(crate) const FRESH_BYTES_CAP: usize = 16 * 1024 * 1024;

/// A spooled envelope with its body in memory.
#[derive(Debug)]
pub(crate) struct Job {
    pub id: RecordId,
    pub meta: SpoolMeta,
    pub body: Bytes,
}

#[derive(Debug)]
pub(crate) enum Source {
    Fresh(Box<Job>),
    /// Read from the spool by the worker.
    Spooled(RecordId),
}

/// One unit of work handed to a worker.
#[derive(Debug)]
pub(crate) struct Work {
    pub key: DestKey,
    pub source: Source,
    /// The probe of a half-open breaker: one attempt, no retries.
    pub probe: bool,
}

impl Work {
    pub(crate) fn id(&self) -> RecordId {
        match &self.source {
            Source::Fresh(job) => job.id,
            Source::Spooled(id) => *id,
        }
    }
}

/// How a worker gives its envelope back.
#[derive(Debug)]
pub(crate) enum Release {
    /// Completed in the spool (delivered, dropped, expired) or no longer pending.
    Done,
    /// Still pending: back to the destination's backlog (on disk).
    Park,
    /// Its project is no longer configured: kept aside until the config changes or it
    /// expires.
    Unroutable { project_id: u64 },
    /// The current config sends it elsewhere: queued there instead, not sent here.
    Moved(DestKey, Box<Job>),
    /// It could not be read: classified again (the classifier retries at its own pace).
    Reclassify,
}

#[derive(Debug)]
struct DestQueue {
    fresh: VecDeque<Box<Job>>,
    backlog: BTreeSet<RecordId>,
    in_flight: usize,
    breaker: Breaker,
    /// Whose turn it is when both fresh work and backlog wait.
    backlog_turn: bool,
}

impl DestQueue {
    fn has_work(&self) -> bool {
        !self.fresh.is_empty() || !self.backlog.is_empty() || self.in_flight > 0
    }
}

/// Per-destination numbers for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationGauge {
    /// The upstream project id (from the config); destinations on different hosts with the
    /// same project id are summed.
    pub project_id: u64,
    /// Envelopes waiting or in flight for it.
    pub pending: u64,
    /// 1 while the breaker is open or half-open.
    pub breaker_open: u64,
}

/// Everything the delivery service keeps about envelopes it has not finished.
#[derive(Debug)]
pub(crate) struct Scheduler {
    queues: HashMap<DestKey, DestQueue>,
    /// Round-robin order of the destinations.
    ring: VecDeque<DestKey>,
    /// Ids a worker or a reservation owns (reserved, fresh in memory, in flight): never
    /// expired, never handed out twice.
    busy: HashSet<RecordId>,
    fresh_total: usize,
    /// Body bytes of the fresh jobs: they are capped too ([`FRESH_BYTES_CAP`]), since
    /// `queue_capacity` large envelopes would otherwise hold gigabytes in memory.
    fresh_bytes: usize,
    in_flight: usize,
    workers: usize,
    fresh_capacity: usize,
    threshold: u32,
    max_cooldown: std::time::Duration,
    /// Spooled ids whose destination is not known yet (found at start; unroutable ones
    /// after a config change). Oldest first.
    unclassified: VecDeque<RecordId>,
    /// Envelopes of projects no longer in the config.
    unroutable: BTreeSet<RecordId>,
    /// Project ids already logged as unroutable (one line each per config).
    warned: HashSet<u64>,
    /// Breaker changes since the last [`Scheduler::take_events`], for logs.
    events: Vec<(DestKey, Transition)>,
}

impl Scheduler {
    pub(crate) fn new(
        workers: usize,
        fresh_capacity: usize,
        threshold: u32,
        max_cooldown: std::time::Duration,
    ) -> Self {
        Self {
            queues: HashMap::new(),
            ring: VecDeque::new(),
            busy: HashSet::new(),
            fresh_total: 0,
            fresh_bytes: 0,
            in_flight: 0,
            workers: workers.max(1),
            fresh_capacity: fresh_capacity.max(1),
            threshold,
            max_cooldown,
            unclassified: VecDeque::new(),
            unroutable: BTreeSet::new(),
            warned: HashSet::new(),
            events: Vec::new(),
        }
    }

    fn queue(&mut self, key: &DestKey) -> &mut DestQueue {
        if !self.queues.contains_key(key) {
            self.ring.push_back(key.clone());
        }
        let (threshold, max_cooldown) = (self.threshold, self.max_cooldown);
        self.queues.entry(key.clone()).or_insert_with(|| DestQueue {
            fresh: VecDeque::new(),
            backlog: BTreeSet::new(),
            in_flight: 0,
            breaker: Breaker::new(threshold, max_cooldown),
            backlog_turn: false,
        })
    }

    /// A reservation owns `id` until it is committed or dropped.
    pub(crate) fn reserve(&mut self, id: RecordId) {
        self.busy.insert(id);
    }

    /// `id` is finished and nobody holds it any more.
    pub(crate) fn forget(&mut self, id: RecordId) {
        self.busy.remove(&id);
    }

    /// A committed envelope: queued in memory if its destination is healthy and there is
    /// room, else left on disk in the backlog.
    pub(crate) fn push_fresh(&mut self, key: &DestKey, job: Box<Job>) {
        let full = self.fresh_total >= self.fresh_capacity
            || self.fresh_bytes.saturating_add(job.body.len()) > FRESH_BYTES_CAP;
        let queue = self.queue(key);
        if full || !queue.breaker.is_closed() {
            queue.backlog.insert(job.id);
            self.busy.remove(&job.id);
        } else {
            let bytes = job.body.len();
            queue.fresh.push_back(job);
            self.fresh_total += 1;
            self.fresh_bytes += bytes;
        }
    }

    /// A spooled envelope now known to go to `key`.
    pub(crate) fn push_backlog(&mut self, key: &DestKey, id: RecordId) {
        self.queue(key).backlog.insert(id);
    }

    pub(crate) fn add_unclassified(&mut self, ids: impl IntoIterator<Item = RecordId>) {
        self.unclassified.extend(ids);
    }

    /// Up to `limit` ids to classify, oldest first.
    pub(crate) fn take_unclassified(&mut self, limit: usize) -> Vec<RecordId> {
        let n = limit.min(self.unclassified.len());
        self.unclassified.drain(..n).collect()
    }

    /// Keeps `id` aside for a project missing from the config; true the first time this
    /// project id is seen (log it once, not per envelope).
    pub(crate) fn park_unroutable(&mut self, id: RecordId, project_id: u64) -> bool {
        self.busy.remove(&id);
        self.unroutable.insert(id);
        self.warned.insert(project_id)
    }

    pub(crate) fn unroutable_len(&self) -> usize {
        self.unroutable.len()
    }

    /// The config changed: look at the unroutable envelopes again.
    pub(crate) fn config_changed(&mut self) {
        let ids = std::mem::take(&mut self.unroutable);
        self.unclassified.extend(ids);
        self.warned.clear();
    }

    pub(crate) fn busy(&self) -> HashSet<RecordId> {
        self.busy.clone()
    }

    pub(crate) fn fresh_total(&self) -> usize {
        self.fresh_total
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Forgets ids that are no longer pending in the spool (expired underneath us).
    pub(crate) fn retain_pending(&mut self, pending: &HashSet<RecordId>) {
        for queue in self.queues.values_mut() {
            queue.backlog.retain(|id| pending.contains(id));
        }
        self.unroutable.retain(|id| pending.contains(id));
        self.unclassified.retain(|id| pending.contains(id));
    }

    /// The next envelope to send, if a worker slot and a destination allow one. While
    /// `draining` (shutdown), only fresh work is handed out; the backlog stays on disk.
    pub(crate) fn next(&mut self, now: Instant, draining: bool) -> Option<Work> {
        if self.in_flight >= self.workers || (draining && self.fresh_total == 0) {
            return None;
        }
        // Destinations with an open breaker send at most their probe: they do not count.
        let active = self
            .queues
            .values()
            .filter(|q| q.has_work() && q.breaker.is_closed())
            .count()
            .max(1);
        let share = (self.workers / active).max(1);
        for _ in 0..self.ring.len() {
            let key = self.ring.pop_front()?;
            self.ring.push_back(key.clone());
            let Some(queue) = self.queues.get_mut(&key) else {
                continue;
            };
            let has_backlog = !draining && !queue.backlog.is_empty();
            if queue.fresh.is_empty() && !has_backlog {
                continue;
            }
            let mut transition = None;
            let admit = queue
                .breaker
                .admit(now, queue.in_flight, share, &mut transition);
            if let Some(transition) = transition {
                self.events.push((key.clone(), transition));
            }
            let Some(admit) = admit else {
                continue;
            };
            let from_backlog = match (queue.fresh.is_empty(), has_backlog) {
                (false, true) => {
                    let backlog = queue.backlog_turn;
                    queue.backlog_turn = !backlog;
                    backlog
                }
                (true, _) => true,
                (false, false) => false,
            };
            let source = if from_backlog {
                let id = queue.backlog.pop_first()?;
                self.busy.insert(id);
                Source::Spooled(id)
            } else {
                let job = queue.fresh.pop_front()?;
                self.fresh_total -= 1;
                self.fresh_bytes = self.fresh_bytes.saturating_sub(job.body.len());
                Source::Fresh(job)
            };
            queue.in_flight += 1;
            self.in_flight += 1;
            return Some(Work {
                key,
                source,
                probe: admit == Admit::Probe,
            });
        }
        None
    }

    /// The upstream of `key` answered: closes its breaker.
    pub(crate) fn reached(&mut self, key: &DestKey) {
        if let Some(transition) = self.queue(key).breaker.success() {
            self.events.push((key.clone(), transition));
        }
    }

    /// An attempt to `key` failed; returns whether its breaker is still closed (retrying
    /// makes sense). An opening breaker moves the destination's fresh work to disk.
    pub(crate) fn failed(&mut self, key: &DestKey, now: Instant) -> bool {
        let transition = self.queue(key).breaker.failure(now);
        self.after_breaker_change(key, transition)
    }

    /// An envelope for `key` used up its attempts: open the breaker.
    pub(crate) fn trip(&mut self, key: &DestKey, now: Instant) {
        let transition = self.queue(key).breaker.trip(now);
        self.after_breaker_change(key, transition);
    }

    pub(crate) fn is_closed(&mut self, key: &DestKey) -> bool {
        self.queue(key).breaker.is_closed()
    }

    fn after_breaker_change(&mut self, key: &DestKey, transition: Option<Transition>) -> bool {
        if let Some(transition) = transition {
            self.events.push((key.clone(), transition));
        }
        let queue = self.queue(key);
        if queue.breaker.is_closed() {
            return true;
        }
        let spilled: Vec<Box<Job>> = queue.fresh.drain(..).collect();
        for job in &spilled {
            queue.backlog.insert(job.id);
        }
        self.fresh_total -= spilled.len();
        let spilled_bytes: usize = spilled.iter().map(|job| job.body.len()).sum();
        self.fresh_bytes = self.fresh_bytes.saturating_sub(spilled_bytes);
        for job in spilled {
            self.busy.remove(&job.id);
        }
        false
    }

    /// A worker is done with `work`'s slot. True when the envelope is the first of its
    /// project found unroutable under this config (the caller logs that once).
    pub(crate) fn release(
        &mut self,
        key: &DestKey,
        id: RecordId,
        probe: bool,
        release: Release,
    ) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        let queue = self.queue(key);
        queue.in_flight = queue.in_flight.saturating_sub(1);
        if probe {
            // A probe that got an answer or failed has moved the breaker on already; one
            // that was gone, moved, unreadable or never finished lets the next one probe.
            queue.breaker.abandon_probe();
        }
        match release {
            Release::Done => {
                self.busy.remove(&id);
            }
            Release::Park => {
                queue.backlog.insert(id);
                self.busy.remove(&id);
            }
            Release::Unroutable { project_id } => return self.park_unroutable(id, project_id),
            Release::Moved(to, job) => self.push_fresh(&to, job),
            Release::Reclassify => {
                self.busy.remove(&id);
                self.unclassified.push_back(id);
            }
        }
        false
    }

    /// Breaker changes since the last call.
    pub(crate) fn take_events(&mut self) -> Vec<(DestKey, Transition)> {
        std::mem::take(&mut self.events)
    }

    /// The earliest moment an open breaker lets a probe through.
    pub(crate) fn next_reopen(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter(|q| !q.backlog.is_empty() || !q.fresh.is_empty())
            .filter_map(|q| q.breaker.reopens_at())
            .min()
    }

    /// Per-destination numbers, keyed and summed by upstream project id.
    pub(crate) fn gauges(&self) -> Vec<DestinationGauge> {
        let mut out: BTreeMap<u64, DestinationGauge> = BTreeMap::new();
        for (key, queue) in &self.queues {
            let gauge = out.entry(key.project_id).or_insert(DestinationGauge {
                project_id: key.project_id,
                ..DestinationGauge::default()
            });
            gauge.pending += (queue.fresh.len() + queue.backlog.len() + queue.in_flight) as u64;
            if !matches!(queue.breaker.state(), State::Closed) {
                gauge.breaker_open = 1;
            }
        }
        out.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(project_id: u64) -> DestKey {
        DestKey {
            base: format!("http://127.0.0.1:{}", 9000 + project_id),
            project_id,
        }
    }

    fn id(n: u64) -> RecordId {
        RecordId {
            segment: 0,
            offset: n,
        }
    }

    fn job(n: u64) -> Box<Job> {
        Box::new(Job {
            id: id(n),
            meta: SpoolMeta {
                base: String::new(),
                public_key: String::new(),
                project_id: 0,
                dsn: String::new(),
                sentry_client: None,
                user_agent: None,
                event_id: None,
                categories: Vec::new(),
                sdk_public_key: None,
                sdk_project_id: None,
            },
            body: Bytes::new(),
        })
    }

    fn ids(work: &[Work]) -> Vec<(u64, u64)> {
        work.iter()
            .map(|w| (w.key.project_id, w.id().offset))
            .collect()
    }

    #[test]
    fn destinations_take_turns_and_fresh_alternates_with_backlog() {
        let now = Instant::now();
        let mut s = Scheduler::new(100, 100, 3, Duration::from_secs(1));
        for n in 0..5 {
            s.push_backlog(&key(1), id(n));
        }
        for n in 10..13 {
            s.reserve(id(n));
            s.push_fresh(&key(1), job(n));
        }
        s.reserve(id(20));
        s.push_fresh(&key(2), job(20));
        let taken: Vec<Work> = std::iter::from_fn(|| s.next(now, false)).collect();
        assert_eq!(
            ids(&taken),
            [
                (1, 10), // fresh …
                (2, 20), // … the other destination's turn …
                (1, 0),  // … backlog …
                (1, 11), // … fresh again
                (1, 1),
                (1, 12),
                (1, 2),
                (1, 3),
                (1, 4),
            ]
        );
        assert_eq!(s.in_flight(), 9);
        assert_eq!(s.fresh_total(), 0);
    }

    #[test]
    fn a_failing_destination_gets_its_share_then_only_probes() {
        let start = Instant::now();
        let mut s = Scheduler::new(4, 100, 2, Duration::from_secs(1));
        for n in 0..100 {
            s.push_backlog(&key(1), id(n));
        }
        for n in 100..110 {
            s.reserve(id(n));
            s.push_fresh(&key(2), job(n));
        }
        let taken: Vec<Work> = std::iter::from_fn(|| s.next(start, false)).collect();
        let dead = taken.iter().filter(|w| w.key == key(1)).count();
        assert_eq!(dead, 2, "half of 4 workers for each of 2 destinations");
        assert_eq!(taken.len(), 4);
        // The dead one fails twice: open. Its work goes back to disk.
        let mut healthy = 0;
        for w in taken {
            if w.key == key(1) {
                s.failed(&key(1), start);
                s.release(&w.key, w.id(), false, Release::Park);
            } else {
                healthy += 1;
                s.reached(&w.key);
                s.release(&w.key, w.id(), false, Release::Done);
            }
        }
        assert!(!s.is_closed(&key(1)));
        while let Some(w) = s.next(start, false) {
            assert_eq!(
                w.key,
                key(2),
                "nothing but the healthy destination while open"
            );
            healthy += 1;
            s.reached(&w.key);
            s.release(&w.key, w.id(), false, Release::Done);
        }
        assert_eq!(healthy, 10, "the healthy destination is never held up");
        // After the cool-down: exactly one probe.
        let later = start + Duration::from_secs(1);
        let probe = s.next(later, false).unwrap();
        assert!(probe.probe);
        assert_eq!(probe.key, key(1));
        assert!(s.next(later, false).is_none());
        s.reached(&probe.key);
        s.release(&probe.key, probe.id(), true, Release::Done);
        assert!(s.is_closed(&key(1)));
        assert_eq!(s.next(later, false).map(|w| w.probe), Some(false));
        let events: Vec<Transition> = s.take_events().into_iter().map(|(_, t)| t).collect();
        assert_eq!(
            events,
            [
                Transition::Opened {
                    failures: 2,
                    cooldown: Duration::from_secs(1)
                },
                Transition::HalfOpened,
                Transition::Closed
            ]
        );
    }

    #[test]
    fn queued_bodies_are_capped_in_bytes_and_the_rest_waits_on_disk() {
        let mut s = Scheduler::new(8, 1000, 1, Duration::from_secs(1));
        let big = |n| {
            let mut job = job(n);
            job.body = Bytes::from(vec![b'x'; FRESH_BYTES_CAP / 3]);
            job
        };
        for n in 0..5 {
            s.reserve(id(n));
            s.push_fresh(&key(1), big(n));
        }
        assert_eq!(
            s.fresh_total(),
            3,
            "three thirds of the cap fit, the rest waits on disk"
        );
        assert_eq!(s.fresh_bytes, 3 * (FRESH_BYTES_CAP / 3));
        let work = s.next(Instant::now(), false).map(|w| w.source);
        assert!(matches!(work, Some(Source::Fresh(_))));
        assert_eq!(s.fresh_bytes, 2 * (FRESH_BYTES_CAP / 3));
    }

    #[test]
    fn an_opening_breaker_spills_fresh_work_to_disk_and_draining_takes_only_fresh() {
        let now = Instant::now();
        let mut s = Scheduler::new(8, 2, 1, Duration::from_secs(1));
        for n in 0..3 {
            s.reserve(id(n));
            s.push_fresh(&key(1), job(n));
        }
        assert_eq!(s.fresh_total(), 2, "beyond queue_capacity it waits on disk");
        assert!(!s.busy().contains(&id(2)));
        assert!(!s.failed(&key(1), now));
        assert_eq!(s.fresh_total(), 0);
        assert!(
            s.busy().is_empty(),
            "spilled envelopes may be expired again"
        );
        s.reserve(id(9));
        s.push_fresh(&key(2), job(9));
        s.push_backlog(&key(2), id(8));
        let w = s.next(now, true).unwrap();
        assert_eq!(w.id(), id(9));
        assert!(
            s.next(now, true).is_none(),
            "draining leaves the backlog on disk"
        );
        assert_eq!(
            s.gauges()[0],
            DestinationGauge {
                project_id: 1,
                pending: 3,
                breaker_open: 1
            }
        );
    }

    #[test]
    fn unroutable_envelopes_are_logged_once_per_project_and_retried_on_config_change() {
        let mut s = Scheduler::new(8, 8, 1, Duration::from_secs(1));
        assert!(s.park_unroutable(id(1), 5));
        assert!(!s.park_unroutable(id(2), 5));
        assert_eq!(s.unroutable_len(), 2);
        s.retain_pending(&[id(2)].into_iter().collect());
        assert_eq!(s.unroutable_len(), 1, "expired ones are forgotten");
        s.config_changed();
        assert_eq!(s.take_unclassified(10), [id(2)]);
        assert!(
            s.park_unroutable(id(2), 5),
            "logged again under the new config"
        );
    }
}
