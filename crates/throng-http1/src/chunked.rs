//! An incremental decoder for `Transfer-Encoding: chunked` (RFC 9112 §7.1), fed whatever pieces
//! the network delivers. It keeps a few bytes of state, never a buffer, and bounds every line it
//! skips. It is strict where parsers are known to differ: after the size only optional spaces
//! and then `;` extensions or CRLF; no control byte in an extension or a trailer; every line
//! ended by CRLF, never a bare LF; no folded trailer lines.

/// The longest chunk-size line (size plus extensions) accepted.
pub const MAX_SIZE_LINE: u32 = 4096;
/// The most trailer bytes accepted after the last chunk.
pub const MAX_TRAILERS: u32 = 16 * 1024;

/// What is wrong with a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk size that is not hexadecimal.
    BadSize,
    /// A chunk size beyond 2^60.
    SizeTooLarge,
    /// A chunk-size line over [`MAX_SIZE_LINE`] or trailers over [`MAX_TRAILERS`].
    LineTooLong,
    /// A line that does not end in CRLF where one must.
    BadLineEnd,
    /// A control byte in a chunk extension or a trailer, or a folded trailer line.
    BadExtensionOrTrailer,
}

impl std::fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkedError::BadSize => "invalid chunk size",
            ChunkedError::SizeTooLarge => "chunk size too large",
            ChunkedError::LineTooLong => "chunk-size line or trailers too long",
            ChunkedError::BadLineEnd => "chunked framing: expected CRLF",
            ChunkedError::BadExtensionOrTrailer => {
                "chunked framing: a control byte in an extension or trailer, or a folded trailer"
            }
        })
    }
}

impl std::error::Error for ChunkedError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hexadecimal size.
    Size {
        value: u64,
        digits: u32,
    },
    /// Spaces after the size, before `;` or CR (the BWS of RFC 9112 §7.1.1).
    SizeSpace {
        value: u64,
    },
    /// Skipping `;name=value` extensions up to the CR.
    Extension {
        value: u64,
    },
    /// After the size line's CR.
    SizeLf {
        value: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final blank line.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Decoder state; see [`ChunkedDecoder::feed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line, or of all trailers, seen so far.
    line_bytes: u32,
}

/// How far a call to [`ChunkedDecoder::feed`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes that belonged to the body (framing included).
    pub consumed: usize,
    /// The body ended (last chunk and trailers read); input past `consumed` is not body.
    pub done: bool,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            line_bytes: 0,
        }
    }

    /// Decodes as much of `input` as belongs to the body, passing chunk data (slices of `input`)
    /// to `data`.
    pub fn feed(
        &mut self,
        input: &[u8],
        data: impl FnMut(&[u8]),
    ) -> Result<Progress, ChunkedError> {
        self.feed_keeping_trailers(input, data, |_| {})
    }

    /// [`ChunkedDecoder::feed`], passing the trailer section's bytes to `trailers` as they are
    /// checked (the field lines with their CRLFs, then the final CRLF): for a proxy that carries
    /// trailers on, as HTTP/2 trailers. At most [`MAX_TRAILERS`] of them.
    pub fn feed_keeping_trailers(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
        mut trailers: impl FnMut(u8),
    ) -> Result<Progress, ChunkedError> {
        let mut at = 0;
        while let (Some(&byte), false) = (input.get(at), self.state == State::Done) {
            if let State::Data(remaining) = self.state {
                let take = (input.len() - at).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                data(input.get(at..at + take).unwrap_or_default());
                at += take;
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            let in_trailers = matches!(
                self.state,
                State::TrailerStart | State::TrailerLine | State::TrailerLf | State::EndLf
            );
            self.step(byte)?;
            if in_trailers {
                trailers(byte);
            }
            at += 1;
        }
        Ok(Progress {
            consumed: at,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size { value, digits } => {
                self.count_line_byte(MAX_SIZE_LINE)?;
                match (byte as char).to_digit(16) {
                    Some(_) if value >> 60 != 0 => return Err(ChunkedError::SizeTooLarge),
                    Some(digit) => State::Size {
                        value: value << 4 | u64::from(digit),
                        digits: digits + 1,
                    },
                    None if digits == 0 => return Err(ChunkedError::BadSize),
                    None => match byte {
                        b';' => State::Extension { value },
                        b' ' | b'\t' => State::SizeSpace { value },
                        b'\r' => State::SizeLf { value },
                        _ => return Err(ChunkedError::BadSize),
                    },
                }
            }
            State::SizeSpace { value } => {
                self.count_line_byte(MAX_SIZE_LINE)?;
                match byte {
                    b' ' | b'\t' => State::SizeSpace { value },
                    b';' => State::Extension { value },
                    b'\r' => State::SizeLf { value },
                    _ => return Err(ChunkedError::BadSize),
                }
            }
            State::Extension { value } => {
                self.count_line_byte(MAX_SIZE_LINE)?;
                match byte {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    byte if is_control(byte) => return Err(ChunkedError::BadExtensionOrTrailer),
                    _ => State::Extension { value },
                }
            }
            State::SizeLf { value } if byte == b'\n' => {
                self.line_bytes = 0;
                if value == 0 {
                    State::TrailerStart
                } else {
                    State::Data(value)
                }
            }
            State::DataCr if byte == b'\r' => State::DataLf,
            State::DataLf if byte == b'\n' => State::Size {
                value: 0,
                digits: 0,
            },
            State::TrailerStart => {
                self.count_line_byte(MAX_TRAILERS)?;
                match byte {
                    b'\r' => State::EndLf,
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    // A line starting with a space folds the one before (obs-fold).
                    b' ' | b'\t' => return Err(ChunkedError::BadExtensionOrTrailer),
                    byte if is_control(byte) => return Err(ChunkedError::BadExtensionOrTrailer),
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLine => {
                self.count_line_byte(MAX_TRAILERS)?;
                match byte {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    byte if is_control(byte) => return Err(ChunkedError::BadExtensionOrTrailer),
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLf if byte == b'\n' => State::TrailerStart,
            State::EndLf if byte == b'\n' => State::Done,
            State::SizeLf { .. }
            | State::DataCr
            | State::DataLf
            | State::TrailerLf
            | State::EndLf => return Err(ChunkedError::BadLineEnd),
            // `feed` handles data in bulk and stops at Done.
            State::Data(_) | State::Done => self.state,
        };
        Ok(())
    }

    fn count_line_byte(&mut self, limit: u32) -> Result<(), ChunkedError> {
        self.line_bytes += 1;
        if self.line_bytes > limit {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }
}

/// A control byte other than HTAB: never part of an extension or a field (RFC 9110 §5.5).
fn is_control(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trailer_section_is_handed_over_as_checked_across_pieces() {
        let body = b"4\r\npong\r\n0\r\ngrpc-status: 0\r\nx-sum: abc\r\n\r\n";
        for piece in 1..body.len() {
            let mut decoder = ChunkedDecoder::new();
            let (mut data, mut trailers) = (Vec::new(), Vec::new());
            let mut done = false;
            for part in body.chunks(piece) {
                let progress = decoder
                    .feed_keeping_trailers(
                        part,
                        |d| data.extend_from_slice(d),
                        |b| trailers.push(b),
                    )
                    .unwrap();
                assert_eq!(progress.consumed, part.len());
                done = progress.done;
            }
            assert!(done, "piece {piece}");
            assert_eq!(data, b"pong", "piece {piece}");
            assert_eq!(
                trailers, b"grpc-status: 0\r\nx-sum: abc\r\n\r\n",
                "piece {piece}"
            );
        }
        // No trailers: only the final CRLF.
        let mut trailers = Vec::new();
        ChunkedDecoder::new()
            .feed_keeping_trailers(b"0\r\n\r\n", |_| {}, |b| trailers.push(b))
            .unwrap();
        assert_eq!(trailers, b"\r\n");
    }

    fn decode_in_pieces(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut consumed = 0;
        for part in input.chunks(piece) {
            let progress = decoder.feed(part, |d| body.extend_from_slice(d))?;
            consumed += progress.consumed;
            if progress.done {
                return Ok((body, consumed));
            }
        }
        panic!("body did not end");
    }

    #[test]
    fn decodes_whatever_the_pieces() {
        let input = b"4\r\npong\r\nA;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nGET";
        for piece in 1..=input.len() {
            let (body, consumed) = decode_in_pieces(input, piece).unwrap();
            assert_eq!(body, b"pong0123456789", "piece {piece}");
            assert_eq!(consumed, input.len() - 3, "piece {piece}");
        }
    }

    #[test]
    fn refuses_broken_framing() {
        let bad = |input: &[u8]| {
            let mut decoder = ChunkedDecoder::new();
            decoder.feed(input, |_| {}).unwrap_err()
        };
        assert_eq!(bad(b"x\r\n"), ChunkedError::BadSize);
        assert_eq!(bad(b"\r\n"), ChunkedError::BadSize);
        assert_eq!(bad(b"4\npong"), ChunkedError::BadSize);
        assert_eq!(bad(b"4\r\npongXY"), ChunkedError::BadLineEnd);
        assert_eq!(bad(b"fffffffffffffffff\r\n"), ChunkedError::SizeTooLarge);
        let long_extension = [b"1;".as_slice(), &[b'a'; 5000]].concat();
        assert_eq!(bad(&long_extension), ChunkedError::LineTooLong);
        let endless_trailers = [b"0\r\n".as_slice(), &b"X: y\r\n".repeat(4000)].concat();
        assert_eq!(bad(&endless_trailers), ChunkedError::LineTooLong);
    }

    /// The chunk-size and trailer tricks that parsers have read differently.
    #[test]
    fn smuggling_vectors() {
        let outcome = |input: &[u8]| {
            let mut decoder = ChunkedDecoder::new();
            decoder.feed(input, |_| {}).map(|progress| progress.done)
        };
        use ChunkedError::*;
        let cases: &[(&str, &[u8], Result<bool, ChunkedError>)] = &[
            (
                "spaces then an extension",
                b"1 ;a=b\r\nx\r\n0\r\n\r\n",
                Ok(true),
            ),
            ("spaces then CRLF", b"1  \r\nx\r\n0\r\n\r\n", Ok(true)),
            (
                "junk after the size",
                b"1 x\r\nx\r\n0\r\n\r\n",
                Err(BadSize),
            ),
            (
                "a sign before the size",
                b"+1\r\nx\r\n0\r\n\r\n",
                Err(BadSize),
            ),
            ("0x before the size", b"0x1\r\nx\r\n0\r\n\r\n", Err(BadSize)),
            (
                "size ended by a bare LF",
                b"1\nx\r\n0\r\n\r\n",
                Err(BadSize),
            ),
            (
                "extension ended by a bare LF",
                b"1;a\nx\r\n0\r\n\r\n",
                Err(BadLineEnd),
            ),
            (
                "NUL in an extension",
                b"1;a\x00\r\nx\r\n0\r\n\r\n",
                Err(BadExtensionOrTrailer),
            ),
            (
                "bare CR in an extension",
                b"1;a\rb\r\nx\r\n0\r\n\r\n",
                Err(BadLineEnd),
            ),
            (
                "data longer than its size",
                b"1\r\nxx\r\n0\r\n\r\n",
                Err(BadLineEnd),
            ),
            (
                "data ended by a bare LF",
                b"1\r\nx\n0\r\n\r\n",
                Err(BadLineEnd),
            ),
            ("last chunk ended by a bare LF", b"0\r\n\n", Err(BadLineEnd)),
            (
                "trailer ended by a bare LF",
                b"0\r\nX: y\n\r\n",
                Err(BadLineEnd),
            ),
            (
                "folded trailer",
                b"0\r\nX: y\r\n z\r\n\r\n",
                Err(BadExtensionOrTrailer),
            ),
            (
                "control byte in a trailer",
                b"0\r\nX: \x01\r\n\r\n",
                Err(BadExtensionOrTrailer),
            ),
            (
                "leading zeros",
                b"0000000000000000000001\r\nx\r\n0\r\n\r\n",
                Ok(true),
            ),
            (
                "a size past 2^64",
                b"10000000000000000\r\n",
                Err(SizeTooLarge),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(&outcome(input), want, "{name}");
        }
    }
}
