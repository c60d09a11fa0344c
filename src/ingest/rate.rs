//! The optional per-project request rate limit (`limits.project_rate_limit_per_sec`): one
//! token bucket per configured public key, checked after the key is authorized and before a
//! byte of the body is read.
//!
//! Buckets exist only for keys that passed authorization, so the map is bounded by the number
//! of configured projects, whatever keys clients make up.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::HeaderMap;

/// Token buckets by project public key.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one token from `key`'s bucket (refilled at `per_sec`, holding at most `burst`).
    /// A rate of 0 means no limit.
    ///
    /// # Errors
    /// The bucket is empty; the error says how long until the next token, in whole seconds
    /// (at least 1), as `Retry-After` wants it.
    pub fn check(&self, key: &str, per_sec: f64, burst: u32, now: Instant) -> Result<(), u64> {
        if per_sec <= 0.0 || !per_sec.is_finite() {
            return Ok(());
        }
        let capacity = f64::from(burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64(((1.0 - bucket.tokens) / per_sec).min(86_400.0));
        Err(wait.as_secs_f64().ceil().max(1.0) as u64)
    }
}

/// Adds `Retry-After` and an all-categories, key-scoped `X-Sentry-Rate-Limits` (protocol §5),
/// so every SDK backs off for `retry_after_secs`.
pub fn add_headers(headers: &mut HeaderMap, retry_after_secs: u64) {
    if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        headers.insert("retry-after", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("{retry_after_secs}::key")) {
        headers.insert("x-sentry-rate-limits", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limiter = RateLimiter::new();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("k", 1.0, 3, start), Ok(()));
        }
        assert_eq!(limiter.check("k", 1.0, 3, start), Err(1));
        assert_eq!(limiter.check("other", 1.0, 3, start), Ok(()));
        let later = start + Duration::from_millis(1100);
        assert_eq!(limiter.check("k", 1.0, 3, later), Ok(()));
        assert_eq!(limiter.check("k", 1.0, 3, later), Err(1));
    }

    #[test]
    fn slow_rates_round_retry_after_up() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        assert_eq!(limiter.check("k", 0.1, 1, now), Ok(()));
        assert_eq!(limiter.check("k", 0.1, 1, now), Err(10));
        assert_eq!(limiter.check("k", 0.0, 1, now), Ok(()), "0 = off");
    }
}
