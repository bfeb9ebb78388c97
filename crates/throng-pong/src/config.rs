//! What `throng pong` is told to do.

use std::net::SocketAddr;
use std::time::Duration;
use throng_http1::Limits;

#[derive(Clone, Debug)]
pub struct Config {
    /// Every address to listen on (ranges already expanded).
    pub listen: Vec<SocketAddr>,
    /// Worker threads, each with its own listener per address.
    pub threads: usize,
    /// A connection with no bytes read or written for this long is closed: between requests
    /// (idle keep-alive) and while a response sleeps (Node's `server.timeout`, set to 1 hour in
    /// the story).
    pub timeout: Duration,
    /// Time allowed to receive a whole request head once its first byte arrived (slow clients).
    pub header_timeout: Duration,
    /// Serve at most this many requests per second; the rest wait their turn.
    pub max_rps: Option<f64>,
    /// Address of the Prometheus `/metrics` listener.
    pub admin: Option<SocketAddr>,
    /// Most connections open at once; `None` means as many as the open-files limit allows.
    pub max_connections: Option<u64>,
    /// On SIGTERM/SIGINT, how long responses in progress may take to finish.
    pub grace: Duration,
    /// Limits on request heads.
    pub limits: Limits,
    /// Serve TLS on every listen address with this configuration.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Without TLS: serve HTTP/2 to a client that opens with its preface (h2c by prior
    /// knowledge), HTTP/1.1 to the others.
    pub h2c: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8282))],
            threads: throng_net::workers::default_threads(),
            timeout: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(10),
            max_rps: None,
            admin: None,
            max_connections: None,
            grace: Duration::from_secs(10),
            limits: Limits::default(),
            tls: None,
            h2c: false,
        }
    }
}
