//! `throng plot`'s flags.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Draw results (and monitor samples) as one self-contained HTML page
///
/// Charts over time: offered, sent and completed requests per second, latency percentiles per
/// second, a latency scatter, errors by class; with --monitor, established connections,
/// segments/s, bytes/s, memory, and the watched processes' CPU and memory. Inline SVG, no
/// script, nothing fetched: the page opens offline, and a long run stays quick to open.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    throng plot run.bin > run.html\n  \
    throng plot a.bin b.bin --monitor run.jsonl --output run.html")]
pub struct PlotArgs {
    /// Results files (from throng attack), merged (none: the monitors' samples alone)
    #[arg(required_unless_present = "monitor", value_name = "RESULTS")]
    results: Vec<PathBuf>,

    /// A monitor's JSON lines (throng monitor --output FILE); repeat it for the monitors of
    /// several machines: each gets its own series, named by its samples' host
    #[arg(long, value_name = "FILE")]
    monitor: Vec<PathBuf>,

    /// Where to write the page [default: stdout]
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// vegeta plot's page title (accepted; the page is titled by the runs' names)
    #[arg(long, hide = true)]
    title: Option<String>,

    /// vegeta plot's downsampling threshold (accepted; throng draws per-second figures)
    #[arg(long, hide = true)]
    threshold: Option<String>,
}

pub fn run(args: PlotArgs) -> ExitCode {
    if args.title.is_some() {
        eprintln!(
            "throng plot: -title: accepted, no effect: the page is titled by the runs' names"
        );
    }
    if args.threshold.is_some() {
        eprintln!("throng plot: -threshold: accepted, no effect: every series is drawn per second, whatever the run's length");
    }
    let results: Vec<&std::path::Path> = args.results.iter().map(PathBuf::as_path).collect();
    let monitors: Vec<&std::path::Path> = args.monitor.iter().map(|p| p.as_path()).collect();
    let page = match throng_plot::page(&results, &monitors) {
        Ok(page) => page,
        Err(message) => {
            eprintln!("throng plot: {message}");
            return ExitCode::FAILURE;
        }
    };
    let written = match &args.output {
        Some(path) => std::fs::write(path, page).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(page.as_bytes())
                .map_err(|e| e.to_string())
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("throng plot: {message}");
            ExitCode::FAILURE
        }
    }
}
