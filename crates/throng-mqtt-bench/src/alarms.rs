//! A thread's one timer for its connections. A held connection waits for its socket, its next
//! ping or message, and a change of the run's phase (publishing begins or ends, the stop); with
//! a tokio `Sleep` and a `Notify` waiter of its own, those two took about 200 bytes of every
//! connection's task. Here the thread keeps, per waiting connection, a deadline and a waker in
//! one heap (32 bytes), one task sleeps until the earliest deadline and wakes what is due, and
//! at a change of phase it wakes every connection, which then sees the new phase itself.

use crate::run::Live;
use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long a connection with nothing to do waits before it looks again (it is also woken by
/// its socket and by every change of phase, so this only bounds a missed wake-up).
pub(crate) const IDLE_LOOK: Duration = Duration::from_secs(3600);

/// A connection to wake at `at`.
struct Due {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Due) -> Ordering {
        self.at.cmp(&other.at)
    }
}

/// The soonest and the latest deadline a connection has in the heap (entries between them
/// are not tracked): a new deadline at or after either one that has not come needs no entry.
/// Both, so that a connection whose deadline goes back and forth (its next message, then its
/// next ping while the window of unacknowledged messages is full, then a message again) does
/// not push its ping again each time.
///
/// Kept as nanoseconds after the alarms' origin plus one (0: none), 8 bytes each where an
/// `Instant` takes 16: this is in every connection's future.
#[derive(Clone, Copy, Default)]
pub(crate) struct Armed {
    soonest: u64,
    latest: u64,
}

pub(crate) struct Alarms {
    /// What [`Armed`]'s nanoseconds count from.
    origin: Instant,
    due: RefCell<BinaryHeap<Reverse<Due>>>,
    /// The ringing task, woken when a deadline earlier than the one it sleeps until comes.
    ringer: RefCell<Option<Waker>>,
    /// What the ringing task sleeps until (`None`: nothing is due).
    ringer_at: Cell<Option<Instant>>,
}

impl Alarms {
    /// Room for `connections` deadlines from the start: the heap does not grow by doubling
    /// (which would leave up to half of it unused) while the ramp opens them.
    pub(crate) fn with_capacity(connections: usize) -> Alarms {
        Alarms {
            origin: Instant::now(),
            due: RefCell::new(BinaryHeap::with_capacity(connections)),
            ringer: RefCell::new(None),
            ringer_at: Cell::new(None),
        }
    }

    /// `at` in [`Armed`]'s terms: nanoseconds after the origin, plus one (0 is none).
    fn ticks(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX - 1) + 1
    }

    /// Makes sure the task of `cx` is woken at `at` or before. A connection whose earlier
    /// deadline is still in the heap adds nothing (that one wakes it, and it arms again);
    /// so a connection has at most one entry that has not come, and stale ones wake it once.
    pub(crate) fn arm(&self, armed: &mut Armed, at: Instant, now: Instant, cx: &Context<'_>) {
        let (now_ticks, at_ticks) = (self.ticks(now), self.ticks(at));
        let pending = |deadline: u64| Some(deadline).filter(|d| *d > now_ticks);
        let (soonest, latest) = (pending(armed.soonest), pending(armed.latest));
        if [soonest, latest]
            .into_iter()
            .flatten()
            .any(|d| d <= at_ticks)
        {
            return;
        }
        armed.soonest = soonest.map_or(at_ticks, |s| s.min(at_ticks));
        armed.latest = latest.map_or(at_ticks, |l| l.max(at_ticks));
        self.due.borrow_mut().push(Reverse(Due {
            at,
            waker: cx.waker().clone(),
        }));
        if self.ringer_at.get().is_none_or(|ringing| at < ringing) {
            if let Some(ringer) = self.ringer.borrow().as_ref() {
                ringer.wake_by_ref();
            }
        }
    }

    /// The thread's ringing task: wakes each connection at its deadline, and every connection
    /// at each change of `live`'s phase. Runs until dropped.
    pub(crate) async fn ring(&self, live: &Live) {
        let sleep = tokio::time::sleep(IDLE_LOOK);
        tokio::pin!(sleep);
        let mut seen = live.generation();
        loop {
            // Made before the count is read: a change from here on wakes it; one that came
            // while the last `changed` was being replaced shows in the count.
            let changed = live.changed();
            tokio::pin!(changed);
            let generation = live.generation();
            if generation != seen {
                seen = generation;
                self.wake_all();
            }
            let now = Instant::now();
            let next = {
                let mut due = self.due.borrow_mut();
                while due.peek().is_some_and(|Reverse(first)| first.at <= now) {
                    if let Some(Reverse(first)) = due.pop() {
                        first.waker.wake();
                    }
                }
                due.peek().map(|Reverse(first)| first.at)
            };
            self.ringer_at.set(next);
            sleep.as_mut().reset(next.unwrap_or(now + IDLE_LOOK).into());
            let phase_changed = std::future::poll_fn(|cx| {
                *self.ringer.borrow_mut() = Some(cx.waker().clone());
                if changed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                // Woken by `arm` for an earlier deadline: look at the heap again.
                match self.ringer_at.get() != self.due.borrow().peek().map(|Reverse(d)| d.at) {
                    true => Poll::Ready(false),
                    false => Poll::Pending,
                }
            })
            .await;
            if phase_changed {
                seen = live.generation();
                self.wake_all();
            }
        }
    }

    /// Every connection looks at the phase; their entries stay where they are. (Waking a task
    /// of this thread only queues it: nothing runs while the heap is borrowed.)
    fn wake_all(&self) {
        for Reverse(due) in self.due.borrow().iter() {
            due.waker.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A publisher whose window fills waits for its ping, then for its next message when an
    /// acknowledgement opens the window, then for its ping again: the ping is in the heap once.
    #[test]
    fn a_deadline_that_goes_back_and_forth_is_kept_once() {
        let alarms = Alarms::with_capacity(4);
        let cx = Context::from_waker(Waker::noop());
        let start = Instant::now();
        let ping = start + Duration::from_secs(30);
        let mut armed = Armed::default();
        alarms.arm(&mut armed, ping, start, &cx);
        alarms.arm(&mut armed, ping + Duration::from_secs(1), start, &cx);
        assert_eq!(
            alarms.due.borrow().len(),
            1,
            "a later deadline adds nothing"
        );
        for k in 1..=100u64 {
            let now = start + Duration::from_millis(10 * k);
            let message = now + Duration::from_millis(5);
            alarms.arm(&mut armed, message, now, &cx);
            // The message's time came (the ringer popped it) and the window is full again.
            alarms.due.borrow_mut().retain(|Reverse(d)| d.at != message);
            alarms.arm(&mut armed, ping, message, &cx);
        }
        assert_eq!(alarms.due.borrow().len(), 1, "the ping, once");
    }
}
