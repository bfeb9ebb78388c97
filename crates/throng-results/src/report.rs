//! Reports over any number of results streams, merged exactly: every figure is computed from
//! the records themselves, so the report of two files is the report of one run over both.
//!
//! The text report keeps vegeta's layout (so eyes and scripts used to it still work), then adds
//! what vegeta lacks: offered against achieved rate, the generator's own lag, the phases of a
//! request, errors by class, and the spread over servers (`x-served-by`) and source addresses.

use crate::record::{ErrorClass, Record};
use crate::stream::{latency_histogram, End, Frame, Meta, Reader, HISTOGRAM_MAX_NS};
use crate::time::{go_duration, rfc3339};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;

/// Sends later than this at the 99th percentile mean the generator fell behind its schedule.
const LAG_P99_LIMIT_NS: u64 = 10_000_000;

/// Everything a report shows, gathered from records.
pub struct Summary {
    requests: u64,
    successes: u64,
    latency: Histogram<u64>,
    latency_sum: u128,
    latency_min: u64,
    latency_max: u64,
    service: Histogram<u64>,
    lag: Histogram<u64>,
    lag_max: u64,
    connect: Histogram<u64>,
    tls: Histogram<u64>,
    tls_resumed: u64,
    /// Requests sent again on a new connection after a reused one closed.
    retries: u64,
    /// Requests over HTTP/2, and those that waited for a stream slot.
    http2: u64,
    waited_for_stream: u64,
    /// Some run asked for HTTP/2.
    http2_asked: bool,
    first_byte: Histogram<u64>,
    bytes_in: u64,
    bytes_out: u64,
    status_codes: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    classes: BTreeMap<ErrorClass, u64>,
    timeouts: BTreeMap<&'static str, u64>,
    served_by: BTreeMap<String, u64>,
    connections_by_source: BTreeMap<String, u64>,
    /// Absolute times (ns since the epoch): first and last send, first due, last end.
    earliest: u64,
    latest: u64,
    end: u64,
    runs: Vec<Meta>,
    ends: Vec<End>,
    truncated_inputs: usize,
    /// Every input with its metadata, for the parts' checks.
    inputs: Vec<crate::parts::Input>,
    /// Each part's own figures, by part index.
    per_part: BTreeMap<u32, crate::parts::PartFigures>,
    buckets: Option<Buckets>,
}

/// Latency buckets for `--type hist[...]`, counted exactly from the records.
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    bounds: Vec<u64>,
    counts: Vec<u64>,
}

impl Buckets {
    /// Parses vegeta's `hist[0,10ms,50ms,1s]` (the bucket bounds, in increasing order).
    pub fn parse(spec: &str) -> Result<Buckets, String> {
        let inner = spec
            .strip_prefix("hist[")
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(|| format!("`{spec}`: expected hist[0,10ms,50ms,...]"))?;
        let mut bounds = Vec::new();
        for part in inner.split(',').map(str::trim) {
            let ns =
                parse_bound(part).ok_or_else(|| format!("`{spec}`: `{part}` is not a duration"))?;
            if bounds.last().is_some_and(|last| ns <= *last) {
                return Err(format!("`{spec}`: bounds must increase"));
            }
            bounds.push(ns);
        }
        let counts = vec![0; bounds.len()];
        Ok(Buckets { bounds, counts })
    }

    fn add(&mut self, latency: u64) {
        if let Some(i) = self.bounds.iter().rposition(|bound| latency >= *bound) {
            self.counts[i] += 1;
        }
    }
}

fn parse_bound(text: &str) -> Option<u64> {
    let units = [
        ("ns", 1u64),
        ("us", 1_000),
        ("µs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];
    if text == "0" {
        return Some(0);
    }
    for (unit, size) in units.iter().rev().chain(units.iter()) {
        if let Some(number) = text.strip_suffix(unit) {
            if let Ok(value) = number.parse::<f64>() {
                if value >= 0.0 && !number.ends_with(|c: char| c.is_alphabetic()) {
                    return Some((value * *size as f64) as u64);
                }
            }
        }
    }
    None
}

impl Default for Summary {
    fn default() -> Self {
        Summary::new(None)
    }
}

impl Summary {
    pub fn new(buckets: Option<Buckets>) -> Summary {
        Summary {
            requests: 0,
            successes: 0,
            latency: latency_histogram(),
            latency_sum: 0,
            latency_min: u64::MAX,
            latency_max: 0,
            service: latency_histogram(),
            lag: latency_histogram(),
            lag_max: 0,
            connect: latency_histogram(),
            tls: latency_histogram(),
            tls_resumed: 0,
            retries: 0,
            http2: 0,
            waited_for_stream: 0,
            http2_asked: false,
            first_byte: latency_histogram(),
            bytes_in: 0,
            bytes_out: 0,
            status_codes: BTreeMap::new(),
            errors: BTreeMap::new(),
            classes: BTreeMap::new(),
            timeouts: BTreeMap::new(),
            served_by: BTreeMap::new(),
            connections_by_source: BTreeMap::new(),
            earliest: u64::MAX,
            latest: 0,
            end: 0,
            runs: Vec::new(),
            ends: Vec::new(),
            truncated_inputs: 0,
            inputs: Vec::new(),
            per_part: BTreeMap::new(),
            buckets,
        }
    }

    /// Reads a whole stream into the summary. A truncated tail is counted, not an error.
    pub fn add_stream<R: Read>(&mut self, reader: Reader<R>) -> std::io::Result<()> {
        let name = format!("input {}", self.inputs.len() + 1);
        self.add_named_stream(&name, reader)
    }

    /// [`Summary::add_stream`] for a file called `name` (in the parts' messages).
    pub fn add_named_stream<R: Read>(
        &mut self,
        name: &str,
        reader: Reader<R>,
    ) -> std::io::Result<()> {
        self.add_rest_of_stream(name, None, reader)
    }

    /// [`Summary::add_named_stream`] for a stream whose meta frame was read already.
    pub fn add_rest_of_stream<R: Read>(
        &mut self,
        name: &str,
        meta_read: Option<Meta>,
        mut reader: Reader<R>,
    ) -> std::io::Result<()> {
        let mut meta = Meta::default();
        if let Some(m) = meta_read {
            meta = m.clone();
            self.runs.push(m);
        }
        let mut complete = false;
        let mut last_ns = 0;
        while let Some(frame) = reader.next_frame()? {
            match frame {
                Frame::Meta(m) => {
                    meta = (*m).clone();
                    self.runs.push(*m);
                }
                Frame::Record(record) => {
                    last_ns = last_ns.max(record.intended.saturating_add(record.latency));
                    self.add(&meta, &record);
                }
                Frame::Interval(_) => {}
                Frame::End(end) => {
                    complete = true;
                    self.ends.push(end);
                }
                // MQTT runs are read by crate::mqtt::summary.
                Frame::Progress(_) | Frame::MqttSecond(_) | Frame::MqttTotals(_) => {}
            }
        }
        if reader.truncated() {
            self.truncated_inputs += 1;
        }
        self.inputs.push(crate::parts::Input {
            name: name.to_string(),
            meta,
            complete,
            last_ns,
        });
        Ok(())
    }

    /// Whether the inputs that are parts of a run belong together (see [`crate::parts`]).
    pub fn check_parts(&self) -> Result<crate::parts::Parts, String> {
        crate::parts::check(&self.inputs)
    }

    /// Starts a run whose records come one by one ([`Summary::add`]), as an attack sums itself
    /// up while it writes them.
    pub fn add_run(&mut self, meta: &Meta) {
        self.runs.push(meta.clone());
    }

    /// Ends a run started with [`Summary::add_run`].
    pub fn add_end(&mut self, end: &End) {
        self.ends.push(end.clone());
    }

    /// Adds one record of the run described by `meta`.
    pub fn add(&mut self, meta: &Meta, record: &Record) {
        if meta.part_of > 0 {
            self.per_part
                .entry(meta.part_index)
                .or_default()
                .add(record);
        }
        self.requests += 1;
        if record.is_success() {
            self.successes += 1;
        }
        let clamp = |v: u64| v.clamp(1, HISTOGRAM_MAX_NS);
        self.latency.saturating_record(clamp(record.latency));
        self.latency_sum += u128::from(record.latency);
        self.latency_min = self.latency_min.min(record.latency);
        self.latency_max = self.latency_max.max(record.latency);
        self.service.saturating_record(clamp(record.service_time()));
        self.lag.saturating_record(clamp(record.lag()));
        self.lag_max = self.lag_max.max(record.lag());
        for (value, histogram) in [
            (record.connect, &mut self.connect),
            (record.tls, &mut self.tls),
            (record.first_byte, &mut self.first_byte),
        ] {
            if value > 0 {
                histogram.saturating_record(clamp(value));
            }
        }
        self.tls_resumed += u64::from(record.tls_resumed);
        self.retries += u64::from(record.retried);
        self.http2 += u64::from(record.http2);
        self.waited_for_stream += u64::from(record.waited_for_stream);
        self.http2_asked |= !meta.http2.is_empty();
        self.bytes_in += record.bytes_in;
        self.bytes_out += record.bytes_out;
        *self.status_codes.entry(record.status).or_default() += 1;
        if let Some(class) = record.error {
            *self.classes.entry(class).or_default() += 1;
            *self.errors.entry(record.error_text.clone()).or_default() += 1;
        }
        if let Some(phase) = record.timeout_phase {
            *self.timeouts.entry(phase.name()).or_default() += 1;
        }
        if !record.served_by.is_empty() {
            *self.served_by.entry(record.served_by.clone()).or_default() += 1;
        }
        if record.connect > 0 {
            let source = record
                .source
                .and_then(|i| meta.sources.get(usize::from(i)).cloned())
                .unwrap_or_else(|| "(default)".into());
            *self.connections_by_source.entry(source).or_default() += 1;
        }
        let start = meta.start_unix_ns;
        self.earliest = self.earliest.min(start.saturating_add(record.sent));
        self.latest = self.latest.max(start.saturating_add(record.sent));
        self.end = self.end.max(
            start
                .saturating_add(record.intended)
                .saturating_add(record.latency),
        );
        if let Some(buckets) = &mut self.buckets {
            buckets.add(record.latency);
        }
    }

    fn attack_ns(&self) -> u64 {
        self.latest.saturating_sub(self.earliest)
    }

    fn wait_ns(&self) -> u64 {
        self.end.saturating_sub(self.latest)
    }

    /// vegeta's rate: requests over the span from the first send to the last.
    fn rate(&self) -> f64 {
        per_second(self.requests, self.attack_ns())
    }

    /// The rate the sends kept: the gaps between them over that span, comparable to the offered
    /// rate however few the requests.
    fn achieved_rate(&self) -> f64 {
        per_second(self.requests.saturating_sub(1), self.attack_ns())
    }

    /// vegeta's throughput: successes over the span from the first send to the last response.
    fn throughput(&self) -> f64 {
        per_second(self.successes, self.attack_ns() + self.wait_ns())
    }

    /// The offered rate: the runs' rates added up (runs side by side make one load). The parts
    /// of one run each carry the whole schedule's rate: it counts once, for the share of its
    /// parts that were read.
    fn offered_rate(&self) -> f64 {
        let mut parts_of_runs: BTreeMap<&str, (f64, u32, u32)> = BTreeMap::new();
        let mut rate = 0.0;
        for run in &self.runs {
            if run.part_of > 0 {
                let entry = parts_of_runs
                    .entry(&run.run_id)
                    .or_insert((run.rate, run.part_of, 0));
                entry.2 += 1;
            } else {
                rate += run.rate;
            }
        }
        for (whole, of, read) in parts_of_runs.values() {
            rate += whole * f64::from((*read).min(*of)) / f64::from(*of);
        }
        rate
    }

    /// Judges each threshold on this summary's figures.
    pub fn judge(
        &self,
        thresholds: &[crate::threshold::Threshold],
    ) -> Vec<crate::threshold::Verdict> {
        let quantile = |q: f64| self.latency_quantile(q);
        let errors = |class: Option<ErrorClass>| match class {
            Some(class) => self.classes.get(&class).copied().unwrap_or(0),
            None => self.classes.values().sum(),
        };
        let status = |code: u16| self.status_codes.get(&code).copied().unwrap_or(0);
        let figures = crate::threshold::Figures {
            quantile: &quantile,
            mean: self.mean_latency(),
            min: if self.requests == 0 {
                0
            } else {
                self.latency_min
            },
            max: self.latency_max,
            requests: self.requests,
            successes: self.successes,
            rate: self.achieved_rate(),
            errors: &errors,
            status: &status,
        };
        thresholds.iter().map(|t| t.judge(&figures)).collect()
    }

    /// A latency quantile, never above the exact maximum.
    fn latency_quantile(&self, q: f64) -> u64 {
        quantile(&self.latency, q).min(self.latency_max)
    }

    fn mean_latency(&self) -> u64 {
        if self.requests == 0 {
            0
        } else {
            (self.latency_sum / u128::from(self.requests)) as u64
        }
    }

    /// Sentences about the generator itself, when it did not do what it was asked.
    fn generator_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.requests == 0 {
            return warnings;
        }
        let lag_p99 = quantile(&self.lag, 0.99);
        let offered = self.offered_rate();
        let achieved = self.achieved_rate();
        let scheduled: u64 = self.ends.iter().map(|e| e.scheduled).sum();
        let delayed: u64 = self.ends.iter().map(|e| e.delayed_by_cap).sum();
        let short = offered > 0.0 && self.requests > 10 && achieved < offered * 0.99;
        let sent: u64 = self.ends.iter().map(|e| e.sent).sum();
        if (lag_p99 > LAG_P99_LIMIT_NS || short) && delayed > 0 {
            // The schedule slipped because requests waited for --max-inflight slots: the target
            // answered too slowly for this cap, not the generator.
            warnings.push(format!(
                "The offered load was not delivered: {achieved:.2} requests/s of the {offered:.2} offered went out, because {delayed} of {scheduled} requests found --max-inflight requests in flight and waited for a slot (up to {}, p99 {}). The target answered too slowly for this cap: raise --max-inflight, or this is the target's limit. Latencies count from the intended send times and include the wait.",
                go_duration(self.lag_max),
                go_duration(lag_p99)
            ));
        } else if lag_p99 > LAG_P99_LIMIT_NS || short {
            warnings.push(format!(
                "The generator could not keep up: it sent {achieved:.2} requests/s of the {offered:.2} offered, \
                 and its sends were late by up to {} (p99 {}). Latencies count from the intended send \
                 times, so they include this lag and the target may be faster than they show: use more \
                 --threads, or more processes.",
                go_duration(self.lag_max),
                go_duration(lag_p99)
            ));
        } else if delayed > 0 {
            warnings.push(format!(
                "{delayed} of {scheduled} requests were due while --max-inflight requests were in flight, \
                 and waited for a slot; their latencies include the wait."
            ));
        }
        if scheduled > sent {
            warnings.push(format!(
                "{} of {scheduled} requests due by the end were never sent, so the offered load was \
                 not delivered in full.",
                scheduled - sent
            ));
        }
        if let Ok(parts) = self.check_parts() {
            warnings.extend(parts.warnings);
        }
        if self.truncated_inputs > 0 {
            warnings.push(format!(
                "{} input(s) ended in the middle of a record (a killed run, or one still writing): read up to the last whole record.",
                self.truncated_inputs
            ));
        }
        warnings
    }

    /// vegeta's text report, then throng's additions.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let q = quantile;
        let min = if self.requests == 0 {
            0
        } else {
            self.latency_min
        };
        let line = |out: &mut String, label: &str, fields: &str, values: String| {
            let _ = writeln!(out, "{label:<14}{fields:<34}{values}");
        };
        line(
            &mut out,
            "Requests",
            "[total, rate, throughput]",
            format!(
                "{}, {:.2}, {:.2}",
                self.requests,
                self.rate(),
                self.throughput()
            ),
        );
        line(
            &mut out,
            "Duration",
            "[total, attack, wait]",
            format!(
                "{}, {}, {}",
                go_duration(self.attack_ns() + self.wait_ns()),
                go_duration(self.attack_ns()),
                go_duration(self.wait_ns())
            ),
        );
        line(
            &mut out,
            "Latencies",
            "[min, mean, 50, 90, 95, 99, max]",
            [
                min,
                self.mean_latency(),
                self.latency_quantile(0.5),
                self.latency_quantile(0.9),
                self.latency_quantile(0.95),
                self.latency_quantile(0.99),
                self.latency_max,
            ]
            .map(go_duration)
            .join(", "),
        );
        line(
            &mut out,
            "Bytes In",
            "[total, mean]",
            format!(
                "{}, {:.2}",
                self.bytes_in,
                mean(self.bytes_in, self.requests)
            ),
        );
        line(
            &mut out,
            "Bytes Out",
            "[total, mean]",
            format!(
                "{}, {:.2}",
                self.bytes_out,
                mean(self.bytes_out, self.requests)
            ),
        );
        line(
            &mut out,
            "Success",
            "[ratio]",
            format!("{:.2}%", 100.0 * mean(self.successes, self.requests)),
        );
        line(
            &mut out,
            "Status Codes",
            "[code:count]",
            self.status_codes
                .iter()
                .map(|(code, n)| format!("{code}:{n}"))
                .collect::<Vec<_>>()
                .join("  "),
        );
        let _ = writeln!(out, "Error Set:");
        for error in self.errors.keys() {
            let _ = writeln!(out, "{error}");
        }

        let _ = writeln!(out);
        let achieved = self.achieved_rate();
        let offered = self.offered_rate();
        // Results read from JSON lines (vegeta's, or encoded ones) do not carry the offered rate.
        let offered_text = match offered > 0.0 {
            true => format!("{offered:.2}"),
            false => "not recorded".to_string(),
        };
        let share = match offered > 0.0 {
            true => format!("{:.1}%", 100.0 * achieved / offered),
            false => "-".to_string(),
        };
        line(&mut out, "Offered", "[rate]", offered_text);
        line(
            &mut out,
            "Achieved",
            "[rate, % of offered]",
            format!("{achieved:.2}, {share}"),
        );
        line(
            &mut out,
            "Lag",
            "[mean, 50, 99, max]",
            format!(
                "{}, {}, {}, {}",
                go_duration(self.lag.mean() as u64),
                go_duration(q(&self.lag, 0.5)),
                go_duration(q(&self.lag, 0.99)),
                go_duration(self.lag_max)
            ),
        );
        line(
            &mut out,
            "Service Time",
            "[50, 99, max] (from actual send)",
            format!(
                "{}, {}, {}",
                go_duration(q(&self.service, 0.5)),
                go_duration(q(&self.service, 0.99)),
                go_duration(self.service.max())
            ),
        );
        for (label, histogram) in [
            ("Connect", &self.connect),
            ("TLS", &self.tls),
            ("First Byte", &self.first_byte),
        ] {
            let timings = format!(
                "{}, {}, {}, {}, {}",
                histogram.len(),
                go_duration(histogram.mean() as u64),
                go_duration(q(histogram, 0.5)),
                go_duration(q(histogram, 0.99)),
                go_duration(histogram.max())
            );
            line(&mut out, label, "[count, mean, 50, 99, max]", timings);
        }
        if !self.tls.is_empty() {
            let resumed = format!("{} of {}", self.tls_resumed, self.tls.len());
            line(&mut out, "TLS Resumed", "[handshakes]", resumed);
        }
        if self.http2 > 0 || self.http2_asked {
            let http1 = self.requests.saturating_sub(self.http2);
            let fell_back = match (self.http2_asked, http1) {
                (true, 1..) => {
                    " (HTTP/2 was asked for: the rest went over HTTP/1.1, the server's choice)"
                }
                _ => "",
            };
            line(
                &mut out,
                "Protocol",
                "[HTTP/2, HTTP/1.1]",
                format!("{}, {http1}{fell_back}", self.http2),
            );
        }
        if self.waited_for_stream > 0 {
            line(
                &mut out,
                "Stream Waits",
                "[count]",
                format!(
                    "{} (every HTTP/2 connection at the server's concurrent streams, and no more allowed: sent when a stream ended, measured from when due)",
                    self.waited_for_stream
                ),
            );
        }
        if self.retries > 0 {
            line(
                &mut out,
                "Retries",
                "[count]",
                format!(
                    "{} (a reused connection closed before the response: sent again on a new one)",
                    self.retries
                ),
            );
        }
        let classes: Vec<String> = self
            .classes
            .iter()
            .map(|(c, n)| format!("{}:{n}", c.name()))
            .collect();
        let classes = if classes.is_empty() {
            "none".to_string()
        } else {
            classes.join("  ")
        };
        line(&mut out, "Errors", "[class:count]", classes);
        if !self.timeouts.is_empty() {
            line(
                &mut out,
                "Timeouts",
                "[phase:count]",
                self.timeouts
                    .iter()
                    .map(|(p, n)| format!("{p}:{n}"))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
        }
        if !self.served_by.is_empty() {
            line(
                &mut out,
                "Served By",
                "[x-served-by:count]",
                self.served_by
                    .iter()
                    .map(|(s, n)| format!("{s}={n}"))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
        }
        if !self.connections_by_source.is_empty() {
            line(
                &mut out,
                "Sources",
                "[address:connections]",
                self.connections_by_source
                    .iter()
                    .map(|(s, n)| format!("{s}={n}"))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
        }
        if !self.per_part.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<6}{:<20}{:<24}{:>10}{:>8}{:>12}{:>10}",
                "Part", "Host", "File", "Requests", "Errors", "p99", "Late"
            );
            for (index, figures) in &self.per_part {
                let input = self.inputs.iter().find(|i| i.meta.part_index == *index);
                let _ = writeln!(
                    out,
                    "{:<6}{:<20}{:<24}{:>10}{:>8}{:>12}{:>10}",
                    index,
                    input.map_or("", |i| i.meta.host.as_str()),
                    input.map_or("", |i| i.name.as_str()),
                    figures.requests,
                    figures.errors,
                    go_duration(quantile(&figures.latency, 0.99)),
                    go_duration(input.map_or(0, |i| i.meta.start_late_ns)),
                );
            }
        }
        for warning in self.generator_warnings() {
            let _ = writeln!(out, "\n{warning}");
        }
        out
    }

    /// vegeta's JSON metrics, with throng's additions under `"throng"`.
    pub fn json(&self) -> Value {
        let q = quantile;
        let summary = |h: &Histogram<u64>| json!({"count": h.len(), "mean": h.mean() as u64, "50th": q(h, 0.5), "99th": q(h, 0.99), "max": h.max()});
        let times = |ns: u64| {
            if self.requests == 0 {
                Value::Null
            } else {
                Value::String(rfc3339(ns))
            }
        };
        json!({
            "latencies": {
                "total": self.latency_sum as u64, "mean": self.mean_latency(),
                "50th": self.latency_quantile(0.5), "90th": self.latency_quantile(0.9),
                "95th": self.latency_quantile(0.95), "99th": self.latency_quantile(0.99), "max": self.latency_max,
                "min": if self.requests == 0 { 0 } else { self.latency_min },
            },
            "bytes_in": {"total": self.bytes_in, "mean": mean(self.bytes_in, self.requests)},
            "bytes_out": {"total": self.bytes_out, "mean": mean(self.bytes_out, self.requests)},
            "earliest": times(self.earliest), "latest": times(self.latest), "end": times(self.end),
            "duration": self.attack_ns(), "wait": self.wait_ns(),
            "requests": self.requests, "rate": self.rate(), "throughput": self.throughput(),
            "success": mean(self.successes, self.requests),
            "status_codes": self.status_codes.iter().map(|(c, n)| (c.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "errors": self.errors.keys().collect::<Vec<_>>(),
            "throng": {
                "offered_rate": self.offered_rate(),
                "achieved_rate": self.achieved_rate(),
                "lag": {"mean": self.lag.mean() as u64, "50th": q(&self.lag, 0.5), "90th": q(&self.lag, 0.9), "99th": q(&self.lag, 0.99), "max": self.lag_max},
                "service_time": summary(&self.service),
                "connect": summary(&self.connect), "tls": summary(&self.tls), "tls_resumed": self.tls_resumed, "retries": self.retries, "http2": self.http2, "waited_for_stream": self.waited_for_stream, "first_byte": summary(&self.first_byte),
                "error_classes": self.classes.iter().map(|(c, n)| (c.name().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "timeouts": self.timeouts,
                "served_by": self.served_by,
                "connections_by_source": self.connections_by_source,
                "scheduled": self.ends.iter().map(|e| e.scheduled).sum::<u64>(),
                "delayed_by_max_inflight": self.ends.iter().map(|e| e.delayed_by_cap).sum::<u64>(),
                "runs": self.runs.len(),
                "parts": self.parts_json(),
                "truncated_inputs": self.truncated_inputs,
                "warnings": self.generator_warnings(),
            }
        })
    }

    /// The parts of a run over many machines, each with its own figures (`null`: no parts).
    fn parts_json(&self) -> Value {
        let Ok(parts) = self.check_parts() else {
            return Value::Null;
        };
        if parts.of == 0 {
            return Value::Null;
        }
        let each: Vec<Value> = self
            .per_part
            .iter()
            .map(|(index, figures)| {
                let input = self.inputs.iter().find(|i| i.meta.part_index == *index);
                json!({
                    "index": index,
                    "host": input.map(|i| i.meta.host.clone()),
                    "file": input.map(|i| i.name.clone()),
                    "complete": input.map(|i| i.complete),
                    "start_late_ns": input.map(|i| i.meta.start_late_ns),
                    "requests": figures.requests,
                    "errors": figures.errors,
                    "latency_99th": quantile(&figures.latency, 0.99),
                })
            })
            .collect();
        json!({
            "of": parts.of,
            "present": parts.present,
            "missing": parts.missing,
            "run_id": self.inputs.iter().find(|i| i.meta.part_of > 0).map(|i| i.meta.run_id.clone()),
            "each": each,
        })
    }

    /// vegeta's histogram report for `--type hist[...]`.
    pub fn histogram(&self) -> Option<String> {
        let buckets = self.buckets.as_ref()?;
        let mut out = format!("{:<24}{:<8}{:<8}{}\n", "Bucket", "#", "%", "Histogram");
        for (i, count) in buckets.counts.iter().enumerate() {
            let low = go_duration(buckets.bounds[i]);
            let high = buckets
                .bounds
                .get(i + 1)
                .map_or("+Inf".to_string(), |b| go_duration(*b));
            let share = mean(*count, self.requests);
            let bar = "#".repeat((share * 75.0).round() as usize);
            let _ = writeln!(
                out,
                "{:<24}{:<8}{:<8}{bar}",
                format!("[{low}, {high}]"),
                count,
                format!("{:.2}%", 100.0 * share)
            );
        }
        Some(out)
    }
}

/// A quantile, to 3 significant digits (HdrHistogram's bucket, highest value), never above the
/// largest value recorded; 0 for an empty histogram.
fn quantile(histogram: &Histogram<u64>, q: f64) -> u64 {
    if histogram.is_empty() {
        0
    } else {
        histogram.value_at_quantile(q).min(histogram.max())
    }
}

fn per_second(count: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        count as f64 * 1e9 / ns as f64
    }
}

fn mean(total: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total as f64 / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Phase;
    use crate::stream::Writer;

    fn meta(start: u64, rate: f64) -> Meta {
        Meta {
            start_unix_ns: start,
            rate,
            sources: vec!["127.0.0.2".into()],
            ..Meta::default()
        }
    }

    fn record(seq: u64, latency_ms: u64, status: u16) -> Record {
        Record {
            seq,
            intended: seq * 10_000_000,
            sent: seq * 10_000_000 + 50_000,
            latency: latency_ms * 1_000_000,
            status,
            connect: if seq == 0 { 100_000 } else { 0 },
            source: Some(0),
            served_by: format!("127.0.0.1:{}", 8282 + seq % 2),
            bytes_in: 4,
            ..Record::default()
        }
    }

    fn stream(meta: &Meta, records: &[Record]) -> Vec<u8> {
        let mut writer = Writer::new(Vec::new(), meta).unwrap();
        for record in records {
            writer.record(record).unwrap();
        }
        writer.into_inner()
    }

    fn summary_of(streams: &[Vec<u8>], buckets: Option<Buckets>) -> Summary {
        let mut summary = Summary::new(buckets);
        for bytes in streams {
            summary
                .add_stream(Reader::new(&bytes[..]).unwrap())
                .unwrap();
        }
        summary
    }

    #[test]
    fn the_text_report_has_vegetas_lines_and_throngs() {
        let records: Vec<Record> = (0..100)
            .map(|i| record(i, 1 + i % 10, if i == 5 { 503 } else { 200 }))
            .collect();
        let mut records = records;
        records[7].error = Some(ErrorClass::Timeout);
        records[7].timeout_phase = Some(Phase::FirstByte);
        records[7].error_text = "timeout (30s) waiting for the first byte of the response".into();
        records[5].error = Some(ErrorClass::ServerError);
        records[5].error_text = "server error: status 503".into();
        let summary = summary_of(&[stream(&meta(1_000_000_000, 100.0), &records)], None);
        let text = summary.text();
        assert!(
            text.starts_with(
                "Requests      [total, rate, throughput]         100, 101.01, 98.00\n"
            ),
            "{text}"
        );
        assert!(text.contains("Latencies     [min, mean, 50, 90, 95, 99, max]  1ms, 5.5ms, 5.001215ms, 9.003007ms, 10ms, 10ms, 10ms\n"), "{text}");
        assert!(
            text.contains("Achieved      [rate, % of offered]              100.00, 100.0%\n"),
            "{text}"
        );
        assert!(
            text.contains("Success       [ratio]                           98.00%"),
            "{text}"
        );
        assert!(
            text.contains("Status Codes  [code:count]                      200:99  503:1"),
            "{text}"
        );
        assert!(
            text.contains("timeout (30s) waiting for the first byte"),
            "{text}"
        );
        assert!(
            text.contains(
                "Errors        [class:count]                     timeout:1  server-error:1"
            ),
            "{text}"
        );
        assert!(
            text.contains("Served By") && text.contains("127.0.0.1:8282=50"),
            "{text}"
        );
        assert!(
            text.contains("Sources") && text.contains("127.0.0.2=1"),
            "{text}"
        );
        assert!(
            text.contains("Lag           [mean, 50, 99, max]               50µs"),
            "{text}"
        );
        assert!(!text.contains("could not keep up"), "{text}");
    }

    #[test]
    fn merging_files_equals_one_run_over_both() {
        let records: Vec<Record> = (0..60).map(|i| record(i, 1 + i % 7, 200)).collect();
        let whole = summary_of(&[stream(&meta(5, 50.0), &records)], None);
        let split = summary_of(
            &[
                stream(&meta(5, 50.0), &records[..25]),
                stream(&meta(5, 0.0), &records[25..]),
            ],
            None,
        );
        assert_eq!(whole.text(), split.text());
        assert_eq!(whole.json(), {
            let mut json = split.json();
            json["throng"]["runs"] = json!(1);
            json
        });
    }

    #[test]
    fn a_generator_that_fell_behind_is_told_in_words() {
        let late: Vec<Record> = (0..50)
            .map(|i| Record {
                sent: i * 10_000_000 + 40_000_000,
                ..record(i, 2, 200)
            })
            .collect();
        let text = summary_of(&[stream(&meta(0, 100.0), &late)], None).text();
        assert!(text.contains("The generator could not keep up"), "{text}");
    }

    #[test]
    fn absurd_times_from_a_damaged_file_do_not_overflow() {
        let mut summary = Summary::default();
        let record = Record {
            intended: u64::MAX,
            sent: u64::MAX,
            latency: u64::MAX,
            ..Record::default()
        };
        summary.add(&meta(u64::MAX, 1.0), &record);
        summary.add(&meta(0, 1.0), &Record::default());
        assert!(summary
            .text()
            .starts_with("Requests      [total, rate, throughput]         2,"));
    }

    #[test]
    fn histogram_buckets_are_exact() {
        let records: Vec<Record> = (0..10).map(|i| record(i, i * 10, 200)).collect();
        let buckets = Buckets::parse("hist[0,10ms,50ms]").unwrap();
        let text = summary_of(&[stream(&meta(0, 100.0), &records)], Some(buckets))
            .histogram()
            .unwrap();
        assert!(
            text.contains("[0s, 10ms]              1       10.00%"),
            "{text}"
        );
        assert!(
            text.contains("[10ms, 50ms]            4       40.00%"),
            "{text}"
        );
        assert!(
            text.contains("[50ms, +Inf]            5       50.00%"),
            "{text}"
        );
        assert!(Buckets::parse("hist[0,5ms,1ms]")
            .unwrap_err()
            .contains("increase"));
        assert!(Buckets::parse("hist[0,abc]")
            .unwrap_err()
            .contains("not a duration"));
    }
}
