//! `throng attack`: an open-model load generator that tells the truth about latency.
//!
//! - [`targets`] and [`url`]: what to send, in vegeta's formats.
//! - `request`: each target written out as the bytes of its request, once.
//! - `engine`: an attack's threads, what they share, and how the run ends.
//! - `schedule`: the open model, a thread's share of it (request `i` is due at `i / rate`).
//! - `lanes`: the tasks that send what is due, one request at a time each, under the cap.
//! - `alarm`: a microsecond timer for the waits until requests are due.
//! - `client`: one request on one connection, timed phase by phase, errors classified.
//! - `h2`: a request as an HTTP/2 stream, on a few connections per host, each with its driver.
//! - `sink`: the writer thread that streams results out.
//! - [`progress`]: the live line on stderr.
//! - [`split`]: an attack split over processes, their results merged as they come.

// Network-facing: no unwrap, expect or panic in code that is not a test.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod alarm;
mod client;
pub mod config;
mod engine;
mod h2;
mod lanes;
pub mod progress;
mod request;
mod schedule;
mod sink;
pub mod split;
pub mod targets;
pub mod url;

pub use config::{Config, Part};
pub use engine::{run, Live, Ran};
pub use request::Http2Options;
