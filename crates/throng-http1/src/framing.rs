//! Where a message body ends, and whether the connection stays open after it (RFC 9112 §6, §9).

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::head::HeadError;
use super::{header_tokens, Version};

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

/// A request's body length. Anything ambiguous is an error, not a guess: a proxy that guesses
/// differently from the server behind it can be smuggled requests past.
pub(crate) fn request_body(
    version: Version,
    headers: &[httparse::Header<'_>],
) -> Result<BodyLength, HeadError> {
    if let Some(last_coding) = header_tokens(headers, "transfer-encoding").last() {
        let has_length = headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("content-length"));
        if has_length || version == Version::Http10 || !last_coding.eq_ignore_ascii_case(b"chunked")
        {
            return Err(HeadError::AmbiguousLength);
        }
        return Ok(BodyLength::Chunked);
    }
    Ok(match content_length(headers)? {
        None | Some(0) => BodyLength::Empty,
        Some(n) => BodyLength::Fixed(n),
    })
}

/// A response's body length; `request_was_head` for a response to `HEAD`.
pub(crate) fn response_body(
    request_was_head: bool,
    status: u16,
    headers: &[httparse::Header<'_>],
) -> Result<BodyLength, HeadError> {
    if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyLength::Empty);
    }
    if let Some(last_coding) = header_tokens(headers, "transfer-encoding").last() {
        return Ok(if last_coding.eq_ignore_ascii_case(b"chunked") {
            BodyLength::Chunked
        } else {
            BodyLength::UntilClose
        });
    }
    Ok(match content_length(headers)? {
        None => BodyLength::UntilClose,
        Some(0) => BodyLength::Empty,
        Some(n) => BodyLength::Fixed(n),
    })
}

/// The `Content-Length`, if any. Repeated fields (or list members) must all agree.
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, HeadError> {
    let mut length = None;
    for token in header_tokens(headers, "content-length") {
        if !token.iter().all(u8::is_ascii_digit) || token.len() > 19 {
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
    if length.is_none()
        && headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        return Err(HeadError::BadContentLength); // present but empty
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

    /// Feeds bytes read from the peer; `data` gets the body's content. Returns how many bytes of
    /// `input` were body (framing included); the rest belong to the next message.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkedError> {
        match self {
            BodyReader::Done => Ok(0),
            BodyReader::Fixed(remaining) => {
                let take = input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                data(&input[..take]);
                *remaining -= take as u64;
                if *remaining == 0 {
                    *self = BodyReader::Done;
                }
                Ok(take)
            }
            BodyReader::Chunked(decoder) => {
                let progress = decoder.feed(input, data)?;
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
