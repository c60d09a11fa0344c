//! One destination's circuit breaker: the memory of whether an upstream answers, so that
//! an outage costs one probe per cool-down instead of a request per spooled envelope.
//!
//! - closed: envelopes are sent (up to the destination's share of the workers); every
//!   failed attempt (connect error, timeout, 5xx, garbage) counts, any answer that proves
//!   the upstream reachable (2xx, 4xx, 429) resets the count;
//! - open, after `threshold` consecutive failures or when an envelope used up its attempts:
//!   nothing is sent, the destination's envelopes wait on disk;
//! - half-open, once the cool-down has passed: exactly one envelope is sent as a probe. Its
//!   success closes the breaker; its failure opens it again with a doubled cool-down (from
//!   1 s up to `delivery.max_backoff_secs`).
//!
//! Pure state (the caller passes the clock), so it is tested without sleeping.

use std::time::{Duration, Instant};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// The cool-down is over; `probing` while the one probe is in flight.
    HalfOpen {
        probing: bool,
    },
}

/// A state change worth a log line and a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Closed → open after `failures` consecutive failures.
    Opened { failures: u32, cooldown: Duration },
    /// The probe failed: open again, for `cooldown`.
    Reopened { cooldown: Duration },
    /// The cool-down passed; the next envelope is a probe.
    HalfOpened,
    /// An attempt got through: closed again.
    Closed,
}

/// What [`Breaker::admit`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// A normal send, within the destination's share.
    Send,
    /// The one probe of a half-open breaker.
    Probe,
}

#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    state: State,
    /// Consecutive failed attempts while closed.
    failures: u32,
    /// Consecutive openings without a success in between (grows the cool-down).
    opens: u32,
    threshold: u32,
    base_cooldown: Duration,
    max_cooldown: Duration,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures and cools down
    /// for 1 s, doubling per failed probe up to `max_cooldown`.
    pub(crate) fn new(threshold: u32, max_cooldown: Duration) -> Self {
        let max_cooldown = max_cooldown.max(Duration::from_millis(10));
        Self {
            state: State::Closed,
            failures: 0,
            opens: 0,
            threshold: threshold.max(1),
            base_cooldown: Duration::from_secs(1).min(max_cooldown),
            max_cooldown,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// When an open breaker will let a probe through (for the dispatcher's timer).
    pub(crate) fn reopens_at(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Whether one more envelope may be sent now, with `in_flight` of this destination's
    /// already under way and `share` allowed. Moves open → half-open once the cool-down has
    /// passed (reported through `transition`).
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        in_flight: usize,
        share: usize,
        transition: &mut Option<Transition>,
    ) -> Option<Admit> {
        if let State::Open { until } = self.state {
            if now < until {
                return None;
            }
            self.state = State::HalfOpen { probing: false };
            *transition = Some(Transition::HalfOpened);
        }
        match self.state {
            State::Closed => (in_flight < share).then_some(Admit::Send),
            State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Some(Admit::Probe)
            }
            State::HalfOpen { probing: true } | State::Open { .. } => None,
        }
    }

    /// The upstream answered (whatever the status): it is reachable.
    pub(crate) fn success(&mut self) -> Option<Transition> {
        self.failures = 0;
        self.opens = 0;
        let was = std::mem::replace(&mut self.state, State::Closed);
        (was != State::Closed).then_some(Transition::Closed)
    }

    /// An attempt failed for a reason that says the upstream may be down.
    pub(crate) fn failure(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Closed => {
                self.failures = self.failures.saturating_add(1);
                (self.failures >= self.threshold).then(|| self.open(now, false))
            }
            State::HalfOpen { .. } => Some(self.open(now, true)),
            State::Open { .. } => None,
        }
    }

    /// An envelope used up its attempts: stop sending until a probe succeeds, even if other
    /// envelopes got through in between.
    pub(crate) fn trip(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Closed => Some(self.open(now, false)),
            _ => None,
        }
    }

    /// The probe was not sent after all (its envelope was gone or belongs elsewhere now):
    /// the next envelope may probe.
    pub(crate) fn abandon_probe(&mut self) {
        if self.state == (State::HalfOpen { probing: true }) {
            self.state = State::HalfOpen { probing: false };
        }
    }

    fn open(&mut self, now: Instant, reopen: bool) -> Transition {
        let failures = self.failures;
        self.failures = 0;
        let doubling = 1u32 << self.opens.min(16);
        self.opens = self.opens.saturating_add(1);
        let cooldown = self
            .base_cooldown
            .saturating_mul(doubling)
            .min(self.max_cooldown);
        self.state = State::Open {
            until: now + cooldown,
        };
        if reopen {
            Transition::Reopened { cooldown }
        } else {
            Transition::Opened { failures, cooldown }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(
        b: &mut Breaker,
        now: Instant,
        in_flight: usize,
    ) -> (Option<Admit>, Option<Transition>) {
        let mut t = None;
        let a = b.admit(now, in_flight, 4, &mut t);
        (a, t)
    }

    #[test]
    fn opens_after_consecutive_failures_probes_after_cooldown_and_backs_off() {
        let start = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(5));
        assert_eq!(admit(&mut b, start, 3), (Some(Admit::Send), None));
        assert_eq!(admit(&mut b, start, 4), (None, None), "share is the limit");
        assert_eq!(b.failure(start), None);
        assert_eq!(b.success(), None, "a success while closed is no transition");
        assert_eq!(b.failure(start), None);
        assert_eq!(b.failure(start), None);
        assert_eq!(
            b.failure(start),
            Some(Transition::Opened {
                failures: 3,
                cooldown: Duration::from_secs(1)
            })
        );
        assert_eq!(
            admit(&mut b, start + Duration::from_millis(999), 0),
            (None, None)
        );
        let later = start + Duration::from_secs(1);
        assert_eq!(
            admit(&mut b, later, 0),
            (Some(Admit::Probe), Some(Transition::HalfOpened))
        );
        assert_eq!(admit(&mut b, later, 0), (None, None), "one probe at a time");
        // Failed probes double the cool-down up to the cap: 2 s, 4 s, 5 s, 5 s.
        let mut now = later;
        for expected in [2, 4, 5, 5] {
            assert_eq!(
                b.failure(now),
                Some(Transition::Reopened {
                    cooldown: Duration::from_secs(expected)
                })
            );
            now += Duration::from_secs(expected);
            assert_eq!(admit(&mut b, now, 0).0, Some(Admit::Probe));
        }
        assert_eq!(b.success(), Some(Transition::Closed));
        assert_eq!(admit(&mut b, now, 0), (Some(Admit::Send), None));
        // Closed again from scratch: the next opening starts at 1 s.
        b.trip(now);
        assert_eq!(b.reopens_at(), Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_envelope_probe() {
        let now = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(1));
        b.failure(now);
        let later = now + Duration::from_secs(1);
        assert_eq!(admit(&mut b, later, 0).0, Some(Admit::Probe));
        b.abandon_probe();
        assert_eq!(admit(&mut b, later, 0).0, Some(Admit::Probe));
        // Failures of envelopes already in flight while open change nothing.
        b.failure(later);
        assert_eq!(b.failure(later), None);
        assert!(!b.is_closed());
    }
}
