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
        lag_p99: ns(&throng["lag"]["99th"]),
        delayed_by_cap: throng["delayed_by_max_inflight"].as_u64().unwrap_or(0),
        errors: throng["error_classes"].clone(),
        verdict: Verdict::Pass,
        file: file.to_path_buf(),
    };
    step.verdict = verdict(&step, plan);
    step
}

fn verdict(step: &Step, plan: &Plan<'_>) -> Verdict {
    let ms = |ns: u64| ns as f64 / 1e6;
    // The generator first: a step it could not deliver says nothing about the target.
    if step.delayed_by_cap > 0 {
        return Verdict::GeneratorBound(format!(
            "{} requests waited for --max-inflight",
            step.delayed_by_cap
        ));
    }
    if step.lag_p99 as u128 > plan.max_lag.as_nanos() {
        return Verdict::GeneratorBound(format!(
            "the generator sent late: lag p99 {:.1} ms (limit {:.1} ms)",
            ms(step.lag_p99),
            plan.max_lag.as_secs_f64() * 1e3
        ));
    }
    if step.achieved < step.offered * 0.99 {
        return Verdict::GeneratorBound(format!(
            "achieved {:.1}/s of {:.1}/s offered",
            step.achieved, step.offered
        ));
    }
    if step.success < plan.slo.success {
        return Verdict::Fail(format!(
            "success {:.3}% < {:.3}%",
            step.success * 100.0,
            plan.slo.success * 100.0
        ));
    }
    if step.held as u128 > plan.slo.limit.as_nanos() {
        return Verdict::Fail(format!(
            "{} {:.1} ms > {:.1} ms",
            plan.slo.percentile.name(),
            ms(step.held),
            plan.slo.limit.as_secs_f64() * 1e3
        ));
    }
    Verdict::Pass
}
