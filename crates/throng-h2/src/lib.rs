//! throng's HTTP/2 codec, sans I/O: the caller reads bytes and hands them in, and takes out the
//! bytes to write. It owns no socket and no read or write buffer of its own, so a connection at
//! rest holds only its state (settings, windows, the peer's HPACK table): the few KiB per
//! connection that let one proxy hold millions of clients, where a codec that owns its buffers
//! holds 20 KiB or more for each.
//!
//! - [`frame`]: frames parsed in place and written, with RFC 9113 §6's checks.
//! - [`hpack`]: header blocks decoded within limits, and encoded with no table.
//! - [`server`]: a server connection: streams, flow control, floods, graceful shutdown.
//! - [`client`]: a client connection: streams opened within the server's limits, responses checked.
//! - [`settings`]: SETTINGS parameters and the rules for their values.
//! - [`error`]: error codes, and whether an error ends a stream or the connection.

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

pub mod client;
pub mod error;
pub mod frame;
pub mod hpack;
mod limits;
pub mod server;
pub mod settings;
mod shared;
mod streams;

pub use error::{ErrorCode, H2Error};

/// What a client sends first (RFC 9113 §3.4), before its SETTINGS.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
