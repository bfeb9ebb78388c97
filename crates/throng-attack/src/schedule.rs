//! One thread's share of the open-model schedule: request `i` is due at `i / rate` after the
//! start, whatever happened to the requests before it. Thread `t` of `T` (in process `p` of `P`)
//! takes every `T x P`-th request, so threads and processes together send exactly the one
//! schedule. Taking a request says nothing of when it is sent: the lanes do that.

use std::cell::Cell;
use std::time::Duration;
use tokio::time::Instant;

/// A request of the schedule: its sequence number, its target, and when it is due.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Due {
    pub seq: u64,
    pub target: usize,
    /// From the start of the attack.
    pub intended: Duration,
}

pub(crate) struct Schedule {
    pub start: Instant,
    /// Seconds between two requests of the whole schedule.
    interval: f64,
    stride: u64,
    next: Cell<u64>,
    targets: u64,
    /// No request is due at or after this (the attack's `-duration`).
    duration: Option<Duration>,
    /// When this thread stopped scheduling, from the start; `None` while it goes on.
    ended_at: Cell<Option<Duration>>,
}

impl Schedule {
    /// `first` is this thread's first sequence number, `stride` the distance between its own.
    pub fn new(
        start: Instant,
        rate: f64,
        first: u64,
        stride: u64,
        targets: usize,
        duration: Option<Duration>,
    ) -> Schedule {
        Schedule {
            start,
            interval: 1.0 / rate,
            stride,
            next: Cell::new(first),
            targets: targets.max(1) as u64,
            duration,
            ended_at: Cell::new(None),
        }
    }

    /// The next request of this thread's share, or `None` once it has ended.
    pub fn take(&self) -> Option<Due> {
        if self.ended_at.get().is_some() {
            return None;
        }
        let seq = self.next.get();
        let intended = Duration::from_secs_f64(seq as f64 * self.interval);
        if let Some(duration) = self.duration.filter(|d| intended >= *d) {
            // Every request of the duration was taken: the schedule ends where it said it would.
            self.ended_at.set(Some(duration));
            return None;
        }
        self.next.set(seq + self.stride);
        Some(Due {
            seq,
            target: (seq % self.targets) as usize,
            intended,
        })
    }

    /// Ends the schedule now (Ctrl-C, or the duration is over in wall time): requests not yet
    /// sent are counted as due but not sent, not dropped silently.
    pub fn end_now(&self) {
        if self.ended_at.get().is_none() {
            self.ended_at.set(Some(self.start.elapsed()));
        }
    }

    pub fn has_ended(&self) -> bool {
        self.ended_at.get().is_some()
    }

    /// Whether the duration is over in wall time at `at`: the attack ends there too, so a
    /// schedule that fell behind does not run on to catch up.
    pub fn is_over(&self, at: Instant) -> bool {
        self.duration.is_some_and(|d| at >= self.start + d)
    }

    /// `at` as nanoseconds from the start, as records count time.
    pub fn nanos_at(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.start))
    }

    /// The time `nanos` from the start.
    pub fn instant(&self, nanos: u64) -> Instant {
        self.start + Duration::from_nanos(nanos)
    }

    /// When this thread stopped scheduling, from the start (now, if it has not).
    pub fn ended_at(&self) -> Duration {
        self.ended_at.get().unwrap_or_else(|| self.start.elapsed())
    }
}

/// A duration in nanoseconds, as records count time.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_takes_its_own_share_of_the_schedule_and_ends_at_the_duration() {
        // 100 requests per second for 1 s, thread 1 of 4: requests 1, 5, 9 ... 97.
        let start = Instant::now();
        let schedule = Schedule::new(start, 100.0, 1, 4, 3, Some(Duration::from_secs(1)));
        assert!(!schedule.is_over(start + Duration::from_millis(999)));
        assert!(schedule.is_over(start + Duration::from_secs(1)));
        let taken: Vec<Due> = std::iter::from_fn(|| schedule.take()).collect();
        assert_eq!(taken.len(), 25);
        assert_eq!(taken[0].seq, 1);
        assert_eq!(taken[0].intended, Duration::from_millis(10));
        assert_eq!(taken[1].seq, 5);
        assert_eq!(
            taken[1].target, 2,
            "targets are used round-robin by sequence number"
        );
        assert_eq!(taken[24].seq, 97);
        assert_eq!(schedule.ended_at(), Duration::from_secs(1));
        assert!(schedule.take().is_none(), "an ended schedule stays ended");
    }

    #[test]
    fn ending_now_stops_taking() {
        let schedule = Schedule::new(Instant::now(), 1000.0, 0, 1, 1, None);
        assert!(schedule.take().is_some());
        schedule.end_now();
        assert!(schedule.take().is_none());
        assert!(schedule.ended_at() < Duration::from_secs(5));
    }
}
