//! What every part of throng shares. The HTTP/1 codec and TLS are crates of their own
//! (`throng-http1`, `throng-tls`): they parse what hostile peers send.
//!
//! - [`sockets`]: `SO_REUSEPORT` listener groups, `TCP_NODELAY`, outgoing sockets bound to a
//!   source address with `IP_BIND_ADDRESS_NO_PORT`.
//! - [`rlimit`]: raising `RLIMIT_NOFILE` and telling the user when a connection count cannot fit.
//! - [`workers`]: thread per core, each with its own single-threaded tokio runtime.
//! - [`listen`] and [`duration`]: the command-line spellings of addresses and durations.
//! - [`admin`]: a small admin HTTP listener (metrics, status pages) and the wait for SIGTERM.
//! - [`buffers`]: per-thread pools of I/O buffers, lent only while bytes are in flight.
//! - [`calendar`]: UTC dates from Unix time, for log lines and timestamps.
//! - [`random`]: a cheap per-thread random number generator for jitter and sleeps.
//! - [`source`]: source-address pools (lists, ranges, CIDR blocks) to get past ~64k ports.
//! - [`procs`]: several processes of one command (past the open-files limit), supervised.
//! - [`prometheus`]: the metrics of several processes merged into one text.

// Network-facing: no unwrap, expect or panic in code that is not a test.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod buffers;
pub mod calendar;
pub mod duration;
pub mod hash;
pub mod hex;
pub mod listen;
pub mod procs;
pub mod prometheus;
pub mod random;
pub mod rlimit;
pub mod sockets;
pub mod source;
pub mod users;
pub mod workers;

/// This machine's host name (its UTS namespace's), as the kernel has it: what a part's results
/// and a monitor's samples say they came from.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}
