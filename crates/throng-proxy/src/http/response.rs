//! Step H: the server's response head, read without a buffer until the server sends, checked
//! by the codec (ambiguous framing is refused: 502, and the server connection is not reused),
//! and rewritten for the client with the connection's fate.

use super::failure::Failed;
use super::io::is_empty;
use super::request::Request;
use super::rewrite::{self, ClientConnection};
use super::LIMITS;
use crate::server_stream::ServerStream;
use crate::stream::ClientStream;
use std::future::Future;
use std::io;
use std::time::Duration;
use throng_http1::{self as http1, BodyLength};
use throng_net::buffers::Buffer;

/// The response head as the client gets it, and what the exchange needs to know of it.
pub(super) struct Head {
    pub(super) status: u16,
    pub(super) then: ClientConnection,
    pub(super) server_keep_alive: bool,
    pub(super) response_body: BodyLength,
    pub(super) out: Vec<u8>,
}

/// Parses the response head at the start of `res`, consumes it and writes the client's version.
pub(super) fn client_head(res: &mut Buffer, request: &Request, stopping: bool) -> Option<Head> {
    let mut slots = http1::header_slots();
    let head = http1::parse_response(res.filled(), &mut slots, &LIMITS, request.is_head)
        .ok()
        .flatten()?;
    let upgrade = head.status == 101 && request.upgrade;
    let then = if upgrade {
        ClientConnection::Upgrade
    } else if request.keep_alive && head.body != BodyLength::UntilClose && !stopping {
        ClientConnection::KeepAlive
    } else {
        ClientConnection::Close
    };
    let mut out = Vec::with_capacity(head.head_len + 64);
    rewrite::response(&mut out, &head, request.version, then);
    let parsed = Head {
        status: head.status,
        then,
        server_keep_alive: head.keep_alive && !upgrade,
        response_body: head.body,
        out,
    };
    let head_len = head.head_len;
    res.consume(head_len);
    Some(parsed)
}

/// Reads the final response head (informational 1xx responses other than 101 are dropped: the
/// proxy answered `Expect` itself). A buffer is taken only once the server sends something. A
/// `101` to a request that asked for no upgrade is refused (502): the server would speak another
/// protocol on a connection the proxy still frames as HTTP.
pub(super) async fn read_response_head(
    server: &mut ServerStream,
    client: &ClientStream,
    request: &Request,
    limit: Duration,
) -> Result<Buffer, Failed> {
    let request_was_head = request.is_head;
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut watch_client = true;
    let mut res: Option<Buffer> = None;
    loop {
        if let Some(filled) = res.as_mut() {
            let mut slots = http1::header_slots();
            match http1::parse_response(filled.filled(), &mut slots, &LIMITS, request_was_head) {
                Ok(Some(head)) if (100..200).contains(&head.status) && head.status != 101 => {
                    let len = head.head_len;
                    filled.consume(len);
                    continue;
                }
                Ok(Some(head)) if head.status == 101 && !request.upgrade => {
                    return Err(Failed::BadResponse)
                }
                Ok(Some(_)) => return res.ok_or(Failed::BadResponse),
                Ok(None) => {}
                Err(_) => return Err(Failed::BadResponse),
            }
        }
        if is_empty(&res) {
            res = None;
        }
        // Over TLS, what came with the last read may be decrypted already: no wait for it.
        if !server.has_pending().map_err(|_| Failed::ServerClosed)? {
            wait_for_server(server, client, &mut watch_client, deadline.as_mut()).await?;
        }
        let filled = res.get_or_insert_with(Buffer::take);
        let spare = filled.spare();
        if spare.is_empty() {
            return Err(Failed::BadResponse);
        }
        match server.try_read(spare) {
            Ok(0) => return Err(Failed::ServerClosed),
            Ok(n) => filled.end += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(Failed::ServerClosed),
        }
    }
}

/// Waits until the server has something to read, with no buffer and no future of its own per
/// socket: the wait registers in the sockets' readiness slots. A client that closes meanwhile
/// ends the wait (`CH`); one that sends data is left alone (that data is for later).
pub(super) async fn wait_for_server(
    server: &ServerStream,
    client: &ClientStream,
    watch_client: &mut bool,
    mut deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Result<(), Failed> {
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(ready) = server.poll_read_ready(cx) {
            return std::task::Poll::Ready(ready.map_err(|_| Failed::ServerClosed));
        }
        if client.poll_gone(cx, watch_client).is_ready() {
            return std::task::Poll::Ready(Err(Failed::ClientGone(*b"CH")));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(Failed::ServerTimeout));
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::tests::planned;

    fn head_for(request: &[u8], response: &[u8], stopping: bool) -> Option<(Head, String)> {
        let request = planned(request);
        let mut res = Buffer::take();
        res.spare()[..response.len()].copy_from_slice(response);
        res.end = response.len();
        let head = client_head(&mut res, &request, stopping)?;
        let rest = String::from_utf8_lossy(res.filled()).into_owned();
        Some((head, rest))
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

    #[test]
    fn keep_alive_only_when_both_sides_and_the_framing_allow() {
        let (head, rest) = head_for(
            GET,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false,
        )
        .unwrap();
        assert!(head.then == ClientConnection::KeepAlive && head.server_keep_alive);
        assert_eq!(head.response_body, BodyLength::Fixed(2));
        assert_eq!(rest, "ok", "the head is consumed, the body stays");
        let (until_close, _) = head_for(GET, b"HTTP/1.1 200 OK\r\n\r\nok", false).unwrap();
        assert!(until_close.then == ClientConnection::Close && !until_close.server_keep_alive);
        let (stopping, _) =
            head_for(GET, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true).unwrap();
        assert!(stopping.then == ClientConnection::Close);
        assert!(String::from_utf8(stopping.out)
            .unwrap()
            .contains("Connection: close"));
        let (old, _) = head_for(
            b"GET / HTTP/1.0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(
            old.then == ClientConnection::Close,
            "HTTP/1.0 without keep-alive"
        );
    }

    #[test]
    fn an_upgrade_only_when_asked() {
        let ask =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        let (head, _) = head_for(ask, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", false).unwrap();
        assert!(head.then == ClientConnection::Upgrade && !head.server_keep_alive);
    }

    #[test]
    fn ambiguous_responses_do_not_parse() {
        for response in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: content-length\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 2\n\n",
        ] {
            assert!(head_for(GET, response, false).is_none());
        }
    }
}
