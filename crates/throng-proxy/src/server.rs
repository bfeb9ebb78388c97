//! Start-up, accept loops, limits, and the graceful stop. Thread per core: each worker thread
//! has its own `SO_REUSEPORT` listener per bound address, and a connection lives on one thread.

use crate::config::{Config, Mode};
use crate::dispatch::ServerSide;
use crate::metrics;
use crate::session::{Session, Worker};
use crate::state::{Phase, Proxy};
use crate::stream::ClientStream;
use crate::{http, mqtt, tcp};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use throng_net::admin::Page;
use throng_net::{listen, rlimit, sockets, workers};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Each session holds two descriptors: its client and its server connection.
const FDS_PER_SESSION: u64 = 2;

/// Runs the proxy until SIGTERM or SIGINT (reloading on SIGHUP, handing over to a new binary on
/// SIGUSR2). `reread` reads the configuration again for a reload.
pub fn run(
    config: Config,
    reread: crate::generation::Reread,
    role: crate::generation::Role,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(crate::generation::run(config, reread, role))
}

/// The connections one process may hold under `config`: `global.maxconn`, or what the
/// open-files limit allows (said when the limit is lower than asked).
pub(crate) fn process_maxconn(config: &Config) -> Result<u64, String> {
    let limit =
        rlimit::raise_nofile().map_err(|e| format!("cannot read the open-files limit: {e}"))?;
    let fit = rlimit::connections_that_fit(limit, FDS_PER_SESSION);
    let maxconn = match config.global.maxconn {
        Some(wanted) if wanted > fit => {
            warn!(
                "global.maxconn {wanted} does not fit the open-files limit ({} descriptors, 2 per connection): accepting at most {fit}; raise `ulimit -n` (or run several processes on the same ports)",
                limit.hard
            );
            fit
        }
        Some(wanted) => wanted,
        None => fit,
    };
    // Grown once now, not in 10-20 ms stalls of every thread as connections arrive.
    let _ = rlimit::reserve_descriptor_table(maxconn * FDS_PER_SESSION + rlimit::RESERVED_FDS);
    Ok(maxconn)
}

/// Starts a generation's worker threads on their listeners; they run until the generation is
/// stopped and its connections are gone.
pub(crate) fn start_threads(
    proxy: &Arc<Proxy>,
    per_thread: crate::listeners::PerThread,
) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
    let worker_proxy = Arc::clone(proxy);
    let name = format!("proxy-g{}", proxy.generation);
    workers::spawn(&name, per_thread, move |_, listeners| {
        run_worker(Arc::clone(&worker_proxy), listeners)
    })
    .map_err(|e| format!("cannot start worker threads: {e}"))
}

/// The admin listener of `global.admin`, bound before anything else starts.
pub(crate) fn bind_admin(config: &Config) -> Result<Option<std::net::TcpListener>, String> {
    // Handed over by an old binary: the same socket, so no request to it is refused.
    // (Unless the file now names another address: that one is bound, and the old closes.)
    if let Some(inherited) = crate::listeners::inherited_admin()? {
        let at = inherited.local_addr().ok();
        let same = config.global.admin.is_some_and(|wanted| {
            at.is_some_and(|at| at == wanted || (wanted.port() == 0 && wanted.ip() == at.ip()))
        });
        if same {
            return Ok(Some(inherited));
        }
    }
    config
        .global
        .admin
        .map(|addr| {
            sockets::bind_listener(addr, sockets::ListenOptions::default())
                .map_err(|e| format!("admin listener: {e}"))
        })
        .transpose()
}

pub(crate) fn route(path: &str, proxy: &Proxy, generations: &crate::generation::Registry) -> Page {
    match path {
        "/metrics" => Page {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics::render(proxy, generations),
        },
        "/" | "/stats" => Page {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: metrics::stats_page(proxy, generations),
        },
        _ => Page::text(404, "not found: try /stats or /metrics\n"),
    }
}

/// The start-up line: what listens, and where the stats are.
pub(crate) fn ready_line(
    proxy: &Proxy,
    bound: &[crate::listeners::Bound],
    admin: Option<&std::net::TcpListener>,
) -> String {
    let frontends: Vec<String> = bound
        .iter()
        .map(|(name, tls, addrs)| {
            format!(
                "{name} on {}{}",
                listen::describe(addrs),
                if *tls { " with TLS" } else { "" }
            )
        })
        .collect();
    let mut line = format!(
        "throng proxy listening: {} ({} threads, maxconn {}",
        frontends.join("; "),
        proxy.config.global.threads,
        proxy.process.maxconn()
    );
    if let Some(addr) = admin.and_then(|a| a.local_addr().ok()) {
        line += &format!(", stats at http://{addr}/stats");
    }
    line += ")";
    line
}

/// Keeps `process.over_budget` up to date with the serving generation's `memory_budget`
/// (resident memory counts every generation: they share the process).
pub(crate) async fn watch_memory(
    process: Arc<crate::state::Process>,
    budget: impl Fn() -> Option<u64>,
) {
    loop {
        let resident = metrics::resident_bytes().unwrap_or(0);
        let budget = budget();
        let over = budget.is_some_and(|budget| resident > budget);
        if over != process.over_budget.swap(over, Relaxed) {
            if over {
                warn!(
                    "resident memory {} MiB is over global.memory_budget {} MiB: new connections wait in the accept queue",
                    resident >> 20,
                    budget.unwrap_or(0) >> 20
                );
            } else {
                info!(
                    "resident memory {} MiB is back under the budget: accepting again",
                    resident >> 20
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run_worker(proxy: Arc<Proxy>, listeners: Vec<(std::net::TcpListener, usize)>) {
    let worker = Rc::new(Worker {
        proxy: Arc::clone(&proxy),
        servers: ServerSide::default(),
        phase: proxy.phase.subscribe(),
        sockets: Default::default(),
        idle: Default::default(),
    });
    for (listener, frontend) in listeners {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                tokio::task::spawn_local(accept_loop(listener, frontend, Rc::clone(&worker)));
            }
            Err(e) => warn!("cannot register a listener: {e}"),
        }
    }
    let mut phase = worker.phase.clone();
    let _ = phase.wait_for(|p| *p != Phase::Serving).await;
    // The accept loops have returned (their copies of the listeners close; the process keeps
    // the sockets for the next generation). Idle keep-alive connections close now.
    for &fd in worker.idle.borrow().iter() {
        shut(fd, libc::SHUT_RD);
    }
    drain(&worker, &mut phase).await;
    // Returning drops this thread's tasks: whatever is left closes here.
}

/// Waits for this thread's connections to end; once the generation is closing, closes them
/// under the process's `close_rate` budget; once it is stopped, returns at once.
async fn drain(worker: &Worker, phase: &mut watch::Receiver<Phase>) {
    let tick = Duration::from_millis(10);
    // Sessions shut and not ended yet (no session begins on a closing thread, so a descriptor
    // here is not reused meanwhile).
    let mut shut_already = std::collections::HashSet::new();
    while worker.open() > 0 {
        let now = *phase.borrow_and_update();
        match now {
            Phase::Serving | Phase::Draining => {
                tokio::select! {
                    _ = phase.changed() => {}
                    _ = tokio::time::sleep(tick) => {}
                }
            }
            Phase::Closing => {
                // Sessions shut earlier and ended since are gone from the registry: forget them.
                shut_already.retain(|fd| worker.sockets.borrow().contains(fd));
                let waiting = worker.open().saturating_sub(shut_already.len());
                let due = worker.proxy.process.take_closes(waiting);
                // Shut, not dropped: each session ends on its own path, with its log line, and
                // leaves the registry then.
                let chosen: Vec<RawFd> = worker
                    .sockets
                    .borrow()
                    .iter()
                    .filter(|&fd| !shut_already.contains(fd))
                    .take(due)
                    .copied()
                    .collect();
                for fd in chosen {
                    shut_already.insert(fd);
                    shut(fd, libc::SHUT_RDWR);
                    worker.proxy.closed_by_stop.fetch_add(1, Relaxed);
                }
                tokio::time::sleep(tick).await;
            }
            Phase::Stopped => {
                warn!(
                    "generation {}: closing the {} connections left on this thread",
                    worker.proxy.generation,
                    worker.open()
                );
                return;
            }
        }
    }
}

/// shutdown(2) on a client socket of this thread (its session is still running and owns it).
fn shut(fd: RawFd, how: libc::c_int) {
    // SAFETY: `fd` is the socket of a live session on this thread: sessions leave the registry
    // when they end, on this same thread, so it has not been closed or reused meanwhile.
    unsafe { libc::shutdown(fd, how) };
}

/// Why accepting waits.
fn at_limit(proxy: &Proxy, frontend: usize) -> Option<String> {
    let maxconn = proxy.process.maxconn();
    if proxy.process.connections.load(Relaxed) >= maxconn {
        return Some(format!("global maxconn {maxconn} reached"));
    }
    let config = &proxy.config.frontends[frontend];
    if let Some(max) = config.maxconn {
        if proxy.frontends[frontend].current.load(Relaxed) >= max {
            return Some(format!("frontend {} maxconn {max} reached", config.name));
        }
    }
    if proxy.process.over_budget.load(Relaxed) {
        return Some("memory budget reached".into());
    }
    None
}

async fn accept_loop(listener: tokio::net::TcpListener, frontend: usize, worker: Rc<Worker>) {
    let proxy = Arc::clone(&worker.proxy);
    let mut stop = worker.phase.clone();
    let mut waiting = false;
    loop {
        if let Some(reason) = at_limit(&proxy, frontend) {
            if !waiting {
                waiting = true;
                proxy.frontends[frontend].limit_waits.fetch_add(1, Relaxed);
                warn!("{reason}: new connections wait in the accept queue");
            }
            let closed = proxy.process.connection_closed.notified();
            tokio::select! {
                _ = closed => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.wait_for(|phase| *phase != Phase::Serving) => return,
            }
            continue;
        }
        waiting = false;
        // `rate_limit_sessions`: the connection waits in the kernel's queue for its turn.
        if let Some(rate) = &proxy.frontends[frontend].session_rate {
            if let Err(wait) = rate.try_take() {
                proxy.frontends[frontend].rate_limited.fetch_add(1, Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|phase| *phase != Phase::Serving) => return,
                }
                continue;
            }
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|phase| *phase != Phase::Serving) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Every thread's accept may have passed the check above at once: a slot is
                // taken (and the budget looked at) only now, and until then the connection
                // waits unread, as it would have in the accept queue (one per thread at most).
                while proxy.process.over_budget.load(Relaxed) || !reserve(&proxy, frontend) {
                    if *stop.borrow() != Phase::Serving {
                        // Accepted already: served (over the limit by one at most), not
                        // dropped, even though the generation stops.
                        force_reserve(&proxy, frontend);
                        break;
                    }
                    let closed = proxy.process.connection_closed.notified();
                    tokio::select! {
                        _ = closed => {}
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = stop.changed() => {}
                    }
                }
                let open = Open::new(Rc::clone(&worker), frontend, stream.as_raw_fd());
                tokio::task::spawn_local(start_session(open, stream, peer));
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS: the error repeats until something closes.
                warn!(
                    "accept on frontend {}: {e}",
                    proxy.config.frontends[frontend].name
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Takes a connection slot in the process and the frontend, if both have one.
fn reserve(proxy: &Proxy, frontend: usize) -> bool {
    let state = &proxy.frontends[frontend];
    let below = |max: u64| move |n: u64| (n < max).then_some(n + 1);
    let max = proxy.config.frontends[frontend].maxconn.unwrap_or(u64::MAX);
    if state
        .current
        .fetch_update(Relaxed, Relaxed, below(max))
        .is_err()
    {
        return false;
    }
    if proxy
        .process
        .connections
        .fetch_update(Relaxed, Relaxed, below(proxy.process.maxconn()))
        .is_err()
    {
        state.current.fetch_sub(1, Relaxed);
        return false;
    }
    true
}

/// Takes a slot whatever the limits say (for a connection accepted already).
fn force_reserve(proxy: &Proxy, frontend: usize) {
    proxy.frontends[frontend].current.fetch_add(1, Relaxed);
    proxy.process.connections.fetch_add(1, Relaxed);
}

/// Counts a client connection while it lives (its slot was taken by [`reserve`]), and keeps
/// its socket in the thread's registry.
struct Open {
    worker: Rc<Worker>,
    frontend: usize,
    fd: RawFd,
}

impl Open {
    fn new(worker: Rc<Worker>, frontend: usize, fd: RawFd) -> Open {
        worker.sockets.borrow_mut().insert(fd);
        Open {
            worker,
            frontend,
            fd,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let worker = &self.worker;
        worker.sockets.borrow_mut().remove(&self.fd);
        let proxy = &worker.proxy;
        proxy.process.connections.fetch_sub(1, Relaxed);
        proxy.frontends[self.frontend].current.fetch_sub(1, Relaxed);
        proxy.process.connection_closed.notify_waiters();
    }
}

/// A connection's whole life.
async fn start_session(open: Open, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let worker = &open.worker;
    let frontend = open.frontend;
    let proxy = &worker.proxy;
    let state = &proxy.frontends[frontend];
    state.total.fetch_add(1, Relaxed);
    let config = &proxy.config.frontends[frontend];
    let mut stream = stream;
    let mut peer = peer;
    if config.accept_proxy != crate::proxy_protocol::Senders::Nobody {
        // Boxed: the header's reading lives for a moment, the session for hours.
        let senders = &config.accept_proxy;
        let header =
            crate::proxy_header::take(&mut stream, peer, senders, config.timeouts.handshake);
        match Box::pin(header).await {
            Ok(Some(client)) => peer = client,
            Ok(None) => {}
            Err(why) => {
                state.proxy_header_refusals.fetch_add(1, Relaxed);
                warn!("{}: {peer} refused: {why}", config.name);
                return;
            }
        }
    }
    let session = Session {
        worker: Rc::clone(worker),
        frontend,
        peer,
        tls: config.tls.is_some(),
        accepted: SystemTime::now(),
        accepted_at: Instant::now(),
    };
    let client = match state.tls() {
        None => ClientStream::Plain(stream),
        // Boxed: the handshake's state lives for a moment, the session for hours.
        Some(tls) => match Box::pin(handshake(&session, &tls, stream)).await {
            Some(client) => client,
            None => return,
        },
    };
    match config.mode {
        Mode::Http => http::serve(session, client).await,
        Mode::Tcp => Box::pin(tcp::serve(session, client)).await,
        Mode::Mqtt => Box::pin(mqtt::serve(session, client)).await,
    }
}

/// How long, and how much, a refused handshake's socket is read before it closes.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 256 * 1024;

/// A refused handshake's close. Its alert is sent, but the client may still be sending (its
/// early data, the rest of its flight): a socket closed with unread bytes is reset, and the
/// reset can reach the client before it has read the alert (tlsfuzzer saw "broken pipe"). So
/// the write side is shut (FIN after the alert) and what still comes is read and dropped, for
/// at most [`LINGER`] and [`LINGER_BYTES`], as a lingering close does.
async fn linger_close(stream: tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut sink = [0u8; 2048];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        match stream.try_read(&mut sink) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Completes the TLS handshake within the frontend's `timeout handshake`, counting the outcome.
async fn handshake(
    session: &Session,
    tls: &Arc<rustls::ServerConfig>,
    stream: tokio::net::TcpStream,
) -> Option<ClientStream> {
    let config = session.frontend();
    let state = session.frontend_state();
    let mut connection = match rustls::server::UnbufferedServerConnection::new(Arc::clone(tls)) {
        Ok(connection) => Box::new(throng_tls::stream::TlsStream::new(connection)),
        Err(e) => {
            warn!("TLS: {e}");
            return None;
        }
    };
    let handshake = connection.handshake(&stream);
    match tokio::time::timeout(config.timeouts.handshake, handshake).await {
        Ok(Ok(())) => {
            state.tls_handshakes.fetch_add(1, Relaxed);
            Some(ClientStream::Tls(stream, connection))
        }
        Ok(Err(e)) => {
            state.tls_failures.fetch_add(1, Relaxed);
            debug!(
                "{}: TLS handshake with {} failed: {e:?}",
                config.name, session.peer
            );
            linger_close(stream).await;
            None
        }
        Err(_) => {
            state.tls_failures.fetch_add(1, Relaxed);
            debug!(
                "{}: TLS handshake with {} timed out",
                config.name, session.peer
            );
            None
        }
    }
}
