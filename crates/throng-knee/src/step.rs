//! One step: an open-model attack at a fixed rate for a fixed time, written to a results file
//! like any other, then judged against the SLO.

use crate::slo::Slo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use throng_attack::{Config, Live};
use throng_results::report::Summary;
use throng_results::Reader;

/// What one step measured, and its verdict.
#[derive(Clone, Debug)]
pub struct Step {
    pub offered: f64,
    pub achieved: f64,
    pub requests: u64,
    pub success: f64,
    /// Latency percentiles from the intended send, in nanoseconds: p50, p90, p99, max.
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// The percentile the SLO holds, in nanoseconds.
    pub held: u64,
    /// The same percentile from the actual send (the target's share alone), when the report
    /// has it (p50, p99, max).
    pub held_by_target: Option<u64>,
    /// How late the generator sent, p99, in nanoseconds; and requests it held back at the cap.
    pub lag_p99: u64,
    pub delayed_by_cap: u64,
    pub errors: Value,
    pub verdict: Verdict,
    pub file: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass,
    /// The target missed the SLO (or did not keep the rate): the reason, for people.
    Fail(String),
    /// The generator itself could not keep the schedule: not the target's failure.
    GeneratorBound(String),
}

/// What every step shares.
pub struct Plan<'a> {
    pub base: &'a Config,
    pub headers: &'a [(String, String)],
    pub body: Option<&'a [u8]>,
    pub duration: Duration,
    pub slo: &'a Slo,
    /// The most the generator may lag (p99) before its step says "generator-bound".
    pub max_lag: Duration,
}

/// Runs a step at `rate`, its results to `file`.
pub fn run(plan: &Plan<'_>, rate: f64, file: &Path) -> Result<Step, String> {
    let mut config = plan.base.clone();
    config.rate = rate;
    config.duration = Some(plan.duration);
    config.progress = false;
    config.name = format!("knee step at {rate:.1}/s");
    let output = std::fs::File::create(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let live = Arc::new(Live::default());
    throng_attack::run(
        config,
        plan.headers,
        plan.body,
        Box::new(std::io::BufWriter::new(output)),
        live,
    )?;
    let input = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let reader = Reader::new(std::io::BufReader::new(input))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let mut summary = Summary::new(None);
    summary
        .add_stream(reader)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(judge(&summary.json(), plan, rate, file))
}

fn judge(report: &Value, plan: &Plan<'_>, rate: f64, file: &Path) -> Step {
    let ns = |v: &Value| v.as_u64().unwrap_or(0);
    let latencies = &report["latencies"];
    let throng = &report["throng"];
    let mut step = Step {
        offered: throng["offered_rate"].as_f64().unwrap_or(rate),
        achieved: throng["achieved_rate"].as_f64().unwrap_or(0.0),
        requests: report["requests"].as_u64().unwrap_or(0),
        success: report["success"].as_f64().unwrap_or(0.0),
        p50: ns(&latencies["50th"]),
        p90: ns(&latencies["90th"]),
        p99: ns(&latencies["99th"]),
        max: ns(&latencies["max"]),
        held: ns(&latencies[plan.slo.percentile.key()]),
        held_by_target: throng["service_time"][plan.slo.percentile.key()].as_u64(),
        lag_p99: ns(&throng["lag"]["99th"]),
        delayed_by_cap: throng["delayed_by_max_inflight"].as_u64().unwrap_or(0),
        errors: throng["error_classes"].clone(),
        verdict: Verdict::Pass,
        file: file.to_path_buf(),
    };
    step.verdict = verdict(&step, plan.slo, plan.max_lag);
    step
}

fn verdict(step: &Step, slo: &Slo, max_lag: Duration) -> Verdict {
    let ms = |ns: u64| ns as f64 / 1e6;
    let limit = slo.limit.as_nanos();
    let missed = |held: u64| {
        Verdict::Fail(format!(
            "{} {:.1} ms > {:.1} ms",
            slo.percentile.name(),
            ms(held),
            slo.limit.as_secs_f64() * 1e3
        ))
    };
    // A step the generator did not deliver says nothing about the target.
    if step.delayed_by_cap > 0 {
        return Verdict::GeneratorBound(format!(
            "{} requests waited for --max-inflight",
            step.delayed_by_cap
        ));
    }
    if step.achieved < step.offered * 0.99 {
        return Verdict::GeneratorBound(format!(
            "achieved {:.1}/s of {:.1}/s offered",
            step.achieved, step.offered
        ));
    }
    if step.success < slo.success {
        return Verdict::Fail(format!(
            "success {:.3}% < {:.3}%",
            step.success * 100.0,
            slo.success * 100.0
        ));
    }
    // The target missed the SLO on its own time, from the actual send: whatever lag the
    // generator had (an overloaded target makes it open connections in a hurry), the step failed.
    if let Some(by_target) = step.held_by_target.filter(|&t| t as u128 > limit) {
        return missed(by_target);
    }
    // Late sends only matter when they could have made the difference.
    if step.lag_p99 as u128 > max_lag.as_nanos() {
        return Verdict::GeneratorBound(format!(
            "the generator sent late: lag p99 {:.1} ms (limit {:.1} ms)",
            ms(step.lag_p99),
            max_lag.as_secs_f64() * 1e3
        ));
    }
    if step.held as u128 > limit {
        return missed(step.held);
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::Percentile;

    const MS: u64 = 1_000_000;

    fn step(p99: u64, by_target: u64, lag: u64) -> Step {
        Step {
            offered: 100.0,
            achieved: 100.0,
            requests: 200,
            success: 1.0,
            p50: MS,
            p90: MS,
            p99,
            max: p99,
            held: p99,
            held_by_target: Some(by_target),
            lag_p99: lag,
            delayed_by_cap: 0,
            errors: Value::Null,
            verdict: Verdict::Pass,
            file: PathBuf::new(),
        }
    }

    #[test]
    fn the_generator_is_blamed_only_for_what_it_did() {
        let slo = Slo {
            percentile: Percentile::P99,
            limit: Duration::from_millis(50),
            success: 0.999,
        };
        let lag = Duration::from_millis(10);
        // An overloaded target, and a generator late while it opened connections: the target's.
        assert!(matches!(
            verdict(&step(500 * MS, 490 * MS, 20 * MS), &slo, lag),
            Verdict::Fail(_)
        ));
        // A quick target, a late generator: the generator's.
        assert!(matches!(
            verdict(&step(60 * MS, 5 * MS, 20 * MS), &slo, lag),
            Verdict::GeneratorBound(_)
        ));
        // Both on time.
        assert_eq!(verdict(&step(5 * MS, 4 * MS, MS), &slo, lag), Verdict::Pass);
        // Held back by --max-inflight: the generator's, whatever the latency.
        let mut capped = step(500 * MS, 490 * MS, 0);
        capped.delayed_by_cap = 3;
        assert!(matches!(
            verdict(&capped, &slo, lag),
            Verdict::GeneratorBound(_)
        ));
    }
}
