//! What a session knows of its place: the worker thread it lives on, its frontend, its client,
//! when it began; and the bookkeeping every session does at its end (counters, the log line).

use crate::config::Frontend;
use crate::dispatch::{ConnectError, Connected, DispatchError, NoSlot, ServerSide};
use crate::log::Entry;
use crate::state::{FrontendState, Phase, Proxy};
use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// One worker thread's share of a generation: the proxy, and the thread's server connections.
pub struct Worker {
    pub proxy: Arc<Proxy>,
    pub servers: ServerSide,
    /// The generation's phase: serving, draining, closing, stopped.
    pub phase: tokio::sync::watch::Receiver<Phase>,
    /// The client sockets of this thread's connections, for a closing generation to shut
    /// (a few bytes each; a draining thread ends when none is left).
    pub sockets: RefCell<HashSet<RawFd>>,
    /// Those of them waiting idle between two HTTP requests: closed when the generation stops
    /// serving.
    pub idle: RefCell<HashSet<RawFd>>,
}

impl Worker {
    /// Whether the generation has stopped serving (idle connections should not wait on).
    pub fn stopping(&self) -> bool {
        self.proxy.stopping.load(Relaxed)
    }

    /// Client connections on this thread.
    pub fn open(&self) -> usize {
        self.sockets.borrow().len()
    }

    /// Notes `fd` idle until the guard is dropped: unless the generation has stopped serving
    /// already (`None`: close the connection now).
    pub fn idle_while(&self, fd: RawFd) -> Option<IdleGuard<'_>> {
        if self.stopping() {
            return None;
        }
        self.idle.borrow_mut().insert(fd);
        Some(IdleGuard { worker: self, fd })
    }
}

/// A connection noted idle in [`Worker::idle`] while it lives.
pub struct IdleGuard<'w> {
    worker: &'w Worker,
    fd: RawFd,
}

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        self.worker.idle.borrow_mut().remove(&self.fd);
    }
}

pub struct Session {
    pub worker: Rc<Worker>,
    pub frontend: usize,
    pub peer: SocketAddr,
    pub tls: bool,
    pub accepted: SystemTime,
    pub accepted_at: Instant,
}

impl Session {
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.worker.proxy
    }

    pub fn frontend(&self) -> &Frontend {
        &self.worker.proxy.config.frontends[self.frontend]
    }

    pub fn frontend_state(&self) -> &FrontendState {
        &self.worker.proxy.frontends[self.frontend]
    }

    /// Notes in `entry` the backend a request went to.
    pub fn note_backend(&self, entry: &mut Entry, backend: usize) {
        entry.backend = Some(self.proxy().config.backends[backend].name.clone());
        entry.backend_index = Some(backend);
    }

    /// Notes in `entry` the server of `backend` a request went to.
    pub fn note_server(&self, entry: &mut Entry, backend: usize, server: usize) {
        let slot = self.proxy().backends[backend].servers.get(server);
        entry.server = slot.and_then(|s| s.spec()).map(|spec| spec.name.clone());
        entry.server_index = Some(server);
    }

    /// A log entry for something that began at `wall`, with nothing reached yet.
    pub fn entry(&self, wall: SystemTime) -> Entry {
        Entry {
            mode: self.frontend().mode,
            client: self.peer,
            accepted: wall,
            frontend: self.frontend().name.clone(),
            tls: self.tls,
            backend: None,
            server: None,
            backend_index: None,
            server_index: None,
            t_request: None,
            t_queue: None,
            t_connect: None,
            t_response: None,
            t_total: Duration::ZERO,
            status: None,
            bytes_to_client: 0,
            bytes_from_client: 0,
            termination: *b"--",
            actconn: 0,
            feconn: 0,
            beconn: 0,
            srv_conn: 0,
            retries: 0,
            srv_queue: 0,
            backend_queue: 0,
            request: String::new(),
            mqtt: None,
        }
    }

    /// Notes in `entry` why no server was reached (timers, retries, the termination state HAProxy
    /// logs: SC no server or refused, sC connect timeout, sQ queue timeout) and counts it.
    pub fn note_dispatch_failure(&self, entry: &mut Entry, backend: usize, error: DispatchError) {
        let state = &self.proxy().backends[backend];
        match error {
            DispatchError::NoSlot(NoSlot::NoneUp, waited) => {
                entry.t_queue = Some(waited);
                entry.termination = *b"SC";
                state.no_server.fetch_add(1, Relaxed);
            }
            DispatchError::NoSlot(NoSlot::QueueTimeout, waited) => {
                entry.t_queue = Some(waited);
                entry.termination = *b"sQ";
                state.queue_timeouts.fetch_add(1, Relaxed);
            }
            DispatchError::Connect {
                server,
                error,
                queued,
                retries,
            } => {
                self.note_server(entry, backend, server);
                let config = &self.proxy().config.backends[backend];
                let spec = state.servers.get(server).and_then(|s| s.spec());
                let (name, address) =
                    spec.map_or((None, None), |s| (Some(s.name.clone()), Some(s.address)));
                tracing::debug!(
                    "{}/{}: {error}",
                    config.name,
                    name.as_deref().unwrap_or("?")
                );
                if let (ConnectError::NoSourcePort(_), Some(address)) = (&error, address) {
                    say_no_source_port(state, config, address, &error);
                }
                entry.t_queue = Some(queued);
                entry.retries = retries;
                entry.termination = if matches!(error, ConnectError::Timeout) {
                    *b"sC"
                } else {
                    *b"SC"
                };
                state.no_server.fetch_add(1, Relaxed);
            }
        }
    }

    /// Counts bytes a server exchanged.
    pub fn count_bytes(&self, connected: &Connected, to_server: u64, to_client: u64) {
        let backend = &self.proxy().backends[connected.slot.backend];
        backend.bytes_in.fetch_add(to_server, Relaxed);
        backend.bytes_out.fetch_add(to_client, Relaxed);
        let server = connected.slot.state();
        server.bytes_in.fetch_add(to_server, Relaxed);
        server.bytes_out.fetch_add(to_client, Relaxed);
    }

    /// Finishes `entry` (total time, connection counts, frontend bytes) and logs it.
    /// Counts a TLS connection given up for what the client sent after the handshake.
    pub fn count_tls_refusal(&self, client: &crate::stream::ClientStream) {
        if client.tls_refused() {
            self.frontend_state().tls_refusals.fetch_add(1, Relaxed);
            tracing::debug!(
                "{}: TLS connection from {} given up for what it sent",
                self.frontend().name,
                self.peer
            );
        }
    }

    pub fn log(&self, mut entry: Entry, started: Instant) {
        let proxy = self.proxy();
        entry.t_total = started.elapsed();
        entry.actconn = proxy.process.connections.load(Relaxed);
        let frontend = self.frontend_state();
        entry.feconn = frontend.current.load(Relaxed);
        frontend
            .bytes_in
            .fetch_add(entry.bytes_from_client, Relaxed);
        frontend.bytes_out.fetch_add(entry.bytes_to_client, Relaxed);
        if let Some(backend) = entry.backend_index {
            let state = &proxy.backends[backend];
            entry.beconn = state.current.load(Relaxed);
            entry.backend_queue = state.queued.load(Relaxed);
            if let Some(server) = entry.server_index {
                entry.srv_conn = state.servers[server].active.load(Relaxed) as u64;
            }
        }
        proxy.log.send(entry);
    }
}

/// Port exhaustion toward a server is said (at most every 10 s per backend, with the count
/// since), naming the address pool and how to widen it.
fn say_no_source_port(
    state: &crate::state::BackendState,
    config: &crate::config::Backend,
    address: std::net::SocketAddr,
    error: &ConnectError,
) {
    let count = state.no_source_port.fetch_add(1, Relaxed) + 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let said = state.no_source_port_said.load(Relaxed);
    if now < said + 10
        || state
            .no_source_port_said
            .compare_exchange(said, now, Relaxed, Relaxed)
            .is_err()
    {
        return;
    }
    let pool = if config.source.is_empty() {
        "no `source` pool: the kernel's one address".to_string()
    } else {
        format!(
            "`source` pool of {} address(es): {}",
            config.source.len(),
            throng_net::source::describe(&config.source)
        )
    };
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .collect::<Vec<_>>();
    let ports = match range[..] {
        [low, high] if high >= low => format!(
            "{} ports per server (net.ipv4.ip_local_port_range {low}-{high})",
            high - low + 1
        ),
        _ => "the ports of net.ipv4.ip_local_port_range per server".to_string(),
    };
    tracing::warn!(
        "backend {}: {error} toward {} ({count} connections so far; {pool}); each source address gives {ports}: add addresses to backends.{}.source, e.g. \"127.0.0.2-127.0.0.9\"",
        config.name,
        address,
        config.name
    );
}
