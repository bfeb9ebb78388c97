//! `throng knee`: the story's tipping point, found without 500 manual runs. Short open-model
//! steps at growing rates until one misses the SLO, then a search between the last good and the
//! first bad rate, then a longer validation step at the rate found and a step one tolerance
//! above it, which should fail.
//!
//! Real machines have transients (a compiler beside the search, a target stalled for 60 ms): a
//! failing step counts only when a second run at its rate fails too, and a third decides when
//! the two disagree. A pass is never confirmed: noise only makes latency worse. The outcome says
//! where runs disagreed, so a knee found through noise is marked as such.
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

/// Told of each step as it ends: its name for people ("step 3", "step 3 again", "validation",
/// "above") and what it measured.
pub type OnStep = Box<dyn FnMut(&str, &Step)>;

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
    /// The validation step at the knee, if one was run (the deciding run, if it was confirmed).
    pub validation: Option<Step>,
    /// The step one tolerance above the knee, which should fail, if one was run.
    pub above: Option<Step>,
    /// Rates whose runs disagreed (a failure the next run did not repeat).
    pub disagreed: Vec<f64>,
    /// Set when the generator could not keep up: the search stopped there.
    pub generator_bound: Option<String>,
}

pub fn find(plan: &Plan<'_>, mut options: Options) -> Result<Knee, String> {
    std::fs::create_dir_all(&options.dir).map_err(|e| format!("{}: {e}", options.dir.display()))?;
    let mut search = Search::new(options.from, options.to, options.tolerance);
    let mut runs = Runs::default();
    let mut generator_bound = None;
    let knee = loop {
        match search.next() {
            Next::Found(knee) => break knee,
            Next::Step(rate) => {
                let number = runs.steps.iter().filter(|s| s.attempt == 1).count() + 1;
                let name = format!("step-{number:02}-{rate:.0}");
                let label = format!("step {number:2}");
                match runs.decide(plan, rate, &name, &label, &mut options)? {
                    Verdict::GeneratorBound(reason) => {
                        generator_bound = Some(format!(
                            "the generator could not keep up at {rate:.1}/s ({reason}): the target's knee is above what this generator can offer; add --threads, raise --max-inflight, or run more generator processes"
                        ));
                        break search_best(&runs.steps);
                    }
                    verdict => search.record(rate, verdict == Verdict::Pass),
                }
            }
        }
    };
    let (mut validation, mut above) = (None, None);
    if let (Some(rate), true, None) = (knee, !options.validate.is_zero(), &generator_bound) {
        let validate = Plan {
            duration: options.validate,
            ..*plan
        };
        let mut checks = Runs::default();
        std::thread::sleep(options.pause);
        checks.decide(&validate, rate, "validation", "validation", &mut options)?;
        validation = checks.steps.pop();
        runs.disagreed.extend(checks.disagreed);
        // One tolerance above the knee the target should fail; if it passes, the search stopped
        // short (noise made a failure there), and the target's knee may be higher.
        let over = rate * (1.0 + options.tolerance);
        if over <= options.to {
            std::thread::sleep(options.pause);
            let step = step::run(plan, over, &options.dir.join("above.bin"))?;
            (options.on_step)("above", &step);
            above = Some(step);
        }
    }
    Ok(Knee {
        knee,
        steps: runs.steps,
        validation,
        above,
        disagreed: runs.disagreed,
        generator_bound,
    })
}

/// The steps run so far, and the rates whose runs disagreed.
#[derive(Default)]
struct Runs {
    steps: Vec<Step>,
    disagreed: Vec<f64>,
}

impl Runs {
    /// Runs `plan` at `rate` (results in `DIR/NAME.bin`, then `NAME-2.bin`, `NAME-3.bin`) until
    /// its verdict is decided: a pass or a generator-bound step at once, a failure when a second
    /// run fails too, or the third run's verdict when the first two disagree.
    fn decide(
        &mut self,
        plan: &Plan<'_>,
        rate: f64,
        name: &str,
        label: &str,
        options: &mut Options,
    ) -> Result<Verdict, String> {
        let mut failures = 0;
        for attempt in 1..=3u8 {
            if !self.steps.is_empty() || attempt > 1 {
                std::thread::sleep(options.pause);
            }
            let file = match attempt {
                1 => options.dir.join(format!("{name}.bin")),
                n => options.dir.join(format!("{name}-{n}.bin")),
            };
            let mut step = step::run(plan, rate, &file)?;
            step.attempt = attempt;
            let label = match attempt {
                1 => label.to_string(),
                _ => format!("{label} again"),
            };
            (options.on_step)(&label, &step);
            let verdict = step.verdict.clone();
            self.steps.push(step);
            match verdict {
                Verdict::Fail(_) => failures += 1,
                Verdict::Pass if failures > 0 && !self.disagreed.contains(&rate) => {
                    self.disagreed.push(rate)
                }
                _ => {}
            }
            // A pass or a generator-bound run decides at once; failures need a second; three
            // runs decide whatever they say.
            let decided = matches!(
                (&verdict, attempt, failures),
                (Verdict::GeneratorBound(_), _, _)
                    | (Verdict::Pass, 1, _)
                    | (Verdict::Fail(_), _, 2)
                    | (_, 3, _)
            );
            if decided {
                return Ok(verdict);
            }
        }
        Ok(Verdict::Fail("undecided".into()))
    }
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
                "lag_p90": s.lag_p90, "lag_p99": s.lag_p99, "errors": s.errors, "verdict": verdict,
                "reason": reason, "note": s.note, "attempt": s.attempt,
                "results": s.file.display().to_string(),
            })
        };
        let (confidence, why) = self.confidence();
        json!({
            "knee": self.knee,
            "generator_bound": self.generator_bound,
            "confidence": confidence,
            "confidence_reasons": why,
            "disagreed": self.disagreed,
            "steps": self.steps.iter().map(step).collect::<Vec<_>>(),
            "validation": self.validation.as_ref().map(step),
            "above": self.above.as_ref().map(step),
        })
    }

    /// How far to trust the knee: "high" when every check agreed, else "low" with the reasons.
    pub fn confidence(&self) -> (&'static str, Vec<String>) {
        let mut why = Vec::new();
        for rate in &self.disagreed {
            why.push(format!(
                "runs at {rate:.1}/s disagreed: a failure that the next run did not repeat"
            ));
        }
        if let Some(v) = self
            .validation
            .as_ref()
            .filter(|v| v.verdict != Verdict::Pass)
        {
            why.push(format!(
                "the validation step at {:.1}/s did not pass",
                v.offered
            ));
        }
        if let Some(a) = self.above.as_ref().filter(|a| a.verdict == Verdict::Pass) {
            why.push(format!(
                "the step one tolerance above, at {:.1}/s, passed too: the knee may be higher",
                a.offered
            ));
        }
        match why.is_empty() {
            true => ("high", why),
            false => ("low", why),
        }
    }
}
