//! What an attack is told to do.

use crate::targets::Target;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    pub targets: Vec<Target>,
    /// Requests per second, on a fixed schedule.
    pub rate: f64,
    /// How long to attack; `None`: until Ctrl-C.
    pub duration: Option<Duration>,
    /// For the whole request, from its send to the end of its response (vegeta's `-timeout`).
    pub timeout: Duration,
    /// Most requests in flight at once; a request due beyond it waits, and is counted.
    pub max_inflight: usize,
    /// Idle connections kept per target host and thread (vegeta's `-connections`).
    pub idle_connections: usize,
    /// HTTP/2 connections per target host and thread, at most (vegeta's `-max-connections`);
    /// `None`: as many as the server's stream limit makes needed.
    pub max_connections: Option<usize>,
    /// HTTP/2: offered by ALPN on https targets (vegeta's `-http2`), and by prior knowledge on
    /// plain ones (`-h2c`).
    pub http2: crate::request::Http2Options,
    pub keepalive: bool,
    pub threads: usize,
    /// Source addresses to bind outgoing connections to, in turn.
    pub sources: Vec<IpAddr>,
    /// vegeta's `-name`.
    pub name: String,
    /// Print a live line on stderr once a second.
    pub progress: bool,
    /// How https targets are spoken to.
    pub tls: throng_tls::config::ClientOptions,
    /// This process's share of an attack split over processes (`--procs`).
    pub part: Option<Part>,
    /// Spin the last 100 µs before each send, for sends within a microsecond of their due time,
    /// at the price of a core at high rates. Off: wake on the alarm at the due time and send what
    /// is due (tens of microseconds late, measured as lag; latency still runs from the due time).
    pub precise: bool,
    /// Requests due within one window of this length (windows counted from the start) go out
    /// together at its end: one wake-up for the lot. Zero: each at its own due time.
    pub batch: Duration,
    /// When the schedule starts (Unix ns), shared by a run's parts (`--start-at`); `None`: now.
    /// A part's own start (`Part::start_unix_ns`) wins.
    pub start_at: Option<u64>,
    /// The machine's name in the results (`--host-name`); `None`: its host name.
    pub host_name: Option<String>,
    /// Sum the run up as it is written, for thresholds to be judged at its end.
    pub summarize: bool,
}

/// One process's share of an attack split over `of` processes: of the one schedule at the whole
/// rate, from one start, it sends requests `index`, `index + of`, `index + 2 * of`... So the
/// processes together send exactly what one process would, and their records merge into one run
/// (the same sequence numbers, intended times and targets).
#[derive(Clone, Copy, Debug)]
pub struct Part {
    pub index: usize,
    pub of: usize,
    /// The schedule's start, shared by all processes (Unix time, ns).
    pub start_unix_ns: u64,
}
