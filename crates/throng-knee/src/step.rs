//! One step: an open-model load at a fixed rate for a fixed time (HTTP requests, or MQTT
//! messages published and received end to end), written to a results file like any other, then
//! judged against the SLO.

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
    /// How late the generator sent, p90 and p99, in nanoseconds; and requests it held back at
    /// the cap.
    pub lag_p90: u64,
    pub lag_p99: u64,
    pub delayed_by_cap: u64,
    pub errors: Value,
    pub verdict: Verdict,
    /// What the verdict looked past, for people (a stall of the generator).
    pub note: Option<String>,
    /// 1 for a step's first run at its rate; 2 and 3 for runs that confirm a failure.
    pub attempt: u8,
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

/// What a step sends.
#[derive(Clone, Copy)]
pub enum Load<'a> {
    /// `throng attack`'s requests; the rate is requests per second.
    Http {
        base: &'a Config,
        headers: &'a [(String, String)],
        body: Option<&'a [u8]>,
    },
    /// `throng mqtt pub`'s run; the rate is messages per second over all publishers, and the
    /// latency is end to end, from each message's intended send to its subscribers.
    Mqtt(&'a throng_mqtt_bench::Config),
}

/// What every step shares.
#[derive(Clone, Copy)]
pub struct Plan<'a> {
    pub load: Load<'a>,
    pub duration: Duration,
    pub slo: &'a Slo,
    /// The most the generator may lag (p99) before its step says "generator-bound".
    pub max_lag: Duration,
}

/// Runs a step at `rate`, its results to `file`.
pub fn run(plan: &Plan<'_>, rate: f64, file: &Path) -> Result<Step, String> {
    let output = std::fs::File::create(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let output = Box::new(std::io::BufWriter::new(output));
    let name = format!("knee step at {rate:.1}/s");
    match plan.load {
        Load::Http {
            base,
            headers,
            body,
        } => {
            let mut config = base.clone();
            config.rate = rate;
            config.duration = Some(plan.duration);
            config.progress = false;
            config.name = name;
            throng_attack::run(config, headers, body, output, Arc::new(Live::default()))?;
            let input =
                std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let reader = Reader::new(std::io::BufReader::new(input))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let mut summary = Summary::new(None);
            summary
                .add_stream(reader)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(judge(&summary.json(), plan, rate, file))
        }
        Load::Mqtt(base) => {
            let mut config = base.clone();
            config.publish_rate = rate;
            config.duration = Some(plan.duration);
            config.name = name;
            let finished = throng_mqtt_bench::run(
                config.clone(),
                Arc::new(throng_mqtt_bench::Live::default()),
                false,
                Some(output),
            )?;
            if let Some(error) = finished.write_error {
                return Err(format!("{}: {error}", file.display()));
            }
            let report = throng_results::mqtt::report::json(&config.plan(), &finished.stats);
            Ok(judge(
                &as_step_report(&report, plan.duration),
                plan,
                rate,
                file,
            ))
        }
    }
}

/// An MQTT run's report in the shape a step is judged on: messages as requests, end-to-end
/// latency from the intended send as latency, from the actual send as the target's own time,
/// a message lost or a client's error as a failure.
fn as_step_report(mqtt: &Value, duration: Duration) -> Value {
    let publish = &mqtt["publish"];
    let receive = &mqtt["receive"];
    let sent = publish["sent"].as_u64().unwrap_or(0);
    let expected = receive["expected"].as_u64().unwrap_or(0);
    let lost = receive["lost"].as_u64().unwrap_or(0);
    let errors: u64 = mqtt["errors"]
        .as_object()
        .map(|m| m.values().filter_map(|e| e["count"].as_u64()).sum())
        .unwrap_or(0);
    let error_classes: serde_json::Map<String, Value> = mqtt["errors"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(class, e)| (class.clone(), e["count"].clone()))
                .chain((lost > 0).then(|| ("lost".to_string(), Value::from(lost))))
                .collect()
        })
        .unwrap_or_default();
    // Messages due and never sent (the window stayed full to the end) failed every subscriber
    // that would have had them.
    let due = publish["due"].as_u64().unwrap_or(sent);
    let unsent = due.saturating_sub(sent);
    let fanout = expected as f64 / sent.max(1) as f64;
    let failed = (lost + errors) as f64 + unsent as f64 * fanout;
    let success = match expected {
        0 => 0.0,
        _ => (1.0 - failed / (expected as f64 + unsent as f64 * fanout)).max(0.0),
    };
    // The lag is the generator's own lateness: a message that waited for the broker's
    // acknowledgements is not in it (the wait is in its latency from the due time).
    let lag = publish["lag"].clone();
    serde_json::json!({
        "requests": sent,
        "success": success,
        "latencies": receive["e2e"],
        "throng": {
            "offered_rate": publish["offered_rate"],
            "achieved_rate": due as f64 / duration.as_secs_f64().max(1e-9),
            "service_time": receive["e2e_from_send"],
            "lag": lag,
            "delayed_by_max_inflight": 0,
            "error_classes": error_classes,
        },
    })
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
        lag_p90: ns(&throng["lag"]["90th"]),
        lag_p99: ns(&throng["lag"]["99th"]),
        delayed_by_cap: throng["delayed_by_max_inflight"].as_u64().unwrap_or(0),
        errors: throng["error_classes"].clone(),
        verdict: Verdict::Pass,
        note: None,
        attempt: 1,
        file: file.to_path_buf(),
    };
    step.verdict = verdict(&step, plan.slo, plan.max_lag);
    step.note = stall(&step, plan.max_lag);
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
    // The target's own time, from the actual send: over the SLO, the step failed whatever the
    // generator did (an overloaded target makes it open connections in a hurry, and fills
    // --max-inflight with requests that wait for slow responses).
    let target_missed = step.held_by_target.filter(|&t| t as u128 > limit);
    let short = step.delayed_by_cap > 0 || step.achieved < step.offered * 0.99;
    if let (true, Some(by_target)) = (short, target_missed) {
        let held_back = match step.delayed_by_cap {
            0 => format!("achieved {:.1}/s of {:.1}/s", step.achieved, step.offered),
            n => format!("{n} requests waited for --max-inflight"),
        };
        return Verdict::Fail(format!(
            "{} from the actual send {:.1} ms > {:.1} ms: responses were slow ({held_back})",
            slo.percentile.name(),
            ms(by_target),
            slo.limit.as_secs_f64() * 1e3
        ));
    }
    // A step the generator did not deliver, while the target kept its time, says nothing about
    // the target.
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
    if let Some(by_target) = target_missed {
        return missed(by_target);
    }
    // Sustained lateness (more than a tenth of the sends late) is the generator's; one stall
    // (late at p99, on time at p90) is not, and the step is judged on the target's own time.
    if step.lag_p90 as u128 > max_lag.as_nanos() {
        return Verdict::GeneratorBound(format!(
            "the generator sent late: lag p90 {:.1} ms, p99 {:.1} ms (limit {:.1} ms)",
            ms(step.lag_p90),
            ms(step.lag_p99),
            max_lag.as_secs_f64() * 1e3
        ));
    }
    if stall(step, max_lag).is_some() {
        return match step.held_by_target {
            Some(_) => Verdict::Pass,
            None if step.held as u128 > limit => missed(step.held),
            None => Verdict::Pass,
        };
    }
    if step.held as u128 > limit {
        return missed(step.held);
    }
    Verdict::Pass
}

/// A stall of the generator: a few sends late past `max_lag` (p99), most on time (p90).
fn stall(step: &Step, max_lag: Duration) -> Option<String> {
    let limit = max_lag.as_nanos();
    (step.lag_p99 as u128 > limit && step.lag_p90 as u128 <= limit).then(|| {
        format!(
            "the generator stalled (lag p99 {:.1} ms, p90 {:.1} ms): judged on the target's own time",
            step.lag_p99 as f64 / 1e6,
            step.lag_p90 as f64 / 1e6
        )
    })
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
            lag_p90: lag,
            lag_p99: lag,
            delayed_by_cap: 0,
            errors: Value::Null,
            verdict: Verdict::Pass,
            note: None,
            attempt: 1,
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
        // Held back by --max-inflight while the target answered in time: the generator's.
        let mut capped = step(20 * MS, 15 * MS, 0);
        capped.delayed_by_cap = 3;
        assert!(matches!(
            verdict(&capped, &slo, lag),
            Verdict::GeneratorBound(_)
        ));
        // Held back, or short of the rate, because responses were slow: the target's.
        let mut slow = step(4_000 * MS, 3_500 * MS, 0);
        slow.delayed_by_cap = 172;
        assert!(
            matches!(verdict(&slow, &slo, lag), Verdict::Fail(r) if r.contains("responses were slow"))
        );
        let mut short = step(4_000 * MS, 3_500 * MS, 0);
        short.achieved = 57.0;
        assert!(matches!(verdict(&short, &slo, lag), Verdict::Fail(_)));
    }

    #[test]
    fn one_stall_is_not_generator_bound() {
        let slo = Slo {
            percentile: Percentile::P99,
            limit: Duration::from_millis(50),
            success: 0.999,
        };
        let lag = Duration::from_millis(10);
        // One 28 ms stall at 40/s: late at p99, on time at p90; the target was quick.
        let mut stalled = step(30 * MS, 2 * MS, 28 * MS);
        stalled.lag_p90 = MS / 10;
        assert_eq!(verdict(&stalled, &slo, lag), Verdict::Pass);
        assert!(stall(&stalled, lag).is_some());
        // Late throughout: the generator's.
        assert!(matches!(
            verdict(&step(30 * MS, 2 * MS, 28 * MS), &slo, lag),
            Verdict::GeneratorBound(_)
        ));
    }

    #[test]
    fn an_mqtt_step_counts_lost_and_unsent_messages() {
        let mqtt = serde_json::json!({
            "publish": {
                "offered_rate": 1000.0, "due": 1000, "sent": 900, "delayed_by_window": 40,
                "lag": {"90th": MS, "99th": 2 * MS},
            },
            "receive": {
                "expected": 1800, "lost": 18,
                "e2e": {"50th": MS, "99th": 80 * MS, "max": 95 * MS},
                "e2e_from_send": {"99th": 2 * MS},
            },
            "errors": {"ping-timeout": {"count": 2, "example": "no PINGRESP"}},
        });
        let step = as_step_report(&mqtt, Duration::from_secs(1));
        // 1,800 expected + 100 unsent x 2 subscribers; 18 lost, 2 errors, 200 never sent.
        let success = step["success"].as_f64().unwrap();
        assert!((success - (1.0 - 220.0 / 2000.0)).abs() < 1e-9, "{success}");
        assert_eq!(
            step["throng"]["achieved_rate"], 1000.0,
            "the schedule was kept"
        );
        assert_eq!(
            step["throng"]["lag"]["90th"], MS,
            "the generator's own lag, as given"
        );
        assert_eq!(step["throng"]["error_classes"]["lost"], 18);
        assert_eq!(step["latencies"]["99th"], 80 * MS);
    }
}
