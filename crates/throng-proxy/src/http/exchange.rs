//! One request and its response, as three steps run in order. Each step either hands the next
//! what it needs or stops the exchange ([`Stop`]); the log line's termination state names the
//! step where it stopped:
//!
//! | step | function | waits for | ends early with |
//! |---|---|---|---|
//! | R | [`receive`] | the request head (`timeout http-request`), the body's first bytes | `CR` client left, `cR` 408, `PR` 400/414/431/501, or 503 with no route |
//! | Q, C, H | [`forward`] | a server slot, a connection, the request sent, the response head (`timeout server`) | `sQ`/`SC` 503, `SH` 502, `sH` 504, `PH` 502, `CH` client left, `cD` 408 |
//! | D | [`respond`] | the response body or a tunnel | `CD`, `SD`, `sD`, `PD` |
//!
//! `LIFECYCLE.md` beside this file keeps the transitions and the invariants that must not break.

use super::body::{send_request, stream_body};
use super::failure::{answer_error, count_status, dispatch_failed, unreachable_state, Failed};
use super::io::{is_empty, read_into, write_with_timeout, ReadFailure};
use super::request::{self, Client, Request};
use super::response::{client_head, read_response_head, Head};
use super::rewrite::ClientConnection;
use super::Next;
use crate::dispatch::{self, Connected};
use crate::log::Entry;
use crate::relay;
use crate::session::Session;
use crate::stream::ClientStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;
use throng_http1::{BodyLength, BodyReader};
use throng_net::buffers::Buffer;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tracing::debug;

/// Why an exchange stopped before its end. The client's connection closes either way.
pub(super) enum Stop {
    /// The entry says how; it is logged.
    Logged,
    /// The client closed a keep-alive connection between requests: not worth a log line.
    Quiet,
}

/// One request and its response: R, then Q/C/H, then D.
pub(super) async fn exchange(
    session: &Session,
    client: &mut ClientStream,
    req: Buffer,
    started: Instant,
    wall: SystemTime,
) -> Next {
    let mut entry = session.entry(wall);
    let steps = async {
        let mut received = Box::pin(receive(session, client, req, started, &mut entry)).await?;
        let answered = Box::pin(forward(session, client, &mut received, &mut entry)).await?;
        Box::pin(respond(session, client, received, answered, &mut entry)).await
    };
    let next = match steps.await {
        Ok(next) => next,
        Err(Stop::Quiet) => return Next::Close,
        Err(Stop::Logged) => Next::Close,
    };
    session.log(entry, started);
    next
}

/// What step R hands on: the plan, the body's reader, what goes to the server first (the head
/// and as much of the body as came with it), the client's bytes not yet sent, and the backend.
pub(super) struct Received {
    request: Request,
    body: BodyReader,
    first_flight: Vec<u8>,
    /// Holds bytes from the client only while there are some: not while waiting for a response.
    req: Option<Buffer>,
    backend: usize,
}

/// R: the request head within `timeout http-request`, checked and planned; the body's first
/// bytes; the route; `100 Continue` when the client waits for it.
async fn receive(
    session: &Session,
    client: &mut ClientStream,
    req: Buffer,
    started: Instant,
    entry: &mut Entry,
) -> Result<Received, Stop> {
    let deadline = started + session.frontend().timeouts.http_request;
    let who = Client {
        ip: session.peer.ip(),
        tls: client.is_tls(),
    };
    let mut req = Some(req);
    let mut request = loop {
        let Some(filled) = req.as_ref() else {
            unreachable_state();
            return Err(Stop::Quiet);
        };
        match request::parse(filled.filled(), session.frontend(), who) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(refused) => {
                debug!(
                    "{}: bad request from {}: {}",
                    session.frontend().name,
                    session.peer,
                    refused.reason
                );
                entry.request = "<BADREQ>".into();
                return Err(refuse(session, client, entry, refused.status).await);
            }
        }
        match read_into(client, &mut req, deadline).await {
            Ok(n) if n > 0 => continue,
            Ok(_) | Err(ReadFailure::Io) if is_empty(&req) => return Err(Stop::Quiet),
            Ok(_) | Err(ReadFailure::Io) => {
                entry.termination = *b"CR";
                entry.request = "<BADREQ>".into();
                return Err(Stop::Logged);
            }
            Err(ReadFailure::Timeout) => {
                entry.termination = *b"cR";
                entry.request = "<BADREQ>".into();
                session
                    .frontend_state()
                    .request_timeouts
                    .fetch_add(1, Relaxed);
                Box::pin(answer_error(session, client, entry, 408)).await;
                return Err(Stop::Logged);
            }
        }
    };
    entry.t_request = Some(started.elapsed());
    entry.request = std::mem::take(&mut request.line);
    if client.is_h2() {
        // The line is the downgrade's; the log says what the client spoke, as HAProxy's does.
        if let Some(line) = entry.request.strip_suffix("HTTP/1.1") {
            entry.request = format!("{line}HTTP/2.0");
        }
    }
    let mut body = BodyReader::new(request.body);
    let mut first_flight = std::mem::take(&mut request.upstream_head);
    let Some(buffer) = req.as_mut() else {
        unreachable_state();
        return Err(Stop::Quiet);
    };
    buffer.consume(request.head_len);
    match body.take(buffer.filled()) {
        Ok(part) => {
            first_flight.extend_from_slice(part);
            let n = part.len();
            buffer.consume(n);
        }
        Err(error) => {
            debug!(
                "{}: bad request body from {}: {error}",
                session.frontend().name,
                session.peer
            );
            return Err(refuse(session, client, entry, 400).await);
        }
    }
    entry.bytes_from_client = first_flight.len() as u64;
    session.frontend_state().requests.fetch_add(1, Relaxed);
    let Some(backend) = request.backend else {
        // No route matched and there is no default backend.
        entry.termination = *b"PR";
        Box::pin(answer_error(session, client, entry, 503)).await;
        return Err(Stop::Logged);
    };
    session.note_backend(entry, backend);
    if request.expect_continue {
        // The client waits for this before it sends the body; the server never sees `Expect`.
        if client
            .write_all(throng_http1::write::CONTINUE)
            .await
            .is_err()
        {
            entry.termination = *b"CR";
            return Err(Stop::Logged);
        }
    }
    Ok(Received {
        request,
        body,
        first_flight,
        req,
        backend,
    })
}

/// A request refused at R (`PR`): counted, answered, logged.
async fn refuse(
    session: &Session,
    client: &mut ClientStream,
    entry: &mut Entry,
    status: u16,
) -> Stop {
    entry.termination = *b"PR";
    session.frontend_state().bad_requests.fetch_add(1, Relaxed);
    Box::pin(answer_error(session, client, entry, status)).await;
    Stop::Logged
}

/// What step H hands on: the server's connection and the buffer its response head is in.
pub(super) struct Answered {
    connected: Connected,
    res: Buffer,
    response_started: Instant,
}

/// Q, C and H: a server slot and a connection, the request sent (its body streamed), and the
/// response head within `timeout server`. Once more on a fresh connection when a reused idle
/// one turns out closed before it answered anything, and only if the whole request is still at
/// hand to send again.
async fn forward(
    session: &Session,
    client: &mut ClientStream,
    received: &mut Received,
    entry: &mut Entry,
) -> Result<Answered, Stop> {
    let proxy = session.proxy();
    let backend = received.backend;
    let mut allow_reuse = true;
    loop {
        // Steps that do not wait long are boxed, each in its own statement: the exchange's own
        // state is then what a request waiting minutes for its response needs, little more.
        let connecting = Box::pin(dispatch::connect(
            proxy,
            &session.worker.servers,
            backend,
            crate::balance::Affinity::of(session.peer.ip()),
            allow_reuse,
            None,
        ));
        let mut connected = match connecting.await {
            Ok(connected) => connected,
            Err(error) => {
                Box::pin(dispatch_failed(session, client, entry, error)).await;
                return Err(Stop::Logged);
            }
        };
        session.note_server(entry, backend, connected.slot.server);
        entry.t_queue = Some(connected.queued);
        entry.t_connect = Some(connected.connecting);
        entry.retries = connected.retries;
        let sending = Box::pin(send_request(
            session,
            client,
            &mut connected,
            &received.first_flight,
            &mut received.body,
            &mut received.req,
            entry,
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
                Box::pin(failed.settle(session, client, entry, &connected)).await;
                return Err(Stop::Logged);
            }
        }
        // H: no buffer is held while the server thinks (the story's requests sleep for minutes).
        if is_empty(&received.req) {
            received.req = None;
        }
        if !connected.reused {
            // Only a reused connection is retried: keep what it would resend, nothing else.
            received.first_flight = Vec::new();
        }
        let got = read_response_head(
            &mut connected.stream,
            client,
            &received.request,
            proxy.backend_config(backend).timeouts.server,
        )
        .await;
        match got {
            Ok(res) => {
                return Ok(Answered {
                    connected,
                    res,
                    response_started,
                })
            }
            Err(Failed::ServerClosed)
                if connected.reused
                    && allow_reuse
                    && !received.first_flight.is_empty()
                    && entry.bytes_from_client == received.first_flight.len() as u64 =>
            {
                allow_reuse = false;
                continue;
            }
            Err(failed) => {
                Box::pin(failed.settle(session, client, entry, &connected)).await;
                return Err(Stop::Logged);
            }
        }
    }
}

/// D: the response head rewritten for the client and sent with the body that came with it, then
/// the rest of the body streamed (or, after `101`, a tunnel both ways). The server connection is
/// kept for the next request only when its response ended exactly where its framing said.
async fn respond(
    session: &Session,
    client: &mut ClientStream,
    received: Received,
    answered: Answered,
    entry: &mut Entry,
) -> Result<Next, Stop> {
    let proxy = session.proxy();
    let Received {
        request,
        mut req,
        backend,
        ..
    } = received;
    let Answered {
        mut connected,
        res,
        response_started,
    } = answered;
    entry.t_response = Some(response_started.elapsed());
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
        return Err(Stop::Quiet);
    };
    let upgrade = then == ClientConnection::Upgrade;
    entry.status = Some(status);
    count_status(session, &connected, status);
    session.frontend_state().responses.count(status);

    let client_timeout = session.frontend().timeouts.client;
    let server_timeout = proxy.backend_config(backend).timeouts.server;
    // The head and the body that came with it leave in one write: one send (one TLS record)
    // for a small response, not two.
    let mut out = out;
    let mut reader = BodyReader::new(response_body);
    if !upgrade {
        if let Some(arrived) = res.as_mut().filter(|b| !b.is_empty()) {
            match reader.take(arrived.filled()) {
                Ok(part) => {
                    out.extend_from_slice(part);
                    let n = part.len();
                    arrived.consume(n);
                }
                Err(_) => {
                    entry.termination = *b"PD";
                    connected
                        .slot
                        .state()
                        .response_failures
                        .fetch_add(1, Relaxed);
                    return Err(Stop::Logged);
                }
            }
        }
    }
    let writing = Box::pin(write_with_timeout(client, &out, client_timeout));
    if writing.await.is_err() {
        entry.termination = *b"CD";
        return Err(Stop::Logged);
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
                return Err(Stop::Logged);
            }
            entry.bytes_to_client += early.filled().len() as u64;
        }
        if let Some(early) = req.take().filter(|b| !b.is_empty()) {
            if connected.stream.write_all(early.filled()).await.is_err() {
                entry.termination = *b"SD";
                return Err(Stop::Logged);
            }
        }
        let idle = proxy
            .backend_config(backend)
            .timeouts
            .tunnel
            .unwrap_or(client_timeout.max(server_timeout));
        let tunnel = Box::pin(relay::run(client, &mut connected.stream, idle));
        let tunnel = tunnel.await;
        entry.bytes_to_client += tunnel.to_client;
        entry.bytes_from_client += tunnel.to_server;
        entry.termination = tunnel.ending.termination();
        session.count_bytes(&connected, tunnel.to_server, tunnel.to_client);
        return Ok(Next::Close);
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
        return Err(Stop::Logged);
    }
    let _ = client.flush().await;

    // Done: the server connection waits for the next request; the client's may carry one.
    let Connected {
        slot,
        stream,
        address,
        ..
    } = connected;
    if server_keep_alive
        && reader.is_done()
        && !streamed.extra
        && response_body != BodyLength::UntilClose
    {
        let max = proxy.backend_config(backend).max_idle_per_server;
        session
            .worker
            .servers
            .keep(backend, slot.server, address, stream, max);
    }
    drop(slot);
    Ok(match then {
        ClientConnection::KeepAlive => Next::KeepAlive(req.filter(|b| !b.is_empty())),
        _ => Next::Close,
    })
}
