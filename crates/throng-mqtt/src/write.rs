//! Writing packets: each function appends one whole packet to `out` and returns it as a slice,
//! so a connection can reuse one buffer for everything it sends.

use crate::{kind, QoS, Version};

pub struct ConnectOptions<'a> {
    pub version: Version,
    pub client_id: &'a str,
    pub keep_alive: u16,
    pub clean_start: bool,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    /// MQTT 5: how many QoS 1 and 2 PUBLISHes this client accepts unacknowledged.
    pub receive_maximum: Option<u16>,
}

pub fn connect<'a>(out: &'a mut Vec<u8>, options: &ConnectOptions<'_>) -> &'a [u8] {
    let mut body = Vec::with_capacity(32 + options.client_id.len());
    match options.version {
        Version::V31 => {
            text(&mut body, "MQIsdp");
        }
        _ => text(&mut body, "MQTT"),
    }
    body.push(options.version.level());
    let mut flags = 0u8;
    if options.clean_start {
        flags |= 0x02;
    }
    if options.username.is_some() {
        flags |= 0x80;
    }
    if options.password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&options.keep_alive.to_be_bytes());
    if options.version == Version::V5 {
        match options.receive_maximum {
            Some(n) => {
                body.push(3);
                body.push(crate::properties::RECEIVE_MAXIMUM);
                body.extend_from_slice(&n.to_be_bytes());
            }
            None => body.push(0),
        }
    }
    text(&mut body, options.client_id);
    if let Some(username) = options.username {
        text(&mut body, username);
    }
    if let Some(password) = options.password {
        binary(&mut body, password);
    }
    packet(out, kind::CONNECT << 4, &body)
}

/// A PUBLISH; `packet_id` must be given at QoS 1 and 2.
pub fn publish<'a>(
    out: &'a mut Vec<u8>,
    version: Version,
    topic: &str,
    qos: QoS,
    packet_id: Option<u16>,
    payload: &[u8],
) -> &'a [u8] {
    let start = out.len();
    out.push(kind::PUBLISH << 4 | (qos as u8) << 1);
    let mut length = 2 + topic.len() + payload.len();
    if qos != QoS::AtMostOnce {
        length += 2;
    }
    if version == Version::V5 {
        length += 1;
    }
    remaining_length(out, length);
    text(out, topic);
    if qos != QoS::AtMostOnce {
        out.extend_from_slice(&packet_id.unwrap_or(1).to_be_bytes());
    }
    if version == Version::V5 {
        out.push(0);
    }
    out.extend_from_slice(payload);
    out.get(start..).unwrap_or_default()
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP with success (no reason code: §3.4.2.1 allows leaving it
/// out in MQTT 5 when it is 0).
pub fn ack(out: &mut Vec<u8>, kind: u8, packet_id: u16) -> &[u8] {
    let flags = if kind == crate::kind::PUBREL { 0x02 } else { 0 };
    packet(out, kind << 4 | flags, &packet_id.to_be_bytes())
}

pub fn subscribe<'a>(
    out: &'a mut Vec<u8>,
    version: Version,
    packet_id: u16,
    filter: &str,
    qos: QoS,
) -> &'a [u8] {
    let mut body = Vec::with_capacity(8 + filter.len());
    body.extend_from_slice(&packet_id.to_be_bytes());
    if version == Version::V5 {
        body.push(0);
    }
    text(&mut body, filter);
    body.push(qos as u8);
    packet(out, kind::SUBSCRIBE << 4 | 0x02, &body)
}

pub fn pingreq(out: &mut Vec<u8>) -> &[u8] {
    packet(out, kind::PINGREQ << 4, &[])
}

/// A normal disconnection (reason 0 in MQTT 5, which may then be left out).
pub fn disconnect(out: &mut Vec<u8>) -> &[u8] {
    packet(out, kind::DISCONNECT << 4, &[])
}

fn packet<'a>(out: &'a mut Vec<u8>, first: u8, body: &[u8]) -> &'a [u8] {
    let start = out.len();
    out.push(first);
    remaining_length(out, body.len());
    out.extend_from_slice(body);
    out.get(start..).unwrap_or_default()
}

fn remaining_length(out: &mut Vec<u8>, mut length: usize) {
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if length == 0 {
            return;
        }
    }
}

fn text(out: &mut Vec<u8>, text: &str) {
    binary(out, text.as_bytes());
}

fn binary(out: &mut Vec<u8>, bytes: &[u8]) {
    // Callers' strings are short (topics, ids, names); MQTT cannot carry more than 65,535 bytes.
    let length = bytes.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(length as u16).to_be_bytes());
    out.extend_from_slice(bytes.get(..length).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_written_in_the_fewest_bytes() {
        for (length, bytes) in [
            (0usize, vec![0u8]),
            (127, vec![0x7F]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xFF, 0x7F]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            remaining_length(&mut out, length);
            assert_eq!(out, bytes, "{length}");
        }
        assert_eq!(pingreq(&mut Vec::new()), [0xC0, 0x00]);
    }
}
