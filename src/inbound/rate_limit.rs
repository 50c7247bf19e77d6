//! A token bucket per inbound webhook.

use foldhash::{HashMap, HashMapExt};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Requests allowed per inbound webhook: a bucket of `burst` tokens refilled at
/// `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size: requests allowed at once.
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: f64,
}

impl Default for RateLimit {
    /// 20 at once, 10 per second.
    fn default() -> Self {
        RateLimit {
            burst: 20,
            per_second: 10.0,
        }
    }
}

/// Buckets beyond this many are swept of full (idle) ones, keeping memory bounded.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub(crate) struct Limiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, (f64, DateTime<Utc>)>>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; `Err(seconds)` to wait when there is none.
    pub(crate) fn check(&self, key: &str, now: DateTime<Utc>) -> Result<(), u64> {
        let burst = f64::from(self.limit.burst.max(1));
        let rate = self.limit.per_second.max(1e-6);
        let mut g = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.len() >= SWEEP_AT && !g.contains_key(key) {
            g.retain(|_, (tokens, at)| {
                let elapsed = (now - *at).num_milliseconds().max(0) as f64 / 1000.0;
                *tokens + elapsed * rate < burst
            });
        }
        let (tokens, at) = g.entry(key.to_owned()).or_insert((burst, now));
        let elapsed = (now - *at).num_milliseconds().max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}
