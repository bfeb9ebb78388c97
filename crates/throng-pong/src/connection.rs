//! One connection's life, as an explicit state machine: wait for a request head, answer it
//! (sleeping as asked), again while the client keeps the connection alive, then close.
//!
//! Memory is the point. The task of a connection is one loop with one await: it asks the
//! [`Connection`] what to wait for (readable, writable, or only the timer, and until when),
//! waits, and hands back what happened. Every decision is synchronous code on the struct, so
//! between wake-ups a connection holds exactly its fields, one timer and a two-reference future:
//! no nested async frames. Bytes are read into the thread's scratch buffer; only a head that
//! arrives in pieces (or a pipelined one) is copied into a buffer of the connection's own, freed
//! once parsed, and output the socket does not take at once is the only other buffer it keeps.
//! Request bodies are read and dropped.

use crate::metrics::{ListenerStats, TimeoutKind};
use crate::request::{interpret, PongRequest};
use crate::server::Worker;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use throng_http1::{self as http1, write, BodyReader};
use throng_net::random;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

/// After a response that ends the connection, how long unread input is drained before closing,
/// so that the kernel does not reset the connection and destroy the response in flight.
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes drained while lingering.
const LINGER_BYTES: usize = 256 * 1024;

pub(crate) async fn serve(stream: TcpStream, listener: Arc<ListenerStats>, worker: Rc<Worker>) {
    let mut connection = Connection {
        stream,
        counted: Counted(Arc::clone(&listener)),
        listener,
        worker,
        inbuf: Vec::new(),
        outbuf: Vec::new(),
        body: BodyReader::Done,
        phase: Phase::Head { started: None },
        last_activity: Instant::now(),
        in_progress: None,
        tls: None,
    };
    if let Some(config) = &connection.worker.shared.config.tls {
        match rustls::ServerConnection::new(std::sync::Arc::clone(config)) {
            Ok(session) => connection.tls = Some(Box::new(session)),
            Err(error) => return connection.end(End::Tls(error.to_string())),
        }
    }
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    while let Some((interest, deadline)) = connection.next_wait() {
        timer.as_mut().reset(deadline);
        match wait(&connection.stream, timer.as_mut(), interest).await {
            Ok(Wake::Ready) => connection.on_ready(interest),
            Ok(Wake::Timer) => connection.on_timer(),
            Err(error) => connection.end(End::Io(error)),
        }
        if connection.chose_h2() && matches!(connection.phase, Phase::Head { .. }) {
            // The handshake chose h2: the h2 side takes the session, what was read past it
            // and the connection's count (what TLS still has to send goes with its first write).
            let Connection {
                stream,
                tls: Some(tls),
                inbuf,
                listener,
                worker,
                counted,
                ..
            } = connection
            else {
                return;
            };
            let transport = crate::h2::Transport::Tls(stream, tls);
            // Boxed: only the connections that chose h2 carry that future.
            return Box::pin(crate::h2::serve(
                transport, inbuf, listener, worker, counted,
            ))
            .await;
        }
    }
}

/// Where a connection is in its life.
enum Phase {
    /// Waiting for a request head: idle until its first byte, then under the header timeout.
    Head {
        started: Option<Instant>,
    },
    /// Answering `request`: the next `pong` is due at `due`, `left` are still to come.
    Respond {
        request: PongRequest,
        due: Instant,
        left: u64,
        head_sent: bool,
    },
    /// Our last byte is queued; drain what the client still sends until `until`, then close.
    Linger {
        until: Instant,
        drained: usize,
        shut: bool,
    },
    Closed,
}

/// Why a connection ends.
enum End {
    /// The last response is out and the connection is not kept alive.
    Finished,
    /// The client closed: between requests, or giving up on a response.
    ClientClosed {
        mid_response: bool,
    },
    Timeout(TimeoutKind),
    /// A request pong refuses; `reason` goes into the log and the response body.
    Rejected {
        status: u16,
        reason: String,
    },
    Io(io::Error),
    /// A TLS handshake or record failed.
    Tls(String),
}

struct Connection {
    stream: TcpStream,
    listener: Arc<ListenerStats>,
    worker: Rc<Worker>,
    /// Bytes of a head that arrived in pieces, or of pipelined requests. Usually empty (no heap).
    inbuf: Vec<u8>,
    /// Output the socket did not take at once. Usually empty (no heap).
    outbuf: Vec<u8>,
    /// The body of the current request, being read and dropped.
    body: BodyReader,
    phase: Phase,
    /// The last time a byte was read or written.
    last_activity: Instant,
    /// Held while a response is in progress.
    in_progress: Option<InProgress>,
    /// The TLS session, when pong serves TLS. Its pending output stays in it until written.
    tls: Option<Box<rustls::ServerConnection>>,
    counted: Counted,
}

/// Feeds TLS records to `tls` and appends the plaintext they carry to `plaintext`; `Ok(true)`
/// when the client sent close_notify. Both protocols' connections read TLS through it.
pub(crate) fn decrypt(
    tls: &mut rustls::ServerConnection,
    mut input: &[u8],
    plaintext: &mut Vec<u8>,
) -> Result<bool, String> {
    while !input.is_empty() {
        tls.read_tls(&mut input).map_err(|e| e.to_string())?;
        tls.process_new_packets().map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 4096];
        loop {
            match io::Read::read(&mut tls.reader(), &mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => plaintext.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(false)
}

/// One of a listener's open connections, counted until it is dropped, whichever protocol
/// serves it (a TLS connection handed to HTTP/2 takes it along).
pub(crate) struct Counted(pub(crate) Arc<ListenerStats>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// The TLS handshake is done and ALPN chose h2 (pong offers it with `--http2`).
    fn chose_h2(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|tls| !tls.is_handshaking() && tls.alpn_protocol() == Some(b"h2"))
    }

    /// What to wait for next, and until when; `None` once the connection is closed.
    fn next_wait(&self) -> Option<(Interest, Instant)> {
        let config = &self.worker.shared.config;
        if self.output_pending() {
            return Some((Interest::Write, self.last_activity + config.timeout));
        }
        match self.phase {
            Phase::Head { started: None } => {
                Some((Interest::Read, self.last_activity + config.timeout))
            }
            Phase::Head {
                started: Some(started),
            } => Some((Interest::Read, started + config.header_timeout)),
            Phase::Respond { due, .. } => {
                // Keep reading: the body, the next pipelined head (up to the head limit), or
                // the close of a client that gave up.
                let want_read =
                    !self.body.is_done() || self.inbuf.len() < config.limits.max_head_bytes;
                let interest = if want_read {
                    Interest::Read
                } else {
                    Interest::None
                };
                Some((interest, due.min(self.last_activity + config.timeout)))
            }
            Phase::Linger { until, .. } => Some((Interest::Read, until)),
            Phase::Closed => None,
        }
    }

    fn on_ready(&mut self, interest: Interest) {
        match interest {
            Interest::Write => self.flush(),
            Interest::Read => match self.phase {
                Phase::Linger { .. } => self.drain(),
                _ => self.read_some(),
            },
            Interest::None => {}
        }
    }

    fn on_timer(&mut self) {
        let config = &self.worker.shared.config;
        if self.output_pending() {
            return self.end(End::Timeout(TimeoutKind::Response));
        }
        match self.phase {
            Phase::Head { started: None } => self.end(End::Timeout(TimeoutKind::Idle)),
            Phase::Head { started: Some(_) } => self.end(End::Timeout(TimeoutKind::Header)),
            Phase::Respond { due, .. } if due <= self.last_activity + config.timeout => self.pong(),
            Phase::Respond { .. } => self.end(End::Timeout(TimeoutKind::Response)),
            Phase::Linger { .. } | Phase::Closed => self.phase = Phase::Closed,
        }
    }

    /// Reads what the socket has into the thread's scratch buffer: body bytes are dropped, the
    /// rest is kept for the next head, which is parsed as soon as it is whole.
    fn read_some(&mut self) {
        let worker = Rc::clone(&self.worker);
        let mut scratch = worker.scratch.borrow_mut();
        let n = match self.stream.try_read(&mut scratch[..]) {
            Ok(0) => {
                let mid_response = matches!(self.phase, Phase::Respond { .. });
                return self.end(End::ClientClosed { mid_response });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => return self.end(End::Io(e)),
        };
        self.last_activity = Instant::now();
        self.listener
            .bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
        if self.tls.is_none() {
            return self.take_plaintext(&scratch[..n]);
        }
        let mut plaintext = worker.plaintext.borrow_mut();
        plaintext.clear();
        match self.decrypt(&scratch[..n], &mut plaintext) {
            Ok(closed) => {
                self.take_plaintext(&plaintext);
                self.flush(); // handshake messages, alerts
                if closed && !matches!(self.phase, Phase::Linger { .. } | Phase::Closed) {
                    let mid_response = matches!(self.phase, Phase::Respond { .. });
                    self.end(End::ClientClosed { mid_response });
                }
            }
            Err(reason) => {
                self.flush(); // the alert that says why
                self.end(End::Tls(reason));
            }
        }
    }

    /// Feeds TLS records to the session and collects the plaintext they carry; `Ok(true)` when
    /// the client sent close_notify.
    fn decrypt(&mut self, input: &[u8], plaintext: &mut Vec<u8>) -> Result<bool, String> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(false);
        };
        if decrypt(tls, input, plaintext)? {
            return Ok(true);
        }
        if self.tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
            if let Phase::Head { started } = &mut self.phase {
                // A handshake in progress is a head in progress: the header timeout applies.
                started.get_or_insert(self.last_activity);
            }
        }
        Ok(false)
    }

    /// Takes request bytes: the body's are dropped, the rest kept for the next head, which is
    /// parsed as soon as it is whole.
    fn take_plaintext(&mut self, fresh: &[u8]) {
        if fresh.is_empty() {
            return;
        }
        if self.chose_h2() {
            // HTTP/2's preface and frames, for the h2 side this connection goes to next.
            return self.inbuf.extend_from_slice(fresh);
        }
        let body_bytes = match self.body.feed(fresh, |_| {}) {
            Ok(n) => n,
            Err(error) => return self.end(bad_body(error)),
        };
        self.inbuf.extend_from_slice(&fresh[body_bytes..]);
        if let Phase::Head { started } = &mut self.phase {
            if !self.inbuf.is_empty() && self.body.is_done() {
                started.get_or_insert(self.last_activity);
            }
            self.start_next_request();
        }
    }

    /// Starts answering the head at the start of `inbuf`, if it is whole.
    fn start_next_request(&mut self) {
        if !self.body.is_done() || self.inbuf.is_empty() {
            return;
        }
        let limits = self.worker.shared.config.limits;
        let mut slots = http1::header_slots();
        let (request, head_len) = match http1::parse_request(&self.inbuf, &mut slots, &limits) {
            Ok(None) => return,
            Ok(Some(head)) => {
                self.listener.requests.fetch_add(1, Ordering::Relaxed);
                match interpret(&head) {
                    Ok(request) => (request, head.head_len),
                    Err(reason) => {
                        return self.end(End::Rejected {
                            status: 400,
                            reason,
                        })
                    }
                }
            }
            Err(error) => {
                let reason = format!("{}\n", error.reason());
                return self.end(End::Rejected {
                    status: error.status(),
                    reason,
                });
            }
        };
        self.body = BodyReader::new(request.body);
        let mut inbuf = std::mem::take(&mut self.inbuf);
        let body_bytes = match self.body.feed(&inbuf[head_len..], |_| {}) {
            Ok(n) => n,
            Err(error) => return self.end(bad_body(error)),
        };
        inbuf.drain(..head_len + body_bytes);
        if !inbuf.is_empty() {
            self.inbuf = inbuf; // a pipelined request: keep it (otherwise the buffer is freed)
        }

        self.in_progress = Some(InProgress::enter(&self.worker));
        if request.expect_continue && !self.body.is_done() {
            self.queue(write::CONTINUE);
        }
        let now = Instant::now();
        let start = self
            .worker
            .shared
            .pacer
            .as_ref()
            .map_or(now, |pacer| pacer.reserve(now));
        self.phase = Phase::Respond {
            request,
            due: start + random_wait(request.sleep_min_ms, request.sleep_ms),
            left: request.times.saturating_add(1),
            head_sent: false,
        };
    }

    /// Writes the `pong` that is due; after the last one, ends the response.
    fn pong(&mut self) {
        let Phase::Respond {
            request,
            due,
            left,
            head_sent,
        } = &mut self.phase
        else {
            return;
        };
        *left -= 1;
        let last = *left == 0 || request.head_only;
        let close = !request.keep_alive
            || request.http10
            || self.worker.shared.stopping.load(Ordering::Relaxed);
        let (request, first) = (*request, !*head_sent);
        *head_sent = true;
        *due = Instant::now() + random_wait(request.sleep_min_ms, request.sleep_ms);
        let worker = Rc::clone(&self.worker);
        let mut out = worker.out.borrow_mut();
        out.clear();
        write_pong(&mut out, &request, &self.listener, first, last, close);
        self.queue(&out);
        drop(out);
        if !last || matches!(self.phase, Phase::Linger { .. } | Phase::Closed) {
            return;
        }
        self.in_progress = None;
        if close {
            return self.end(End::Finished);
        }
        // A pipelined head may be waiting already, whole or in part.
        let started = (!self.inbuf.is_empty()).then(Instant::now);
        self.phase = Phase::Head { started };
        self.start_next_request();
    }

    /// Writes `bytes` now as far as the socket takes them; keeps the rest for [`Self::flush`].
    /// With TLS, the bytes are encrypted and what is not written stays in the session.
    fn queue(&mut self, bytes: &[u8]) {
        if let Some(tls) = self.tls.as_mut() {
            if let Err(error) = io::Write::write_all(&mut tls.writer(), bytes) {
                return self.end(End::Io(error));
            }
            return self.flush();
        }
        if !self.outbuf.is_empty() {
            self.outbuf.extend_from_slice(bytes);
            return;
        }
        let written = match self.stream.try_write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return self.end(End::Io(e)),
        };
        self.note_sent(written);
        self.outbuf.extend_from_slice(&bytes[written..]);
    }

    fn output_pending(&self) -> bool {
        !self.outbuf.is_empty() || self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Writes pending output; once it is all out, a lingering close may half-close.
    fn flush(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                match tls.write_tls(&mut throng_tls::config::Socket(&self.stream)) {
                    Ok(n) => {
                        self.last_activity = Instant::now();
                        self.listener
                            .bytes_out
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) => return self.end(End::Io(e)),
                }
            }
        } else {
            match self.stream.try_write(&self.outbuf) {
                Ok(n) => {
                    self.note_sent(n);
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return self.end(End::Io(e)),
            }
        }
        if !self.output_pending() {
            self.outbuf = Vec::new();
            self.half_close_if_lingering();
        }
    }

    fn note_sent(&mut self, bytes: usize) {
        if bytes > 0 {
            self.last_activity = Instant::now();
            self.listener
                .bytes_out
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Ends the connection: counts and logs why, answers a refused request or a slow head with
    /// its status, and closes without losing a response still in flight.
    fn end(&mut self, end: End) {
        if matches!(self.phase, Phase::Linger { .. } | Phase::Closed) {
            self.phase = Phase::Closed;
            return;
        }
        let metrics = &self.worker.shared.metrics;
        let mid_response = matches!(
            self.phase,
            Phase::Respond {
                head_sent: true,
                ..
            }
        );
        self.in_progress = None;
        let answer = match end {
            End::Finished => None,
            End::ClientClosed { mid_response } => {
                if mid_response {
                    // As Node's server does: a client that hangs up gives up its response.
                    metrics.responses_abandoned.fetch_add(1, Ordering::Relaxed);
                }
                self.phase = Phase::Closed;
                return;
            }
            End::Io(error) => {
                debug!("{} <- {}: {error}", self.listener.addr, self.peer());
                self.phase = Phase::Closed;
                return;
            }
            End::Tls(reason) => {
                metrics.tls_failures.fetch_add(1, Ordering::Relaxed);
                debug!("{} <- {}: TLS: {reason}", self.listener.addr, self.peer());
                self.phase = Phase::Closed;
                return;
            }
            End::Timeout(kind) => {
                metrics.count_timeout(kind);
                let config = &self.worker.shared.config;
                if kind != TimeoutKind::Header {
                    debug!(
                        "{} <- {}: closed, no bytes moved within the {} timeout ({})",
                        self.listener.addr,
                        self.peer(),
                        kind.name(),
                        throng_net::duration::format(config.timeout)
                    );
                    self.phase = Phase::Closed;
                    return;
                }
                info!(
                    "{} <- {}: 408, request head not received within the header timeout ({})",
                    self.listener.addr,
                    self.peer(),
                    throng_net::duration::format(config.header_timeout)
                );
                metrics.count_rejected(408);
                Some((408, "request head not received in time\n".to_string()))
            }
            End::Rejected { status, reason } => {
                metrics.count_rejected(status);
                warn!(
                    "{} <- {}: {status}, {}",
                    self.listener.addr,
                    self.peer(),
                    reason.trim_end()
                );
                Some((status, reason))
            }
        };
        if let Some((status, reason)) = answer {
            if mid_response {
                // The status line is long gone: closing is all that is left.
                self.phase = Phase::Closed;
                return;
            }
            let mut response = Vec::new();
            write::text_response(&mut response, status, &reason, false);
            self.queue(&response);
            if matches!(self.phase, Phase::Closed) {
                return;
            }
        }
        self.phase = Phase::Linger {
            until: Instant::now() + LINGER,
            drained: 0,
            shut: false,
        };
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            self.flush();
        }
        self.half_close_if_lingering();
    }

    /// Half-closes once the last output is out: closing with unread input would make the kernel
    /// send a reset, which can destroy the response in flight, so input is drained for a while.
    fn half_close_if_lingering(&mut self) {
        let pending = self.output_pending();
        if let Phase::Linger { shut, .. } = &mut self.phase {
            if !*shut && !pending {
                *shut = true;
                if socket2::SockRef::from(&self.stream)
                    .shutdown(std::net::Shutdown::Write)
                    .is_err()
                {
                    self.phase = Phase::Closed;
                }
            }
        }
    }

    /// Reads and drops input while lingering, up to a limit.
    fn drain(&mut self) {
        let worker = Rc::clone(&self.worker);
        let mut scratch = worker.scratch.borrow_mut();
        let read = self.stream.try_read(&mut scratch[..]);
        let Phase::Linger { drained, .. } = &mut self.phase else {
            return;
        };
        match read {
            Ok(n) if n > 0 && *drained + n < LINGER_BYTES => *drained += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => self.phase = Phase::Closed,
        }
    }

    fn peer(&self) -> String {
        self.stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string())
    }
}

/// Counts a response in progress, on this thread (for the graceful stop) and in the metrics.
pub(crate) struct InProgress(Rc<Worker>);

impl InProgress {
    pub(crate) fn enter(worker: &Rc<Worker>) -> InProgress {
        worker.in_progress.set(worker.in_progress.get() + 1);
        worker
            .shared
            .metrics
            .responses_in_progress
            .fetch_add(1, Ordering::Relaxed);
        InProgress(Rc::clone(worker))
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.in_progress.set(self.0.in_progress.get() - 1);
        self.0
            .shared
            .metrics
            .responses_in_progress
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection waits for besides its timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interest {
    Read,
    Write,
    None,
}

/// What ended a [`wait`].
enum Wake {
    /// The socket is ready for the interest waited on.
    Ready,
    Timer,
}

/// Waits until the socket is ready (readable or writable, as asked) or the timer fires.
///
/// This is `select!` over `readable()` and the timer, done with the `poll_*_ready` API, which
/// keeps the waker in the socket's registration rather than in a waiter node inside this future:
/// it holds two references, where `readable()` alone is several times that.
fn wait<'a>(
    stream: &'a TcpStream,
    mut timer: Pin<&'a mut Sleep>,
    interest: Interest,
) -> impl Future<Output = io::Result<Wake>> + 'a {
    std::future::poll_fn(move |cx| {
        let ready = match interest {
            Interest::Read => stream.poll_read_ready(cx),
            Interest::Write => stream.poll_write_ready(cx),
            Interest::None => Poll::Pending,
        };
        if let Poll::Ready(result) = ready {
            return Poll::Ready(result.map(|()| Wake::Ready));
        }
        timer.as_mut().poll(cx).map(|()| Ok(Wake::Timer))
    })
}

fn random_wait(min_ms: u64, max_ms: u64) -> Duration {
    Duration::from_millis(min_ms + random::up_to(max_ms - min_ms))
}

fn bad_body(error: http1::ChunkedError) -> End {
    End::Rejected {
        status: 400,
        reason: format!("bad request body: {error}\n"),
    }
}

/// One step of the answer: the head before the first `pong`, each `pong` as a chunk, and the
/// last chunk after the last. HTTP/1.0 gets plain bytes and the connection's close as the end.
fn write_pong(
    out: &mut Vec<u8>,
    request: &PongRequest,
    listener: &ListenerStats,
    first: bool,
    last: bool,
    close: bool,
) {
    if first {
        let served_by = listener.addr.to_string();
        let framing: (&str, &[u8]) = if request.http10 {
            ("connection", b"close")
        } else {
            ("transfer-encoding", b"chunked")
        };
        let headers: [(&str, &[u8]); 3] = [
            ("x-served-by", served_by.as_bytes()),
            framing,
            ("connection", b"close"),
        ];
        let count = if close && !request.http10 { 3 } else { 2 };
        write::response_head(out, 200, &headers[..count]);
    }
    if request.head_only {
        return;
    }
    if request.http10 {
        out.extend_from_slice(b"pong");
        return;
    }
    write::chunk(out, b"pong");
    if last {
        out.extend_from_slice(write::LAST_CHUNK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The task of a connection is what a held request costs; keep an eye on it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let shared = Arc::new(crate::server::Shared::for_tests());
        let worker = Rc::new(crate::server::Worker::new(shared));
        let stats = Arc::new(ListenerStats::new("127.0.0.1:1".parse().unwrap()));
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        let task = serve(stream, stats, worker);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 512, "a connection's future grew to {size} bytes");
    }
}
