//! What an MQTT run is told to do.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use throng_mqtt::{QoS, Version};

/// What the clients do once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Connect, hold, ping.
    Conn,
    /// And subscribe, and measure what arrives.
    Sub,
    /// And publish at the run's rate (with `subscribers`, measured end to end).
    Pub,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    pub broker: SocketAddr,
    /// The TLS server name (SNI and certificate check) when speaking TLS.
    pub server_name: String,
    pub tls: Option<throng_tls::config::ClientOptions>,
    pub version: Version,
    /// Clients of the role (`-c`).
    pub clients: usize,
    /// New connections per second (`-R`); the ramp is exact, not bursty.
    pub connect_rate: f64,
    pub keep_alive: u16,
    pub qos: QoS,
    /// Topic template for publishing or subscribing: `%i` is the client's index.
    pub topic: String,
    /// With `Role::Pub`: subscribers in this run, and their filter template.
    pub subscribers: usize,
    pub sub_topic: String,
    /// Messages per second over all publishers (an open model: due times never wait).
    pub publish_rate: f64,
    /// Payload bytes (at least the 32 of throng's stamp).
    pub payload_size: usize,
    /// QoS 1 and 2 messages awaiting acknowledgement per connection, at most (and at most the
    /// broker's MQTT 5 Receive Maximum).
    pub inflight: u16,
    /// Client ids are `{prefix}-{role}-{index}`.
    pub prefix: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub clean_start: bool,
    pub sources: Vec<IpAddr>,
    /// How long the run lasts from its start; `None`: until Ctrl-C.
    pub duration: Option<Duration>,
    /// After publishing ends, how long subscribers wait for messages still on their way.
    pub drain: Duration,
    /// From the TCP connect to CONNACK (and SUBACK), at most.
    pub connect_timeout: Duration,
    /// Largest packet accepted from the broker.
    pub max_packet: usize,
    pub threads: usize,
    /// Reconnect a connection that ended, after this back-off (doubling, to 30 s); `None`: not.
    pub reconnect: Option<Duration>,
}

impl Config {
    pub fn client_id(&self, role: Role, index: usize) -> String {
        let role = match role {
            Role::Conn => "conn",
            Role::Sub => "sub",
            Role::Pub => "pub",
        };
        format!("{}-{role}-{index}", self.prefix)
    }

    /// A topic template with the client's index in place of `%i`.
    pub fn topic_of(template: &str, index: usize) -> String {
        template.replace("%i", &index.to_string())
    }

    /// The filter subscribers use when not told: the publish template with `+` for `%i`.
    pub fn default_sub_topic(publish_template: &str) -> String {
        publish_template.replace("%i", "+")
    }
}
