//! A small admin HTTP listener (metrics, status pages, commands) on TCP or on a Unix socket:
//! one request per connection, bounded in size and time, a few connections at once, off the
//! path of the served connections; what it answers is the caller's. And the graceful stop on
//! SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use throng_http1::{self as http1, write, BodyLength, Limits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tracing::{debug, warn};

const LIMITS: Limits = Limits {
    max_head_bytes: 8 * 1024,
    max_headers: 64,
};

/// How much an admin listener takes on (HAProxy's `stats maxconn` and `stats timeout`):
/// connections past `maxconn` are answered 503 at once and closed, so a flood of them never
/// holds more than that; each connection has `timeout` for its whole exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminLimits {
    pub maxconn: usize,
    pub timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> AdminLimits {
        AdminLimits {
            maxconn: 16,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Who asks: a peer over TCP (and the local address it reached, which a `Host` must name), or
/// a process on the admin socket (its credentials, from the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Tcp { peer: SocketAddr, local: SocketAddr },
    Socket { uid: u32, pid: i32 },
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp { peer, .. } => write!(f, "{peer}"),
            Peer::Socket { uid, pid } => write!(f, "uid {uid} (pid {pid}) on the admin socket"),
        }
    }
}

/// An admin listener: TCP, or a Unix socket whose file permissions say who may connect.
pub enum Listener {
    Tcp(std::net::TcpListener),
    Socket(StdUnixListener),
}

/// An answer: status, content type (`text/plain` when empty) and body.
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Page {
    pub fn text(status: u16, body: impl Into<String>) -> Page {
        Page {
            status,
            content_type: "",
            body: body.into(),
        }
    }
}

/// What answers an admin request: the page for a path.
pub type Route = Arc<dyn Fn(&str) -> Page + Send + Sync>;

/// The largest request body read (`POST` commands).
pub const MAX_BODY: usize = 64 * 1024;

/// A whole admin request, for a listener that takes commands as well as pages.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub peer: Peer,
    /// The fields a handler's guards read, as sent: `Authorization`, `Origin`,
    /// `Sec-Fetch-Site` and `Host`.
    pub authorization: Option<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub fetch_site: Option<&'a [u8]>,
    pub host: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// What answers any admin request.
pub type Handler = Arc<dyn Fn(&Request<'_>) -> Page + Send + Sync>;

/// A handler that answers GET and HEAD with `route(path)`, and refuses other methods.
pub fn pages_only(route: Route) -> Handler {
    Arc::new(move |request: &Request<'_>| match request.method {
        "GET" | "HEAD" => route(request.path),
        _ => Page::text(405, "only GET and HEAD\n"),
    })
}

/// Starts answering on `listener` (bound before the worker threads started) on the current
/// runtime; a listener that cannot be registered is logged, not fatal.
pub fn spawn(listener: Option<std::net::TcpListener>, route: Route) {
    spawn_handler(
        listener.map(Listener::Tcp),
        pages_only(route),
        AdminLimits::default(),
    );
}

/// As [`spawn`], with a handler that sees whole requests, on TCP or a Unix socket; aborting
/// the handle stops answering (and closes this process's copy of the listener).
pub fn spawn_handler(
    listener: Option<Listener>,
    handler: Handler,
    limits: AdminLimits,
) -> Option<tokio::task::AbortHandle> {
    let registered = match listener? {
        Listener::Tcp(listener) => TcpListener::from_std(listener)
            .map(|l| tokio::spawn(serve_tcp(l, handler, limits)).abort_handle()),
        Listener::Socket(listener) => listener
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(listener))
            .map(|l| tokio::spawn(serve_socket(l, handler, limits)).abort_handle()),
    };
    match registered {
        Ok(handle) => Some(handle),
        Err(e) => {
            warn!("admin listener: {e}");
            None
        }
    }
}

/// Stops an admin listener answering from its own thread (see [`spawn_handler_on_thread`]).
pub struct Stop(tokio::sync::oneshot::Sender<()>);

impl Stop {
    pub fn stop(self) {
        let _ = self.0.send(());
    }
}

/// Answers on `listener` from a thread of its own (for a process whose main thread does other
/// work: a master supervising its workers).
pub fn spawn_on_thread(
    name: &str,
    listener: std::net::TcpListener,
    route: Route,
) -> Result<(), String> {
    let limits = AdminLimits::default();
    spawn_handler_on_thread(
        name,
        vec![Listener::Tcp(listener)],
        pages_only(route),
        limits,
    )
    .map(|_| ())
}

/// As [`spawn_on_thread`], with a handler that sees whole requests on each of `listeners`,
/// until stopped.
pub fn spawn_handler_on_thread(
    name: &str,
    listeners: Vec<Listener>,
    handler: Handler,
    limits: AdminLimits,
) -> Result<Stop, String> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the admin runtime: {e}"))?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            runtime.block_on(async move {
                let serving: Vec<_> = listeners
                    .into_iter()
                    .filter_map(|l| spawn_handler(Some(l), Arc::clone(&handler), limits))
                    .collect();
                // Dropped without a word (the process goes on without it): answer forever.
                if stopped.await.is_ok() {
                    for task in serving {
                        task.abort();
                    }
                } else {
                    std::future::pending::<()>().await
                }
            })
        })
        .map_err(|e| format!("cannot start the admin thread: {e}"))?;
    Ok(Stop(stop))
}

/// Answers GET and HEAD requests on `listener` with `route(path)`, forever.
pub async fn serve(listener: TcpListener, route: Arc<dyn Fn(&str) -> Page + Send + Sync>) {
    serve_tcp(listener, pages_only(route), AdminLimits::default()).await
}

/// Connections being answered, against `maxconn`; and when the last refusal was logged, so a
/// flood makes one line a second.
#[derive(Default)]
struct Occupancy {
    open: AtomicUsize,
    last_warned: AtomicU64,
}

/// A connection counted in [`Occupancy`] until dropped.
struct Slot(Arc<Occupancy>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

impl Occupancy {
    /// A slot, or `None` (and a warning at most once a second) when `maxconn` are open.
    fn take(self: &Arc<Self>, limits: &AdminLimits, peer: &Peer) -> Option<Slot> {
        if self.open.fetch_add(1, Relaxed) >= limits.maxconn {
            self.open.fetch_sub(1, Relaxed);
            let second = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if self.last_warned.swap(second, Relaxed) != second {
                warn!(
                    "admin: {} admin connections open (its maxconn): {peer} refused with 503",
                    limits.maxconn
                );
            }
            return None;
        }
        Some(Slot(Arc::clone(self)))
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 28\r\nconnection: close\r\n\r\ntoo many admin connections\r\n";

/// Answers every request on a TCP `listener` with `handler`, forever.
async fn serve_tcp(listener: TcpListener, handler: Handler, limits: AdminLimits) {
    let occupancy = Arc::new(Occupancy::default());
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Ok(local) = stream.local_addr() else {
                    continue;
                };
                let peer = Peer::Tcp { peer, local };
                let Some(slot) = occupancy.take(&limits, &peer) else {
                    let _ = stream.try_write(BUSY);
                    continue;
                };
                tokio::spawn(answer(stream, peer, Arc::clone(&handler), limits, slot));
            }
            Err(e) => {
                warn!("admin accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The same on a Unix socket: the peer is known by the credentials the kernel gives.
async fn serve_socket(listener: UnixListener, handler: Handler, limits: AdminLimits) {
    let occupancy = Arc::new(Occupancy::default());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let peer = match stream.peer_cred() {
                    Ok(cred) => Peer::Socket {
                        uid: cred.uid(),
                        pid: cred.pid().unwrap_or(0),
                    },
                    Err(e) => {
                        warn!("admin socket: a peer without credentials: {e}");
                        continue;
                    }
                };
                let Some(slot) = occupancy.take(&limits, &peer) else {
                    let _ = stream.try_write(BUSY);
                    continue;
                };
                tokio::spawn(answer(stream, peer, Arc::clone(&handler), limits, slot));
            }
            Err(e) => {
                warn!("admin socket accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One connection's exchange within the listener's timeout.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: Peer,
    handler: Handler,
    limits: AdminLimits,
    _slot: Slot,
) {
    match tokio::time::timeout(limits.timeout, exchange(stream, peer, &*handler)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!("admin connection: {e}"),
        Err(_) => debug!(
            "admin connection from {peer}: no whole exchange within {:?}",
            limits.timeout
        ),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: Peer,
    handler: &(dyn Fn(&Request<'_>) -> Page + Send + Sync),
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let response = loop {
        if buf.len() >= LIMITS.max_head_bytes || stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        let mut slots = http1::header_slots();
        match http1::parse_request(&buf, &mut slots, &LIMITS) {
            Ok(None) => continue,
            Ok(Some(head)) => {
                let head_only = head.method == "HEAD";
                let length = match head.body {
                    BodyLength::Empty => 0,
                    BodyLength::Fixed(n) if n as usize <= MAX_BODY => n as usize,
                    BodyLength::Fixed(_) => {
                        break respond(
                            Page::text(413, format!("a body is at most {MAX_BODY} bytes\n")),
                            false,
                            "",
                        )
                    }
                    _ => {
                        break respond(
                            Page::text(411, "give the body a Content-Length\n"),
                            false,
                            "",
                        )
                    }
                };
                let (method, target) = (head.method.to_string(), head.target.to_string());
                let field = |name: &str| head.header(name).map(<[u8]>::to_vec);
                let authorization = field("authorization");
                let origin = field("origin");
                let fetch_site = field("sec-fetch-site");
                let host = field("host");
                let mut body = buf.split_off(head.head_len.min(buf.len()));
                while body.len() < length {
                    let mut more = (&mut stream).take((length - body.len()) as u64);
                    if more.read_buf(&mut body).await? == 0 {
                        return Ok(());
                    }
                }
                body.truncate(length);
                let path = target.split('?').next().unwrap_or_default();
                let request = Request {
                    method: &method,
                    path,
                    peer,
                    authorization: authorization.as_deref(),
                    origin: origin.as_deref(),
                    fetch_site: fetch_site.as_deref(),
                    host: host.as_deref(),
                    body: &body,
                };
                break respond(handler(&request), head_only, path);
            }
            Err(error) => {
                break respond(
                    Page::text(error.status(), format!("{}\n", error.reason())),
                    false,
                    "",
                )
            }
        }
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// The response's bytes; a 401 names the scheme it wants (RFC 9110 11.6.1): a bearer token
/// for commands, a user and password (`stats_auth`) for pages.
fn respond(page: Page, head_only: bool, path: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.body.len() + 200);
    let content_type = if page.content_type.is_empty() {
        "text/plain; charset=utf-8"
    } else {
        page.content_type
    };
    let length = page.body.len().to_string();
    let mut fields: Vec<(&str, &[u8])> = vec![
        ("content-type", content_type.as_bytes()),
        ("content-length", length.as_bytes()),
        ("connection", b"close"),
    ];
    if page.status == 401 {
        let scheme: &[u8] = match path {
            "/ctl" => b"Bearer",
            _ => b"Basic realm=\"throng\", charset=\"UTF-8\"",
        };
        fields.push(("www-authenticate", scheme));
    }
    write::response_head(&mut out, page.status, &fields);
    if !head_only {
        out.extend_from_slice(page.body.as_bytes());
    }
    out
}

/// The most of an answer [`request`] reads: a master's workers' metrics fit many times.
const MAX_ANSWER: u64 = 32 << 20;

/// A request to an admin listener from a client of this process (a master to its workers,
/// `throng proxy ctl` to a proxy): `method` on `path` with `body` and, if given, an
/// `Authorization` value; the answer's status and body. Bounded in time and size.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    authorization: Option<&[u8]>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    // A listener on every address (0.0.0.0, [::]) is reached on loopback, which names itself
    // `localhost` to the admin guards; any other by the address it listens on.
    let (addr, host) = if addr.ip().is_unspecified() {
        let loopback = match addr {
            SocketAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
            SocketAddr::V6(_) => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        };
        let port = addr.port();
        (SocketAddr::new(loopback, port), format!("localhost:{port}"))
    } else {
        (addr, addr.to_string())
    };
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let head = Outgoing {
        method,
        path,
        host: &host,
        authorization,
    };
    blocking_exchange(stream, &head, body)
}

/// As [`request`], to the admin socket at `socket` (no token: its permissions are the guard).
pub fn request_socket(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, String), String> {
    let stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let head = Outgoing {
        method,
        path,
        host: "localhost",
        authorization: None,
    };
    blocking_exchange(stream, &head, body)
}

/// The head of a request a client of this process sends.
struct Outgoing<'a> {
    method: &'a str,
    path: &'a str,
    host: &'a str,
    authorization: Option<&'a [u8]>,
}

fn blocking_exchange(
    mut stream: impl std::io::Read + std::io::Write,
    head: &Outgoing<'_>,
    body: &[u8],
) -> Result<(u16, String), String> {
    use std::io::Read;
    let Outgoing {
        method,
        path,
        host,
        authorization,
    } = head;
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    if let Some(value) = authorization {
        out.extend_from_slice(b"Authorization: ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    stream.write_all(&out).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no answer")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status in the answer")?;
    Ok((status, body.to_string()))
}

/// The graceful stop every server here makes: waits for SIGTERM or SIGINT, says what gets `grace`
/// to finish, calls `stop`, and waits for the worker threads; a second signal exits at once
/// (status 130).
pub async fn stop_on_signal(
    in_progress: &str,
    grace: Duration,
    stop: impl FnOnce(),
    workers: Vec<std::thread::JoinHandle<()>>,
) {
    let signal = wait_for_signal().await;
    tracing::info!(
        "{signal}: stopping; {in_progress} have {} to finish (signal again to stop now)",
        crate::duration::format(grace)
    );
    stop();
    let joined = tokio::task::spawn_blocking(move || {
        for worker in workers {
            let _ = worker.join();
        }
    });
    tokio::select! {
        _ = joined => tracing::info!("stopped"),
        signal = wait_for_signal() => {
            warn!("{signal} again: stopping now");
            std::process::exit(130);
        }
    }
}

/// Waits for SIGTERM or SIGINT and says which.
pub async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            warn!("cannot watch for signals; stop with SIGKILL");
            std::future::pending().await
        }
    }
}

/// How `--until-stdin-closes` notices that the session that started this process ended: stdin
/// is read to its end (the bytes thrown away) on a thread of its own, then `then` runs there.
/// `false`: the thread could not start.
pub fn when_stdin_closes(then: impl FnOnce() + Send + 'static) -> bool {
    std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            then();
        })
        .is_ok()
}

/// `--until-stdin-closes` for a server: SIGTERM to this process once stdin closes, so that a
/// server started over ssh (or on a scenario's host, through its launcher) stops gracefully
/// with the session that started it.
pub fn terminate_when_stdin_closes() {
    let watching = when_stdin_closes(|| {
        tracing::info!("stdin closed: stopping");
        // SAFETY: kill(2) on this very process, which handles SIGTERM as a graceful stop.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    });
    if !watching {
        warn!("cannot watch stdin: stop with a signal");
    }
}
