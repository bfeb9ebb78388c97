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
    /// Both `Content-Length` and `Transfer-Encoding`: the ambiguity request smuggling lives on.
    AmbiguousLength,
    /// `Connection` names `Content-Length`, `Transfer-Encoding` or `Host`, which no hop may drop.
    FramingNamedInConnection,
    /// A `Transfer-Encoding` in an HTTP/1.0 request, which cannot have one (RFC 9112 §6.1).
    TransferEncodingInHttp10,
    /// A request body in a transfer coding other than `chunked`, which throng does not decode.
    UnsupportedTransferCoding,
    /// A request's `Transfer-Encoding` whose final coding is not `chunked`: its end is unknown.
    ChunkedNotFinal,
    /// `chunked` twice, or a `Transfer-Encoding` that lists nothing.
    BadTransferEncoding,
    /// A line ended by a bare LF, or a bare CR anywhere in the head (RFC 9112 §2.2).
    BareLineEnding,
    /// More than one `Host`, or one that is not a host and port (RFC 9112 §3.2).
    BadHost,
}

impl HeadError {
    /// The HTTP status a server answers this error with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UriTooLong => 414,
            HeadError::UnsupportedTransferCoding => 501,
            HeadError::Malformed(_)
            | HeadError::BadContentLength
            | HeadError::AmbiguousLength
            | HeadError::FramingNamedInConnection
            | HeadError::TransferEncodingInHttp10
            | HeadError::ChunkedNotFinal
            | HeadError::BadTransferEncoding
            | HeadError::BareLineEnding
            | HeadError::BadHost => 400,
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
            HeadError::AmbiguousLength => "both Content-Length and Transfer-Encoding",
            HeadError::FramingNamedInConnection => {
                "Connection names Content-Length, Transfer-Encoding or Host"
            }
            HeadError::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 message",
            HeadError::UnsupportedTransferCoding => "a transfer coding other than chunked",
            HeadError::ChunkedNotFinal => "Transfer-Encoding whose final coding is not chunked",
            HeadError::BadTransferEncoding => "chunked twice, or an empty Transfer-Encoding",
            HeadError::BareLineEnding => "a line not ended by CRLF (bare CR or LF)",
            HeadError::BadHost => "more than one Host, or an invalid one",
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
    /// The one value every `Content-Length` field agrees on, if there is any.
    pub content_length: Option<u64>,
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
    /// The one value every `Content-Length` field agrees on, if there is any.
    pub content_length: Option<u64>,
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
        slots.get_mut(..slots_len).unwrap_or_default(),
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head_bytes => n,
        Ok(_) => return incomplete_or_too_large(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(error) => return Err(HeadError::Malformed(syntax_error(error))),
    };
    check_line_endings(buf.get(..head_len).unwrap_or_default())?;
    let version = Version::from_minor(request.version.unwrap_or(1));
    let headers: &'h [httparse::Header<'b>] = request.headers;
    check_host(headers)?;
    let (body, content_length) = framing::request_body(version, headers)?;
    Ok(Some(RequestHead {
        method: request.method.unwrap_or_default(),
        target: request.path.unwrap_or_default(),
        version,
        headers,
        head_len,
        body,
        content_length,
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
        slots.get_mut(..slots_len).unwrap_or_default(),
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head_bytes => n,
        Ok(_) => return incomplete_or_too_large(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(error) => return Err(HeadError::Malformed(syntax_error(error))),
    };
    check_line_endings(buf.get(..head_len).unwrap_or_default())?;
    let version = Version::from_minor(response.version.unwrap_or(1));
    let status = response.code.unwrap_or_default();
    let headers: &'h [httparse::Header<'b>] = response.headers;
    let (body, content_length) = framing::response_body(request_was_head, status, headers)?;
    Ok(Some(ResponseHead {
        version,
        status,
        reason: response.reason.unwrap_or_default(),
        headers,
        head_len,
        body,
        content_length,
        keep_alive: framing::keep_alive(version, headers) && body != BodyLength::UntilClose,
    }))
}

/// Every line of a head ends in CRLF, and no CR stands alone: httparse takes a bare LF for a line
/// end (RFC 9112 §2.2 lets a recipient do so), but a server behind the proxy may not, and the two
/// would then see different lines.
fn check_line_endings(head: &[u8]) -> Result<(), HeadError> {
    let mut previous = 0u8;
    for (at, &byte) in head.iter().enumerate() {
        let bare_lf = byte == b'\n' && previous != b'\r';
        let bare_cr = previous == b'\r' && byte != b'\n';
        if bare_lf || bare_cr || (byte == b'\r' && at + 1 == head.len()) {
            return Err(HeadError::BareLineEnding);
        }
        previous = byte;
    }
    Ok(())
}

/// At most one `Host`, and one that can be a host (reg-name, IPv4 or IP literal) with a port
/// (RFC 9112 §3.2, RFC 3986 §3.2.2). A missing `Host` is for the caller to judge: the proxy
/// refuses an HTTP/1.1 request without one, pong answers it.
fn check_host(headers: &[httparse::Header<'_>]) -> Result<(), HeadError> {
    let mut hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return match headers.iter().any(|h| h.name.eq_ignore_ascii_case("host")) {
            true => Err(HeadError::BadHost),
            false => Ok(()),
        };
    };
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(b);
    if !host.value.iter().all(allowed) {
        return Err(HeadError::BadHost);
    }
    Ok(())
}

fn incomplete_or_too_large<T>(buf: &[u8], limits: &Limits) -> Result<Option<T>, HeadError> {
    if buf.len() < limits.max_head_bytes {
        return Ok(None);
    }
    let first_line_ends = buf
        .get(..limits.max_head_bytes)
        .is_some_and(|head| head.contains(&b'\n'));
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
        let chunked = request(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(chunked.body, BodyLength::Chunked);
        let list = request(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(list.body, BodyLength::Fixed(5));
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
        assert_eq!(request(not_last).unwrap_err(), HeadError::ChunkedNotFinal);
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

/// Every framing decision pinned by a vector: the smuggling tricks proxies and servers have been
/// known to read differently, and what the codec says to each.
#[cfg(test)]
mod framing_vectors {
    use super::*;
    use crate::header_slots;

    /// What a head parses to: its body framing, or the error (whose status the caller sends).
    fn framing(text: &[u8]) -> Result<BodyLength, HeadError> {
        let mut slots = header_slots();
        match parse_request(text, &mut slots, &Limits::default()) {
            Ok(Some(head)) => Ok(head.body),
            Ok(None) => panic!("incomplete head: {:?}", String::from_utf8_lossy(text)),
            Err(error) => Err(error),
        }
    }

    fn response_framing(text: &[u8]) -> Result<BodyLength, HeadError> {
        let mut slots = header_slots();
        match parse_response(text, &mut slots, &Limits::default(), false) {
            Ok(Some(head)) => Ok(head.body),
            Ok(None) => panic!("incomplete head: {:?}", String::from_utf8_lossy(text)),
            Err(error) => Err(error),
        }
    }

    const MALFORMED: Result<BodyLength, HeadError> = Err(HeadError::Malformed(""));

    /// Compares errors by kind (a syntax error's text is httparse's business).
    fn same(got: &Result<BodyLength, HeadError>, want: &Result<BodyLength, HeadError>) -> bool {
        match (got, want) {
            (Err(HeadError::Malformed(_)), Err(HeadError::Malformed(_))) => true,
            _ => got == want,
        }
    }

    #[test]
    fn requests() {
        use BodyLength::*;
        use HeadError::*;
        let cases: &[(&str, &[u8], Result<BodyLength, HeadError>)] = &[
            ("plain length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", Ok(Fixed(5))),
            ("chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Ok(Chunked)),
            ("CL.TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n", Err(AmbiguousLength)),
            ("TE.CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", Err(AmbiguousLength)),
            ("Connection: content-length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\n", Err(FramingNamedInConnection)),
            ("Connection: Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, Transfer-Encoding\r\n\r\n", Err(FramingNamedInConnection)),
            ("Connection: host", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n", Err(FramingNamedInConnection)),
            ("TE: chunked, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Err(BadTransferEncoding)),
            ("TE twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Err(BadTransferEncoding)),
            ("TE: identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", Err(ChunkedNotFinal)),
            ("TE: gzip, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Err(UnsupportedTransferCoding)),
            ("TE: chunked, identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", Err(ChunkedNotFinal)),
            ("TE: xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", Err(ChunkedNotFinal)),
            ("TE: chunked with a vertical tab", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n", MALFORMED),
            ("TE: chunked with a form feed", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0cchunked\r\n\r\n", MALFORMED),
            ("TE: quoted", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", Err(ChunkedNotFinal)),
            ("TE: empty", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", Err(BadTransferEncoding)),
            ("TE: ,", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", Err(BadTransferEncoding)),
            ("TE name with space before the colon", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", MALFORMED),
            ("TE folded (obs-fold)", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", MALFORMED),
            ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Err(TransferEncodingInHttp10)),
            ("differing lengths", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Err(BadContentLength)),
            ("differing lengths in a list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", Err(BadContentLength)),
            ("signed length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", Err(BadContentLength)),
            ("negative length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Err(BadContentLength)),
            ("hex length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", Err(BadContentLength)),
            ("length with a space inside", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n", Err(BadContentLength)),
            ("empty length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", Err(BadContentLength)),
            ("length overflowing u64", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", Err(BadContentLength)),
            ("length name with space before the colon", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", MALFORMED),
            ("bare LF line ends", b"POST / HTTP/1.1\nHost: a\nContent-Length: 5\n\n", Err(BareLineEnding)),
            ("one bare LF", b"POST / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\n", Err(BareLineEnding)),
            ("bare CR in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", MALFORMED),
            ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", MALFORMED),
            ("control byte in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", MALFORMED),
            ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Err(BadHost)),
            ("Host with a slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Err(BadHost)),
            ("Host with a port", b"GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", Ok(Empty)),
            ("Host an IPv6 literal", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", Ok(Empty)),
            ("HTTP/1.0 with a length", b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n", Ok(Fixed(3))),
            ("space in the request line", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", MALFORMED),
        ];
        assert!(cases.len() >= 30);
        for (name, text, want) in cases {
            let got = framing(text);
            assert!(same(&got, want), "{name}: got {got:?}, want {want:?}");
            if let Err(error) = got {
                let status = error.status();
                assert!(status == 400 || status == 501, "{name}: status {status}");
            }
        }
    }

    #[test]
    fn responses() {
        use BodyLength::*;
        use HeadError::*;
        let cases: &[(&str, &[u8], Result<BodyLength, HeadError>)] = &[
            (
                "length",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
                Ok(Fixed(2)),
            ),
            (
                "chunked",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok(Chunked),
            ),
            (
                "gzip, chunked: passed on",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Ok(Chunked),
            ),
            (
                "final coding not chunked: until close",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Ok(UntilClose),
            ),
            (
                "neither: until close",
                b"HTTP/1.1 200 OK\r\n\r\n",
                Ok(UntilClose),
            ),
            (
                "both",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(AmbiguousLength),
            ),
            (
                "differing lengths",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
                Err(BadContentLength),
            ),
            (
                "Connection: content-length",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: content-length\r\n\r\n",
                Err(FramingNamedInConnection),
            ),
            (
                "bare LF",
                b"HTTP/1.1 200 OK\nContent-Length: 2\n\n",
                Err(BareLineEnding),
            ),
            (
                "chunked twice",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                Err(BadTransferEncoding),
            ),
            (
                "a bad length on a 304 still refused",
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n",
                Err(BadContentLength),
            ),
            (
                "a length on a 204 frames nothing",
                b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
                Ok(Empty),
            ),
        ];
        for (name, text, want) in cases {
            let got = response_framing(text);
            assert!(same(&got, want), "{name}: got {got:?}, want {want:?}");
        }
    }
}
