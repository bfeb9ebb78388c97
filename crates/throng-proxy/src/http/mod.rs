//! HTTP mode: a client connection's requests, one after another (keep-alive), each sent to a
//! server chosen for it and answered with what the server says, streamed as it comes.
//!
//! A request goes through these steps, and the log line's termination state names the step
//! where it ended: R (receiving the request head), Q (queued for a server slot), C (connecting),
//! H (waiting for the response head), D (data: bodies), and `--` when all went well.
//!
//! - [`exchange`]: the steps in order, each a function that hands the next what it needs.
//! - [`request`]: R's decisions (refuse, or the head the server gets and the route), pure.
//! - [`route`] and [`rewrite`]: which backend, and heads as they cross the proxy.
//! - [`response`]: H, the response head read, checked and rewritten.
//! - [`body`]: D's relays of request and response bodies.
//! - [`failure`]: HAProxy's statuses, termination states and error pages.
//! - [`io`]: waiting and reading without a buffer, writing with a deadline.
//!
//! `LIFECYCLE.md` beside this file is the maintainers' map: states, transitions, invariants, and
//! the framing guards with the vectors that pin them.

// Request and response bytes pass through here: no indexing that could panic (config lookups go
// through `Proxy::backend_config`, the one reviewed exception).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod body;
mod exchange;
mod failure;
pub mod h2;
mod io;
mod request;
mod response;
pub mod rewrite;
pub mod route;

use crate::session::Session;
use crate::stream::ClientStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};
use throng_http1::Limits;
use throng_net::buffers::Buffer;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// The request head limits: 16 KiB and 100 fields, as `throng pong`.
/// What a request head may hold, read from HTTP/1.1 or downgraded from HTTP/2.
pub const LIMITS: Limits = Limits {
    max_head_bytes: 16 * 1024,
    max_headers: 100,
};

/// Serves requests on `client` until it closes, an error ends it, or the proxy stops.
pub async fn serve(session: Session, mut client: ClientStream) {
    if client.alpn_h2() {
        return h2::serve(session, client, None).await;
    }
    let timeouts = session.frontend().timeouts;
    let mut carried: Option<Buffer> = None;
    if session.frontend().h2c && !client.is_tls() {
        let deadline = session.accepted_at + timeouts.http_request;
        match Box::pin(h2::sniff_preface(&mut client, deadline)).await {
            h2::Sniffed::H2(read) => return h2::serve(session, client, Some(read)).await,
            h2::Sniffed::Http1(read) => carried = read,
            h2::Sniffed::Gone => return,
        }
    }
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
            let readable = if first {
                // A new connection's first request is served even while the generation stops:
                // its client has not been answered yet, and would not retry.
                io::wait_readable(&mut client, Instant::now() + wait).await
            } else {
                // Idle between requests: when the generation stops serving, its thread shuts
                // the socket for reading, and the wait ends as if the client had closed (the
                // next request comes on a new connection, to the new generation).
                let Some(socket) = client.socket() else {
                    break;
                };
                let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
                let Some(_idle) = session.worker.idle_while(fd) else {
                    break;
                };
                io::wait_readable(&mut client, Instant::now() + wait).await
            };
            match readable {
                Ok(()) => {}
                Err(io::ReadFailure::Io) => break,
                Err(io::ReadFailure::Timeout) if first => {
                    // Connected, never asked: slowloris or a stuck client (HAProxy: 408, cR).
                    Box::pin(failure::refuse_silent_client(&session, &mut client)).await;
                    break;
                }
                // An idle keep-alive connection timing out is not worth a line, as in HAProxy.
                Err(io::ReadFailure::Timeout) => break,
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
        // Boxed, and in its own statement: an exchange's state exists only while a request is
        // in progress, and the idle connection's task stays small.
        let exchange = Box::pin(exchange::exchange(
            &session,
            &mut client,
            buffer,
            started,
            wall,
        ));
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
    session.count_tls_refusal(&client);
    let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
}

pub(super) enum Next {
    /// Another request may follow; bytes of it already read come along.
    KeepAlive(Option<Buffer>),
    Close,
}
