//! A request's fields, as HPACK hands them over, checked against RFC 9113 §8.2 and §8.3 and
//! kept as one allocation: the pseudo-headers, then the fields as the HTTP/1.1 downgrade
//! writes them. Everything a malformed request could smuggle into an HTTP/1.1 head (CR, LF or
//! NUL in a value, a space in `:path`, a connection-specific field, `:authority` and `Host`
//! naming two hosts, a `content-length` its DATA will not match) is refused here, before any
//! byte reaches a server.

/// A part of [`RequestHead::bytes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// A request head that passed every check.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequestHead {
    bytes: Vec<u8>,
    method: Span,
    scheme: Option<Span>,
    authority: Option<Span>,
    path: Option<Span>,
    /// Regular fields, in order; `cookie` crumbs joined into one field (§8.2.3), last.
    fields: Vec<(Span, Span)>,
    /// The request's `content-length`, when it has one.
    pub content_length: Option<u64>,
}

impl RequestHead {
    fn get(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        self.bytes
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }

    pub fn method(&self) -> &[u8] {
        self.get(self.method)
    }

    pub fn scheme(&self) -> Option<&[u8]> {
        self.scheme.map(|s| self.get(s))
    }

    /// `:authority`, or else the `Host` field (they agree when both are there).
    pub fn authority(&self) -> Option<&[u8]> {
        self.authority.map(|s| self.get(s))
    }

    /// Origin-form, or `*` for OPTIONS; `None` only for CONNECT.
    pub fn path(&self) -> Option<&[u8]> {
        self.path.map(|s| self.get(s))
    }

    pub fn is_connect(&self) -> bool {
        self.method() == b"CONNECT"
    }

    /// The regular fields (no pseudo-headers, no `host`: [`Self::authority`] has it).
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|&(n, v)| (self.get(n), self.get(v)))
    }
}

/// Why a request or trailer block is malformed (§8.1.1): a stream error, PROTOCOL_ERROR.
pub type Malformed = &'static str;

/// What a block is for: a request's head, or its trailers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Request,
    Trailers,
}

/// Takes fields one by one and remembers the first reason the block is malformed; later
/// fields are then ignored (the block is still decoded to its end, for HPACK's sake).
pub struct HeadBuilder {
    kind: Block,
    head: RequestHead,
    host: Option<Span>,
    cookies: Vec<u8>,
    regular_seen: bool,
    error: Option<Malformed>,
}

impl HeadBuilder {
    pub fn new(kind: Block) -> HeadBuilder {
        HeadBuilder {
            kind,
            head: RequestHead::default(),
            host: None,
            cookies: Vec::new(),
            regular_seen: false,
            error: None,
        }
    }

    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Err(reason) = self.take(name, value) {
            self.error = Some(reason);
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Span {
        let start = self.head.bytes.len() as u32;
        self.head.bytes.extend_from_slice(bytes);
        Span {
            start,
            len: bytes.len() as u32,
        }
    }

    fn take(&mut self, name: &[u8], value: &[u8]) -> Result<(), Malformed> {
        check_value(value)?;
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.kind == Block::Trailers {
                return Err("pseudo-header in trailers");
            }
            if self.regular_seen {
                return Err("pseudo-header after a regular field");
            }
            let span = self.push(value);
            let slot = match pseudo {
                b"method" => {
                    if self.head.method.len > 0 {
                        return Err("two :method");
                    }
                    if !is_token(value) {
                        return Err(":method not a token");
                    }
                    self.head.method = span;
                    return Ok(());
                }
                b"scheme" => &mut self.head.scheme,
                b"authority" => &mut self.head.authority,
                b"path" => &mut self.head.path,
                // :protocol too: RFC 8441's extended CONNECT is not offered (no
                // SETTINGS_ENABLE_CONNECT_PROTOCOL), so it is unknown here.
                _ => return Err("unknown or response pseudo-header"),
            };
            if slot.is_some() {
                return Err("pseudo-header twice");
            }
            *slot = Some(span);
            return Ok(());
        }
        self.regular_seen = true;
        check_name(name)?;
        match name {
            b"connection" | b"proxy-connection" | b"keep-alive" | b"transfer-encoding"
            | b"upgrade" => return Err("connection-specific field"),
            b"te" if value != b"trailers" => return Err("te other than trailers"),
            _ => {}
        }
        if self.kind == Block::Trailers {
            // Trailers never carry framing: what would frame or route a message is dropped.
            if matches!(name, b"content-length" | b"host" | b"trailer") {
                return Ok(());
            }
        } else {
            match name {
                b"host" => {
                    if self.host.is_some() {
                        return Err("two host fields");
                    }
                    self.host = Some(self.push(value));
                    return Ok(());
                }
                b"content-length" => {
                    let length = parse_length(value)?;
                    if self.head.content_length.is_some_and(|l| l != length) {
                        return Err("content-length values disagree");
                    }
                    self.head.content_length = Some(length);
                }
                b"cookie" => {
                    if !self.cookies.is_empty() {
                        self.cookies.extend_from_slice(b"; ");
                    }
                    self.cookies.extend_from_slice(value);
                    return Ok(());
                }
                _ => {}
            }
        }
        let n = self.push(name);
        let v = self.push(value);
        self.head.fields.push((n, v));
        Ok(())
    }

    /// The head when the block is whole, or why it is malformed.
    pub fn finish(mut self) -> Result<RequestHead, Malformed> {
        if let Some(reason) = self.error {
            return Err(reason);
        }
        if !self.cookies.is_empty() {
            let cookies = std::mem::take(&mut self.cookies);
            let n = self.push(b"cookie");
            let v = self.push(&cookies);
            self.head.fields.push((n, v));
        }
        if self.kind == Block::Trailers {
            return Ok(self.head);
        }
        let head = &self.head;
        if head.method.len == 0 {
            return Err("no :method");
        }
        if let (Some(authority), Some(host)) = (head.authority, self.host) {
            if !head.get(authority).eq_ignore_ascii_case(head.get(host)) {
                return Err(":authority and host disagree");
            }
        }
        if head.authority.is_none() {
            self.head.authority = self.host;
        }
        let head = &self.head;
        match head.authority.map(|a| head.get(a)) {
            Some(authority) => check_authority(authority)?,
            None => return Err("no :authority or host"),
        }
        if head.is_connect() {
            if head.scheme.is_some() || head.path.is_some() {
                return Err("CONNECT with :scheme or :path");
            }
            return Ok(self.head);
        }
        let Some(scheme) = head.scheme() else {
            return Err("no :scheme");
        };
        if !is_scheme(scheme) {
            return Err(":scheme malformed");
        }
        let Some(path) = head.path() else {
            return Err("no :path");
        };
        if path.is_empty() {
            return Err(":path empty");
        }
        if path == b"*" {
            if head.method() != b"OPTIONS" {
                return Err(":path * for a method other than OPTIONS");
            }
        } else if !path.starts_with(b"/") {
            return Err(":path not origin-form");
        }
        if !path.iter().all(|&b| (0x21..0x7f).contains(&b)) {
            return Err(":path with a space or a control or non-ASCII byte");
        }
        Ok(self.head)
    }
}

/// A field name as HTTP/2 allows it: a token, lowercase (§8.2.1).
pub(crate) fn check_name(name: &[u8]) -> Result<(), Malformed> {
    if name.is_empty() {
        return Err("empty field name");
    }
    if name.iter().any(u8::is_ascii_uppercase) {
        return Err("uppercase field name");
    }
    if !is_token(name) {
        return Err("field name not a token");
    }
    Ok(())
}

/// A value with no NUL, CR or LF (§8.2.1), nor any other control byte but HTAB (what RFC 9110
/// allows and what an HTTP/1.1 server may parse), and no whitespace at either end.
pub(crate) fn check_value(value: &[u8]) -> Result<(), Malformed> {
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("control byte (NUL, CR, LF ...) in a field value");
    }
    if value.first().is_some_and(|b| matches!(b, b' ' | b'\t'))
        || value.last().is_some_and(|b| matches!(b, b' ' | b'\t'))
    {
        return Err("whitespace at a field value's end");
    }
    Ok(())
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_scheme(s: &[u8]) -> bool {
    s.first().is_some_and(u8::is_ascii_alphabetic)
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// host[:port] or an IP literal: no userinfo (§8.3.1), nothing that would end a URI's
/// authority or a request line.
fn check_authority(a: &[u8]) -> Result<(), Malformed> {
    if a.is_empty() {
        return Err(":authority empty");
    }
    if a.iter()
        .any(|&b| !(0x21..0x7f).contains(&b) || matches!(b, b'@' | b'/' | b'?' | b'#' | b'\\'))
    {
        return Err(":authority with userinfo or a byte no host has");
    }
    Ok(())
}

pub(crate) fn parse_length(value: &[u8]) -> Result<u64, Malformed> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) || value.len() > 19 {
        return Err("content-length not a number");
    }
    Ok(value
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(kind: Block, fields: &[(&str, &str)]) -> Result<RequestHead, Malformed> {
        let mut b = HeadBuilder::new(kind);
        for (n, v) in fields {
            b.field(n.as_bytes(), v.as_bytes());
        }
        b.finish()
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/a?b=c"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        GET.iter().copied().chain(extra.iter().copied()).collect()
    }

    #[test]
    fn a_plain_request_keeps_its_fields_and_joins_cookies() {
        let head = build(
            Block::Request,
            &with(&[
                ("cookie", "a=1"),
                ("accept", "*/*"),
                ("cookie", "b=2"),
                ("content-length", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(head.method(), b"GET");
        assert_eq!(head.path(), Some(&b"/a?b=c"[..]));
        assert_eq!(head.authority(), Some(&b"example.com"[..]));
        assert_eq!(head.content_length, Some(5));
        let fields: Vec<_> = head.fields().collect();
        assert_eq!(
            fields,
            [
                (&b"accept"[..], &b"*/*"[..]),
                (b"content-length", b"5"),
                (b"cookie", b"a=1; b=2")
            ]
        );
    }

    /// Each way an h2 request could carry a second request, a second framing or another
    /// host into the HTTP/1.1 head it becomes, refused.
    #[test]
    fn what_a_downgrade_could_smuggle_is_malformed() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("x", "a\r\nx-injected: 1")], "CRLF in a value"),
            (&[("x", "a\0b")], "NUL in a value"),
            (&[("x", " a")], "leading space"),
            (&[("X-Upper", "1")], "uppercase name"),
            (&[("bad name", "1")], "space in a name"),
            (&[("bad:name", "1")], "colon in a name"),
            (&[("transfer-encoding", "chunked")], "H2.TE"),
            (&[("connection", "close")], "connection"),
            (&[("keep-alive", "1")], "keep-alive"),
            (&[("upgrade", "websocket")], "upgrade"),
            (&[("te", "gzip")], "te not trailers"),
            (
                &[("content-length", "1"), ("content-length", "2")],
                "two lengths",
            ),
            (&[("content-length", "-1")], "negative length"),
            (&[("content-length", "1 ")], "length with a space"),
            (&[("host", "other.example")], "authority and host disagree"),
            (&[(":status", "200")], "response pseudo"),
            (&[(":protocol", "websocket")], "extended CONNECT"),
        ];
        for (extra, what) in cases {
            assert!(build(Block::Request, &with(extra)).is_err(), "{what}");
        }
        let heads: &[(&[(&str, &str)], &str)] = &[
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":authority", "a"),
                    (":path", "/ HTTP/1.1\r\nx: y"),
                ],
                "request line in :path",
            ),
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":authority", "a"),
                    (":path", "/a b"),
                ],
                "space in :path",
            ),
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":authority", "a"),
                    (":path", "a"),
                ],
                "not origin-form",
            ),
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":authority", "a"),
                    (":path", "*"),
                ],
                "* with GET",
            ),
            (
                &[
                    (":method", "G T"),
                    (":scheme", "https"),
                    (":authority", "a"),
                    (":path", "/"),
                ],
                "method not a token",
            ),
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":authority", "u@a"),
                    (":path", "/"),
                ],
                "userinfo",
            ),
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":authority", "a/b"),
                    (":path", "/"),
                ],
                "slash in authority",
            ),
            (
                &[(":method", "GET"), (":scheme", "https"), (":path", "/")],
                "no host at all",
            ),
            (
                &[(":method", "GET"), (":authority", "a"), (":path", "/")],
                "no scheme",
            ),
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":authority", "a"),
                ],
                "no path",
            ),
            (
                &[
                    (":method", "GET"),
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":authority", "a"),
                    (":path", "/"),
                ],
                "two methods",
            ),
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    ("accept", "*"),
                    (":authority", "a"),
                    (":path", "/"),
                ],
                "pseudo after field",
            ),
            (
                &[
                    (":method", "CONNECT"),
                    (":authority", "a:443"),
                    (":path", "/"),
                ],
                "CONNECT with a path",
            ),
        ];
        for (fields, what) in heads {
            assert!(build(Block::Request, fields).is_err(), "{what}");
        }
    }

    #[test]
    fn host_alone_or_agreeing_is_the_authority_and_options_star_and_connect_pass() {
        let head = build(
            Block::Request,
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("host", "h:8080"),
            ],
        )
        .unwrap();
        assert_eq!(head.authority(), Some(&b"h:8080"[..]));
        assert_eq!(
            head.fields().count(),
            0,
            "host is the authority, not a field"
        );
        assert!(build(Block::Request, &with(&[("host", "EXAMPLE.com")])).is_ok());
        let options = build(
            Block::Request,
            &[
                (":method", "OPTIONS"),
                (":scheme", "https"),
                (":authority", "a"),
                (":path", "*"),
            ],
        );
        assert!(options.is_ok());
        let connect = build(
            Block::Request,
            &[(":method", "CONNECT"), (":authority", "a:443")],
        )
        .unwrap();
        assert!(connect.is_connect());
    }

    #[test]
    fn trailers_have_no_pseudo_headers_and_no_framing() {
        assert!(build(Block::Trailers, &[(":path", "/")]).is_err());
        let t = build(
            Block::Trailers,
            &[("grpc-status", "0"), ("content-length", "9"), ("host", "x")],
        )
        .unwrap();
        let fields: Vec<_> = t.fields().collect();
        assert_eq!(fields, [(&b"grpc-status"[..], &b"0"[..])]);
        assert!(build(Block::Trailers, &[("transfer-encoding", "chunked")]).is_err());
    }
}
