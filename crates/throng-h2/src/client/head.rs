//! A response's fields, as HPACK hands them over, checked against RFC 9113 §8.3.2: `:status`
//! alone among the pseudo-headers and first, three digits; names lowercase tokens; no
//! connection-specific field; no CR, LF or NUL in a value; one `content-length`. What passes is
//! kept as one allocation, the fields as an HTTP/1.1 response head would carry them.

use crate::server::head::{check_name, check_value, parse_length};

/// A part of [`ResponseHead::bytes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// A response head (or a trailer block: no status) that passed every check.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResponseHead {
    /// 0 in trailers.
    pub status: u16,
    /// The response's `content-length`, when it has one.
    pub content_length: Option<u64>,
    bytes: Vec<u8>,
    fields: Vec<(Span, Span)>,
}

impl ResponseHead {
    fn get(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        self.bytes
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }

    /// The regular fields, in order (no pseudo-header).
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|&(n, v)| (self.get(n), self.get(v)))
    }

    /// The first field named `name` (lowercase).
    pub fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Why a response block is malformed (§8.1.1): a stream error, PROTOCOL_ERROR.
pub type Malformed = &'static str;

/// Takes fields one by one and remembers the first reason the block is malformed; later fields
/// are then ignored (the block is still decoded to its end, for HPACK's sake).
pub struct ResponseBuilder {
    trailers: bool,
    head: ResponseHead,
    regular_seen: bool,
    error: Option<Malformed>,
}

impl ResponseBuilder {
    /// For a response head, or (`trailers`) for the trailers after its body.
    pub fn new(trailers: bool) -> ResponseBuilder {
        ResponseBuilder {
            trailers,
            head: ResponseHead::default(),
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
        if name == b":status" {
            if self.trailers {
                return Err("pseudo-header in trailers");
            }
            if self.regular_seen {
                return Err("pseudo-header after a regular field");
            }
            if self.head.status != 0 {
                return Err("two :status");
            }
            self.head.status = parse_status(value)?;
            return Ok(());
        }
        if name.starts_with(b":") {
            return Err("request or unknown pseudo-header in a response");
        }
        self.regular_seen = true;
        check_name(name)?;
        match name {
            b"connection" | b"proxy-connection" | b"keep-alive" | b"transfer-encoding"
            | b"upgrade" => return Err("connection-specific field"),
            // Trailers never carry framing.
            b"content-length" | b"trailer" if self.trailers => return Ok(()),
            b"content-length" => {
                let length = parse_length(value)?;
                if self.head.content_length.is_some_and(|l| l != length) {
                    return Err("content-length values disagree");
                }
                self.head.content_length = Some(length);
            }
            _ => {}
        }
        let n = self.push(name);
        let v = self.push(value);
        self.head.fields.push((n, v));
        Ok(())
    }

    /// The head when the block is whole, or why it is malformed.
    pub fn finish(self) -> Result<ResponseHead, Malformed> {
        if let Some(reason) = self.error {
            return Err(reason);
        }
        if !self.trailers && self.head.status == 0 {
            return Err("no :status");
        }
        Ok(self.head)
    }
}

/// Three digits, 100 to 599 (RFC 9110 §15: a status is a three-digit integer; 600 and over
/// are no class an intermediary could act on).
fn parse_status(value: &[u8]) -> Result<u16, Malformed> {
    let &[a, b, c] = value else {
        return Err(":status not three digits");
    };
    if ![a, b, c].iter().all(u8::is_ascii_digit) {
        return Err(":status not three digits");
    }
    let status = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    if !(100..600).contains(&status) {
        return Err(":status out of range");
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(trailers: bool, fields: &[(&str, &str)]) -> Result<ResponseHead, Malformed> {
        let mut b = ResponseBuilder::new(trailers);
        for (n, v) in fields {
            b.field(n.as_bytes(), v.as_bytes());
        }
        b.finish()
    }

    #[test]
    fn a_good_response_keeps_its_fields_in_order() {
        let head = build(
            false,
            &[
                (":status", "200"),
                ("content-length", "4"),
                ("x-served-by", "a"),
            ],
        )
        .unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.content_length, Some(4));
        assert_eq!(head.field(b"x-served-by"), Some(&b"a"[..]));
        assert_eq!(head.fields().count(), 2);
    }

    #[test]
    fn malformed_responses_are_refused_with_their_reason() {
        for (fields, reason) in [
            (&[("content-length", "4")][..], "no :status"),
            (&[(":status", "20")][..], ":status not three digits"),
            (&[(":status", "2x0")][..], ":status not three digits"),
            (&[(":status", "099")][..], ":status out of range"),
            (&[(":status", "200"), (":status", "200")][..], "two :status"),
            (
                &[(":status", "200"), (":path", "/")][..],
                "request or unknown pseudo-header in a response",
            ),
            (
                &[("x", "1"), (":status", "200")][..],
                "pseudo-header after a regular field",
            ),
            (
                &[(":status", "200"), ("transfer-encoding", "chunked")][..],
                "connection-specific field",
            ),
            (
                &[(":status", "200"), ("X-Up", "1")][..],
                "uppercase field name",
            ),
            (
                &[(":status", "200"), ("x", "a\r\nb: c")][..],
                "control byte (NUL, CR, LF ...) in a field value",
            ),
            (
                &[
                    (":status", "200"),
                    ("content-length", "1"),
                    ("content-length", "2"),
                ][..],
                "content-length values disagree",
            ),
        ] {
            assert_eq!(build(false, fields), Err(reason), "{fields:?}");
        }
    }

    #[test]
    fn trailers_have_no_status_and_carry_no_framing() {
        let trailers = build(
            true,
            &[
                ("grpc-status", "0"),
                ("content-length", "9"),
                ("grpc-message", ""),
            ],
        )
        .unwrap();
        assert_eq!(trailers.status, 0);
        assert_eq!(trailers.content_length, None);
        assert_eq!(trailers.fields().count(), 2);
        assert_eq!(
            build(true, &[(":status", "200")]),
            Err("pseudo-header in trailers")
        );
    }
}
