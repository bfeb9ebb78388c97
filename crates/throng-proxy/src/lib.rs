//! `throng proxy`: a TLS-terminating TCP/HTTP load balancer for very many mostly idle
//! connections. HAProxy's concepts (frontends, backends, servers, balance algorithms, health
//! checks, queues under `maxconn`, its log format and termination states) in a TOML file.
//!
//! A connection's path through the modules:
//! [`server`] accepts it (thread per core, limits) and runs the TLS handshake ([`certs`] picks
//! the certificate by SNI); [`http`], [`tcp`] or [`mqtt`] serves it over a [`stream::ClientStream`];
//! [`dispatch`] finds a server ([`balance`]), waits in the queue, connects or reuses an idle
//! connection, retries; [`relay`] moves bytes both ways for tunnels; [`log`] writes the line.
//! `throng_net::buffers` lends buffers only while bytes are in flight. With
//! `global.processes` above 1, [`master`] runs that many worker processes of it. A reload
//! starts a new [`generation`] on the same [`listeners`]; an [`upgrade`] hands them to a new
//! binary.

// Network-facing: no unwrap, expect or panic in code that is not a test.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod balance;
pub mod certs;
pub mod config;
pub mod ctl;
pub mod dispatch;
pub mod generation;
pub mod health;
pub mod http;
pub mod listeners;
pub mod log;
pub mod master;
pub mod metrics;
pub mod mqtt;
pub mod privileges;
pub mod proxy_header;
pub mod proxy_protocol;
pub mod rate;
pub mod relay;
pub mod server;
pub mod server_stream;
pub mod session;
pub mod state;
pub mod stream;
pub mod tcp;
pub mod tickets;
pub mod upgrade;

pub use config::{load, parse, Config, ConfigError};
pub use server::run;
