//! A timer with microsecond precision for send times: a `timerfd` watched by the thread's tokio
//! runtime. tokio's own timer wakes on millisecond ticks, so a lane waiting for a request due
//! in 0.3 ms could only spin; at 1,000 requests per second per thread that spinning took the
//! whole core. With an alarm a lane sleeps until just before the due time and spins only for
//! the last 100 µs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// One per thread; one waiter at a time (a thread's lanes let only one wait for a due time).
pub(crate) struct Alarm {
    timer: AsyncFd<OwnedFd>,
}

impl Alarm {
    /// Must be made on the thread whose runtime will watch it. Also narrows this thread's timer
    /// slack (50 µs by default, by which the kernel may delay its wake-ups) to 1 µs.
    pub fn new() -> io::Result<Alarm> {
        // SAFETY: plain system calls; the descriptor is owned at once.
        let fd = unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns the descriptor, which stays open (and the same) until it goes.
        let timer = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Alarm { timer })
    }

    /// Sleeps for `wait` (to within the kernel's timer precision). A sleep dropped before its
    /// end (a stop) leaves the timer armed; the next sleep arms it again, which zeroes its count,
    /// so a stale wake-up reads nothing and is waited through.
    pub async fn sleep(&self, wait: Duration) -> io::Result<()> {
        self.arm(wait)?;
        loop {
            let mut ready = self.timer.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reads 8 bytes into our buffer from our descriptor.
            let read = unsafe {
                libc::read(
                    self.timer.get_ref().as_raw_fd(),
                    expirations.as_mut_ptr().cast(),
                    expirations.len(),
                )
            };
            if read == 8 {
                // Read empty: the next expiry is a new edge. Left marked ready, the next sleep
                // would first try a read that finds nothing, a system call per request.
                ready.clear_ready();
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::WouldBlock {
                return Err(error);
            }
            ready.clear_ready();
        }
    }

    fn arm(&self, wait: Duration) -> io::Result<()> {
        // A zero value would disarm the timer: wait at least a nanosecond.
        let wait = wait.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: sets our own timer from a struct we own; the old value is not asked for.
        let result = unsafe {
            libc::timerfd_settime(
                self.timer.get_ref().as_raw_fd(),
                0,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test(flavor = "current_thread")]
    async fn sleeps_for_about_what_it_was_asked_and_again() {
        let alarm = Alarm::new().unwrap();
        for wait in [Duration::from_micros(300), Duration::from_millis(3)] {
            let started = Instant::now();
            alarm.sleep(wait).await.unwrap();
            let slept = started.elapsed();
            assert!(slept >= wait, "woke after {slept:?} of {wait:?}");
            // Generous: a loaded machine may run the test late, never early.
            assert!(slept < wait + Duration::from_secs(1), "{slept:?}");
        }
    }
}
