//! The client's half of each stream: requests opened within the server's limits, bodies within
//! its windows, trailers and resets; and the windows given back as responses are passed on.

use super::Connection;
use crate::error::ErrorCode;
use crate::frame::{self, MAX_WINDOW};
use crate::hpack::encoder::encode_field;
use crate::settings;
use crate::streams::Stream;

/// Why no stream may open on a connection now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// At the streams the server allows at once: wait for one to end, or use another connection.
    Full,
    /// The server sent GOAWAY: use another connection.
    GoingAway,
    /// The connection ended (an error, or we closed it).
    Closed,
    /// All 2^30 client stream ids are used: a new connection is needed.
    IdsExhausted,
}

impl Unavailable {
    pub fn describe(self) -> &'static str {
        match self {
            Unavailable::Full => "at the server's SETTINGS_MAX_CONCURRENT_STREAMS",
            Unavailable::GoingAway => "the server sent GOAWAY",
            Unavailable::Closed => "the connection is closed",
            Unavailable::IdsExhausted => "the connection's stream ids are used up",
        }
    }
}

/// A request's header block: the pseudo-headers, then `fields` (lowercase names, and none of
/// HTTP/1.1's connection-specific ones: the caller has taken them off). The encoder keeps no
/// table, so the block may be made once and sent on any number of streams and connections.
pub fn request_block<'f>(
    method: &[u8],
    scheme: &[u8],
    authority: &[u8],
    path: &[u8],
    fields: impl IntoIterator<Item = (&'f [u8], &'f [u8])>,
) -> Vec<u8> {
    let mut block = Vec::new();
    encode_field(b":method", method, &mut block);
    encode_field(b":scheme", scheme, &mut block);
    encode_field(b":authority", authority, &mut block);
    encode_field(b":path", path, &mut block);
    for (name, value) in fields {
        encode_field(name, value, &mut block);
    }
    block
}

impl Connection {
    /// The preface and our SETTINGS (no push; our windows and header limits), the client's
    /// first bytes (§3.4); requests may follow at once, before the server's SETTINGS.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(crate::PREFACE);
        let l = &self.limits;
        frame::write_settings(
            out,
            &[
                (settings::ENABLE_PUSH, 0),
                (settings::INITIAL_WINDOW_SIZE, l.initial_window_size),
                (settings::HEADER_TABLE_SIZE, l.header_table_size),
                (settings::MAX_HEADER_LIST_SIZE, l.max_header_list_size),
            ],
        );
        let more = l.connection_window - crate::settings::DEFAULT_WINDOW;
        if more > 0 {
            frame::write_window_update(out, 0, more);
            self.recv.window += i64::from(more);
        }
    }

    /// Whether a stream may open now, or why not.
    pub fn available(&self) -> Result<(), Unavailable> {
        if self.closed {
            Err(Unavailable::Closed)
        } else if self.goaway.is_some() {
            Err(Unavailable::GoingAway)
        } else if self.next_stream > MAX_WINDOW {
            Err(Unavailable::IdsExhausted)
        } else if self.streams.len() >= self.max_streams() {
            Err(Unavailable::Full)
        } else {
            Ok(())
        }
    }

    /// Opens a stream with the request head `block` (from [`request_block`]) and returns its
    /// id. `end_stream`: the request has no body. `no_body`: it is a HEAD, whose response has
    /// none either.
    pub fn open_stream(
        &mut self,
        block: &[u8],
        end_stream: bool,
        no_body: bool,
        out: &mut Vec<u8>,
    ) -> Result<u32, Unavailable> {
        self.available()?;
        let id = self.next_stream;
        self.next_stream += 2;
        frame::write_headers(
            out,
            id,
            block,
            end_stream,
            self.peer.max_frame_size as usize,
        );
        let mut stream = Stream::new(
            id,
            self.limits.initial_window_size,
            self.peer.initial_window_size,
        );
        stream.send_closed = end_stream;
        stream.no_body = no_body;
        self.streams.insert(stream);
        Ok(id)
    }

    /// How many body bytes `stream` may send now (both windows).
    pub fn send_capacity(&mut self, id: u32) -> usize {
        let connection = self.send_window;
        match self.streams.get(id) {
            Some(s) if !s.send_closed => connection.min(s.send_window).max(0) as usize,
            _ => 0,
        }
    }

    /// Sends as much of `data` as the windows allow and returns how much that was; the
    /// request ends with it when `end_stream` and all of it went.
    pub fn send_data(
        &mut self,
        id: u32,
        data: &[u8],
        end_stream: bool,
        out: &mut Vec<u8>,
    ) -> usize {
        let n = data.len().min(self.send_capacity(id));
        let ends_now = end_stream && n == data.len();
        if n == 0 && !(ends_now && self.streams.get(id).is_some_and(|s| !s.send_closed)) {
            return 0;
        }
        let sending = data.get(..n).unwrap_or_default();
        if sending.is_empty() {
            frame::write_data(out, id, &[], ends_now);
        }
        let mut chunks = sending.chunks(self.peer.max_frame_size as usize).peekable();
        while let Some(chunk) = chunks.next() {
            frame::write_data(out, id, chunk, ends_now && chunks.peek().is_none());
        }
        self.send_window -= n as i64;
        if let Some(stream) = self.streams.get(id) {
            stream.send_window -= n as i64;
        }
        if ends_now {
            self.end_sending(id);
        }
        n
    }

    /// The request's trailers; the request ends with them.
    pub fn send_trailers<'f>(
        &mut self,
        id: u32,
        fields: impl IntoIterator<Item = (&'f [u8], &'f [u8])>,
        out: &mut Vec<u8>,
    ) {
        if self.streams.get(id).is_none_or(|s| s.send_closed) {
            return;
        }
        let mut block = Vec::new();
        for (name, value) in fields {
            encode_field(name, value, &mut block);
        }
        frame::write_headers(out, id, &block, true, self.peer.max_frame_size as usize);
        self.end_sending(id);
    }

    fn end_sending(&mut self, id: u32) {
        if let Some(stream) = self.streams.get(id) {
            stream.send_closed = true;
            if stream.recv_closed {
                self.streams.close(id);
            }
        }
    }

    /// Gives a stream up (its timeout, its caller gone): RST_STREAM, CANCEL as a rule. What the
    /// server still sends on it is dropped.
    pub fn reset(&mut self, id: u32, code: ErrorCode, out: &mut Vec<u8>) {
        if self.streams.contains(id) {
            frame::write_rst_stream(out, id, code);
            self.streams.close(id);
        }
    }

    /// The caller passed `n` bytes of `stream`'s response on: their window may open again. A
    /// WINDOW_UPDATE goes when half a window has been passed on, not for every frame.
    pub fn release(&mut self, id: u32, n: u32, out: &mut Vec<u8>) {
        self.release_connection(n, out);
        let size = self.limits.initial_window_size;
        crate::shared::release_stream(&mut self.streams, id, n, size, out);
    }

    pub(super) fn release_connection(&mut self, n: u32, out: &mut Vec<u8>) {
        self.recv.release(n, self.limits.connection_window, out);
    }

    /// Ends the connection with GOAWAY(`code`): the caller is done with it, or an error of its
    /// own. No server stream was accepted, so the last stream is 0.
    pub fn close(&mut self, code: ErrorCode, reason: &str, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        frame::write_goaway(out, 0, code, reason.as_bytes());
        self.closed = true;
        self.block = None;
    }

    /// The ids of the open streams.
    pub fn stream_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.ids()
    }
}
