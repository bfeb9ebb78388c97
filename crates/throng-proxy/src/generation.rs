//! Generations: how one process changes its configuration without dropping a connection.
//!
//! A generation is a configuration with its own worker threads and counters ([`Proxy`]). The
//! process starts with generation 1. SIGHUP reads the file again: a file that does not check
//! changes nothing (the error names file, line and key); a good one starts the next generation
//! on the same listening sockets ([`Listeners`]), and only then the old one stops accepting. The
//! old generation closes its idle keep-alive connections, serves requests in progress and keeps
//! its tunnels until they end, or until `hard_stop_after`; then it closes the rest at
//! `close_rate` (the newest file's limits hold for all). At most `max_generations` live together: a reload beyond it puts the oldest
//! into closing at once. SIGUSR2 hands the sockets to a new binary ([`crate::upgrade`]) and
//! retires every generation of this process the same way; the process exits when the last one
//! ends. SIGTERM/SIGINT drain every generation for `global.grace`, then stop.
//!
//! Memory is the process's: `global.memory_budget` and `global.maxconn` count every generation.

use crate::config::Config;
use crate::listeners::Listeners;
use crate::log::Sink;
use crate::state::{Phase, Process, Proxy};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use throng_net::duration::format as human;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{error, info, warn};

/// Reads the configuration again, as the process first read it.
pub type Reread = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Who the process is: alone (it upgrades itself on SIGUSR2) or a master's worker (the master
/// does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Alone,
    Worker,
}

/// The generations alive, for the admin pages: the last one serves.
#[derive(Default)]
pub struct Registry {
    generations: Mutex<Vec<Arc<Proxy>>>,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
}

impl Registry {
    pub fn all(&self) -> Vec<Arc<Proxy>> {
        self.generations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The serving generation (the newest).
    pub fn current(&self) -> Option<Arc<Proxy>> {
        self.all().last().cloned()
    }

    fn set(&self, generations: Vec<Arc<Proxy>>) {
        *self.generations.lock().unwrap_or_else(|e| e.into_inner()) = generations;
    }
}

/// A generation and its threads, as the process runs it.
struct Running {
    proxy: Arc<Proxy>,
    threads: Vec<JoinHandle<()>>,
    /// When it stopped serving.
    retired: Option<Instant>,
}

impl Running {
    fn ended(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }
}

/// What the signals ask for.
enum Asked {
    Stop(&'static str),
    Reload,
    Upgrade,
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr2: Signal,
}

impl Signals {
    fn watch() -> Result<Signals, String> {
        let watch = |kind| signal(kind).map_err(|e| format!("cannot watch for signals: {e}"));
        Ok(Signals {
            term: watch(SignalKind::terminate())?,
            int: watch(SignalKind::interrupt())?,
            hup: watch(SignalKind::hangup())?,
            usr2: watch(SignalKind::user_defined2())?,
        })
    }

    async fn next(&mut self) -> Asked {
        tokio::select! {
            _ = self.term.recv() => Asked::Stop("SIGTERM"),
            _ = self.int.recv() => Asked::Stop("SIGINT"),
            _ = self.hup.recv() => Asked::Reload,
            _ = self.usr2.recv() => Asked::Upgrade,
        }
    }
}

/// The process: its generations, from the first configuration until it stops or has handed
/// over to a new binary and its last generation has ended.
pub async fn run(first: Config, reread: Reread, role: Role) -> Result<(), String> {
    // Watched before anything is bound: from here on SIGHUP reloads rather than kills.
    let mut signals = Signals::watch()?;
    crate::upgrade::remember_exe();
    let process = Arc::new(Process::new(
        crate::server::process_maxconn(&first)?,
        first.global.reload.close_rate,
    ));
    let mut listeners = Listeners::inherited()?;
    let admin_listener = crate::server::bind_admin(&first)?;
    let registry = Arc::new(Registry::default());
    let Started {
        proxy,
        threads,
        bound,
    } = start(first, 1, &mut listeners, &process)?;
    let line = crate::server::ready_line(&proxy, &bound, admin_listener.as_ref());
    let pidfile = proxy.config.global.pidfile.clone();
    let grace = proxy.config.global.grace;
    let mut running = vec![Running {
        proxy: Arc::clone(&proxy),
        threads,
        retired: None,
    }];
    registry.set(vec![Arc::clone(&proxy)]);
    let for_admin = Arc::clone(&registry);
    throng_net::admin::spawn(
        admin_listener,
        Arc::new(move |path: &str| match for_admin.current() {
            Some(proxy) => crate::server::route(path, &proxy, &for_admin),
            None => throng_net::admin::Page::text(503, "stopping\n"),
        }),
    );
    let for_budget = Arc::clone(&registry);
    tokio::spawn(crate::server::watch_memory(
        Arc::clone(&process),
        move || {
            for_budget
                .current()
                .and_then(|p| p.config.global.memory_budget)
        },
    ));
    crate::upgrade::announce_ready(&line, pidfile.as_deref());

    // Set once the process is on its way out: by a stop signal (with the end of its grace)
    // or by a successful upgrade.
    let mut stopping: Option<Instant> = None;
    let mut handed_over = false;
    loop {
        let asked = tokio::select! {
            asked = signals.next() => Some(asked),
            _ = tokio::time::sleep(Duration::from_millis(50)) => None,
        };
        match asked {
            Some(Asked::Stop(name)) if stopping.is_some() => {
                warn!("{name} again: stopping now");
                std::process::exit(130);
            }
            Some(Asked::Stop(name)) => {
                let open: u64 = running.iter().map(|r| r.proxy.open_connections()).sum();
                info!(
                    "{name}: stopping; {open} connections in progress have {} to finish (signal again to stop now)",
                    human(grace)
                );
                crate::upgrade::notify_systemd("STOPPING=1");
                for r in &running {
                    r.proxy.enter(Phase::Draining);
                }
                stopping = Some(Instant::now() + grace);
            }
            Some(_) if stopping.is_some() || handed_over => {
                info!(
                    "this process is stopping or has handed over to a new binary: signal ignored"
                );
            }
            Some(Asked::Reload) => {
                crate::upgrade::notify_systemd("RELOADING=1");
                reload(&reread, &mut running, &mut listeners, &process, &registry);
                crate::upgrade::notify_systemd("READY=1");
            }
            Some(Asked::Upgrade) if role == Role::Worker => {
                warn!("SIGUSR2: a worker is upgraded by its master; signal the master");
            }
            Some(Asked::Upgrade) => {
                handed_over = crate::upgrade::hand_over(&listeners).await;
                if handed_over {
                    let now = Instant::now();
                    for r in &mut running {
                        r.proxy.enter(Phase::Draining);
                        r.retired.get_or_insert(now);
                    }
                    // The sockets are the new binary's now; this process's copies close with
                    // its last generation.
                    listeners = Listeners::default();
                }
            }
            None => {}
        }
        look_after(&mut running, stopping, &registry);
        if (stopping.is_some() || handed_over) && running.is_empty() {
            break;
        }
    }
    if !handed_over {
        crate::upgrade::remove_pidfile(pidfile.as_deref());
    }
    info!("stopped");
    Ok(())
}

/// A generation just started, and what it listens on (for the start-up line).
struct Started {
    proxy: Arc<Proxy>,
    threads: Vec<JoinHandle<()>>,
    bound: Vec<crate::listeners::Bound>,
}

/// Starts generation `number` of `config` on the process's listeners.
fn start(
    config: Config,
    number: u32,
    listeners: &mut Listeners,
    process: &Arc<Process>,
) -> Result<Started, String> {
    let (per_thread, bound) = listeners.for_generation(&config)?;
    let log = Sink::start(&config.global.log, config.global.log_format)?;
    let proxy = Arc::new(Proxy::new(config, log, Arc::clone(process), number));
    let threads = crate::server::start_threads(&proxy, per_thread)?;
    crate::health::start(&proxy);
    Ok(Started {
        proxy,
        threads,
        bound,
    })
}

/// SIGHUP: the next generation on the file as it is now, or nothing changed and why.
fn reload(
    reread: &Reread,
    running: &mut Vec<Running>,
    listeners: &mut Listeners,
    process: &Arc<Process>,
    registry: &Registry,
) {
    let Some(serving) = running.last().map(|r| Arc::clone(&r.proxy)) else {
        return;
    };
    let refuse = |why: String| {
        registry.reload_failures.fetch_add(1, Relaxed);
        error!(
            "reload refused: {why}; generation {} keeps serving, nothing changed",
            serving.generation
        );
    };
    let config = match reread() {
        Ok(config) => config,
        Err(why) => return refuse(why),
    };
    let old = &serving.config.global;
    for (key, changed) in [
        ("processes", config.global.processes != old.processes),
        ("admin", config.global.admin != old.admin),
        ("pidfile", config.global.pidfile != old.pidfile),
    ] {
        if changed {
            warn!("reload: global.{key} changed; it takes effect when the proxy is restarted or upgraded (SIGUSR2)");
        }
    }
    if config.global.maxconn != old.maxconn {
        match crate::server::process_maxconn(&config) {
            Ok(maxconn) => process.maxconn.store(maxconn, Relaxed),
            Err(why) => return refuse(why),
        }
    }
    let number = serving.generation + 1;
    let source = config.source.clone();
    let Started { proxy, threads, .. } = match start(config, number, listeners, process) {
        Ok(started) => started,
        Err(why) => return refuse(why),
    };
    // The new generation accepts on the same sockets already: the old one may stop.
    let now = Instant::now();
    serving.enter(Phase::Draining);
    if let Some(r) = running.last_mut() {
        r.retired = Some(now);
    }
    running.push(Running {
        proxy: Arc::clone(&proxy),
        threads,
        retired: None,
    });
    registry.reloads.fetch_add(1, Relaxed);
    info!(
        "reload: generation {number} serves {source}; generation {} stops accepting and keeps its {} connections{}",
        serving.generation,
        serving.open_connections(),
        match proxy.config.global.reload.hard_stop_after {
            Some(after) => format!(" for up to {}", human(after)),
            None => " until they end".to_string(),
        }
    );
    let limits = proxy.config.global.reload;
    process.close_rate.store(limits.close_rate, Relaxed);
    let max = limits.max_generations;
    let alive = running.len();
    for r in running.iter().take(alive.saturating_sub(max)) {
        if r.proxy.current_phase() == Phase::Draining {
            warn!(
                "max_generations {max}: generation {} closes its {} connections now, {} a second",
                r.proxy.generation,
                r.proxy.open_connections(),
                limits.close_rate
            );
            r.proxy.enter(Phase::Closing);
        }
    }
    registry.set(running.iter().map(|r| Arc::clone(&r.proxy)).collect());
}

/// Moves retired generations on (closing after `hard_stop_after`, stopped after the grace of a
/// stop) and lets go of those that have ended.
fn look_after(running: &mut Vec<Running>, stopping: Option<Instant>, registry: &Registry) {
    let now = Instant::now();
    // The newest file's limits hold for every generation: what the operator set last.
    let Some(limits) = running.last().map(|r| r.proxy.config.global.reload) else {
        return;
    };
    for r in running.iter() {
        let proxy = &r.proxy;
        if stopping.is_some_and(|end| now >= end) && proxy.current_phase() != Phase::Stopped {
            if proxy.open_connections() > 0 {
                warn!(
                    "grace period over: closing the {} connections of generation {} still in progress",
                    proxy.open_connections(),
                    proxy.generation
                );
            }
            proxy.enter(Phase::Stopped);
        }
        if let (Some(retired), Some(after)) = (r.retired, limits.hard_stop_after) {
            if now >= retired + after && proxy.current_phase() == Phase::Draining {
                warn!(
                    "generation {}: hard_stop_after {} has passed; closing its {} connections, {} a second",
                    proxy.generation,
                    human(after),
                    proxy.open_connections(),
                    limits.close_rate
                );
                proxy.enter(Phase::Closing);
            }
        }
    }
    let before = running.len();
    running.retain(|r| {
        if !r.ended() {
            return true;
        }
        let proxy = &r.proxy;
        if r.retired.is_some() || proxy.current_phase() != Phase::Serving {
            info!(
                "generation {} ended after {} ({} connections served{})",
                proxy.generation,
                human(proxy.started.elapsed()),
                proxy
                    .frontends
                    .iter()
                    .map(|f| f.total.load(Relaxed))
                    .sum::<u64>(),
                match proxy.closed_by_stop.load(Relaxed) {
                    0 => String::new(),
                    n => format!(", {n} closed by the proxy"),
                }
            );
        } else {
            error!(
                "generation {}: its threads ended while it was serving",
                proxy.generation
            );
        }
        false
    });
    if running.len() != before {
        registry.set(running.iter().map(|r| Arc::clone(&r.proxy)).collect());
    }
}
