//! The server side of one HTTP/2 connection, sans I/O.
//!
//! The caller reads bytes into a buffer of its own and calls [`Connection::next`] until it
//! asks for more; each call takes at most one frame and may give an [`Event`] (a request, a
//! piece of a body, a reset). Bodies are borrowed from the caller's buffer. Whatever the
//! connection must write (SETTINGS and PING acknowledgements, window updates, resets, GOAWAY)
//! is appended to the output the caller passes in, as are responses it sends with
//! [`Connection::send_head`], [`Connection::send_data`] and [`Connection::send_trailers`].
//!
//! ```text
//!   Preface --24 bytes--> FirstSettings --SETTINGS--> Open --shutdown()--> Draining ----> Closed
//!      \_________________________\______ connection error: GOAWAY(code) _____________/
//! ```
//!
//! Flow control is back-pressure: a stream's window opens again only as the caller says it
//! passed the bytes on ([`Connection::release`]), so a slow server behind a stream stops its
//! client instead of filling memory.

pub(crate) mod head;
mod send;

pub use crate::limits::{Flood, Floods, Limits};
pub use head::{Block, HeadBuilder, Malformed, RequestHead};

use crate::error::{ErrorCode, H2Error};
use crate::frame::{self, Frame, MAX_WINDOW};
use crate::hpack::decoder::{Decoded, ListLimits};
use crate::hpack::Decoder;
use crate::limits::Rates;
use crate::settings::{self, Settings, DEFAULT_WINDOW};
use crate::shared::{self as conn, PendingBlock, ReceiveWindow};
use crate::streams::{Stream, Streams};
use crate::PREFACE;
use std::time::Instant;

/// The payload of the PING that [`Connection::shutdown`] sends between its two GOAWAYs.
const SHUTDOWN_PING: [u8; 8] = *b"throngGA";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Preface,
    FirstSettings,
    Open,
    Closed,
}

/// What [`Connection::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Not a whole frame yet: read more, then call again with the bytes not consumed.
    More,
    /// `consumed` bytes were one frame (or the preface).
    Frame {
        consumed: usize,
        event: Option<Event<'a>>,
    },
}

/// What the caller must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A new stream's request. `end_stream`: it has no body.
    Request {
        stream: u32,
        head: RequestHead,
        end_stream: bool,
    },
    /// A piece of a request body (`data` may be empty when only `end_stream` is news). Call
    /// [`Connection::release`] with its length once it is passed on.
    Data {
        stream: u32,
        data: &'a [u8],
        end_stream: bool,
    },
    /// The request's trailers; its body is complete.
    Trailers { stream: u32, fields: RequestHead },
    /// A request whose fields are over the limits: answer it 431 (it is open, its body may
    /// follow and is dropped).
    TooLarge { stream: u32 },
    /// The stream is gone: the client reset it (`by_peer`) or the connection did, for what
    /// the client sent (`reason`). Stop its exchange.
    Reset {
        stream: u32,
        code: ErrorCode,
        by_peer: bool,
        reason: &'static str,
    },
    /// A request refused before it became a stream: malformed, or past the concurrent
    /// streams. Count and log it; nothing to stop.
    Refused {
        stream: u32,
        code: ErrorCode,
        reason: &'static str,
    },
    /// The client's window grew: streams waiting to send may go on.
    WindowOpened,
    /// The client is going away: streams up to `last_stream` may finish, no new ones come.
    GoAway { last_stream: u32, code: ErrorCode },
}

/// Where a graceful shutdown is (RFC 9113 §6.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shutdown {
    None,
    /// GOAWAY(2^31-1) and a PING sent; the final GOAWAY goes when the PING comes back.
    Announced,
    /// The final GOAWAY sent: no stream past `last` will be served.
    Final {
        last: u32,
    },
}

/// One client connection's HTTP/2 state.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    state: State,
    peer: Settings,
    decoder: Decoder,
    streams: Streams,
    /// The highest stream id the client has used.
    last_stream: u32,
    block: Option<PendingBlock>,
    /// What the client may still send on the connection.
    recv: ReceiveWindow,
    send_window: i64,
    rates: Rates,
    /// Our first header block starts with a table size update to 0.
    sent_block: bool,
    shutdown: Shutdown,
    peer_goaway: Option<u32>,
    /// A HEADERS that named itself as its dependency (a stream error once decoded).
    self_dependent: Option<u32>,
}

impl Connection {
    /// A connection that has read nothing yet; [`Connection::start`] writes our SETTINGS.
    pub fn new(limits: Limits) -> Connection {
        let mut limits = limits;
        limits.initial_window_size = limits.initial_window_size.clamp(DEFAULT_WINDOW, MAX_WINDOW);
        limits.connection_window = limits.connection_window.clamp(DEFAULT_WINDOW, MAX_WINDOW);
        Connection {
            decoder: Decoder::new(limits.header_table_size as usize),
            limits,
            state: State::Preface,
            peer: Settings::default(),
            streams: Streams::default(),
            last_stream: 0,
            block: None,
            recv: ReceiveWindow {
                window: i64::from(DEFAULT_WINDOW),
                unreleased: 0,
            },
            send_window: i64::from(DEFAULT_WINDOW),
            rates: Rates::default(),
            sent_block: false,
            shutdown: Shutdown::None,
            peer_goaway: None,
            self_dependent: None,
        }
    }

    /// Our SETTINGS, the server's first frame (§3.4).
    pub fn start(&mut self, out: &mut Vec<u8>) {
        let l = &self.limits;
        frame::write_settings(
            out,
            &[
                (settings::MAX_CONCURRENT_STREAMS, l.max_concurrent_streams),
                (settings::INITIAL_WINDOW_SIZE, l.initial_window_size),
                (settings::HEADER_TABLE_SIZE, l.header_table_size),
                (settings::MAX_HEADER_LIST_SIZE, l.max_header_list_size),
            ],
        );
        let more = l.connection_window - DEFAULT_WINDOW;
        if more > 0 {
            frame::write_window_update(out, 0, more);
            self.recv.window += i64::from(more);
        }
    }

    /// Open streams (each is an exchange in progress).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Nothing in progress: no stream and no header block half read.
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty() && self.block.is_none()
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Shutting down and nothing left to finish: the caller may close the socket.
    pub fn is_drained(&self) -> bool {
        self.state == State::Closed
            || (matches!(self.shutdown, Shutdown::Final { .. }) && self.is_idle())
    }

    /// The peer's GOAWAY, if it sent one.
    pub fn peer_goaway(&self) -> Option<u32> {
        self.peer_goaway
    }

    /// Takes the next frame of `input`. A connection error has written its GOAWAY to `out`
    /// when it returns; the caller writes `out` and closes.
    pub fn next<'a>(
        &mut self,
        input: &'a [u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Step<'a>, H2Error> {
        let step = self.step(input, out, now);
        if let Err(error) = &step {
            if self.state != State::Closed {
                self.close(error.code, error.reason, out);
            }
        }
        step
    }

    /// Ends the connection with GOAWAY(`code`): an idle timeout, an error of the caller's.
    pub fn close(&mut self, code: ErrorCode, reason: &str, out: &mut Vec<u8>) {
        if self.state == State::Closed {
            return;
        }
        // Before a preface there is no HTTP/2 peer to tell.
        if self.state != State::Preface {
            frame::write_goaway(out, self.last_stream, code, reason.as_bytes());
        }
        self.state = State::Closed;
        self.block = None;
    }

    fn step<'a>(
        &mut self,
        input: &'a [u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Step<'a>, H2Error> {
        match self.state {
            State::Closed => Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "frames after the connection closed",
            )),
            State::Preface => {
                let n = input.len().min(PREFACE.len());
                if input.get(..n) != PREFACE.get(..n) {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "no HTTP/2 connection preface",
                    ));
                }
                if n < PREFACE.len() {
                    return Ok(Step::More);
                }
                self.state = State::FirstSettings;
                Ok(Step::Frame {
                    consumed: PREFACE.len(),
                    event: None,
                })
            }
            State::FirstSettings | State::Open => {
                let (frame, consumed) = match frame::parse(input, frame::DEFAULT_MAX_FRAME_SIZE) {
                    Ok(Some(parsed)) => parsed,
                    Ok(None) => return Ok(Step::More),
                    Err(e) if e.is_connection_error() => return Err(e),
                    Err(e) => return self.on_bad_stream_frame(input, e, out, now),
                };
                let event = self.on_frame(frame, out, now)?;
                Ok(Step::Frame { consumed, event })
            }
        }
    }

    /// A frame that parsing refused for one stream only (a PRIORITY of the wrong size or on
    /// itself, a WINDOW_UPDATE of 0): that stream is reset and the connection goes on, unless
    /// the frame came where only SETTINGS or a CONTINUATION may.
    fn on_bad_stream_frame<'a>(
        &mut self,
        input: &[u8],
        error: H2Error,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Step<'a>, H2Error> {
        if self.state == State::FirstSettings {
            return Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "first frame not SETTINGS",
            ));
        }
        if self.block.is_some() {
            return Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "header block interrupted by another frame",
            ));
        }
        let Some(header) = frame::Header::parse(input) else {
            return Err(error);
        };
        let event = self.stream_error(error.stream, error.code, error.reason, out, now)?;
        Ok(Step::Frame {
            consumed: frame::HEADER_LEN + header.len as usize,
            event,
        })
    }

    fn on_frame<'a>(
        &mut self,
        frame: Frame<'a>,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Option<Event<'a>>, H2Error> {
        if self.state == State::FirstSettings {
            if !matches!(frame, Frame::Settings { ack: false, .. }) {
                return Err(H2Error::connection(
                    ErrorCode::PROTOCOL_ERROR,
                    "first frame not SETTINGS",
                ));
            }
            self.state = State::Open;
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
                priority,
            } => {
                if stream % 2 == 0 {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "client stream with an even id",
                    ));
                }
                if priority.is_some_and(|p| p.depends_on == stream) {
                    // Refused once its block is decoded, for HPACK's sake.
                    self.self_dependent = Some(stream);
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
                if !self
                    .rates
                    .ignored
                    .allow(now, self.limits.per_second.ignored)
                {
                    return Err(H2Error::flood(Flood::Ignored));
                }
                Ok(None)
            }
            Frame::RstStream { stream, code } => {
                if stream > self.last_stream {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "RST_STREAM on an idle stream",
                    ));
                }
                if !self.rates.resets.allow(now, self.limits.per_second.resets) {
                    return Err(H2Error::flood(Flood::Resets));
                }
                if !self.streams.contains(stream) {
                    return Ok(None);
                }
                self.streams.close(stream);
                Ok(Some(Event::Reset {
                    stream,
                    code,
                    by_peer: true,
                    reason: "reset by the client",
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
                let delta = conn::take_settings(&mut self.peer, &mut self.streams, params, out)?;
                Ok((delta > 0).then_some(Event::WindowOpened))
            }
            Frame::PushPromise { .. } => Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "PUSH_PROMISE from a client",
            )),
            Frame::Ping { ack: false, data } => {
                if !self.rates.pings.allow(now, self.limits.per_second.pings) {
                    return Err(H2Error::flood(Flood::Pings));
                }
                frame::write_ping_ack(out, data);
                Ok(None)
            }
            Frame::Ping { ack: true, data } => {
                if data == SHUTDOWN_PING && self.shutdown == Shutdown::Announced {
                    self.finish_shutdown(out);
                }
                Ok(None)
            }
            Frame::GoAway {
                last_stream, code, ..
            } => {
                self.peer_goaway = Some(last_stream);
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
                self.on_window_update(stream, increment, out, now)
            }
        }
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
        if id > self.last_stream {
            return Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "DATA on an idle stream",
            ));
        }
        // Padding is never passed on: its window comes back at once.
        let padding = flow_len - data.len() as u32;
        let Some(stream) = self.streams.get(id) else {
            // Closed: nobody takes these bytes, so the connection's window reopens now.
            self.release_connection(flow_len, out);
            return self.stream_error(
                id,
                ErrorCode::STREAM_CLOSED,
                "DATA on a closed stream",
                out,
                now,
            );
        };
        if stream.recv_closed {
            self.release_connection(flow_len, out);
            return self.stream_error(
                id,
                ErrorCode::STREAM_CLOSED,
                "DATA after END_STREAM",
                out,
                now,
            );
        }
        stream.recv_window -= i64::from(flow_len);
        if stream.recv_window < 0 {
            self.release_connection(flow_len, out);
            return self.stream_error(
                id,
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA past the stream's window",
                out,
                now,
            );
        }
        stream.received += data.len() as u64;
        let length_wrong = match stream.content_length {
            Some(length) => stream.received > length || (end_stream && stream.received != length),
            None => false,
        };
        if length_wrong {
            self.release_connection(flow_len, out);
            return self.stream_error(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "DATA disagrees with content-length",
                out,
                now,
            );
        }
        if end_stream {
            stream.recv_closed = true;
            if stream.send_closed {
                self.streams.close(id);
            }
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

    /// A whole header block: a new stream's request, or an open stream's trailers.
    fn on_block<'a>(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Option<Event<'a>>, H2Error> {
        if let Some(stream) = self.streams.get(id) {
            if stream.recv_closed {
                return Err(H2Error::connection(
                    ErrorCode::STREAM_CLOSED,
                    "HEADERS after END_STREAM",
                ));
            }
            let (decoded, built) = self.decode(block, Block::Trailers)?;
            if !end_stream {
                return self.stream_error(
                    id,
                    ErrorCode::PROTOCOL_ERROR,
                    "trailers without END_STREAM",
                    out,
                    now,
                );
            }
            let fields = match (decoded, built) {
                (Decoded::TooLarge, _) => {
                    return self.stream_error(
                        id,
                        ErrorCode::PROTOCOL_ERROR,
                        "trailers over the limits",
                        out,
                        now,
                    )
                }
                (_, Err(reason)) => {
                    return self.stream_error(id, ErrorCode::PROTOCOL_ERROR, reason, out, now)
                }
                (_, Ok(fields)) => fields,
            };
            let Some(stream) = self.streams.get(id) else {
                return Ok(None);
            };
            if stream.content_length.is_some_and(|l| l != stream.received) {
                return self.stream_error(
                    id,
                    ErrorCode::PROTOCOL_ERROR,
                    "DATA disagrees with content-length",
                    out,
                    now,
                );
            }
            stream.recv_closed = true;
            if stream.send_closed {
                self.streams.close(id);
            }
            return Ok(Some(Event::Trailers { stream: id, fields }));
        }
        if id <= self.last_stream {
            return Err(if self.streams.recently_closed(id) {
                H2Error::connection(ErrorCode::STREAM_CLOSED, "HEADERS on a closed stream")
            } else {
                H2Error::connection(ErrorCode::PROTOCOL_ERROR, "stream id not increasing")
            });
        }
        self.last_stream = id;
        // The block is decoded whatever becomes of the stream: the HPACK table must follow.
        let (decoded, built) = self.decode(block, Block::Request)?;
        if let Shutdown::Final { last } = self.shutdown {
            if id > last {
                // Past the final GOAWAY: ignored, as §6.8 says; the client retries elsewhere.
                return Ok(None);
            }
        }
        if self.self_dependent.take() == Some(id) {
            return self.refuse(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "stream depends on itself",
                out,
                now,
            );
        }
        if self.streams.len() >= self.limits.max_concurrent_streams as usize {
            return self.refuse(
                id,
                ErrorCode::REFUSED_STREAM,
                "past SETTINGS_MAX_CONCURRENT_STREAMS",
                out,
                now,
            );
        }
        let head = match (decoded, built) {
            (Decoded::TooLarge, _) => {
                let mut stream = Stream::new(
                    id,
                    self.limits.initial_window_size,
                    self.peer.initial_window_size,
                );
                stream.recv_closed = end_stream;
                self.streams.insert(stream);
                return Ok(Some(Event::TooLarge { stream: id }));
            }
            (_, Err(reason)) => {
                return self.refuse(id, ErrorCode::PROTOCOL_ERROR, reason, out, now)
            }
            (_, Ok(head)) => head,
        };
        if end_stream && head.content_length.is_some_and(|l| l != 0) {
            return self.refuse(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "content-length with no DATA",
                out,
                now,
            );
        }
        let mut stream = Stream::new(
            id,
            self.limits.initial_window_size,
            self.peer.initial_window_size,
        );
        stream.recv_closed = end_stream;
        stream.content_length = head.content_length;
        self.streams.insert(stream);
        Ok(Some(Event::Request {
            stream: id,
            head,
            end_stream,
        }))
    }

    fn decode(
        &mut self,
        block: &[u8],
        kind: Block,
    ) -> Result<(Decoded, Result<RequestHead, Malformed>), H2Error> {
        let mut builder = HeadBuilder::new(kind);
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

    fn on_window_update<'a>(
        &mut self,
        id: u32,
        increment: u32,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Option<Event<'a>>, H2Error> {
        if id == 0 {
            self.send_window += i64::from(increment);
            if self.send_window > i64::from(MAX_WINDOW) {
                return Err(H2Error::connection(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection window over 2^31-1",
                ));
            }
            return Ok(Some(Event::WindowOpened));
        }
        if id > self.last_stream {
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
            return self.stream_error(
                id,
                ErrorCode::FLOW_CONTROL_ERROR,
                "stream window over 2^31-1",
                out,
                now,
            );
        }
        Ok(Some(Event::WindowOpened))
    }

    /// Ends an open stream for what the client sent: RST_STREAM, counted with the client's
    /// own resets (what MadeYouReset provokes is as costly as what Rapid Reset sends).
    fn stream_error<'a>(
        &mut self,
        id: u32,
        code: ErrorCode,
        reason: &'static str,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Option<Event<'a>>, H2Error> {
        if !self.rates.resets.allow(now, self.limits.per_second.resets) {
            return Err(H2Error::flood(Flood::Resets));
        }
        frame::write_rst_stream(out, id, code);
        let was_open = self.streams.contains(id);
        self.streams.close(id);
        Ok(Some(if was_open {
            Event::Reset {
                stream: id,
                code,
                by_peer: false,
                reason,
            }
        } else {
            Event::Refused {
                stream: id,
                code,
                reason,
            }
        }))
    }

    /// Refuses a request before it is a stream.
    fn refuse<'a>(
        &mut self,
        id: u32,
        code: ErrorCode,
        reason: &'static str,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Option<Event<'a>>, H2Error> {
        self.streams.remember(id);
        self.stream_error(id, code, reason, out, now)
    }

    /// The ids of the open streams.
    pub fn stream_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.ids()
    }
}

#[cfg(test)]
mod tests;
