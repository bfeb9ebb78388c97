//! `--max-rps`: requests are served one slot every 1/R seconds, in the order they arrived; a
//! request that finds the next slot taken waits for its own. Below R nobody waits, above it the
//! wait grows with the backlog: the knee a tipping-point test looks for, at a known rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Pacer {
    epoch: Instant,
    interval_ns: u64,
    /// The next free slot, in nanoseconds since `epoch`.
    next_free_ns: AtomicU64,
}

impl Pacer {
    pub(crate) fn new(max_rps: f64) -> Pacer {
        let interval_ns = (1e9 / max_rps).round().clamp(1.0, u64::MAX as f64 / 4.0) as u64;
        Pacer {
            epoch: Instant::now(),
            interval_ns,
            next_free_ns: AtomicU64::new(0),
        }
    }

    /// Takes the next free slot at or after `now` and returns when it starts.
    pub(crate) fn reserve(&self, now: Instant) -> Instant {
        let now_ns = self.nanos_since_epoch(now);
        let mut current = self.next_free_ns.load(Ordering::Relaxed);
        loop {
            let slot = current.max(now_ns);
            match self.next_free_ns.compare_exchange_weak(
                current,
                slot + self.interval_ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.epoch + Duration::from_nanos(slot),
                Err(seen) => current = seen,
            }
        }
    }

    /// How long a request arriving now would wait for its slot.
    pub(crate) fn backlog(&self, now: Instant) -> Duration {
        let next = self.next_free_ns.load(Ordering::Relaxed);
        Duration::from_nanos(next.saturating_sub(self.nanos_since_epoch(now)))
    }

    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_arrivals_never_wait() {
        let pacer = Pacer::new(100.0);
        let start = Instant::now();
        for i in 0..10 {
            let arrival = start + Duration::from_millis(10 * i + 1);
            assert_eq!(pacer.reserve(arrival), arrival);
        }
    }

    #[test]
    fn a_burst_is_served_one_slot_apart_in_arrival_order() {
        let pacer = Pacer::new(100.0);
        let now = Instant::now();
        let slots: Vec<Instant> = (0..5).map(|_| pacer.reserve(now)).collect();
        for (i, slot) in slots.iter().enumerate() {
            let wait = slot.duration_since(now);
            assert!(
                wait.abs_diff(Duration::from_millis(10 * i as u64)) < Duration::from_micros(1),
                "{i}: {wait:?}"
            );
        }
        let backlog = pacer.backlog(now);
        assert!(
            backlog.abs_diff(Duration::from_millis(50)) < Duration::from_micros(1),
            "{backlog:?}"
        );
    }
}
