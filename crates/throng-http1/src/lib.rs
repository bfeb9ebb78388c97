//! A small HTTP/1.1 codec on `httparse` that borrows the caller's buffers: it never copies a head
//! and never keeps one. The proxy's front end, pong and attack's clients all parse with it, so
//! a connection can read into a shared scratch buffer and hold no buffer of its own while idle.
//!
//! - [`head`]: request and response heads, with limits on head size and header count.
//! - [`framing`]: where a body ends (`Content-Length`, chunked, until close) and whether the
//!   connection stays open (the keep-alive rules of HTTP/1.0 and 1.1).
//! - [`chunked`]: an incremental decoder for chunked bodies.
//! - [`write`]: response heads, small whole responses and chunks.

// Hostile bytes come through here: no panic in code that is not a test.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod chunked;
pub mod framing;
pub mod head;
pub mod write;

pub use chunked::{ChunkedDecoder, ChunkedError};
pub use framing::{BodyLength, BodyReader, FRAMING_FIELDS};
pub use head::{parse_request, parse_response, HeadError, RequestHead, ResponseHead};
/// A header field as parsed: a name and a value borrowed from the read buffer.
pub use httparse::Header;

/// How many header slots a parse can use at most; [`Limits::max_headers`] may lower it.
pub const HEADER_SLOTS: usize = 128;

/// A header slot that the parse fills in; left uninitialized until then.
pub type HeaderSlot<'b> = std::mem::MaybeUninit<httparse::Header<'b>>;

/// Header slots for [`parse_request`] and [`parse_response`]. They live on the stack of the
/// (synchronous) parse, not in a connection, and are not initialized: 4 KiB written per parse
/// only to be overwritten was a measurable part of a request's cost.
pub fn header_slots<'b>() -> [HeaderSlot<'b>; HEADER_SLOTS] {
    [const { std::mem::MaybeUninit::uninit() }; HEADER_SLOTS]
}

/// Limits on what a peer may send in a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest head (request or status line, headers, the blank line), in bytes.
    pub max_head_bytes: usize,
    /// The most header fields in one head, at most [`HEADER_SLOTS`].
    pub max_headers: usize,
}

impl Default for Limits {
    /// 16 KiB and 100 headers, like HAProxy's default buffer and `tune.http.maxhdr`.
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// The protocol version of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// The first value of header `name` (names compare case-insensitively).
pub fn header_value<'b>(headers: &[httparse::Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Every comma-separated token of every header `name`, trimmed.
pub fn header_tokens<'a, 'b>(
    headers: &'a [httparse::Header<'b>],
    name: &'a str,
) -> impl Iterator<Item = &'b [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|token| !token.is_empty())
}

/// `bytes` without the optional whitespace (spaces and tabs, RFC 9110 §5.6.3) around it; other
/// bytes that some parsers take for space (form feed, vertical tab) stay and make it invalid.
pub fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |at| at + 1);
    bytes.get(start..end).unwrap_or_default()
}
