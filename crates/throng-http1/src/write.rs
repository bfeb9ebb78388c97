//! Writing HTTP/1.1 responses and chunks into a caller's buffer.

use std::io::Write;

/// The standard reason phrase of a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// The interim response a client waiting on `Expect: 100-continue` needs before it sends a body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The zero-length chunk that ends a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends a status line and headers, and the blank line that ends the head.
pub fn response_head(out: &mut Vec<u8>, status: u16, headers: &[(&str, &[u8])]) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a whole small response with a plain-text body, closing the connection after it unless
/// `keep_alive`.
pub fn text_response(out: &mut Vec<u8>, status: u16, body: &str, keep_alive: bool) {
    let length = body.len().to_string();
    let mut headers: Vec<(&str, &[u8])> = vec![
        ("content-type", b"text/plain; charset=utf-8"),
        ("content-length", length.as_bytes()),
    ];
    if !keep_alive {
        headers.push(("connection", b"close"));
    }
    response_head(out, status, &headers);
    out.extend_from_slice(body.as_bytes());
}

/// Appends one chunk of a chunked body. An empty `data` would end the body, so it writes nothing.
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{header_slots, parse_response, BodyLength, BodyReader, Limits};

    #[test]
    fn what_is_written_parses_back() {
        let mut out = Vec::new();
        response_head(
            &mut out,
            200,
            &[
                ("transfer-encoding", b"chunked"),
                ("x-served-by", b"127.0.0.1:1"),
            ],
        );
        chunk(&mut out, b"pong");
        chunk(&mut out, b"");
        chunk(&mut out, &[b'x'; 300]);
        out.extend_from_slice(LAST_CHUNK);

        let mut slots = header_slots();
        let head = parse_response(&out, &mut slots, &Limits::default(), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.status, head.reason, head.body),
            (200, "OK", BodyLength::Chunked)
        );
        let mut reader = BodyReader::new(head.body);
        let mut body = Vec::new();
        let used = reader
            .feed(&out[head.head_len..], |d| body.extend_from_slice(d))
            .unwrap();
        assert!(reader.is_done());
        assert_eq!(head.head_len + used, out.len());
        assert_eq!(&body[..4], b"pong");
        assert_eq!(body.len(), 304);
    }

    #[test]
    fn a_text_response_says_its_length_and_whether_it_closes() {
        let mut out = Vec::new();
        text_response(&mut out, 400, "bad sleep header\n", false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("content-length: 17\r\n"));
        assert!(text.contains("connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nbad sleep header\n"));
    }
}
