//! HTTP/2 requests: each one a stream on one of a few connections per host, as Go's transport,
//! and so vegeta's `-http2`, multiplexes them.
//!
//! A thread keeps its connections per host ([`Hosts`]). A request takes a stream on the first
//! connection with a free slot. When every one is at the server's
//! SETTINGS_MAX_CONCURRENT_STREAMS, a lane opens one more, one at a time (the others wait for
//! it, as Go dials once for many requests), unless `-max-connections` is reached: then the
//! request waits for a stream to end, is counted (`waited_for_stream`) and, as every request,
//! measured from when it was due. An https host whose server picks http/1.1 by ALPN is
//! HTTP/1.1 from then on, its first connection handed to the HTTP/1.1 client.
//!
//! Each connection has a driver task that owns its socket: it writes what the streams queued,
//! reads, and hands the codec's events to the streams' slots, waking the lanes that wait on
//! them. A lane that gives up its stream (its timeout) drops it: RST_STREAM(CANCEL), the slot
//! freed.

use crate::client::{self, Connection as Socket, Failure};
use crate::engine::ThreadCtx;
use crate::request::{Http2, PreparedTarget};
use crate::schedule::Schedule;
use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};
use throng_h2::client::{Connection as Codec, Event, Step};
use throng_h2::server::Limits;
use throng_h2::ErrorCode;
use throng_results::{Phase, Record};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Streams a client opens at once on one connection when the server allows any number: Go's
/// cap (x/net/http2's `maxConcurrentStreams` default) is 1000 too.
const MAX_STREAMS_PER_CONNECTION: u32 = 1000;
/// Reads a driver makes in one turn before it lets the thread's other tasks run (it reads until
/// the socket has no more, so that it is woken for what comes next).
const READS_PER_TURN: usize = 8;

/// One thread's HTTP/2 connections, by host.
pub(crate) struct Hosts {
    hosts: RefCell<Vec<Host>>,
}

struct Host {
    connections: Vec<Rc<H2Connection>>,
    /// A lane is opening a connection: the others wait for it rather than open their own.
    opening: bool,
    /// The server picked http/1.1 by ALPN: this host's requests go over HTTP/1.1.
    http1_only: bool,
    /// Told when a stream ends or a connection opens, closes or says GOAWAY.
    changed: Rc<Notify>,
}

impl Hosts {
    pub fn new(count: usize) -> Hosts {
        let hosts = (0..count)
            .map(|_| Host {
                connections: Vec::new(),
                opening: false,
                http1_only: false,
                changed: Rc::new(Notify::new()),
            })
            .collect();
        Hosts {
            hosts: RefCell::new(hosts),
        }
    }

    /// Whether requests to `host` go over HTTP/1.1 (its server picked it by ALPN).
    pub fn is_http1(&self, host: usize) -> bool {
        self.hosts.borrow().get(host).is_some_and(|h| h.http1_only)
    }

    /// Connections still open, for the run's count when the thread ends.
    pub fn open_connections(&self) -> usize {
        let hosts = self.hosts.borrow();
        let open = hosts.iter().flat_map(|h| &h.connections);
        open.filter(|c| c.inner.borrow().ended.is_none()).count()
    }
}

/// How a request's HTTP/2 attempt ended.
pub(crate) enum Attempt {
    /// The response is in: its last byte came at this time.
    Done(Instant),
    /// The server picked http/1.1 on this new connection: send the request on it.
    Http1(Socket),
    /// The host is known to be HTTP/1.1.
    Http1Only,
}

/// Sends `record`'s request as a stream and waits for its response. A request the server did
/// not process (past its GOAWAY's last stream) goes once more on another connection, as Go's
/// transport sends it again.
pub(crate) async fn attempt(
    ctx: &Rc<ThreadCtx>,
    record: &mut Record,
    phase: &Cell<Phase>,
) -> Result<Attempt, Failure> {
    let prepared = &ctx.targets[record.target as usize];
    loop {
        let connection = match acquire(ctx, prepared, record, phase).await? {
            Acquired::Http2(connection) => connection,
            Acquired::Http1(socket) => return Ok(Attempt::Http1(socket)),
            Acquired::Http1Only => return Ok(Attempt::Http1Only),
        };
        record.http2 = true;
        record.source = connection.source;
        phase.set(Phase::Send);
        let stream = connection.open(prepared)?;
        record.bytes_out = prepared.body_len;
        phase.set(Phase::FirstByte);
        let outcome =
            std::future::poll_fn(|cx| stream.poll(cx, &ctx.schedule, prepared, record, phase))
                .await;
        match outcome {
            Outcome::Done(at) => return Ok(Attempt::Done(at)),
            Outcome::Unprocessed(_) if !record.retried => record.retried = true,
            Outcome::Unprocessed(text) | Outcome::Failed(text) => {
                return Err(Failure::Protocol(text))
            }
        }
    }
}

enum Acquired {
    Http2(Rc<H2Connection>),
    Http1(Socket),
    Http1Only,
}

/// A connection with a free stream slot for `prepared`'s host: one that has one, or a new one,
/// or the first to free one when no more may open.
async fn acquire(
    ctx: &Rc<ThreadCtx>,
    prepared: &PreparedTarget,
    record: &mut Record,
    phase: &Cell<Phase>,
) -> Result<Acquired, Failure> {
    loop {
        let wait = {
            let mut hosts = ctx.h2.hosts.borrow_mut();
            let host = &mut hosts[prepared.host];
            if host.http1_only {
                return Ok(Acquired::Http1Only);
            }
            host.connections
                .retain(|c| c.inner.borrow().ended.is_none());
            if let Some(connection) = host.connections.iter().find(|c| c.can_open()) {
                return Ok(Acquired::Http2(Rc::clone(connection)));
            }
            let room = ctx
                .config
                .max_connections
                .is_none_or(|max| host.connections.len() < max);
            if host.opening {
                // Another lane's connection is on its way: wait for it.
                Some(Rc::clone(&host.changed))
            } else if room {
                host.opening = true;
                None
            } else {
                record.waited_for_stream = true;
                phase.set(Phase::Queue);
                Some(Rc::clone(&host.changed))
            }
        };
        match wait {
            Some(changed) => changed.notified().await,
            None => return open(ctx, prepared, record, phase).await,
        }
    }
}

/// Opens a connection for the host (this lane's turn to), and starts its driver.
async fn open(
    ctx: &Rc<ThreadCtx>,
    prepared: &PreparedTarget,
    record: &mut Record,
    phase: &Cell<Phase>,
) -> Result<Acquired, Failure> {
    // Whatever happens to this lane (its timeout drops it mid-handshake), the host is no
    // longer opening, and the lanes that waited for it look again.
    let _opening = Opening {
        ctx,
        host: prepared.host,
    };
    phase.set(Phase::Connect);
    let socket = Box::pin(client::open(ctx, prepared, record, phase)).await?;
    let h2 = match prepared.http2 {
        Http2::PriorKnowledge => true,
        Http2::Alpn => socket.tls_alpn_h2(),
        Http2::No => false,
    };
    let mut hosts = ctx.h2.hosts.borrow_mut();
    let host = &mut hosts[prepared.host];
    if !h2 {
        host.http1_only = true;
        return Ok(Acquired::Http1(socket));
    }
    let connection = H2Connection::start(ctx, socket, Rc::clone(&host.changed));
    host.connections.push(Rc::clone(&connection));
    Ok(Acquired::Http2(connection))
}

struct Opening<'a> {
    ctx: &'a ThreadCtx,
    host: usize,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        let mut hosts = self.ctx.h2.hosts.borrow_mut();
        if let Some(host) = hosts.get_mut(self.host) {
            host.opening = false;
            host.changed.notify_waiters();
        }
    }
}

/// How a stream ended, for its lane.
enum Outcome {
    /// The response's last byte came at this time.
    Done(Instant),
    /// Failed, in words for the results.
    Failed(String),
    /// The server did not process it (past its GOAWAY's last stream): it may go again.
    Unprocessed(String),
}

/// What the driver learnt of one stream, for the lane that waits on it.
struct Slot {
    id: u32,
    waker: Option<Waker>,
    status: u16,
    first_byte: Option<Instant>,
    bytes_in: u64,
    served_by: Option<String>,
    /// Body bytes sent so far (the rest waits for the server's windows).
    body_sent: usize,
    outcome: Option<Outcome>,
}

impl Slot {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn end(&mut self, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
        self.wake();
    }
}

pub(crate) struct H2Connection {
    inner: RefCell<Inner>,
    source: Option<u16>,
    changed: Rc<Notify>,
    /// With `-keepalive=false`, one stream per connection, as Go's DisableKeepAlives does.
    single_use: bool,
}

struct Inner {
    codec: Codec,
    /// Frames queued for the driver to write.
    out: Vec<u8>,
    slots: Vec<Slot>,
    /// The driver, to wake when `out` has something.
    driver: Option<Waker>,
    /// Why the connection ended, once it has.
    ended: Option<String>,
    streams_opened: u64,
}

impl Inner {
    fn slot(&mut self, id: u32) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.id == id)
    }

    fn wake_driver(&mut self) {
        if let Some(waker) = self.driver.take() {
            waker.wake();
        }
    }
}

impl H2Connection {
    fn start(ctx: &Rc<ThreadCtx>, socket: Socket, changed: Rc<Notify>) -> Rc<H2Connection> {
        let mut codec = Codec::new(Limits {
            max_concurrent_streams: MAX_STREAMS_PER_CONNECTION,
            // Responses flow without waiting for window updates on the way: a load test
            // measures the server, not our windows.
            initial_window_size: 1 << 20,
            connection_window: 16 << 20,
            ..Limits::default()
        });
        let mut out = Vec::new();
        codec.start(&mut out);
        let connection = Rc::new(H2Connection {
            inner: RefCell::new(Inner {
                codec,
                out,
                slots: Vec::new(),
                driver: None,
                ended: None,
                streams_opened: 0,
            }),
            source: socket.source,
            changed,
            single_use: !ctx.config.keepalive,
        });
        tokio::task::spawn_local(drive(Rc::clone(ctx), Rc::clone(&connection), socket));
        connection
    }

    fn can_open(&self) -> bool {
        let inner = self.inner.borrow();
        inner.ended.is_none()
            && inner.codec.available().is_ok()
            && !(self.single_use && inner.streams_opened > 0)
    }

    /// Opens a stream for `prepared`'s request: its HEADERS and as much of its body as the
    /// windows take, queued for the driver.
    fn open<'c>(self: &'c Rc<Self>, prepared: &PreparedTarget) -> Result<Stream<'c>, Failure> {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        let body = prepared.body();
        let id = inner
            .codec
            .open_stream(
                &prepared.h2_block,
                body.is_empty(),
                prepared.head_request,
                &mut inner.out,
            )
            .map_err(|why| Failure::Protocol(format!("h2: no stream: {}", why.describe())))?;
        inner.streams_opened += 1;
        let body_sent = match body.is_empty() {
            true => 0,
            false => inner.codec.send_data(id, body, true, &mut inner.out),
        };
        inner.slots.push(Slot {
            id,
            waker: None,
            status: 0,
            first_byte: None,
            bytes_in: 0,
            served_by: None,
            body_sent,
            outcome: None,
        });
        inner.wake_driver();
        Ok(Stream {
            connection: self,
            id,
        })
    }
}

/// A lane's stream: polled for its outcome; dropped unfinished (a timeout), it is reset.
struct Stream<'c> {
    connection: &'c Rc<H2Connection>,
    id: u32,
}

impl Stream<'_> {
    fn poll(
        &self,
        cx: &mut Context<'_>,
        schedule: &Schedule,
        prepared: &PreparedTarget,
        record: &mut Record,
        phase: &Cell<Phase>,
    ) -> Poll<Outcome> {
        let mut guard = self.connection.inner.borrow_mut();
        let inner = &mut *guard;
        let Some(at) = inner.slots.iter().position(|s| s.id == self.id) else {
            let why = inner.ended.clone().unwrap_or_default();
            return Poll::Ready(Outcome::Failed(why));
        };
        let slot = &mut inner.slots[at];
        let body = prepared.body();
        if slot.body_sent < body.len() && slot.outcome.is_none() {
            let rest = &body[slot.body_sent..];
            let n = inner.codec.send_data(self.id, rest, true, &mut inner.out);
            slot.body_sent += n;
            if n > 0 {
                if let Some(driver) = inner.driver.take() {
                    driver.wake();
                }
            }
        }
        if let (Some(first), 0) = (slot.first_byte, record.first_byte) {
            record.first_byte = schedule.nanos_at(first).saturating_sub(record.sent).max(1);
            phase.set(Phase::Body);
        }
        let Some(outcome) = slot.outcome.take() else {
            if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                slot.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        };
        record.status = slot.status;
        record.bytes_in = slot.bytes_in;
        if let Some(served_by) = slot.served_by.take() {
            record.served_by = served_by;
        }
        inner.slots.swap_remove(at);
        Poll::Ready(outcome)
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        let mut guard = self.connection.inner.borrow_mut();
        let inner = &mut *guard;
        inner.slots.retain(|s| s.id != self.id);
        // Still open on our side (a timeout, or a response that came before the whole body
        // went): the server is told to stop.
        if inner.codec.stream_ids().any(|id| id == self.id) {
            inner
                .codec
                .reset(self.id, ErrorCode::CANCEL, &mut inner.out);
            inner.wake_driver();
        }
        drop(guard);
        self.connection.changed.notify_one();
    }
}

/// A connection's driver: writes what its streams queue and reads what the server sends, until
/// the connection ends; then every stream still waiting fails with the reason.
async fn drive(ctx: Rc<ThreadCtx>, connection: Rc<H2Connection>, mut socket: Socket) {
    // A frame cut by the end of a read waits here for the rest (at most a frame: 16 KiB and
    // its header, the largest we allow).
    let mut partial = Vec::new();
    let why =
        std::future::poll_fn(|cx| connection.poll_drive(cx, &ctx, &mut socket, &mut partial)).await;
    let mut inner = connection.inner.borrow_mut();
    for slot in &mut inner.slots {
        slot.end(Outcome::Failed(why.clone()));
    }
    inner.ended = Some(why);
    drop(inner);
    ctx.connection_closed();
    connection.changed.notify_waiters();
}

impl H2Connection {
    /// One turn of the driver: `Ready` with the reason once the connection has ended.
    fn poll_drive(
        &self,
        cx: &mut Context<'_>,
        ctx: &ThreadCtx,
        socket: &mut Socket,
        partial: &mut Vec<u8>,
    ) -> Poll<String> {
        let mut waiting_for_reads = false;
        for _ in 0..READS_PER_TURN {
            if let Err(error) = self.poll_flush(cx, socket) {
                return Poll::Ready(format!("h2: {}", describe_io(&error)));
            }
            let mut scratch = ctx.scratch.borrow_mut();
            let n = match poll_read(cx, socket, &mut scratch[..]) {
                Poll::Pending => {
                    waiting_for_reads = true;
                    break;
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(error)) => {
                    return Poll::Ready(format!("h2: {}", describe_io(&error)))
                }
            };
            let mut inner = self.inner.borrow_mut();
            if n == 0 {
                let why = match inner.codec.goaway() {
                    Some(last) => format!(
                        "h2: the server closed the connection after GOAWAY (last stream {last})"
                    ),
                    None => "h2: the server closed the connection".to_string(),
                };
                return Poll::Ready(why);
            }
            if let Err(why) = inner.take(&scratch[..n], partial, &self.changed) {
                drop(inner);
                let _ = self.poll_flush(cx, socket);
                return Poll::Ready(why);
            }
            if let Some(why) = self.finished(&inner) {
                drop(inner);
                let _ = self.poll_flush(cx, socket);
                return Poll::Ready(why);
            }
        }
        if let Err(error) = self.poll_flush(cx, socket) {
            return Poll::Ready(format!("h2: {}", describe_io(&error)));
        }
        let mut inner = self.inner.borrow_mut();
        if let Some(why) = self.finished(&inner) {
            return Poll::Ready(why);
        }
        if !inner
            .driver
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.driver = Some(cx.waker().clone());
        }
        if !waiting_for_reads {
            // A turn's reads ran out with more to read: the next turn comes after the others.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Nothing left to do on a connection that takes no more streams.
    fn finished(&self, inner: &Inner) -> Option<String> {
        let no_more =
            inner.codec.goaway().is_some() || (self.single_use && inner.streams_opened > 0);
        (no_more && inner.slots.is_empty() && inner.codec.is_idle())
            .then(|| "h2: connection done".to_string())
    }

    /// Writes what the streams queued, as far as the socket takes it now.
    fn poll_flush(&self, cx: &mut Context<'_>, socket: &mut Socket) -> io::Result<()> {
        let mut inner = self.inner.borrow_mut();
        while !inner.out.is_empty() {
            match poll_write(cx, socket, &inner.out) {
                Poll::Ready(Ok(n)) => {
                    inner.out.drain(..n);
                }
                Poll::Ready(Err(error)) => return Err(error),
                Poll::Pending => return Ok(()),
            }
        }
        if inner.out.capacity() > 64 * 1024 {
            inner.out = Vec::new();
        }
        match &mut socket.tls {
            Some(tls) => match tls.poll_send(&socket.stream, cx) {
                Poll::Ready(result) => result,
                Poll::Pending => Ok(()),
            },
            None => Ok(()),
        }
    }
}

impl Inner {
    /// Hands bytes read to the codec, and its events to the streams' slots.
    fn take(&mut self, read: &[u8], partial: &mut Vec<u8>, changed: &Notify) -> Result<(), String> {
        let now = Instant::now();
        if partial.is_empty() {
            let used = self.frames(read, now, changed)?;
            partial.extend_from_slice(&read[used..]);
        } else {
            partial.extend_from_slice(read);
            let used = self.frames(partial, now, changed)?;
            partial.drain(..used);
        }
        Ok(())
    }

    /// Takes the whole frames of `input`; returns how many bytes they were.
    fn frames(&mut self, input: &[u8], now: Instant, changed: &Notify) -> Result<usize, String> {
        let mut at = 0;
        while at < input.len() {
            let step = self
                .codec
                .next(&input[at..], &mut self.out, now.into_std())
                .map_err(|error| format!("h2: connection error {error}"))?;
            let Step::Frame { consumed, event } = step else {
                break;
            };
            at += consumed;
            if let Some(event) = event {
                self.on_event(event, now, changed);
            }
        }
        Ok(at)
    }

    fn on_event(&mut self, event: Event<'_>, now: Instant, changed: &Notify) {
        match event {
            Event::Response {
                stream,
                head,
                end_stream,
            } => {
                let Some(slot) = self.slot(stream) else {
                    return;
                };
                slot.status = head.status;
                slot.served_by = head
                    .field(b"x-served-by")
                    .map(|v| String::from_utf8_lossy(&v[..v.len().min(255)]).into_owned());
                slot.first_byte.get_or_insert(now);
                match end_stream {
                    true => slot.end(Outcome::Done(now)),
                    false => slot.wake(),
                }
            }
            Event::Data {
                stream,
                data,
                end_stream,
            } => {
                let n = data.len();
                self.codec.release(stream, n as u32, &mut self.out);
                let Some(slot) = self.slot(stream) else {
                    return;
                };
                slot.bytes_in += n as u64;
                if end_stream {
                    slot.end(Outcome::Done(now));
                }
            }
            Event::Trailers { stream, .. } => {
                if let Some(slot) = self.slot(stream) {
                    slot.end(Outcome::Done(now));
                }
            }
            Event::Reset {
                stream,
                code,
                by_peer,
                reason,
            } => {
                let text = match by_peer {
                    true => format!("h2: stream reset by the server ({code})"),
                    false => format!("h2: bad response: {reason} (stream reset, {code})"),
                };
                if let Some(slot) = self.slot(stream) {
                    slot.end(Outcome::Failed(text));
                }
            }
            Event::Capacity => {
                // A window or the stream limit grew: bodies waiting may go on, requests
                // waiting for a stream may open one.
                for slot in &mut self.slots {
                    slot.wake();
                }
                changed.notify_waiters();
            }
            Event::GoAway { last_stream, code } => {
                let text = format!("h2: GOAWAY ({code}, last stream {last_stream}): not processed");
                for slot in self.slots.iter_mut().filter(|s| s.id > last_stream) {
                    slot.end(Outcome::Unprocessed(text.clone()));
                }
                changed.notify_waiters();
            }
        }
    }
}

fn poll_write(cx: &mut Context<'_>, socket: &mut Socket, data: &[u8]) -> Poll<io::Result<usize>> {
    if let Some(tls) = &mut socket.tls {
        return tls.poll_write(&socket.stream, cx, data);
    }
    loop {
        match socket.stream.try_write(data) {
            Ok(n) => return Poll::Ready(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(socket.stream.poll_write_ready(cx))?;
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// Reads what the socket has, or registers the driver for when it has more. A short plain read
/// drains the socket: tokio is told so, and the next call registers at once rather than pay a
/// read that can only say "would block" (as the HTTP/1.1 client does).
fn poll_read(cx: &mut Context<'_>, socket: &mut Socket, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    loop {
        let read = match &mut socket.tls {
            Some(tls) => tls.try_read(&socket.stream, buf),
            None => {
                ready!(socket.stream.poll_read_ready(cx))?;
                let read = socket.stream.try_read(buf);
                if matches!(read, Ok(n) if n > 0 && n < buf.len()) {
                    client::forget_readiness(&socket.stream);
                }
                read
            }
        };
        match read {
            Ok(n) => return Poll::Ready(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(socket.stream.poll_read_ready(cx))?;
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            format!("connection reset: {error}")
        }
        _ => format!("i/o: {error}"),
    }
}
