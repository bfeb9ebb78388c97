//! Request and response heads, parsed in place.

use super::framing::{self, BodyLength};
use super::{header_value, HeaderSlot, Limits, Version};

/// Why a head cannot be used. Each maps to the status a server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than [`Limits::max_head_bytes`].
    TooLarge,
    /// The request line alone is longer than [`Limits::max_head_bytes`].
    UriTooLong,
    /// More header fields than [`Limits::max_headers`].
    TooManyHeaders,
    /// Not HTTP/1.x syntax; the text says which part.
    Malformed(&'static str),
    /// A `Content-Length` that is not one non-negative integer.
    BadContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`, or a request body whose end cannot be known:
    /// the ambiguity request smuggling lives on.
    AmbiguousLength,
}

impl HeadError {
    /// The HTTP status a server answers this error with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UriTooLong => 414,
            HeadError::Malformed(_) | HeadError::BadContentLength | HeadError::AmbiguousLength => {
                400
            }
        }
    }

    /// A short explanation for logs and error bodies.
    pub fn reason(self) -> &'static str {
        match self {
            HeadError::TooLarge => "request head too large",
            HeadError::UriTooLong => "request line too long",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::Malformed(what) => what,
            HeadError::BadContentLength => "invalid Content-Length",
            HeadError::AmbiguousLength => "ambiguous message length (Content-Length with Transfer-Encoding, or a body without a length)",
        }
    }
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// A parsed request head, borrowing the buffer it was read from.
#[derive(Debug)]
pub struct RequestHead<'b, 'h> {
    pub method: &'b str,
    pub target: &'b str,
    pub version: Version,
    pub headers: &'h [httparse::Header<'b>],
    /// Bytes of the buffer the head took; the body (or the next request) starts there.
    pub head_len: usize,
    pub body: BodyLength,
    /// Whether the client lets the connection stay open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for `100 Continue` before it sends the body.
    pub expect_continue: bool,
}

impl<'b> RequestHead<'b, '_> {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        header_value(self.headers, name)
    }
}

/// A parsed response head, borrowing the buffer it was read from.
#[derive(Debug)]
pub struct ResponseHead<'b, 'h> {
    pub version: Version,
    pub status: u16,
    pub reason: &'b str,
    pub headers: &'h [httparse::Header<'b>],
    pub head_len: usize,
    pub body: BodyLength,
    /// Whether the connection may carry another request after this response's body.
    pub keep_alive: bool,
}

impl<'b> ResponseHead<'b, '_> {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        header_value(self.headers, name)
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)` means "incomplete, read more"; the
/// caller stops reading once `buf` holds `limits.max_head_bytes`, because by then this returns an
/// error.
pub fn parse_request<'b, 'h>(
    buf: &'b [u8],
    slots: &'h mut [HeaderSlot<'b>],
    limits: &Limits,
) -> Result<Option<RequestHead<'b, 'h>>, HeadError> {
    let slots_len = limits.max_headers.min(slots.len());
    let mut request = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        buf,
        &mut slots[..slots_len],
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head_bytes => n,
        Ok(_) => return incomplete_or_too_large(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(error) => return Err(HeadError::Malformed(syntax_error(error))),
    };
    let version = Version::from_minor(request.version.unwrap_or(1));
    let headers: &'h [httparse::Header<'b>] = request.headers;
    let body = framing::request_body(version, headers)?;
    Ok(Some(RequestHead {
        method: request.method.unwrap_or_default(),
        target: request.path.unwrap_or_default(),
        version,
        headers,
        head_len,
        body,
        keep_alive: framing::keep_alive(version, headers),
        expect_continue: header_value(headers, "expect")
            .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue")),
    }))
}

/// Parses a response head from the start of `buf`; `request_was_head` says whether it answers a
/// `HEAD` request (whose response has no body whatever its headers say).
pub fn parse_response<'b, 'h>(
    buf: &'b [u8],
    slots: &'h mut [HeaderSlot<'b>],
    limits: &Limits,
    request_was_head: bool,
) -> Result<Option<ResponseHead<'b, 'h>>, HeadError> {
    let slots_len = limits.max_headers.min(slots.len());
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut slots[..slots_len],
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head_bytes => n,
        Ok(_) => return incomplete_or_too_large(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(error) => return Err(HeadError::Malformed(syntax_error(error))),
    };
    let version = Version::from_minor(response.version.unwrap_or(1));
    let status = response.code.unwrap_or_default();
    let headers: &'h [httparse::Header<'b>] = response.headers;
    let body = framing::response_body(request_was_head, status, headers)?;
    Ok(Some(ResponseHead {
        version,
        status,
        reason: response.reason.unwrap_or_default(),
        headers,
        head_len,
        body,
        keep_alive: framing::keep_alive(version, headers) && body != BodyLength::UntilClose,
    }))
}

fn incomplete_or_too_large<T>(buf: &[u8], limits: &Limits) -> Result<Option<T>, HeadError> {
    if buf.len() < limits.max_head_bytes {
        return Ok(None);
    }
    let first_line_ends = buf[..limits.max_head_bytes].contains(&b'\n');
    Err(if first_line_ends {
        HeadError::TooLarge
    } else {
        HeadError::UriTooLong
    })
}

fn syntax_error(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid method or token",
        httparse::Error::Version => "invalid or unsupported HTTP version",
        httparse::Error::TooManyHeaders => "too many header fields",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_slots;

    /// What the tests look at in a parsed request head, owned.
    #[derive(Debug, PartialEq)]
    struct Summary {
        method: String,
        version: Version,
        body: BodyLength,
        keep_alive: bool,
    }

    fn request(text: &[u8]) -> Result<Option<Summary>, HeadError> {
        let mut slots = header_slots();
        parse_request(text, &mut slots, &Limits::default()).map(|head| {
            head.map(|h| Summary {
                method: h.method.to_string(),
                version: h.version,
                body: h.body,
                keep_alive: h.keep_alive,
            })
        })
    }

    #[test]
    fn reads_a_request_head_in_place() {
        let text = b"GET /ping HTTP/1.1\r\nHost: a\r\nSleep: 100\r\n\r\nrest";
        let mut slots = header_slots();
        let head = parse_request(text, &mut slots, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.method, head.target, head.version),
            ("GET", "/ping", Version::Http11)
        );
        assert_eq!(head.header("sleep"), Some(&b"100"[..]));
        assert_eq!(head.header("times"), None);
        assert_eq!(&text[head.head_len..], b"rest");
        assert_eq!(head.body, BodyLength::Empty);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert_eq!(request(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
        assert_eq!(request(b"").unwrap(), None);
    }

    #[test]
    fn body_framing_of_requests() {
        let fixed = request(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(fixed.body, BodyLength::Fixed(5));
        let chunked = request(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(chunked.body, BodyLength::Chunked);
        let repeated =
            request(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(repeated.body, BodyLength::Fixed(5));
    }

    #[test]
    fn ambiguous_or_bad_lengths_are_refused() {
        let both = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(request(both).unwrap_err(), HeadError::AmbiguousLength);
        let not_last = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert_eq!(request(not_last).unwrap_err(), HeadError::AmbiguousLength);
        let differing = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(request(differing).unwrap_err(), HeadError::BadContentLength);
        let negative = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(request(negative).unwrap_err(), HeadError::BadContentLength);
        let huge = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(request(huge).unwrap_err(), HeadError::BadContentLength);
    }

    #[test]
    fn keep_alive_rules_of_both_versions() {
        let keep = |text: &[u8]| request(text).unwrap().unwrap().keep_alive;
        assert!(keep(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!keep(
            b"GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n"
        ));
        assert!(!keep(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(keep(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn limits_on_size_and_count() {
        let limits = Limits {
            max_head_bytes: 64,
            max_headers: 3,
        };
        let mut slots = header_slots();
        let long_line = [b"GET /".as_slice(), &[b'a'; 80], b" HTTP/1.1\r\n\r\n"].concat();
        assert_eq!(
            parse_request(&long_line, &mut slots, &limits).unwrap_err(),
            HeadError::UriTooLong
        );
        let mut slots = header_slots();
        let long_head = [
            b"GET / HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; 80],
            b"\r\n\r\n",
        ]
        .concat();
        assert_eq!(
            parse_request(&long_head, &mut slots, &limits).unwrap_err(),
            HeadError::TooLarge
        );
        let mut slots = header_slots();
        let many = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(
            parse_request(many, &mut slots, &limits).unwrap_err(),
            HeadError::TooManyHeaders
        );
        assert_eq!(HeadError::TooManyHeaders.status(), 431);
        assert_eq!(HeadError::UriTooLong.status(), 414);
    }

    #[test]
    fn garbage_is_malformed() {
        for text in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            let error = request(text).unwrap_err();
            assert!(matches!(error, HeadError::Malformed(_)), "{error:?}");
            assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn reads_a_response_head_and_its_framing() {
        let text = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-served-by: 127.0.0.1:8282\r\n\r\n4\r\npong\r\n";
        let mut slots = header_slots();
        let head = parse_response(text, &mut slots, &Limits::default(), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.status, head.reason, head.body),
            (200, "OK", BodyLength::Chunked)
        );
        assert_eq!(head.header("X-Served-By"), Some(&b"127.0.0.1:8282"[..]));
        assert!(head.keep_alive);

        let mut slots = header_slots();
        let close = parse_response(
            b"HTTP/1.0 200 OK\r\n\r\npong",
            &mut slots,
            &Limits::default(),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(close.body, BodyLength::UntilClose);
        assert!(!close.keep_alive);

        let mut slots = header_slots();
        let to_head = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            &mut slots,
            &Limits::default(),
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(to_head.body, BodyLength::Empty);
        for status in [b"204", b"304", b"101"] {
            let text = [
                b"HTTP/1.1 ".as_slice(),
                status,
                b" X\r\nContent-Length: 9\r\n\r\n",
            ]
            .concat();
            let mut slots = header_slots();
            let head = parse_response(&text, &mut slots, &Limits::default(), false)
                .unwrap()
                .unwrap();
            assert_eq!(head.body, BodyLength::Empty);
        }
    }
}
