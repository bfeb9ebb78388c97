//! An attack's run: one thread per `--threads`, each with its share of the open-model schedule
//! (`schedule`) and the lanes that send it (`lanes`), a writer thread for the
//! results, and the figures the live line reads. A slow server never slows the schedule; only
//! `--max-inflight` can, and then the requests that wait are counted, sent when a lane frees, and
//! measured from when they were due.

use crate::alarm::Alarm;
use crate::client::Connection;
use crate::config::Config;
use crate::h2;
use crate::lanes::{self, Lanes};
use crate::request::{self, PreparedTarget};
use crate::schedule::Schedule;
use crate::sink::{self, Batch};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use throng_net::source::RoundRobin;
use throng_net::{rlimit, workers};
use throng_results::{End, Meta, Record};
use tokio::time::Instant;

/// How often a thread hands its finished records to the writer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Bytes read from a socket at once, into the thread's scratch buffer.
const READ_CHUNK: usize = 16 * 1024;

/// Figures the live line and the end summary read, updated by every thread.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests sent (or being sent).
    pub sent: AtomicU64,
    /// When the first thread stopped scheduling, in nanoseconds since the start: requests due
    /// before it count as offered.
    pub stopped_at_ns: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub delayed_by_cap: AtomicU64,
    pub in_flight: AtomicI64,
    pub open_connections: AtomicI64,
    /// p99 of latency so far, from the writer's histogram.
    pub p99_ns: AtomicU64,
    /// Stop scheduling (first Ctrl-C, or the duration is over).
    pub stop: AtomicBool,
    /// Stop waiting for requests in flight (second Ctrl-C).
    pub abandon: AtomicBool,
    /// Wakes lanes waiting for a request's due time when the attack stops.
    pub(crate) stopping: tokio::sync::Notify,
    /// When the stop was asked for: the schedule ends there, even while every lane is still
    /// busy with a request and none has looked at the schedule since.
    stop_asked_at: std::sync::OnceLock<std::time::Instant>,
}

impl Live {
    /// Stops scheduling: the first Ctrl-C, or SIGTERM.
    pub fn stop(&self) {
        let _ = self.stop_asked_at.set(std::time::Instant::now());
        self.stop.store(true, Ordering::Relaxed);
        self.stopping.notify_waiters();
    }
}

/// What one worker thread's requests share.
pub(crate) struct ThreadCtx {
    pub config: Arc<Config>,
    pub targets: Arc<Vec<PreparedTarget>>,
    /// One TLS client configuration for every connection of the run, so sessions resume.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub schedule: Schedule,
    pub lanes: Lanes,
    /// For waits shorter than tokio's millisecond timer can time; `None` if it could not be made.
    pub alarm: Option<Alarm>,
    pub scratch: RefCell<Box<[u8]>>,
    /// HTTP/2 connections, by host.
    pub h2: h2::Hosts,
    live: Arc<Live>,
    idle: RefCell<Vec<Vec<Connection>>>,
    sources: RefCell<Option<RoundRobin>>,
    records: RefCell<Vec<Record>>,
}

impl ThreadCtx {
    pub(crate) fn live(&self) -> &Live {
        &self.live
    }

    /// A parked connection to `host` that is still quiet; those the server closed (or wrote to)
    /// while they sat idle are dropped on the way.
    pub(crate) fn take_idle(&self, host: usize) -> Option<Connection> {
        let mut idle = self.idle.borrow_mut();
        while let Some(mut connection) = idle.get_mut(host)?.pop() {
            if connection.is_quiet() {
                return Some(connection);
            }
            drop(connection);
            self.connection_closed();
        }
        None
    }

    pub(crate) fn put_idle(&self, host: usize, connection: Connection) {
        let mut idle = self.idle.borrow_mut();
        if idle[host].len() < self.config.idle_connections {
            idle[host].push(connection);
        } else {
            self.connection_closed();
        }
    }

    pub(crate) fn next_source(&self) -> Option<(usize, std::net::IpAddr)> {
        self.sources
            .borrow_mut()
            .as_mut()
            .and_then(RoundRobin::next)
    }

    pub(crate) fn connection_opened(&self) {
        self.live.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.live.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self, record: Record) {
        self.live.completed.fetch_add(1, Ordering::Relaxed);
        if !record.is_success() {
            self.live.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.records.borrow_mut().push(record);
    }
}

/// How an attack ended, and its summary when the configuration asked for one (`summarize`).
pub struct Ran {
    pub end: End,
    pub summary: Option<throng_results::report::Summary>,
}

/// Runs an attack to its end, writing results to `output`. Returns how it ended.
pub fn run(
    config: Config,
    extra_headers: &[(String, String)],
    default_body: Option<&[u8]>,
    output: Box<dyn std::io::Write + Send>,
    live: Arc<Live>,
) -> Result<Ran, String> {
    if !(config.rate.is_finite() && config.rate > 0.0) {
        return Err(format!(
            "-rate must be a positive number of requests per second, got {}",
            config.rate
        ));
    }
    let prepared = request::prepare(
        &config.targets,
        extra_headers,
        default_body,
        config.keepalive,
        config.http2,
    )?;
    let tls = match prepared.iter().any(|p| p.tls_name.is_some()) {
        true => {
            let mut options = config.tls.clone();
            if config.http2.alpn {
                // h2 first, as Go's transport offers it; the server picks.
                options.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            }
            Some(throng_tls::config::client_config(&options).map_err(|e| format!("TLS: {e}"))?)
        }
        false => None,
    };
    let limit =
        rlimit::raise_nofile().map_err(|e| format!("cannot read the open-files limit: {e}"))?;
    rlimit::check_fits(limit, config.max_inflight as u64, 1)
        .map_err(|e| format!("-max-inflight {}: {e}", config.max_inflight))?;
    // Grown once now, not in 10-20 ms stalls at 256, 512 ... connections (the lag they caused
    // showed in reports). Without it the attack still works.
    let _ = rlimit::reserve_descriptor_table(config.max_inflight as u64 + rlimit::RESERVED_FDS);

    let threads = config.threads.max(1);
    let now_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let start_unix_ns = config
        .part
        .map(|p| p.start_unix_ns)
        .or(config.start_at)
        .unwrap_or(now_unix_ns);
    let targets_info: Vec<throng_results::stream::TargetInfo> = config
        .targets
        .iter()
        .map(|t| throng_results::stream::TargetInfo {
            method: t.method.clone(),
            url: t.url.to_string(),
        })
        .collect();
    let duration_ns = config.duration.map_or(0, |d| d.as_nanos() as u64);
    let schedule = throng_results::parts::schedule_hash(config.rate, duration_ns, &targets_info);
    let start_late_ns = now_unix_ns.saturating_sub(start_unix_ns);
    if let Some(part) = config
        .part
        .filter(|_| start_late_ns > throng_results::parts::LATE_START_NS)
    {
        eprintln!(
            "throng attack: part {}/{} starts {:.3} s after the shared start (its results say so)",
            part.index,
            part.of,
            start_late_ns as f64 / 1e9
        );
    }
    let meta = Meta {
        name: config.name.clone(),
        start_unix_ns,
        rate: config.rate,
        duration_ns,
        timeout_ns: config.timeout.as_nanos() as u64,
        threads: threads as u32,
        max_inflight: config.max_inflight as u64,
        targets: targets_info,
        sources: config.sources.iter().map(ToString::to_string).collect(),
        generator: concat!("throng ", env!("CARGO_PKG_VERSION")).to_string(),
        run_id: throng_results::parts::run_id(&schedule, start_unix_ns),
        schedule,
        part_index: config.part.map_or(0, |p| p.index as u32),
        part_of: config.part.map_or(0, |p| p.of as u32),
        host: config
            .host_name
            .clone()
            .unwrap_or_else(throng_net::host_name),
        start_late_ns,
        http2: [(config.http2.alpn, "alpn"), (config.http2.h2c, "h2c")]
            .iter()
            .filter(|(asked, _)| *asked)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(","),
        mqtt: None,
    };
    let (batches, writer) = sink::start(
        output,
        meta,
        Arc::clone(&live),
        config.part.is_some(),
        config.summarize,
    )
    .map_err(|e| format!("results output: {e}"))?;

    let config = Arc::new(config);
    // A split attack's processes share one start, given in Unix time.
    let start = match start_unix_ns.checked_sub(now_unix_ns) {
        Some(ahead) => Instant::now() + Duration::from_nanos(ahead),
        None => {
            let behind = Duration::from_nanos(now_unix_ns - start_unix_ns);
            Instant::now()
                .checked_sub(behind)
                .unwrap_or_else(Instant::now)
        }
    };
    let run = Run {
        threads,
        config: Arc::clone(&config),
        targets: Arc::new(prepared),
        tls,
        live: Arc::clone(&live),
        batches: batches.clone(),
        start,
    };
    let per_thread: Vec<Run> = (0..threads).map(|_| run.clone()).collect();
    let handles = workers::spawn("attack", per_thread, run_thread)
        .map_err(|e| format!("cannot start attack threads: {e}"))?;
    for handle in handles {
        let _ = handle.join();
    }
    // Requests `0..n` are due before the stop, where `n / rate` reaches it.
    let stopped_at = Duration::from_nanos(live.stopped_at_ns.load(Ordering::Relaxed));
    let horizon = config.duration.map_or(stopped_at, |d| {
        d.min(stopped_at.max(Duration::from_nanos(1)))
    });
    let due = (horizon.as_secs_f64() * config.rate).ceil() as u64;
    // A part's share of those: the sequence numbers that are its own.
    let due = config
        .part
        .map_or(due, |p| (due + (p.of - 1 - p.index) as u64) / p.of as u64);
    let sent = live.sent.load(Ordering::Relaxed);
    let end = End {
        scheduled: due.max(sent),
        sent,
        delayed_by_cap: live.delayed_by_cap.load(Ordering::Relaxed),
        ended_by: if live.abandon.load(Ordering::Relaxed) {
            "interrupted twice: requests in flight were abandoned".into()
        } else if live.stop.load(Ordering::Relaxed)
            && config.duration.is_none_or(|d| start.elapsed() < d)
        {
            "interrupted".into()
        } else {
            "duration".into()
        },
    };
    let _ = batches.send(Batch::End(end.clone()));
    drop(batches);
    let summary = writer
        .join()
        .map_err(|_| "the results writer failed".to_string())?
        .map_err(|e| format!("writing results: {e}"))?;
    Ok(Ran { end, summary })
}

/// What every thread of a run shares.
#[derive(Clone)]
struct Run {
    threads: usize,
    config: Arc<Config>,
    targets: Arc<Vec<PreparedTarget>>,
    tls: Option<Arc<rustls::ClientConfig>>,
    live: Arc<Live>,
    batches: SyncSender<Batch>,
    start: Instant,
}

async fn run_thread(index: usize, run: Run) {
    let Run {
        threads,
        config,
        targets,
        tls,
        live,
        batches,
        start,
    } = run;
    let hosts = request::host_count(&targets);
    let sources = (!config.sources.is_empty()).then(|| {
        // Each thread starts at its own place in the pool, so that threads spread over it too.
        let mut pool = config.sources.clone();
        let turn = index % pool.len();
        pool.rotate_left(turn);
        RoundRobin::new(pool)
    });
    // Of the one schedule, this thread sends every (threads x processes)th request.
    let (part, parts) = config.part.map_or((0, 1), |p| (p.index, p.of));
    let schedule = Schedule::new(
        start,
        config.rate,
        (part + index * parts) as u64,
        (threads * parts) as u64,
        targets.len(),
        config.duration,
    );
    let ctx = Rc::new(ThreadCtx {
        config: Arc::clone(&config),
        targets: Arc::clone(&targets),
        tls,
        schedule,
        lanes: Lanes::new(config.max_inflight / threads),
        alarm: Alarm::new().ok(),
        scratch: RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice()),
        h2: h2::Hosts::new(hosts),
        live: Arc::clone(&live),
        idle: RefCell::new((0..hosts).map(|_| Vec::new()).collect()),
        sources: RefCell::new(sources),
        records: RefCell::new(Vec::new()),
    });
    let flusher = tokio::task::spawn_local(flush_records(Rc::clone(&ctx), batches.clone()));
    lanes::start(&ctx);
    // Lanes end when the schedule has and their requests are in (each bounded by -timeout),
    // unless told to abandon them.
    while ctx.lanes.running() > 0 && !live.abandon.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked_to_stop = live
        .stop_asked_at
        .get()
        .map(|at| Instant::from_std(*at).saturating_duration_since(start));
    let stopped_at = ctx
        .schedule
        .ended_at()
        .min(asked_to_stop.unwrap_or(Duration::MAX));
    live.stopped_at_ns
        .fetch_max(stopped_at.as_nanos() as u64, Ordering::Relaxed);
    flusher.abort();
    let records = std::mem::take(&mut *ctx.records.borrow_mut());
    if !records.is_empty() {
        let _ = batches.send(Batch::Records(records));
    }
    // Idle connections close when the context goes, HTTP/2 ones with their drivers.
    let idle: usize =
        ctx.idle.borrow().iter().map(Vec::len).sum::<usize>() + ctx.h2.open_connections();
    live.open_connections
        .fetch_sub(idle as i64, Ordering::Relaxed);
}

async fn flush_records(ctx: Rc<ThreadCtx>, batches: SyncSender<Batch>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tick.tick().await;
        // The next batch is likely as long as this one: made that long at once, it does not
        // grow by copying itself while requests are being timed.
        let mut pending = ctx.records.borrow_mut();
        let next = Vec::with_capacity(pending.len());
        let records = std::mem::replace(&mut *pending, next);
        drop(pending);
        if !records.is_empty() && batches.send(Batch::Records(records)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lane's future is what a held request costs the generator; keep an eye on it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_lane_stays_small() {
        let config = Arc::new(Config {
            targets: vec![],
            rate: 1.0,
            duration: None,
            timeout: Duration::from_secs(1),
            max_inflight: 1,
            idle_connections: 1,
            max_connections: None,
            http2: Default::default(),
            keepalive: true,
            threads: 1,
            sources: vec![],
            name: String::new(),
            progress: false,
            tls: Default::default(),
            part: None,
            precise: false,
            batch: Duration::ZERO,
            start_at: None,
            host_name: None,
            summarize: false,
        });
        let ctx = Rc::new(ThreadCtx {
            config,
            targets: Arc::new(vec![]),
            tls: None,
            schedule: Schedule::new(Instant::now(), 1.0, 0, 1, 1, None),
            lanes: Lanes::new(1),
            alarm: None,
            scratch: RefCell::new(Box::new([])),
            h2: h2::Hosts::new(0),
            live: Arc::new(Live::default()),
            idle: RefCell::new(vec![]),
            sources: RefCell::new(None),
            records: RefCell::new(vec![]),
        });
        let lane = lanes::lane(ctx);
        let size = std::mem::size_of_val(&lane);
        assert!(size <= 1024, "a lane's future grew to {size} bytes");
    }
}
