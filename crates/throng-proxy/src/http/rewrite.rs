//! Heads as they cross the proxy: hop-by-hop fields removed, `X-Forwarded-For` and `Forwarded`
//! added, and the connection's fate said in `Connection`.
//!
//! The fields that frame a message are written as the proxy read them, not copied: one
//! `Content-Length` with the value the codec checked, and a request's `Transfer-Encoding` as
//! plain `chunked`. Whatever spelling a client used, the server behind reads the same framing as
//! the proxy did. They are never hop-by-hop, whatever `Connection` says (the codec refuses a
//! message whose `Connection` names them; this is the second lock on the same door).

use std::io::Write;
use std::net::IpAddr;
use throng_http1::{header_tokens, BodyLength, RequestHead, ResponseHead, Version, FRAMING_FIELDS};

/// Fields that describe one hop (RFC 9110 §7.6.1); each side of the proxy has its own.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "expect",
];

fn is_hop_by_hop(name: &str, listed: &[&[u8]]) -> bool {
    if FRAMING_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f)) {
        return false;
    }
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || listed
            .iter()
            .any(|l| name.as_bytes().eq_ignore_ascii_case(l))
}

/// Copies a head's fields, less the hop-by-hop ones, writing the framing fields as parsed:
/// `Content-Length` once with its checked value, `Transfer-Encoding` once as `chunked` when
/// `chunked_only` (a request, whose only accepted coding is chunked), else as it came.
fn copy_fields(
    out: &mut Vec<u8>,
    headers: &[throng_http1::Header<'_>],
    content_length: Option<u64>,
    chunked_only: bool,
) {
    let listed: Vec<&[u8]> = header_tokens(headers, "connection").collect();
    let (mut length_written, mut coding_written) = (false, false);
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            if let (false, Some(length)) = (length_written, content_length) {
                let _ = write!(out, "Content-Length: {length}\r\n");
                length_written = true;
            }
        } else if chunked_only && h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !coding_written {
                field(out, "Transfer-Encoding", b"chunked");
                coding_written = true;
            }
        } else if !is_hop_by_hop(h.name, &listed) {
            field(out, h.name, h.value);
        }
    }
}

fn version(v: Version) -> &'static str {
    match v {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    }
}

/// Options for the request sent to a server.
pub struct Forward {
    pub client: IpAddr,
    pub tls: bool,
    pub forwardfor: bool,
    pub forwarded: bool,
    /// The `Upgrade` value, when the client asks to switch protocols.
    pub upgrade: Option<Vec<u8>>,
}

/// The request head for the server.
pub fn request(out: &mut Vec<u8>, head: &RequestHead<'_, '_>, forward: &Forward) {
    let _ = write!(
        out,
        "{} {} {}\r\n",
        head.method,
        head.target,
        version(head.version)
    );
    let chunked = head.body == BodyLength::Chunked;
    copy_fields(out, head.headers, head.content_length, chunked);
    if let Some(upgrade) = &forward.upgrade {
        field(out, "Connection", b"upgrade");
        field(out, "Upgrade", upgrade);
    } else if head.version == Version::Http10 {
        // Ask the server to keep the connection for the next request all the same.
        field(out, "Connection", b"keep-alive");
    }
    if forward.forwardfor {
        let _ = write!(out, "X-Forwarded-For: {}\r\n", forward.client);
    }
    if forward.forwarded {
        let proto = if forward.tls { "https" } else { "http" };
        match forward.client {
            IpAddr::V4(ip) => {
                let _ = write!(out, "Forwarded: for={ip};proto={proto}\r\n");
            }
            IpAddr::V6(ip) => {
                let _ = write!(out, "Forwarded: for=\"[{ip}]\";proto={proto}\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// How the client connection goes on after a response.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ClientConnection {
    KeepAlive,
    Close,
    Upgrade,
}

/// The response head for the client.
pub fn response(
    out: &mut Vec<u8>,
    head: &ResponseHead<'_, '_>,
    client_version: Version,
    then: ClientConnection,
) {
    let _ = write!(
        out,
        "{} {} {}\r\n",
        version(head.version),
        head.status,
        head.reason
    );
    copy_fields(out, head.headers, head.content_length, false);
    match then {
        ClientConnection::Upgrade => {
            field(out, "Connection", b"upgrade");
            if let Some(upgrade) = head.header("upgrade") {
                field(out, "Upgrade", upgrade);
            }
        }
        ClientConnection::Close => field(out, "Connection", b"close"),
        ClientConnection::KeepAlive if client_version == Version::Http10 => {
            field(out, "Connection", b"keep-alive")
        }
        ClientConnection::KeepAlive => {}
    }
    out.extend_from_slice(b"\r\n");
}

fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The answer the proxy gives itself, with HAProxy's words; the connection closes after it.
pub fn error_response(status: u16) -> Vec<u8> {
    let (title, text) = match status {
        400 => ("400 Bad request", "Your browser sent an invalid request."),
        408 => (
            "408 Request Time-out",
            "Your browser didn't send a complete request in time.",
        ),
        414 => ("414 Request-URI Too Long", "The request line is too long."),
        431 => (
            "431 Request Header Fields Too Large",
            "The request head is too large.",
        ),
        501 => (
            "501 Not Implemented",
            "The request uses a transfer coding the proxy does not support.",
        ),
        502 => (
            "502 Bad Gateway",
            "The server returned an invalid or incomplete response.",
        ),
        503 => (
            "503 Service Unavailable",
            "No server is available to handle this request.",
        ),
        504 => ("504 Gateway Time-out", "The server didn't respond in time."),
        _ => (
            "500 Internal Server Error",
            "An internal server error occurred.",
        ),
    };
    let body = format!("<html><body><h1>{title}</h1>\n{text}\n</body></html>\n");
    let mut out = Vec::with_capacity(body.len() + 160);
    let _ = write!(
        out,
        "HTTP/1.1 {title}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_http1::{header_slots, parse_request, parse_response, Limits};

    #[test]
    fn requests_lose_hop_by_hop_fields_and_gain_forwarded_for() {
        let raw = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n";
        let mut slots = header_slots();
        let head = parse_request(raw, &mut slots, &Limits::default())
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        let forward = Forward {
            client: "127.0.0.9".parse().unwrap(),
            tls: true,
            forwardfor: true,
            forwarded: true,
            upgrade: None,
        };
        request(&mut out, &head, &forward);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 127.0.0.9\r\nForwarded: for=127.0.0.9;proto=https\r\n\r\n"
        );
    }

    fn forward_plain() -> Forward {
        Forward {
            client: "127.0.0.9".parse().unwrap(),
            tls: false,
            forwardfor: false,
            forwarded: false,
            upgrade: None,
        }
    }

    #[test]
    fn framing_fields_are_written_as_parsed() {
        let raw =
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-length:5\r\n\r\n";
        let mut slots = header_slots();
        let head = parse_request(raw, &mut slots, &Limits::default())
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        request(&mut out, &head, &forward_plain());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
        );

        let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED \r\nTransfer-Encoding:\r\n\r\n";
        let mut slots = header_slots();
        let head = parse_request(raw, &mut slots, &Limits::default())
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        request(&mut out, &head, &forward_plain());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn framing_fields_are_never_hop_by_hop() {
        let listed: [&[u8]; 3] = [b"content-length", b"Transfer-Encoding", b"host"];
        for name in ["Content-Length", "transfer-encoding", "Host"] {
            assert!(!is_hop_by_hop(name, &listed), "{name}");
        }
        assert!(is_hop_by_hop("X-Private", &[b"x-private"]));
        assert!(is_hop_by_hop("Keep-Alive", &[]));
    }

    #[test]
    fn responses_say_when_the_connection_closes() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
        let mut slots = header_slots();
        let head = parse_response(raw, &mut slots, &Limits::default(), false)
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        response(&mut out, &head, Version::Http11, ClientConnection::Close);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }
}
