//! pong over HTTP/2 by prior knowledge (h2c, `--h2c`): a connection that opens with HTTP/2's
//! preface is served here, every stream as an HTTP/1.1 request would be (`sleep` and `times`
//! read from its fields, one `pong` DATA frame per time, the waits between them), many at once.
//!
//! Over TLS (`--http2` with `--tls-cert`), a connection whose handshake chose h2 by ALPN comes
//! here from the HTTP/1.1 side once the handshake is done, with its session.
//!
//! The frames are throng's own codec's (`throng_h2::server`, the proxy's front door: floods and
//! limits bounded there). One task per connection; streams are entries in a list with the time
//! their next `pong` is due, so a held stream costs its entry, not a task.

use crate::connection::{Counted, InProgress};
use crate::metrics::ListenerStats;
use crate::request::asked;
use crate::server::Worker;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use throng_h2::server::{Connection, Event, Limits, RequestHead, Step};
use throng_h2::ErrorCode;
use throng_net::random;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

/// Whether `bytes` (the first a connection sent) may be HTTP/2's preface: `PRI` is no method
/// of HTTP/1.1 (RFC 9113 §3.4 reserves it), so three bytes decide.
pub(crate) fn looks_like_preface(bytes: &[u8]) -> bool {
    let n = bytes.len().min(3);
    bytes[..n] == b"PRI"[..n]
}

/// A plain connection under `--h2c`: HTTP/2 when its first bytes are the preface, HTTP/1.1
/// otherwise (a client that sends nothing meets the HTTP/1.1 side's idle timeout).
pub(crate) async fn sniff(stream: TcpStream, listener: Arc<ListenerStats>, worker: Rc<Worker>) {
    let deadline = Instant::now() + worker.shared.config.timeout;
    let mut first = [0u8; 3];
    loop {
        let readable = tokio::time::timeout_at(deadline, stream.readable()).await;
        let peeked = match readable {
            Ok(Ok(())) => stream.peek(&mut first).await.unwrap_or(0),
            _ => 0,
        };
        // One or two bytes of `PRI` so far: look again shortly (the socket stays readable).
        if (1..3).contains(&peeked)
            && looks_like_preface(&first[..peeked])
            && Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            continue;
        }
        if peeked == 3 && looks_like_preface(&first) {
            let counted = Counted(Arc::clone(&listener));
            return serve(
                Transport::Plain(stream),
                Vec::new(),
                listener,
                worker,
                counted,
            )
            .await;
        }
        return crate::connection::serve(stream, listener, worker).await;
    }
}

/// The most unparsed input held: a frame of the codec's largest size and its header, twice.
const MAX_INPUT: usize = 2 * (16_384 + 9);

/// A stream being answered.
struct Answer {
    stream: u32,
    /// The next `pong` is due then; `left` are still to come.
    due: Instant,
    left: u64,
    sleep: (u64, u64),
    head_only: bool,
    /// Due, but the client's window has no room for a `pong`: sent when it opens.
    blocked: bool,
    _counted: InProgress,
}

/// The bytes an h2 connection travels on: the socket, or a TLS session over it.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(TcpStream, Box<rustls::ServerConnection>),
}

impl Transport {
    fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(stream) | Transport::Tls(stream, _) => stream,
        }
    }

    /// Writes all of `bytes` (encrypted, with TLS, and with whatever the session had to send).
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(stream) => stream.write_all(bytes).await,
            Transport::Tls(stream, tls) => {
                io::Write::write_all(&mut tls.writer(), bytes)?;
                while tls.wants_write() {
                    match tls.write_tls(&mut throng_tls::config::Socket(stream)) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            stream.writable().await?
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }

    /// Reads what the socket has, through the thread's scratch buffer, and appends its
    /// plaintext to `input`; the bytes read off the socket (0: the client closed, or sent
    /// close_notify).
    fn read_now(&mut self, worker: &Worker, input: &mut Vec<u8>) -> io::Result<usize> {
        let mut scratch = worker.scratch.borrow_mut();
        let n = self.socket().try_read(&mut scratch[..])?;
        let read = scratch.get(..n).unwrap_or_default();
        let Transport::Tls(_, tls) = self else {
            input.extend_from_slice(read);
            return Ok(n);
        };
        if crate::connection::decrypt(tls, read, input).map_err(io::Error::other)? {
            return Ok(0);
        }
        Ok(n)
    }
}

/// Serves one HTTP/2 connection; `input` is what was read of it already (over TLS, what came
/// with the end of the handshake).
pub(crate) async fn serve(
    mut stream: Transport,
    input: Vec<u8>,
    listener: Arc<ListenerStats>,
    worker: Rc<Worker>,
    _counted: Counted,
) {
    let config = &worker.shared.config;
    let mut h2 = Connection::new(Limits::default());
    let (mut input, mut out) = (input, Vec::new());
    h2.start(&mut out);
    let mut answers: Vec<Answer> = Vec::new();
    // What came with the end of a TLS handshake may hold the preface and whole requests.
    if !input.is_empty()
        && take_frames(
            &mut h2,
            &mut input,
            &mut out,
            &mut answers,
            &listener,
            &worker,
        )
        .is_err()
    {
        let _ = stream.write_all(&out).await;
        return;
    }
    let mut last_activity = Instant::now();
    let timer = tokio::time::sleep_until(last_activity);
    tokio::pin!(timer);
    let mut goaway_said = false;
    loop {
        if !out.is_empty() {
            let sent = out.len() as u64;
            let write = tokio::time::timeout(config.timeout, stream.write_all(&out));
            if !matches!(write.await, Ok(Ok(()))) {
                return debug!(
                    "h2 connection from {:?}: write failed",
                    stream.socket().peer_addr()
                );
            }
            listener.bytes_out.fetch_add(sent, Ordering::Relaxed);
            out.clear();
            last_activity = Instant::now();
        }
        if h2.is_closed() || h2.is_drained() || (h2.peer_goaway().is_some() && answers.is_empty()) {
            return;
        }
        // Made before the flag is read, so a stop that begins in between still wakes it.
        let stop_begun = worker.stop_begun.notified();
        if worker.shared.stopping.load(Ordering::Relaxed) && !goaway_said {
            // The graceful stop: GOAWAY in two steps (RFC 9113 §6.8, the second when the
            // client answers the PING between them), the streams in progress finish within the
            // grace, and the client opens no more here.
            h2.shutdown(&mut out);
            goaway_said = true;
            continue;
        }
        let due = answers.iter().filter(|a| !a.blocked).map(|a| a.due).min();
        let idle = last_activity + config.timeout;
        timer.as_mut().reset(due.map_or(idle, |due| due.min(idle)));
        tokio::select! {
            readable = stream.socket().readable() => {
                if readable.is_err() {
                    return;
                }
                let n = match stream.read_now(&worker, &mut input) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => return,
                };
                last_activity = Instant::now();
                listener.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                if take_frames(&mut h2, &mut input, &mut out, &mut answers, &listener, &worker).is_err() {
                    // The codec wrote its GOAWAY: send it, then close.
                    let _ = stream.write_all(&out).await;
                    return;
                }
            }
            _ = stop_begun => {}
            _ = &mut timer => {
                let now = Instant::now();
                if due.is_none_or(|due| due > now) {
                    // Nothing due: the idle timeout.
                    h2.close(ErrorCode::NO_ERROR, "idle", &mut out);
                    let _ = stream.write_all(&out).await;
                    return;
                }
                pong_due(&mut h2, &mut answers, &mut out, now);
            }
        }
    }
}

/// Feeds the codec every whole frame of `input` and acts on what it says.
fn take_frames(
    h2: &mut Connection,
    input: &mut Vec<u8>,
    out: &mut Vec<u8>,
    answers: &mut Vec<Answer>,
    listener: &ListenerStats,
    worker: &Rc<Worker>,
) -> Result<(), ()> {
    let mut at = 0;
    loop {
        let rest = input.get(at..).unwrap_or_default();
        let step = h2
            .next(rest, out, std::time::Instant::now())
            .map_err(|_| ())?;
        let Step::Frame { consumed, event } = step else {
            break;
        };
        at += consumed;
        match event {
            Some(Event::Request { stream, head, .. }) => {
                listener.requests.fetch_add(1, Ordering::Relaxed);
                start(h2, stream, &head, out, answers, worker);
            }
            Some(Event::Data { stream, data, .. }) => {
                // The body is read and dropped, as over HTTP/1.1: its window opens again.
                let n = data.len() as u32;
                h2.release(stream, n, out);
            }
            Some(Event::TooLarge { stream }) => {
                h2.send_head(stream, 431, [], true, out);
            }
            Some(Event::Reset { stream, .. }) => answers.retain(|a| a.stream != stream),
            Some(Event::WindowOpened) => pong_due(h2, answers, out, Instant::now()),
            Some(_) | None => {}
        }
    }
    // What is due already (no `sleep`) goes out with this write, as over HTTP/1.1, not a
    // timer's tick (a millisecond) later.
    pong_due(h2, answers, out, Instant::now());
    input.drain(..at);
    if input.is_empty() {
        // An idle connection keeps no buffer.
        *input = Vec::new();
    }
    if input.len() > MAX_INPUT {
        h2.close(ErrorCode::FRAME_SIZE_ERROR, "input beyond a frame", out);
        return Err(());
    }
    Ok(())
}

/// A new stream: its head answered at once, its first `pong` due after its `sleep`.
fn start(
    h2: &mut Connection,
    stream: u32,
    head: &RequestHead,
    out: &mut Vec<u8>,
    answers: &mut Vec<Answer>,
    worker: &Rc<Worker>,
) {
    let field = |name: &[u8]| head.fields().find(|(n, _)| *n == name).map(|(_, v)| v);
    let (min, max, times) = match asked(field(b"sleep"), field(b"times")) {
        Ok(asked) => asked,
        Err(reason) => {
            h2.send_head(
                stream,
                400,
                [(&b"content-type"[..], &b"text/plain"[..])],
                false,
                out,
            );
            h2.send_data(stream, reason.as_bytes(), true, out);
            return;
        }
    };
    let now = Instant::now();
    let start = worker
        .shared
        .pacer
        .as_ref()
        .map_or(now, |pacer| pacer.reserve(now));
    h2.send_head(
        stream,
        200,
        [(&b"content-type"[..], &b"text/plain"[..])],
        false,
        out,
    );
    answers.push(Answer {
        stream,
        due: start + wait(min, max),
        left: times.saturating_add(1),
        sleep: (min, max),
        head_only: head.method() == b"HEAD",
        blocked: false,
        _counted: InProgress::enter(worker),
    });
}

/// Sends every `pong` due by `now` that the client's window has room for; a stream's last one
/// ends it.
fn pong_due(h2: &mut Connection, answers: &mut Vec<Answer>, out: &mut Vec<u8>, now: Instant) {
    answers.retain_mut(|answer| {
        if answer.due > now && !answer.blocked {
            return true;
        }
        if answer.head_only {
            h2.send_data(answer.stream, b"", true, out);
            return false;
        }
        answer.blocked = h2.send_capacity(answer.stream) < b"pong".len();
        if answer.blocked {
            // Waits for the client's window (WindowOpened), or the idle timeout.
            return true;
        }
        answer.left -= 1;
        let last = answer.left == 0;
        h2.send_data(answer.stream, b"pong", last, out);
        answer.due = now + wait(answer.sleep.0, answer.sleep.1);
        !last
    });
}

fn wait(min: u64, max: u64) -> std::time::Duration {
    std::time::Duration::from_millis(min + random::up_to(max.saturating_sub(min)))
}
