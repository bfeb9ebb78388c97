//! Generations: how one process changes its configuration without dropping a connection.
//!
//! A generation is a configuration with its own worker threads and counters ([`Proxy`]). The
//! process starts with generation 1. SIGHUP reads the file again: a file that does not check
//! changes nothing (the error names file, line and key); a good one starts the next generation
//! on the same listening sockets ([`Listeners`]), and only then the old one stops accepting. The
//! old generation closes its idle keep-alive connections, serves requests in progress and keeps
//! its tunnels until they end, or until `hard_stop_after`; then it closes the rest at
//! `close_rate` (the newest file's limits hold for all). At most `max_generations` live
//! together: a reload beyond it puts the oldest into closing at once. Runtime commands that
//! change servers or certificates ([`crate::ctl`]) start a generation the same way, on the
//! serving configuration changed. SIGUSR2 hands the sockets to a new binary
//! ([`crate::upgrade`]) and retires every generation of this process the same way; the process
//! exits when the last one ends. SIGTERM/SIGINT drain every generation for `global.grace`, then
//! stop.
//!
//! Memory is the process's: `global.memory_budget` and `global.maxconn` count every generation.

use crate::config::{AtMaxGenerations, Config};
use crate::listeners::Listeners;
use crate::log::Sink;
use crate::state::{Phase, Process, Proxy};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use throng_net::admin::Listener as AdminListener;
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
        self.generations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
    }

    fn set(&self, generations: Vec<Arc<Proxy>>) {
        *self.generations.lock().unwrap_or_else(|e| e.into_inner()) = generations;
    }
}

/// A generation and its threads, as the process runs it.
pub(crate) struct Running {
    pub(crate) proxy: Arc<Proxy>,
    threads: Vec<JoinHandle<()>>,
    /// When it stopped serving.
    retired: Option<Instant>,
}

impl Running {
    fn ended(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }
}

/// The process's generations and what they share. The signal loop and the admin listener's
/// runtime commands both change it, under one lock, never held across an await.
pub(crate) struct Manager {
    pub(crate) running: Vec<Running>,
    listeners: Listeners,
    process: Arc<Process>,
    pub(crate) registry: Arc<Registry>,
    reread: Reread,
    /// Runtime changes since the file was last read, in words: what a reload drops.
    pub(crate) changes: Vec<String>,
    /// Set once the process stops or has handed over: no generation starts any more.
    pub(crate) closed: bool,
}

impl Manager {
    /// The serving generation.
    pub(crate) fn serving(&self) -> Option<Arc<Proxy>> {
        self.running.last().map(|r| Arc::clone(&r.proxy))
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
    crate::privileges::keep_secrets_in();
    crate::upgrade::prepare();
    if role != Role::Worker {
        for warning in &first.warnings {
            warn!("{}: {warning}", first.source);
        }
    }
    let process = Arc::new(Process::new(
        crate::server::process_maxconn(&first)?,
        first.global.reload.close_rate,
    ));
    let mut listeners = Listeners::inherited()?;
    let admin_listener = crate::server::bind_admin(&first)?;
    let admin_socket = crate::ctl::socket::bind_configured(&first)?;
    let admin_limits = first.global.admin_limits;
    let registry = Arc::new(Registry::default());
    let Started {
        proxy,
        threads,
        bound,
    } = start(
        first,
        crate::upgrade::first_generation(),
        &mut listeners,
        &process,
    )?;
    let line = crate::server::ready_line(&proxy, &bound, admin_listener.as_ref());
    let pidfile = proxy.config.global.pidfile.clone();
    let grace = proxy.config.global.grace;
    registry.set(vec![Arc::clone(&proxy)]);
    let manager = Arc::new(Mutex::new(Manager {
        running: vec![Running {
            proxy: Arc::clone(&proxy),
            threads,
            retired: None,
        }],
        listeners,
        process: Arc::clone(&process),
        registry: Arc::clone(&registry),
        reread,
        changes: Vec::new(),
        closed: false,
    }));
    // A copy kept to hand to a new binary, which answers on it from then on.
    let admin_copy = admin_listener.as_ref().and_then(|l| l.try_clone().ok());
    let handler = crate::ctl::handler(Arc::clone(&manager));
    let admin_tasks: Vec<_> = [
        admin_listener.map(AdminListener::Tcp),
        crate::ctl::socket::listener(admin_socket.as_ref()).map(AdminListener::Socket),
    ]
    .into_iter()
    .filter_map(|l| throng_net::admin::spawn_handler(l, Arc::clone(&handler), admin_limits))
    .collect();
    let for_budget = Arc::clone(&registry);
    tokio::spawn(crate::server::watch_memory(
        Arc::clone(&process),
        move || {
            for_budget
                .current()
                .and_then(|p| p.config.global.memory_budget)
        },
    ));
    // Everything that needs root is done: sockets bound, keys read, the admin socket made.
    crate::privileges::drop_root(proxy.config.global.user, proxy.config.global.group)?;
    crate::upgrade::announce_ready(&line, pidfile.as_deref());
    let lock = || manager.lock().unwrap_or_else(|e| e.into_inner());

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
                let mut manager = lock();
                // The process's copies of the sockets close now, with the accept loops': a
                // connection is never left waiting in a queue nobody will accept from.
                manager.listeners = Listeners::default();
                manager.closed = true;
                let running = &manager.running;
                let open: u64 = running.iter().map(|r| r.proxy.open_connections()).sum();
                info!(
                    "{name}: stopping; {open} connections in progress have {} to finish (signal again to stop now)",
                    human(grace)
                );
                crate::upgrade::notify_systemd("STOPPING=1");
                for r in running {
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
                reload(&mut lock());
                crate::upgrade::notify_systemd("READY=1");
            }
            Some(Asked::Upgrade) if role == Role::Worker => {
                // From the master: a new master's workers accept on these ports now.
                info!("SIGUSR2: the master has handed over; this worker stops accepting and ends with its last connection");
                handed_over = true;
                retire_all(&mut lock());
            }
            Some(Asked::Upgrade) => {
                let (inherit, fds) = lock().listeners.to_inherit();
                let admin = crate::upgrade::Admin {
                    listener: admin_copy.as_ref().map(AsRawFd::as_raw_fd),
                    socket: admin_socket.as_ref().map(crate::ctl::socket::descriptor),
                };
                let next = lock().serving().map_or(1, |p| p.generation + 1);
                handed_over = crate::upgrade::hand_over(inherit, fds, admin, next).await;
                if handed_over {
                    retire_all(&mut lock());
                    for task in &admin_tasks {
                        task.abort();
                    }
                }
            }
            None => {}
        }
        let mut manager = lock();
        look_after(&mut manager, stopping);
        if (stopping.is_some() || handed_over) && manager.running.is_empty() {
            break;
        }
    }
    if !handed_over {
        crate::upgrade::remove_pidfile(pidfile.as_deref());
        if let Some(socket) = &admin_socket {
            socket.remove();
        }
    }
    info!("stopped");
    Ok(())
}

/// After an upgrade: every generation stops accepting and drains. The sockets are the new
/// binary's now (or, for a worker, the new master's workers have their own on the same ports);
/// this process's copies close with its generations' accept loops.
fn retire_all(manager: &mut Manager) {
    manager.closed = true;
    let now = Instant::now();
    for r in &mut manager.running {
        r.proxy.enter(Phase::Draining);
        r.retired.get_or_insert(now);
    }
    manager.listeners = Listeners::default();
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
    // What can fail without touching the sockets comes first: a refused reload must leave no
    // socket bound that nobody accepts on.
    let log = Sink::start(&config.global.log, config.global.log_format)?;
    let (per_thread, bound) = listeners.for_generation(&config)?;
    let proxy = Arc::new(Proxy::new(config, log, Arc::clone(process), number));
    let threads = crate::server::start_threads(&proxy, per_thread)?;
    crate::health::start(&proxy);
    Ok(Started {
        proxy,
        threads,
        bound,
    })
}

/// SIGHUP: the next generation on the file as it is now, or nothing changed and why. The file
/// replaces every runtime change made since it was last read.
fn reload(manager: &mut Manager) {
    let Some(serving) = manager.serving() else {
        return;
    };
    let config = match (manager.reread)() {
        Ok(config) => config,
        Err(why) => return refuse(manager, &serving, why),
    };
    let old = &serving.config.global;
    for (key, changed) in [
        ("processes", config.global.processes != old.processes),
        ("admin", config.global.admin != old.admin),
        ("admin_socket", socket_moved(&config, &serving.config)),
        ("pidfile", config.global.pidfile != old.pidfile),
    ] {
        if changed {
            warn!("reload: global.{key} changed; it takes effect when the proxy is restarted or upgraded (SIGUSR2)");
        }
    }
    // Worked out again (the open-files limit, the descriptor table) only when it changed.
    let maxconn = match config.global.maxconn != old.maxconn {
        true => match crate::server::process_maxconn(&config) {
            Ok(maxconn) => Some(maxconn),
            Err(why) => return refuse(manager, &serving, why),
        },
        false => None,
    };
    let source = config.source.clone();
    let dropped = std::mem::take(&mut manager.changes);
    match next_generation(manager, config) {
        Ok(number) => {
            if let Some(maxconn) = maxconn {
                manager.process.maxconn.store(maxconn, Relaxed);
            }
            manager.registry.reloads.fetch_add(1, Relaxed);
            info!(
                "reload: generation {number} serves {source}; generation {} stops accepting and keeps its {} connections{}",
                serving.generation,
                serving.open_connections(),
                match serving.config.global.reload.hard_stop_after {
                    Some(after) => format!(" for up to {}", human(after)),
                    None => " until they end".to_string(),
                }
            );
            if !dropped.is_empty() {
                warn!(
                    "reload: the file replaces {} runtime changes ({}); write them to it to keep them",
                    dropped.len(),
                    dropped.join("; ")
                );
            }
        }
        Err(why) => {
            manager.changes = dropped;
            refuse(manager, &serving, why)
        }
    }
}

/// Whether a reload's file names another admin socket than the running one (`auto` on both
/// sides is the same socket, wherever the reading user's `auto` would put it).
fn socket_moved(new: &Config, old: &Config) -> bool {
    let key = |c: &Config| {
        c.global.admin_socket.as_ref().map(|s| {
            let path = (!s.auto).then(|| s.path.clone());
            (path, s.mode, s.user, s.group)
        })
    };
    key(new) != key(old)
}

fn refuse(manager: &Manager, serving: &Proxy, why: String) {
    manager.registry.reload_failures.fetch_add(1, Relaxed);
    error!(
        "reload refused: {why}; generation {} keeps serving, nothing changed",
        serving.generation
    );
}

/// Starts the next generation on `config` and retires the serving one; its number.
pub(crate) fn next_generation(manager: &mut Manager, config: Config) -> Result<u32, String> {
    if manager.closed {
        return Err("the proxy is stopping, or has handed over to a new binary".into());
    }
    let serving = manager.serving().ok_or("the proxy is stopping")?;
    let number = serving.generation + 1;
    let limits = config.global.reload;
    let max = limits.max_generations;
    if limits.at_max_generations == AtMaxGenerations::Refuse && manager.running.len() >= max {
        let oldest = manager.running.first().map(|r| &r.proxy);
        return Err(format!(
            "max_generations {max}: {} generations are alive and the oldest ({}) still holds {} connections; nothing was cut (raise max_generations, set hard_stop_after, or at_max_generations = \"close-oldest\")",
            manager.running.len(),
            oldest.map_or(0, |p| p.generation),
            oldest.map_or(0, |p| p.open_connections()),
        ));
    }
    let Started { proxy, threads, .. } =
        start(config, number, &mut manager.listeners, &manager.process)?;
    carry_health(&serving, &proxy);
    // The new generation accepts on the same sockets already: the old one may stop.
    serving.enter(Phase::Draining);
    if let Some(r) = manager.running.last_mut() {
        r.retired = Some(Instant::now());
    }
    manager.running.push(Running {
        proxy,
        threads,
        retired: None,
    });
    manager.process.close_rate.store(limits.close_rate, Relaxed);
    let alive = manager.running.len();
    for r in manager.running.iter().take(alive.saturating_sub(max)) {
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
    let all = manager
        .running
        .iter()
        .map(|r| Arc::clone(&r.proxy))
        .collect();
    manager.registry.set(all);
    Ok(number)
}

/// Whether each server passes its checks, from `old` to `new` by backend and server name, so
/// that a reload sends nothing to a server that is down until its checks fail again (the file
/// says the rest).
fn carry_health(old: &Proxy, new: &Proxy) {
    for (backend, state) in new.config.backends.iter().zip(&new.backends) {
        let Some(b) = old
            .config
            .backends
            .iter()
            .position(|o| o.name == backend.name)
        else {
            continue;
        };
        let old_state = &old.backends[b];
        for (_, to, server) in state.live() {
            if let Some(from) = old_state
                .find(&server.name)
                .and_then(|s| old_state.servers.get(s))
            {
                to.up.store(from.up.load(Relaxed), Relaxed);
            }
        }
    }
}

/// Moves retired generations on (closing after `hard_stop_after`, stopped after the grace of a
/// stop) and lets go of those that have ended.
fn look_after(manager: &mut Manager, stopping: Option<Instant>) {
    let (running, registry) = (&mut manager.running, &manager.registry);
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
                "generation {} ended after {:.1}s ({} connections served{})",
                proxy.generation,
                proxy.started.elapsed().as_secs_f64(),
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
