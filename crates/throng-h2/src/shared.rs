//! What both sides of a connection do alike: gather a header block across CONTINUATION frames,
//! take the peer's SETTINGS, give receive windows back, and cut DATA to the peer's frame size.
//! The server and the client differ in what a block or a frame means, not in these.

use crate::error::{ErrorCode, H2Error};
use crate::frame::{self, MAX_WINDOW};
use crate::limits::{Flood, Limits};
use crate::settings::Settings;
use crate::streams::Streams;

/// A header block being gathered from HEADERS and CONTINUATION frames.
#[derive(Debug)]
pub(crate) struct PendingBlock {
    pub stream: u32,
    pub end_stream: bool,
    pub bytes: Vec<u8>,
    pub continuations: u32,
}

impl PendingBlock {
    /// A HEADERS without END_HEADERS: its part of the block, kept within the limit.
    pub fn start(
        stream: u32,
        end_stream: bool,
        block: &[u8],
        limits: &Limits,
    ) -> Result<PendingBlock, H2Error> {
        if block.len() > limits.max_header_block {
            return Err(H2Error::flood(Flood::HeaderBlock));
        }
        Ok(PendingBlock {
            stream,
            end_stream,
            bytes: block.to_vec(),
            continuations: 0,
        })
    }

    /// A CONTINUATION's part: counted and kept within the limits.
    pub fn extend(&mut self, block: &[u8], limits: &Limits) -> Result<(), H2Error> {
        self.continuations += 1;
        if self.continuations > limits.max_continuations {
            return Err(H2Error::flood(Flood::Continuations));
        }
        if self.bytes.len() + block.len() > limits.max_header_block {
            return Err(H2Error::flood(Flood::HeaderBlock));
        }
        self.bytes.extend_from_slice(block);
        Ok(())
    }
}

/// The peer's SETTINGS (not an ACK): applied in order, every open stream's send window moved by
/// the change of SETTINGS_INITIAL_WINDOW_SIZE (§6.9.2), and acknowledged. Returns that change.
pub(crate) fn take_settings(
    peer: &mut Settings,
    streams: &mut Streams,
    params: &[u8],
    out: &mut Vec<u8>,
) -> Result<i64, H2Error> {
    let before = peer.initial_window_size;
    peer.apply(params)?;
    let delta = i64::from(peer.initial_window_size) - i64::from(before);
    if delta != 0 {
        for s in streams.iter_mut() {
            s.send_window += delta;
            if s.send_window > i64::from(MAX_WINDOW) {
                return Err(H2Error::connection(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window",
                ));
            }
        }
    }
    frame::write_settings_ack(out);
    Ok(delta)
}

/// What we may still receive on a connection, and what was passed on but not given back.
#[derive(Debug)]
pub(crate) struct ReceiveWindow {
    pub window: i64,
    pub unreleased: u32,
}

impl ReceiveWindow {
    /// `n` bytes were passed on: a WINDOW_UPDATE goes once half of `size` has been, not for
    /// every frame.
    pub fn release(&mut self, n: u32, size: u32, out: &mut Vec<u8>) {
        self.unreleased = self.unreleased.saturating_add(n);
        if self.unreleased >= size / 2 {
            frame::write_window_update(out, 0, self.unreleased);
            self.window += i64::from(self.unreleased);
            self.unreleased = 0;
        }
    }
}

/// A stream's share of [`ReceiveWindow::release`]: its own window, given back the same way.
pub(crate) fn release_stream(streams: &mut Streams, id: u32, n: u32, size: u32, out: &mut Vec<u8>) {
    let Some(stream) = streams.get(id) else {
        return;
    };
    if stream.recv_closed {
        return;
    }
    stream.unreleased = stream.unreleased.saturating_add(n);
    if stream.unreleased >= size / 2 {
        frame::write_window_update(out, id, stream.unreleased);
        stream.recv_window += i64::from(stream.unreleased);
        stream.unreleased = 0;
    }
}

/// `data` (what the windows allow, already cut) as DATA frames of at most `max_frame` bytes;
/// an empty one when there is nothing but the end to say.
pub(crate) fn write_data(out: &mut Vec<u8>, id: u32, data: &[u8], last: bool, max_frame: usize) {
    if data.is_empty() {
        frame::write_data(out, id, &[], last);
    }
    let mut chunks = data.chunks(max_frame.max(1)).peekable();
    while let Some(chunk) = chunks.next() {
        frame::write_data(out, id, chunk, last && chunks.peek().is_none());
    }
}
