//! Token buckets: `keyrite serve` limits requests per signer (so that one server stays
//! inside the KMS quota its account or project shares) and per client (so that one client
//! cannot starve the others). A request over either answers 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests per second and the burst a bucket holds. A rate of 0 turns the limit off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// One bucket per key (a signer's name, a client's).
pub struct Buckets {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Keys beyond this many are pruned of their full (idle) buckets, so that clients seen once
/// cannot grow the map without bound.
const MAX_KEYS: usize = 10_000;

impl Buckets {
    pub fn new(rate: Rate) -> Buckets {
        Buckets { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token from `key`'s bucket, or says how long until one is there.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Rate { per_second, burst } = self.rate;
        if per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: burst, at: now });
        let refilled = bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = refilled.min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// The `Retry-After` value for a wait: whole seconds, at least 1.
pub fn retry_after(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let buckets = Buckets::new(Rate { per_second: 2.0, burst: 3.0 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(buckets.take_at("a", t0), Ok(()));
        }
        let wait = buckets.take_at("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after(wait), 1);
        // Another key has its own bucket.
        assert_eq!(buckets.take_at("b", t0), Ok(()));
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(buckets.take_at("a", t1), Ok(()));
        assert!(buckets.take_at("a", t1).is_err());
        // A long idle time refills to the burst, never beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(buckets.take_at("a", t2), Ok(()));
        }
        assert!(buckets.take_at("a", t2).is_err());
    }

    #[test]
    fn a_zero_rate_is_no_limit_and_idle_keys_are_pruned() {
        let off = Buckets::new(Rate { per_second: 0.0, burst: 0.0 });
        assert!((0..1000).all(|_| off.take("a").is_ok()));
        let buckets = Buckets::new(Rate { per_second: 1000.0, burst: 1.0 });
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            buckets.take_at(&i.to_string(), t0).unwrap();
        }
        // A second later every bucket is full again: the next new key prunes them all.
        buckets.take_at("new", t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(buckets.buckets.lock().unwrap().len(), 1);
        assert_eq!(retry_after(Duration::from_millis(1500)), 2);
    }
}
