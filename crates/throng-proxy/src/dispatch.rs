//! From "this request goes to backend B" to a connected server: a slot under the server's
//! `maxconn` (waiting in the backend's queue when every server is full), a connection (an idle
//! one reused, or a new one from the source-address pool, its PROXY header and TLS made), and
//! retries with redispatch.

use crate::balance::{self, Choice};
use crate::server_stream::{self, ServerStream, Unsecured};
use crate::state::{BackendState, Proxy, ServerState};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use throng_net::{sockets, source::RoundRobin};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A slot on a server, given back when dropped (and a queued request woken).
pub struct Slot {
    proxy: Arc<Proxy>,
    pub backend: usize,
    pub server: usize,
}

impl Slot {
    pub fn state(&self) -> &ServerState {
        &self.proxy.backends[self.backend].servers[self.server]
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let backend = &self.proxy.backends[self.backend];
        backend.servers[self.server].active.fetch_sub(1, Relaxed);
        backend.current.fetch_sub(1, Relaxed);
        if backend.queued.load(Relaxed) > 0 {
            backend.slot_freed.notify_one();
        }
    }
}

/// Why no server was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// No server is up: 503 at once.
    NoneUp,
    /// Every server stayed full for `timeout queue`: 503.
    QueueTimeout,
}

/// Takes a slot on a server of `backend` for a request from `client`, waiting in the backend's
/// queue up to its `timeout queue` when every server is at its `maxconn`.
pub async fn acquire(
    proxy: &Arc<Proxy>,
    backend: usize,
    client: balance::Affinity,
    exclude: &[usize],
) -> Result<Slot, NoSlot> {
    let config = &proxy.config.backends[backend];
    let state: &BackendState = &proxy.backends[backend];
    let deadline = Instant::now() + config.timeouts.queue;
    let slot = |server: usize| {
        state.current.fetch_add(1, Relaxed);
        state.total.fetch_add(1, Relaxed);
        state.servers[server].total.fetch_add(1, Relaxed);
        Slot {
            proxy: Arc::clone(proxy),
            backend,
            server,
        }
    };
    // Nobody overtakes the queue: while requests wait, a new one waits behind them.
    if state.queued.load(Relaxed) == 0 {
        match balance::choose(config, state, client, exclude) {
            Choice::Server(server) => return Ok(slot(server)),
            Choice::NoneUp => return Err(NoSlot::NoneUp),
            Choice::AllFull => {}
        }
    }
    let queued = state.queued.fetch_add(1, Relaxed) + 1;
    state.queue_max.fetch_max(queued, Relaxed);
    let _leave = Leave(&state.queued);
    loop {
        let freed = state.slot_freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        match balance::choose(config, state, client, exclude) {
            Choice::Server(server) => return Ok(slot(server)),
            Choice::NoneUp => return Err(NoSlot::NoneUp),
            Choice::AllFull => {}
        }
        if tokio::time::timeout_at(deadline, freed).await.is_err() {
            return Err(NoSlot::QueueTimeout);
        }
    }
}

struct Leave<'a>(&'a std::sync::atomic::AtomicU32);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Idle keep-alive connections to one server slot, newest last, each with the address it
/// reaches (a slot's address may change at run time).
type Idle = Vec<(SocketAddr, ServerStream)>;

/// What one thread keeps for its sessions' server connections.
#[derive(Default)]
pub struct ServerSide {
    /// Idle keep-alive connections by (backend, server slot).
    idle: RefCell<HashMap<(usize, usize), Idle>>,
    /// The next source address per backend, for backends with a `source` pool.
    sources: RefCell<HashMap<usize, RoundRobin>>,
}

/// How a connection to a server failed.
#[derive(Debug)]
pub enum ConnectError {
    Refused,
    Timeout,
    /// Out of source ports from this address (`None`: the kernel's choice of address): add
    /// addresses to the backend's `source` pool.
    NoSourcePort(Option<std::net::IpAddr>),
    /// TLS toward the server failed: its certificate did not verify, or it refused ours.
    Tls(String),
    Other(std::io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Refused => f.write_str("connection refused"),
            ConnectError::Timeout => f.write_str("timeout connect"),
            ConnectError::NoSourcePort(Some(source)) => {
                write!(f, "no free source port on {source}")
            }
            ConnectError::NoSourcePort(None) => f.write_str("no free source port"),
            ConnectError::Tls(reason) => write!(f, "TLS handshake failed: {reason}"),
            ConnectError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl ServerSide {
    /// An idle connection to the slot's server (at its address now) that is still open, if
    /// this thread has one.
    pub fn reuse(
        &self,
        backend: usize,
        server: usize,
        address: SocketAddr,
    ) -> Option<ServerStream> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&(backend, server))?;
        while let Some((to, mut stream)) = list.pop() {
            if to == address && stream.still_open() {
                return Some(stream);
            }
        }
        None
    }

    /// Keeps `stream` (to `address`) for the next request to the same server, up to `max`
    /// per server.
    pub fn keep(
        &self,
        backend: usize,
        server: usize,
        address: SocketAddr,
        stream: ServerStream,
        max: usize,
    ) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry((backend, server)).or_default();
        if list.len() < max {
            list.push((address, stream));
        }
    }

    /// Opens a new connection to `address` for `backend` within `timeout connect`.
    pub async fn connect(
        &self,
        proxy: &Proxy,
        backend: usize,
        address: SocketAddr,
    ) -> Result<TcpStream, ConnectError> {
        let config = &proxy.config.backends[backend];
        let source = if config.source.is_empty() {
            None
        } else {
            let mut sources = self.sources.borrow_mut();
            sources
                .entry(backend)
                .or_insert_with(|| RoundRobin::new(config.source.clone()))
                .next()
                .map(|(_, ip)| ip)
        };
        let classify = |error: std::io::Error| match error.kind() {
            std::io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::AddrInUse => {
                ConnectError::NoSourcePort(source)
            }
            _ => ConnectError::Other(error),
        };
        let socket = sockets::outgoing_socket(address, source).map_err(classify)?;
        match tokio::time::timeout(config.timeouts.connect, socket.connect(address)).await {
            Err(_) => Err(ConnectError::Timeout),
            Ok(Err(e)) => Err(classify(e)),
            Ok(Ok(stream)) => Ok(stream),
        }
    }
}

/// Whose connection a TCP or MQTT tunnel carries, for a server's `send_proxy` header: the
/// client's address and the address it connected to.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub client: SocketAddr,
    pub destination: SocketAddr,
}

/// What a new connection carries before the client's bytes: the server's `send_proxy` header
/// (in the clear, as HAProxy sends it), then TLS when the server has `tls`. Counted on `slot`.
async fn establish(
    slot: &Slot,
    mut socket: TcpStream,
    address: SocketAddr,
    origin: Option<Origin>,
    limit: Duration,
) -> Result<ServerStream, ConnectError> {
    let Some(spec) = slot.state().spec() else {
        return Ok(ServerStream::Plain(socket));
    };
    if let Some(version) = spec.send_proxy {
        // Only tunnels have servers with `send_proxy`, and they always say whose bytes go.
        let origin = origin.ok_or_else(|| {
            ConnectError::Other(std::io::Error::other(
                "no client address for the PROXY header",
            ))
        })?;
        let header = crate::proxy_protocol::header(version, origin.client, origin.destination);
        socket
            .write_all(&header)
            .await
            .map_err(ConnectError::Other)?;
    }
    let Some(tls) = &spec.tls else {
        return Ok(ServerStream::Plain(socket));
    };
    let state = slot.state();
    match server_stream::secure(socket, tls, address, limit).await {
        Ok((stream, resumed)) => {
            state.tls_handshakes.fetch_add(1, Relaxed);
            if resumed {
                state.tls_resumed.fetch_add(1, Relaxed);
            }
            Ok(stream)
        }
        Err(Unsecured::Timeout) => {
            say_tls_failure(slot, &spec, "no handshake within timeout connect");
            Err(ConnectError::Timeout)
        }
        Err(Unsecured::Refused(reason)) => {
            say_tls_failure(slot, &spec, &reason);
            Err(ConnectError::Tls(reason))
        }
    }
}

/// Counts a failed TLS handshake with a server and says why in the log: at once for the
/// first, then at most every 10 s per server with the count so far (a server whose certificate
/// does not verify fails every request, and one line per request would bury the log).
fn say_tls_failure(slot: &Slot, server: &crate::config::Server, reason: &str) {
    let state = slot.state();
    let count = state.tls_failures.fetch_add(1, Relaxed) + 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let said = state.tls_failure_said.load(Relaxed);
    if (said != 0 && now < said + 10)
        || state
            .tls_failure_said
            .compare_exchange(said, now, Relaxed, Relaxed)
            .is_err()
    {
        return;
    }
    let backend = &slot.proxy.config.backends[slot.backend].name;
    let name = server
        .tls
        .as_ref()
        .map(|tls| tls.name_for(server.address).to_str().into_owned())
        .unwrap_or_default();
    tracing::warn!(
        "Server {backend}/{}: TLS handshake with {} failed: {reason} (name checked: {name}; {count} failed so far)",
        server.name,
        server.address
    );
}

/// A server connection with its slot, and the timings HAProxy logs.
pub struct Connected {
    pub slot: Slot,
    pub stream: ServerStream,
    /// The server's address the connection reaches (kept with it when it goes idle).
    pub address: SocketAddr,
    /// Whether the connection was an idle one reused (it may have been closed meanwhile).
    pub reused: bool,
    /// Time waiting in the queue (Tw) and connecting (Tc).
    pub queued: Duration,
    pub connecting: Duration,
    pub retries: u32,
}

/// Why a request got no server connection: what the client is answered and the log says.
#[derive(Debug)]
pub enum DispatchError {
    NoSlot(NoSlot, Duration),
    /// Every attempt failed; the last server tried and why.
    Connect {
        server: usize,
        error: ConnectError,
        queued: Duration,
        retries: u32,
    },
}

/// A slot and a connection for a request to `backend`: up to `retries` more attempts after a
/// failed connect, on another server when `redispatch` is on. `origin` is for a `send_proxy`
/// header (TCP and MQTT tunnels).
pub async fn connect(
    proxy: &Arc<Proxy>,
    side: &ServerSide,
    backend: usize,
    client: balance::Affinity,
    allow_reuse: bool,
    origin: Option<Origin>,
) -> Result<Connected, DispatchError> {
    let config = &proxy.config.backends[backend];
    let state = &proxy.backends[backend];
    let mut failed: Vec<usize> = Vec::new();
    let mut retries = 0;
    let mut queued = Duration::ZERO;
    loop {
        let exclude: &[usize] = if config.redispatch { &failed } else { &[] };
        let waited = Instant::now();
        let slot = match acquire(proxy, backend, client, exclude).await {
            Ok(slot) => slot,
            // Every server failed once: try them again rather than give up early.
            Err(NoSlot::NoneUp) if !failed.is_empty() && retries <= config.retries => {
                failed.clear();
                continue;
            }
            Err(reason) => return Err(DispatchError::NoSlot(reason, queued + waited.elapsed())),
        };
        queued += waited.elapsed();
        let Some(address) = slot.state().spec().map(|spec| spec.address) else {
            // A slot with a slot taken always holds a server: nothing to connect to otherwise.
            return Err(DispatchError::NoSlot(NoSlot::NoneUp, queued));
        };
        if allow_reuse {
            if let Some(stream) = side.reuse(backend, slot.server, address) {
                return Ok(Connected {
                    slot,
                    stream,
                    address,
                    reused: true,
                    queued,
                    connecting: Duration::ZERO,
                    retries,
                });
            }
        }
        let started = Instant::now();
        let connecting = async {
            let socket = side.connect(proxy, backend, address).await?;
            establish(&slot, socket, address, origin, config.timeouts.connect).await
        };
        match connecting.await {
            Ok(stream) => {
                return Ok(Connected {
                    slot,
                    stream,
                    address,
                    reused: false,
                    queued,
                    connecting: started.elapsed(),
                    retries,
                })
            }
            Err(error) => {
                let server = slot.server;
                slot.state().connect_failures.fetch_add(1, Relaxed);
                drop(slot);
                if retries >= config.retries {
                    return Err(DispatchError::Connect {
                        server,
                        error,
                        queued,
                        retries,
                    });
                }
                retries += 1;
                state.retries.fetch_add(1, Relaxed);
                if config.redispatch {
                    state.redispatches.fetch_add(1, Relaxed);
                    failed.push(server);
                }
            }
        }
    }
}
