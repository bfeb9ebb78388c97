//! Binding, worker threads, accept loops and the graceful stop.

use crate::admin;
use crate::config::Config;
use crate::connection;
use crate::metrics::{ListenerStats, Metrics};
use crate::pacing::Pacer;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use throng_net::{listen, rlimit, sockets, workers};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

/// How many bytes one read takes from a socket, into the thread's scratch buffer.
const READ_CHUNK: usize = 16 * 1024;

/// What every thread shares.
pub(crate) struct Shared {
    pub config: Config,
    pub metrics: Metrics,
    pub pacer: Option<Pacer>,
    pub max_connections: u64,
    /// Set on SIGTERM/SIGINT: finish what is in progress, keep no connection alive.
    pub stopping: AtomicBool,
}

/// What one worker thread's connections share: buffers they use between awaits, never across.
pub(crate) struct Worker {
    pub shared: Arc<Shared>,
    pub scratch: RefCell<Box<[u8]>>,
    /// Plaintext decrypted from what was just read into `scratch` (TLS only).
    pub plaintext: RefCell<Vec<u8>>,
    pub out: RefCell<Vec<u8>>,
    /// Responses in progress on this thread, which a graceful stop waits for.
    pub in_progress: Cell<usize>,
    /// Told when the graceful stop begins, for connections that say so to their clients (h2's
    /// GOAWAY); `shared.stopping` says it has.
    pub stop_begun: tokio::sync::Notify,
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>) -> Worker {
        Worker {
            shared,
            scratch: RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice()),
            plaintext: RefCell::new(Vec::new()),
            out: RefCell::new(Vec::with_capacity(1024)),
            in_progress: Cell::new(0),
            stop_begun: tokio::sync::Notify::new(),
        }
    }
}

#[cfg(test)]
impl Shared {
    pub(crate) fn for_tests() -> Shared {
        Shared {
            config: Config::default(),
            metrics: Metrics::new(Vec::new()),
            pacer: None,
            max_connections: 1,
            stopping: AtomicBool::new(false),
        }
    }
}

/// Runs pong until SIGTERM or SIGINT. Errors are for people: they say what failed and why.
pub fn run(config: Config) -> Result<(), String> {
    if config.listen.is_empty() {
        return Err("nothing to listen on: give at least one --listen address".into());
    }
    let limit =
        rlimit::raise_nofile().map_err(|e| format!("cannot read the open-files limit: {e}"))?;
    let fit = rlimit::connections_that_fit(limit, 1);
    let max_connections = match config.max_connections {
        Some(wanted) => {
            rlimit::check_fits(limit, wanted, 1)?;
            wanted
        }
        None => fit,
    };
    // Grown once now, not in 10-20 ms stalls of every thread as connections arrive.
    let _ = rlimit::reserve_descriptor_table(max_connections as u64 + rlimit::RESERVED_FDS);
    if let Some(rate) = config.max_rps {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("--max-rps must be a positive number, got {rate}"));
        }
    }

    let threads = config.threads.max(1);
    let mut per_thread: Vec<Vec<(std::net::TcpListener, Arc<ListenerStats>)>> =
        (0..threads).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &addr in &config.listen {
        let group = sockets::bind_group(addr, threads, sockets::ListenOptions::default())
            .map_err(|e| e.to_string())?;
        let actual = group[0].local_addr().map_err(|e| e.to_string())?;
        let stats = Arc::new(ListenerStats::new(actual));
        bound.push(actual);
        for (thread, listener) in group.into_iter().enumerate() {
            per_thread[thread].push((listener, Arc::clone(&stats)));
        }
    }
    let listener_stats = per_thread[0]
        .iter()
        .map(|(_, stats)| Arc::clone(stats))
        .collect();
    let admin_listener = match config.admin {
        Some(addr) => Some(
            sockets::bind_listener(addr, sockets::ListenOptions::default())
                .map_err(|e| format!("admin listener: {e}"))?,
        ),
        None => None,
    };

    let shared = Arc::new(Shared {
        pacer: config.max_rps.map(Pacer::new),
        metrics: Metrics::new(listener_stats),
        max_connections,
        stopping: AtomicBool::new(false),
        config,
    });
    announce(&shared, &bound, admin_listener.as_ref(), threads);

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_shared = Arc::clone(&shared);
    let handles = workers::spawn("pong", per_thread, move |_, listeners| {
        run_worker(Arc::clone(&worker_shared), listeners, stop_rx.clone())
    })
    .map_err(|e| format!("cannot start worker threads: {e}"))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        throng_net::admin::spawn(admin_listener, admin::route(Arc::clone(&shared)));
        let grace = shared.config.grace;
        let stop = || {
            shared.stopping.store(true, Ordering::Relaxed);
            let _ = stop_tx.send(true);
        };
        throng_net::admin::stop_on_signal("responses in progress", grace, stop, handles).await;
    });
    Ok(())
}

fn announce(
    shared: &Shared,
    bound: &[SocketAddr],
    admin: Option<&std::net::TcpListener>,
    threads: usize,
) {
    let mut line = format!(
        "throng pong listening on {} ({threads} threads",
        listen::describe(bound)
    );
    if let Some(rate) = shared.config.max_rps {
        line += &format!(", max {rate} requests/s");
    }
    line += &format!(
        ", timeout {}",
        throng_net::duration::format(shared.config.timeout)
    );
    if shared.config.tls.is_some() {
        line += ", TLS";
    }
    if let Some(addr) = admin.and_then(|a| a.local_addr().ok()) {
        line += &format!(", metrics at http://{addr}/metrics");
    }
    line += ")";
    // A plain line on stdout, whatever the log level, so that scripts can wait for it.
    println!("{line}");
}

async fn run_worker(
    shared: Arc<Shared>,
    listeners: Vec<(std::net::TcpListener, Arc<ListenerStats>)>,
    mut stop: watch::Receiver<bool>,
) {
    let worker = Rc::new(Worker::new(shared));
    for (listener, stats) in listeners {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                tokio::task::spawn_local(accept_loop(
                    listener,
                    stats,
                    Rc::clone(&worker),
                    stop.clone(),
                ));
            }
            Err(e) => warn!("cannot register a listener: {e}"),
        }
    }
    let _ = stop.wait_for(|stopping| *stopping).await;
    worker.stop_begun.notify_waiters();
    let deadline = Instant::now() + worker.shared.config.grace;
    while worker.in_progress.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if worker.in_progress.get() > 0 {
        warn!(
            "grace period over: closing {} responses in progress",
            worker.in_progress.get()
        );
    }
    // Returning drops this thread's tasks: idle connections close here.
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    stats: Arc<ListenerStats>,
    worker: Rc<Worker>,
    mut stop: watch::Receiver<bool>,
) {
    let metrics = &worker.shared.metrics;
    let mut at_limit = false;
    loop {
        if metrics.connections_open() >= worker.shared.max_connections {
            if !at_limit {
                at_limit = true;
                metrics
                    .connection_limit_reached
                    .fetch_add(1, Ordering::Relaxed);
                warn!(
                    "{} connections open (--max-connections): new connections wait in the accept queue of {}",
                    worker.shared.max_connections, stats.addr
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => continue,
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
        }
        at_limit = false;
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                stats.connections_accepted.fetch_add(1, Ordering::Relaxed);
                stats.connections_open.fetch_add(1, Ordering::Relaxed);
                let (stats, worker) = (Arc::clone(&stats), Rc::clone(&worker));
                if worker.shared.config.h2c && worker.shared.config.tls.is_none() {
                    tokio::task::spawn_local(crate::h2::sniff(stream, stats, worker));
                } else {
                    tokio::task::spawn_local(connection::serve(stream, stats, worker));
                }
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS: the error repeats until something closes, so pause
                // rather than spin.
                warn!("accept on {}: {e}", stats.addr);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
