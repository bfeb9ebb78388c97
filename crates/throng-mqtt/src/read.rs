//! Reading packets in place. [`packet`] takes the bytes received so far and returns the first
//! whole packet and its length, `Ok(None)` while it is not all there yet, or an error; a
//! remaining length over the caller's limit is refused from the fixed header alone, before
//! anything waits for (or allocates room for) the rest.

use crate::properties::{self, Value};
use crate::{kind, QoS, Version, MAX_REMAINING_LENGTH};

/// Why bytes are not the packet they should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// A remaining length over the limit: (length announced, limit).
    TooLarge(usize, usize),
    /// The bytes break the specification; says which part.
    Malformed(&'static str),
    /// A packet type this side never receives (a client sent CONNACK, say).
    Unexpected(u8),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge(length, limit) => {
                write!(f, "a packet of {length} bytes, over the {limit} allowed")
            }
            ReadError::Malformed(what) => write!(f, "malformed packet: {what}"),
            ReadError::Unexpected(kind) => write!(f, "unexpected packet type {kind}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// A packet, its fields borrowed from the buffer it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck {
        session_present: bool,
        /// 3.1.1's return code or 5's reason code; 0 is success in both.
        code: u8,
        /// MQTT 5's Receive Maximum: how many QoS 1 and 2 PUBLISHes may await acknowledgement.
        receive_maximum: Option<u16>,
        /// MQTT 5's Server Keep Alive: the keep-alive the broker holds the client to.
        server_keep_alive: Option<u16>,
    },
    Publish {
        dup: bool,
        qos: QoS,
        retain: bool,
        topic: &'a str,
        /// Present at QoS 1 and 2.
        packet_id: Option<u16>,
        payload: &'a [u8],
    },
    /// PUBACK, PUBREC, PUBREL or PUBCOMP (the type says which); MQTT 5 adds a reason code.
    Ack {
        kind: u8,
        packet_id: u16,
        code: u8,
    },
    SubAck {
        packet_id: u16,
        /// One per filter asked for: the QoS granted, or 0x80 and up for a refusal.
        codes: &'a [u8],
    },
    UnsubAck {
        packet_id: u16,
    },
    PingReq,
    PingResp,
    Disconnect {
        /// MQTT 5's reason code (0 when absent, and always in 3.1.1).
        code: u8,
    },
    /// MQTT 5's AUTH (reason code only).
    Auth {
        code: u8,
    },
}

/// A CONNECT packet (§3.1), as a proxy validates it and logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: Version,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub client_id: &'a str,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
}

/// Reads the first packet of `buf`, spoken in `version` (what CONNECT or CONNACK settled; a
/// CONNECT says its own), and says how many bytes it took.
pub fn packet(
    buf: &[u8],
    version: Version,
    max_remaining: usize,
) -> Result<Option<(Packet<'_>, usize)>, ReadError> {
    let Some((first, length, header_len)) = fixed_header(buf, max_remaining)? else {
        return Ok(None);
    };
    let total = header_len + length;
    let Some(body) = buf.get(header_len..total) else {
        return Ok(None);
    };
    let packet = body_of(first, body, version)?;
    Ok(Some((packet, total)))
}

/// The fixed header: the first byte, the remaining length and the header's own length; `None`
/// while the length's bytes are not all there.
pub fn fixed_header(
    buf: &[u8],
    max_remaining: usize,
) -> Result<Option<(u8, usize, usize)>, ReadError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let mut length = 0usize;
    for (i, &byte) in rest.iter().take(4).enumerate() {
        length |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // §1.5.5: the shortest encoding only (a trailing 0x80 0x00 is not).
            if i > 0 && byte == 0 {
                return Err(ReadError::Malformed(
                    "a remaining length not in its shortest form",
                ));
            }
            if length > max_remaining.min(MAX_REMAINING_LENGTH) {
                return Err(ReadError::TooLarge(length, max_remaining));
            }
            return Ok(Some((first, length, 2 + i)));
        }
        // Refused as soon as the bytes so far can only grow past the limit.
        let at_least = length + (1 << (7 * (i + 1)));
        if at_least > max_remaining.min(MAX_REMAINING_LENGTH) {
            return Err(ReadError::TooLarge(at_least, max_remaining));
        }
    }
    if rest.len() >= 4 {
        return Err(ReadError::Malformed("a remaining length over four bytes"));
    }
    Ok(None)
}

fn body_of(first: u8, body: &[u8], version: Version) -> Result<Packet<'_>, ReadError> {
    let (kind, flags) = (first >> 4, first & 0x0F);
    let mut bytes = Bytes::new(body);
    let v5 = version == Version::V5;
    // §2.1.3: the flags each type must carry.
    let required = match kind {
        kind::PUBLISH => None,
        kind::PUBREL | kind::SUBSCRIBE | kind::UNSUBSCRIBE => Some(0x02),
        _ => Some(0x00),
    };
    if required.is_some_and(|r| r != flags) {
        return Err(ReadError::Malformed("reserved fixed-header flags"));
    }
    let packet = match kind {
        kind::CONNECT => Packet::Connect(connect(&mut bytes)?),
        kind::CONNACK => {
            let acknowledge = bytes.byte()?;
            if acknowledge & 0xFE != 0 {
                return Err(ReadError::Malformed("CONNACK's reserved flags"));
            }
            let code = bytes.byte()?;
            let (mut receive_maximum, mut server_keep_alive) = (None, None);
            if v5 {
                properties::walk(&mut bytes, |id, value| match (id, value) {
                    (properties::RECEIVE_MAXIMUM, Value::Two(n)) => receive_maximum = Some(n),
                    (properties::SERVER_KEEP_ALIVE, Value::Two(n)) => server_keep_alive = Some(n),
                    _ => {}
                })?;
            }
            if receive_maximum == Some(0) {
                return Err(ReadError::Malformed("a Receive Maximum of 0"));
            }
            Packet::ConnAck {
                session_present: acknowledge & 1 == 1,
                code,
                receive_maximum,
                server_keep_alive,
            }
        }
        kind::PUBLISH => {
            let qos = QoS::from_bits((flags >> 1) & 0x03)
                .ok_or(ReadError::Malformed("a PUBLISH at QoS 3"))?;
            let dup = flags & 0x08 != 0;
            if qos == QoS::AtMostOnce && dup {
                return Err(ReadError::Malformed("DUP set at QoS 0"));
            }
            let topic = bytes.text()?;
            if topic.contains(['+', '#']) {
                return Err(ReadError::Malformed("a wildcard in a PUBLISH topic"));
            }
            let packet_id = match qos {
                QoS::AtMostOnce => None,
                _ => Some(bytes.packet_id()?),
            };
            if v5 {
                properties::walk(&mut bytes, |_, _| {})?;
            } else if topic.is_empty() {
                return Err(ReadError::Malformed("an empty PUBLISH topic"));
            }
            Packet::Publish {
                dup,
                qos,
                retain: flags & 0x01 != 0,
                topic,
                packet_id,
                payload: bytes.rest(),
            }
        }
        kind::PUBACK | kind::PUBREC | kind::PUBREL | kind::PUBCOMP => {
            let packet_id = bytes.packet_id()?;
            let mut code = 0;
            if v5 && !bytes.is_empty() {
                code = bytes.byte()?;
                if !bytes.is_empty() {
                    properties::walk(&mut bytes, |_, _| {})?;
                }
            }
            Packet::Ack {
                kind,
                packet_id,
                code,
            }
        }
        kind::SUBACK => {
            let packet_id = bytes.packet_id()?;
            if v5 {
                properties::walk(&mut bytes, |_, _| {})?;
            }
            let codes = bytes.rest();
            if codes.is_empty() {
                return Err(ReadError::Malformed("a SUBACK without return codes"));
            }
            Packet::SubAck { packet_id, codes }
        }
        kind::UNSUBACK => {
            let packet_id = bytes.packet_id()?;
            if v5 {
                properties::walk(&mut bytes, |_, _| {})?;
                bytes.rest();
            }
            Packet::UnsubAck { packet_id }
        }
        kind::PINGREQ => Packet::PingReq,
        kind::PINGRESP => Packet::PingResp,
        kind::DISCONNECT => {
            let mut code = 0;
            if v5 && !bytes.is_empty() {
                code = bytes.byte()?;
                if !bytes.is_empty() {
                    properties::walk(&mut bytes, |_, _| {})?;
                }
            }
            Packet::Disconnect { code }
        }
        kind::AUTH if v5 => {
            let mut code = 0;
            if !bytes.is_empty() {
                code = bytes.byte()?;
                properties::walk(&mut bytes, |_, _| {})?;
            }
            Packet::Auth { code }
        }
        other => return Err(ReadError::Unexpected(other)),
    };
    if !bytes.is_empty() {
        return Err(ReadError::Malformed("bytes after the packet's fields"));
    }
    Ok(packet)
}

/// CONNECT's variable header and payload (§3.1.2-3.1.3).
fn connect<'a>(bytes: &mut Bytes<'a>) -> Result<Connect<'a>, ReadError> {
    let name = bytes.text()?;
    let level = bytes.byte()?;
    let version = match (name, level) {
        ("MQTT", 4) => Version::V311,
        ("MQTT", 5) => Version::V5,
        ("MQIsdp", 3) => Version::V31,
        ("MQTT" | "MQIsdp", _) => {
            return Err(ReadError::Malformed("an unsupported protocol level"))
        }
        _ => return Err(ReadError::Malformed("not MQTT (protocol name)")),
    };
    let flags = bytes.byte()?;
    if flags & 0x01 != 0 {
        return Err(ReadError::Malformed("CONNECT's reserved flag"));
    }
    let will_flag = flags & 0x04 != 0;
    let will_qos =
        QoS::from_bits((flags >> 3) & 0x03).ok_or(ReadError::Malformed("a will at QoS 3"))?;
    let will_retain = flags & 0x20 != 0;
    if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(ReadError::Malformed("will QoS or retain without a will"));
    }
    let (has_username, has_password) = (flags & 0x80 != 0, flags & 0x40 != 0);
    if version != Version::V5 && has_password && !has_username {
        return Err(ReadError::Malformed("a password without a user name"));
    }
    let keep_alive = bytes.two()?;
    if version == Version::V5 {
        properties::walk(bytes, |_, _| {})?;
    }
    let client_id = bytes.text()?;
    let will = if will_flag {
        if version == Version::V5 {
            properties::walk(bytes, |_, _| {})?;
        }
        Some(Will {
            topic: bytes.text()?,
            payload: bytes.binary()?,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(bytes.text()?)
    } else {
        None
    };
    let password = if has_password {
        Some(bytes.binary()?)
    } else {
        None
    };
    Ok(Connect {
        version,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

/// A packet's bytes being read; every read checks what is left.
pub(crate) struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub fn new(bytes: &'a [u8]) -> Bytes<'a> {
        Bytes(bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn take(&mut self, count: usize) -> Result<&'a [u8], ReadError> {
        let (taken, rest) = self
            .0
            .split_at_checked(count)
            .ok_or(ReadError::Malformed("a field longer than its packet"))?;
        self.0 = rest;
        Ok(taken)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    pub fn byte(&mut self) -> Result<u8, ReadError> {
        let [byte] = self.take(1)? else {
            return Err(ReadError::Malformed("a byte"));
        };
        Ok(*byte)
    }

    pub fn two(&mut self) -> Result<u16, ReadError> {
        let two = self.take(2)?;
        Ok(two.iter().fold(0, |n, b| n << 8 | u16::from(*b)))
    }

    pub fn four(&mut self) -> Result<u32, ReadError> {
        let four = self.take(4)?;
        Ok(four.iter().fold(0, |n, b| n << 8 | u32::from(*b)))
    }

    /// A variable byte integer (§1.5.5), at most four bytes.
    pub fn varint(&mut self) -> Result<u32, ReadError> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.byte()?;
            value |= u32::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadError::Malformed(
            "a variable byte integer over four bytes",
        ))
    }

    pub fn binary(&mut self) -> Result<&'a [u8], ReadError> {
        let length = self.two()?;
        self.take(usize::from(length))
    }

    /// A UTF-8 string (§1.5.4): valid UTF-8 with no U+0000.
    pub fn text(&mut self) -> Result<&'a str, ReadError> {
        let text = std::str::from_utf8(self.binary()?)
            .map_err(|_| ReadError::Malformed("a string not UTF-8"))?;
        if text.contains('\0') {
            return Err(ReadError::Malformed("a string holding U+0000"));
        }
        Ok(text)
    }

    pub fn packet_id(&mut self) -> Result<u16, ReadError> {
        match self.two()? {
            0 => Err(ReadError::Malformed("a packet identifier of 0")),
            id => Ok(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::packet as read_packet;
    use super::*;

    #[test]
    fn a_remaining_length_is_refused_over_the_limit_before_its_bytes_come() {
        // 0x30 (PUBLISH), then 0xFF 0xFF 0x7F: 2,097,151 bytes announced, nothing else sent.
        assert_eq!(
            fixed_header(&[0x30, 0xFF, 0xFF, 0x7F], 65_536),
            Err(ReadError::TooLarge(2_097_151, 65_536))
        );
        // Refused from the second length byte already: it can only mean 16,384 or more.
        assert!(matches!(
            fixed_header(&[0x30, 0x80, 0x80], 1_000),
            Err(ReadError::TooLarge(..))
        ));
        assert_eq!(
            fixed_header(&[0x30, 0x80], 1 << 20),
            Ok(None),
            "more to come"
        );
        assert_eq!(
            fixed_header(&[0x30, 0x80, 0x01], 1 << 20),
            Ok(Some((0x30, 128, 3)))
        );
        assert!(
            fixed_header(&[0x30, 0x80, 0x00], 1 << 20).is_err(),
            "not shortest"
        );
        assert!(fixed_header(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], usize::MAX).is_err());
    }

    #[test]
    fn a_connect_reads_whole_and_a_bad_one_is_named() {
        let mut out = Vec::new();
        let connect = crate::write::connect(
            &mut out,
            &crate::write::ConnectOptions {
                version: Version::V5,
                client_id: "c-1",
                keep_alive: 30,
                clean_start: true,
                username: Some("u"),
                password: Some(b"p"),
                receive_maximum: None,
            },
        );
        let (packet, used) = read_packet(connect, Version::V311, 1024).unwrap().unwrap();
        assert_eq!(used, connect.len());
        let Packet::Connect(c) = packet else {
            panic!("{packet:?}")
        };
        assert_eq!(
            (c.version, c.client_id, c.keep_alive),
            (Version::V5, "c-1", 30)
        );
        assert_eq!((c.username, c.password), (Some("u"), Some(&b"p"[..])));
        let mut http = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        http[1] = 10;
        assert!(read_packet(&http, Version::V311, 1024).is_err(), "not MQTT");
        // The reserved flag set.
        let mut bad = connect.to_vec();
        let flags_at = 2 + 6 + 1;
        bad[flags_at] |= 1;
        assert_eq!(
            read_packet(&bad, Version::V311, 1024).unwrap_err(),
            ReadError::Malformed("CONNECT's reserved flag")
        );
    }

    #[test]
    fn publishes_and_acks_round_trip_in_both_versions() {
        for version in [Version::V311, Version::V5] {
            let mut out = Vec::new();
            crate::write::publish(
                &mut out,
                version,
                "bench/1",
                QoS::ExactlyOnce,
                Some(7),
                b"x",
            );
            let (packet, used) = read_packet(&out, version, 1024).unwrap().unwrap();
            assert_eq!(used, out.len());
            assert_eq!(
                packet,
                Packet::Publish {
                    dup: false,
                    qos: QoS::ExactlyOnce,
                    retain: false,
                    topic: "bench/1",
                    packet_id: Some(7),
                    payload: b"x",
                }
            );
            let mut out = Vec::new();
            crate::write::ack(&mut out, kind::PUBREL, 7);
            let (packet, _) = read_packet(&out, version, 1024).unwrap().unwrap();
            assert_eq!(
                packet,
                Packet::Ack {
                    kind: kind::PUBREL,
                    packet_id: 7,
                    code: 0
                }
            );
        }
        // A v5 PUBACK with a reason code and no properties (§3.4.2.2).
        let (packet, _) = read_packet(&[0x40, 0x03, 0x00, 0x09, 0x10], Version::V5, 64)
            .unwrap()
            .unwrap();
        assert_eq!(
            packet,
            Packet::Ack {
                kind: kind::PUBACK,
                packet_id: 9,
                code: 0x10
            }
        );
    }

    #[test]
    fn a_v5_connack_gives_receive_maximum() {
        // CONNACK, session present 0, success, properties: Receive Maximum 20.
        let bytes = [0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x14];
        let (packet, _) = read_packet(&bytes, Version::V5, 64).unwrap().unwrap();
        assert_eq!(
            packet,
            Packet::ConnAck {
                session_present: false,
                code: 0,
                receive_maximum: Some(20),
                server_keep_alive: None
            }
        );
        // A property block longer than the packet.
        let bytes = [0x20, 0x04, 0x00, 0x00, 0x09, 0x21];
        assert!(read_packet(&bytes, Version::V5, 64).is_err());
        // An unknown property.
        let bytes = [0x20, 0x05, 0x00, 0x00, 0x02, 0x7F, 0x00];
        assert!(read_packet(&bytes, Version::V5, 64).is_err());
    }
}
