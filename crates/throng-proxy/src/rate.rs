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
        self.try_take_at(self.origin.elapsed())
    }

    /// [`Self::try_take`] at `elapsed` since the limiter was made (the tests' own clock).
    fn try_take_at(&self, elapsed: Duration) -> Result<(), Duration> {
        // Time runs from one burst before the limiter was made: a full burst is there at once.
        let now = u64::try_from(elapsed.as_nanos())
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

    fn taken_at(rate: &SessionRate, elapsed: Duration) -> usize {
        (0..1000)
            .filter(|_| rate.try_take_at(elapsed).is_ok())
            .count()
    }

    #[test]
    fn a_burst_of_one_seconds_worth_then_the_rate() {
        let rate = SessionRate::new(100);
        assert_eq!(
            taken_at(&rate, Duration::ZERO),
            100,
            "a second's worth at once"
        );
        assert_eq!(
            rate.try_take_at(Duration::ZERO),
            Err(Duration::from_millis(10)),
            "the next one an interval (10 ms) later"
        );
        assert_eq!(taken_at(&rate, Duration::from_millis(50)), 5);
        assert_eq!(taken_at(&rate, Duration::from_millis(59)), 0);
        assert_eq!(taken_at(&rate, Duration::from_millis(60)), 1);
        // After a quiet spell, the burst again, and never more than it.
        assert_eq!(taken_at(&rate, Duration::from_secs(10)), 100);
    }

    #[test]
    fn threads_sharing_a_limiter_take_each_turn_once() {
        let rate = SessionRate::new(1000);
        let taken: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| taken_at(&rate, Duration::from_millis(500))))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        // The burst (a second's worth) and no more, whichever thread took each: none taken twice.
        assert_eq!(taken, 1000);
    }
}
