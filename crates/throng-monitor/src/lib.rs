//! `throng monitor`: the signals ganglia showed the story's team, once a second, from the
//! kernel's counters: established connections, TCP segments, bytes per interface, memory, the
//! kernel's TCP memory, and the RSS and CPU of the processes it is told about. To a terminal, a
//! file (JSON lines or CSV) and Prometheus.
//!
//! - [`procfs`]: the `/proc` files read (never a per-socket table).
//! - [`sample`]: rates from two readings.
//! - [`output`]: the formats.

pub mod output;
pub mod procfs;
pub mod sample;

use sample::{Sampler, Signals};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use throng_net::admin::{self, Page};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

pub struct Options {
    pub interval: Duration,
    /// How long to run; `None`: until SIGINT/SIGTERM.
    pub duration: Option<Duration>,
    pub pids: Vec<u32>,
    /// Process names (`/proc/PID/comm`), looked up again every interval.
    pub names: Vec<String>,
    /// A file of `NAME PID` lines, read again every interval: processes (with their
    /// descendants) that come and go, under names of the caller's (`throng scenario`'s).
    pub watch_file: Option<PathBuf>,
    pub output: Option<(PathBuf, Format)>,
    pub listen: Option<SocketAddr>,
    /// A line per interval on stderr.
    pub lines: bool,
    /// The name the samples carry; `None`: this machine's host name.
    pub host: Option<String>,
    /// Stop when stdin closes: a monitor started over ssh ends with the session that started
    /// it (`throng scenario` starts one on each host so).
    pub until_stdin_closes: bool,
}

pub use throng_net::host_name;

/// Runs until the duration is over or a signal comes.
pub fn run(options: Options) -> Result<(), String> {
    let mut file = match &options.output {
        Some((path, format)) => {
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
            );
            if *format == Format::Csv {
                writeln!(file, "{}", output::CSV_HEADER).map_err(|e| e.to_string())?;
            }
            Some((file, *format))
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let latest: Arc<Mutex<Option<Signals>>> = Arc::new(Mutex::new(None));
    runtime.block_on(async {
        if let Some(addr) = options.listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("--listen {addr}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            eprintln!("throng monitor: metrics at http://{bound}/metrics");
            let latest = Arc::clone(&latest);
            tokio::spawn(admin::serve(
                listener,
                Arc::new(move |path: &str| match path {
                    "/metrics" => Page {
                        status: 200,
                        content_type: "text/plain; version=0.0.4; charset=utf-8",
                        body: latest
                            .lock()
                            .map(|s| s.as_ref().map(output::prometheus).unwrap_or_default())
                            .unwrap_or_default(),
                    },
                    _ => Page::text(404, "not found: try /metrics\n"),
                }),
            ));
        }
        let deadline = options.duration.map(|d| tokio::time::Instant::now() + d);
        let signal = admin::wait_for_signal();
        tokio::pin!(signal);
        let stdin_closed = stdin_closed(options.until_stdin_closes);
        tokio::pin!(stdin_closed);
        let mut sampler = Sampler::default();
        let host = options.host.clone().unwrap_or_else(host_name);
        let mut ticks = tokio::time::interval(options.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = &mut signal => break,
                _ = &mut stdin_closed => break,
            }
            // A process given by pid counts with its descendants (a master and its workers); by
            // name, each process counts alone (its workers have the same name).
            let mut pids: Vec<(u32, String, bool)> = options
                .pids
                .iter()
                .map(|&pid| (pid, process_name(pid), true))
                .collect();
            if let Some(path) = &options.watch_file {
                pids.extend(watch_list(path));
            }
            for name in &options.names {
                pids.extend(
                    procfs::pids_named(name)
                        .into_iter()
                        .map(|pid| (pid, name.clone(), false)),
                );
            }
            if let Some(mut signals) = sampler.sample(&pids) {
                signals.host.clone_from(&host);
                if options.lines {
                    eprintln!("{}", output::line(&signals));
                }
                if let Some((file, format)) = file.as_mut() {
                    let row = match format {
                        Format::Json => serde_json::to_string(&signals).unwrap_or_default(),
                        Format::Csv => output::csv(&signals),
                    };
                    // Each second on disk as it comes: a monitor killed loses nothing measured.
                    writeln!(file, "{row}")
                        .and_then(|_| file.flush())
                        .map_err(|e| e.to_string())?;
                }
                if let Ok(mut slot) = latest.lock() {
                    *slot = Some(signals);
                }
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                break;
            }
        }
        Ok::<(), String>(())
    })
}

/// The `NAME PID` lines of a watch file; lines that are not are skipped (the file may be
/// half-written when read).
fn watch_list(path: &std::path::Path) -> Vec<(u32, String, bool)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (name, pid) = line.trim().rsplit_once(' ')?;
            Some((pid.parse().ok()?, name.trim().to_string(), true))
        })
        .collect()
}

fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Resolves when stdin reaches its end (read on a thread of its own, the bytes thrown away);
/// never when not `watching`.
async fn stdin_closed(watching: bool) {
    if !watching {
        return std::future::pending().await;
    }
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    match throng_net::admin::when_stdin_closes(move || {
        let _ = closed.send(());
    }) {
        true => {
            let _ = on_close.await;
        }
        false => std::future::pending().await,
    }
}
