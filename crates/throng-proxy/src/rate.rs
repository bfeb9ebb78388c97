//! `rate_limit_sessions` (HAProxy's `rate-limit sessions`): at most N new connections a second
//! on a frontend, the rest left in the kernel's accept queue, so a broker restart's reconnect
//! storm comes in at a pace the servers can take. A generic cell rate algorithm shared by the
//! process's threads: one atomic, the time the next connection may be accepted (in nanoseconds
//! since the limiter was made), moved on by one interval per connection. A burst of up to one
//! second's worth is let through after a quiet spell.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

pub struct SessionRate {
    origin: Instant,
    /// Nanoseconds between two connections at the limit.
    interval: u64,
    /// How far ahead of now the schedule may run: the burst allowed.
    burst: u64,
    next: AtomicU64,
}

impl SessionRate {
    /// `per_second` connections a second (at least 1).
    pub fn new(per_second: u64) -> SessionRate {
        let per_second = per_second.max(1);
        let interval = 1_000_000_000 / per_second;
        SessionRate {
            origin: Instant::now(),
            interval,
            burst: interval * (per_second - 1),
            next: AtomicU64::new(0),
        }
    }

    /// Takes a connection's turn if one is free now; otherwise how long until one is.
    pub fn try_take(&self) -> Result<(), Duration> {
        // Time runs from one burst before the limiter was made: a full burst is there at once.
        let now = u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(self.burst);
        let mut current = self.next.load(Relaxed);
        loop {
            let start = current.max(now.saturating_sub(self.burst));
            if start > now {
                return Err(Duration::from_nanos(start - now));
            }
            match self
                .next
                .compare_exchange_weak(current, start + self.interval, Relaxed, Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_seconds_worth_then_the_rate() {
        let rate = SessionRate::new(100);
        let taken = (0..1000).filter(|_| rate.try_take().is_ok()).count();
        // A second's worth at once (give or take the time the loop took).
        assert!((100..=102).contains(&taken), "{taken}");
        let wait = rate.try_take().unwrap_err();
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
        std::thread::sleep(Duration::from_millis(50));
        let more = (0..1000).filter(|_| rate.try_take().is_ok()).count();
        assert!((4..=20).contains(&more), "about 5 more after 50 ms: {more}");
    }
}
