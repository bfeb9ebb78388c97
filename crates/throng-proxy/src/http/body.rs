//! Step D's relays: the request body from the client to the server, and the response body
//! from the server to the client, streamed as they arrive with their framing untouched (the
//! codec's `BodyReader` says where each ends, and nothing past that end is sent on).

use super::failure::Failed;
use super::io::{read_into, write_with_timeout, ReadFailure};
use crate::dispatch::Connected;
use crate::log::Entry;
use crate::server_stream::ServerStream;
use crate::session::Session;
use crate::stream::ClientStream;
use std::time::Duration;
use throng_http1::BodyReader;
use throng_net::buffers::Buffer;
use tokio::time::Instant;

/// Sends the request's first flight, then streams the rest of its body from the client.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_request(
    session: &Session,
    client: &mut ClientStream,
    connected: &mut Connected,
    first_flight: &[u8],
    body: &mut BodyReader,
    req: &mut Option<Buffer>,
    entry: &mut Entry,
) -> Result<(), Failed> {
    let backend = session.proxy().backend_config(connected.slot.backend);
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
        let part = body
            .take(filled.filled())
            .map_err(|_| Failed::ClientGone(*b"PR"))?;
        let n = part.len();
        if write_with_timeout(&mut connected.stream, part, server_timeout)
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

pub(super) struct Streamed {
    pub(super) bytes: u64,
    pub(super) failure: Option<[u8; 2]>,
    /// The server sent more than its response: its connection cannot be reused.
    pub(super) extra: bool,
}

/// Streams a response body from the server to the client as it arrives, framing and all.
pub(super) async fn stream_body(
    server: &mut ServerStream,
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
            let part = match reader.take(res.filled()) {
                Ok(part) => part,
                Err(_) => {
                    streamed.failure = Some(*b"PD");
                    return streamed;
                }
            };
            let n = part.len();
            if n > 0 {
                if write_with_timeout(client, part, client_timeout)
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
