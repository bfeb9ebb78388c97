//! Lanes: the tasks that send a thread's requests, one request at a time each, as many lanes as
//! requests in flight (at most the thread's share of `--max-inflight`).
//!
//! A lane takes the next request of the schedule, waits until it is due, sends it, and when its
//! response is in, takes the next one. It keeps its task and its timeout timer from request to
//! request, so a request costs no task, no timer and no semaphore of its own.
//!
//! The schedule never waits for a lane: when a lane sends and no other lane holds the next
//! request, a parked lane is woken for it, or a new lane starts while under the cap. At the cap,
//! the next request goes to the first lane that frees; it is then late, counted as delayed by
//! the cap, and measured from when it was due, so the cap never hides latency.
//!
//! With `--batch`, a request waits for the end of its window instead of its own due time, so
//! the requests of a window go out on one wake-up (wrk2's trade: a thread that sleeps and wakes
//! per request pays most of its CPU there, bench/RESULTS.md); the lateness is lag like any other.

use crate::client;
use crate::engine::ThreadCtx;
use crate::schedule::nanos;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use throng_results::Record;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How the lanes of one thread stand.
pub(crate) struct Lanes {
    /// Most lanes, so most requests in flight, on this thread.
    max: usize,
    /// Lanes started and not ended.
    count: Cell<usize>,
    /// Lanes holding a request that is not due yet.
    waiting: Cell<usize>,
    /// Lanes with nothing to do while another lane waits for the next request.
    parked: Cell<usize>,
    wake_parked: Notify,
}

impl Lanes {
    pub fn new(max: usize) -> Lanes {
        Lanes {
            max: max.max(1),
            count: Cell::new(0),
            waiting: Cell::new(0),
            parked: Cell::new(0),
            wake_parked: Notify::new(),
        }
    }

    /// Lanes still running (sending, waiting or parked).
    pub fn running(&self) -> usize {
        self.count.get()
    }
}

/// Starts the thread's first lane; more start as the load needs them.
pub(crate) fn start(ctx: &Rc<ThreadCtx>) {
    ctx.lanes.count.set(ctx.lanes.count.get() + 1);
    tokio::task::spawn_local(lane(Rc::clone(ctx)));
}

pub(crate) async fn lane(ctx: Rc<ThreadCtx>) {
    // Reset for each request; a later deadline only moves the timer's expiry, no new timer.
    // Kept in the lane's own future: one allocation per lane.
    let timeout = tokio::time::sleep_until(ctx.schedule.start);
    let mut timeout = std::pin::pin!(timeout);
    let mut from_exchange = false;
    loop {
        // Not `while let`: its scrutinee's future would live on beside the exchange's.
        let Some(record) = next_request(&ctx, from_exchange).await else {
            break;
        };
        let live = ctx.live();
        live.sent.fetch_add(1, Ordering::Relaxed);
        live.in_flight.fetch_add(1, Ordering::Relaxed);
        client::exchange(&ctx, record, timeout.as_mut()).await;
        live.in_flight.fetch_sub(1, Ordering::Relaxed);
        from_exchange = true;
    }
    let lanes = &ctx.lanes;
    lanes.count.set(lanes.count.get() - 1);
    // Parked lanes see the schedule has ended, and end too.
    lanes.wake_parked.notify_waiters();
}

/// Takes this lane's next request when it is due, and readies a lane for the one after it;
/// `None` when the schedule has ended. The request comes as the record it will fill in, so the
/// lane keeps nothing else of it while it waits for the response.
async fn next_request(ctx: &Rc<ThreadCtx>, from_exchange: bool) -> Option<Record> {
    let lanes = &ctx.lanes;
    let schedule = &ctx.schedule;
    let live = ctx.live();
    while lanes.waiting.get() > 0 && !schedule.has_ended() {
        lanes.parked.set(lanes.parked.get() + 1);
        lanes.wake_parked.notified().await;
        lanes.parked.set(lanes.parked.get() - 1);
    }
    let due = schedule.take()?;
    let due_at = schedule.start + batch_end(due.intended, ctx.config.batch);
    lanes.waiting.set(lanes.waiting.get() + 1);
    let now = Instant::now();
    let sent_at = if now < due_at {
        wait_until(due_at, ctx).await
    } else {
        // Due while every lane was busy: the cap held it back.
        if from_exchange && lanes.count.get() >= lanes.max && lanes.parked.get() == 0 {
            live.delayed_by_cap.fetch_add(1, Ordering::Relaxed);
        }
        now
    };
    lanes.waiting.set(lanes.waiting.get() - 1);
    // A batch's requests go out at its end, which may be past the duration: they were due
    // within it, so the wall-time end comes one window later.
    let sent_for = sent_at.checked_sub(ctx.config.batch).unwrap_or(sent_at);
    if live.stop.load(Ordering::Relaxed) || schedule.is_over(sent_for) {
        schedule.end_now();
        return None;
    }
    if lanes.waiting.get() == 0 {
        ready_a_lane_for_the_next_request(ctx);
    }
    Some(Record {
        seq: due.seq,
        intended: nanos(due.intended),
        sent: schedule.nanos_at(sent_at),
        target: due.target as u32,
        ..Record::default()
    })
}

/// When a request due `intended` after the start goes out: at the end of its batch window.
fn batch_end(intended: Duration, batch: Duration) -> Duration {
    let window = batch.as_nanos();
    if window == 0 {
        return intended;
    }
    let windows = intended.as_nanos().div_ceil(window);
    Duration::from_nanos((windows * window).min(u64::MAX as u128) as u64)
}

/// Wakes a parked lane to take the next request, or starts one while under the cap. At the cap,
/// the next request waits for the first lane that frees.
fn ready_a_lane_for_the_next_request(ctx: &Rc<ThreadCtx>) {
    let lanes = &ctx.lanes;
    if lanes.parked.get() > 0 {
        lanes.wake_parked.notify_one();
    } else if lanes.count.get() < lanes.max {
        start(ctx);
    }
}

/// Waits until `due` and returns the time it ended. On the thread's alarm (a timerfd, microsecond
/// precision) until the due time: the wake-up comes tens of microseconds late, which the record
/// keeps as lag (latency still runs from the due time), and the lane then sends what is due.
/// With `--precise`, on the alarm until 100 µs before and yielding (letting this thread's
/// responses be read meanwhile) for the rest, for sends within about a microsecond (with 50 µs,
/// 1% of sends were 11-68 µs late; with 100 µs, 0.5 µs), at the price of spinning: a core at
/// 10,000 requests/s per thread. Without an alarm, on tokio's millisecond timer until a
/// millisecond before. A stop ends the wait early.
async fn wait_until(due: Instant, ctx: &ThreadCtx) -> Instant {
    const SPIN: Duration = Duration::from_micros(100);
    const TICK: Duration = Duration::from_millis(1);
    let spin = if ctx.config.precise {
        SPIN
    } else {
        Duration::ZERO
    };
    let live = ctx.live();
    loop {
        let now = Instant::now();
        if now >= due || live.stop.load(Ordering::Relaxed) {
            return now;
        }
        let left = due - now;
        let sleep_for = match ctx.alarm {
            Some(_) if left > spin => left - spin,
            None if left > 2 * TICK => left - TICK,
            _ => {
                tokio::task::yield_now().await;
                continue;
            }
        };
        // Made before the stop is looked at again, so a stop in between still wakes it.
        let stopping = live.stopping.notified();
        if live.stop.load(Ordering::Relaxed) {
            return now;
        }
        match &ctx.alarm {
            Some(alarm) => {
                tokio::select! {
                    result = alarm.sleep(sleep_for) => {
                        if result.is_err() {
                            // The alarm failed (it should not): fall back to spinning.
                            tokio::task::yield_now().await;
                        }
                    }
                    _ = stopping => {}
                }
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(sleep_for) => {}
                    _ = stopping => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::batch_end;
    use std::time::Duration;

    #[test]
    fn a_request_goes_out_at_the_end_of_its_batch_window() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        assert_eq!(batch_end(us(300), Duration::ZERO), us(300), "no batch");
        assert_eq!(batch_end(us(300), ms(1)), ms(1));
        assert_eq!(batch_end(ms(1), ms(1)), ms(1), "due at a window's end");
        assert_eq!(batch_end(us(1001), ms(1)), ms(2));
        assert_eq!(batch_end(Duration::ZERO, ms(1)), Duration::ZERO);
    }
}
