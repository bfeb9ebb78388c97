//! One run over many machines: each part's results say which run they belong to (a run id and
//! a hash of the schedule), which part they are (I of N), the host that sent them and how late
//! that part started. A report over the parts checks that they belong together (parts of
//! different schedules or runs are refused, naming the files), names the parts that are
//! missing, ended early or started late, and gives each part's own figures beside the merged
//! ones.

use crate::stream::{latency_histogram, Histogram, Meta, TargetInfo, HISTOGRAM_MAX_NS};
use crate::Record;
use std::collections::BTreeMap;
use throng_net::hash::fnv1a;

/// A part that started later than this says so in its report.
pub const LATE_START_NS: u64 = 100_000_000;

/// A stable hash of what a schedule is: its rate, duration and targets (FNV-1a, hex). Parts of
/// one run have the same; a part started with other flags does not.
pub fn schedule_hash(rate: f64, duration_ns: u64, targets: &[TargetInfo]) -> String {
    let mut text = format!("rate={};duration={duration_ns}", rate.to_bits());
    for target in targets {
        text.push_str(&format!(";{} {}", target.method, target.url));
    }
    format!("{:016x}", fnv1a(text.as_bytes()))
}

/// A run id every part computes alike without talking to the others: the schedule and its
/// shared start (`--start-at`).
pub fn run_id(schedule: &str, start_unix_ns: u64) -> String {
    format!(
        "{:016x}",
        fnv1a(format!("{schedule}@{start_unix_ns}").as_bytes())
    )
}

/// One input file as a report read it.
#[derive(Debug)]
pub struct Input {
    pub name: String,
    pub meta: Meta,
    /// Whether its end frame was there (a part killed mid-run has none).
    pub complete: bool,
    /// The end of its last request, nanoseconds from its run's start.
    pub last_ns: u64,
}

/// One part's own figures.
#[derive(Debug)]
pub struct PartFigures {
    pub requests: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

impl Default for PartFigures {
    fn default() -> Self {
        PartFigures {
            requests: 0,
            errors: 0,
            latency: latency_histogram(),
        }
    }
}

impl PartFigures {
    pub fn add(&mut self, record: &Record) {
        self.requests += 1;
        if !record.is_success() {
            self.errors += 1;
        }
        self.latency
            .saturating_record(record.latency.clamp(1, HISTOGRAM_MAX_NS));
    }
}

/// Parts of one run, checked.
#[derive(Debug, Default)]
pub struct Parts {
    /// How many parts the run has (0: the inputs are not parts).
    pub of: u32,
    pub present: Vec<u32>,
    pub missing: Vec<u32>,
    /// Sentences for the report: missing parts, parts that ended early or started late.
    pub warnings: Vec<String>,
}

/// Checks that the inputs that are parts belong to one run. Inputs that are not parts (plain
/// runs, vegeta's files) merge as they always have.
pub fn check(inputs: &[Input]) -> Result<Parts, String> {
    let parts: Vec<&Input> = inputs.iter().filter(|i| i.meta.part_of > 0).collect();
    let Some(first) = parts.first() else {
        return Ok(Parts::default());
    };
    let others = |keep: &dyn Fn(&Input) -> bool| -> Vec<String> {
        parts
            .iter()
            .filter(|i| keep(i))
            .map(|i| i.name.clone())
            .collect()
    };
    if let Some(odd) = parts
        .iter()
        .find(|i| i.meta.schedule != first.meta.schedule)
    {
        return Err(format!(
            "not one run: {} (schedule {}) and {} (schedule {}) were started with different \
             rates, durations or targets; report them apart",
            others(&|i| i.meta.schedule == first.meta.schedule).join(", "),
            first.meta.schedule,
            others(&|i| i.meta.schedule == odd.meta.schedule).join(", "),
            odd.meta.schedule
        ));
    }
    if let Some(odd) = parts.iter().find(|i| i.meta.run_id != first.meta.run_id) {
        return Err(format!(
            "not one run: {} (run {}) and {} (run {}) are parts of the same schedule started at \
             different times (give every part the same --start-at); report them apart",
            others(&|i| i.meta.run_id == first.meta.run_id).join(", "),
            first.meta.run_id,
            others(&|i| i.meta.run_id == odd.meta.run_id).join(", "),
            odd.meta.run_id
        ));
    }
    if let Some(odd) = parts.iter().find(|i| i.meta.part_of != first.meta.part_of) {
        return Err(format!(
            "not one run: {} says it is part of {} and {} of {}",
            first.name, first.meta.part_of, odd.name, odd.meta.part_of
        ));
    }
    let of = first.meta.part_of;
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for part in &parts {
        if let Some(before) = seen.insert(part.meta.part_index, &part.name) {
            return Err(format!(
                "{before} and {} are both part {} of {of}: the same part twice",
                part.name, part.meta.part_index
            ));
        }
    }
    let present: Vec<u32> = seen.keys().copied().collect();
    let missing: Vec<u32> = (0..of).filter(|i| !seen.contains_key(i)).collect();
    let mut warnings = Vec::new();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(u32::to_string).collect();
        warnings.push(format!(
            "{} of {of} parts missing: {}. The merged figures are those of the {} parts read: \
             the offered rate is their share ({:.1}% of the schedule).",
            missing.len(),
            list.join(", "),
            present.len(),
            100.0 * present.len() as f64 / f64::from(of)
        ));
    }
    for part in &parts {
        let who = format!(
            "Part {} ({}, {})",
            part.meta.part_index,
            part.name,
            if part.meta.host.is_empty() {
                "?"
            } else {
                &part.meta.host
            }
        );
        if !part.complete {
            warnings.push(format!(
                "{who} ended early: its results stop at {:.1} s, with no end written (killed, \
                 or still running).",
                part.last_ns as f64 / 1e9
            ));
        }
        if part.meta.start_late_ns > LATE_START_NS {
            warnings.push(format!(
                "{who} started {:.3} s after the shared start: its first requests went out late \
                 (measured, as lag).",
                part.meta.start_late_ns as f64 / 1e9
            ));
        }
    }
    Ok(Parts {
        of,
        present,
        missing,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, index: u32, of: u32, schedule: &str, run: &str) -> Input {
        Input {
            name: name.into(),
            meta: Meta {
                part_index: index,
                part_of: of,
                schedule: schedule.into(),
                run_id: run.into(),
                host: format!("h{index}"),
                ..Meta::default()
            },
            complete: true,
            last_ns: 0,
        }
    }

    #[test]
    fn parts_of_one_run_are_checked_and_missing_ones_named() {
        let mut inputs: Vec<Input> = [0, 1, 3]
            .iter()
            .map(|&i| part(&format!("p{i}.bin"), i, 5, "s", "r"))
            .collect();
        inputs[1].complete = false;
        inputs[1].last_ns = 4_200_000_000;
        inputs[2].meta.start_late_ns = 1_500_000_000;
        let parts = check(&inputs).unwrap();
        assert_eq!(parts.missing, vec![2, 4]);
        let text = parts.warnings.join("\n");
        assert!(text.contains("2 of 5 parts missing: 2, 4"), "{text}");
        assert!(
            text.contains("Part 1 (p1.bin, h1) ended early: its results stop at 4.2 s"),
            "{text}"
        );
        assert!(
            text.contains("Part 3 (p3.bin, h3) started 1.500 s after"),
            "{text}"
        );
    }

    #[test]
    fn parts_of_different_runs_are_refused_with_their_files() {
        let other_schedule = [part("a.bin", 0, 2, "s", "r"), part("b.bin", 1, 2, "t", "q")];
        let error = check(&other_schedule).unwrap_err();
        assert!(
            error.contains("a.bin (schedule s) and b.bin (schedule t)"),
            "{error}"
        );
        let other_start = [part("a.bin", 0, 2, "s", "r"), part("b.bin", 1, 2, "s", "q")];
        let error = check(&other_start).unwrap_err();
        assert!(error.contains("--start-at"), "{error}");
        let twice = [part("a.bin", 0, 2, "s", "r"), part("b.bin", 0, 2, "s", "r")];
        assert!(check(&twice).unwrap_err().contains("the same part twice"));
        assert_eq!(run_id("s", 1), run_id("s", 1));
        assert_ne!(run_id("s", 1), run_id("s", 2));
    }
}
