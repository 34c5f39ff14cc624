//! Counting limiter over fixed windows, keyed by any string.
//!
//! Failed logins must only count failures, and the answer needs the seconds until the window
//! ends for `Retry-After`; governor's limiters consume a cell on every check and cannot peek, so
//! this small counter is used instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Limiter {
    max: u32,
    window: Duration,
    entries: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Past this many keys, expired ones are swept on the next hit.
const SWEEP_AT: usize = 100_000;

impl Limiter {
    pub fn new(max: u32, window: Duration) -> Limiter {
        Limiter { max, window, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(seconds to wait)` when `key` has used up its window.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        match self.lock().get(key) {
            Some(&(start, n)) if n >= self.max && now < start + self.window => Err((start + self.window - now).as_secs() + 1),
            _ => Ok(()),
        }
    }

    /// Counts one event for `key`.
    pub fn hit(&self, key: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() >= SWEEP_AT {
            let window = self.window;
            map.retain(|_, (start, _)| now < *start + window);
        }
        let e = map.entry(key.to_owned()).or_insert((now, 0));
        if now >= e.0 + self.window {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }

    /// Checks and counts in one step: for limits on every attempt, not only failures.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), u64> {
        self.check(key, now)?;
        self.hit(key, now);
        Ok(())
    }

    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_a_window_and_forgets_after_it() {
        let l = Limiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check("a", t0).is_ok());
            l.hit("a", t0);
        }
        let wait = l.check("a", t0 + Duration::from_secs(10)).unwrap_err();
        assert!((50..=51).contains(&wait), "{wait}");
        assert!(l.check("b", t0).is_ok(), "keys are independent");
        assert!(l.check("a", t0 + Duration::from_secs(61)).is_ok());
        l.hit("a", t0 + Duration::from_secs(61));
        assert!(l.check("a", t0 + Duration::from_secs(61)).is_ok(), "a new window started");
        l.reset("a");
        assert!(l.take("a", t0).is_ok());
    }
}
