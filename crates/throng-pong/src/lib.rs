//! `throng pong`: the story's backend. Any request gets `pong`; header `sleep: N` waits a random
//! 0..=N ms first (`sleep: MIN-MAX`: MIN..=MAX ms, for holds of a known length), header `times: K` writes K more `pong`s after further random waits, as a
//! chunked response (what the Node.js original did). Built to hold a very large number of such
//! sleeping requests: an idle or sleeping connection keeps its socket, a timer and a few words of
//! state, and no buffer.
//!
//! - [`config`]: what the command line sets.
//! - `server`: binding, worker threads, accept loops, graceful stop.
//! - `connection`: one connection's life, as a loop over requests.
//! - `request`: what a request head asks pong to do.
//! - `pacing`: `--max-rps`, first come first served.
//! - `metrics` and `admin`: Prometheus counters and the listener that serves them.
//! - [`master`]: `--procs N`, several processes of it with one merged `/metrics`.

// Network-facing: no unwrap, expect or panic in code that is not a test.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod admin;
pub mod config;
mod connection;
mod h2;
pub mod master;
mod metrics;
mod pacing;
mod request;
mod server;

pub use config::Config;
pub use server::run;
