//! The command line: one subcommand per part of the experiment.

mod attack;
mod knee;
mod monitor;
mod mqtt;
mod parts;
mod plot;
mod pong;
mod proxy;
mod report;
mod scenario;
mod shell;
mod vegeta;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// throng: hold millions of TLS connections, load-test them honestly, and find the tipping point.
///
/// A TLS-terminating load balancer, an open-model load generator, the story's "pong" backend
/// and the tools around them, in one binary.
#[derive(Debug, Parser)]
#[command(name = "throng", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// TLS-terminating TCP/HTTP load balancer: HAProxy's concepts in a TOML file
    Proxy(proxy::ProxyArgs),
    /// Open-model load generator: vegeta's flags and targets, latency free of coordinated omission
    Attack(attack::AttackArgs),
    /// Report on results files, merged exactly: vegeta's layout and more
    Report(report::ReportArgs),
    /// Convert results to JSON lines or CSV (vegeta's field names), and JSON back
    Encode(report::EncodeArgs),
    /// Draw results (and monitor samples) as one self-contained HTML page
    Plot(plot::PlotArgs),
    /// The story's test backend: `pong` after a random `sleep`, `times` more
    ///
    /// Faithful to the story's Node.js backend. Any method and path. Request header `sleep: N`
    /// waits a uniformly random 0..=N ms before writing `pong`; `times: K` then writes `pong` K
    /// more times, each after another random 0..=N ms wait; the response is chunked. Without
    /// `sleep` the answer is immediate. Each response carries `x-served-by: <listen address>`.
    Pong(pong::PongArgs),
    /// Connections, segments, bytes, memory and processes once a second, from the kernel's counters
    Monitor(monitor::MonitorArgs),
    /// Find the tipping point: the highest rate that meets an SLO, and draw it
    Knee(knee::KneeArgs),
    /// Run the whole experiment on this machine: pong, the proxy with TLS, the monitor, attack phases
    Scenario(scenario::ScenarioArgs),
    /// MQTT load with emqtt-bench's flags: conn, sub, pub; end-to-end latency from the intended send
    Mqtt(mqtt::MqttArgs),
    /// Print a shell's completion script for throng: bash, zsh, fish, elvish or powershell
    Completions(shell::CompletionsArgs),
    /// Write man pages for throng and each subcommand into a folder (what a package installs)
    Manpages(shell::ManpagesArgs),
}

impl Command {
    pub fn run(self) -> ExitCode {
        match self {
            Command::Pong(args) => pong::run(args),
            Command::Attack(args) => attack::run(args),
            Command::Report(args) => report::report(args),
            Command::Encode(args) => report::encode(args),
            Command::Proxy(args) => proxy::run(args),
            Command::Plot(args) => plot::run(args),
            Command::Monitor(args) => monitor::run(args),
            Command::Knee(args) => knee::run(args),
            Command::Scenario(args) => scenario::run(args),
            Command::Mqtt(args) => mqtt::run(args),
            Command::Completions(args) => shell::completions(args),
            Command::Manpages(args) => shell::manpages(args),
        }
    }
}

/// Until `done()`, calls `on_signal(n)` for the n-th SIGINT or SIGTERM (a Ctrl-C, a `kill`):
/// the generators stop on the first and give up waiting on the second.
fn on_signals(done: impl Fn() -> bool, mut on_signal: impl FnMut(usize)) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut signals = 0;
        while !done() {
            tokio::select! {
                _ = int.recv() => signals += 1,
                _ = term.recv() => signals += 1,
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => continue,
            }
            on_signal(signals);
        }
    });
}

/// The subcommands that take vegeta's flags, which vegeta spells with one dash.
const VEGETA_STYLE: [&str; 5] = ["attack", "report", "encode", "plot", "knee"];

/// Rewrites a vegeta command line into throng's: vegeta's single-dash long flags (`-rate=2000`,
/// `-duration 10s`) become `--rate=2000`, so that a vegeta command line works with the word
/// changed; one-letter flags (`-q`) stay. vegeta's global flags, before the subcommand, are
/// taken too: `-cpus N` (the CPUs the attack may use) becomes `--threads N` for `attack` and
/// `knee` (unless `--threads` is given), and is accepted and ignored by the others; `-profile`
/// (a Go profile) is accepted and ignored.
pub fn vegeta_spelling(args: Vec<String>) -> Vec<String> {
    let (args, cpus) = take_vegeta_globals(args);
    let vegeta_style = args
        .get(1)
        .is_some_and(|command| VEGETA_STYLE.contains(&command.as_str()));
    if !vegeta_style {
        return args;
    }
    let mut args: Vec<String> = args
        .into_iter()
        .enumerate()
        .map(|(i, arg)| {
            let long_with_one_dash = i > 1
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg[1..].split('=').next().is_some_and(|name| {
                    name.len() > 1 && name.starts_with(|c: char| c.is_ascii_alphabetic())
                });
            if long_with_one_dash {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect();
    let takes_threads = args
        .get(1)
        .is_some_and(|command| command == "attack" || command == "knee");
    let has_threads = args
        .iter()
        .any(|a| a == "--threads" || a.starts_with("--threads="));
    if let (Some(cpus), true, false) = (cpus, takes_threads, has_threads) {
        args.push(format!("--threads={cpus}"));
    }
    args
}

/// vegeta's global flags between the program's name and the subcommand: removed from the line;
/// `-cpus`' value is returned.
fn take_vegeta_globals(args: Vec<String>) -> (Vec<String>, Option<String>) {
    let mut out = Vec::with_capacity(args.len());
    let mut cpus = None;
    let mut args = args.into_iter();
    out.extend(args.next());
    let mut rest = args.peekable();
    while let Some(arg) = rest.next_if(|a| a.starts_with('-') && out.len() == 1) {
        let name = arg.trim_start_matches('-');
        let (name, value) = match name.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (name, None),
        };
        match name {
            "cpus" => cpus = value.or_else(|| rest.next()),
            "profile" => {
                if value.is_none() {
                    rest.next();
                }
            }
            _ => {
                // Not a vegeta global (`--help`, `--version`): clap's to read.
                out.push(arg);
                break;
            }
        }
    }
    out.extend(rest);
    (out, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn vegetas_single_dash_becomes_double() {
        let args = |line: &str| line.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            vegeta_spelling(args(
                "throng attack -rate=2000 -duration 10s -q --name x -keepalive"
            )),
            args("throng attack --rate=2000 --duration 10s -q --name x --keepalive")
        );
        assert_eq!(
            vegeta_spelling(args("throng pong -l 127.0.0.1:1")),
            args("throng pong -l 127.0.0.1:1")
        );
        assert_eq!(
            vegeta_spelling(args("throng report -type=json -")),
            args("throng report --type=json -")
        );
    }

    #[test]
    fn vegetas_global_flags_before_the_subcommand() {
        let args = |line: &str| line.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            vegeta_spelling(args("throng -cpus=32 attack -rate=10")),
            args("throng attack --rate=10 --threads=32")
        );
        assert_eq!(
            vegeta_spelling(args("throng -cpus 4 -profile cpu attack -duration=1s")),
            args("throng attack --duration=1s --threads=4")
        );
        assert_eq!(
            vegeta_spelling(args("throng -cpus=4 attack --threads 2")),
            args("throng attack --threads 2")
        );
        assert_eq!(
            vegeta_spelling(args("throng -cpus=4 report -inputs=a.bin,b.bin")),
            args("throng report --inputs=a.bin,b.bin")
        );
        assert_eq!(
            vegeta_spelling(args("throng --version")),
            args("throng --version")
        );
    }
}
