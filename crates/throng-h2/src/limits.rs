//! What the peer of one connection may ask of us: the settings it is told, and the floods it is
//! not allowed (each named, so the log line and the counter say which one it was). A server
//! holds its clients to them, and a client its server.

pub use crate::error::Flood;
use std::time::{Duration, Instant};

/// A server connection's limits. The defaults are HAProxy's and nginx's where they have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams open at once (a HEADERS past it is refused
    /// with REFUSED_STREAM, which a client may retry). HAProxy and nginx: 100.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: what a client may send on a stream before the server has
    /// passed it on; at least 65,535 (the window a client may use before it has our SETTINGS).
    pub initial_window_size: u32,
    /// The connection's receive window, opened by a WINDOW_UPDATE after our SETTINGS. It must
    /// be larger than a stream's, or one stream whose server reads slowly would stop all the
    /// others; each stream is still bounded by its own window.
    pub connection_window: u32,
    /// SETTINGS_HEADER_TABLE_SIZE: the HPACK table the client's encoder may make us keep.
    pub header_table_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: a request's fields, each counted with 32 bytes more.
    /// Over it, the stream is answered 431.
    pub max_header_list_size: u32,
    /// Fields in one request or trailer block; over it, 431 as well.
    pub max_fields: usize,
    /// A header block's bytes across HEADERS and CONTINUATION, before it is decoded.
    pub max_header_block: usize,
    /// CONTINUATION frames after one HEADERS (the 2024 CONTINUATION floods send endless tiny ones).
    pub max_continuations: u32,
    /// Each of these is a number per second per connection.
    pub per_second: Floods,
}

/// Frames per second per connection, by kind, past which the connection is closed with
/// GOAWAY(ENHANCE_YOUR_CALM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Floods {
    /// Streams reset, by the client (Rapid Reset, CVE-2023-44487) or by the server for what
    /// the client sent (MadeYouReset, CVE-2025-8671).
    pub resets: u32,
    pub settings: u32,
    pub pings: u32,
    /// PRIORITY frames and frames of unknown types: ignored, but each costs a parse.
    pub ignored: u32,
    pub window_updates: u32,
    /// DATA frames with no data and no END_STREAM.
    pub empty_data: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent_streams: 100,
            initial_window_size: 65_535,
            connection_window: 1024 * 1024,
            header_table_size: 4096,
            max_header_list_size: 16 * 1024,
            max_fields: 100,
            max_header_block: 32 * 1024,
            max_continuations: 32,
            per_second: Floods {
                resets: 100,
                settings: 100,
                pings: 100,
                ignored: 1000,
                window_updates: 10_000,
                empty_data: 100,
            },
        }
    }
}

/// Counts of one kind of frame in the current second.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rate {
    since: Option<Instant>,
    count: u32,
}

impl Rate {
    /// Counts one at `now`; false when that makes more than `limit` in the current second.
    pub(crate) fn allow(&mut self, now: Instant, limit: u32) -> bool {
        match self.since {
            Some(since) if now.saturating_duration_since(since) < Duration::from_secs(1) => {}
            _ => {
                self.since = Some(now);
                self.count = 0;
            }
        }
        self.count = self.count.saturating_add(1);
        self.count <= limit
    }
}

/// One rate per kind of flood that is counted per second.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    pub resets: Rate,
    pub settings: Rate,
    pub pings: Rate,
    pub ignored: Rate,
    pub window_updates: Rate,
    pub empty_data: Rate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_allows_its_limit_each_second() {
        let start = Instant::now();
        let mut rate = Rate::default();
        for _ in 0..3 {
            assert!(rate.allow(start, 3));
        }
        assert!(!rate.allow(start + Duration::from_millis(999), 3));
        assert!(rate.allow(start + Duration::from_secs(1), 3));
    }
}
