//! One request on one connection: connect (or reuse an idle connection), send, read the response
//! head and body, and put what happened into a [`Record`].
//!
//! Reads go into the thread's scratch buffer; a request waiting for its first byte holds no
//! buffer. The current phase is kept in a cell, so that a timeout can say what it cut.

use crate::engine::ThreadCtx;
use crate::h2;
use crate::request::{Http2, PreparedTarget};
use crate::schedule::nanos;
use rustls::client::UnbufferedClientConnection;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use throng_http1::{self as http1, BodyReader, Limits};
use throng_results::{ErrorClass, Phase, Record};
use throng_tls::config::{self as tls, TlsFailure};
use throng_tls::stream::TlsStream;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Limits on response heads.
const LIMITS: Limits = Limits {
    max_head_bytes: 64 * 1024,
    max_headers: 128,
};

/// A connection (plain, or with its TLS session), and the source address it was opened from.
pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) tls: Option<Box<TlsStream<UnbufferedClientConnection>>>,
    pub(crate) source: Option<u16>,
}

impl Connection {
    /// Whether the server picked h2 by ALPN.
    pub(crate) fn tls_alpn_h2(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.alpn_h2())
    }

    /// Whether a parked connection can carry a request: the server has neither closed it nor
    /// sent anything (a response nobody asked for, TLS's close_notify) while it sat idle. No
    /// system call unless the socket had an event since its last read.
    pub(crate) fn is_quiet(&mut self) -> bool {
        if let Some(session) = &mut self.tls {
            if session.has_readable(&self.stream).unwrap_or(true) {
                return false;
            }
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        let mut probe = tokio::io::ReadBuf::new(&mut probe);
        matches!(self.stream.poll_peek(&mut cx, &mut probe), Poll::Pending)
    }
}

/// Why an attempt failed.
pub(crate) enum Failure {
    Io(io::Error),
    /// The TLS handshake or a record failed (certificate, alert, garbage).
    Tls(String),
    /// A response that is not valid HTTP/1.x, or ends too soon.
    Protocol(String),
    /// Connecting failed; the error and the source address used.
    Connect(io::Error, Option<std::net::IpAddr>),
}

impl From<TlsFailure> for Failure {
    fn from(failure: TlsFailure) -> Self {
        match failure {
            TlsFailure::Io(error) => Failure::Io(error),
            TlsFailure::Tls(reason) => Failure::Tls(reason),
        }
    }
}

/// Sends the request `record` stands for (its lane filled in its sequence number, target, and
/// intended and actual send times), waits for its response, and completes the record.
/// `timeout` is the lane's timer, moved here to this request's deadline.
pub(crate) async fn exchange(
    ctx: &Rc<ThreadCtx>,
    mut record: Record,
    mut timeout: Pin<&mut Sleep>,
) {
    let schedule = &ctx.schedule;
    let phase = Cell::new(Phase::Connect);
    timeout
        .as_mut()
        .reset(schedule.instant(record.sent) + ctx.config.timeout);
    let outcome = {
        let mut attempt = pin!(attempt(ctx, &mut record, &phase));
        std::future::poll_fn(|cx| match attempt.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => timeout.as_mut().poll(cx).map(|()| None),
        })
        .await
    };
    let ended_at = match outcome {
        Some(Ok(ended_at)) => ended_at,
        Some(Err(failure)) => {
            classify(&mut record, failure);
            Instant::now()
        }
        None => {
            record.error = Some(ErrorClass::Timeout);
            record.timeout_phase = Some(phase.get());
            record.error_text = format!(
                "timeout ({}) {}",
                throng_net::duration::format(ctx.config.timeout),
                phase.get().describe()
            );
            Instant::now()
        }
    };
    if record.error.is_none() && record.status >= 500 {
        record.error = Some(ErrorClass::ServerError);
        record.error_text = format!("server error: status {}", record.status);
    }
    record.latency = schedule.nanos_at(ended_at).saturating_sub(record.intended);
    ctx.finish(record);
}

/// Sends the request and reads its response, as an HTTP/2 stream when the target asks for it
/// and its server agrees, else on an idle HTTP/1.1 connection or a new one; returns when the
/// response's last byte was read.
async fn attempt(
    ctx: &Rc<ThreadCtx>,
    record: &mut Record,
    phase: &Cell<Phase>,
) -> Result<Instant, Failure> {
    let target = record.target as usize;
    let prepared = &ctx.targets[target];
    // A connection the server chose http/1.1 on when h2 was offered: this request's first.
    let mut opened = None;
    if prepared.http2 != Http2::No && !ctx.h2.is_http1(prepared.host) {
        match h2::attempt(ctx, record, phase).await? {
            h2::Attempt::Done(ended_at) => return Ok(ended_at),
            h2::Attempt::Http1(connection) => opened = Some(connection),
            h2::Attempt::Http1Only => {}
        }
    }
    let mut retried = false;
    loop {
        phase.set(Phase::Connect);
        // A retry goes out on a new connection: the other parked ones may have been closed by
        // the same idle timeout.
        let parked = match (retried, opened.take()) {
            (_, Some(fresh)) => Some((fresh, false)),
            (false, None) => ctx.take_idle(prepared.host).map(|c| (c, true)),
            (true, None) => None,
        };
        let (mut connection, reused) = match parked {
            Some(parked) => parked,
            // Boxed: connecting and the handshake are brief, and a request that waits for its
            // response should not carry their futures' size for its whole life.
            None => (Box::pin(open(ctx, prepared, record, phase)).await?, false),
        };
        record.source = connection.source;
        phase.set(Phase::Send);
        let result = send_and_receive(ctx, &mut connection, target, record, phase).await;
        match result {
            Ok((keep, ended_at)) => {
                if keep && ctx.config.keepalive {
                    ctx.put_idle(prepared.host, connection);
                } else {
                    ctx.connection_closed();
                }
                return Ok(ended_at);
            }
            // A parked connection the server closed as the request went out (its idle timeout):
            // once more on a new one, as Go's net/http (and so vegeta) does; nothing of the
            // response was received. Counted in the report as a retry.
            Err(Failure::Protocol(_)) | Err(Failure::Io(_))
                if reused && !retried && record.first_byte == 0 =>
            {
                ctx.connection_closed();
                retried = true;
                record.retried = true;
            }
            Err(failure) => {
                ctx.connection_closed();
                return Err(failure);
            }
        }
    }
}

/// Opens a connection for `prepared`, with its TLS handshake when it is an https target.
pub(crate) async fn open(
    ctx: &ThreadCtx,
    prepared: &PreparedTarget,
    record: &mut Record,
    phase: &Cell<Phase>,
) -> Result<Connection, Failure> {
    let started = Instant::now();
    let mut connection = connect(ctx, prepared.addr).await?;
    record.connect = nanos(started.elapsed());
    if let (Some(name), Some(config)) = (&prepared.tls_name, &ctx.tls) {
        phase.set(Phase::Tls);
        let started = Instant::now();
        let session = tls::connect_unbuffered(config, name).map_err(Failure::Tls)?;
        let mut session = Box::new(TlsStream::new(session));
        if let Err(error) = session.handshake(&connection.stream).await {
            ctx.connection_closed();
            return Err(TlsFailure::from_stream(error).into());
        }
        record.tls = nanos(started.elapsed()).max(1);
        record.tls_resumed = session.resumed();
        connection.tls = Some(session);
    }
    Ok(connection)
}

async fn connect(ctx: &ThreadCtx, addr: std::net::SocketAddr) -> Result<Connection, Failure> {
    let source = ctx.next_source();
    let socket = throng_net::sockets::outgoing_socket(addr, source.map(|(_, ip)| ip))
        .map_err(|e| Failure::Connect(e, source.map(|(_, ip)| ip)))?;
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| Failure::Connect(e, source.map(|(_, ip)| ip)))?;
    ctx.connection_opened();
    Ok(Connection {
        stream,
        tls: None,
        source: source.map(|(index, _)| index as u16),
    })
}

/// Writes the request and reads the whole response; says whether the connection may be reused,
/// and when the response's last byte was read (one clock read serves the first byte and the end
/// when the response comes in one read, as small responses do).
async fn send_and_receive(
    ctx: &ThreadCtx,
    connection: &mut Connection,
    target: usize,
    record: &mut Record,
    phase: &Cell<Phase>,
) -> Result<(bool, Instant), Failure> {
    let prepared = &ctx.targets[target];
    // A request nearly always fits the socket's buffer: write it at once, and only box the
    // waiting write (kept out of every request's future for size) when it does not.
    let written = match &connection.tls {
        Some(_) => 0,
        None => match connection.stream.try_write(&prepared.bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(Failure::Io(e)),
        },
    };
    if written < prepared.bytes.len() {
        Box::pin(write_request(connection, &prepared.bytes[written..])).await?;
    }
    record.bytes_out = prepared.body_len;

    phase.set(Phase::FirstByte);
    let mut last_read;
    // Only a head that spans reads (rare) is kept here; one that arrives whole is parsed in the
    // read buffer where it lies.
    let mut head: Vec<u8> = Vec::new();
    let (mut body, keep_alive) = loop {
        let mut outcome = Ok(None);
        let n = read_some(ctx, connection, |bytes| {
            if !bytes.is_empty() {
                outcome = take_head(&mut head, bytes, record, prepared.head_request);
            }
        })
        .await?;
        if n == 0 {
            return Err(Failure::Protocol(if head.is_empty() {
                "the server closed the connection without a response".into()
            } else {
                "the server closed the connection in the middle of the response head".into()
            }));
        }
        last_read = Instant::now();
        if record.first_byte == 0 {
            let first_byte = ctx.schedule.nanos_at(last_read).saturating_sub(record.sent);
            record.first_byte = first_byte.max(1);
            phase.set(Phase::Body);
        }
        if let Some(done) = outcome? {
            break done;
        }
    };
    drop(head);
    while !body.is_done() {
        let mut bad = None;
        let mut bytes_in = 0u64;
        let n = read_some(ctx, connection, |bytes| {
            if let Err(e) = body.feed(bytes, |data| bytes_in += data.len() as u64) {
                bad = Some(e);
            }
        })
        .await?;
        last_read = Instant::now();
        record.bytes_in += bytes_in;
        if let Some(error) = bad {
            return Err(Failure::Protocol(format!("bad response body: {error}")));
        }
        if n == 0 {
            if body == BodyReader::UntilClose {
                return Ok((false, last_read));
            }
            return Err(Failure::Protocol(
                "the server closed the connection in the middle of the response body".into(),
            ));
        }
    }
    Ok((keep_alive, last_read))
}

/// Takes response bytes `bytes` that arrived after `head` (what was kept of a head so far):
/// returns the body's reader and whether the connection may be reused once the head is whole,
/// `None` while it is not (the bytes are then kept in `head`). Interim responses (100 Continue)
/// are skipped: the real one follows.
fn take_head(
    head: &mut Vec<u8>,
    bytes: &[u8],
    record: &mut Record,
    request_was_head: bool,
) -> Result<Option<(BodyReader, bool)>, Failure> {
    // What is still to parse: these bytes alone, or after the kept ones.
    let mut fresh = bytes;
    if !head.is_empty() {
        head.extend_from_slice(bytes);
        fresh = &[];
    }
    loop {
        let buf: &[u8] = if head.is_empty() { fresh } else { head };
        let mut slots = http1::header_slots();
        let response = match http1::parse_response(buf, &mut slots, &LIMITS, request_was_head) {
            Ok(Some(response)) => response,
            Ok(None) => {
                if head.is_empty() {
                    head.extend_from_slice(fresh);
                }
                return Ok(None);
            }
            Err(error) => return Err(Failure::Protocol(format!("bad response: {error}"))),
        };
        if (100..200).contains(&response.status) && response.status != 101 {
            let len = response.head_len;
            if head.is_empty() {
                fresh = &fresh[len..];
            } else {
                head.drain(..len);
            }
            if head.is_empty() && fresh.is_empty() {
                return Ok(None);
            }
            continue;
        }
        record.status = response.status;
        if let Some(served_by) = response.header("x-served-by") {
            record.served_by =
                String::from_utf8_lossy(&served_by[..served_by.len().min(255)]).into_owned();
        }
        let mut reader = BodyReader::new(response.body);
        let leftover = &buf[response.head_len..];
        let mut body_bytes = 0u64;
        let used = reader
            .feed(leftover, |data| body_bytes += data.len() as u64)
            .map_err(|e| Failure::Protocol(format!("bad response body: {e}")))?;
        record.bytes_in = body_bytes;
        return Ok(Some((
            reader,
            response.keep_alive && used == leftover.len(),
        )));
    }
}

async fn write_request(connection: &mut Connection, bytes: &[u8]) -> Result<(), Failure> {
    let stream = &connection.stream;
    if let Some(session) = &mut connection.tls {
        return session
            .write_all(stream, bytes)
            .await
            .map_err(|e| TlsFailure::from_stream(e).into());
    }
    let mut written = 0;
    while written < bytes.len() {
        stream.writable().await.map_err(Failure::Io)?;
        match stream.try_write(&bytes[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Failure::Io(e)),
        }
    }
    Ok(())
}

/// Waits for response bytes, reads them into the thread's scratch buffer and hands them to
/// `take`; returns how many were read (0 at the end of the stream). The scratch buffer is only
/// borrowed between awaits, never across one.
async fn read_some(
    ctx: &ThreadCtx,
    connection: &mut Connection,
    mut take: impl FnMut(&[u8]),
) -> Result<usize, Failure> {
    let stream = &connection.stream;
    loop {
        match &mut connection.tls {
            None => {
                // poll_read_ready keeps the waker in the socket's registration: this wait adds
                // a reference to the future, where `readable()` adds a waiter node.
                std::future::poll_fn(|cx| stream.poll_read_ready(cx))
                    .await
                    .map_err(Failure::Io)?;
                let mut scratch = ctx.scratch.borrow_mut();
                match stream.try_read(&mut scratch[..]) {
                    Ok(n) => {
                        if n > 0 && n < scratch.len() {
                            forget_readiness(stream);
                        }
                        take(&scratch[..n]);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(Failure::Io(e)),
                }
            }
            Some(session) => {
                {
                    let mut scratch = ctx.scratch.borrow_mut();
                    match session.try_read(stream, &mut scratch[..]) {
                        Ok(n) => {
                            take(&scratch[..n]);
                            return Ok(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(TlsFailure::from_stream(e).into()),
                    }
                }
                std::future::poll_fn(|cx| stream.poll_read_ready(cx))
                    .await
                    .map_err(Failure::Io)?;
            }
        }
    }
}

/// After a short read the socket is drained: tell tokio so, or the next wait starts with a read
/// that can only say "would block", a wasted system call per request. Safe on a current-thread
/// runtime: the I/O driver cannot run while this task does, so data arriving later raises a new
/// edge that sets readiness again.
pub(crate) fn forget_readiness(stream: &TcpStream) {
    let _ = stream.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
}

fn classify(record: &mut Record, failure: Failure) {
    let (class, text) = match failure {
        Failure::Protocol(text) => (ErrorClass::Protocol, text),
        Failure::Tls(reason) => (ErrorClass::Tls, format!("tls: {reason}")),
        Failure::Connect(error, source) => match error.kind() {
            io::ErrorKind::ConnectionRefused => (
                ErrorClass::ConnectionRefused,
                format!("connection refused: {error}"),
            ),
            io::ErrorKind::AddrNotAvailable => (
                ErrorClass::NoSourcePort,
                match source {
                    Some(source) => {
                        format!("no free source port on {source}: add source addresses (--source)")
                    }
                    None => "no free source port: add source addresses (--source)".to_string(),
                },
            ),
            io::ErrorKind::ConnectionReset => (
                ErrorClass::ConnectionReset,
                format!("connection reset: {error}"),
            ),
            _ => (ErrorClass::Connect, format!("connect: {error}")),
        },
        Failure::Io(error) => match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => (
                ErrorClass::ConnectionReset,
                format!("connection reset: {error}"),
            ),
            _ => (ErrorClass::Protocol, format!("i/o: {error}")),
        },
    };
    record.error = Some(class);
    record.error_text = text;
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nx-served-by: a\r\n\r\npong";

    /// Feeds `reads` to `take_head` one by one, as they would come from the socket.
    fn read_head(reads: &[&[u8]]) -> (Vec<Option<(BodyReader, bool)>>, Record) {
        let mut head = Vec::new();
        let mut record = Record::default();
        let outcomes = reads
            .iter()
            .map(
                |bytes| match take_head(&mut head, bytes, &mut record, false) {
                    Ok(outcome) => outcome,
                    Err(_) => panic!("refused {:?}", String::from_utf8_lossy(bytes)),
                },
            )
            .collect();
        (outcomes, record)
    }

    #[test]
    fn a_head_in_one_read_is_parsed_where_it_lies() {
        let (outcomes, record) = read_head(&[OK]);
        assert_eq!(outcomes, vec![Some((BodyReader::Done, true))]);
        assert_eq!((record.status, record.bytes_in), (200, 4));
        assert_eq!(record.served_by, "a");
    }

    #[test]
    fn a_head_split_over_reads_is_kept_until_whole() {
        let (outcomes, record) = read_head(&[&OK[..10], &OK[10..40], &OK[40..]]);
        assert_eq!(outcomes, vec![None, None, Some((BodyReader::Done, true))]);
        assert_eq!((record.status, record.bytes_in), (200, 4));
    }

    #[test]
    fn interim_responses_are_skipped_in_the_same_read_or_across_reads() {
        let continued = [b"HTTP/1.1 100 Continue\r\n\r\n".as_slice(), OK].concat();
        let (outcomes, record) = read_head(&[&continued]);
        assert_eq!(outcomes, vec![Some((BodyReader::Done, true))]);
        assert_eq!(record.status, 200);

        let (outcomes, record) =
            read_head(&[&continued[..25], &continued[25..30], &continued[30..]]);
        assert_eq!(outcomes, vec![None, None, Some((BodyReader::Done, true))]);
        assert_eq!(record.status, 200);
    }

    #[test]
    fn a_body_that_goes_on_is_left_to_read_and_garbage_is_refused() {
        let (outcomes, record) = read_head(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npong"]);
        assert_eq!(outcomes, vec![Some((BodyReader::Fixed(6), true))]);
        assert_eq!(record.bytes_in, 4);

        let mut head = Vec::new();
        let refused = take_head(
            &mut head,
            b"SSH-2.0-OpenSSH\r\n\r\n",
            &mut Record::default(),
            false,
        );
        assert!(matches!(refused, Err(Failure::Protocol(_))));
    }
}
