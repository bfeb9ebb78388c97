//! What an MQTT run was asked to do: enough for a report to say what its figures mean (which
//! subscriber should have received which publisher's messages) and for parts of one run to be
//! recognised as such.

use serde::{Deserialize, Serialize};

/// What the clients do once connected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Connect, hold, ping.
    #[default]
    Conn,
    /// And subscribe, and measure what arrives.
    Sub,
    /// And publish at the run's rate (with `subscribers`, measured end to end).
    Pub,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Conn => "conn",
            Role::Sub => "sub",
            Role::Pub => "pub",
        }
    }
}

/// The whole run's shape (every part of a run carries the same).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Plan {
    pub role: Role,
    /// "3.1.1" or "5".
    pub version: String,
    pub qos: u8,
    pub tls: bool,
    pub broker: String,
    /// Clients of the role (`-c`), over all parts.
    pub clients: u64,
    /// With `Role::Pub`: subscribers in the run, and their filter template.
    pub subscribers: u64,
    /// Publish topic (or subscription filter) template, `%i` the client's index.
    pub topic: String,
    pub sub_topic: String,
    /// Messages per second over all publishers (`pub`), new connections per second.
    pub publish_rate: f64,
    pub connect_rate: f64,
    pub keep_alive: u16,
    pub payload_size: u64,
}

impl Plan {
    /// A topic template with the client's index in place of `%i`.
    pub fn topic_of(template: &str, index: u64) -> String {
        template.replace("%i", &index.to_string())
    }

    /// Every connection the run opens: its clients, and with `pub` its subscribers.
    pub fn connections(&self) -> u64 {
        self.clients
            + if self.role == Role::Pub {
                self.subscribers
            } else {
                0
            }
    }

    /// What parts of one run share, for [`crate::parts::schedule_hash`]: everything that
    /// shapes the schedule.
    pub fn schedule_text(&self) -> String {
        format!(
            "mqtt {} v{} q{} tls={} {} c={} s={} t={} st={} pub={} conn={} k={} size={}",
            self.role.name(),
            self.version,
            self.qos,
            self.tls,
            self.broker,
            self.clients,
            self.subscribers,
            self.topic,
            self.sub_topic,
            self.publish_rate,
            self.connect_rate,
            self.keep_alive,
            self.payload_size
        )
    }
}
