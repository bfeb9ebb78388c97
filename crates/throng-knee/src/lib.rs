//! `throng knee`: the story's tipping point, found without 500 manual runs. Short open-model
//! steps at growing rates until one misses the SLO, then a search between the last good and the
//! first bad rate, then a longer validation step at the rate found.
//!
//! - [`slo`]: what a step must meet.
//! - [`search`]: which rate to try next.
//! - [`step`]: one step, run and judged.
//! - [`page`]: the tipping-point graph as one HTML page.

pub mod page;
pub mod search;
pub mod slo;
pub mod step;

use search::{Next, Search};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use step::{Plan, Step, Verdict};

/// Told of each step as it ends: its number (0 for the validation step) and what it measured.
pub type OnStep = Box<dyn FnMut(usize, &Step)>;

/// How a search is run.
pub struct Options {
    pub from: f64,
    pub to: f64,
    pub tolerance: f64,
    /// Between steps, for the target to drain what the last step left.
    pub pause: Duration,
    /// The validation step's length (0: none).
    pub validate: Duration,
    /// Where the steps' results files go.
    pub dir: PathBuf,
    /// Called after each step, for the live table.
    pub on_step: OnStep,
}

/// How a search ended.
pub struct Knee {
    /// The highest rate that passed (`None`: none did).
    pub knee: Option<f64>,
    pub steps: Vec<Step>,
    /// The validation step at the knee, if one was run.
    pub validation: Option<Step>,
    /// Set when the generator could not keep up: the search stopped there.
    pub generator_bound: Option<String>,
}

pub fn find(plan: &Plan<'_>, mut options: Options) -> Result<Knee, String> {
    std::fs::create_dir_all(&options.dir).map_err(|e| format!("{}: {e}", options.dir.display()))?;
    let mut search = Search::new(options.from, options.to, options.tolerance);
    let mut steps: Vec<Step> = Vec::new();
    let mut generator_bound = None;
    let knee = loop {
        match search.next() {
            Next::Found(knee) => break knee,
            Next::Step(rate) => {
                if !steps.is_empty() {
                    std::thread::sleep(options.pause);
                }
                let file = options
                    .dir
                    .join(format!("step-{:02}-{:.0}.bin", steps.len() + 1, rate));
                let step = step::run(plan, rate, &file)?;
                (options.on_step)(steps.len() + 1, &step);
                match &step.verdict {
                    Verdict::GeneratorBound(reason) => {
                        generator_bound = Some(format!(
                            "the generator could not keep up at {rate:.1}/s ({reason}): the target's knee is above what this generator can offer; add --threads, raise --max-inflight, or run more generator processes"
                        ));
                        steps.push(step);
                        break search_best(&steps);
                    }
                    verdict => search.record(rate, *verdict == Verdict::Pass),
                }
                steps.push(step);
            }
        }
    };
    let validation = match knee {
        Some(rate) if !options.validate.is_zero() && generator_bound.is_none() => {
            std::thread::sleep(options.pause);
            let validate = Plan {
                duration: options.validate,
                ..*plan
            };
            let step = step::run(&validate, rate, &options.dir.join("validation.bin"))?;
            (options.on_step)(0, &step);
            Some(step)
        }
        _ => None,
    };
    Ok(Knee {
        knee,
        steps,
        validation,
        generator_bound,
    })
}

/// The highest rate that passed so far.
fn search_best(steps: &[Step]) -> Option<f64> {
    steps
        .iter()
        .filter(|s| s.verdict == Verdict::Pass)
        .map(|s| s.offered)
        .fold(None, |best, r| Some(best.map_or(r, |b: f64| b.max(r))))
}

impl Knee {
    pub fn json(&self) -> serde_json::Value {
        let step = |s: &Step| {
            let (verdict, reason) = match &s.verdict {
                Verdict::Pass => ("pass", String::new()),
                Verdict::Fail(r) => ("fail", r.clone()),
                Verdict::GeneratorBound(r) => ("generator-bound", r.clone()),
            };
            json!({
                "offered": s.offered, "achieved": s.achieved, "requests": s.requests,
                "success": s.success, "p50": s.p50, "p90": s.p90, "p99": s.p99, "max": s.max,
                "lag_p99": s.lag_p99, "errors": s.errors, "verdict": verdict, "reason": reason,
                "results": s.file.display().to_string(),
            })
        };
        json!({
            "knee": self.knee,
            "generator_bound": self.generator_bound,
            "steps": self.steps.iter().map(step).collect::<Vec<_>>(),
            "validation": self.validation.as_ref().map(step),
        })
    }
}
