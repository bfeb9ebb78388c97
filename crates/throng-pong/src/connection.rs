//! One connection's life: read a request head, answer it (sleeping as asked), and again while
//! the client keeps the connection alive.
//!
//! Memory is the point. Between awaits a connection holds its socket, one timer, the counters'
//! handles and a few words of state. Bytes are read into the thread's scratch buffer; only a
//! head that arrives in pieces (or a pipelined one) is copied into a buffer of the connection's
//! own, which is freed as soon as the head is parsed. Request bodies are read and dropped.

use crate::metrics::{ListenerStats, TimeoutKind};
use crate::request::{interpret, PongRequest};
use crate::server::Worker;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use throng_net::http1::{self, write, BodyReader};
use throng_net::random;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

/// After a response that ends the connection, how long unread input is drained before closing,
/// so that the kernel does not reset the connection and destroy the response in flight.
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes drained while lingering.
const LINGER_BYTES: usize = 256 * 1024;

/// Why a connection ends.
enum End {
    /// The response is done and the connection is not kept alive.
    Finished,
    /// The client closed between requests.
    ClientClosed,
    Timeout(TimeoutKind),
    /// A request pong refuses; `reason` goes into the log and the response body.
    Rejected {
        status: u16,
        reason: String,
    },
    Io(io::Error),
}

struct Connection {
    stream: TcpStream,
    listener: Arc<ListenerStats>,
    worker: Rc<Worker>,
    /// Bytes of a head that arrived in pieces, or of pipelined requests. Usually empty (no heap).
    inbuf: Vec<u8>,
    /// The body of the current request, being read and dropped.
    body: BodyReader,
    /// The client sent FIN: nothing more will be read.
    peer_closed: bool,
    /// A response head went out: an error can no longer be answered with a status.
    mid_response: bool,
    /// The last time a byte was read or written.
    last_activity: Instant,
}

pub(crate) async fn serve(stream: TcpStream, listener: Arc<ListenerStats>, worker: Rc<Worker>) {
    let mut connection = Connection {
        stream,
        listener,
        worker,
        inbuf: Vec::new(),
        body: BodyReader::Done,
        peer_closed: false,
        mid_response: false,
        last_activity: Instant::now(),
    };
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let end = connection.run(timer.as_mut()).await;
    connection.close(end, timer.as_mut()).await;
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.listener
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    async fn run(&mut self, mut timer: Pin<&mut Sleep>) -> End {
        loop {
            let request = match self.next_request(timer.as_mut()).await {
                Ok(request) => request,
                Err(end) => return end,
            };
            if let Err(end) = self.respond(&request, timer.as_mut()).await {
                return end;
            }
            if !request.keep_alive || request.http10 || self.stopping() {
                return End::Finished;
            }
        }
    }

    fn stopping(&self) -> bool {
        self.worker.shared.stopping.load(Ordering::Relaxed)
    }

    /// Waits for the next request head, under the idle timeout before its first byte and the
    /// header timeout after it.
    async fn next_request(&mut self, mut timer: Pin<&mut Sleep>) -> Result<PongRequest, End> {
        let config = &self.worker.shared.config;
        let (idle_timeout, header_timeout) = (config.timeout, config.header_timeout);
        let mut head_started = None;
        loop {
            if self.body.is_done() && !self.inbuf.is_empty() {
                if let Some(request) = self.parse_head()? {
                    return Ok(request);
                }
                head_started.get_or_insert_with(Instant::now);
            }
            if self.peer_closed {
                if !self.inbuf.is_empty() {
                    debug!(
                        "{}: client closed in the middle of a request head",
                        self.listener.addr
                    );
                }
                return Err(End::ClientClosed);
            }
            let (deadline, kind) = match head_started {
                Some(started) => (started + header_timeout, TimeoutKind::Header),
                None => (self.last_activity + idle_timeout, TimeoutKind::Idle),
            };
            timer.as_mut().reset(deadline);
            tokio::select! {
                biased;
                ready = self.stream.readable() => {
                    ready.map_err(End::Io)?;
                    self.read_some()?;
                }
                _ = timer.as_mut() => return Err(End::Timeout(kind)),
            }
        }
    }

    /// Parses the head at the start of `inbuf`, if it is all there, and starts reading its body.
    fn parse_head(&mut self) -> Result<Option<PongRequest>, End> {
        let limits = self.worker.shared.config.limits;
        let mut slots = http1::header_slots();
        let (request, head_len) = match http1::parse_request(&self.inbuf, &mut slots, &limits) {
            Ok(None) => return Ok(None),
            Ok(Some(head)) => match self.count_request(interpret(&head)) {
                Ok(request) => (request, head.head_len),
                Err(reason) => {
                    return Err(End::Rejected {
                        status: 400,
                        reason,
                    })
                }
            },
            Err(error) => {
                return Err(End::Rejected {
                    status: error.status(),
                    reason: format!("{}\n", error.reason()),
                })
            }
        };
        self.body = BodyReader::new(request.body);
        let mut inbuf = std::mem::take(&mut self.inbuf);
        let body_bytes = self
            .body
            .feed(&inbuf[head_len..], |_| {})
            .map_err(bad_body)?;
        inbuf.drain(..head_len + body_bytes);
        if !inbuf.is_empty() {
            self.inbuf = inbuf; // a pipelined request: keep it (otherwise the buffer is freed)
        }
        Ok(Some(request))
    }

    fn count_request<T>(&self, interpreted: T) -> T {
        self.listener.requests.fetch_add(1, Ordering::Relaxed);
        interpreted
    }

    /// Answers one request: waits for its `--max-rps` slot and a random 0..=sleep ms, writes
    /// `pong`, and `times` more after further random waits. Meanwhile the body is read and
    /// dropped, and a client that goes away is noticed.
    async fn respond(
        &mut self,
        request: &PongRequest,
        mut timer: Pin<&mut Sleep>,
    ) -> Result<(), End> {
        let _in_progress = InProgress::enter(&self.worker);
        if request.expect_continue && !self.body.is_done() {
            self.send(timer.as_mut(), |out| out.extend_from_slice(write::CONTINUE))
                .await?;
        }
        let shared = Arc::clone(&self.worker.shared);
        let now = Instant::now();
        let start = shared
            .pacer
            .as_ref()
            .map_or(now, |pacer| pacer.reserve(now));
        let mut due = start + random_wait(request.sleep_ms);
        let mut pongs_left = request.times.saturating_add(1);
        let listener = Arc::clone(&self.listener);
        loop {
            let inactive_at = self.last_activity + shared.config.timeout;
            let pong_is_next = due <= inactive_at;
            timer.as_mut().reset(due.min(inactive_at));
            let want_read = !self.peer_closed
                && (!self.body.is_done() || self.inbuf.len() < shared.config.limits.max_head_bytes);
            tokio::select! {
                biased;
                ready = self.stream.readable(), if want_read => {
                    ready.map_err(End::Io)?;
                    self.read_some()?;
                    if self.peer_closed {
                        // As Node's server does: a client that hangs up gives up its response.
                        shared.metrics.responses_abandoned.fetch_add(1, Ordering::Relaxed);
                        return Err(End::ClientClosed);
                    }
                }
                _ = timer.as_mut() => {
                    if !pong_is_next {
                        return Err(End::Timeout(TimeoutKind::Response));
                    }
                    pongs_left -= 1;
                    let first = !self.mid_response;
                    let last = pongs_left == 0 || request.head_only;
                    let close = !request.keep_alive || shared.stopping.load(Ordering::Relaxed);
                    self.mid_response = true;
                    self.send(timer.as_mut(), |out| {
                        write_pong(out, request, &listener, first, last, close);
                    })
                    .await?;
                    if last {
                        self.mid_response = false;
                        return Ok(());
                    }
                    due = Instant::now() + random_wait(request.sleep_ms);
                }
            }
        }
    }

    /// Reads what the socket has into the thread's scratch buffer: body bytes are dropped, the
    /// rest is kept for the next head.
    fn read_some(&mut self) -> Result<(), End> {
        let worker = Rc::clone(&self.worker);
        let mut scratch = worker.scratch.borrow_mut();
        match self.stream.try_read(&mut scratch[..]) {
            Ok(0) => {
                self.peer_closed = true;
                Ok(())
            }
            Ok(n) => {
                self.last_activity = Instant::now();
                self.listener
                    .bytes_in
                    .fetch_add(n as u64, Ordering::Relaxed);
                let mut fresh = &scratch[..n];
                if !self.body.is_done() {
                    let body_bytes = self.body.feed(fresh, |_| {}).map_err(bad_body)?;
                    fresh = &fresh[body_bytes..];
                }
                self.inbuf.extend_from_slice(fresh);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(End::Io(e)),
        }
    }

    /// Writes what `build` puts in the thread's output buffer. Only what the socket does not take
    /// at once is copied into a buffer of the connection's own, until it drains or times out.
    async fn send(
        &mut self,
        mut timer: Pin<&mut Sleep>,
        build: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), End> {
        let worker = Rc::clone(&self.worker);
        let rest = {
            let mut out = worker.out.borrow_mut();
            out.clear();
            build(&mut out);
            let written = match self.stream.try_write(&out) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(End::Io(e)),
            };
            self.note_sent(written);
            if written == out.len() {
                return Ok(());
            }
            out[written..].to_vec()
        };
        let mut at = 0;
        while at < rest.len() {
            timer
                .as_mut()
                .reset(self.last_activity + worker.shared.config.timeout);
            tokio::select! {
                biased;
                ready = self.stream.writable() => {
                    ready.map_err(End::Io)?;
                    match self.stream.try_write(&rest[at..]) {
                        Ok(n) => {
                            at += n;
                            self.note_sent(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(End::Io(e)),
                    }
                }
                _ = timer.as_mut() => return Err(End::Timeout(TimeoutKind::Response)),
            }
        }
        Ok(())
    }

    fn note_sent(&mut self, bytes: usize) {
        if bytes > 0 {
            self.last_activity = Instant::now();
            self.listener
                .bytes_out
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Ends the connection: answers a refused request or a slow head with its status, logs what
    /// is worth a line, and closes without losing a response still in flight.
    async fn close(mut self, end: End, mut timer: Pin<&mut Sleep>) {
        let metrics = &Arc::clone(&self.worker.shared).metrics;
        let peer = || {
            self.stream
                .peer_addr()
                .map_or_else(|_| "?".to_string(), |a| a.to_string())
        };
        let answer = match end {
            End::Finished => None,
            End::ClientClosed => return,
            End::Io(error) => {
                debug!("{} <- {}: {error}", self.listener.addr, peer());
                return;
            }
            End::Timeout(kind) => {
                metrics.count_timeout(kind);
                let config = &self.worker.shared.config;
                match kind {
                    TimeoutKind::Header => {
                        info!(
                            "{} <- {}: 408, request head not received within the header timeout ({})",
                            self.listener.addr,
                            peer(),
                            throng_net::duration::format(config.header_timeout)
                        );
                        metrics.count_rejected(408);
                        Some((408, "request head not received in time\n".to_string()))
                    }
                    TimeoutKind::Idle | TimeoutKind::Response => {
                        debug!(
                            "{} <- {}: closed, no bytes moved within the {} timeout ({})",
                            self.listener.addr,
                            peer(),
                            kind.name(),
                            throng_net::duration::format(config.timeout)
                        );
                        return;
                    }
                }
            }
            End::Rejected { status, reason } => {
                metrics.count_rejected(status);
                warn!(
                    "{} <- {}: {status}, {}",
                    self.listener.addr,
                    peer(),
                    reason.trim_end()
                );
                Some((status, reason))
            }
        };
        if let Some((status, reason)) = answer {
            if self.mid_response {
                return; // the status line is long gone: closing is all that is left
            }
            let sent = self
                .send(timer.as_mut(), |out| {
                    write::text_response(out, status, &reason, false)
                })
                .await;
            if sent.is_err() {
                return;
            }
        }
        self.linger(timer).await;
    }

    /// Half-closes, then drains what the client still sends for a short while: closing with
    /// unread input makes the kernel send a reset, which can destroy the response in flight.
    async fn linger(&mut self, mut timer: Pin<&mut Sleep>) {
        if socket2::SockRef::from(&self.stream)
            .shutdown(std::net::Shutdown::Write)
            .is_err()
        {
            return;
        }
        timer.as_mut().reset(Instant::now() + LINGER);
        let mut drained = 0;
        let worker = Rc::clone(&self.worker);
        while drained < LINGER_BYTES {
            tokio::select! {
                biased;
                ready = self.stream.readable() => {
                    if ready.is_err() {
                        return;
                    }
                    let mut scratch = worker.scratch.borrow_mut();
                    match self.stream.try_read(&mut scratch[..]) {
                        Ok(0) => return,
                        Ok(n) => drained += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
                _ = timer.as_mut() => return,
            }
        }
    }
}

/// Counts a response in progress, on this thread (for the graceful stop) and in the metrics.
struct InProgress(Rc<Worker>);

impl InProgress {
    fn enter(worker: &Rc<Worker>) -> InProgress {
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

fn random_wait(max_ms: u64) -> Duration {
    Duration::from_millis(random::up_to(max_ms))
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
