//! An attack split over processes (`--procs N`), for more connections than one process may
//! open. Each process sends its share of the one schedule (see [`crate::config::Part`]) and
//! writes its results to this process, which merges them into one stream as they come: one meta,
//! every record and interval, one end. The result reads as the run of one process would.

use crate::engine::Live;
use crate::progress;
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use throng_net::procs::{Group, Spec};
use throng_results::stream::{latency_histogram, Histogram, Progress, HISTOGRAM_MAX_NS};
use throng_results::{End, Frame, Reader, Writer};

/// Time the processes get to start before the shared schedule begins.
const START_MARGIN: Duration = Duration::from_millis(500);

/// How to run the processes.
pub struct Split {
    /// The command, for messages: "attack", "mqtt".
    pub command: &'static str,
    pub procs: usize,
    /// The command line of process `index`, given the schedule's start (Unix ns).
    pub args: Box<dyn Fn(usize, u64) -> Vec<OsString> + Send>,
    /// The targets, when they came on stdin: each process gets them on its stdin.
    pub stdin: Option<Vec<u8>>,
    /// The offered rate, for the live line.
    pub rate: f64,
    /// Print the live line on stderr.
    pub progress: bool,
    /// The schedule's start (Unix ns) when given (`--start-at`); else half a second from now.
    pub start_unix_ns: Option<u64>,
    /// The part of a run over machines these processes make together (I of N), as the merged
    /// stream says; `None`: the merged stream is one whole run.
    pub part: Option<(usize, usize)>,
}

/// Each process's command line: `common`, and its place: part I of `procs`, with the shared
/// start (`--part I/N --start-unix-ns T`). Within part `outer` = I/N of a run over machines,
/// process k sends part I + k·N of N·procs: every (N·procs)th request from there, so that the
/// processes together send exactly part I's requests.
pub fn part_args(
    common: Vec<OsString>,
    procs: usize,
    outer: Option<(usize, usize)>,
) -> Box<dyn Fn(usize, u64) -> Vec<OsString> + Send> {
    let (first, of) = outer.unwrap_or((0, 1));
    Box::new(move |index, start_unix_ns| {
        let mut args = common.clone();
        args.extend([
            "--part".into(),
            format!("{}/{}", first + index * of, of * procs).into(),
            "--start-unix-ns".into(),
            start_unix_ns.to_string().into(),
        ]);
        args
    })
}

enum Event {
    Frame(usize, Frame),
    /// A process's stream ended: `Err` when it was damaged.
    Done(usize, Result<(), String>),
    Signal,
}

/// Runs the processes to their end, writing the merged results to `output`.
pub fn run(split: Split, output: Box<dyn Write + Send>) -> Result<End, String> {
    let procs = split.procs;
    let start_unix_ns = split.start_unix_ns.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            + START_MARGIN.as_nanos() as u64
    });
    let args = split.args;
    let spec = Spec {
        name: if split.command == "mqtt" {
            "mqtt process"
        } else {
            "attack process"
        },
        args: Box::new(move |index| args(index, start_unix_ns)),
        ready: None,
        relay_stdout: false,
        stdin: split.stdin.map(|bytes| {
            let input: Arc<dyn Fn() -> Vec<u8> + Send + Sync> = Arc::new(move || bytes.clone());
            input
        }),
        own_process_group: true,
        env: Vec::new(),
    };
    let mut group = Group::start(spec, procs)?;
    let started = Instant::now();
    let (events, received) = mpsc::sync_channel(4096);
    for index in 0..procs {
        let Some(stdout) = group.take_stdout(index) else {
            continue;
        };
        let events = events.clone();
        std::thread::spawn(move || {
            let outcome = relay(index, stdout, &events);
            let _ = events.send(Event::Done(index, outcome));
        });
    }
    watch_signals(events);

    let mut output = Some(BufWriter::with_capacity(64 * 1024, output));
    let mut writer: Option<Writer<BufWriter<Box<dyn Write + Send>>>> = None;
    let mut ends = Vec::new();
    let mut failures = Vec::new();
    let mut done = 0;
    let mut signals = 0;
    let mut progress = vec![Progress::default(); procs];
    let live = Live::default();
    let mut latencies = latency_histogram();
    let mut next_line = started + Duration::from_secs(1);
    let mut last_flush = Instant::now();
    while done < procs {
        let event = match received.recv_timeout(Duration::from_millis(100)) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let idle = event.is_none();
        match event {
            // The first meta makes the stream's; the others are the same run.
            Some(Event::Frame(_, Frame::Meta(mut meta))) if writer.is_none() => {
                // Every process was given the same run: the whole is N of them.
                meta.threads *= procs as u32;
                meta.max_inflight *= procs as u64;
                // The merged stream reads as one process's: the whole run, or the machine's
                // part of one.
                let (index, of) = split.part.unwrap_or((0, 0));
                meta.part_index = index as u32;
                meta.part_of = of as u32;
                let out = output.take().ok_or("results output lost")?;
                writer =
                    Some(Writer::new(out, &meta).map_err(|e| format!("writing results: {e}"))?);
            }
            Some(Event::Frame(_, Frame::Meta(_))) => {}
            Some(Event::Frame(index, Frame::Progress(p))) => progress[index] = p,
            Some(Event::Frame(_, Frame::End(end))) => ends.push(end),
            Some(Event::Frame(_, frame)) => {
                if let Frame::Record(record) = &frame {
                    latencies.saturating_record(record.latency.clamp(1, HISTOGRAM_MAX_NS));
                    live.completed.fetch_add(1, Relaxed);
                    if !record.is_success() {
                        live.errors.fetch_add(1, Relaxed);
                    }
                }
                if let Some(writer) = writer.as_mut() {
                    writer
                        .frame(&frame)
                        .map_err(|e| format!("writing results: {e}"))?;
                }
            }
            Some(Event::Done(index, outcome)) => {
                done += 1;
                if let Err(message) = outcome {
                    failures.push(format!("process {index}: {message}"));
                }
            }
            Some(Event::Signal) => {
                // The first stops sending (results kept); the second abandons what is in flight.
                signals += 1;
                group.signal(libc::SIGINT);
                if signals == 1 {
                    eprintln!(
                        "throng {}: stopping {procs} processes (again to abandon what is in flight)",
                        split.command
                    );
                }
            }
            None => {}
        }
        // Readable while it is written: flushed at least every 100 ms.
        if idle || last_flush.elapsed() >= Duration::from_millis(100) {
            last_flush = Instant::now();
            if let Some(writer) = writer.as_mut() {
                writer
                    .flush()
                    .map_err(|e| format!("writing results: {e}"))?;
            }
        }
        if split.progress && Instant::now() >= next_line {
            next_line += Duration::from_secs(1);
            show(&live, &progress, &latencies, started, split.rate);
        }
    }
    if split.progress {
        show(&live, &progress, &latencies, started, split.rate);
        eprintln!();
    }
    group.wait(Duration::from_secs(5));
    for (index, pid, status) in group.reap() {
        if !status.success() {
            failures.push(format!("process {index} (pid {pid}) ended with {status}"));
        }
    }
    let end = merge_ends(&ends, procs);
    if let Some(mut writer) = writer {
        writer
            .end(&end)
            .and_then(|()| writer.flush())
            .map_err(|e| format!("writing results: {e}"))?;
    }
    if !failures.is_empty() {
        return Err(format!(
            "{}; the results of the others are written",
            failures.join("; ")
        ));
    }
    Ok(end)
}

/// Reads one process's stream to its end, passing its frames on.
fn relay(
    index: usize,
    stdout: std::process::ChildStdout,
    events: &mpsc::SyncSender<Event>,
) -> Result<(), String> {
    let mut reader = Reader::new(std::io::BufReader::with_capacity(64 * 1024, stdout))
        .map_err(|e| e.to_string())?;
    while let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
        if events.send(Event::Frame(index, frame)).is_err() {
            return Ok(());
        }
    }
    if reader.truncated() {
        return Err("its results stream was cut short".into());
    }
    Ok(())
}

/// How the parts ended, as one: counts add up; the first way other than "duration" tells.
fn merge_ends(ends: &[End], procs: usize) -> End {
    let mut end = End {
        ended_by: "duration".into(),
        ..End::default()
    };
    for part in ends {
        end.scheduled += part.scheduled;
        end.sent += part.sent;
        end.delayed_by_cap += part.delayed_by_cap;
        if part.ended_by != "duration" && end.ended_by == "duration" {
            end.ended_by = part.ended_by.clone();
        }
    }
    if ends.len() < procs && end.ended_by == "duration" {
        end.ended_by = format!("{} of {procs} processes did not finish", procs - ends.len());
    }
    end
}

fn show(live: &Live, parts: &[Progress], latencies: &Histogram<u64>, started: Instant, rate: f64) {
    live.sent.store(parts.iter().map(|p| p.sent).sum(), Relaxed);
    live.in_flight
        .store(parts.iter().map(|p| p.in_flight).sum(), Relaxed);
    live.open_connections
        .store(parts.iter().map(|p| p.open_connections).sum(), Relaxed);
    live.p99_ns
        .store(latencies.value_at_quantile(0.99), Relaxed);
    eprint!("\r\x1b[2K{}", progress::line(live, started.elapsed(), rate));
}

/// SIGINT and SIGTERM become events of the main loop, which passes them on to the processes.
fn watch_signals(events: mpsc::SyncSender<Event>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    std::thread::spawn(move || {
        runtime.block_on(async move {
            loop {
                throng_net::admin::wait_for_signal().await;
                if events.send(Event::Signal).is_err() {
                    return;
                }
            }
        })
    });
}
