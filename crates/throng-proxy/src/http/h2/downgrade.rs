//! The downgrade both ways. A stream's request becomes an HTTP/1.1 request whose framing the
//! downgrade writes itself (the stream's `content-length`, or chunked when it has none and a
//! body follows), which the exchange then parses with the same codec and checks as any other;
//! and the HTTP/1.1 response the exchange writes becomes HEADERS (connection-specific fields
//! dropped, RFC 9113 §8.2.2) and DATA, its body decoded by the framing its head gives.

use super::stream_io::{Response, Shared};
use crate::http::LIMITS;
use throng_h2::server::{Connection, RequestHead};
use throng_h2::ErrorCode;
use throng_http1::{self as http1, BodyLength, BodyReader};

/// How a request's body is framed for the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// No body (END_STREAM on the HEADERS).
    None,
    /// The stream's `content-length`: DATA goes as it is.
    Length,
    /// No length: each DATA is a chunk, END_STREAM the last chunk, trailers its trailer section.
    Chunked,
}

/// Writes the request's HTTP/1.1 head; the framing of what follows.
pub fn request_head(head: &RequestHead, end_stream: bool, out: &mut Vec<u8>) -> RequestBody {
    out.extend_from_slice(head.method());
    out.push(b' ');
    // CONNECT is refused before this (RFC 8441's too); an h2 request always has a path.
    out.extend_from_slice(head.path().unwrap_or(b"/"));
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(head.authority().unwrap_or_default());
    out.extend_from_slice(b"\r\n");
    for (name, value) in head.fields() {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let body = if end_stream {
        RequestBody::None
    } else if head.content_length.is_some() {
        RequestBody::Length
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        RequestBody::Chunked
    };
    out.extend_from_slice(b"\r\n");
    body
}

/// A piece of the request body, framed as `body` says.
pub fn request_data(body: RequestBody, data: &[u8], end_stream: bool, out: &mut Vec<u8>) {
    if body == RequestBody::Chunked && !data.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else if body == RequestBody::Length {
        out.extend_from_slice(data);
    }
    if end_stream && body == RequestBody::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
}

/// The request's trailers: a chunked body's trailer section; with a length, dropped (HTTP/1.1
/// has nowhere to put them).
pub fn request_trailers(body: RequestBody, trailers: &RequestHead, out: &mut Vec<u8>) {
    if body != RequestBody::Chunked {
        return;
    }
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.fields() {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A chunked body's trailer section as HTTP/2 trailers: names lowercased, and what would frame
/// or route a message, or is HTTP/1.1's own, dropped (RFC 9110 §6.5.1: trailers never carry
/// framing). The decoder has already refused control bytes, bare LFs and folded lines; a line
/// that is no `name: value` with a token for a name is dropped too.
fn trailer_fields(section: &[u8]) -> impl Iterator<Item = (Vec<u8>, &[u8])> {
    section
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = line.split_at(colon);
            let name = name.to_ascii_lowercase();
            let token = !name.is_empty()
                && name
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            let framing = matches!(
                name.as_slice(),
                b"content-length" | b"transfer-encoding" | b"host" | b"trailer" | b"te"
            );
            let value = value.get(1..).unwrap_or_default().trim_ascii();
            (token && !framing && !connection_specific(&name, &[])).then_some((name, value))
        })
}

/// Fields an HTTP/2 message may not carry (§8.2.2), and those a response head names in its
/// `Connection` field.
fn connection_specific(name: &[u8], named: &[&[u8]]) -> bool {
    matches!(
        name,
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
    ) || named.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Sends what the windows allow of the response the exchange wrote: the head as HEADERS, then
/// the body as DATA. Returns whether it sent or consumed anything (the exchange may write on).
pub fn pump(conn: &mut Connection, shared: &mut Shared, out: &mut Vec<u8>) -> bool {
    let mut moved = false;
    loop {
        match &mut shared.state {
            Response::Done => return moved,
            Response::Head => {
                if shared.response.is_empty() {
                    return moved;
                }
                let mut slots = http1::header_slots();
                let parsed =
                    http1::parse_response(&shared.response, &mut slots, &LIMITS, shared.is_head);
                let head = match parsed {
                    Ok(Some(head)) => head,
                    Ok(None) => return moved,
                    Err(_) => {
                        // The exchange wrote it from a head it parsed: not reached.
                        conn.reset(shared.id, ErrorCode::INTERNAL_ERROR, out);
                        shared.state = Response::Done;
                        return true;
                    }
                };
                let named: Vec<&[u8]> = head
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case("connection"))
                    .flat_map(|h| h.value.split(|&b| b == b','))
                    .map(|n| n.trim_ascii())
                    .collect();
                let mut names: Vec<Vec<u8>> = Vec::with_capacity(head.headers.len());
                for h in head.headers.iter() {
                    names.push(h.name.as_bytes().to_ascii_lowercase());
                }
                let fields = names
                    .iter()
                    .zip(head.headers.iter())
                    .filter(|(name, _)| !connection_specific(name, &named))
                    .map(|(name, h)| (name.as_slice(), h.value));
                let status = head.status;
                let informational = (100..200).contains(&status);
                let body = if informational {
                    BodyLength::Empty
                } else {
                    head.body
                };
                let end = matches!(body, BodyLength::Empty | BodyLength::Fixed(0));
                conn.send_head(shared.id, status, fields, end && !informational, out);
                let len = head.head_len;
                shared.response.drain(..len);
                moved = true;
                if informational {
                    continue;
                }
                shared.state = if end {
                    Response::Done
                } else {
                    Response::Body(BodyReader::new(body))
                };
            }
            Response::Body(reader) => {
                let done = reader.is_done();
                if !shared.unsent.is_empty() || done {
                    // With trailers, the last DATA does not end the stream: they do.
                    let section = match done {
                        true => std::mem::take(&mut shared.trailers),
                        false => Vec::new(),
                    };
                    let trailers: Vec<(Vec<u8>, &[u8])> = trailer_fields(&section).collect();
                    let ends = done && trailers.is_empty();
                    let sent = conn.send_data(shared.id, &shared.unsent, ends, out);
                    if sent > 0 {
                        moved = true;
                    }
                    shared.unsent.drain(..sent);
                    if !shared.unsent.is_empty() {
                        // Kept for when the window opens.
                        shared.trailers = section;
                        return moved;
                    }
                    if done {
                        if !ends {
                            let fields = trailers.iter().map(|(n, v)| (n.as_slice(), *v));
                            conn.send_trailers(shared.id, fields, out);
                        }
                        shared.state = Response::Done;
                        return true;
                    }
                }
                if shared.response.is_empty() {
                    if shared.exchange_done {
                        if matches!(reader, BodyReader::UntilClose) {
                            *reader = BodyReader::Done;
                            continue;
                        }
                        // The exchange ended inside the body: the stream is cut, as a
                        // connection would be in HTTP/1.1.
                        conn.reset(shared.id, ErrorCode::INTERNAL_ERROR, out);
                        shared.state = Response::Done;
                        return true;
                    }
                    return moved;
                }
                let (unsent, trailers) = (&mut shared.unsent, &mut shared.trailers);
                let fed = reader.feed_keeping_trailers(
                    &shared.response,
                    |d| unsent.extend_from_slice(d),
                    |b| trailers.push(b),
                );
                match fed {
                    Ok(n) => {
                        shared.response.drain(..n);
                        moved = true;
                        if n == 0 && !reader.is_done() {
                            return moved;
                        }
                    }
                    Err(_) => {
                        conn.reset(shared.id, ErrorCode::INTERNAL_ERROR, out);
                        shared.state = Response::Done;
                        return true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_h2::server::{Block, HeadBuilder};

    fn head(fields: &[(&str, &str)]) -> RequestHead {
        let mut b = HeadBuilder::new(Block::Request);
        for (n, v) in fields {
            b.field(n.as_bytes(), v.as_bytes());
        }
        b.finish().unwrap()
    }

    #[test]
    fn a_request_gets_the_framing_the_downgrade_writes() {
        let get = head(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "example.com"),
            (":path", "/x?y"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]);
        let mut out = Vec::new();
        assert_eq!(request_head(&get, true, &mut out), RequestBody::None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x?y HTTP/1.1\r\nhost: example.com\r\ncookie: a=1; b=2\r\n\r\n"
        );
        let post = head(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
        ]);
        let mut out = Vec::new();
        let body = request_head(&post, false, &mut out);
        assert_eq!(body, RequestBody::Chunked);
        request_data(body, b"hello", false, &mut out);
        request_data(body, b"", true, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            "{text}"
        );
        let sized = head(&[
            (":method", "PUT"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
            ("content-length", "2"),
        ]);
        let mut out = Vec::new();
        let body = request_head(&sized, false, &mut out);
        assert_eq!(body, RequestBody::Length);
        request_data(body, b"hi", true, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("content-length: 2\r\n\r\nhi"), "{text}");
        assert!(!text.contains("chunked"));
    }
}
