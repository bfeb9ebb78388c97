//! What every thread shares at run time: the configuration, and counters and states per
//! frontend, backend and server. All atomics: no lock on the path of a request.

use crate::config::{Backend, Config};
use crate::log::Sink;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// One generation of the proxy: a configuration and its counters. A reload starts a new one;
/// the old ones keep serving what they hold until it ends (see [`crate::generation`]).
pub struct Proxy {
    pub config: Config,
    pub frontends: Vec<FrontendState>,
    pub backends: Vec<BackendState>,
    pub log: Sink,
    /// What every generation of the process shares.
    pub process: Arc<Process>,
    /// 1 for the configuration the process started with, then one more per reload.
    pub generation: u32,
    /// Where the generation is in its life; its worker threads watch it.
    pub phase: watch::Sender<Phase>,
    /// Set when the generation leaves [`Phase::Serving`]: accept nothing, finish what is in
    /// progress, keep nothing alive. (The phase itself, for code that only needs a yes or no.)
    pub stopping: AtomicBool,
    /// When it began serving.
    pub started: std::time::Instant,
    /// Connections it closed itself (after `hard_stop_after` or at the end of `grace`).
    pub closed_by_stop: AtomicU64,
}

/// What the generations of one process share: the connection count and the limits on it.
pub struct Process {
    /// Client connections open in the process (all generations), and the most allowed.
    pub connections: AtomicU64,
    pub maxconn: AtomicU64,
    /// Set while resident memory is above `global.memory_budget`: nothing new is accepted.
    pub over_budget: AtomicBool,
    /// Woken when a connection closes, for accept loops waiting under a limit.
    pub connection_closed: Notify,
    /// The newest configuration's `close_rate`: how fast old generations close what they hold.
    pub close_rate: AtomicU64,
    /// Closings allowed and not yet taken, and when it was last filled: one budget for every
    /// closing generation and thread, so that together they hold the rate.
    close_budget: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl Process {
    pub fn new(maxconn: u64, close_rate: u64) -> Process {
        Process {
            connections: AtomicU64::new(0),
            maxconn: AtomicU64::new(maxconn),
            close_rate: AtomicU64::new(close_rate),
            close_budget: std::sync::Mutex::new((0.0, std::time::Instant::now())),
            over_budget: AtomicBool::new(false),
            connection_closed: Notify::new(),
        }
    }

    pub fn maxconn(&self) -> u64 {
        self.maxconn.load(Relaxed)
    }

    /// Up to `wanted` connections the caller may close now under `close_rate` (20 ms' worth at
    /// most saved up: the rate holds over any stretch of time, not only on average).
    pub fn take_closes(&self, wanted: usize) -> usize {
        let rate = self.close_rate.load(Relaxed).max(1) as f64;
        let most = (rate * 0.02).max(1.0);
        let mut budget = self.close_budget.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        let (tokens, filled) = *budget;
        let tokens = (tokens + now.duration_since(filled).as_secs_f64() * rate).min(most);
        let taken = (tokens.floor() as usize).min(wanted);
        *budget = (tokens - taken as f64, now);
        taken
    }
}

/// A generation's life. SIGTERM takes it from serving to draining, then stopped after
/// `grace`; a reload or an upgrade to draining, then closing after `hard_stop_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepting and serving.
    Serving,
    /// Accepting nothing: idle keep-alive connections close, requests and tunnels in progress
    /// go on.
    Draining,
    /// What is left closes at `close_rate` (one budget for the whole process).
    Closing,
    /// Everything left is dropped now.
    Stopped,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Serving => "serving",
            Phase::Draining => "draining",
            Phase::Closing => "closing",
            Phase::Stopped => "stopped",
        }
    }
}

impl Proxy {
    /// Backend `index`'s configuration. Indices come from the configuration itself (routes,
    /// default backends and server slots are checked against it when it is built, and it does
    /// not change while the process runs), so this cannot be out of range: the one reviewed
    /// exception to the crate's no-indexing rule on the request path.
    #[allow(clippy::indexing_slicing)]
    pub fn backend_config(&self, index: usize) -> &crate::config::Backend {
        &self.config.backends[index]
    }

    /// Backend `index`'s counters, made one per configured backend; see [`Proxy::backend_config`].
    #[allow(clippy::indexing_slicing)]
    pub fn backend_state(&self, index: usize) -> &BackendState {
        &self.backends[index]
    }
}

/// Counts by HTTP status class: 1xx, 2xx, 3xx, 4xx, 5xx, other.
#[derive(Default)]
pub struct StatusCounts(pub [AtomicU64; 6]);

impl StatusCounts {
    pub fn count(&self, status: u16) {
        let class = match status {
            100..=599 => (status / 100 - 1) as usize,
            _ => 5,
        };
        self.0[class].fetch_add(1, Relaxed);
    }
}

#[derive(Default)]
pub struct FrontendState {
    /// The TLS configuration new handshakes use: the file's, or what `set cert` put in its
    /// place (connections keep the one they began with).
    tls: std::sync::RwLock<Option<Arc<rustls::ServerConfig>>>,
    pub current: AtomicU64,
    pub total: AtomicU64,
    pub requests: AtomicU64,
    pub responses: StatusCounts,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Requests refused as malformed (400, 414, 431).
    pub bad_requests: AtomicU64,
    /// Requests not received in time (408).
    pub request_timeouts: AtomicU64,
    pub tls_handshakes: AtomicU64,
    pub tls_failures: AtomicU64,
    /// TLS connections given up after the handshake for what the client sent (a record that
    /// does not open, a malformed or unexpected message, a limit passed).
    pub tls_refusals: AtomicU64,
    /// Mode mqtt: connections closed before a server for their first packet (not MQTT, not a
    /// valid CONNECT, over `mqtt_max_connect`) or for none in `timeout.mqtt-connect`.
    pub mqtt_refusals: AtomicU64,
    /// Times an accept waited because `maxconn` or the memory budget was reached.
    pub limit_waits: AtomicU64,
    /// `rate_limit_sessions`, this process's share of it.
    pub session_rate: Option<crate::rate::SessionRate>,
    /// Connections left in the accept queue a while by `rate_limit_sessions`.
    pub rate_limited: AtomicU64,
    /// `accept_proxy`: connections closed for a missing, malformed or late PROXY header.
    pub proxy_header_refusals: AtomicU64,
    /// HTTP/2 connections, and the streams (requests) they opened.
    pub h2_connections: AtomicU64,
    pub h2_streams: AtomicU64,
    /// HTTP/2 requests refused on their stream (malformed, past the stream limit, CONNECT)
    /// or streams reset for what the client sent.
    pub h2_stream_refusals: AtomicU64,
    /// HTTP/2 connections closed for a protocol error (GOAWAY with its code).
    pub h2_connection_errors: AtomicU64,
    /// HTTP/2 connections closed for a flood (GOAWAY, ENHANCE_YOUR_CALM), by
    /// `throng_h2::server::Flood`.
    pub h2_floods: [AtomicU64; 8],
}

#[derive(Default)]
pub struct BackendState {
    pub servers: Vec<ServerState>,
    /// Requests waiting for a server slot, and where they wait.
    pub queued: AtomicU32,
    pub queue_max: AtomicU32,
    pub slot_freed: Notify,
    /// Weighted round-robin order, precomputed (smooth: weights interleave). Read on every
    /// choice, written only when a runtime command changes a weight.
    pub rotation: std::sync::RwLock<Arc<[u16]>>,
    pub next: AtomicUsize,
    pub current: AtomicU64,
    pub total: AtomicU64,
    pub responses: StatusCounts,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// 503: no server up.
    pub no_server: AtomicU64,
    /// 503: waited `timeout queue` for a slot.
    pub queue_timeouts: AtomicU64,
    pub retries: AtomicU64,
    pub redispatches: AtomicU64,
    /// Connections that found no free source port, and when that was last said (Unix s).
    pub no_source_port: AtomicU64,
    pub no_source_port_said: AtomicU64,
}

/// A backend's server slot: the server it holds (set at start or by `add server`, its address
/// replaced by `set server addr`) and its counters. Slots are made once per generation, room
/// for [`SPARE_SLOTS`] more than the file names, and never move, so a slot's index stays valid
/// for every connection and log entry that holds it; `del server` leaves the slot to the
/// connections still using it, and a later `add server` takes it once they have ended.
#[derive(Default)]
pub struct ServerState {
    /// What the slot holds: [`Place`].
    place: std::sync::atomic::AtomicU8,
    /// Bumped each time the slot takes a server: a health check of an earlier one stops.
    pub epoch: AtomicU32,
    /// The server's definition (name, address, limits), while the slot holds one.
    spec: std::sync::RwLock<Option<Arc<crate::config::Server>>>,
    /// Its `maxconn` (0: none) and a hash of its name (client-id balancing), read on every
    /// choice without the lock.
    maxconn: AtomicU32,
    pub name_hash: AtomicU64,
    /// Requests (HTTP) or connections (TCP) using the server now.
    pub active: AtomicU32,
    /// The weight in use: the configuration's, or what a runtime command set.
    pub weight: AtomicU32,
    /// What the operator said ([`AdminState`]): ready, drain or maint.
    pub admin: std::sync::atomic::AtomicU8,
    pub total: AtomicU64,
    pub up: AtomicBool,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub responses: StatusCounts,
    pub connect_failures: AtomicU64,
    /// Closed, reset or answered garbage instead of a response (502).
    pub response_failures: AtomicU64,
    /// Did not answer within `timeout server` (504).
    pub timeouts: AtomicU64,
    pub check_failures: AtomicU64,
    pub went_down: AtomicU64,
    /// TLS toward the server: handshakes made, those that resumed a session, and those that
    /// failed (the certificate did not verify, the server refused, or it timed out).
    pub tls_handshakes: AtomicU64,
    pub tls_resumed: AtomicU64,
    pub tls_failures: AtomicU64,
    /// When a TLS failure was last said in the log (seconds since the epoch).
    pub tls_failure_said: AtomicU64,
}

/// What a server slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Nothing yet: room for `add server`.
    Vacant = 0,
    /// A server in the backend.
    Live = 1,
    /// A server `del server` removed: no new connections; those it has go on, and count here.
    Removed = 2,
}

/// Slots each backend has beyond the servers its file names: room for `add server` until the
/// next reload.
pub const SPARE_SLOTS: usize = 64;

/// A server's state as the operator sets it at run time (HAProxy's `set server ... state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminState {
    /// Takes new connections (when its checks pass).
    Ready = 0,
    /// No new connections; those it has go on.
    Drain = 1,
    /// Out: no new connections, no health checks; those it has go on.
    Maint = 2,
}

impl AdminState {
    pub fn name(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }

    pub fn parse(text: &str) -> Option<AdminState> {
        match text {
            "ready" => Some(AdminState::Ready),
            "drain" => Some(AdminState::Drain),
            "maint" => Some(AdminState::Maint),
            _ => None,
        }
    }
}

impl ServerState {
    /// A slot holding `server` (its health up until checks say otherwise).
    fn holding(server: &crate::config::Server) -> ServerState {
        let slot = ServerState::default();
        slot.fill(server.clone());
        slot
    }

    /// Takes `server` into the slot: counters from zero, ready, up, its weight and limits.
    fn fill(&self, server: crate::config::Server) {
        for counter in [
            &self.total,
            &self.bytes_in,
            &self.bytes_out,
            &self.connect_failures,
            &self.response_failures,
            &self.timeouts,
            &self.check_failures,
            &self.went_down,
            &self.tls_handshakes,
            &self.tls_resumed,
            &self.tls_failures,
            &self.tls_failure_said,
        ] {
            counter.store(0, Relaxed);
        }
        for class in &self.responses.0 {
            class.store(0, Relaxed);
        }
        self.weight.store(server.weight, Relaxed);
        self.maxconn.store(server.maxconn.unwrap_or(0), Relaxed);
        self.name_hash
            .store(throng_net::hash::fnv1a(server.name.as_bytes()), Relaxed);
        self.admin.store(AdminState::Ready as u8, Relaxed);
        self.up.store(true, Relaxed);
        *self.spec.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(server));
        self.epoch.fetch_add(1, Relaxed);
        self.place.store(Place::Live as u8, Relaxed);
    }

    pub fn place(&self) -> Place {
        match self.place.load(Relaxed) {
            0 => Place::Vacant,
            1 => Place::Live,
            _ => Place::Removed,
        }
    }

    /// The server the slot holds (a removed one too, for its last connections).
    pub fn spec(&self) -> Option<Arc<crate::config::Server>> {
        self.spec.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Its `maxconn`.
    pub fn maxconn(&self) -> Option<u32> {
        Some(self.maxconn.load(Relaxed)).filter(|&n| n > 0)
    }

    pub fn admin_state(&self) -> AdminState {
        match self.admin.load(Relaxed) {
            0 => AdminState::Ready,
            1 => AdminState::Drain,
            _ => AdminState::Maint,
        }
    }

    /// In the backend, up and ready: may take a new connection.
    pub fn usable(&self) -> bool {
        self.place.load(Relaxed) == Place::Live as u8
            && self.up.load(Relaxed)
            && self.admin.load(Relaxed) == AdminState::Ready as u8
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed).max(1)
    }

    /// Takes a slot if the server is under `maxconn`.
    pub fn try_acquire(&self, maxconn: Option<u32>) -> bool {
        let Some(max) = maxconn else {
            self.active.fetch_add(1, Relaxed);
            return true;
        };
        self.active
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    /// Load for least-connections and power-of-two choices: active per unit of weight, scaled.
    pub fn load(&self, weight: u32) -> u64 {
        (self.active.load(Relaxed) as u64 * 256) / weight.max(1) as u64
    }
}

impl BackendState {
    pub fn new(backend: &Backend) -> BackendState {
        let servers = backend
            .servers
            .iter()
            .map(ServerState::holding)
            .chain(std::iter::repeat_with(ServerState::default).take(SPARE_SLOTS))
            .collect();
        let state = BackendState {
            servers,
            ..BackendState::default()
        };
        state.rotate();
        state
    }

    pub fn servers_up(&self) -> usize {
        self.servers.iter().filter(|s| s.usable()).count()
    }

    /// The servers in the backend (not removed ones): slot index, state, definition.
    pub fn live(&self) -> impl Iterator<Item = (usize, &ServerState, Arc<crate::config::Server>)> {
        self.servers.iter().enumerate().filter_map(|(i, slot)| {
            (slot.place() == Place::Live).then(|| slot.spec().map(|spec| (i, slot, spec)))?
        })
    }

    /// The slot of the server named `name` in the backend.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.live()
            .find(|(_, _, spec)| *spec.name == *name)
            .map(|(i, _, _)| i)
    }

    /// `add server`: the first slot free for it (never held a server, or its removed server's
    /// last connection has ended), filled, and in the rotation; `None` when there is none.
    pub fn add(&self, server: crate::config::Server) -> Option<usize> {
        let free = self.servers.iter().position(|slot| match slot.place() {
            Place::Vacant => true,
            Place::Removed => slot.active.load(Relaxed) == 0,
            Place::Live => false,
        })?;
        self.servers.get(free)?.fill(server);
        self.rotate();
        Some(free)
    }

    /// `del server`: out of the backend at once; the connections it has go on.
    pub fn remove(&self, index: usize) {
        if let Some(slot) = self.servers.get(index) {
            slot.place.store(Place::Removed as u8, Relaxed);
            self.rotate();
        }
    }

    /// `set server addr`: new connections go to `address`.
    pub fn set_address(&self, index: usize, address: std::net::SocketAddr) {
        let Some(slot) = self.servers.get(index) else {
            return;
        };
        let mut spec = slot.spec.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = spec.as_ref() {
            let mut changed = (**old).clone();
            changed.address = address;
            *spec = Some(Arc::new(changed));
        }
    }

    /// Sets server `index`'s weight, and the round-robin order with it.
    pub fn set_weight(&self, index: usize, weight: u32) {
        let Some(server) = self.servers.get(index) else {
            return;
        };
        server.weight.store(weight, Relaxed);
        self.rotate();
    }

    /// The round-robin order made again from the servers in the backend and their weights.
    fn rotate(&self) {
        let weights: Vec<u32> = self
            .servers
            .iter()
            .map(|s| {
                if s.place() == Place::Live {
                    s.weight()
                } else {
                    0
                }
            })
            .collect();
        let order: Arc<[u16]> = smooth_rotation(&weights).into();
        *self.rotation.write().unwrap_or_else(|e| e.into_inner()) = order;
    }

    /// The round-robin order now.
    pub fn rotation(&self) -> Arc<[u16]> {
        Arc::clone(&self.rotation.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The order smooth weighted round-robin visits servers in (nginx's algorithm): weights 5,1,1
/// give a a b a c a a rather than a a a a a b c, so no server gets a burst.
fn smooth_rotation(weights: &[u32]) -> Vec<u16> {
    let total: i64 = weights.iter().map(|&w| w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += w as i64;
        }
        // Slots without a server (weight 0) are never visited.
        let best = (0..weights.len())
            .filter(|&i| weights[i] > 0)
            .max_by_key(|&i| (current[i], -(i as i64)))
            .unwrap_or(0);
        current[best] -= total;
        order.push(best as u16);
    }
    order
}

impl FrontendState {
    /// The TLS configuration for the next handshake.
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `set cert`: the next handshakes use `config`.
    pub fn set_tls(&self, config: Arc<rustls::ServerConfig>) {
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = Some(config);
    }
}

impl Proxy {
    pub fn new(config: Config, log: Sink, process: Arc<Process>, generation: u32) -> Proxy {
        Proxy {
            frontends: config
                .frontends
                .iter()
                .map(|f| FrontendState {
                    tls: std::sync::RwLock::new(f.tls.clone()),
                    // Every worker process accepts on the same ports: each takes its share.
                    session_rate: f.rate_limit_sessions.map(|n| {
                        crate::rate::SessionRate::new(
                            n.div_ceil(config.global.processes.max(1) as u64),
                        )
                    }),
                    ..FrontendState::default()
                })
                .collect(),
            backends: config.backends.iter().map(BackendState::new).collect(),
            config,
            log,
            process,
            generation,
            phase: watch::channel(Phase::Serving).0,
            stopping: AtomicBool::new(false),
            started: std::time::Instant::now(),
            closed_by_stop: AtomicU64::new(0),
        }
    }

    /// Moves the generation on to `phase` (never back).
    pub fn enter(&self, phase: Phase) {
        if phase != Phase::Serving {
            self.stopping.store(true, Relaxed);
        }
        self.phase.send_if_modified(|now| {
            let later = phase as u8 > *now as u8;
            if later {
                *now = phase;
            }
            later
        });
    }

    pub fn current_phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Client connections this generation holds.
    pub fn open_connections(&self) -> u64 {
        self.frontends.iter().map(|f| f.current.load(Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_interleaves_by_weight() {
        let order = smooth_rotation(&[5, 1, 1]);
        assert_eq!(order, vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_rotation(&[1, 1]), vec![0, 1]);
        assert_eq!(smooth_rotation(&[1, 0, 1, 0]), vec![0, 2]);
    }

    #[test]
    fn a_server_at_maxconn_gives_no_slot() {
        let s = ServerState::default();
        assert!(s.try_acquire(Some(2)));
        assert!(s.try_acquire(Some(2)));
        assert!(!s.try_acquire(Some(2)));
        s.active.fetch_sub(1, Relaxed);
        assert!(s.try_acquire(Some(2)));
    }
}
