//! A run: worker threads (each its own current-thread runtime), the connection ramp split over
//! them, the phases (ramp, then publishing or holding for the duration, then a drain for
//! messages on their way), and the threads' figures merged at the end.
//!
//! Client `g` of all the run's clients (subscribers first, so they listen before anyone
//! publishes) starts its connection at `g / connect_rate` after the start (an exact ramp), or
//! at the g-th arrival of a Poisson process of that rate.
//! Publishing starts a second after the ramp's last connection is due, and lasts `duration`.
//!
//! A part of a run over processes or machines ([`crate::Part`]) opens every N-th client from
//! the shared start (`start_unix_ns`), at the times the whole ramp gives them (a Poisson ramp:
//! its own draw at 1/N of the rate, which together make one Poisson process of the whole
//! rate); its publishers keep the whole run's schedule, so the parts make the one run.

use crate::alarms::Alarms;
use crate::client::{self, Publisher};
use crate::config::{Arrivals, Config, Role};
use crate::seconds::{Collector, Handed, ThreadSeconds};
use crate::stamp::Stamp;
use std::cell::{RefCell, RefMut};
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use throng_net::source::RoundRobin;
use throng_results::mqtt::stats::{record, Stats};
use throng_results::stream::TargetInfo;
use throng_results::Meta;

/// Bytes read from a socket at once, into the thread's scratch buffer.
const READ_CHUNK: usize = 64 * 1024;
/// Between the ramp's last connection and the first message.
const SETTLE: Duration = Duration::from_secs(1);
/// How often a thread hands over the seconds that are over.
const HAND_OVER: Duration = Duration::from_millis(250);
/// Time to prepare (TLS set up, threads started) before a run that starts at once.
const START_MARGIN: Duration = Duration::from_millis(50);

/// [`Live::publish_delay_ns`] until publishing begins.
const NOT_BEGUN: u64 = u64::MAX;

/// Figures the live line reads, and the run's phase, shared by every thread.
#[derive(Debug)]
pub struct Live {
    pub connected: AtomicI64,
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub errors: AtomicU64,
    /// How long publishing lasted, in nanoseconds from its start, plus one, once it ended (0:
    /// it has not; a run stopped before publishing began lasted 0 ns and stores 1).
    published_for_ns: AtomicU64,
    /// Subscribers of this process that have had their first SUBACK.
    pub(crate) subscribed: AtomicUsize,
    /// How much later than planned publishing began (it waits for this process's subscribers,
    /// so that a message is not sent before anyone could receive it); [`NOT_BEGUN`] before.
    /// One atomic, so that a thread that sees publishing begun sees its start too.
    publish_delay_ns: AtomicU64,
    publishing_ended: AtomicBool,
    stopped: AtomicBool,
    /// Ctrl-C presses: the first ends publishing (or holding), the second stops at once.
    interrupts: AtomicUsize,
    changed: tokio::sync::Notify,
    /// Counts the changes of phase, so that a connection waiting without a `Notify` waiter of
    /// its own (see `alarms`) tells that one came.
    generation: AtomicU64,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            connected: AtomicI64::new(0),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            published_for_ns: AtomicU64::new(0),
            subscribed: AtomicUsize::new(0),
            publish_delay_ns: AtomicU64::new(NOT_BEGUN),
            publishing_ended: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            interrupts: AtomicUsize::new(0),
            changed: tokio::sync::Notify::new(),
            generation: AtomicU64::new(0),
        }
    }
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
        self.publishing_begun() && !self.publishing_ended.load(Ordering::Relaxed)
    }

    fn publishing_begun(&self) -> bool {
        self.publish_delay_ns.load(Ordering::Acquire) != NOT_BEGUN
    }

    fn begin_publishing(&self, delay: Duration) {
        let ns = u64::try_from(delay.as_nanos()).unwrap_or(NOT_BEGUN - 1);
        self.publish_delay_ns
            .store(ns.min(NOT_BEGUN - 1), Ordering::Release);
        self.announce();
    }

    /// A change of phase: counted, then every waiter woken (each thread's alarms wake their
    /// connections, which compare the count).
    fn announce(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// How many changes of phase there were; read before the flags, so that a change in
    /// between shows as a different count.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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

    /// How long publishing lasted, once it ended.
    fn publishing_for(&self) -> Option<Duration> {
        match self.published_for_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns - 1)),
        }
    }

    fn end_publishing(&self) {
        self.publishing_ended.store(true, Ordering::Relaxed);
        self.announce();
    }

    fn stop(&self) {
        self.publishing_ended.store(true, Ordering::Relaxed);
        self.stopped.store(true, Ordering::Relaxed);
        self.announce();
    }
}

/// What one thread's clients share.
pub(crate) struct ThreadCtx {
    pub config: Arc<Config>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    seconds: RefCell<ThreadSeconds>,
    /// What is counted over the whole run, not by the second: messages sent per publisher,
    /// and which of them each subscriber received (a duplicate may come seconds apart).
    whole_run: RefCell<Stats>,
    pub live: Arc<Live>,
    pub scratch: RefCell<Box<[u8]>>,
    sources: RefCell<Option<RoundRobin>>,
    start: Instant,
    start_unix_ns: u64,
    /// When publishing was planned to begin; [`ThreadCtx::publish_start`] is when it did.
    planned_publish_start: Instant,
    pub run_tag: u32,
    /// The thread's one timer for its connections' pings and messages.
    pub alarms: crate::alarms::Alarms,
    /// Its clients still running.
    pub clients: Clients,
}

impl ThreadCtx {
    /// The figures of this second, to add to.
    pub fn stats(&self) -> RefMut<'_, Stats> {
        let second = self.unix_ns(Instant::now()) / 1_000_000_000;
        RefMut::map(self.seconds.borrow_mut(), |seconds| seconds.at(second))
    }

    /// The figures counted over the whole run, to add to.
    pub fn whole_run(&self) -> RefMut<'_, Stats> {
        self.whole_run.borrow_mut()
    }

    /// Hands the seconds before `unix_second` to the run.
    fn hand_over(&self, unix_second: u64, to: &Sender<Handed>) {
        for second in self.seconds.borrow_mut().take_before(unix_second) {
            let _ = to.send(Handed::Second(Box::new(second)));
        }
    }

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

    /// When publishing began: as planned, or once this process's subscribers were subscribed.
    pub fn publish_start(&self) -> Instant {
        match self.live.publish_delay_ns.load(Ordering::Acquire) {
            NOT_BEGUN => self.planned_publish_start,
            delay => self.planned_publish_start + Duration::from_nanos(delay),
        }
    }

    /// Whether a message due at `due` is past the publishing phase.
    pub fn publishing_over(&self, due: Instant) -> bool {
        self.config
            .duration
            .is_some_and(|d| due >= self.publish_start() + d)
    }

    /// A message arrived at a subscriber: end-to-end latency from its stamp, and which of its
    /// publisher's messages it was. Other runs' messages on a shared broker count apart, unless
    /// this run only subscribes (its publishers are another process).
    pub fn received(&self, subscriber: Option<u32>, stamp: Option<Stamp>) {
        let now = self.unix_ns(Instant::now());
        self.live.received.fetch_add(1, Ordering::Relaxed);
        let mut stats = self.stats();
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
        drop(stats);
        let key = (subscriber.unwrap_or(u32::MAX), stamp.publisher);
        self.whole_run()
            .tracks
            .entry(key)
            .or_default()
            .add(stamp.seq);
    }
}

/// What a run measured, and the first failure to write its results (measuring went on).
pub struct Finished {
    pub stats: Stats,
    pub write_error: Option<String>,
}

/// Runs `config` to its end and returns what it measured; writes its results stream to
/// `output` as it goes. `progress`: a line a second on stderr.
pub fn run(
    config: Config,
    live: Arc<Live>,
    progress: bool,
    output: Option<Box<dyn Write + Send>>,
) -> Result<Finished, String> {
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
    // The run's clients this process opens, by their index in the whole run.
    let own: Vec<usize> = match config.part {
        Some(part) => (part.index..total).step_by(part.of.max(1)).collect(),
        None => (0..total).collect(),
    };
    let threads = config.threads.clamp(1, own.len().max(1));
    let limit = throng_net::rlimit::raise_nofile().map_err(|e| e.to_string())?;
    let fits = throng_net::rlimit::connections_that_fit(limit, 1) as usize;
    if own.len() > fits {
        return Err(format!(
            "{} connections do not fit this process's open-files limit ({}): \
             use fewer, or run several processes (--procs)",
            own.len(),
            limit.soft
        ));
    }
    let now_unix_ns = unix_now_ns();
    let start_unix_ns = config
        .start_unix_ns
        .unwrap_or(now_unix_ns + START_MARGIN.as_nanos() as u64);
    let start = instant_of(start_unix_ns, now_unix_ns);
    let start_late_ns = now_unix_ns.saturating_sub(start_unix_ns);
    // When each of this process's connections opens, drawn once (every thread takes its share).
    let (arrivals, ramp) = ramp(&config, total, &own);
    let publish_start = start + ramp + SETTLE;
    let meta = meta(&config, start_unix_ns, start_late_ns);
    // The stamp's run: the same in every part of one run (their subscribers count each
    // other's publishers' messages), different for another run on the same broker.
    let run_tag = throng_net::hash::fnv1a(meta.run_id.as_bytes()) as u32;
    let mut collector = Collector::new(output, &meta)?;
    let (hand_over, handed) = mpsc::channel::<Handed>();
    let own: Arc<[usize]> = own.into();
    let handles = throng_net::workers::spawn("mqtt", (0..threads).collect(), {
        let config = Arc::clone(&config);
        let live = Arc::clone(&live);
        let own = Arc::clone(&own);
        move |_, thread: usize| {
            let ctx = Rc::new(ThreadCtx {
                config: Arc::clone(&config),
                tls: tls.clone(),
                seconds: RefCell::new(ThreadSeconds::default()),
                whole_run: RefCell::new(Stats::default()),
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
                planned_publish_start: publish_start,
                run_tag,
                alarms: Alarms::with_capacity(own.len().div_ceil(threads)),
                clients: Clients::default(),
            });
            let hand_over = hand_over.clone();
            let (own, arrivals) = (Arc::clone(&own), Arc::clone(&arrivals));
            async move {
                let clients = ramp_clients(&ctx, thread, threads, subscribers, &own, &arrivals);
                let hand_over_each_second = async {
                    loop {
                        tokio::time::sleep(HAND_OVER).await;
                        let second = ctx.unix_ns(Instant::now()) / 1_000_000_000;
                        ctx.hand_over(second, &hand_over);
                    }
                };
                tokio::select! {
                    _ = clients => {}
                    _ = hand_over_each_second => {}
                    _ = ctx.alarms.ring(&ctx.live) => {}
                }
                ctx.hand_over(u64::MAX, &hand_over);
                let whole_run = std::mem::take(&mut *ctx.whole_run());
                let _ = hand_over.send(Handed::WholeRun(Box::new(whole_run)));
            }
        }
    })
    .map_err(|e| e.to_string())?;
    // A part waits for no one: its schedule is the run's, shared with the other parts.
    let wait_for_subscribers = match config.part {
        Some(_) => 0,
        None => subscribers,
    };
    coordinate(
        &config,
        &live,
        (publish_start, wait_for_subscribers),
        start + ramp + SETTLE,
        progress,
        &handed,
        &mut collector,
    );
    // Each thread hands over its last seconds before it ends.
    for handle in handles {
        let _ = handle.join();
    }
    for handed in handed.try_iter() {
        collector.add(handed);
    }
    let due = published_due(&config, subscribers, &own, live.publishing_for());
    let ended_by = if live.interrupts.load(Ordering::Relaxed) > 0 {
        "interrupted"
    } else {
        "duration"
    };
    let subscribers_here = own
        .iter()
        .filter(|&&g| g < subscribers)
        .map(|&g| g as u32)
        .collect();
    let (stats, write_error) = collector.finish(due, subscribers_here, ended_by);
    Ok(Finished { stats, write_error })
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The instant of a Unix time, given the Unix time now.
fn instant_of(unix_ns: u64, now_unix_ns: u64) -> Instant {
    match unix_ns.checked_sub(now_unix_ns) {
        Some(ahead) => Instant::now() + Duration::from_nanos(ahead),
        None => Instant::now()
            .checked_sub(Duration::from_nanos(now_unix_ns - unix_ns))
            .unwrap_or_else(Instant::now),
    }
}

/// When each of `own` connections opens (seconds from the start), and the ramp's length.
fn ramp(config: &Config, total: usize, own: &[usize]) -> (Arc<[f64]>, Duration) {
    let whole = Duration::from_secs_f64(total as f64 / config.connect_rate);
    match (config.arrivals, config.part) {
        (Arrivals::Constant, _) => {
            let times = own.iter().map(|&g| g as f64 / config.connect_rate);
            (times.collect(), whole)
        }
        // One process: the ramp ends with its last arrival, wherever the draw put it.
        (Arrivals::Poisson, None) => {
            let times = Arrivals::Poisson.times(own.len(), config.connect_rate);
            let last = times.last().copied().unwrap_or(0.0);
            (times.into(), Duration::from_secs_f64(last))
        }
        // Parts draw apart: publishing starts when the whole ramp's mean says, the same for all.
        (Arrivals::Poisson, Some(part)) => {
            let rate = config.connect_rate / part.of.max(1) as f64;
            (Arrivals::Poisson.times(own.len(), rate).into(), whole)
        }
    }
}

/// The results stream's meta frame: the run's shape, and its place among parts.
fn meta(config: &Config, start_unix_ns: u64, start_late_ns: u64) -> Meta {
    let plan = config.plan();
    let duration_ns = config.duration.map_or(0, |d| d.as_nanos() as u64);
    let scheme = if plan.tls { "mqtts" } else { "mqtt" };
    let schedule = throng_results::parts::schedule_hash(
        plan.publish_rate,
        duration_ns,
        &[TargetInfo {
            method: "MQTT".into(),
            url: plan.schedule_text(),
        }],
    );
    if let Some(part) = config
        .part
        .filter(|_| start_late_ns > throng_results::parts::LATE_START_NS)
    {
        eprintln!(
            "throng mqtt: part {}/{} starts {:.3} s after the shared start (its results say so)",
            part.index,
            part.of,
            start_late_ns as f64 / 1e9
        );
    }
    Meta {
        name: config.name.clone(),
        start_unix_ns,
        rate: plan.publish_rate,
        duration_ns,
        timeout_ns: config.connect_timeout.as_nanos() as u64,
        threads: config.threads as u32,
        max_inflight: u64::from(config.inflight),
        targets: vec![TargetInfo {
            method: plan.role.name().to_uppercase(),
            url: format!("{scheme}://{}/{}", plan.broker, plan.topic),
        }],
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
        http2: String::new(),
        mqtt: Some(plan),
    }
}

/// Messages this process's publishers had due in `publishing` (from the first one's due time):
/// publisher `i` of `n` sends the run's messages `i, i + n, i + 2n ...`, message `g` due at
/// `g / rate`.
fn published_due(
    config: &Config,
    subscribers: usize,
    own: &[usize],
    publishing: Option<Duration>,
) -> u64 {
    let Some(publishing) = publishing.filter(|_| config.role == Role::Pub) else {
        return 0;
    };
    let slots = publishing.as_secs_f64() * config.publish_rate;
    let of = config.clients.max(1) as f64;
    own.iter()
        .filter_map(|&g| g.checked_sub(subscribers))
        .map(|i| ((slots - i as f64) / of).ceil().max(0.0) as u64)
        .sum()
}

/// Starts this thread's share of the ramp, then waits for its clients to end.
async fn ramp_clients(
    ctx: &Rc<ThreadCtx>,
    thread: usize,
    threads: usize,
    subscribers: usize,
    own: &[usize],
    arrivals: &[f64],
) {
    let config = &ctx.config;
    let publishers = (config.role == Role::Pub).then_some(config.clients as u32);
    for local in (thread..own.len()).step_by(threads) {
        let (Some(&global), Some(&offset)) = (own.get(local), arrivals.get(local)) else {
            break;
        };
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
                flights: Default::default(),
            })
        });
        ctx.clients.started();
        // Not kept: a join handle per connection would be 8 bytes more of each.
        drop(tokio::task::spawn_local(client::client(
            Rc::clone(ctx),
            role,
            index,
            publisher,
        )));
    }
    ctx.clients.all_ended().await;
}

/// How many of a thread's clients have not ended, and the ramp waiting for none to be left.
#[derive(Default)]
pub(crate) struct Clients {
    left: std::cell::Cell<usize>,
    waiting: RefCell<Option<std::task::Waker>>,
}

impl Clients {
    fn started(&self) {
        self.left.set(self.left.get() + 1);
    }

    /// A client's task ended (or was dropped with the thread).
    pub(crate) fn ended(&self) {
        self.left.set(self.left.get().saturating_sub(1));
        if self.left.get() == 0 {
            if let Some(waiting) = self.waiting.borrow_mut().take() {
                waiting.wake();
            }
        }
    }

    async fn all_ended(&self) {
        std::future::poll_fn(|cx| {
            if self.left.get() == 0 {
                return std::task::Poll::Ready(());
            }
            *self.waiting.borrow_mut() = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }
}

/// The run's phases, on the calling thread: publishing (or holding) until the duration or a
/// Ctrl-C, then the drain, then the stop.
fn coordinate(
    config: &Config,
    live: &Live,
    (planned_publish_start, subscribers): (Instant, usize),
    hold_start: Instant,
    progress: bool,
    handed: &Receiver<Handed>,
    collector: &mut Collector,
) {
    let mut publish_start = planned_publish_start;
    let mut phase_end = match config.role {
        // Set when publishing begins.
        Role::Pub => None,
        _ => config.duration.map(|d| hold_start + d),
    };
    let mut drain_end: Option<Instant> = None;
    let mut next_line = Instant::now() + Duration::from_secs(1);
    let mut last_published = 0;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        for handed in handed.try_iter() {
            collector.add(handed);
        }
        // Threads hand over a second within HAND_OVER of its end: one that ended over a second
        // ago is whole.
        collector.write_before((unix_now_ns() / 1_000_000_000).saturating_sub(1));
        let now = Instant::now();
        let interrupts = live.interrupts.load(Ordering::Relaxed);
        // Publishing begins as planned once this process's subscribers are subscribed (they
        // usually are before the plan: then each message leaves at its time); later, by as
        // much as they were late, when they are not (a loaded machine), at most a connect
        // timeout later.
        if config.role == Role::Pub && !live.publishing_begun() {
            let ready = live.subscribed.load(Ordering::Relaxed) >= subscribers;
            let waited_enough = now >= planned_publish_start + config.connect_timeout;
            if ready || waited_enough {
                let delay = now.saturating_duration_since(planned_publish_start);
                live.begin_publishing(delay);
                publish_start = planned_publish_start + delay;
                phase_end = config.duration.map(|d| publish_start + d);
            }
        }
        if interrupts >= 2 || drain_end.is_some_and(|end| now >= end) {
            // Stopped at once (a second Ctrl-C) while publishing: how long it lasted still counts.
            if config.role == Role::Pub && drain_end.is_none() {
                record_publishing(live, publish_start, phase_end.map_or(now, |e| e.min(now)));
            }
            live.stop();
            return;
        }
        let phase_over = phase_end.is_some_and(|end| now >= end) || interrupts == 1;
        if phase_over && drain_end.is_none() {
            if config.role == Role::Pub {
                record_publishing(live, publish_start, phase_end.map_or(now, |e| e.min(now)));
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

/// How long publishing lasted, from `start` to `ended` (nothing when it never began).
fn record_publishing(live: &Live, start: Instant, ended: Instant) {
    let elapsed = match live.publishing_begun() {
        true => ended.saturating_duration_since(start),
        false => Duration::ZERO,
    };
    let ns = u64::try_from(elapsed.as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1);
    live.published_for_ns.store(ns, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_mqtt::{QoS, Version};

    pub(crate) fn config() -> Config {
        Config {
            role: Role::Conn,
            broker: "127.0.0.1:1".parse().unwrap(),
            broker_name: "127.0.0.1:1".into(),
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
            name: String::new(),
            part: None,
            start_unix_ns: None,
            host_name: None,
        }
    }

    /// A held connection costs its task's future: kept small so that an idle connection costs
    /// little (the opening's larger state is boxed and freed once open). With tokio's task
    /// header and trailer (104 bytes, 128-aligned), a future of at most 408 bytes makes a task
    /// of jemalloc's 512-byte size class; one more byte, the 640-byte class.
    #[test]
    fn a_clients_future_stays_small() {
        let ctx = Rc::new(ThreadCtx {
            config: Arc::new(config()),
            tls: None,
            seconds: RefCell::new(ThreadSeconds::default()),
            whole_run: RefCell::new(Stats::default()),
            live: Arc::new(Live::default()),
            scratch: RefCell::new(Box::new([])),
            sources: RefCell::new(None),
            start: Instant::now(),
            start_unix_ns: 0,
            planned_publish_start: Instant::now(),
            run_tag: 0,
            alarms: Alarms::with_capacity(0),
            clients: Clients::default(),
        });
        let future = client::client(ctx, Role::Conn, 0, None);
        let size = std::mem::size_of_val(&future);

        assert!(size <= 408, "a client's future grew to {size} bytes");
    }
}
