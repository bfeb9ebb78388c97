//! Where a message body ends, and whether the connection stays open after it: RFC 9112 §6-7 and
//! RFC 9110 §7.6.1, to the letter, because a proxy that frames a message differently from the
//! server behind it can be made to carry a hidden request past its own rules (request
//! smuggling). Every rule here refuses what is ambiguous rather than guessing:
//!
//! | what the head says | request | response |
//! |---|---|---|
//! | `Connection` names `Content-Length`, `Transfer-Encoding` or `Host` | 400 | refused (502) |
//! | `Transfer-Encoding` in HTTP/1.0 | 400 | (read as 1.1) |
//! | `Transfer-Encoding` whose final coding is not `chunked` | 400 | body until close |
//! | `Transfer-Encoding` with another coding before `chunked` | 501 | chunked, passed on |
//! | `chunked` twice, or an empty `Transfer-Encoding` | 400 | refused (502) |
//! | both `Content-Length` and `Transfer-Encoding` | 400 | refused (502) |
//! | `Content-Length` not all digits, empty, or values that differ | 400 | refused (502) |
//!
//! Both `Content-Length` and `Transfer-Encoding` is refused rather than HAProxy's rule (chunked
//! wins, the length is dropped, the connection closed after): no honest client sends both, and a
//! refusal leaves nothing for a server behind to read differently.

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::head::HeadError;
use super::{header_tokens, trim_ows, Version};

/// How the end of a body is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Fixed(u64),
    /// `Transfer-Encoding: chunked`: chunks up to the zero-length one.
    Chunked,
    /// Everything until the peer closes (responses only).
    UntilClose,
}

/// A message's framing as read: where its body ends, and the one `Content-Length` value, if any.
pub(crate) type Framing = (BodyLength, Option<u64>);

/// A request's body length. Anything ambiguous is an error, not a guess.
pub(crate) fn request_body(
    version: Version,
    headers: &[httparse::Header<'_>],
) -> Result<Framing, HeadError> {
    refuse_framing_named_in_connection(headers)?;
    if let Some(codings) = transfer_codings(headers)? {
        if version == Version::Http10 {
            return Err(HeadError::TransferEncodingInHttp10);
        }
        if has_field(headers, "content-length") {
            return Err(HeadError::AmbiguousLength);
        }
        return match codings {
            Codings::OnlyChunked => Ok((BodyLength::Chunked, None)),
            Codings::ChunkedLast => Err(HeadError::UnsupportedTransferCoding),
            Codings::NotChunkedLast => Err(HeadError::ChunkedNotFinal),
        };
    }
    let length = content_length(headers)?;
    let body = match length {
        None | Some(0) => BodyLength::Empty,
        Some(n) => BodyLength::Fixed(n),
    };
    Ok((body, length))
}

/// A response's body length; `request_was_head` for a response to `HEAD`. The same checks as a
/// request's, so that a server cannot end a response where the client would not.
pub(crate) fn response_body(
    request_was_head: bool,
    status: u16,
    headers: &[httparse::Header<'_>],
) -> Result<Framing, HeadError> {
    refuse_framing_named_in_connection(headers)?;
    let codings = transfer_codings(headers)?;
    if codings.is_some() && has_field(headers, "content-length") {
        return Err(HeadError::AmbiguousLength);
    }
    // Checked even where it does not frame the body (a response to HEAD, a 304).
    let length = content_length(headers)?;
    if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok((BodyLength::Empty, length));
    }
    let body = match (codings, length) {
        // A response may carry codings the proxy does not decode: the client decodes them.
        (Some(Codings::OnlyChunked | Codings::ChunkedLast), _) => BodyLength::Chunked,
        // RFC 9112 §6.3 (4): the body of such a response ends when the server closes.
        (Some(Codings::NotChunkedLast), _) | (None, None) => BodyLength::UntilClose,
        (None, Some(0)) => BodyLength::Empty,
        (None, Some(n)) => BodyLength::Fixed(n),
    };
    Ok((body, length))
}

/// The fields that frame a message are never hop-by-hop (RFC 9110 §7.6.1): a `Connection` that
/// names one asks the next hop to drop the field that says where the message ends.
fn refuse_framing_named_in_connection(headers: &[httparse::Header<'_>]) -> Result<(), HeadError> {
    let names_framing = header_tokens(headers, "connection").any(|token| {
        FRAMING_FIELDS
            .iter()
            .any(|name| token.eq_ignore_ascii_case(name.as_bytes()))
    });
    if names_framing {
        return Err(HeadError::FramingNamedInConnection);
    }
    Ok(())
}

/// The fields no hop may remove: they say where a message ends and whom it is for.
pub const FRAMING_FIELDS: [&str; 3] = ["content-length", "transfer-encoding", "host"];

/// What `Transfer-Encoding` lists, as far as framing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codings {
    /// `chunked` alone.
    OnlyChunked,
    /// Other codings, then `chunked`.
    ChunkedLast,
    /// The final coding is not `chunked`.
    NotChunkedLast,
}

/// `Transfer-Encoding`'s codings over every such field, `None` without one. `chunked` twice, or
/// a field with no coding at all, is an error: each is a way to make two parsers disagree.
fn transfer_codings(headers: &[httparse::Header<'_>]) -> Result<Option<Codings>, HeadError> {
    if !has_field(headers, "transfer-encoding") {
        return Ok(None);
    }
    let (mut count, mut chunked, mut last_is_chunked) = (0usize, 0usize, false);
    for coding in header_tokens(headers, "transfer-encoding") {
        count += 1;
        last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
        chunked += usize::from(last_is_chunked);
    }
    Ok(Some(match (count, chunked, last_is_chunked) {
        (0, _, _) => return Err(HeadError::BadTransferEncoding),
        (_, 2.., _) => return Err(HeadError::BadTransferEncoding),
        (1, 1, true) => Codings::OnlyChunked,
        (_, _, true) => Codings::ChunkedLast,
        (_, _, false) => Codings::NotChunkedLast,
    }))
}

fn has_field(headers: &[httparse::Header<'_>], name: &str) -> bool {
    headers.iter().any(|h| h.name.eq_ignore_ascii_case(name))
}

/// The `Content-Length`, if any. Repeated fields (or list members) must all agree, each one
/// only digits (no sign, no space inside).
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, HeadError> {
    let mut length = None;
    for field in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for token in field.value.split(|&b| b == b',') {
            let token = trim_ows(token);
            if token.is_empty() || token.len() > 19 || !token.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::BadContentLength);
            }
            let value: u64 = std::str::from_utf8(token)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or(HeadError::BadContentLength)?;
            if length.is_some_and(|seen| seen != value) {
                return Err(HeadError::BadContentLength);
            }
            length = Some(value);
        }
    }
    Ok(length)
}

/// Whether the connection may stay open after this message: HTTP/1.1 unless `Connection: close`;
/// HTTP/1.0 only with `Connection: keep-alive`.
pub(crate) fn keep_alive(version: Version, headers: &[httparse::Header<'_>]) -> bool {
    let mut keep = version == Version::Http11;
    for token in header_tokens(headers, "connection") {
        if token.eq_ignore_ascii_case(b"close") {
            return false;
        }
        if token.eq_ignore_ascii_case(b"keep-alive") {
            keep = true;
        }
    }
    keep
}

/// Consumes a body as it arrives, in whatever pieces, and says where it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyReader {
    Done,
    Fixed(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl BodyReader {
    pub fn new(length: BodyLength) -> BodyReader {
        match length {
            BodyLength::Empty | BodyLength::Fixed(0) => BodyReader::Done,
            BodyLength::Fixed(n) => BodyReader::Fixed(n),
            BodyLength::Chunked => BodyReader::Chunked(ChunkedDecoder::new()),
            BodyLength::UntilClose => BodyReader::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, BodyReader::Done)
    }

    /// The part of `input` that belongs to the body (framing included); what follows it belongs
    /// to the next message.
    pub fn take<'i>(&mut self, input: &'i [u8]) -> Result<&'i [u8], ChunkedError> {
        let n = self.feed(input, |_| {})?;
        Ok(input.split_at_checked(n).map_or(input, |(body, _)| body))
    }

    /// Feeds bytes read from the peer; `data` gets the body's content. Returns how many bytes of
    /// `input` were body (framing included); the rest belong to the next message.
    pub fn feed(&mut self, input: &[u8], data: impl FnMut(&[u8])) -> Result<usize, ChunkedError> {
        self.feed_keeping_trailers(input, data, |_| {})
    }

    /// [`BodyReader::feed`], and a chunked body's trailer section, byte by byte, to `trailers`
    /// ([`ChunkedDecoder::feed_keeping_trailers`]).
    pub fn feed_keeping_trailers(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
        trailers: impl FnMut(u8),
    ) -> Result<usize, ChunkedError> {
        match self {
            BodyReader::Done => Ok(0),
            BodyReader::Fixed(remaining) => {
                let take = input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                data(input.get(..take).unwrap_or_default());
                *remaining -= take as u64;
                if *remaining == 0 {
                    *self = BodyReader::Done;
                }
                Ok(take)
            }
            BodyReader::Chunked(decoder) => {
                let progress = decoder.feed_keeping_trailers(input, data, trailers)?;
                if progress.done {
                    *self = BodyReader::Done;
                }
                Ok(progress.consumed)
            }
            BodyReader::UntilClose => {
                data(input);
                Ok(input.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_body_ends_at_its_length_across_reads() {
        let mut reader = BodyReader::new(BodyLength::Fixed(7));
        let mut body = Vec::new();
        assert_eq!(
            reader.feed(b"abcd", |d| body.extend_from_slice(d)).unwrap(),
            4
        );
        assert!(!reader.is_done());
        assert_eq!(
            reader
                .feed(b"efgGET /", |d| body.extend_from_slice(d))
                .unwrap(),
            3
        );
        assert!(reader.is_done());
        assert_eq!(body, b"abcdefg");
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk() {
        let mut reader = BodyReader::new(BodyLength::Chunked);
        let mut body = Vec::new();
        let input = b"3\r\nabc\r\n0\r\n\r\nnext";
        assert_eq!(
            reader.feed(input, |d| body.extend_from_slice(d)).unwrap(),
            input.len() - 4
        );
        assert!(reader.is_done());
        assert_eq!(body, b"abc");
    }

    #[test]
    fn an_empty_body_is_done_at_once() {
        assert!(BodyReader::new(BodyLength::Empty).is_done());
        assert!(BodyReader::new(BodyLength::Fixed(0)).is_done());
        assert!(!BodyReader::new(BodyLength::Fixed(1)).is_done());
    }
}
