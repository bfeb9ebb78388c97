//! TLS for every part of throng, in a crate of its own so that what parses a hostile peer's
//! records has a clear border to review and fuzz.
//!
//! - [`config`]: rustls (aws-lc-rs) configurations, self-signed certificates, and a socket driver.
//! - [`stream`]: TLS over a tokio socket with rustls's unbuffered API: state, not buffers.
//! - [`records`]: TLS 1.3's record layer past the handshake, on the keys rustls hands over.
//!
//! `LIFECYCLE.md` beside this file is the maintainers' map of the record layer.

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

pub mod config;
pub mod records;
pub mod stream;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
