//! `throng`: one binary for the whole experiment. This file only parses the command line and
//! hands each subcommand to the crate that does the work.

mod cli;

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

// jemalloc, unprefixed so that C code (aws-lc) allocates from it too: it holds up under the churn
// of millions of connections opening and closing, and its statistics count everything.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_from(cli::vegeta_spelling(std::env::args().collect()));
    init_logging();
    cli.command.run()
}

/// Logs go to stderr; `RUST_LOG` sets the level (default `info`), e.g. `RUST_LOG=debug`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
