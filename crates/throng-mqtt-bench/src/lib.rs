//! `throng mqtt`: MQTT load in emqtt-bench's vocabulary, measured as throng measures HTTP.
//!
//! - [`config`]: what a run is told (role, broker, clients, rates, QoS, topics, TLS).
//! - [`run`]: threads, the exact connection ramp, the phases (publish or hold, drain, stop).
//! - `client`: one client's life: CONNECT, SUBSCRIBE, pings, the open-model publishing
//!   schedule with its acknowledgement window, answers to what arrives.
//! - `connection`: the socket (TCP, TLS) and packets in and out.
//! - `alarms`: each thread's one timer for its connections' pings and messages.
//! - `stamp`: the publisher's header in each payload: run, publisher, sequence, intended and
//!   actual send times.
//! - `seconds`: each thread's figures per second, gathered into the run's results stream.
//!
//! What is measured and how it is reported live in `throng_results::mqtt`, so that `throng
//! report` reads a run's file as the run itself reports.

pub mod config;
pub mod run;

mod seconds;
pub use throng_results::mqtt::{report, stats};

mod alarms;
mod client;
mod connection;
mod stamp;

pub use config::{Config, Part, Role};
pub use run::{run, Live};
