//! Rate-limited logging: a hostile peer must not be able to flood the logs, but an operator must still learn
//! that something is being dropped and how often.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows one log line per key per interval and counts what it suppressed in between.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    state: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    /// One line per key per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self { interval, state: Mutex::new(HashMap::new()) }
    }

    /// `Some(suppressed since the last line)` when a line may be logged now, else `None` (and counts it).
    pub fn allow(&self, key: &'static str) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &'static str, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.get_mut(key) {
            Some((last, suppressed)) if now.duration_since(*last) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                s.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_a_count_of_the_rest() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.allow_at("a", t0), Some(0));
        assert_eq!(l.allow_at("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow_at("a", t0 + Duration::from_secs(2)), None);
        assert_eq!(l.allow_at("b", t0 + Duration::from_secs(2)), Some(0), "keys are independent");
        assert_eq!(l.allow_at("a", t0 + Duration::from_secs(11)), Some(2));
    }
}
