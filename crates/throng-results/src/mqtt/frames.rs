//! An MQTT run in the results stream: a frame per wall-clock second with what happened in it
//! (counters and latency histograms, which add up exactly over threads, processes and parts),
//! and one frame of totals at the end (what was sent per publisher and received per subscriber,
//! for loss, and one example message per error class).
//!
//! ```text
//! second : unix second (varint), counters length (varint), counters (JSON),
//!          histograms present (u16 LE bit mask, in HISTOGRAMS order), each as HdrHistogram V2
//! totals : JSON
//! ```

use super::stats::{Stats, Track};
use crate::record::{get_varint, put_varint};
use crate::stream::{is_our_histogram, Histogram};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;

/// What happened in one second (by the wall clock of the process that measured it).
#[derive(Clone, Debug, Default)]
pub struct Second {
    pub unix_second: u64,
    /// Only the additive figures are written: counters, codes, error counts, histograms.
    pub stats: Stats,
}

/// Seconds are equal when they encode alike (what a stream can tell apart).
impl PartialEq for Second {
    fn eq(&self, other: &Second) -> bool {
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        self.encode(&mut mine).is_ok() && other.encode(&mut theirs).is_ok() && mine == theirs
    }
}

/// The columns of `throng encode --to csv` for an MQTT run: one row a second.
pub const CSV_HEADER: &str = "second,connect_attempts,connected,disconnected,published,acked,received,errors,connect_p99_ns,ping_p99_ns,ack_p50_ns,ack_p99_ns,e2e_p50_ns,e2e_p99_ns,e2e_max_ns";

/// Counters of a second, as JSON (new counters can be added without a new format version).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Counts {
    connect_attempts: u64,
    connected: u64,
    disconnected: u64,
    reconnects: u64,
    pings_sent: u64,
    pings_answered: u64,
    published: u64,
    acked: u64,
    delayed_by_window: u64,
    received: u64,
    received_foreign: u64,
    connack_codes: BTreeMap<u8, u64>,
    server_disconnects: BTreeMap<u8, u64>,
    errors: BTreeMap<String, u64>,
}

impl Second {
    fn quantile(histogram: &Histogram<u64>, q: f64) -> Option<u64> {
        (!histogram.is_empty()).then(|| histogram.value_at_quantile(q))
    }

    fn errors(&self) -> u64 {
        self.stats.errors.values().map(|(n, _)| n).sum()
    }

    /// A line of `throng encode --to json`: the second's counters and latency quantiles
    /// (nanoseconds; null when nothing was measured).
    pub fn json(&self) -> serde_json::Value {
        let s = &self.stats;
        let q = Second::quantile;
        serde_json::json!({
            "second": crate::time::rfc3339(self.unix_second.saturating_mul(1_000_000_000)),
            "connect_attempts": s.connect_attempts,
            "connected": s.connected,
            "disconnected": s.disconnected,
            "published": s.published,
            "acked": s.acked,
            "received": s.received,
            "errors": self.errors(),
            "connect_p99": q(&s.connect_time, 0.99),
            "ping_p99": q(&s.ping_time, 0.99),
            "ack_p50": q(&s.ack_time, 0.5),
            "ack_p99": q(&s.ack_time, 0.99),
            "e2e_p50": q(&s.e2e, 0.5),
            "e2e_p99": q(&s.e2e, 0.99),
            "e2e_max": (!s.e2e.is_empty()).then(|| s.e2e.max()),
        })
    }

    /// A row under [`CSV_HEADER`] (empty where nothing was measured).
    pub fn csv_row(&self) -> String {
        let s = &self.stats;
        let q = |h: &Histogram<u64>, at: f64| {
            Second::quantile(h, at).map_or(String::new(), |v| v.to_string())
        };
        [
            crate::time::rfc3339(self.unix_second.saturating_mul(1_000_000_000)),
            s.connect_attempts.to_string(),
            s.connected.to_string(),
            s.disconnected.to_string(),
            s.published.to_string(),
            s.acked.to_string(),
            s.received.to_string(),
            self.errors().to_string(),
            q(&s.connect_time, 0.99),
            q(&s.ping_time, 0.99),
            q(&s.ack_time, 0.5),
            q(&s.ack_time, 0.99),
            q(&s.e2e, 0.5),
            q(&s.e2e, 0.99),
            if s.e2e.is_empty() {
                String::new()
            } else {
                s.e2e.max().to_string()
            },
        ]
        .join(",")
    }

    /// The frame's payload.
    pub fn encode(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let s = &self.stats;
        let counts = Counts {
            connect_attempts: s.connect_attempts,
            connected: s.connected,
            disconnected: s.disconnected,
            reconnects: s.reconnects,
            pings_sent: s.pings_sent,
            pings_answered: s.pings_answered,
            published: s.published,
            acked: s.acked,
            delayed_by_window: s.delayed_by_window,
            received: s.received,
            received_foreign: s.received_foreign,
            connack_codes: s.connack_codes.clone(),
            server_disconnects: s.server_disconnects.clone(),
            errors: s
                .errors
                .iter()
                .map(|(class, (n, _))| (class.to_string(), *n))
                .collect(),
        };
        let json = serde_json::to_vec(&counts).map_err(io::Error::other)?;
        put_varint(out, self.unix_second);
        put_varint(out, json.len() as u64);
        out.extend_from_slice(&json);
        let all = self.stats.histograms();
        let mask = all
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .fold(0u16, |mask, (i, _)| mask | 1 << i);
        out.extend_from_slice(&mask.to_le_bytes());
        let mut serializer = V2Serializer::new();
        for histogram in all.into_iter().filter(|h| !h.is_empty()) {
            serializer
                .serialize(histogram, out)
                .map_err(|e| io::Error::other(format!("histogram: {e:?}")))?;
        }
        Ok(())
    }

    /// `None` for a malformed second (the reader calls the file damaged).
    pub fn decode(mut input: &[u8]) -> Option<Second> {
        let input = &mut input;
        let unix_second = get_varint(input)?;
        let len = usize::try_from(get_varint(input)?).ok()?;
        let json = input.get(..len)?;
        let counts: Counts = serde_json::from_slice(json).ok()?;
        *input = input.get(len..)?;
        let (mask, rest) = input.split_first_chunk::<2>()?;
        let mask = u16::from_le_bytes(*mask);
        *input = rest;
        let mut stats = Stats {
            connect_attempts: counts.connect_attempts,
            connected: counts.connected,
            disconnected: counts.disconnected,
            reconnects: counts.reconnects,
            pings_sent: counts.pings_sent,
            pings_answered: counts.pings_answered,
            published: counts.published,
            acked: counts.acked,
            delayed_by_window: counts.delayed_by_window,
            received: counts.received,
            received_foreign: counts.received_foreign,
            connack_codes: counts.connack_codes,
            server_disconnects: counts.server_disconnects,
            errors: counts
                .errors
                .into_iter()
                .map(|(class, n)| (Cow::Owned(class), (n, String::new())))
                .collect(),
            ..Stats::default()
        };
        if mask >> 9 != 0 {
            return None;
        }
        for (i, histogram) in stats.histograms_mut().into_iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            // The same guard as an HTTP interval's: a crafted header must not size a huge
            // histogram before a byte of it is read.
            if !is_our_histogram(input) {
                return None;
            }
            *histogram = Deserializer::new().deserialize(input).ok()?;
        }
        if !input.is_empty() {
            return None;
        }
        Some(Second { unix_second, stats })
    }
}

/// What a run knows only at its end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Messages the schedule made due before publishing ended.
    pub published_due: u64,
    /// (publisher index, messages it sent).
    pub sent_by_publisher: Vec<(u32, u64)>,
    /// (subscriber index, publisher index, unique, duplicates, reordered, highest sequence + 1
    /// or 0 when none): what each subscriber received from each publisher.
    pub tracks: Vec<(u32, u32, u64, u64, u64, u64)>,
    /// The run's subscribers this process ran.
    pub subscribers: Vec<u32>,
    /// One message per error class.
    pub error_examples: BTreeMap<String, String>,
    /// "duration", "interrupted".
    pub ended_by: String,
}

impl Totals {
    /// The totals of a run's merged figures.
    pub fn of(stats: &Stats, ended_by: &str) -> Totals {
        let mut sent_by_publisher: Vec<(u32, u64)> = stats
            .sent_by_publisher
            .iter()
            .map(|(p, n)| (*p, *n))
            .collect();
        sent_by_publisher.sort_unstable();
        let mut tracks: Vec<_> = stats
            .tracks
            .iter()
            .map(|((subscriber, publisher), track)| {
                (
                    *subscriber,
                    *publisher,
                    track.unique,
                    track.duplicates,
                    track.reordered,
                    track.highest.map_or(0, |h| h.saturating_add(1)),
                )
            })
            .collect();
        tracks.sort_unstable();
        Totals {
            published_due: stats.published_due,
            sent_by_publisher,
            tracks,
            subscribers: stats.subscribers.clone(),
            error_examples: stats
                .errors
                .iter()
                .map(|(class, (_, example))| (class.to_string(), example.clone()))
                .collect(),
            ended_by: ended_by.to_string(),
        }
    }

    /// These totals as frames no larger than a frame may be (64 MiB): the first carries all
    /// but the tails of the long lists, the others only those tails (totals add up).
    pub fn into_frames(self) -> Vec<Totals> {
        // At most about 130 bytes of JSON each (six numbers of up to 20 digits): 26 MB a frame.
        self.into_frames_of(200_000)
    }

    fn into_frames_of(mut self, per_frame: usize) -> Vec<Totals> {
        fn tail<T>(list: &mut Vec<T>, keep: usize) -> Vec<T> {
            list.split_off(list.len().min(keep))
        }
        let n = per_frame.max(1);
        let mut tracks = tail(&mut self.tracks, n);
        let mut sent = tail(&mut self.sent_by_publisher, n);
        let mut subscribers = tail(&mut self.subscribers, n);
        let mut frames = vec![self];
        while !(tracks.is_empty() && sent.is_empty() && subscribers.is_empty()) {
            let (more_tracks, more_sent, more_subscribers) = (
                tail(&mut tracks, n),
                tail(&mut sent, n),
                tail(&mut subscribers, n),
            );
            frames.push(Totals {
                tracks: std::mem::replace(&mut tracks, more_tracks),
                sent_by_publisher: std::mem::replace(&mut sent, more_sent),
                subscribers: std::mem::replace(&mut subscribers, more_subscribers),
                ..Totals::default()
            });
        }
        frames
    }

    /// Adds these totals to figures merged from seconds.
    pub fn add_to(&self, stats: &mut Stats) {
        stats.published_due = stats.published_due.saturating_add(self.published_due);
        for (publisher, sent) in &self.sent_by_publisher {
            let total = stats.sent_by_publisher.entry(*publisher).or_default();
            *total = total.saturating_add(*sent);
        }
        if !self.subscribers.is_empty() {
            stats.subscribers.extend_from_slice(&self.subscribers);
            stats.subscribers.sort_unstable();
            stats.subscribers.dedup();
        }
        for &(subscriber, publisher, unique, duplicates, reordered, highest) in &self.tracks {
            let track = Track::from_counts(unique, duplicates, reordered, highest.checked_sub(1));
            stats
                .tracks
                .entry((subscriber, publisher))
                .or_default()
                .merge(&track);
        }
        for (class, example) in &self.error_examples {
            let entry = stats
                .errors
                .entry(Cow::Owned(class.clone()))
                .or_insert((0, String::new()));
            if entry.1.is_empty() {
                entry.1 = example.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::stats::record;
    use std::time::Duration;

    #[test]
    fn a_second_reads_back_as_written() {
        let mut stats = Stats {
            connect_attempts: 5,
            connected: 4,
            disconnected: 1,
            published: 100,
            acked: 99,
            received: 98,
            ..Stats::default()
        };
        stats.connack_codes.insert(0, 4);
        stats.connack_codes.insert(0x87, 1);
        stats.error("connack-refused", || "CONNACK 0x87".into());
        record(&mut stats.e2e, Duration::from_millis(3));
        record(&mut stats.e2e, Duration::from_millis(7));
        record(&mut stats.ping_time, Duration::from_micros(80));
        let second = Second {
            unix_second: 1_796_050_800,
            stats,
        };
        let mut bytes = Vec::new();
        second.encode(&mut bytes).unwrap();
        let back = Second::decode(&bytes).expect("decodes");

        assert_eq!(back.unix_second, 1_796_050_800);
        let s = &back.stats;
        assert_eq!((s.connect_attempts, s.connected, s.disconnected), (5, 4, 1));
        assert_eq!((s.published, s.acked, s.received), (100, 99, 98));
        assert_eq!(s.connack_codes.get(&0x87), Some(&1));
        assert_eq!(s.errors.get("connack-refused").map(|e| e.0), Some(1));
        assert_eq!(s.e2e, second.stats.e2e);
        assert_eq!(s.ping_time.len(), 1);
        assert!(s.ack_time.is_empty());
        for cut in 0..bytes.len() {
            assert!(Second::decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            Second::decode(&longer).is_none(),
            "bytes after the last histogram"
        );
        // A second without histograms ends with its mask: bit 9 names a tenth histogram,
        // which does not exist.
        let mut unknown = Vec::new();
        Second::default().encode(&mut unknown).unwrap();
        assert!(Second::decode(&unknown).is_some());
        *unknown.last_mut().unwrap() |= 0b10;
        assert!(
            Second::decode(&unknown).is_none(),
            "an unknown histogram in the mask"
        );
    }

    #[test]
    fn totals_carry_loss_and_examples_across_a_file() {
        let mut stats = Stats::default();
        stats.sent_by_publisher.insert(3, 10);
        for seq in [0, 1, 1, 2, 4] {
            stats.tracks.entry((0, 3)).or_default().add(seq);
        }
        stats.error("timeout", || "no CONNACK within 10s".into());
        stats.published_due = 11;
        let totals = Totals::of(&stats, "duration");
        let json = serde_json::to_vec(&totals).unwrap();
        let back: Totals = serde_json::from_slice(&json).unwrap();

        let mut merged = Stats::default();
        merged.error("timeout", String::new);
        back.add_to(&mut merged);
        assert_eq!(merged.published_due, 11);
        assert_eq!(merged.sent_by_publisher.get(&3), Some(&10));
        let track = &merged.tracks[&(0, 3)];
        assert_eq!((track.unique, track.duplicates), (4, 1));
        assert_eq!(track.gaps(), 1, "3 never came");
        assert_eq!(merged.errors["timeout"].1, "no CONNACK within 10s");
    }

    #[test]
    fn long_totals_split_into_frames_that_add_up_to_the_same() {
        let mut stats = Stats::default();
        for publisher in 0..25u32 {
            stats.sent_by_publisher.insert(publisher, 2);
            stats.tracks.entry((7, publisher)).or_default().add(0);
        }
        stats.subscribers = vec![7];
        let frames = Totals::of(&stats, "duration").into_frames_of(10);
        assert_eq!(frames.len(), 3, "25 entries, 10 a frame");
        let mut merged = Stats::default();
        for frame in &frames {
            frame.add_to(&mut merged);
        }
        assert_eq!(merged.sent_by_publisher.len(), 25);
        assert_eq!(merged.tracks.len(), 25);
        assert_eq!(merged.subscribers, vec![7]);
    }

    #[test]
    fn a_message_received_again_in_a_later_second_is_a_duplicate() {
        // What a thread counts over the run, merged into a fresh run's figures and again.
        let mut thread = Stats::default();
        for seq in [0, 1, 2] {
            thread.tracks.entry((0, 0)).or_default().add(seq);
        }
        thread.tracks.entry((0, 0)).or_default().add(1);
        let mut run = Stats::default();
        run.merge(&thread);
        let track = &run.tracks[&(0, 0)];
        assert_eq!((track.unique, track.duplicates), (3, 1));
        let mut other = Stats::default();
        other.tracks.entry((0, 0)).or_default().add(2);
        run.merge(&other);
        let track = &run.tracks[&(0, 0)];
        assert_eq!(
            (track.unique, track.duplicates),
            (3, 2),
            "2 came on two threads"
        );
    }
}
