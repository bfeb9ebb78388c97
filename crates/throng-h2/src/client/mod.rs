//! The client side of one HTTP/2 connection, sans I/O: what the generator sends its load on.
//!
//! [`Connection::start`] writes the preface and our SETTINGS. A request goes out with
//! [`Connection::open_stream`], its header block made once per target by [`request_block`]
//! (the encoder keeps no table, so the same request is the same bytes on every stream), its body
//! with [`Connection::send_data`]. The caller reads bytes into a buffer of its own and calls
//! [`Connection::next`] until it asks for more; each call takes at most one frame and may give
//! an [`Event`]: a response head, a piece of a body, trailers, a reset, a GOAWAY. What the
//! connection must write (SETTINGS and PING acknowledgements, window updates, resets) is
//! appended to the output the caller passes in.
//!
//! ```text
//!   Open --the server's GOAWAY--> GoingAway: no new stream; those up to its last stream finish
//!     \_______ connection error: GOAWAY(code) ________> Closed
//! ```
//!
//! Streams open as the server allows (SETTINGS_MAX_CONCURRENT_STREAMS, 100 until its SETTINGS
//! say, and never more than our own limit); [`Connection::available`] says whether one may
//! open now, or why not, so that the caller can wait or open another connection.

mod head;
mod send;

pub use head::{Malformed, ResponseBuilder, ResponseHead};
pub use send::{request_block, Unavailable};

use crate::error::{ErrorCode, H2Error};
use crate::frame::{self, Frame, MAX_WINDOW};
use crate::hpack::decoder::{Decoded, ListLimits};
use crate::hpack::Decoder;
use crate::limits::{Flood, Limits, Rates};
use crate::settings::{Settings, DEFAULT_WINDOW};
use crate::shared::{self as conn, PendingBlock, ReceiveWindow};
use crate::streams::Streams;
use std::time::Instant;

/// The streams a client may open before the server's SETTINGS say how many it allows (RFC 9113
/// §5.1.2 leaves it open; 100 is what the RFC recommends servers allow at least, and Go's).
const STREAMS_BEFORE_SETTINGS: usize = 100;

/// What [`Connection::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Not a whole frame yet: read more, then call again with the bytes not consumed.
    More,
    /// `consumed` bytes were one frame.
    Frame {
        consumed: usize,
        event: Option<Event<'a>>,
    },
}

/// What the caller must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A stream's final response head (interim 1xx heads are passed over). `end_stream`: no
    /// body follows.
    Response {
        stream: u32,
        head: ResponseHead,
        end_stream: bool,
    },
    /// A piece of a response body (`data` may be empty when only `end_stream` is news). Call
    /// [`Connection::release`] with its length once it is passed on.
    Data {
        stream: u32,
        data: &'a [u8],
        end_stream: bool,
    },
    /// The response's trailers; its body is complete.
    Trailers { stream: u32, fields: ResponseHead },
    /// The stream is gone: the server reset it (`by_peer`; REFUSED_STREAM means it did nothing
    /// with the request, which may be sent again), or we did, for what it sent (`reason`).
    Reset {
        stream: u32,
        code: ErrorCode,
        by_peer: bool,
        reason: &'static str,
    },
    /// A window grew or the server allows more streams: what waited to send or open may go on.
    Capacity,
    /// The server is going away: streams up to `last_stream` may finish; those past it were
    /// not processed (they are closed here, and may be sent again elsewhere), and no new one
    /// opens on this connection.
    GoAway { last_stream: u32, code: ErrorCode },
}

/// One connection to a server.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    closed: bool,
    /// The server's first frame, its SETTINGS, has come.
    settings_seen: bool,
    peer: Settings,
    decoder: Decoder,
    streams: Streams,
    /// The id the next stream takes: 1, 3, 5 ...
    next_stream: u32,
    block: Option<PendingBlock>,
    /// What the server may still send on the connection.
    recv: ReceiveWindow,
    send_window: i64,
    rates: Rates,
    /// The last stream of the server's GOAWAY, once it sent one.
    goaway: Option<u32>,
}

impl Connection {
    /// A connection that has sent nothing yet. `limits` bound what the server may send, as a
    /// server's bound its clients; `max_concurrent_streams` is our own cap on streams at once.
    pub fn new(limits: Limits) -> Connection {
        let mut limits = limits;
        limits.initial_window_size = limits.initial_window_size.clamp(DEFAULT_WINDOW, MAX_WINDOW);
        limits.connection_window = limits.connection_window.clamp(DEFAULT_WINDOW, MAX_WINDOW);
        Connection {
            decoder: Decoder::new(limits.header_table_size as usize),
            limits,
            closed: false,
            settings_seen: false,
            peer: Settings::default(),
            streams: Streams::default(),
            next_stream: 1,
            block: None,
            recv: ReceiveWindow {
                window: i64::from(DEFAULT_WINDOW),
                unreleased: 0,
            },
            send_window: i64::from(DEFAULT_WINDOW),
            rates: Rates::default(),
            goaway: None,
        }
    }

    /// Open streams (each a request in progress).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// The streams that may be open at once now: the server's limit (100 until it says) and
    /// ours, whichever is lower.
    pub fn max_streams(&self) -> usize {
        let ours = self.limits.max_concurrent_streams as usize;
        let theirs = match (self.settings_seen, self.peer.max_concurrent_streams) {
            (false, _) => STREAMS_BEFORE_SETTINGS,
            (true, Some(n)) => n as usize,
            (true, None) => usize::MAX,
        };
        ours.min(theirs)
    }

    /// Nothing in progress: no stream and no header block half read.
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty() && self.block.is_none()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The last stream of the server's GOAWAY, if it sent one.
    pub fn goaway(&self) -> Option<u32> {
        self.goaway
    }

    /// Takes the next frame of `input`. A connection error has written its GOAWAY to `out` when
    /// it returns; the caller writes `out`, fails its streams and closes.
    pub fn next<'a>(
        &mut self,
        input: &'a [u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Step<'a>, H2Error> {
        let step = self.step(input, out, now);
        if let Err(error) = &step {
            self.close(error.code, error.reason, out);
        }
        step
    }

    fn step<'a>(
        &mut self,
        input: &'a [u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Step<'a>, H2Error> {
        if self.closed {
            return Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "frames after the connection closed",
            ));
        }
        let (frame, consumed) = match frame::parse(input, frame::DEFAULT_MAX_FRAME_SIZE) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(Step::More),
            Err(e) if e.is_connection_error() || !self.settings_seen || self.block.is_some() => {
                return Err(e)
            }
            Err(e) => {
                // A frame refused for one stream only (a PRIORITY of the wrong size, a
                // WINDOW_UPDATE of 0): that stream is reset and the connection goes on.
                let Some(header) = frame::Header::parse(input) else {
                    return Err(e);
                };
                let event = self.stream_error(e.stream, e.code, e.reason, out);
                return Ok(Step::Frame {
                    consumed: frame::HEADER_LEN + header.len as usize,
                    event,
                });
            }
        };
        let event = self.on_frame(frame, out, now)?;
        Ok(Step::Frame { consumed, event })
    }

    /// The highest stream id opened so far (0 before the first).
    fn last_opened(&self) -> u32 {
        self.next_stream.saturating_sub(2)
    }

    fn on_frame<'a>(
        &mut self,
        frame: Frame<'a>,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Option<Event<'a>>, H2Error> {
        if !self.settings_seen {
            if !matches!(frame, Frame::Settings { ack: false, .. }) {
                return Err(H2Error::connection(
                    ErrorCode::PROTOCOL_ERROR,
                    "the server's first frame not SETTINGS",
                ));
            }
            self.settings_seen = true;
        }
        if let Some(block) = &self.block {
            let same =
                matches!(frame, Frame::Continuation { stream, .. } if stream == block.stream);
            if !same {
                return Err(H2Error::connection(
                    ErrorCode::PROTOCOL_ERROR,
                    "header block interrupted by another frame",
                ));
            }
        }
        match frame {
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.on_data(stream, end_stream, data, flow_len, out, now),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
                ..
            } => {
                if stream % 2 == 0 || stream > self.last_opened() {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "HEADERS on a stream the client did not open",
                    ));
                }
                if end_headers {
                    return self.on_block(stream, end_stream, block, out, now);
                }
                self.block = Some(PendingBlock::start(
                    stream,
                    end_stream,
                    block,
                    &self.limits,
                )?);
                Ok(None)
            }
            Frame::Continuation {
                stream,
                end_headers,
                block,
            } => {
                let Some(mut pending) = self.block.take() else {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "CONTINUATION without HEADERS",
                    ));
                };
                pending.extend(block, &self.limits)?;
                if !end_headers {
                    self.block = Some(pending);
                    return Ok(None);
                }
                self.on_block(stream, pending.end_stream, &pending.bytes, out, now)
            }
            Frame::Priority { .. } | Frame::Unknown { .. } => {
                self.ignore(now)?;
                Ok(None)
            }
            Frame::RstStream { stream, code } => {
                if stream > self.last_opened() {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "RST_STREAM on an idle stream",
                    ));
                }
                // Not counted as a flood: a server refusing streams under load resets many,
                // and each is a stream this client chose to open.
                if !self.streams.contains(stream) {
                    return Ok(None);
                }
                self.streams.close(stream);
                Ok(Some(Event::Reset {
                    stream,
                    code,
                    by_peer: true,
                    reason: "reset by the server",
                }))
            }
            Frame::Settings { ack: true, .. } => Ok(None),
            Frame::Settings { ack: false, params } => {
                if !self
                    .rates
                    .settings
                    .allow(now, self.limits.per_second.settings)
                {
                    return Err(H2Error::flood(Flood::Settings));
                }
                conn::take_settings(&mut self.peer, &mut self.streams, params, out)?;
                Ok(Some(Event::Capacity))
            }
            Frame::PushPromise { .. } => Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "PUSH_PROMISE though push is disabled",
            )),
            Frame::Ping { ack: false, data } => {
                if !self.rates.pings.allow(now, self.limits.per_second.pings) {
                    return Err(H2Error::flood(Flood::Pings));
                }
                frame::write_ping_ack(out, data);
                Ok(None)
            }
            Frame::Ping { ack: true, .. } => Ok(None),
            Frame::GoAway {
                last_stream, code, ..
            } => {
                // A later GOAWAY may only lower the last stream (§6.8).
                let last_stream = self.goaway.map_or(last_stream, |l| l.min(last_stream));
                self.goaway = Some(last_stream);
                let unprocessed: Vec<u32> =
                    self.streams.ids().filter(|&id| id > last_stream).collect();
                for id in unprocessed {
                    self.streams.close(id);
                }
                Ok(Some(Event::GoAway { last_stream, code }))
            }
            Frame::WindowUpdate { stream, increment } => {
                if !self
                    .rates
                    .window_updates
                    .allow(now, self.limits.per_second.window_updates)
                {
                    return Err(H2Error::flood(Flood::WindowUpdates));
                }
                self.on_window_update(stream, increment, out)
            }
        }
    }

    /// A frame with nothing to act on: a PRIORITY, an unknown type, one on a stream this side
    /// has reset (frames the server sent before it saw the reset still come). Each costs a
    /// parse, so they are counted.
    fn ignore(&mut self, now: Instant) -> Result<(), H2Error> {
        if !self
            .rates
            .ignored
            .allow(now, self.limits.per_second.ignored)
        {
            return Err(H2Error::flood(Flood::Ignored));
        }
        Ok(())
    }

    fn on_data<'a>(
        &mut self,
        id: u32,
        end_stream: bool,
        data: &'a [u8],
        flow_len: u32,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Option<Event<'a>>, H2Error> {
        self.recv.window -= i64::from(flow_len);
        if self.recv.window < 0 {
            return Err(H2Error::connection(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA past the connection's window",
            ));
        }
        if id > self.last_opened() {
            return Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "DATA on an idle stream",
            ));
        }
        let padding = flow_len - data.len() as u32;
        let Some(stream) = self.streams.get(id) else {
            // A stream we reset or gave up: nobody takes these bytes.
            self.release_connection(flow_len, out);
            self.ignore(now)?;
            return Ok(None);
        };
        let wrong = if stream.recv_closed {
            Some((ErrorCode::STREAM_CLOSED, "DATA after END_STREAM"))
        } else if !stream.head_sent {
            Some((ErrorCode::PROTOCOL_ERROR, "DATA before the response head"))
        } else if stream.no_body && !data.is_empty() {
            Some((
                ErrorCode::PROTOCOL_ERROR,
                "DATA in a response that has no body",
            ))
        } else {
            stream.recv_window -= i64::from(flow_len);
            stream.received += data.len() as u64;
            let length_wrong = stream.content_length.is_some_and(|length| {
                stream.received > length || (end_stream && stream.received != length)
            });
            if stream.recv_window < 0 {
                Some((
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "DATA past the stream's window",
                ))
            } else if length_wrong {
                Some((
                    ErrorCode::PROTOCOL_ERROR,
                    "DATA disagrees with content-length",
                ))
            } else {
                None
            }
        };
        if let Some((code, reason)) = wrong {
            self.release_connection(flow_len, out);
            return Ok(self.stream_error(id, code, reason, out));
        }
        if end_stream {
            self.end_receiving(id);
        }
        if padding > 0 {
            self.release(id, padding, out);
        }
        if data.is_empty() && !end_stream {
            if !self
                .rates
                .empty_data
                .allow(now, self.limits.per_second.empty_data)
            {
                return Err(H2Error::flood(Flood::EmptyData));
            }
            return Ok(None);
        }
        Ok(Some(Event::Data {
            stream: id,
            data,
            end_stream,
        }))
    }

    /// A whole header block: a stream's response head (or an interim one), or its trailers.
    fn on_block<'a>(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Option<Event<'a>>, H2Error> {
        let head_seen = match self.streams.get(id) {
            None => {
                // A stream we reset: its block is decoded for HPACK's sake, and dropped.
                let _dropped = self.decode(block, true)?;
                self.ignore(now)?;
                return Ok(None);
            }
            Some(stream) if stream.recv_closed => {
                return Err(H2Error::connection(
                    ErrorCode::STREAM_CLOSED,
                    "HEADERS after END_STREAM",
                ))
            }
            Some(stream) => stream.head_sent,
        };
        let (decoded, built) = self.decode(block, head_seen)?;
        let head = match (decoded, built) {
            (Decoded::TooLarge, _) => {
                return Ok(self.stream_error(
                    id,
                    ErrorCode::PROTOCOL_ERROR,
                    "response fields over the limits",
                    out,
                ))
            }
            (_, Err(reason)) => {
                return Ok(self.stream_error(id, ErrorCode::PROTOCOL_ERROR, reason, out))
            }
            (_, Ok(head)) => head,
        };
        if head_seen {
            return Ok(self.on_trailers(id, end_stream, head, out));
        }
        if (100..200).contains(&head.status) {
            let reason = match (head.status, end_stream) {
                (101, _) => "101 Switching Protocols in HTTP/2",
                (_, true) => "interim response with END_STREAM",
                _ => return Ok(None),
            };
            return Ok(self.stream_error(id, ErrorCode::PROTOCOL_ERROR, reason, out));
        }
        let Some(stream) = self.streams.get(id) else {
            return Ok(None);
        };
        stream.head_sent = true;
        // A HEAD's, a 204's or a 304's content-length describes a body that is not sent.
        if !stream.no_body && !matches!(head.status, 204 | 304) {
            stream.content_length = head.content_length;
        } else {
            stream.no_body = true;
        }
        if end_stream && stream.content_length.is_some_and(|l| l != 0) {
            return Ok(self.stream_error(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "content-length with no DATA",
                out,
            ));
        }
        if end_stream {
            self.end_receiving(id);
        }
        Ok(Some(Event::Response {
            stream: id,
            head,
            end_stream,
        }))
    }

    fn on_trailers<'a>(
        &mut self,
        id: u32,
        end_stream: bool,
        fields: ResponseHead,
        out: &mut Vec<u8>,
    ) -> Option<Event<'a>> {
        if !end_stream {
            return self.stream_error(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "trailers without END_STREAM",
                out,
            );
        }
        let stream = self.streams.get(id)?;
        if stream.content_length.is_some_and(|l| l != stream.received) {
            return self.stream_error(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "DATA disagrees with content-length",
                out,
            );
        }
        self.end_receiving(id);
        Some(Event::Trailers { stream: id, fields })
    }

    fn decode(
        &mut self,
        block: &[u8],
        trailers: bool,
    ) -> Result<(Decoded, Result<ResponseHead, Malformed>), H2Error> {
        let mut builder = ResponseBuilder::new(trailers);
        let limits = ListLimits {
            max_list_size: self.limits.max_header_list_size as usize,
            max_fields: self.limits.max_fields,
        };
        let decoded = self
            .decoder
            .decode(block, limits, |n, v| builder.field(n, v))
            .map_err(|e| H2Error::connection(ErrorCode::COMPRESSION_ERROR, e.describe()))?;
        Ok((decoded, builder.finish()))
    }

    fn end_receiving(&mut self, id: u32) {
        if let Some(stream) = self.streams.get(id) {
            stream.recv_closed = true;
            if stream.send_closed {
                self.streams.close(id);
            }
        }
    }

    fn on_window_update<'a>(
        &mut self,
        id: u32,
        increment: u32,
        out: &mut Vec<u8>,
    ) -> Result<Option<Event<'a>>, H2Error> {
        if id == 0 {
            self.send_window += i64::from(increment);
            if self.send_window > i64::from(MAX_WINDOW) {
                return Err(H2Error::connection(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection window over 2^31-1",
                ));
            }
            return Ok(Some(Event::Capacity));
        }
        if id > self.last_opened() {
            return Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(stream) = self.streams.get(id) else {
            return Ok(None);
        };
        stream.send_window += i64::from(increment);
        if stream.send_window > i64::from(MAX_WINDOW) {
            return Ok(self.stream_error(
                id,
                ErrorCode::FLOW_CONTROL_ERROR,
                "stream window over 2^31-1",
                out,
            ));
        }
        Ok(Some(Event::Capacity))
    }

    /// Ends a stream for what the server sent on it: RST_STREAM, and the stream's request fails.
    fn stream_error<'a>(
        &mut self,
        id: u32,
        code: ErrorCode,
        reason: &'static str,
        out: &mut Vec<u8>,
    ) -> Option<Event<'a>> {
        if !self.streams.contains(id) {
            return None;
        }
        frame::write_rst_stream(out, id, code);
        self.streams.close(id);
        Some(Event::Reset {
            stream: id,
            code,
            by_peer: false,
            reason,
        })
    }
}

#[cfg(test)]
mod tests;
