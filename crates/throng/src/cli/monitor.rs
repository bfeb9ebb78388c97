//! `throng monitor`'s flags.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use throng_monitor::{Format, Options};
use throng_net::duration;

/// The machine's signals once a second, as ganglia showed them to the story's team
///
/// Established TCP connections, TCP segments in and out per second, bytes per second per
/// interface, memory used, the kernel's TCP sockets and buffer memory, and the RSS and CPU of
/// the processes named by --pid or --name. All from the kernel's counters: never a per-socket
/// table, so it stays cheap with millions of connections.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    throng monitor --name throng --name haproxy          # a line a second on stderr\n  \
    throng monitor --output run.jsonl --duration 2m      # JSON lines (or --format csv)\n  \
    throng monitor --listen 127.0.0.1:9200 -q            # Prometheus at /metrics\n  \
    pdsh -R exec -w h1,h2 ip netns exec %h throng monitor --host %h --output %h.jsonl --duration 1m\n  \
    throng plot run.bin --monitor h1.jsonl --monitor h2.jsonl   # a series per host")]
pub struct MonitorArgs {
    /// Time between samples
    #[arg(long, default_value = "1s", value_parser = duration::parse)]
    interval: Duration,

    /// How long to run; 0 runs until Ctrl-C
    #[arg(long, default_value = "0s", value_parser = duration::parse)]
    duration: Duration,

    /// A process to watch (RSS and CPU), summed with its descendants (a master and its workers); repeatable
    #[arg(long, value_name = "PID")]
    pid: Vec<u32>,

    /// Processes to watch by name (as in /proc/PID/comm), found again every sample; repeatable
    #[arg(long, value_name = "NAME")]
    name: Vec<String>,

    /// A file of `NAME PID` lines, read again every sample: processes that come and go (with
    /// their descendants), under those names
    #[arg(long, value_name = "FILE")]
    watch: Option<PathBuf>,

    /// Write every sample to this file
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// The file's format: json (one object per line) or csv
    #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
    format: String,

    /// Serve the latest sample as Prometheus metrics at http://ADDR/metrics
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// No line per sample on stderr
    #[arg(long, short)]
    quiet: bool,

    /// The name the samples carry (JSON `host`), so that `throng plot` tells machines apart
    /// [default: this machine's host name]; give one per network namespace, which share theirs
    #[arg(long, value_name = "NAME")]
    host: Option<String>,

    /// Stop when stdin closes: a monitor started over ssh (or by `throng scenario` on its hosts)
    /// ends with the session that started it
    #[arg(long)]
    until_stdin_closes: bool,
}

pub fn run(args: MonitorArgs) -> ExitCode {
    if args.interval < Duration::from_millis(100) {
        eprintln!("throng monitor: --interval must be at least 100ms");
        return ExitCode::from(2);
    }
    let format = if args.format == "csv" {
        Format::Csv
    } else {
        Format::Json
    };
    let options = Options {
        interval: args.interval,
        duration: (!args.duration.is_zero()).then_some(args.duration),
        pids: args.pid,
        names: args.name,
        watch_file: args.watch,
        output: args.output.map(|path| (path, format)),
        listen: args.listen,
        lines: !args.quiet,
        host: args.host,
        until_stdin_closes: args.until_stdin_closes,
    };
    match throng_monitor::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("throng monitor: {message}");
            ExitCode::FAILURE
        }
    }
}
