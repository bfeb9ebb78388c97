//! How an exchange fails, and what the client is told: HAProxy's statuses and termination
//! states, the counters they move, and the proxy's own error responses.

use super::io::write_with_timeout;
use super::rewrite;
use crate::dispatch::{ConnectError, Connected, DispatchError};
use crate::log::Entry;
use crate::session::Session;
use crate::stream::ClientStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

/// Answers 408 to a client that connected and sent nothing within `timeout http-request`.
pub(super) async fn refuse_silent_client(session: &Session, client: &mut ClientStream) {
    let mut entry = session.entry(SystemTime::now());
    entry.termination = *b"cR";
    session
        .frontend_state()
        .request_timeouts
        .fetch_add(1, Relaxed);
    answer_error(session, client, &mut entry, 408).await;
    session.log(entry, session.accepted_at);
}

/// A state the code's own logic rules out. Logged, never a panic: the connection just closes.
pub(super) fn unreachable_state() {
    tracing::error!(
        "internal error: an HTTP exchange reached a state it cannot be in; closing the connection"
    );
}

/// How an exchange failed after a server was chosen.
pub(super) enum Failed {
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
    pub(super) async fn settle(
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

/// Sends the proxy's own error response; the connection closes after it.
pub(super) async fn answer_error(
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

pub(super) async fn dispatch_failed(
    session: &Session,
    client: &mut ClientStream,
    entry: &mut Entry,
    error: DispatchError,
) {
    // A server that failed TLS answered badly (502, as for garbage); no server at all is 503.
    let status = match &error {
        DispatchError::Connect {
            error: ConnectError::Tls(_),
            ..
        } => 502,
        _ => 503,
    };
    if let Some(backend) = entry.backend_index {
        session.note_dispatch_failure(entry, backend, error);
        session
            .proxy()
            .backend_state(backend)
            .responses
            .count(status);
    }
    answer_error(session, client, entry, status).await;
}

/// Counts a status for the backend and server (the frontend counts what the client gets).
pub(super) fn count_status(session: &Session, connected: &Connected, status: u16) {
    session
        .proxy()
        .backend_state(connected.slot.backend)
        .responses
        .count(status);
    connected.slot.state().responses.count(status);
}
