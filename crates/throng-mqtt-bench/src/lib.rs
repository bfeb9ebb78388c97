//! `throng mqtt`: MQTT load in emqtt-bench's vocabulary, measured as throng measures HTTP.
//!
//! - [`config`]: what a run is told (role, broker, clients, rates, QoS, topics, TLS).
//! - [`run`]: threads, the exact connection ramp, the phases (publish or hold, drain, stop).
//! - `client`: one client's life: CONNECT, SUBSCRIBE, pings, the open-model publishing
//!   schedule with its acknowledgement window, answers to what arrives.
//! - `connection`: the socket (TCP, TLS) and packets in and out.
//! - `stamp`: the publisher's header in each payload: run, publisher, sequence, intended and
//!   actual send times.
//! - [`stats`] and [`report`]: what was measured, merged over threads, as text and JSON.

pub mod config;
pub mod report;
pub mod run;
pub mod stats;

mod client;
mod connection;
mod stamp;

pub use config::{Config, Role};
pub use run::{run, Live};
