//! `throng attack`: an open-model load generator that tells the truth about latency.
//!
//! - [`targets`] and [`url`]: what to send, in vegeta's formats.

pub mod targets;
pub mod url;
