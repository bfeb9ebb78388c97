//! `throng attack`'s flags: vegeta's, with the same meanings, plus throng's own.

use super::parts::PartArgs;
use clap::{ArgAction, Args};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throng_attack::{progress, targets, Config, Live};
use throng_net::duration;
use throng_results::threshold::Threshold;

/// Open-model load generator: requests go out on a fixed schedule, whatever the target does.
///
/// Targets in vegeta's formats (stdin or --targets), used round-robin; a vegeta command line
/// works with the word changed (-rate=2000 and --rate 2000 alike). Latency is measured from when
/// each request was due, so a slow server or a stalled generator cannot hide it. Results are a
/// binary stream for `throng report` and `throng encode`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    echo 'GET http://127.0.0.1:8282/' | throng attack -rate=1000 -duration=10s | throng report\n  \
    throng attack --targets t.txt --rate 500/1s --duration 1m --output run.bin --source 127.0.0.2-127.0.0.40")]
pub struct AttackArgs {
    /// Requests per second: N, or N/DURATION (100/1s, 6000/1m)
    #[arg(long, default_value = "50/1s", value_parser = parse_rate)]
    rate: f64,

    /// How long to attack; 0 attacks until Ctrl-C
    #[arg(long, default_value = "0s", value_parser = duration::parse)]
    duration: Duration,

    #[command(flatten)]
    request: RequestArgs,

    /// Results file [default: stdout]
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// The attack's name, recorded with the results
    #[arg(long, default_value = "")]
    name: String,

    /// No live line on stderr
    #[arg(long, short)]
    quiet: bool,

    /// Processes to split the attack over (past the open-files limit of one process): each
    /// sends its share of the one schedule, and their results merge into one stream
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    procs: u64,

    #[command(flatten)]
    parts: PartArgs,

    /// A condition the run must meet, k6's threshold: p99<50ms, success>=99.9%,
    /// errors.timeout==0, rate>=990 (repeatable; the syntax of `throng report --threshold`).
    /// Judged at the end on what was measured, each said met or broken on stderr with its
    /// figure; a broken one makes the exit status 1 (the results are written whole either way)
    #[arg(long, value_name = "CONDITION")]
    threshold: Vec<String>,
}

/// What `--timeout 0` stands for: none (a year).
const NO_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// What to send and how: the flags `throng attack` and `throng knee` share.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// For each request, from its send to the end of its response; 0 for none (as vegeta)
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    timeout: Duration,

    /// Targets file [default: stdin]
    #[arg(long, value_name = "FILE")]
    targets: Option<PathBuf>,

    /// Targets format: http or json
    #[arg(long, default_value = "http", value_parser = ["http", "json"])]
    format: String,

    /// A header for every request, "Name: value"; repeatable
    #[arg(long, value_name = "HEADER", value_parser = parse_header)]
    header: Vec<(String, String)>,

    /// Body file for targets that have none
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,

    /// Most requests in flight at once; more wait (counted) [default: what the open-files limit allows]
    #[arg(long, value_name = "N", aliases = ["max-workers"])]
    max_inflight: Option<usize>,

    /// Most connections per target host (vegeta's): over HTTP/1.1, where a request in flight
    /// holds a connection, the same as --max-inflight (unless that is given); over HTTP/2, a
    /// request past the streams these allow waits for one to end (counted)
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,

    /// Accepted for vegeta's command lines: throng runs each request as its own task
    #[arg(long, value_name = "N")]
    workers: Option<u64>,

    /// Idle connections kept per target host and thread
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    connections: usize,

    /// Reuse connections (HTTP keep-alive)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    keepalive: bool,

    /// Bind outgoing connections to these source addresses in turn: a list, a range
    /// (127.0.0.2-127.0.0.40) or a CIDR block; each address has ~28k-64k ports per destination
    #[arg(long, value_name = "ADDRS", value_parser = parse_pool, alias = "laddr")]
    source: Option<SourcePool>,

    /// Worker threads [default: number of cores]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// Send within about a microsecond of each due time by spinning the last 100 µs (a core at
    /// high rates); without it, the send comes when the timer wakes, tens of µs late (measured)
    #[arg(long)]
    precise: bool,

    /// Send the requests due within each window of this length together, at its end: one
    /// wake-up for the lot, wrk2's trade (each up to a window late, measured as lag; latency
    /// still runs from the due time) [default: 0s for attack, each at its time; 1ms for knee]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    batch: Option<Duration>,

    /// TLS: accept any server certificate (handshake signatures are still checked)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    insecure: bool,

    /// TLS: trusted root certificates, PEM files separated by commas [default: the system's]
    #[arg(long = "root-certs", value_name = "FILES")]
    root_certs: Option<String>,

    /// TLS client certificate chain (PEM), with --key
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,

    /// TLS client private key (PEM), with --cert
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,

    /// TLS: full handshakes every time (by default sessions resume, as browsers and vegeta do)
    #[arg(long)]
    no_resume: bool,

    /// TLS key-exchange groups in preference order: x25519mlkem768, x25519, secp256r1, secp384r1
    #[arg(long, value_name = "GROUPS", value_delimiter = ',')]
    tls_groups: Vec<String>,

    /// HTTP/2 on https targets: offered by ALPN beside http/1.1, used when the server picks it
    /// (vegeta's -http2) [default: true for attack, false for knee]
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    http2: Option<bool>,

    /// HTTP/2 on plain http targets, from the first byte (prior knowledge, vegeta's -h2c)
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    h2c: bool,

    #[command(flatten)]
    vegeta: super::vegeta::AttackFlags,
}

/// vegeta's rate: `N` per second, or `N/DURATION`.
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    let (count, per) = text.split_once('/').unwrap_or((text, "1s"));
    let count: f64 = count
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: `{count}` is not a number"))?;
    let per = if per.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        per.to_string()
    } else {
        format!("1{per}")
    };
    let per = duration::parse(&per).map_err(|e| format!("`{text}`: {e}"))?;
    if count.is_nan() || count <= 0.0 || per.is_zero() {
        return Err(format!(
            "`{text}`: the rate must be more than zero (throng is an open-model generator)"
        ));
    }
    Ok(count / per.as_secs_f64())
}

/// A source-address pool, one flag value (clap would take a bare `Vec` for repeated flags).
#[derive(Clone, Debug)]
struct SourcePool(Vec<std::net::IpAddr>);

fn parse_pool(text: &str) -> Result<SourcePool, String> {
    throng_net::source::parse_pool(text).map(SourcePool)
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: expected \"Name: value\""))?;
    Ok((name.trim().to_string(), value.trim().to_string()))
}

pub fn run(args: AttackArgs) -> ExitCode {
    match attack(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("throng attack: {message}");
            ExitCode::FAILURE
        }
    }
}

fn attack(mut args: AttackArgs) -> Result<ExitCode, String> {
    // Explicit flags win; else the launcher may say which part this is.
    if args.parts.part.is_none() {
        args.parts.part = args.parts.resolve()?;
    }
    let output: Box<dyn std::io::Write + Send> = match &args.output {
        Some(path) if path.as_os_str() != "stdout" && path.as_os_str() != "-" => Box::new(
            std::fs::File::create(path).map_err(|e| format!("-output {}: {e}", path.display()))?,
        ),
        _ => {
            if std::io::stdout().is_terminal() {
                return Err(
                    "results are binary: pipe them (| throng report) or use --output FILE".into(),
                );
            }
            Box::new(std::io::stdout())
        }
    };
    let progress = !args.quiet && args.parts.part.is_none() && std::io::stderr().is_terminal();
    // A machine's part of a run may itself be several processes (past one process's
    // open-files limit): they split the part as parts split the run.
    // (Its processes are started without --procs.)
    if args.procs > 1 {
        return split(args, output, progress);
    }
    let part = args.parts.part.map(|(index, of)| throng_attack::Part {
        index,
        of,
        start_unix_ns: args.parts.shared_start(),
    });
    let Prepared {
        config,
        headers: extra_headers,
        body,
    } = args.request.prepare(
        args.rate,
        args.duration,
        args.name,
        progress,
        Duration::ZERO,
        true,
    )?;
    let thresholds = throng_results::threshold::parse_all(&args.threshold)
        .map_err(|e| format!("--threshold {e}"))?;
    let mut config = config;
    config.summarize = !thresholds.is_empty();
    config.part = part;
    config.start_at = args.parts.start_at;
    config.host_name = args.parts.host_name.clone();
    let live = Arc::new(Live::default());
    let rate = config.rate;
    let show_progress = config.progress;
    let engine_live = Arc::clone(&live);
    let engine = std::thread::spawn(move || {
        throng_attack::run(config, &extra_headers, body.as_deref(), output, engine_live)
    });
    let started = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = show_progress.then(|| {
        let (live, done) = (Arc::clone(&live), Arc::clone(&done));
        std::thread::spawn(move || {
            progress::show(&live, rate, started, || done.load(Ordering::Relaxed))
        })
    });
    watch_signals(&live, &engine);
    let throng_attack::Ran { end, summary } = engine
        .join()
        .map_err(|_| "the attack failed".to_string())??;
    done.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        let _ = progress.join();
    }
    if end.ended_by != "duration" {
        eprintln!(
            "throng attack: {}; the results written are complete up to here",
            end.ended_by
        );
    }
    Ok(summary.map_or(ExitCode::SUCCESS, |summary| judge(&summary, &thresholds)))
}

/// Says each threshold's verdict on stderr; exit status 1 when one is broken.
fn judge(summary: &throng_results::report::Summary, thresholds: &[Threshold]) -> ExitCode {
    let verdicts = summary.judge(thresholds);
    eprint!("{}", throng_results::threshold::describe(&verdicts));
    match verdicts.iter().all(|v| v.met) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    }
}

/// `--procs N`: the same attack in N processes, each sending its share of one schedule, their
/// results merged into `output`.
fn split(
    args: AttackArgs,
    output: Box<dyn std::io::Write + Send>,
    progress: bool,
) -> Result<ExitCode, String> {
    let procs = args.procs as usize;
    let thresholds = throng_results::threshold::parse_all(&args.threshold)
        .map_err(|e| format!("--threshold {e}"))?;
    let merged_file = args
        .output
        .clone()
        .filter(|p| p.as_os_str() != "stdout" && p.as_os_str() != "-");
    if !thresholds.is_empty() && merged_file.is_none() {
        return Err(
            "--threshold with --procs judges the merged results: give --output FILE".into(),
        );
    }
    // The targets are checked here, before any process starts; from stdin, they are passed on.
    let (text, base_dir) = read_targets(args.request.targets.as_deref())?;
    match args.request.format.as_str() {
        "json" => targets::parse_json(&text).map(drop)?,
        _ => targets::parse_http(&text, &base_dir).map(drop)?,
    }
    let from_stdin = args
        .request
        .targets
        .as_deref()
        .is_none_or(|p| p.as_os_str() == "stdin" || p.as_os_str() == "-");
    // Each process is told its own part (of this machine's, when it has one).
    let mut common = throng_net::procs::own_args_without(&[
        "procs",
        "output",
        "max-inflight",
        "max-workers",
        "max-connections",
        "part",
        "parts",
        "threshold",
    ]);
    if let Some(n) = args.request.max_inflight {
        common.extend([
            "--max-inflight".into(),
            n.div_ceil(procs).max(1).to_string().into(),
        ]);
    }
    if let Some(n) = args.request.max_connections {
        common.extend([
            "--max-connections".into(),
            n.div_ceil(procs).max(1).to_string().into(),
        ]);
    }
    common.extend(["--output".into(), "-".into()]);
    let end = throng_attack::split::run(
        throng_attack::split::Split {
            command: "attack",
            procs,
            args: throng_attack::split::part_args(common, procs, args.parts.part),
            stdin: from_stdin.then(|| text.into_bytes()),
            rate: args.rate,
            progress,
            start_unix_ns: args.parts.start_at,
            part: args.parts.part,
        },
        output,
    )?;
    if end.ended_by != "duration" {
        eprintln!(
            "throng attack: {}; the results written are complete up to here",
            end.ended_by
        );
    }
    match merged_file.filter(|_| !thresholds.is_empty()) {
        Some(path) => {
            let file = std::fs::File::open(&path)
                .map_err(|e| format!("--output {}: {e}", path.display()))?;
            let named = |e: std::io::Error| format!("--output {}: {e}", path.display());
            let reader =
                throng_results::Reader::new(std::io::BufReader::new(file)).map_err(named)?;
            let mut summary = throng_results::report::Summary::new(None);
            summary.add_stream(reader).map_err(named)?;
            Ok(judge(&summary, &thresholds))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// An attack's configuration, with the headers and body every request gets.
pub struct Prepared {
    pub config: Config,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl RequestArgs {
    /// Reads the targets (and body) and makes the configuration for `rate` over `duration`.
    pub fn prepare(
        self,
        rate: f64,
        duration: Duration,
        name: String,
        progress: bool,
        default_batch: Duration,
        default_http2: bool,
    ) -> Result<Prepared, String> {
        for note in self.vegeta.check()? {
            eprintln!("throng: {note}");
        }
        let (text, base_dir) = read_targets(self.targets.as_deref())?;
        let targets = match self.format.as_str() {
            "json" => targets::parse_json(&text)?,
            _ => targets::parse_http(&text, &base_dir)?,
        };
        let body = match &self.body {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| format!("-body {}: {e}", path.display()))?)
            }
            None => None,
        };
        let alpn = self.http2.unwrap_or(default_http2);
        // Over HTTP/1.1 a request in flight holds a connection, so a cap on connections caps
        // them; over HTTP/2 it caps connections only, and streams wait for a slot.
        let http2_asked = self.h2c || (alpn && targets.iter().any(|t| t.url.tls));
        let connections_cap_inflight = self.max_connections.filter(|_| !http2_asked);
        let max_inflight = match self.max_inflight.or(connections_cap_inflight) {
            Some(n) => n,
            None => {
                let limit = throng_net::rlimit::raise_nofile().map_err(|e| e.to_string())?;
                throng_net::rlimit::connections_that_fit(limit, 1) as usize
            }
        };
        let config = Config {
            targets,
            rate,
            duration: (!duration.is_zero()).then_some(duration),
            // vegeta's -timeout=0 is no timeout (Go's http.Client); a year stands for it, far
            // past any run, and still a deadline the timers can hold.
            timeout: match self.timeout {
                Duration::ZERO => NO_TIMEOUT,
                timeout => timeout,
            },
            max_inflight,
            precise: self.precise,
            batch: self.batch.unwrap_or(default_batch),
            start_at: None,
            host_name: None,
            summarize: false,
            idle_connections: self.connections,
            // A thread's share: the threads keep connections of their own.
            max_connections: self.max_connections.map(|n| {
                let threads = self
                    .threads
                    .unwrap_or_else(throng_net::workers::default_threads)
                    .max(1);
                n.div_ceil(threads).max(1)
            }),
            http2: throng_attack::Http2Options {
                alpn,
                h2c: self.h2c,
            },
            keepalive: self.keepalive,
            threads: self
                .threads
                .unwrap_or_else(throng_net::workers::default_threads),
            sources: self.source.map(|pool| pool.0).unwrap_or_default(),
            name,
            progress,
            tls: throng_tls::config::ClientOptions {
                insecure: self.insecure,
                root_certs: self
                    .root_certs
                    .map(|list| list.split(',').map(PathBuf::from).collect())
                    .unwrap_or_default(),
                client_cert: self.cert.zip(self.key),
                resume: !self.no_resume,
                groups: self.tls_groups,
                ..Default::default()
            },
            part: None,
        };
        Ok(Prepared {
            config,
            headers: self.header,
            body,
        })
    }
}

/// First Ctrl-C: stop sending and let requests in flight finish. Second: stop waiting for them.
fn watch_signals<T>(live: &Live, engine: &std::thread::JoinHandle<T>) {
    super::on_signals(
        || engine.is_finished(),
        |signals| {
            live.stop();
            if signals >= 2 {
                live.abandon.store(true, Ordering::Relaxed);
            }
        },
    );
}

/// The targets text, and the folder `@body` paths are relative to.
fn read_targets(path: Option<&Path>) -> Result<(String, PathBuf), String> {
    match path {
        Some(path) if path.as_os_str() != "stdin" && path.as_os_str() != "-" => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("-targets {}: {e}", path.display()))?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            Ok((text, base))
        }
        _ => {
            if std::io::stdin().is_terminal() {
                eprintln!("throng attack: reading targets from stdin (end with Ctrl-D), or use --targets FILE");
            }
            let mut text = String::new();
            std::io::stdin()
                .take(64 << 20)
                .read_to_string(&mut text)
                .map_err(|e| format!("reading targets from stdin: {e}"))?;
            Ok((text, PathBuf::from(".")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_vegeta_writes_them() {
        assert_eq!(parse_rate("2000").unwrap(), 2000.0);
        assert_eq!(parse_rate("100/1s").unwrap(), 100.0);
        assert_eq!(parse_rate("6000/1m").unwrap(), 100.0);
        assert_eq!(parse_rate("5/500ms").unwrap(), 10.0);
        assert_eq!(parse_rate("60/m").unwrap(), 1.0);
        assert!(parse_rate("0").unwrap_err().contains("more than zero"));
        assert!(parse_rate("fast").unwrap_err().contains("not a number"));
        assert!(parse_rate("10/1x").is_err());
    }
}
