//! `throng knee`'s flags.

use super::attack::{parse_rate, Prepared, RequestArgs};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use throng_knee::slo::{self, Percentile, Slo};
use throng_knee::step::{Load, Plan, Step, Verdict};
use throng_net::duration;

/// Find the tipping point: the highest rate whose steps meet an SLO
///
/// Short open-model steps (the same targets and request flags as `throng attack`): the rate grows
/// fourfold until a step misses the SLO, then the gap between the last good and the first bad
/// rate is halved (geometrically) until it is within --tolerance; a longer step then validates
/// the rate found, and a step one tolerance above it should fail. A failing step counts only
/// when a second run at its rate fails too (a third decides when they disagree), so one
/// transient does not move the knee. A step where the generator itself could not keep up (late
/// for more than a tenth of its sends, or held back while the target answered in time) stops the
/// search and says so, rather than report a false knee. Every step is an ordinary results file in --dir, and
/// --dir/knee.html draws the tipping-point graph.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    echo 'GET http://127.0.0.1:8282/' | throng knee --slo p99=200ms --success 99.9%\n  \
    throng knee --targets t.txt --slo p99=50ms --from 100 --to 50000 --step 5s --dir run1 --json\n  \
    throng knee --slo p99=20ms --from 500 --to 50000 mqtt -p 1883 -c 100 --subscribers 2 -q 1")]
pub struct KneeArgs {
    /// The latency a step must meet: PERCENTILE=LIMIT, with p50, p90, p95, p99 or max
    #[arg(long, default_value = "p99=200ms", value_parser = slo::parse_latency)]
    slo: (Percentile, Duration),

    /// The least share of successful requests a step must have
    #[arg(long, default_value = "99.9%", value_parser = slo::parse_share)]
    success: f64,

    /// The first rate tried (N or N/DURATION)
    #[arg(long, default_value = "10", value_parser = parse_rate)]
    from: f64,

    /// The highest rate tried
    #[arg(long, default_value = "100000", value_parser = parse_rate)]
    to: f64,

    /// Each step's length
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    step: Duration,

    /// Stop when the first bad rate is within this much of the last good one
    #[arg(long, default_value = "5%", value_parser = slo::parse_share)]
    tolerance: f64,

    /// Pause between steps, for the target to drain
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    pause: Duration,

    /// The validation step's length at the rate found; 0 for none
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    validate: Duration,

    /// The most the generator may send late (p99) before a step counts as generator-bound
    #[arg(long, default_value = "10ms", value_parser = duration::parse)]
    max_lag: Duration,

    /// Folder for the steps' results files and knee.html
    #[arg(long, default_value = "knee")]
    dir: PathBuf,

    /// Print the outcome as JSON
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    request: RequestArgs,

    #[command(subcommand)]
    load: Option<KneeLoad>,
}

#[derive(Debug, Subcommand)]
enum KneeLoad {
    /// Search an MQTT publish rate instead: messages per second over `throng mqtt pub`'s
    /// publishers, the SLO on end-to-end latency from each message's intended send to its
    /// subscribers (--subscribers at least 1), a lost message a failure
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Mqtt(Box<super::mqtt::Common>),
}

/// A knee's steps send in 1 ms batches unless told otherwise: its SLOs are tens of milliseconds,
/// and on the one box it often shares with its target, sending each request at its own time
/// costs the generator 2.5x the CPU at 5,000/s (bench/RESULTS.md), taken from the target.
const KNEE_BATCH: Duration = Duration::from_millis(1);

pub fn run(args: KneeArgs) -> ExitCode {
    match knee(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("throng knee: {message}");
            ExitCode::FAILURE
        }
    }
}

fn knee(args: KneeArgs) -> Result<ExitCode, String> {
    if args.from > args.to {
        return Err(format!("--from {} is above --to {}", args.from, args.to));
    }
    // MQTT steps send no HTTP requests: no attack is prepared for them.
    let http: Option<Prepared> = match args.load {
        Some(_) => None,
        None => Some(args.request.prepare(
            args.from,
            args.step,
            "knee".into(),
            false,
            KNEE_BATCH,
            false,
        )?),
    };
    let mqtt = match &args.load {
        Some(KneeLoad::Mqtt(common)) => {
            if let Some(flag) = common.not_for_the_knee() {
                return Err(format!("mqtt {flag}: not for a knee's steps"));
            }
            let config = super::mqtt::config(throng_mqtt_bench::Role::Pub, common)?;
            if config.subscribers == 0 {
                return Err(
                    "mqtt: give --subscribers N (at least 1): the SLO holds end-to-end latency"
                        .into(),
                );
            }
            Some(config)
        }
        None => None,
    };
    let slo = Slo {
        percentile: args.slo.0,
        limit: args.slo.1,
        success: args.success,
    };
    let slo_text = format!(
        "{} ≤ {}, success ≥ {}%",
        slo.percentile.name(),
        duration::format(slo.limit),
        slo.success * 100.0
    );
    let load = match (&mqtt, &http) {
        (Some(config), _) => Load::Mqtt(config),
        (None, Some(prepared)) => Load::Http {
            base: &prepared.config,
            headers: &prepared.headers,
            body: prepared.body.as_deref(),
        },
        (None, None) => return Err("no load to search: give targets, or mqtt and its flags".into()),
    };
    let plan = Plan {
        load,
        duration: args.step,
        slo: &slo,
        max_lag: args.max_lag,
    };
    eprintln!(
        "throng knee: {slo_text}; steps of {}, from {}/s to {}/s",
        duration::format(args.step),
        args.from,
        args.to
    );
    let options = throng_knee::Options {
        from: args.from,
        to: args.to,
        tolerance: args.tolerance,
        pause: args.pause,
        validate: args.validate,
        dir: args.dir.clone(),
        on_step: Box::new(|name, step| eprintln!("{}", line(name, step))),
    };
    let found = throng_knee::find(&plan, options)?;
    let page = args.dir.join("knee.html");
    std::fs::write(
        &page,
        throng_knee::page::html(&found, "throng knee", &slo_text),
    )
    .map_err(|e| format!("{}: {e}", page.display()))?;
    if args.json {
        println!("{}", found.json());
    } else {
        match (found.knee, &found.generator_bound) {
            (_, Some(reason)) => println!("no knee: {reason}"),
            (Some(rate), None) => println!(
                "knee: {rate:.1} {}/s ({slo_text})",
                if mqtt.is_some() {
                    "messages"
                } else {
                    "requests"
                }
            ),
            (None, None) => println!("no knee: even {}/s missed the SLO ({slo_text})", args.from),
        }
        if let Some(validation) = &found.validation {
            match &validation.verdict {
                Verdict::Pass => {}
                Verdict::Fail(reason) | Verdict::GeneratorBound(reason) => println!(
                    "but the validation step at {:.1}/s did not pass ({reason}): the target is unsteady near its knee, or the knee is lower",
                    validation.offered
                ),
            }
        }
        let (confidence, why) = found.confidence();
        if found.knee.is_some() && found.generator_bound.is_none() {
            match why.is_empty() {
                true => println!("confidence: {confidence}"),
                false => println!("confidence: {confidence}: {}", why.join("; ")),
            }
        }
        println!(
            "{} steps; results and the graph in {}",
            found.steps.len(),
            page.display()
        );
    }
    Ok(match (found.knee, &found.generator_bound) {
        (_, Some(_)) => ExitCode::from(3),
        (Some(_), None) => ExitCode::SUCCESS,
        (None, None) => ExitCode::from(1),
    })
}

/// A step as one line of the live table.
fn line(name: &str, s: &Step) -> String {
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut verdict = match &s.verdict {
        Verdict::Pass => "pass".to_string(),
        Verdict::Fail(reason) => format!("FAIL {reason}"),
        Verdict::GeneratorBound(reason) => format!("GENERATOR-BOUND {reason}"),
    };
    if let Some(note) = &s.note {
        verdict = format!("{verdict} ({note})");
    }
    format!(
        "{name}: offered {:>10.1}/s achieved {:>10.1}/s success {:>7.3}% p50 {:>8.2} p90 {:>8.2} p99 {:>8.2} max {:>8.2} ms  {verdict}",
        s.offered, s.achieved, s.success * 100.0, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max)
    )
}
