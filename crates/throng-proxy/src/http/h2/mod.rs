//! HTTP/2 at the front door: one client connection's frames (throng-h2's codec, sans I/O) on
//! one task, and each stream an exchange of its own task, the same exchange HTTP/1.1 runs
//! (`../exchange.rs`), through a [`stream_io::StreamIo`] that speaks HTTP/1.1 to it.
//!
//! ```text
//!   client socket --read--> Connection::next --Request--> downgrade --> StreamIo --> exchange (R, Q/C/H, D)
//!                 <-write-- HEADERS/DATA <-- pump <-- HTTP/1.1 response <-----------/
//! ```
//!
//! The connection task holds no buffer while idle: bytes are read into a pooled buffer only
//! when they come (and kept only for a frame read in part), frames to write are made in a
//! vector that goes once written. What an idle h2 connection holds is the codec's state.

// Public for the fuzz target that checks what a naive server would make of the downgrade.
pub mod downgrade;
mod stream_io;

use super::exchange;
use super::io::{read_into, write_with_timeout, ReadFailure};
use crate::session::Session;
use crate::state::Phase;
use crate::stream::ClientStream;
use downgrade::RequestBody;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};
use stream_io::{Response, Shared, SharedRef, StreamIo};
use throng_h2::server::{Connection, Event, Step};
use throng_h2::{ErrorCode, H2Error};
use throng_net::buffers::Buffer;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::debug;

pub use stream_io::StreamIo as H2Stream;

/// How long the first GOAWAY of a graceful shutdown waits for its PING to come back before the
/// second goes anyway.
const GOAWAY_PING_WAIT: Duration = Duration::from_secs(1);

/// A stream the connection serves: what it shares with its exchange, and its request's framing.
struct Served {
    shared: SharedRef,
    body: RequestBody,
}

/// Serves HTTP/2 on `client` until it closes, an error ends it, or the generation drains it.
/// `read` holds what was read already (h2c: the preface that told the protocol).
pub async fn serve(session: Session, mut client: ClientStream, read: Option<Buffer>) {
    let session = Rc::new(session);
    let state = session.frontend_state();
    state.h2_connections.fetch_add(1, Relaxed);
    let timeouts = session.frontend().timeouts;
    let local = client
        .local_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let tls = client.is_tls();
    let wake = Rc::new(Notify::new());
    let mut conn = Connection::new(session.frontend().h2);
    let mut out = Vec::new();
    conn.start(&mut out);
    let mut input = read;
    let mut streams: Vec<(u32, Served)> = Vec::new();
    let mut phase = session.worker.phase.clone();
    let mut draining_since: Option<Instant> = None;
    // The phase's sender goes with its generation: no more changes to wait for then.
    let mut phase_open = true;
    let mut idle_since = Instant::now();
    // What was read before (h2c: the preface and what came with it) is read first.
    let mut got_bytes = input.is_some();
    'connection: loop {
        if !out.is_empty() {
            let writing = Box::pin(write_with_timeout(&mut client, &out, timeouts.client));
            if writing.await.is_err() {
                break;
            }
            out = Vec::new();
        }
        if conn.is_drained() {
            break;
        }
        if *phase.borrow_and_update() != Phase::Serving && draining_since.is_none() {
            // RFC 9113 §6.8: GOAWAY with the highest id, a PING, then the real last id.
            conn.shutdown(&mut out);
            draining_since = Some(Instant::now());
            continue;
        }
        // The second GOAWAY's deadline, while it has not gone (the PING's answer sends it).
        let mut second_goaway = None;
        if let Some(since) = draining_since.filter(|_| !conn.is_final_goaway_sent()) {
            if since.elapsed() >= GOAWAY_PING_WAIT {
                conn.finish_shutdown(&mut out);
                continue;
            }
            second_goaway = Some(since + GOAWAY_PING_WAIT);
        }
        let deadline = if streams.is_empty() {
            idle_since + timeouts.http_keep_alive
        } else {
            // Streams have their own deadlines, in their exchanges.
            Instant::now() + Duration::from_secs(3600)
        };
        let deadline = match second_goaway {
            Some(due) => deadline.min(due),
            None => deadline,
        };
        if !got_bytes {
            tokio::select! {
                read = read_into(&mut client, &mut input, deadline) => match read {
                    Ok(0) | Err(ReadFailure::Io) => break 'connection,
                    Ok(_) => got_bytes = true,
                    Err(ReadFailure::Timeout) => {
                        if streams.is_empty() && draining_since.is_none() {
                            // Idle past `timeout http-keep-alive`: a GOAWAY, not a silent close.
                            conn.close(ErrorCode::NO_ERROR, "idle", &mut out);
                            continue 'connection;
                        }
                    }
                },
                _ = wake.notified() => {}
                changed = phase.changed(), if phase_open => phase_open = changed.is_ok(),
            }
        }
        if std::mem::take(&mut got_bytes) {
            if let Err(error) = read_frames(
                &session,
                &mut conn,
                &mut input,
                &mut out,
                &mut streams,
                &wake,
                tls,
                local,
            ) {
                count_error(&session, &error);
                debug!(
                    "{}: HTTP/2 connection from {} closed: {error}",
                    session.frontend().name,
                    session.peer
                );
                // `out` has the GOAWAY: it goes before the close.
                let _ = Box::pin(write_with_timeout(&mut client, &out, timeouts.client)).await;
                break;
            }
        }
        for (id, served) in streams.iter_mut() {
            let mut shared = served.shared.borrow_mut();
            if shared.to_release > 0 {
                conn.release(*id, shared.to_release, &mut out);
                shared.to_release = 0;
            }
            if downgrade::pump(&mut conn, &mut shared, &mut out) {
                shared.wake();
            }
        }
        streams.retain(|(id, served)| {
            let shared = served.shared.borrow_mut();
            let finished = matches!(shared.state, Response::Done);
            if shared.exchange_done && !finished && shared.gone.is_none() {
                // pump cut it already when the exchange ended in a body; a head never written
                // is a response that will not come.
                conn.reset(*id, ErrorCode::INTERNAL_ERROR, &mut out);
                return false;
            }
            if finished && shared.exchange_done {
                if !shared.request_done && shared.gone.is_none() {
                    // The response is whole and the request is not: RFC 9113 §8.1 says to
                    // stop the client with RST_STREAM(NO_ERROR).
                    conn.reset(*id, ErrorCode::NO_ERROR, &mut out);
                }
                return false;
            }
            !(shared.gone.is_some() && shared.exchange_done)
        });
        // Idle is counted from the last moment a stream was open: PINGs and SETTINGS do not
        // keep a connection that serves nothing open.
        if !streams.is_empty() || !conn.is_idle() {
            idle_since = Instant::now();
        }
    }
    for (_, served) in &streams {
        served.shared.borrow_mut().set_gone("connection closed");
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
}

/// What the first bytes of a plain connection said.
pub enum Sniffed {
    /// HTTP/2's preface (h2c by prior knowledge), read into the buffer.
    H2(Buffer),
    /// Something else: HTTP/1.1, with what was read of it (none when nothing came in time).
    Http1(Option<Buffer>),
    Gone,
}

/// Reads until the bytes are HTTP/2's preface or cannot be: a request line differs from
/// `PRI * HTTP/2.0` within its first bytes, so an HTTP/1.1 client waits for nothing here.
pub async fn sniff_preface(client: &mut ClientStream, deadline: Instant) -> Sniffed {
    let preface = throng_h2::PREFACE;
    let mut read: Option<Buffer> = None;
    loop {
        let filled = read.as_ref().map_or(&[][..], |b| b.filled());
        let n = filled.len().min(preface.len());
        if filled.get(..n) != preface.get(..n) {
            return Sniffed::Http1(read);
        }
        if n == preface.len() {
            return match read {
                Some(buffer) => Sniffed::H2(buffer),
                None => Sniffed::Gone,
            };
        }
        match read_into(client, &mut read, deadline).await {
            Ok(0) | Err(ReadFailure::Io) if read.is_none() => return Sniffed::Gone,
            Ok(0) | Err(ReadFailure::Io) | Err(ReadFailure::Timeout) => {
                // What came is HTTP/1.1's to answer (a 408 or 400 with its log line).
                return Sniffed::Http1(read);
            }
            Ok(_) => {}
        }
    }
}

/// Runs the codec over what was read, starting an exchange for each request.
#[allow(clippy::too_many_arguments)]
fn read_frames(
    session: &Rc<Session>,
    conn: &mut Connection,
    input: &mut Option<Buffer>,
    out: &mut Vec<u8>,
    streams: &mut Vec<(u32, Served)>,
    wake: &Rc<Notify>,
    tls: bool,
    local: std::net::SocketAddr,
) -> Result<(), H2Error> {
    let Some(buffer) = input.as_mut() else {
        return Ok(());
    };
    let now = std::time::Instant::now();
    loop {
        let step = conn.next(buffer.filled(), out, now)?;
        let Step::Frame { consumed, event } = step else {
            break;
        };
        match event {
            None => {}
            Some(Event::Request {
                stream,
                head,
                end_stream,
            }) => {
                let state = session.frontend_state();
                state.h2_streams.fetch_add(1, Relaxed);
                if head.is_connect() {
                    // CONNECT (and RFC 8441's extended CONNECT) are not built: refused on
                    // the stream, the connection goes on.
                    state.h2_stream_refusals.fetch_add(1, Relaxed);
                    conn.send_head(stream, 501, [], true, out);
                    conn.reset(stream, ErrorCode::NO_ERROR, out);
                } else if session.proxy().process.over_budget.load(Relaxed) {
                    // Past `global.memory_budget` no connection is accepted, and no stream
                    // opened on one held already: REFUSED_STREAM says it was not processed,
                    // so the client may send it again (RFC 9113 §8.7).
                    state.h2_stream_refusals.fetch_add(1, Relaxed);
                    debug!(
                        "{}: HTTP/2 stream from {} refused: over the memory budget",
                        session.frontend().name,
                        session.peer
                    );
                    conn.reset(stream, ErrorCode::REFUSED_STREAM, out);
                } else {
                    let is_head = head.method() == b"HEAD";
                    let mut shared = Shared::new(stream, tls, local, is_head);
                    let body = downgrade::request_head(&head, end_stream, &mut shared.request);
                    shared.request_done = end_stream;
                    let shared = Rc::new(RefCell::new(shared));
                    start_exchange(session, Rc::clone(&shared), Rc::clone(wake));
                    streams.push((stream, Served { shared, body }));
                }
            }
            Some(Event::Data {
                stream,
                data,
                end_stream,
            }) => {
                if let Some((_, served)) = streams.iter().find(|(id, _)| *id == stream) {
                    let mut shared = served.shared.borrow_mut();
                    downgrade::request_data(served.body, data, end_stream, &mut shared.request);
                    shared.body_unread += data.len() as u32;
                    shared.request_done |= end_stream;
                    shared.wake();
                } else {
                    // A stream answered already (a refusal, a 431): its bytes are dropped.
                    conn.release(stream, data.len() as u32, out);
                }
            }
            Some(Event::Trailers { stream, fields }) => {
                if let Some((_, served)) = streams.iter().find(|(id, _)| *id == stream) {
                    let mut shared = served.shared.borrow_mut();
                    downgrade::request_trailers(served.body, &fields, &mut shared.request);
                    shared.request_done = true;
                    shared.wake();
                }
            }
            Some(Event::TooLarge { stream }) => {
                let state = session.frontend_state();
                state.h2_streams.fetch_add(1, Relaxed);
                state.bad_requests.fetch_add(1, Relaxed);
                debug!(
                    "{}: HTTP/2 request from {} over the header limits: 431",
                    session.frontend().name,
                    session.peer
                );
                conn.send_head(stream, 431, [], true, out);
                conn.reset(stream, ErrorCode::NO_ERROR, out);
            }
            Some(Event::Reset {
                stream,
                code,
                by_peer,
                reason,
            }) => {
                if !by_peer {
                    session
                        .frontend_state()
                        .h2_stream_refusals
                        .fetch_add(1, Relaxed);
                    debug!(
                        "{}: HTTP/2 stream {stream} from {} reset ({code}): {reason}",
                        session.frontend().name,
                        session.peer
                    );
                }
                if let Some((_, served)) = streams.iter().find(|(id, _)| *id == stream) {
                    served.shared.borrow_mut().set_gone(if by_peer {
                        "stream reset by the client"
                    } else {
                        reason
                    });
                }
            }
            Some(Event::Refused {
                stream,
                code,
                reason,
            }) => {
                let state = session.frontend_state();
                state.h2_stream_refusals.fetch_add(1, Relaxed);
                debug!(
                    "{}: HTTP/2 stream {stream} from {} refused ({code}): {reason}",
                    session.frontend().name,
                    session.peer
                );
            }
            Some(Event::WindowOpened) | Some(Event::GoAway { .. }) => {}
        }
        buffer.consume(consumed);
    }
    Ok(())
}

/// The stream's exchange, on a task of its own, as an HTTP/1.1 connection's would run.
fn start_exchange(session: &Rc<Session>, shared: SharedRef, wake: Rc<Notify>) {
    let session = Rc::clone(session);
    tokio::task::spawn_local(async move {
        let mut client = ClientStream::H2(StreamIo::new(shared, wake));
        let started = Instant::now();
        let exchange = Box::pin(exchange::exchange(
            &session,
            &mut client,
            Buffer::take(),
            started,
            SystemTime::now(),
        ));
        let _ = exchange.await;
        // What the exchange wrote ahead goes as the client's windows let it, within `timeout
        // client` as any write: a client that never opens its window is cut (the task ends
        // with the response unfinished, and the connection resets the stream).
        let limit = session.frontend().timeouts.client;
        let _ = tokio::time::timeout(limit, client.flush()).await;
    });
}

/// A connection error, counted by what it was.
fn count_error(session: &Session, error: &H2Error) {
    let state = session.frontend_state();
    match error.flood {
        Some(flood) => {
            if let Some(counter) = state.h2_floods.get(flood as usize) {
                counter.fetch_add(1, Relaxed);
            }
        }
        None => {
            state.h2_connection_errors.fetch_add(1, Relaxed);
        }
    }
}
