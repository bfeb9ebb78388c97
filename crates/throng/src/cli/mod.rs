//! The command line: one subcommand per part of the experiment.

mod pong;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// throng: hold millions of TLS connections, load-test them honestly, and find the tipping point.
///
/// A TLS-terminating load balancer, an open-model load generator, the story's "pong" backend
/// and the tools around them, in one binary. Today `pong` works; the other subcommands are
/// being built.
#[derive(Debug, Parser)]
#[command(name = "throng", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// TLS-terminating TCP/HTTP load balancer (not built yet)
    Proxy(NotBuilt),
    /// Open-model load generator, vegeta's flags and targets (not built yet)
    Attack(NotBuilt),
    /// Report on results files, merged exactly (not built yet)
    Report(NotBuilt),
    /// Convert results to JSON or CSV (not built yet)
    Encode(NotBuilt),
    /// Draw results as one self-contained HTML page (not built yet)
    Plot(NotBuilt),
    /// The story's test backend: `pong` after a random `sleep`, `times` more
    ///
    /// Faithful to the story's Node.js backend. Any method and path. Request header `sleep: N`
    /// waits a uniformly random 0..=N ms before writing `pong`; `times: K` then writes `pong` K
    /// more times, each after another random 0..=N ms wait; the response is chunked. Without
    /// `sleep` the answer is immediate. Each response carries `x-served-by: <listen address>`.
    Pong(pong::PongArgs),
    /// Sample connections, packets, bytes and memory once a second (not built yet)
    Monitor(NotBuilt),
    /// Find the tipping point: the highest rate that meets an SLO (not built yet)
    Knee(NotBuilt),
    /// Run a whole experiment on this machine in one command (not built yet)
    Scenario(NotBuilt),
}

/// Arguments of a subcommand that is not built yet, taken as they come.
#[derive(Debug, clap::Args)]
pub struct NotBuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

impl Command {
    pub fn run(self) -> ExitCode {
        let name = match self {
            Command::Pong(args) => return pong::run(args),
            Command::Proxy(_) => "proxy",
            Command::Attack(_) => "attack",
            Command::Report(_) => "report",
            Command::Encode(_) => "encode",
            Command::Plot(_) => "plot",
            Command::Monitor(_) => "monitor",
            Command::Knee(_) => "knee",
            Command::Scenario(_) => "scenario",
        };
        eprintln!("throng {name}: not built yet; `throng pong` works today (see the README)");
        ExitCode::from(2)
    }
}
