//! The live line: once a second on stderr while attacking, when stderr is a terminal.

use crate::engine::Live;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Formats one line of progress.
pub fn line(live: &Live, elapsed: Duration, rate: f64) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{:>6.1}s  offered {:.0}/s  sent {:.0}/s  in flight {}  connections {}  p99 {}  errors {}",
        secs,
        rate,
        live.sent.load(Ordering::Relaxed) as f64 / secs,
        live.in_flight.load(Ordering::Relaxed),
        live.open_connections.load(Ordering::Relaxed).max(0),
        format_ns(live.p99_ns.load(Ordering::Relaxed)),
        live.errors.load(Ordering::Relaxed),
    )
}

/// Prints the live line once a second until `done` says stop.
pub fn show(live: &Live, rate: f64, started: Instant, mut done: impl FnMut() -> bool) {
    let mut stderr = std::io::stderr();
    let mut next = started + Duration::from_secs(1);
    while !done() {
        // Short sleeps, so that the last line comes soon after the attack ends.
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() >= next {
            next += Duration::from_secs(1);
            let _ = write!(stderr, "\r\x1b[2K{}", line(live, started.elapsed(), rate));
        }
    }
    let _ = writeln!(stderr, "\r\x1b[2K{}", line(live, started.elapsed(), rate));
}

/// A duration in the largest unit that keeps it readable: `850µs`, `12.3ms`, `1.52s`.
pub fn format_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.0}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}
