//! `throng scenario`'s flags.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use throng_scenario::config;

/// Run the whole experiment on this machine: pong, the proxy with TLS, the monitor, attack phases
///
/// Starts `throng pong` on several ports and `throng proxy` with TLS in front of them (a
/// self-signed ECDSA certificate made at start), watches both with `throng monitor`, runs the
/// attack phases one after another through the proxy, stops everything, and writes a folder:
/// each phase's results, monitor.jsonl, the proxy's logs, report.txt and report.html. Without a
/// file it runs an embedded default (`--print-default`) of about two minutes that holds more
/// than 5,000 concurrent TLS connections through the proxy. Ctrl-C ends the phase in progress
/// and still writes everything measured.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    throng scenario                               # the embedded default\n  \
    throng scenario my.toml --dir run1            # a scenario file; results in run1/\n  \
    throng scenario --print-default > my.toml")]
pub struct ScenarioArgs {
    /// The scenario file (TOML) [default: the embedded default]
    file: Option<PathBuf>,

    /// The results folder [default: scenario-DATE-TIME]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Print the embedded default scenario and exit
    #[arg(long)]
    print_default: bool,
}

pub fn run(args: ScenarioArgs) -> ExitCode {
    if args.print_default {
        print!("{}", config::DEFAULT);
        return ExitCode::SUCCESS;
    }
    let parsed = match &args.file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| config::parse(&text, &path.display().to_string())),
        None => config::parse(config::DEFAULT, "<embedded default>"),
    };
    let scenario = match parsed {
        Ok(scenario) => scenario,
        Err(message) => {
            eprintln!("throng scenario: {message}");
            return ExitCode::from(2);
        }
    };
    let dir = args.dir.unwrap_or_else(|| {
        let (y, mo, d, h, mi, s, _) = throng_net::calendar::utc(std::time::SystemTime::now());
        PathBuf::from(format!("scenario-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}"))
    });
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("throng scenario: cannot find the throng binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    match throng_scenario::run::run(&scenario, &exe, &dir) {
        Ok(outcome) => {
            println!("{}", outcome.summary);
            println!(
                "results in {}: report.txt, report.html, monitor.jsonl, the phases' results",
                outcome.dir.display()
            );
            if outcome.interrupted {
                println!("(interrupted: the phases run so far are all there)");
                return ExitCode::from(130);
            }
            if !outcome.failed.is_empty() {
                eprintln!(
                    "throng scenario: the attack of phase {} failed (see attack.log); the results written are there",
                    outcome.failed.join(", ")
                );
                return ExitCode::FAILURE;
            }
            if !outcome.broken.is_empty() {
                eprintln!(
                    "throng scenario: a threshold of phase {} is broken (above, and in report.txt)",
                    outcome.broken.join(", ")
                );
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("throng scenario: {message}");
            ExitCode::FAILURE
        }
    }
}
