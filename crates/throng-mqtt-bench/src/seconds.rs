//! A run's figures by the wall-clock second: each thread files what it measures under the
//! second it happened in and hands over the seconds that are over; the run gathers them, writes
//! each second to the results stream once every thread has handed it over, and keeps the sum for
//! the report. A second handed over late is written again as a second frame for the same second:
//! readers add them up, so nothing is lost.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use throng_results::mqtt::{Second, Stats, Totals};
use throng_results::{End, Meta, Writer};

/// One thread's seconds not yet handed over.
#[derive(Default)]
pub(crate) struct ThreadSeconds {
    open: BTreeMap<u64, Stats>,
}

impl ThreadSeconds {
    pub fn at(&mut self, unix_second: u64) -> &mut Stats {
        self.open.entry(unix_second).or_default()
    }

    /// The seconds before `unix_second` (all of them with `u64::MAX`).
    pub fn take_before(&mut self, unix_second: u64) -> Vec<Second> {
        let later = self.open.split_off(&unix_second);
        std::mem::replace(&mut self.open, later)
            .into_iter()
            .map(|(unix_second, stats)| Second { unix_second, stats })
            .collect()
    }
}

/// What a thread hands to the run.
pub(crate) enum Handed {
    /// A second that is over (boxed: nine histograms' headers).
    Second(Box<Second>),
    /// At its end: what it counted over the whole run (tracks, sent per publisher).
    WholeRun(Box<Stats>),
}

type Output = Writer<BufWriter<Box<dyn Write + Send>>>;

/// The run's side.
pub(crate) struct Collector {
    pending: BTreeMap<u64, Stats>,
    total: Stats,
    writer: Option<Output>,
    /// The first write that failed: measuring goes on, and the report still comes.
    write_error: Option<String>,
}

impl Collector {
    pub fn new(output: Option<Box<dyn Write + Send>>, meta: &Meta) -> Result<Collector, String> {
        let writer = match output {
            Some(out) => Some(
                Writer::new(BufWriter::with_capacity(64 * 1024, out), meta)
                    .map_err(|e| format!("results output: {e}"))?,
            ),
            None => None,
        };
        Ok(Collector {
            pending: BTreeMap::new(),
            total: Stats::default(),
            writer,
            write_error: None,
        })
    }

    pub fn add(&mut self, handed: Handed) {
        match handed {
            Handed::Second(second) => self
                .pending
                .entry(second.unix_second)
                .or_default()
                .merge(&second.stats),
            Handed::WholeRun(stats) => self.total.merge(&stats),
        }
    }

    /// Writes (and counts) the seconds before `unix_second`, and makes them readable.
    pub fn write_before(&mut self, unix_second: u64) {
        let later = self.pending.split_off(&unix_second);
        let done = std::mem::replace(&mut self.pending, later);
        if done.is_empty() {
            return;
        }
        for (unix_second, stats) in done {
            self.total.merge(&stats);
            let second = Second { unix_second, stats };
            self.write(|writer| writer.mqtt_second(&second));
        }
        self.write(Output::flush);
    }

    /// Writes what is left and the totals; the run's figures, and the first write error.
    pub fn finish(
        mut self,
        published_due: u64,
        subscribers: Vec<u32>,
        ended_by: &str,
    ) -> (Stats, Option<String>) {
        self.write_before(u64::MAX);
        self.total.published_due = published_due;
        self.total.subscribers = subscribers;
        for totals in Totals::of(&self.total, ended_by).into_frames() {
            self.write(|writer| writer.mqtt_totals(&totals));
        }
        // An end frame as every run writes, so that a split run's master knows each part ended.
        let end = End {
            scheduled: published_due,
            sent: self.total.published,
            delayed_by_cap: self.total.delayed_by_window,
            ended_by: ended_by.to_string(),
        };
        self.write(|writer| writer.end(&end));
        self.write(Output::flush);
        (self.total, self.write_error)
    }

    fn write(&mut self, step: impl FnOnce(&mut Output) -> std::io::Result<()>) {
        if self.write_error.is_some() {
            return;
        }
        if let Some(writer) = self.writer.as_mut() {
            if let Err(e) = step(writer) {
                self.write_error = Some(format!("writing results: {e}"));
            }
        }
    }
}
