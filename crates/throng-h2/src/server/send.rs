//! The server's half of each stream: response heads, bodies within the client's windows,
//! trailers and resets; the windows given back as the caller passes request bodies on; and the
//! graceful shutdown's two GOAWAYs.

use super::{Connection, Shutdown, State, SHUTDOWN_PING};
use crate::error::ErrorCode;
use crate::frame::{self, MAX_WINDOW};
use crate::hpack::encoder::{encode_field, encode_status, TABLE_SIZE_ZERO};

impl Connection {
    /// The caller passed `n` bytes of `stream`'s body on: their window may open again. A
    /// WINDOW_UPDATE goes when half a window has been passed on, not for every frame.
    pub fn release(&mut self, id: u32, n: u32, out: &mut Vec<u8>) {
        self.release_connection(n, out);
        let size = self.limits.initial_window_size;
        crate::shared::release_stream(&mut self.streams, id, n, size, out);
    }

    pub(super) fn release_connection(&mut self, n: u32, out: &mut Vec<u8>) {
        self.recv.release(n, self.limits.connection_window, out);
    }

    /// A response's head: `:status` and the fields (lowercase names, no connection-specific
    /// ones: the caller's downgrade has taken them off).
    pub fn send_head<'f>(
        &mut self,
        id: u32,
        status: u16,
        fields: impl IntoIterator<Item = (&'f [u8], &'f [u8])>,
        end_stream: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(stream) = self.streams.get(id) else {
            return;
        };
        if stream.send_closed || (stream.head_sent && status >= 200) {
            return;
        }
        if status >= 200 {
            stream.head_sent = true;
        }
        let mut block = Vec::new();
        if !self.sent_block {
            block.push(TABLE_SIZE_ZERO);
            self.sent_block = true;
        }
        encode_status(status, &mut block);
        for (name, value) in fields {
            encode_field(name, value, &mut block);
        }
        frame::write_headers(
            out,
            id,
            &block,
            end_stream,
            self.peer.max_frame_size as usize,
        );
        if end_stream {
            self.end_sending(id);
        }
    }

    /// How many body bytes `stream` may send now (both windows).
    pub fn send_capacity(&mut self, id: u32) -> usize {
        let connection = self.send_window;
        match self.streams.get(id) {
            Some(s) if !s.send_closed => connection.min(s.send_window).max(0) as usize,
            _ => 0,
        }
    }

    /// Sends as much of `data` as the windows allow and returns how much that was; the stream
    /// ends with it when `end_stream` and all of it went.
    pub fn send_data(
        &mut self,
        id: u32,
        data: &[u8],
        end_stream: bool,
        out: &mut Vec<u8>,
    ) -> usize {
        let n = data.len().min(self.send_capacity(id));
        if n == 0 && !(data.is_empty() && end_stream) {
            return 0;
        }
        let last = end_stream && n == data.len();
        let sending = data.get(..n).unwrap_or_default();
        crate::shared::write_data(out, id, sending, last, self.peer.max_frame_size as usize);
        self.send_window -= n as i64;
        if let Some(stream) = self.streams.get(id) {
            stream.send_window -= n as i64;
        }
        if last {
            self.end_sending(id);
        }
        n
    }

    /// The response's trailers; the stream ends with them.
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
        if !self.sent_block {
            block.push(TABLE_SIZE_ZERO);
            self.sent_block = true;
        }
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

    /// Ends a stream from our side (its server failed, its client is too slow, its response
    /// is complete before its request: NO_ERROR, §8.1).
    pub fn reset(&mut self, id: u32, code: ErrorCode, out: &mut Vec<u8>) {
        if self.streams.contains(id) {
            frame::write_rst_stream(out, id, code);
            self.streams.close(id);
        }
    }

    /// The first step of a graceful shutdown (§6.8): GOAWAY with the highest id, so clients
    /// stop opening streams, and a PING whose answer starts the second step.
    pub fn shutdown(&mut self, out: &mut Vec<u8>) {
        if self.state == State::Closed || self.shutdown != Shutdown::None {
            return;
        }
        if self.state == State::Preface {
            self.state = State::Closed;
            return;
        }
        frame::write_goaway(out, MAX_WINDOW, ErrorCode::NO_ERROR, b"");
        frame::write_header(out, 8, frame::kind::PING, 0, 0);
        out.extend_from_slice(&SHUTDOWN_PING);
        self.shutdown = Shutdown::Announced;
    }

    /// Whether the graceful shutdown's second GOAWAY has gone.
    pub fn is_final_goaway_sent(&self) -> bool {
        matches!(self.shutdown, Shutdown::Final { .. })
    }

    /// The second step: GOAWAY with the last stream the client opened. Called when the PING
    /// comes back, or by the caller when it has waited long enough.
    pub fn finish_shutdown(&mut self, out: &mut Vec<u8>) {
        if self.state == State::Closed || matches!(self.shutdown, Shutdown::Final { .. }) {
            return;
        }
        frame::write_goaway(out, self.last_stream, ErrorCode::NO_ERROR, b"");
        self.shutdown = Shutdown::Final {
            last: self.last_stream,
        };
    }
}
