//! MQTT 3.1.1 (OASIS 2014) and 5.0 (OASIS 2019), the packets a load generator and a proxy need:
//! read in place from the caller's buffer with a limit on their size, and written into one.
//!
//! - [`read`]: the fixed header and its remaining length, then each packet's fields, by the
//!   specification's rules; every length is checked against the bytes there before it is used.
//! - [`write`]: CONNECT, PUBLISH and its acknowledgements, SUBSCRIBE, PINGREQ, DISCONNECT.
//! - [`properties`]: MQTT 5 properties, walked without copying; the few a client acts on.
//! - [`topic`]: topic filters matched against topic names (`+` and `#`).

// Hostile bytes come through here: no panic in code that is not a test.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod properties;
pub mod read;
pub mod topic;
pub mod write;

pub use read::{Connect, Packet, ReadError};

/// The protocol version a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// MQTT 3.1 (protocol name `MQIsdp`, level 3): read in CONNECT only, as brokers still accept it.
    V31,
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

impl Version {
    pub fn level(self) -> u8 {
        match self {
            Version::V31 => 3,
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Version::V31 => "3.1",
            Version::V311 => "3.1.1",
            Version::V5 => "5",
        }
    }
}

/// Quality of service of a PUBLISH or a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Packet types (the fixed header's high nibble).
pub mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
    pub const AUTH: u8 = 15;
}

/// The largest remaining length MQTT can express (four length bytes).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;
