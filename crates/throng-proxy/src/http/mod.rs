//! HTTP mode: a client connection's requests, one after another (keep-alive), each sent to a
//! server chosen for it and answered with what the server says, streamed as it comes.
//!
//! A request goes through these steps, and the log line's termination state names the step
//! where it ended: R (receiving the request head), Q (queued for a server slot), C (connecting),
//! H (waiting for the response head), D (data: bodies), and `--` when all went well.

pub mod rewrite;
pub mod route;

use crate::dispatch::{self, Connected, DispatchError};
use crate::log::Entry;
use crate::relay;
use crate::session::Session;
use crate::stream::ClientStream;
use rewrite::{ClientConnection, Forward};
use std::future::Future;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};
use throng_http1::{self as http1, BodyLength, BodyReader, Limits, Version};
use throng_net::buffers::Buffer;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

/// The request head limits: 16 KiB and 100 fields, as `throng pong`.
const LIMITS: Limits = Limits {
    max_head_bytes: 16 * 1024,
    max_headers: 100,
};

/// Serves requests on `client` until it closes, an error ends it, or the proxy stops.
pub async fn serve(session: Session, mut client: ClientStream) {
    let timeouts = session.frontend().timeouts;
    let mut carried: Option<Buffer> = None;
    let mut first = true;
    loop {
        if carried.is_none() {
            let wait = if first {
                timeouts
                    .http_request
                    .saturating_sub(session.accepted_at.elapsed())
            } else {
                timeouts.http_keep_alive
            };
            // No need to watch for a stop here: a stopping worker drops its idle sessions.
            match wait_readable(&mut client, Instant::now() + wait).await {
                Ok(()) => {}
                Err(ReadFailure::Io) => break,
                Err(ReadFailure::Timeout) if first => {
                    // Connected, never asked: slowloris or a stuck client (HAProxy: 408, cR).
                    Box::pin(refuse_silent_client(&session, &mut client)).await;
                    break;
                }
                // An idle keep-alive connection timing out is not worth a line, as in HAProxy.
                Err(ReadFailure::Timeout) => break,
            }
        }
        let started = if first {
            session.accepted_at
        } else {
            Instant::now()
        };
        let wall = if first {
            session.accepted
        } else {
            SystemTime::now()
        };
        let buffer = carried.take().unwrap_or_else(Buffer::take);
        let _busy = crate::session::Busy::new(&session.worker);
        // Boxed, and in its own statement: an exchange's state exists only while a request is
        // in progress, and the idle connection's task stays small.
        let exchange = Box::pin(exchange(&session, &mut client, buffer, started, wall));
        let next = exchange.await;
        match next {
            Next::KeepAlive(rest) => carried = rest,
            Next::Close => break,
        }
        if session.proxy().stopping.load(Relaxed) {
            break;
        }
        first = false;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
}

/// Answers 408 to a client that connected and sent nothing within `timeout http-request`.
async fn refuse_silent_client(session: &Session, client: &mut ClientStream) {
    let mut entry = session.entry(SystemTime::now());
    entry.termination = *b"cR";
    session
        .frontend_state()
        .request_timeouts
        .fetch_add(1, Relaxed);
    answer_error(session, client, &mut entry, 408).await;
    session.log(entry, session.accepted_at);
}

enum Next {
    /// Another request may follow; bytes of it already read come along.
    KeepAlive(Option<Buffer>),
    Close,
}

/// The request head, read and checked, with what the server gets in its place.
struct Request {
    upstream_head: Vec<u8>,
    line: String,
    body: BodyLength,
    version: Version,
    keep_alive: bool,
    upgrade: bool,
    is_head: bool,
    expect_continue: bool,
    backend: Option<usize>,
    head_len: usize,
}

/// One request and its response.
async fn exchange(
    session: &Session,
    client: &mut ClientStream,
    req: Buffer,
    started: Instant,
    wall: SystemTime,
) -> Next {
    let proxy = session.proxy();
    let timeouts = session.frontend().timeouts;
    let mut entry = session.entry(wall);

    // R: the request head, within `timeout http-request`.
    let deadline = started + timeouts.http_request;
    // Holds bytes from the client only while there are some: not while waiting for a response.
    let mut req = Some(req);
    let mut request = loop {
        let Some(filled) = req.as_ref() else {
            unreachable_state();
            return Next::Close;
        };
        match parse(session, client, filled) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(status) => {
                entry.termination = *b"PR";
                session.frontend_state().bad_requests.fetch_add(1, Relaxed);
                entry.request = "<BADREQ>".into();
                Box::pin(answer_error(session, client, &mut entry, status)).await;
                session.log(entry, started);
                return Next::Close;
            }
        }
        match read_into(client, &mut req, deadline).await {
            Ok(n) if n > 0 => continue,
            Ok(_) | Err(ReadFailure::Io) if is_empty(&req) => return Next::Close,
            Ok(_) | Err(ReadFailure::Io) => {
                entry.termination = *b"CR";
                entry.request = "<BADREQ>".into();
                session.log(entry, started);
                return Next::Close;
            }
            Err(ReadFailure::Timeout) => {
                entry.termination = *b"cR";
                entry.request = "<BADREQ>".into();
                session
                    .frontend_state()
                    .request_timeouts
                    .fetch_add(1, Relaxed);
                Box::pin(answer_error(session, client, &mut entry, 408)).await;
                session.log(entry, started);
                return Next::Close;
            }
        }
    };
    entry.t_request = Some(started.elapsed());
    entry.request = std::mem::take(&mut request.line);
    // What goes to the server first: the head, and as much of the body as came with it.
    let mut body = BodyReader::new(request.body);
    let mut first_flight = std::mem::take(&mut request.upstream_head);
    let Some(buffer) = req.as_mut() else {
        unreachable_state();
        return Next::Close;
    };
    buffer.consume(request.head_len);
    match body.feed(buffer.filled(), |_| {}) {
        Ok(n) => {
            first_flight.extend_from_slice(&buffer.filled()[..n]);
            buffer.consume(n);
        }
        Err(error) => {
            debug!(
                "{}: bad request body from {}: {error}",
                session.frontend().name,
                session.peer
            );
            entry.termination = *b"PR";
            session.frontend_state().bad_requests.fetch_add(1, Relaxed);
            Box::pin(answer_error(session, client, &mut entry, 400)).await;
            session.log(entry, started);
            return Next::Close;
        }
    }
    entry.bytes_from_client = first_flight.len() as u64;
    session.frontend_state().requests.fetch_add(1, Relaxed);
    let Some(backend) = request.backend else {
        // No route matched and there is no default backend.
        entry.termination = *b"PR";
        Box::pin(answer_error(session, client, &mut entry, 503)).await;
        session.log(entry, started);
        return Next::Close;
    };
    session.note_backend(&mut entry, backend);
    if request.expect_continue {
        // The client waits for this before it sends the body; the server never sees `Expect`.
        if client
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
        {
            entry.termination = *b"CR";
            session.log(entry, started);
            return Next::Close;
        }
    }

    // Q and C: a server slot and a connection; once more on a fresh connection when a reused
    // idle one turns out to be closed before it answered anything.
    let mut allow_reuse = true;
    let (connected, res, response_started) = loop {
        // Steps that do not wait long are boxed, each in its own statement: the exchange's own
        // state is then what a request waiting minutes for its response needs, little more.
        let connecting = Box::pin(dispatch::connect(
            proxy,
            &session.worker.servers,
            backend,
            session.peer.ip(),
            allow_reuse,
        ));
        let mut connected = match connecting.await {
            Ok(connected) => connected,
            Err(error) => {
                Box::pin(dispatch_failed(session, client, &mut entry, error)).await;
                session.log(entry, started);
                return Next::Close;
            }
        };
        session.note_server(&mut entry, backend, connected.slot.server);
        entry.t_queue = Some(connected.queued);
        entry.t_connect = Some(connected.connecting);
        entry.retries = connected.retries;
        let sending = Box::pin(send_request(
            session,
            client,
            &mut connected,
            &first_flight,
            &mut body,
            &mut req,
            &mut entry,
        ));
        let sent = sending.await;
        let response_started = Instant::now();
        match sent {
            Ok(()) => {}
            Err(Failed::RetryFresh) if connected.reused && allow_reuse => {
                allow_reuse = false;
                continue;
            }
            Err(failed) => {
                Box::pin(failed.settle(session, client, &mut entry, &connected)).await;
                session.log(entry, started);
                return Next::Close;
            }
        }
        // H: the response head, within `timeout server`; a client that leaves meanwhile ends it.
        // No buffer is held while the server thinks (the story's requests sleep for minutes).
        if is_empty(&req) {
            req = None;
        }
        if !connected.reused {
            // Only a reused connection is retried: keep what it would resend, nothing else.
            first_flight = Vec::new();
        }
        let got = read_response_head(
            &connected.stream,
            client.socket(),
            request.is_head,
            proxy.config.backends[backend].timeouts.server,
        )
        .await;
        match got {
            Ok(res) => break (connected, res, response_started),
            Err(Failed::ServerClosed)
                if connected.reused
                    && allow_reuse
                    && !first_flight.is_empty()
                    && entry.bytes_from_client == first_flight.len() as u64 =>
            {
                allow_reuse = false;
                continue;
            }
            Err(failed) => {
                Box::pin(failed.settle(session, client, &mut entry, &connected)).await;
                session.log(entry, started);
                return Next::Close;
            }
        }
    };
    entry.t_response = Some(response_started.elapsed());

    // D: the response, head rewritten, body streamed as the server sends it.
    let mut connected = connected;
    let mut res = Some(res);
    let stopping = proxy.stopping.load(Relaxed);
    let Some(Head {
        status,
        then,
        server_keep_alive,
        response_body,
        out,
    }) = res
        .as_mut()
        .and_then(|res| client_head(res, &request, stopping))
    else {
        // read_response_head only returns a head that parses; this is not reached.
        unreachable_state();
        return Next::Close;
    };
    let upgrade = then == ClientConnection::Upgrade;
    entry.status = Some(status);
    count_status(session, &connected, status);
    session.frontend_state().responses.count(status);

    let client_timeout = session.frontend().timeouts.client;
    let server_timeout = proxy.config.backends[backend].timeouts.server;
    // The head and the body that came with it leave in one write: one send (one TLS record)
    // for a small response, not two.
    let mut out = out;
    let mut reader = BodyReader::new(response_body);
    if !upgrade {
        if let Some(arrived) = res.as_mut().filter(|b| !b.is_empty()) {
            match reader.feed(arrived.filled(), |_| {}) {
                Ok(n) => {
                    out.extend_from_slice(&arrived.filled()[..n]);
                    arrived.consume(n);
                }
                Err(_) => {
                    entry.termination = *b"PD";
                    connected
                        .slot
                        .state()
                        .response_failures
                        .fetch_add(1, Relaxed);
                    session.log(entry, started);
                    return Next::Close;
                }
            }
        }
    }
    let writing = Box::pin(write_with_timeout(client, &out, client_timeout));
    if writing.await.is_err() {
        entry.termination = *b"CD";
        session.log(entry, started);
        return Next::Close;
    }
    entry.bytes_to_client += out.len() as u64;
    drop(out);

    if upgrade {
        // Both ways now, under `timeout tunnel` (or the longer of client and server). First
        // what each side sent early, after the heads.
        if let Some(early) = res.take().filter(|b| !b.is_empty()) {
            if write_with_timeout(client, early.filled(), client_timeout)
                .await
                .is_err()
            {
                entry.termination = *b"CD";
                session.log(entry, started);
                return Next::Close;
            }
            entry.bytes_to_client += early.filled().len() as u64;
        }
        if let Some(early) = req.take().filter(|b| !b.is_empty()) {
            if connected.stream.write_all(early.filled()).await.is_err() {
                entry.termination = *b"SD";
                session.log(entry, started);
                return Next::Close;
            }
        }
        let idle = proxy.config.backends[backend]
            .timeouts
            .tunnel
            .unwrap_or(client_timeout.max(server_timeout));
        let tunnel = Box::pin(relay::run(client, &mut connected.stream, idle));
        let tunnel = tunnel.await;
        entry.bytes_to_client += tunnel.to_client;
        entry.bytes_from_client += tunnel.to_server;
        entry.termination = tunnel.ending.termination();
        session.count_bytes(&connected, tunnel.to_server, tunnel.to_client);
        session.log(entry, started);
        return Next::Close;
    }

    let streaming = Box::pin(stream_body(
        &mut connected.stream,
        client,
        &mut res,
        &mut reader,
        server_timeout,
        client_timeout,
    ));
    let streamed = streaming.await;
    entry.bytes_to_client += streamed.bytes;
    session.count_bytes(&connected, entry.bytes_from_client, entry.bytes_to_client);
    if let Some(termination) = streamed.failure {
        entry.termination = termination;
        if termination[0] == b'S' {
            connected
                .slot
                .state()
                .response_failures
                .fetch_add(1, Relaxed);
        } else if termination[0] == b's' {
            connected.slot.state().timeouts.fetch_add(1, Relaxed);
        }
        session.log(entry, started);
        return Next::Close;
    }
    let _ = client.flush().await;

    // Done: the server connection waits for the next request; the client's may carry one.
    let Connected { slot, stream, .. } = connected;
    if server_keep_alive
        && reader.is_done()
        && !streamed.extra
        && response_body != BodyLength::UntilClose
    {
        let max = proxy.config.backends[backend].max_idle_per_server;
        session
            .worker
            .servers
            .keep(backend, slot.server, stream, max);
    }
    drop(slot);
    session.log(entry, started);
    match then {
        ClientConnection::KeepAlive => Next::KeepAlive(req.filter(|b| !b.is_empty())),
        _ => Next::Close,
    }
}

/// Parses the head in `req`; `Err(status)` for a request to refuse.
fn parse(session: &Session, client: &ClientStream, req: &Buffer) -> Result<Option<Request>, u16> {
    let mut slots = http1::header_slots();
    let head = match http1::parse_request(req.filled(), &mut slots, &LIMITS) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(None),
        Err(error) => {
            debug!(
                "{}: bad request from {}: {}",
                session.frontend().name,
                session.peer,
                error.reason()
            );
            return Err(error.status());
        }
    };
    if head.version == Version::Http11 && head.header("host").is_none() {
        debug!(
            "{}: bad request from {}: no Host",
            session.frontend().name,
            session.peer
        );
        return Err(400);
    }
    let upgrade = http1::header_tokens(head.headers, "connection")
        .any(|t| t.eq_ignore_ascii_case(b"upgrade"))
        .then(|| head.header("upgrade").map(|u| u.to_vec()))
        .flatten();
    let frontend = session.frontend();
    let forward = Forward {
        client: session.peer.ip(),
        tls: client.is_tls(),
        forwardfor: frontend.forwardfor,
        forwarded: frontend.forwarded,
        upgrade: upgrade.clone(),
    };
    let mut upstream_head = Vec::with_capacity(head.head_len + 128);
    rewrite::request(&mut upstream_head, &head, &forward);
    let minor = if head.version == Version::Http10 {
        0
    } else {
        1
    };
    let mut line = format!("{} {} HTTP/1.{minor}", head.method, head.target);
    if line.len() > 1024 {
        let mut cut = 1024;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    let request = Request {
        upstream_head,
        line,
        body: head.body,
        version: head.version,
        keep_alive: head.keep_alive,
        upgrade: upgrade.is_some(),
        is_head: head.method == "HEAD",
        expect_continue: head.expect_continue,
        backend: route::backend(
            &frontend.routes,
            frontend.default_backend,
            &route::destination(head.target, head.header("host")),
        ),
        head_len: head.head_len,
    };
    Ok(Some(request))
}

enum ReadFailure {
    Timeout,
    Io,
}

fn is_empty(buffer: &Option<Buffer>) -> bool {
    buffer.as_ref().is_none_or(Buffer::is_empty)
}

/// A state the code's own logic rules out. Logged, never a panic: the connection just closes.
fn unreachable_state() {
    tracing::error!(
        "internal error: an HTTP exchange reached a state it cannot be in; closing the connection"
    );
}

/// A socket that can be waited on without a buffer, then read without waiting.
trait Readable {
    fn socket(&self) -> &TcpStream;
    /// Whether bytes can be read without waiting for the socket (TLS has some decrypted).
    fn has_pending(&mut self) -> io::Result<bool>;
    fn try_read_now(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

impl Readable for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
    fn has_pending(&mut self) -> io::Result<bool> {
        Ok(false)
    }
    fn try_read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        throng_net::sockets::read_now(self, buf)
    }
}

impl Readable for ClientStream {
    fn socket(&self) -> &TcpStream {
        ClientStream::socket(self)
    }
    fn has_pending(&mut self) -> io::Result<bool> {
        ClientStream::has_pending(self)
    }
    fn try_read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_read(buf)
    }
}

/// Waits until the socket is readable or the deadline passes. The wait lives in the socket's
/// readiness slot: no future per wait beyond the timer.
async fn wait_socket(
    socket: &TcpStream,
    mut deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Result<(), ReadFailure> {
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(ready) = socket.poll_read_ready(cx) {
            return std::task::Poll::Ready(ready.map_err(|_| ReadFailure::Io));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(ReadFailure::Timeout));
        }
        std::task::Poll::Pending
    })
    .await
}

/// Waits until `from` has something to read, or `deadline`.
async fn wait_readable<R: Readable>(from: &mut R, deadline: Instant) -> Result<(), ReadFailure> {
    if from.has_pending().map_err(|_| ReadFailure::Io)? {
        return Ok(());
    }
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    wait_socket(from.socket(), sleep).await
}

/// Waits (holding no buffer) until `from` has bytes, then reads them into `buffer`, taking one
/// from the pool if it has none; 0 at the end of the stream.
async fn read_into<R: Readable>(
    from: &mut R,
    buffer: &mut Option<Buffer>,
    deadline: Instant,
) -> Result<usize, ReadFailure> {
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    loop {
        if is_empty(buffer) {
            *buffer = None;
        }
        if !from.has_pending().map_err(|_| ReadFailure::Io)? {
            wait_socket(from.socket(), sleep.as_mut()).await?;
        }
        let filled = buffer.get_or_insert_with(Buffer::take);
        let spare = filled.spare();
        if spare.is_empty() {
            return Ok(0);
        }
        match from.try_read_now(spare) {
            Ok(n) => {
                filled.end += n;
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(ReadFailure::Io),
        }
    }
}

/// The response head as the client gets it, and what the exchange needs to know of it.
struct Head {
    status: u16,
    then: ClientConnection,
    server_keep_alive: bool,
    response_body: BodyLength,
    out: Vec<u8>,
}

/// Parses the response head at the start of `res`, consumes it and writes the client's version.
fn client_head(res: &mut Buffer, request: &Request, stopping: bool) -> Option<Head> {
    let mut slots = http1::header_slots();
    let head = http1::parse_response(res.filled(), &mut slots, &LIMITS, request.is_head)
        .ok()
        .flatten()?;
    let upgrade = head.status == 101 && request.upgrade;
    let then = if upgrade {
        ClientConnection::Upgrade
    } else if request.keep_alive && head.body != BodyLength::UntilClose && !stopping {
        ClientConnection::KeepAlive
    } else {
        ClientConnection::Close
    };
    let mut out = Vec::with_capacity(head.head_len + 64);
    rewrite::response(&mut out, &head, request.version, then);
    let parsed = Head {
        status: head.status,
        then,
        server_keep_alive: head.keep_alive && !upgrade,
        response_body: head.body,
        out,
    };
    let head_len = head.head_len;
    res.consume(head_len);
    Some(parsed)
}

async fn write_with_timeout<W: AsyncWrite + Unpin>(
    to: &mut W,
    data: &[u8],
    limit: Duration,
) -> io::Result<()> {
    match tokio::time::timeout(limit, async {
        to.write_all(data).await?;
        to.flush().await
    })
    .await
    {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// How an exchange failed after a server was chosen.
enum Failed {
    /// Writing to a reused idle connection failed at once: it was closed; try a fresh one.
    RetryFresh,
    /// The client left or failed: nobody to answer. The termination state says when.
    ClientGone([u8; 2]),
    /// The client stopped sending its body for `timeout client`.
    ClientTimeout,
    /// The server closed or reset before its response head: 502.
    ServerClosed,
    /// The server did not answer within `timeout server`: 504.
    ServerTimeout,
    /// The server's answer is not HTTP: 502.
    BadResponse,
}

impl Failed {
    /// Answers the client as HAProxy would and notes the termination state and counters.
    async fn settle(
        self,
        session: &Session,
        client: &mut ClientStream,
        entry: &mut Entry,
        connected: &Connected,
    ) {
        let server = connected.slot.state();
        let (termination, status) = match self {
            Failed::RetryFresh | Failed::ServerClosed => {
                server.response_failures.fetch_add(1, Relaxed);
                (*b"SH", Some(502))
            }
            Failed::ServerTimeout => {
                server.timeouts.fetch_add(1, Relaxed);
                (*b"sH", Some(504))
            }
            Failed::BadResponse => {
                server.response_failures.fetch_add(1, Relaxed);
                (*b"PH", Some(502))
            }
            Failed::ClientGone(state) => (state, None),
            Failed::ClientTimeout => (*b"cD", Some(408)),
        };
        entry.termination = termination;
        if let Some(status) = status {
            count_status(session, connected, status);
            answer_error(session, client, entry, status).await;
        }
    }
}

/// Sends the request's first flight, then streams the rest of its body from the client.
#[allow(clippy::too_many_arguments)]
async fn send_request(
    session: &Session,
    client: &mut ClientStream,
    connected: &mut Connected,
    first_flight: &[u8],
    body: &mut BodyReader,
    req: &mut Option<Buffer>,
    entry: &mut Entry,
) -> Result<(), Failed> {
    let backend = &session.proxy().config.backends[connected.slot.backend];
    let server_timeout = backend.timeouts.server;
    let client_timeout = session.frontend().timeouts.client;
    if write_with_timeout(&mut connected.stream, first_flight, server_timeout)
        .await
        .is_err()
    {
        return Err(if connected.reused {
            Failed::RetryFresh
        } else {
            Failed::ServerClosed
        });
    }
    while !body.is_done() {
        match read_into(client, req, Instant::now() + client_timeout).await {
            Ok(0) | Err(ReadFailure::Io) => return Err(Failed::ClientGone(*b"CD")),
            Err(ReadFailure::Timeout) => return Err(Failed::ClientTimeout),
            Ok(_) => {}
        }
        let Some(filled) = req.as_mut() else {
            continue;
        };
        let n = body
            .feed(filled.filled(), |_| {})
            .map_err(|_| Failed::ClientGone(*b"PR"))?;
        if write_with_timeout(&mut connected.stream, &filled.filled()[..n], server_timeout)
            .await
            .is_err()
        {
            return Err(Failed::ServerClosed);
        }
        entry.bytes_from_client += n as u64;
        filled.consume(n);
    }
    Ok(())
}

/// Reads the final response head (informational 1xx responses other than 101 are dropped: the
/// proxy answered `Expect` itself). A buffer is taken only once the server sends something.
async fn read_response_head(
    server: &TcpStream,
    client: &TcpStream,
    request_was_head: bool,
    limit: Duration,
) -> Result<Buffer, Failed> {
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut watch_client = true;
    let mut res: Option<Buffer> = None;
    loop {
        if let Some(filled) = res.as_mut() {
            let mut slots = http1::header_slots();
            match http1::parse_response(filled.filled(), &mut slots, &LIMITS, request_was_head) {
                Ok(Some(head)) if (100..200).contains(&head.status) && head.status != 101 => {
                    let len = head.head_len;
                    filled.consume(len);
                    continue;
                }
                Ok(Some(_)) => return res.ok_or(Failed::BadResponse),
                Ok(None) => {}
                Err(_) => return Err(Failed::BadResponse),
            }
        }
        if is_empty(&res) {
            res = None;
        }
        wait_for_server(server, client, &mut watch_client, deadline.as_mut()).await?;
        let filled = res.get_or_insert_with(Buffer::take);
        let spare = filled.spare();
        if spare.is_empty() {
            return Err(Failed::BadResponse);
        }
        match throng_net::sockets::read_now(server, spare) {
            Ok(0) => return Err(Failed::ServerClosed),
            Ok(n) => filled.end += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(Failed::ServerClosed),
        }
    }
}

/// Waits until the server has something to read, with no buffer and no future of its own per
/// socket: the wait registers in the sockets' readiness slots. A client that closes meanwhile
/// ends the wait (`CH`); one that sends data is left alone (that data is for later).
async fn wait_for_server(
    server: &TcpStream,
    client: &TcpStream,
    watch_client: &mut bool,
    mut deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Result<(), Failed> {
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(ready) = server.poll_read_ready(cx) {
            return std::task::Poll::Ready(ready.map_err(|_| Failed::ServerClosed));
        }
        if *watch_client && client.poll_read_ready(cx).is_ready() {
            let mut probe = [0u8; 1];
            let mut probe = tokio::io::ReadBuf::new(&mut probe);
            match client.poll_peek(cx, &mut probe) {
                std::task::Poll::Ready(Ok(0)) | std::task::Poll::Ready(Err(_)) => {
                    return std::task::Poll::Ready(Err(Failed::ClientGone(*b"CH")))
                }
                std::task::Poll::Ready(Ok(_)) => *watch_client = false,
                std::task::Poll::Pending => {}
            }
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(Failed::ServerTimeout));
        }
        std::task::Poll::Pending
    })
    .await
}

struct Streamed {
    bytes: u64,
    failure: Option<[u8; 2]>,
    /// The server sent more than its response: its connection cannot be reused.
    extra: bool,
}

/// Streams a response body from the server to the client as it arrives, framing and all.
async fn stream_body(
    server: &mut TcpStream,
    client: &mut ClientStream,
    res: &mut Option<Buffer>,
    reader: &mut BodyReader,
    server_timeout: Duration,
    client_timeout: Duration,
) -> Streamed {
    let mut streamed = Streamed {
        bytes: 0,
        failure: None,
        extra: false,
    };
    loop {
        if let Some(res) = res.as_mut().filter(|b| !b.is_empty()) {
            let n = match reader.feed(res.filled(), |_| {}) {
                Ok(n) => n,
                Err(_) => {
                    streamed.failure = Some(*b"PD");
                    return streamed;
                }
            };
            if n > 0 {
                if write_with_timeout(client, &res.filled()[..n], client_timeout)
                    .await
                    .is_err()
                {
                    streamed.failure = Some(*b"CD");
                    return streamed;
                }
                streamed.bytes += n as u64;
                res.consume(n);
            }
            if reader.is_done() {
                streamed.extra = !res.is_empty();
                return streamed;
            }
        }
        if reader.is_done() {
            return streamed;
        }
        match read_into(server, res, Instant::now() + server_timeout).await {
            Ok(0) if matches!(reader, BodyReader::UntilClose) => {
                *reader = BodyReader::Done;
                return streamed;
            }
            Ok(0) | Err(ReadFailure::Io) => {
                streamed.failure = Some(*b"SD");
                return streamed;
            }
            Err(ReadFailure::Timeout) => {
                streamed.failure = Some(*b"sD");
                return streamed;
            }
            Ok(_) => {}
        }
    }
}

/// Sends the proxy's own error response; the connection closes after it.
async fn answer_error(
    session: &Session,
    client: &mut ClientStream,
    entry: &mut Entry,
    status: u16,
) {
    let response = rewrite::error_response(status);
    entry.status = Some(status);
    session.frontend_state().responses.count(status);
    let limit = session
        .frontend()
        .timeouts
        .client
        .min(Duration::from_secs(5));
    if write_with_timeout(client, &response, limit).await.is_ok() {
        entry.bytes_to_client += response.len() as u64;
    }
}

async fn dispatch_failed(
    session: &Session,
    client: &mut ClientStream,
    entry: &mut Entry,
    error: DispatchError,
) {
    if let Some(backend) = entry.backend_index {
        session.note_dispatch_failure(entry, backend, error);
        session.proxy().backends[backend].responses.count(503);
    }
    answer_error(session, client, entry, 503).await;
}

/// Counts a status for the backend and server (the frontend counts what the client gets).
fn count_status(session: &Session, connected: &Connected, status: u16) {
    session.proxy().backends[connected.slot.backend]
        .responses
        .count(status);
    connected.slot.state().responses.count(status);
}
