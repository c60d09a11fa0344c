//! The in-flight byte budget: one global cap on the bytes that requests hold at once
//! (received bodies, inflated bodies, the JSON trees and output buffers of scrubbing).
//! Without it, memory grows with the number of connections times the body size: 200
//! connections sending 1 MB bodies took the process to 380 MB. With it, a request first
//! leases the bytes it is about to hold; when the budget is used up it waits a little
//! (`limits.inflight_wait_ms`) and then gets 503 with `Retry-After`, so the SDK keeps the
//! event and sends it again later instead of the proxy running out of memory.
//!
//! Leases are counted in KiB units on a fair (FIFO) semaphore. A request waits only for its
//! first lease (what it expects to hold); growing it later never waits. A single lease never
//! asks for more than the whole budget, so one large request always gets through once
//! everything else has drained.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const UNIT: u64 = 1024;

/// The shared budget. `max_bytes = 0` turns it off (every lease is granted at once).
#[derive(Debug)]
pub struct InflightBudget {
    semaphore: Arc<Semaphore>,
    units: u32,
    wait: Duration,
}

/// Bytes a request holds; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    permit: Option<OwnedSemaphorePermit>,
    units: u32,
}

/// The budget stayed exhausted for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

impl InflightBudget {
    pub fn new(max_bytes: u64, wait: Duration) -> Self {
        let units = u32::try_from(max_bytes.div_ceil(UNIT)).unwrap_or(u32::MAX >> 4);
        let units = units.min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX) >> 1);
        Self {
            semaphore: Arc::new(Semaphore::new(units as usize)),
            units,
            wait,
        }
    }

    fn enabled(&self) -> bool {
        self.units > 0
    }

    /// Bytes currently leased (for the `scrubgate_inflight_bytes` gauge).
    pub fn in_use_bytes(&self) -> u64 {
        let free = self.semaphore.available_permits() as u64;
        (u64::from(self.units).saturating_sub(free)) * UNIT
    }

    fn units_for(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units.max(1))
    }

    /// Leases `bytes` (capped at the whole budget), waiting up to `inflight_wait_ms`.
    ///
    /// # Errors
    /// [`Exhausted`] when the bytes did not become free in time.
    pub async fn lease(&self, bytes: u64) -> Result<Lease, Exhausted> {
        if !self.enabled() {
            return Ok(Lease {
                permit: None,
                units: 0,
            });
        }
        let units = self.units_for(bytes);
        let permit = self.acquire(units).await?;
        Ok(Lease {
            permit: Some(permit),
            units,
        })
    }

    /// Grows `lease` to cover `bytes` in all (capped at the whole budget), without waiting:
    /// a request never waits while it holds bytes (requests that hold and wait can block
    /// each other until all time out).
    ///
    /// # Errors
    /// [`Exhausted`] when the extra bytes are not free right now.
    pub fn try_grow(&self, lease: &mut Lease, bytes: u64) -> Result<(), Exhausted> {
        if !self.enabled() {
            return Ok(());
        }
        let want = self.units_for(bytes);
        if want <= lease.units {
            return Ok(());
        }
        let extra = Arc::clone(&self.semaphore)
            .try_acquire_many_owned(want - lease.units)
            .map_err(|_| Exhausted)?;
        match &mut lease.permit {
            Some(permit) => permit.merge(extra),
            None => lease.permit = Some(extra),
        }
        lease.units = want;
        Ok(())
    }

    async fn acquire(&self, units: u32) -> Result<OwnedSemaphorePermit, Exhausted> {
        let semaphore = Arc::clone(&self.semaphore);
        if let Ok(permit) = Arc::clone(&semaphore).try_acquire_many_owned(units) {
            return Ok(permit);
        }
        match tokio::time::timeout(self.wait, semaphore.acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Exhausted),
        }
    }
}

impl Lease {
    /// Bytes this lease covers.
    pub fn bytes(&self) -> u64 {
        u64::from(self.units) * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[tokio::test]
    async fn leases_wait_then_fail_and_free_bytes_on_drop() {
        let budget = InflightBudget::new(4 * MIB, Duration::from_millis(50));
        let a = budget.lease(3 * MIB).await.unwrap();
        assert_eq!(budget.in_use_bytes(), 3 * MIB);
        assert_eq!(budget.lease(2 * MIB).await.unwrap_err(), Exhausted);
        drop(a);
        assert_eq!(budget.in_use_bytes(), 0);
        let b = budget.lease(2 * MIB).await.unwrap();
        assert_eq!(b.bytes(), 2 * MIB);
    }

    #[tokio::test]
    async fn a_waiting_lease_gets_bytes_freed_during_its_wait() {
        let budget = Arc::new(InflightBudget::new(MIB, Duration::from_secs(5)));
        let held = budget.lease(MIB).await.unwrap();
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.lease(MIB / 2).await.map(|l| l.bytes()) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(MIB / 2));
    }

    #[tokio::test]
    async fn a_lease_larger_than_the_budget_takes_the_whole_budget() {
        let budget = InflightBudget::new(MIB, Duration::from_millis(10));
        let mut lease = budget.lease(10 * MIB).await.unwrap();
        assert_eq!(lease.bytes(), MIB);
        budget.try_grow(&mut lease, 20 * MIB).unwrap();
        assert_eq!(budget.in_use_bytes(), MIB);
    }

    #[tokio::test]
    async fn growing_keeps_what_was_held_when_the_rest_is_not_free() {
        let budget = InflightBudget::new(2 * MIB, Duration::from_millis(10));
        let mut lease = budget.lease(MIB).await.unwrap();
        let _other = budget.lease(MIB).await.unwrap();
        assert_eq!(budget.try_grow(&mut lease, 2 * MIB), Err(Exhausted));
        assert_eq!(lease.bytes(), MIB);
        assert_eq!(budget.in_use_bytes(), 2 * MIB);
    }

    #[tokio::test]
    async fn try_grow_never_waits() {
        let budget = InflightBudget::new(2 * MIB, Duration::from_secs(60));
        let mut lease = budget.lease(MIB).await.unwrap();
        budget.try_grow(&mut lease, MIB + MIB / 2).unwrap();
        assert_eq!(lease.bytes(), MIB + MIB / 2);
        assert_eq!(
            budget.try_grow(&mut lease, 3 * MIB),
            Ok(()),
            "capped at the budget"
        );
        assert_eq!(budget.in_use_bytes(), 2 * MIB);
        drop(lease);
        let mut other = budget.lease(1).await.unwrap();
        let mut third = budget.lease(MIB).await.unwrap();
        budget.try_grow(&mut other, MIB).unwrap();
        assert_eq!(
            budget.try_grow(&mut third, 2 * MIB),
            Err(Exhausted),
            "at once"
        );
        assert_eq!(budget.in_use_bytes(), 2 * MIB);
    }

    #[tokio::test]
    async fn zero_turns_the_budget_off() {
        let budget = InflightBudget::new(0, Duration::from_millis(10));
        let lease = budget.lease(u64::MAX).await.unwrap();
        assert_eq!(lease.bytes(), 0);
        assert_eq!(budget.in_use_bytes(), 0);
    }
}
