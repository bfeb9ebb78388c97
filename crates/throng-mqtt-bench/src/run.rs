//! A run: worker threads (each its own current-thread runtime), the connection ramp split over
//! them, the phases (ramp, then publishing or holding for the duration, then a drain for
//! messages on their way), and the threads' figures merged at the end.
//!
//! Client `g` of all the run's clients (subscribers first, so they listen before anyone
//! publishes) starts its connection at `g / connect_rate` after the start (an exact ramp), or
//! at the g-th arrival of a Poisson process of that rate.
//! Publishing starts a second after the ramp's last connection is due, and lasts `duration`.

use crate::client::{self, Publisher};
use crate::config::{Arrivals, Config, Role};
use crate::stamp::Stamp;
use crate::stats::{record, Stats};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use throng_net::source::RoundRobin;

/// Bytes read from a socket at once, into the thread's scratch buffer.
const READ_CHUNK: usize = 64 * 1024;
/// Between the ramp's last connection and the first message.
const SETTLE: Duration = Duration::from_secs(1);

/// Figures the live line reads, and the run's phase, shared by every thread.
#[derive(Debug, Default)]
pub struct Live {
    pub connected: AtomicI64,
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub errors: AtomicU64,
    /// Messages the schedule made due before publishing ended.
    due: AtomicU64,
    publishing_ended: AtomicBool,
    stopped: AtomicBool,
    /// Ctrl-C presses: the first ends publishing (or holding), the second stops at once.
    interrupts: AtomicUsize,
    changed: tokio::sync::Notify,
}

impl Live {
    /// Ctrl-C or SIGTERM.
    pub fn interrupt(&self) {
        self.interrupts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    pub(crate) fn is_publishing(&self) -> bool {
        !self.publishing_ended.load(Ordering::Relaxed)
    }

    /// Resolves at the next change of phase; made before the flags are read, so a change in
    /// between still wakes it.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    pub(crate) async fn stopped(&self) {
        loop {
            let changed = self.changed();
            if self.is_stopped() {
                return;
            }
            changed.await;
        }
    }

    fn end_publishing(&self) {
        self.publishing_ended.store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    fn stop(&self) {
        self.publishing_ended.store(true, Ordering::Relaxed);
        self.stopped.store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
}

/// What one thread's clients share.
pub(crate) struct ThreadCtx {
    pub config: Arc<Config>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub stats: RefCell<Stats>,
    pub live: Arc<Live>,
    pub scratch: RefCell<Box<[u8]>>,
    sources: RefCell<Option<RoundRobin>>,
    start: Instant,
    start_unix_ns: u64,
    pub publish_start: Instant,
    pub run_tag: u32,
}

impl ThreadCtx {
    pub fn next_source(&self) -> Option<std::net::IpAddr> {
        self.sources
            .borrow_mut()
            .as_mut()
            .and_then(Iterator::next)
            .map(|(_, ip)| ip)
    }

    pub fn unix_ns(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.start).as_nanos();
        self.start_unix_ns
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// Whether a message due at `due` is past the publishing phase.
    pub fn publishing_over(&self, due: Instant) -> bool {
        self.config
            .duration
            .is_some_and(|d| due >= self.publish_start + d)
    }

    /// A message arrived at a subscriber: end-to-end latency from its stamp, and which of its
    /// publisher's messages it was. Other runs' messages on a shared broker count apart, unless
    /// this run only subscribes (its publishers are another process).
    pub fn received(&self, subscriber: Option<u32>, stamp: Option<Stamp>) {
        let now = self.unix_ns(Instant::now());
        self.live.received.fetch_add(1, Ordering::Relaxed);
        let mut stats = self.stats.borrow_mut();
        stats.received += 1;
        let ours = stamp.filter(|s| s.run == self.run_tag || self.config.role == Role::Sub);
        let Some(stamp) = ours else {
            stats.received_foreign += 1;
            return;
        };
        record(
            &mut stats.e2e,
            Duration::from_nanos(now.saturating_sub(stamp.intended_unix_ns)),
        );
        record(
            &mut stats.e2e_from_send,
            Duration::from_nanos(now.saturating_sub(stamp.sent_unix_ns)),
        );
        let key = (subscriber.unwrap_or(u32::MAX), stamp.publisher);
        stats.tracks.entry(key).or_default().add(stamp.seq);
    }
}

/// Runs `config` to its end and returns what it measured. `progress`: a line a second on stderr.
pub fn run(config: Config, live: Arc<Live>, progress: bool) -> Result<Stats, String> {
    let config = Arc::new(config);
    let tls = match &config.tls {
        Some(options) => Some(throng_tls::config::client_config(options)?),
        None => None,
    };
    let subscribers = match config.role {
        Role::Pub => config.subscribers,
        _ => 0,
    };
    let total = subscribers + config.clients;
    let threads = config.threads.clamp(1, total.max(1));
    let limit = throng_net::rlimit::raise_nofile().map_err(|e| e.to_string())?;
    let fits = throng_net::rlimit::connections_that_fit(limit, 1) as usize;
    if total > fits {
        return Err(format!(
            "{total} connections do not fit this process's open-files limit ({}): \
             use fewer, or run several processes",
            limit.soft
        ));
    }
    let start = Instant::now() + Duration::from_millis(50);
    let start_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        + 50_000_000;
    // When each connection opens, drawn once for the whole run (every thread takes its share).
    let arrivals: Arc<[f64]> = config.arrivals.times(total, config.connect_rate).into();
    let ramp = match config.arrivals {
        Arrivals::Constant => Duration::from_secs_f64(total as f64 / config.connect_rate),
        // The last arrival, whenever the draw put it.
        Arrivals::Poisson => Duration::from_secs_f64(arrivals.last().copied().unwrap_or(0.0)),
    };
    let publish_start = start + ramp + SETTLE;
    let run_tag = (start_unix_ns as u32) ^ std::process::id();
    let (send, receive) = std::sync::mpsc::channel::<Stats>();
    let handles = throng_net::workers::spawn("mqtt", (0..threads).collect(), {
        let config = Arc::clone(&config);
        let live = Arc::clone(&live);
        move |_, thread: usize| {
            let ctx = Rc::new(ThreadCtx {
                config: Arc::clone(&config),
                tls: tls.clone(),
                stats: RefCell::new(Stats::default()),
                live: Arc::clone(&live),
                scratch: RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice()),
                sources: RefCell::new((!config.sources.is_empty()).then(|| {
                    let mut pool = config.sources.clone();
                    let turn = thread % pool.len();
                    pool.rotate_left(turn);
                    RoundRobin::new(pool)
                })),
                start,
                start_unix_ns,
                publish_start,
                run_tag,
            });
            let send = send.clone();
            let arrivals = Arc::clone(&arrivals);
            async move {
                ramp_clients(&ctx, thread, threads, subscribers, &arrivals).await;
                let stats = std::mem::take(&mut *ctx.stats.borrow_mut());
                let _ = send.send(stats);
            }
        }
    })
    .map_err(|e| e.to_string())?;
    coordinate(
        &config,
        &live,
        publish_start,
        start + ramp + SETTLE,
        progress,
    );
    let mut stats = Stats::default();
    for thread_stats in receive.iter() {
        stats.merge(&thread_stats);
    }
    for handle in handles {
        let _ = handle.join();
    }
    stats.published_due = live.due.load(Ordering::Relaxed);
    Ok(stats)
}

/// Starts this thread's share of the ramp, then waits for its clients to end.
async fn ramp_clients(
    ctx: &Rc<ThreadCtx>,
    thread: usize,
    threads: usize,
    subscribers: usize,
    arrivals: &[f64],
) {
    let total = arrivals.len();
    let config = &ctx.config;
    let publishers = (config.role == Role::Pub).then_some(config.clients as u32);
    let mut tasks = Vec::new();
    for global in (thread..total).step_by(threads) {
        let offset = arrivals.get(global).copied().unwrap_or(0.0);
        let at = ctx.start + Duration::from_secs_f64(offset);
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = ctx.live.stopped() => break,
        }
        let (role, index) = if global < subscribers {
            (Role::Sub, global)
        } else {
            (config.role, global - subscribers)
        };
        let publisher = publishers.filter(|_| role == Role::Pub).map(|of| {
            Box::new(Publisher {
                index: index as u32,
                of,
                next: 0,
                topic: Config::topic_of(&config.topic, index),
                payload: Vec::new(),
            })
        });
        tasks.push(tokio::task::spawn_local(client::client(
            Rc::clone(ctx),
            role,
            index,
            publisher,
        )));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// The run's phases, on the calling thread: publishing (or holding) until the duration or a
/// Ctrl-C, then the drain, then the stop.
fn coordinate(
    config: &Config,
    live: &Live,
    publish_start: Instant,
    hold_start: Instant,
    progress: bool,
) {
    let phase_start = if config.role == Role::Pub {
        publish_start
    } else {
        hold_start
    };
    let phase_end = config.duration.map(|d| phase_start + d);
    let mut drain_end: Option<Instant> = None;
    let mut next_line = Instant::now() + Duration::from_secs(1);
    let mut last_published = 0;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let interrupts = live.interrupts.load(Ordering::Relaxed);
        if interrupts >= 2 || drain_end.is_some_and(|end| now >= end) {
            live.stop();
            return;
        }
        let phase_over = phase_end.is_some_and(|end| now >= end) || interrupts == 1;
        if phase_over && drain_end.is_none() {
            if config.role == Role::Pub {
                let ended = phase_end.map_or(now, |end| end.min(now));
                let elapsed = ended.saturating_duration_since(publish_start);
                let due = (elapsed.as_secs_f64() * config.publish_rate).ceil() as u64;
                live.due.store(due, Ordering::Relaxed);
                live.end_publishing();
                drain_end = Some(now + config.drain);
            } else {
                live.stop();
                return;
            }
        }
        if progress && now >= next_line {
            next_line += Duration::from_secs(1);
            let published = live.published.load(Ordering::Relaxed);
            eprintln!(
                "throng mqtt: connected {}, published {} ({}/s), received {}, errors {}",
                live.connected.load(Ordering::Relaxed),
                published,
                published - last_published,
                live.received.load(Ordering::Relaxed),
                live.errors.load(Ordering::Relaxed),
            );
            last_published = published;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_mqtt::{QoS, Version};

    pub(crate) fn config() -> Config {
        Config {
            role: Role::Conn,
            broker: "127.0.0.1:1".parse().unwrap(),
            server_name: String::new(),
            tls: None,
            version: Version::V5,
            clients: 1,
            connect_rate: 1.0,
            arrivals: Arrivals::Constant,
            keep_alive: 1,
            qos: QoS::AtMostOnce,
            topic: String::new(),
            subscribers: 0,
            sub_topic: String::new(),
            publish_rate: 1.0,
            payload_size: 1,
            inflight: 1,
            prefix: String::new(),
            username: None,
            password: None,
            clean_start: true,
            sources: vec![],
            duration: None,
            drain: Duration::ZERO,
            connect_timeout: Duration::ZERO,
            max_packet: 1,
            threads: 1,
            reconnect: None,
        }
    }

    /// A held connection costs its task's future: kept small so that an idle connection costs
    /// little (the opening's larger state is boxed and freed once open).
    #[test]
    fn a_clients_future_stays_small() {
        let ctx = Rc::new(ThreadCtx {
            config: Arc::new(config()),
            tls: None,
            stats: RefCell::new(Stats::default()),
            live: Arc::new(Live::default()),
            scratch: RefCell::new(Box::new([])),
            sources: RefCell::new(None),
            start: Instant::now(),
            start_unix_ns: 0,
            publish_start: Instant::now(),
            run_tag: 0,
        });
        let future = client::client(ctx, Role::Conn, 0, None);
        let size = std::mem::size_of_val(&future);

        assert!(size <= 900, "a client's future grew to {size} bytes");
    }
}
