//! Frames (RFC 9113 §4 and §6): parsed in place from the bytes read, each checked for what the
//! RFC says about its length, its stream and its flags, and written straight into an output
//! buffer. Nothing here keeps state; the connection's rules are in [`crate::server`].

use crate::error::{ErrorCode, H2Error};

pub const HEADER_LEN: usize = 9;
/// The smallest SETTINGS_MAX_FRAME_SIZE, and every peer's until it says otherwise.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE may be.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window (2^31 - 1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// The nine bytes before every frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// The reserved bit is dropped, as §4.1 says a receiver must.
    pub stream: u32,
}

impl Header {
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW,
        })
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A stream's priority as HEADERS or PRIORITY give it (RFC 9113 deprecates the scheme; only
/// a stream depending on itself is still an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    pub depends_on: u32,
}

/// A parsed frame, borrowing its payload from the bytes read.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Data {
        stream: u32,
        end_stream: bool,
        data: &'a [u8],
        /// What the frame counts against flow control: its whole payload, padding included.
        flow_len: u32,
    },
    Headers {
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        priority: Option<Priority>,
        block: &'a [u8],
    },
    Priority {
        stream: u32,
        priority: Priority,
    },
    RstStream {
        stream: u32,
        code: ErrorCode,
    },
    Settings {
        ack: bool,
        /// Six bytes per setting: an identifier and a value.
        params: &'a [u8],
    },
    PushPromise {
        stream: u32,
    },
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: ErrorCode,
        debug: &'a [u8],
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Continuation {
        stream: u32,
        end_headers: bool,
        block: &'a [u8],
    },
    /// A type this endpoint does not know: ignored (§4.1), except inside a header block.
    Unknown {
        kind: u8,
        stream: u32,
    },
}

/// Parses the frame at the start of `input`: `Ok(None)` when it is not all there yet, else the
/// frame and the bytes it took. `max_frame_size` is our SETTINGS_MAX_FRAME_SIZE.
pub fn parse(input: &[u8], max_frame_size: u32) -> Result<Option<(Frame<'_>, usize)>, H2Error> {
    let Some(header) = Header::parse(input) else {
        return Ok(None);
    };
    if header.len > max_frame_size {
        // Connection error for every type: simpler than deciding which frames "could alter
        // the state of the entire connection" (§4.2), and allowed for all.
        return Err(H2Error::connection(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame larger than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    let total = HEADER_LEN + header.len as usize;
    let Some(payload) = input.get(HEADER_LEN..total) else {
        return Ok(None);
    };
    Ok(Some((parse_payload(header, payload)?, total)))
}

fn parse_payload(h: Header, payload: &[u8]) -> Result<Frame<'_>, H2Error> {
    let conn = |code, reason| Err(H2Error::connection(code, reason));
    let on_stream = |reason| {
        if h.stream == 0 {
            Err(H2Error::connection(ErrorCode::PROTOCOL_ERROR, reason))
        } else {
            Ok(())
        }
    };
    let on_connection = |reason| {
        if h.stream != 0 {
            Err(H2Error::connection(ErrorCode::PROTOCOL_ERROR, reason))
        } else {
            Ok(())
        }
    };
    match h.kind {
        kind::DATA => {
            on_stream("DATA on stream 0")?;
            let data = unpad(h, payload)?;
            Ok(Frame::Data {
                stream: h.stream,
                end_stream: h.has(flag::END_STREAM),
                data,
                flow_len: h.len,
            })
        }
        kind::HEADERS => {
            on_stream("HEADERS on stream 0")?;
            let mut block = unpad(h, payload)?;
            let mut priority = None;
            if h.has(flag::PRIORITY) {
                let Some((fields, rest)) = block.split_first_chunk::<5>() else {
                    return conn(
                        ErrorCode::FRAME_SIZE_ERROR,
                        "HEADERS too short for PRIORITY",
                    );
                };
                // A HEADERS depending on itself is a stream error, but its block must be
                // decoded first: the connection checks it.
                let [a, b, c, d, _weight] = *fields;
                priority = Some(Priority {
                    depends_on: u32::from_be_bytes([a, b, c, d]) & MAX_WINDOW,
                });
                block = rest;
            }
            Ok(Frame::Headers {
                stream: h.stream,
                end_stream: h.has(flag::END_STREAM),
                end_headers: h.has(flag::END_HEADERS),
                priority,
                block,
            })
        }
        kind::PRIORITY => {
            on_stream("PRIORITY on stream 0")?;
            let Ok(fields) = <&[u8; 5]>::try_from(payload) else {
                return Err(H2Error::stream(
                    h.stream,
                    ErrorCode::FRAME_SIZE_ERROR,
                    "PRIORITY not 5 bytes",
                ));
            };
            Ok(Frame::Priority {
                stream: h.stream,
                priority: parse_priority(h.stream, fields)?,
            })
        }
        kind::RST_STREAM => {
            on_stream("RST_STREAM on stream 0")?;
            let Ok(code) = <[u8; 4]>::try_from(payload) else {
                return conn(ErrorCode::FRAME_SIZE_ERROR, "RST_STREAM not 4 bytes");
            };
            Ok(Frame::RstStream {
                stream: h.stream,
                code: ErrorCode(u32::from_be_bytes(code)),
            })
        }
        kind::SETTINGS => {
            on_connection("SETTINGS on a stream")?;
            let ack = h.has(flag::ACK);
            if ack && !payload.is_empty() {
                return conn(ErrorCode::FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
            }
            if !payload.len().is_multiple_of(6) {
                return conn(ErrorCode::FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6");
            }
            Ok(Frame::Settings {
                ack,
                params: payload,
            })
        }
        kind::PUSH_PROMISE => Ok(Frame::PushPromise { stream: h.stream }),
        kind::PING => {
            on_connection("PING on a stream")?;
            let Ok(data) = <[u8; 8]>::try_from(payload) else {
                return conn(ErrorCode::FRAME_SIZE_ERROR, "PING not 8 bytes");
            };
            Ok(Frame::Ping {
                ack: h.has(flag::ACK),
                data,
            })
        }
        kind::GOAWAY => {
            on_connection("GOAWAY on a stream")?;
            let Some((fixed, debug)) = payload.split_first_chunk::<8>() else {
                return conn(ErrorCode::FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes");
            };
            let [a, b, c, d, e, f, g, i] = *fixed;
            Ok(Frame::GoAway {
                last_stream: u32::from_be_bytes([a, b, c, d]) & MAX_WINDOW,
                code: ErrorCode(u32::from_be_bytes([e, f, g, i])),
                debug,
            })
        }
        kind::WINDOW_UPDATE => {
            let Ok(bytes) = <[u8; 4]>::try_from(payload) else {
                return conn(ErrorCode::FRAME_SIZE_ERROR, "WINDOW_UPDATE not 4 bytes");
            };
            let increment = u32::from_be_bytes(bytes) & MAX_WINDOW;
            if increment == 0 {
                return Err(H2Error::stream(
                    h.stream,
                    ErrorCode::PROTOCOL_ERROR,
                    "WINDOW_UPDATE of 0",
                ));
            }
            Ok(Frame::WindowUpdate {
                stream: h.stream,
                increment,
            })
        }
        kind::CONTINUATION => {
            on_stream("CONTINUATION on stream 0")?;
            Ok(Frame::Continuation {
                stream: h.stream,
                end_headers: h.has(flag::END_HEADERS),
                block: payload,
            })
        }
        other => Ok(Frame::Unknown {
            kind: other,
            stream: h.stream,
        }),
    }
}

/// A padded payload's content (§6.1): the pad length byte and the padding taken off.
fn unpad(h: Header, payload: &[u8]) -> Result<&[u8], H2Error> {
    if !h.has(flag::PADDED) {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(H2Error::connection(
            ErrorCode::FRAME_SIZE_ERROR,
            "padded frame without its pad length",
        ));
    };
    match rest.len().checked_sub(usize::from(pad)) {
        Some(content) => Ok(rest.get(..content).unwrap_or_default()),
        None => Err(H2Error::connection(
            ErrorCode::PROTOCOL_ERROR,
            "padding longer than the payload",
        )),
    }
}

fn parse_priority(stream: u32, fields: &[u8; 5]) -> Result<Priority, H2Error> {
    let [a, b, c, d, _weight] = *fields;
    let depends_on = u32::from_be_bytes([a, b, c, d]) & MAX_WINDOW;
    if depends_on == stream {
        return Err(H2Error::stream(
            stream,
            ErrorCode::PROTOCOL_ERROR,
            "stream depends on itself",
        ));
    }
    Ok(Priority { depends_on })
}

/// Appends a frame header.
pub fn write_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = (len as u32).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(&(stream & MAX_WINDOW).to_be_bytes());
}

/// Appends a SETTINGS frame with these (identifier, value) pairs.
pub fn write_settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    write_header(out, params.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in params {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn write_settings_ack(out: &mut Vec<u8>) {
    write_header(out, 0, kind::SETTINGS, flag::ACK, 0);
}

pub fn write_ping_ack(out: &mut Vec<u8>, data: [u8; 8]) {
    write_header(out, 8, kind::PING, flag::ACK, 0);
    out.extend_from_slice(&data);
}

pub fn write_goaway(out: &mut Vec<u8>, last_stream: u32, code: ErrorCode, debug: &[u8]) {
    write_header(out, 8 + debug.len(), kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(debug);
}

pub fn write_rst_stream(out: &mut Vec<u8>, stream: u32, code: ErrorCode) {
    write_header(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&code.0.to_be_bytes());
}

pub fn write_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    write_header(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(increment & MAX_WINDOW).to_be_bytes());
}

/// Appends one DATA frame; `data` must fit the peer's frame size and windows.
pub fn write_data(out: &mut Vec<u8>, stream: u32, data: &[u8], end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    write_header(out, data.len(), kind::DATA, flags, stream);
    out.extend_from_slice(data);
}

/// Appends a header block as HEADERS and as many CONTINUATION frames as `max_frame_size`
/// needs.
pub fn write_headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: usize,
) {
    let max = max_frame_size.max(1);
    let mut chunks = block.chunks(max).peekable();
    let first = chunks.next().unwrap_or_default();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    write_header(out, first.len(), kind::HEADERS, flags, stream);
    out.extend_from_slice(first);
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        write_header(out, chunk.len(), kind::CONTINUATION, flags, stream);
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    fn one(bytes: &[u8]) -> Result<Frame<'_>, H2Error> {
        parse(bytes, DEFAULT_MAX_FRAME_SIZE).map(|f| f.expect("whole").0)
    }

    fn code_of(bytes: &[u8]) -> (ErrorCode, u32) {
        let e = one(bytes).expect_err("refused");
        (e.code, e.stream)
    }

    #[test]
    fn a_frame_not_all_there_asks_for_more() {
        let bytes = frame(kind::PING, 0, 0, &[0; 8]);
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut], DEFAULT_MAX_FRAME_SIZE), Ok(None));
        }
        assert_eq!(
            parse(&bytes, DEFAULT_MAX_FRAME_SIZE).unwrap().unwrap().1,
            bytes.len()
        );
    }

    #[test]
    fn padding_is_taken_off_and_counted() {
        let bytes = frame(
            kind::DATA,
            flag::PADDED | flag::END_STREAM,
            1,
            b"\x03abcxyz",
        );
        assert_eq!(
            one(&bytes).unwrap(),
            Frame::Data {
                stream: 1,
                end_stream: true,
                data: b"abc",
                flow_len: 7
            }
        );
        let too_much = frame(kind::DATA, flag::PADDED, 1, b"\x08abc");
        assert_eq!(code_of(&too_much), (ErrorCode::PROTOCOL_ERROR, 0));
        let headers = frame(
            kind::HEADERS,
            flag::PADDED | flag::PRIORITY | flag::END_HEADERS,
            3,
            b"\x01\x00\x00\x00\x01\x10\x82p",
        );
        assert_eq!(
            one(&headers).unwrap(),
            Frame::Headers {
                stream: 3,
                end_stream: false,
                end_headers: true,
                priority: Some(Priority { depends_on: 1 }),
                block: b"\x82"
            }
        );
    }

    /// RFC 9113 §6's rules, one vector each: the code, and whether the stream or the
    /// connection (0) is what ends.
    #[test]
    fn each_frame_type_refuses_what_the_rfc_refuses() {
        let cases: [(Vec<u8>, (ErrorCode, u32)); 14] = [
            (
                frame(kind::DATA, 0, 0, b"x"),
                (ErrorCode::PROTOCOL_ERROR, 0),
            ),
            (
                frame(kind::HEADERS, 0, 0, b""),
                (ErrorCode::PROTOCOL_ERROR, 0),
            ),
            (
                frame(kind::HEADERS, flag::PRIORITY, 1, b"\0\0\0"),
                (ErrorCode::FRAME_SIZE_ERROR, 0),
            ),
            (
                frame(kind::PRIORITY, 0, 5, b"\0\0\0\x05\x10"),
                (ErrorCode::PROTOCOL_ERROR, 5),
            ),
            (
                frame(kind::PRIORITY, 0, 1, b"\0\0\0"),
                (ErrorCode::FRAME_SIZE_ERROR, 1),
            ),
            (
                frame(kind::RST_STREAM, 0, 0, &[0; 4]),
                (ErrorCode::PROTOCOL_ERROR, 0),
            ),
            (
                frame(kind::RST_STREAM, 0, 1, &[0; 3]),
                (ErrorCode::FRAME_SIZE_ERROR, 0),
            ),
            (
                frame(kind::SETTINGS, 0, 1, b""),
                (ErrorCode::PROTOCOL_ERROR, 0),
            ),
            (
                frame(kind::SETTINGS, flag::ACK, 0, &[0; 6]),
                (ErrorCode::FRAME_SIZE_ERROR, 0),
            ),
            (
                frame(kind::SETTINGS, 0, 0, &[0; 5]),
                (ErrorCode::FRAME_SIZE_ERROR, 0),
            ),
            (
                frame(kind::PING, 0, 0, &[0; 7]),
                (ErrorCode::FRAME_SIZE_ERROR, 0),
            ),
            (
                frame(kind::GOAWAY, 0, 0, &[0; 7]),
                (ErrorCode::FRAME_SIZE_ERROR, 0),
            ),
            (
                frame(kind::WINDOW_UPDATE, 0, 3, &[0; 4]),
                (ErrorCode::PROTOCOL_ERROR, 3),
            ),
            (
                frame(kind::CONTINUATION, 0, 0, b""),
                (ErrorCode::PROTOCOL_ERROR, 0),
            ),
        ];
        for (i, (bytes, want)) in cases.iter().enumerate() {
            assert_eq!(code_of(bytes), *want, "case {i}");
        }
        let big = frame(kind::DATA, 0, 1, &[0; 16_385]);
        assert_eq!(code_of(&big), (ErrorCode::FRAME_SIZE_ERROR, 0));
        assert_eq!(
            one(&frame(0xfa, 0, 7, b"what")).unwrap(),
            Frame::Unknown {
                kind: 0xfa,
                stream: 7
            }
        );
    }

    #[test]
    fn a_big_header_block_is_split_into_continuations() {
        let block = vec![0x82; 40];
        let mut out = Vec::new();
        write_headers(&mut out, 1, &block, true, 16);
        let mut at = 0;
        let mut seen = Vec::new();
        while let Some((f, n)) = parse(&out[at..], 16).unwrap() {
            seen.push(f);
            at += n;
        }
        assert_eq!(seen.len(), 3);
        assert!(matches!(
            seen[0],
            Frame::Headers { end_stream: true, end_headers: false, block, .. } if block.len() == 16
        ));
        assert!(matches!(
            seen[1],
            Frame::Continuation {
                end_headers: false,
                ..
            }
        ));
        assert!(matches!(
            seen[2],
            Frame::Continuation { end_headers: true, block, .. } if block.len() == 8
        ));
    }
}
