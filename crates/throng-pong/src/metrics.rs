//! Counters in place of the story's statsd, rendered in Prometheus text format.
//! Relaxed atomics: each figure is exact on its own; a scrape need not be one consistent snapshot.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one listen address, shared by the worker threads that accept on it.
#[derive(Debug)]
pub(crate) struct ListenerStats {
    pub addr: SocketAddr,
    pub requests: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_accepted: AtomicU64,
}

impl ListenerStats {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        ListenerStats {
            addr,
            requests: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
        }
    }
}

/// Why a connection was cut by a timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeoutKind {
    /// No request on a keep-alive connection for `--timeout`.
    Idle,
    /// A request head took longer than `--header-timeout` to arrive.
    Header,
    /// No byte moved for `--timeout` while a response was sleeping or being written.
    Response,
}

impl TimeoutKind {
    const ALL: [TimeoutKind; 3] = [
        TimeoutKind::Idle,
        TimeoutKind::Header,
        TimeoutKind::Response,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            TimeoutKind::Idle => "idle",
            TimeoutKind::Header => "header",
            TimeoutKind::Response => "response",
        }
    }
}

/// The statuses pong refuses requests with.
const REJECT_STATUSES: [u16; 4] = [400, 408, 414, 431];

/// Process-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub listeners: Vec<std::sync::Arc<ListenerStats>>,
    pub responses_in_progress: AtomicU64,
    pub responses_abandoned: AtomicU64,
    rejected: [AtomicU64; REJECT_STATUSES.len()],
    timeouts: [AtomicU64; TimeoutKind::ALL.len()],
    pub connection_limit_reached: AtomicU64,
    pub tls_failures: AtomicU64,
}

impl Metrics {
    pub(crate) fn new(listeners: Vec<std::sync::Arc<ListenerStats>>) -> Self {
        Metrics {
            listeners,
            ..Default::default()
        }
    }

    pub(crate) fn count_rejected(&self, status: u16) {
        if let Some(i) = REJECT_STATUSES.iter().position(|&s| s == status) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_timeout(&self, kind: TimeoutKind) {
        self.timeouts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connections_open(&self) -> u64 {
        self.listeners
            .iter()
            .map(|l| l.connections_open.load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self, queue_delay: Option<Duration>) -> String {
        let mut out = String::with_capacity(2048);
        let per_listener: [ListenerFamily; 5] = [
            (
                "pong_requests_total",
                "counter",
                "Requests received.",
                |l| &l.requests,
            ),
            (
                "pong_connections_open",
                "gauge",
                "Connections open now.",
                |l| &l.connections_open,
            ),
            (
                "pong_connections_accepted_total",
                "counter",
                "Connections accepted.",
                |l| &l.connections_accepted,
            ),
            (
                "pong_received_bytes_total",
                "counter",
                "Bytes read from clients.",
                |l| &l.bytes_in,
            ),
            (
                "pong_sent_bytes_total",
                "counter",
                "Bytes written to clients.",
                |l| &l.bytes_out,
            ),
        ];
        for (name, kind, help, field) in per_listener {
            header(&mut out, name, kind, &format!("{help} By listen address."));
            for listener in &self.listeners {
                let value = field(listener).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{listen=\"{}\"}} {value}", listener.addr);
            }
        }
        single(
            &mut out,
            "pong_responses_in_progress",
            "gauge",
            "Responses started and not yet finished (sleeping or queued).",
            self.responses_in_progress.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "pong_responses_abandoned_total",
            "counter",
            "Responses whose client closed the connection before their end.",
            self.responses_abandoned.load(Ordering::Relaxed),
        );
        header(
            &mut out,
            "pong_rejected_requests_total",
            "counter",
            "Requests refused, by HTTP status.",
        );
        for (status, count) in REJECT_STATUSES.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "pong_rejected_requests_total{{status=\"{status}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        header(
            &mut out,
            "pong_timeouts_total",
            "counter",
            "Connections closed by a timeout, by which one.",
        );
        for (kind, count) in TimeoutKind::ALL.iter().zip(&self.timeouts) {
            let _ = writeln!(
                out,
                "pong_timeouts_total{{timeout=\"{}\"}} {}",
                kind.name(),
                count.load(Ordering::Relaxed)
            );
        }
        single(
            &mut out,
            "pong_connection_limit_reached_total",
            "counter",
            "Times accepting paused because --max-connections were open.",
            self.connection_limit_reached.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "pong_tls_failures_total",
            "counter",
            "TLS connections closed for a TLS error (handshake, certificate, bad record).",
            self.tls_failures.load(Ordering::Relaxed),
        );
        if let Some(delay) = queue_delay {
            single(
                &mut out,
                "pong_queue_delay_seconds",
                "gauge",
                "How long a request arriving now waits for its --max-rps slot.",
                format!("{:.6}", delay.as_secs_f64()),
            );
        }
        out
    }
}

/// A per-listener metric: name, type, help, and which counter it reads.
type ListenerFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ListenerStats) -> &AtomicU64,
);

/// A family with one sample and no labels.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn renders_every_family_with_labels() {
        let listener = Arc::new(ListenerStats::new("127.0.0.1:8282".parse().unwrap()));
        listener.requests.fetch_add(3, Ordering::Relaxed);
        let metrics = Metrics::new(vec![listener]);
        metrics.count_rejected(431);
        metrics.count_timeout(TimeoutKind::Header);
        let text = metrics.render(Some(Duration::from_millis(1500)));
        assert!(
            text.contains("pong_requests_total{listen=\"127.0.0.1:8282\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("pong_rejected_requests_total{status=\"431\"} 1\n"));
        assert!(text.contains("pong_timeouts_total{timeout=\"header\"} 1\n"));
        assert!(text.contains("pong_queue_delay_seconds 1.500000\n"));
        assert!(text.contains("# TYPE pong_responses_in_progress gauge\n"));
    }
}
