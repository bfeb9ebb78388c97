//! What a run measured: counters, latency histograms and, per subscriber and publisher, which
//! messages arrived. Each thread keeps its own; they merge exactly at the end.

use crate::stream::{latency_histogram as histogram, Histogram};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub fn record(histogram: &mut Histogram<u64>, value: Duration) {
    let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(ns.clamp(1, histogram.high()));
}

/// Sequence numbers tracked per publisher for duplicates (a bit each: 2 MiB at the most); a
/// message numbered past it is counted as received, not checked.
const MAX_TRACKED_SEQ: u64 = 1 << 24;

/// What one subscriber received from one publisher, over the whole run (a bitmap of the
/// sequence numbers seen, so that a message received again, in whatever second, is a duplicate).
#[derive(Clone, Debug, Default)]
pub struct Track {
    seen: Vec<u64>,
    /// Received numbered past [`MAX_TRACKED_SEQ`]: counted, not checked.
    untracked: u64,
    /// Read back from a results file: counts without the bitmap, which add up.
    counts_only: bool,
    pub highest: Option<u64>,
    pub unique: u64,
    pub duplicates: u64,
    /// Arrived after a message the publisher sent later.
    pub reordered: u64,
}

impl Track {
    pub fn add(&mut self, seq: u64) {
        if self.highest.is_some_and(|h| seq < h) {
            self.reordered = self.reordered.saturating_add(1);
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        if seq >= MAX_TRACKED_SEQ {
            self.untracked = self.untracked.saturating_add(1);
            self.unique = self.unique.saturating_add(1);
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let Some(slot) = self.seen.get_mut(word) else {
            return;
        };
        if *slot & (1 << bit) != 0 {
            self.duplicates = self.duplicates.saturating_add(1);
        } else {
            *slot |= 1 << bit;
            self.unique = self.unique.saturating_add(1);
        }
    }

    /// Messages up to the highest seen that never came (a lower bound on loss when the
    /// publisher's own count is not known).
    pub fn gaps(&self) -> u64 {
        self.highest
            .map_or(0, |h| h.saturating_add(1).saturating_sub(self.unique))
    }

    /// A track read back from a results file: its counts without the bitmap.
    pub fn from_counts(
        unique: u64,
        duplicates: u64,
        reordered: u64,
        highest: Option<u64>,
    ) -> Track {
        Track {
            counts_only: true,
            highest,
            unique,
            duplicates,
            reordered,
            ..Track::default()
        }
    }

    /// Adds what another thread, process or file saw of the same pair. Two bitmaps merge
    /// exactly (a number both saw is a duplicate); counts read from files add up (a subscriber
    /// lives in one process, so its tracks meet no other there).
    pub(crate) fn merge(&mut self, other: &Track) {
        let fresh = self.unique == 0 && self.duplicates == 0 && self.highest.is_none();
        if fresh {
            *self = other.clone();
            return;
        }
        self.duplicates = self.duplicates.saturating_add(other.duplicates);
        self.reordered = self.reordered.saturating_add(other.reordered);
        self.highest = self.highest.max(other.highest);
        if self.counts_only || other.counts_only {
            self.counts_only = true;
            self.unique = self.unique.saturating_add(other.unique);
            return;
        }
        if self.seen.len() < other.seen.len() {
            self.seen.resize(other.seen.len(), 0);
        }
        for (mine, theirs) in self.seen.iter_mut().zip(&other.seen) {
            self.duplicates = self
                .duplicates
                .saturating_add(u64::from((*mine & *theirs).count_ones()));
            *mine |= *theirs;
        }
        self.untracked = self.untracked.saturating_add(other.untracked);
        let bits: u64 = self.seen.iter().map(|w| u64::from(w.count_ones())).sum();
        self.unique = bits.saturating_add(self.untracked);
    }
}

#[derive(Clone, Debug)]
pub struct Stats {
    pub connect_attempts: u64,
    pub connected: u64,
    /// Connections that were open and ended (stopped by the run or not).
    pub disconnected: u64,
    pub reconnects: u64,
    /// CONNACK codes by value (0 is accepted).
    pub connack_codes: BTreeMap<u8, u64>,
    /// From the start of the attempt to CONNACK (to SUBACK for subscribers).
    pub connect_time: Histogram<u64>,
    pub tcp_time: Histogram<u64>,
    pub tls_time: Histogram<u64>,
    pub pings_sent: u64,
    pub pings_answered: u64,
    pub ping_time: Histogram<u64>,
    /// Messages due by the schedule before publishing ended (offered), sent, acknowledged, and
    /// sent late because the connection's window of unacknowledged messages was full. A message
    /// due and not sent by the end (a window still full) counts in `published_due` only.
    pub published_due: u64,
    pub published: u64,
    pub acked: u64,
    pub delayed_by_window: u64,
    /// How late each message left (its send less its due time): the generator's own share of
    /// the latency from the intended send. Messages that waited for a full window of
    /// unacknowledged messages (the broker's share) are not in it.
    pub lag: Histogram<u64>,
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2), from the intended send and from the actual send.
    pub ack_time: Histogram<u64>,
    pub ack_time_from_send: Histogram<u64>,
    pub received: u64,
    /// Messages received without this run's stamp (other traffic on the broker).
    pub received_foreign: u64,
    /// End to end: from the publisher's intended send to the subscriber's receipt, and from its
    /// actual send.
    pub e2e: Histogram<u64>,
    pub e2e_from_send: Histogram<u64>,
    /// (subscriber index, publisher index) → what arrived.
    pub tracks: HashMap<(u32, u32), Track>,
    /// Sent per publisher index (for loss against what was really sent).
    pub sent_by_publisher: HashMap<u32, u64>,
    /// The run's subscribers these figures include (a part runs some of them): only they are
    /// expected to have received anything. Empty: every subscriber of the run.
    pub subscribers: Vec<u32>,
    /// Failures by class, and one message of each.
    pub errors: BTreeMap<Cow<'static, str>, (u64, String)>,
    /// Disconnections the broker asked for (MQTT 5 reason codes; 0 for a 3.1.1 close).
    pub server_disconnects: BTreeMap<u8, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            connect_attempts: 0,
            connected: 0,
            disconnected: 0,
            reconnects: 0,
            connack_codes: BTreeMap::new(),
            connect_time: histogram(),
            tcp_time: histogram(),
            tls_time: histogram(),
            pings_sent: 0,
            pings_answered: 0,
            ping_time: histogram(),
            published_due: 0,
            published: 0,
            acked: 0,
            delayed_by_window: 0,
            lag: histogram(),
            ack_time: histogram(),
            ack_time_from_send: histogram(),
            received: 0,
            received_foreign: 0,
            e2e: histogram(),
            e2e_from_send: histogram(),
            tracks: HashMap::new(),
            sent_by_publisher: HashMap::new(),
            subscribers: Vec::new(),
            errors: BTreeMap::new(),
            server_disconnects: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub fn error(&mut self, class: &'static str, message: impl FnOnce() -> String) {
        let entry = self
            .errors
            .entry(Cow::Borrowed(class))
            .or_insert((0, String::new()));
        if entry.0 == 0 {
            entry.1 = message();
        }
        entry.0 += 1;
    }

    /// Adds another thread's, process's or second's figures (saturating: figures read from a
    /// file are not trusted to be small).
    pub fn merge(&mut self, other: &Stats) {
        let add = |mine: &mut u64, theirs: u64| *mine = mine.saturating_add(theirs);
        add(&mut self.connect_attempts, other.connect_attempts);
        add(&mut self.connected, other.connected);
        add(&mut self.disconnected, other.disconnected);
        add(&mut self.reconnects, other.reconnects);
        add(&mut self.pings_sent, other.pings_sent);
        add(&mut self.pings_answered, other.pings_answered);
        add(&mut self.published_due, other.published_due);
        add(&mut self.published, other.published);
        add(&mut self.acked, other.acked);
        add(&mut self.delayed_by_window, other.delayed_by_window);
        add(&mut self.received, other.received);
        add(&mut self.received_foreign, other.received_foreign);
        for (code, n) in &other.connack_codes {
            add(self.connack_codes.entry(*code).or_default(), *n);
        }
        for (code, n) in &other.server_disconnects {
            add(self.server_disconnects.entry(*code).or_default(), *n);
        }
        for (mine, theirs) in self.histograms_mut().into_iter().zip(other.histograms()) {
            // Every histogram here has the same bounds: adding cannot fail.
            let _ = mine.add(theirs);
        }
        for (key, track) in &other.tracks {
            self.tracks.entry(*key).or_default().merge(track);
        }
        for (publisher, sent) in &other.sent_by_publisher {
            add(self.sent_by_publisher.entry(*publisher).or_default(), *sent);
        }
        if !other.subscribers.is_empty() {
            self.subscribers.extend_from_slice(&other.subscribers);
            self.subscribers.sort_unstable();
            self.subscribers.dedup();
        }
        for (class, (n, message)) in &other.errors {
            let entry = self
                .errors
                .entry(class.clone())
                .or_insert((0, message.clone()));
            add(&mut entry.0, *n);
        }
    }

    /// The nine latency histograms, in the order of a second's frame.
    pub fn histograms(&self) -> [&Histogram<u64>; 9] {
        [
            &self.connect_time,
            &self.tcp_time,
            &self.tls_time,
            &self.ping_time,
            &self.lag,
            &self.ack_time,
            &self.ack_time_from_send,
            &self.e2e,
            &self.e2e_from_send,
        ]
    }

    /// [`Stats::histograms`], to fill.
    pub fn histograms_mut(&mut self) -> [&mut Histogram<u64>; 9] {
        [
            &mut self.connect_time,
            &mut self.tcp_time,
            &mut self.tls_time,
            &mut self.ping_time,
            &mut self.lag,
            &mut self.ack_time,
            &mut self.ack_time_from_send,
            &mut self.e2e,
            &mut self.e2e_from_send,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_counts_duplicates_reordering_and_gaps() {
        let mut track = Track::default();
        for seq in [0, 1, 3, 2, 3, 5] {
            track.add(seq);
        }
        assert_eq!(track.unique, 5);
        assert_eq!(track.duplicates, 1);
        assert_eq!(track.reordered, 1, "2 after 3");
        assert_eq!(track.gaps(), 1, "4 never came");
        let mut other = Track::default();
        other.add(4);
        other.add(0);
        track.merge(&other);
        assert_eq!(track.unique, 6);
        assert_eq!(track.duplicates, 2);
        assert_eq!(track.reordered, 2, "and 0 after 4");
        assert_eq!(track.gaps(), 0);
    }
}
