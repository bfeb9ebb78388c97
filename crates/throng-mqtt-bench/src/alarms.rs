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

/// The deadline a connection has in the heap, while it has not come.
#[derive(Clone, Copy, Default)]
pub(crate) struct Armed(Option<Instant>);

#[derive(Default)]
pub(crate) struct Alarms {
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
            due: RefCell::new(BinaryHeap::with_capacity(connections)),
            ..Alarms::default()
        }
    }

    /// Makes sure the task of `cx` is woken at `at` or before. A connection whose earlier
    /// deadline is still in the heap adds nothing (that one wakes it, and it arms again);
    /// so a connection has at most one entry that has not come, and stale ones wake it once.
    pub(crate) fn arm(&self, armed: &mut Armed, at: Instant, now: Instant, cx: &Context<'_>) {
        if armed.0.is_some_and(|was| was <= at && was > now) {
            return;
        }
        armed.0 = Some(at);
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
        loop {
            let changed = live.changed();
            tokio::pin!(changed);
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
                // Every connection looks at the phase; their entries stay where they are.
                for Reverse(due) in self.due.borrow().iter() {
                    due.waker.wake_by_ref();
                }
            }
        }
    }
}
