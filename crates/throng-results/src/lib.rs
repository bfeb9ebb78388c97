//! throng's results: what every request did, in a compact stream that any number of processes
//! or machines write and any reader merges exactly.
//!
//! - [`record`]: one request's outcome: its intended and actual start, phase timings, status,
//!   bytes, which server answered, and a named error class when it failed.
//! - [`stream`]: the binary format: a versioned header, then length-prefixed frames (run
//!   metadata, records, per-second interval histograms, an end summary). Readable while it is
//!   being written; a truncated tail from a killed run is read up to the last whole frame.
//! - [`report`]: vegeta's text report and more, JSON, and latency histograms, over merged inputs.
//! - [`encode`]: records as JSON lines or CSV with vegeta's field names, and back.
//! - [`parts`]: one run over many machines: its parts checked to belong together.
//! - [`vegeta`]: vegeta's own binary (gob) and CSV results, read as they are.
//! - [`mqtt`]: MQTT runs: their seconds and totals in the same stream, and their report.

pub mod encode;
pub mod mqtt;
pub mod parts;
pub mod record;
pub mod report;
pub mod stream;
pub mod threshold;
pub mod time;
pub mod vegeta;

pub use record::{ErrorClass, Phase, Record};
pub use stream::{End, Frame, Interval, Meta, Reader, Writer};
