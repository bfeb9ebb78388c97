//! The configuration file as written: HAProxy's concepts in TOML spelling. Every key is
//! documented in `docs/proxy.md`; unknown keys are refused, so a typo never passes silently.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub global: Global,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub frontends: BTreeMap<String, Frontend>,
    #[serde(default)]
    pub backends: BTreeMap<String, Backend>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    pub processes: Option<usize>,
    pub threads: Option<usize>,
    pub maxconn: Option<u64>,
    pub memory_budget: Option<String>,
    pub grace: Option<String>,
    pub admin: Option<String>,
    pub admin_token: Option<String>,
    pub admin_socket: Option<String>,
    pub admin_socket_mode: Option<String>,
    pub admin_socket_user: Option<String>,
    pub admin_socket_group: Option<String>,
    pub admin_maxconn: Option<usize>,
    pub admin_timeout: Option<String>,
    pub stats_auth: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub log: Option<String>,
    pub log_format: Option<String>,
    pub pidfile: Option<String>,
    pub hard_stop_after: Option<String>,
    pub close_rate: Option<u64>,
    pub max_generations: Option<usize>,
    pub at_max_generations: Option<String>,
}

/// Values every frontend and backend starts from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub mode: Option<String>,
    pub maxconn: Option<u64>,
    pub balance: Option<String>,
    pub retries: Option<u32>,
    pub redispatch: Option<bool>,
    pub forwardfor: Option<bool>,
    pub forwarded: Option<bool>,
    pub max_idle_per_server: Option<usize>,
    #[serde(default)]
    pub timeout: Timeouts,
}

/// Every timeout HAProxy users know, as Go-style durations (`5s`, `1m30s`, `1h`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub client: Option<String>,
    #[serde(rename = "http-request")]
    pub http_request: Option<String>,
    #[serde(rename = "http-keep-alive")]
    pub http_keep_alive: Option<String>,
    pub handshake: Option<String>,
    #[serde(rename = "mqtt-connect")]
    pub mqtt_connect: Option<String>,
    #[serde(rename = "mqtt-max-idle")]
    pub mqtt_max_idle: Option<String>,
    pub connect: Option<String>,
    pub server: Option<String>,
    pub tunnel: Option<String>,
    pub queue: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    pub bind: Vec<String>,
    pub mode: Option<String>,
    pub maxconn: Option<u64>,
    pub default_backend: Option<String>,
    pub forwardfor: Option<bool>,
    pub forwarded: Option<bool>,
    pub tls: Option<Tls>,
    /// Mode mqtt: the largest CONNECT read, in bytes.
    pub mqtt_max_connect: Option<u64>,
    pub rate_limit_sessions: Option<u64>,
    pub accept_proxy: Option<AcceptProxy>,
    /// HTTP/2 without TLS, by prior knowledge: a connection that opens with HTTP/2's preface.
    pub h2c: Option<bool>,
    pub h2: Option<H2>,
    #[serde(default)]
    pub timeout: Timeouts,
    #[serde(default)]
    pub route: Vec<Route>,
}

/// `[frontends.NAME.h2]`: an HTTP/2 client connection's limits (see `config/h2.rs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct H2 {
    pub max_concurrent_streams: Option<u64>,
    pub stream_window: Option<String>,
    pub connection_window: Option<String>,
    pub max_header_list_size: Option<String>,
    pub max_header_fields: Option<u64>,
    pub max_header_block: Option<String>,
    pub max_continuations: Option<u64>,
    pub resets_per_second: Option<u64>,
    pub settings_per_second: Option<u64>,
    pub pings_per_second: Option<u64>,
    pub ignored_frames_per_second: Option<u64>,
    pub window_updates_per_second: Option<u64>,
    pub empty_data_per_second: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The first is the default; the others are chosen by the SNI name the client sends.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// Names for a self-signed certificate made at start (tests, demos).
    pub self_signed: Option<Vec<String>>,
    pub alpn: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    /// `throng` (the default) or `rustls`: which record layer carries TLS 1.3 past the handshake.
    pub record_layer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub cert: String,
    pub key: String,
}

/// A routing rule: the first rule whose conditions all hold picks the backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub backend: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub mode: Option<String>,
    pub balance: Option<String>,
    pub balance_fallback: Option<String>,
    pub hash_balance_factor: Option<u32>,
    pub source: Option<String>,
    pub retries: Option<u32>,
    pub redispatch: Option<bool>,
    pub max_idle_per_server: Option<usize>,
    /// TLS toward every server of the backend (a server's own `tls` keys win over these).
    pub tls: Option<ServerTls>,
    pub servers: Vec<Server>,
    pub check: Option<Check>,
    #[serde(default)]
    pub timeout: Timeouts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: String,
    /// `host:port`, or `host:first-last` for a range of ports (one server per port).
    pub address: String,
    pub weight: Option<u32>,
    pub maxconn: Option<u32>,
    /// Whether health checks apply to this server (when the backend has `check`).
    pub check: Option<bool>,
    pub send_proxy: Option<String>,
    pub tls: Option<ServerTls>,
}

/// TLS toward servers: HAProxy's `ssl verify required ca-file ... sni ... alpn ... crt ...`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// `required` (the default) or `none`.
    pub verify: Option<String>,
    /// PEM file of the certificates that sign the servers'.
    pub ca: Option<String>,
    /// The name sent as SNI and that the server's certificate must carry.
    pub sni: Option<String>,
    pub alpn: Option<Vec<String>>,
    /// A client certificate chain and its key (mTLS).
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Resume sessions with each server (on by default).
    pub resume: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
}

/// `accept_proxy = true`, or the addresses and CIDR blocks of the load balancers allowed to send
/// a PROXY protocol header.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AcceptProxy {
    Anyone(bool),
    From(Vec<String>),
}
