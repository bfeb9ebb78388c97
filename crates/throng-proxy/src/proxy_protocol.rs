//! The PROXY protocol (HAProxy's, versions 1 and 2): a header before a connection's own bytes
//! that says whose connection it really is. `send_proxy` on a server writes one so a broker
//! behind the proxy sees the client's address; `accept_proxy` on a frontend reads one from a
//! load balancer in front (and trusts it: only for listeners that only it can reach).
//!
//! Reading is by `peek` and then a read of exactly the header, so the bytes after it (a TLS
//! ClientHello, an MQTT CONNECT) stay in the socket for whoever reads next. A v1 header is at
//! most 107 bytes; a v2 header's addresses and TLVs are capped here at 512 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 2's signature.
const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// The longest version 1 header, with its CRLF.
pub const V1_MAX: usize = 107;
/// The most a version 2 header may carry after its first 16 bytes.
const V2_MAX_BODY: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A header for a connection from `source` to `destination`.
pub fn header(version: Version, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    // Both addresses must be of one family: a v4 one beside a v6 one is written mapped.
    let (source, destination) = match (source.ip(), destination.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (source, destination),
        _ => (mapped(source), mapped(destination)),
    };
    match version {
        Version::V1 => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut out = SIGNATURE.to_vec();
            // Version 2, command PROXY; TCP over IPv4 or IPv6.
            out.push(0x21);
            match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6(s).octets());
                    out.extend_from_slice(&v6(d).octets());
                }
            }
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
            out
        }
    }
}

fn mapped(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(v6(addr.ip())), addr.port())
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Who may send a header on a frontend (`accept_proxy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Senders {
    /// Nobody: connections are their clients' own.
    Nobody,
    /// Every connection starts with one (`true`: for listeners only a load balancer reaches).
    Anyone,
    /// Connections from these blocks start with one; from anywhere else they are their
    /// clients' own, and one that starts with a header anyway is refused (HAProxy's
    /// `tcp-request connection expect-proxy layer4 if { src -f lb.lst }`).
    From(Vec<Block>),
}

impl Senders {
    /// Whether a connection from `peer` must start with a header.
    pub fn expects(&self, peer: IpAddr) -> bool {
        match self {
            Senders::Nobody => false,
            Senders::Anyone => true,
            Senders::From(blocks) => blocks.iter().any(|b| b.contains(peer)),
        }
    }
}

/// An address or a CIDR block: `10.0.0.5`, `10.0.0.0/24`, `2001:db8::/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    network: IpAddr,
    bits: u8,
}

impl Block {
    pub fn parse(text: &str) -> Result<Block, String> {
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an address or a CIDR block"))?;
        let most = if network.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => most,
            Some(bits) => bits
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= most)
                .ok_or_else(|| format!("`{text}`: a prefix of 0 to {most} bits"))?,
        };
        Ok(Block { network, bits })
    }

    /// Whether `ip` is in the block (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u8, width: u32| -> u128 {
            match bits {
                0 => 0,
                b => u128::MAX << (width - u32::from(b)),
            }
        };
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask(self.bits, 32) as u32;
                u32::from(net) & m == u32::from(ip) & m
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask(self.bits, 128);
                u128::from(net) & m == u128::from(ip) & m
            }
            _ => false,
        }
    }
}

/// What a header said: the client's address (`None` for v1 `UNKNOWN`, v2 `LOCAL` or a family
/// that is not TCP: the connection's own address stands).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub source: Option<SocketAddr>,
    /// The header's length: what to read off the socket.
    pub len: usize,
}

/// Whether `buf` could be the start of a header (either version): what a sender not allowed to
/// send one is checked for.
pub fn could_be_header(buf: &[u8]) -> bool {
    let v1 = b"PROXY ";
    let seen = buf.len().min(SIGNATURE.len());
    buf.starts_with(v1) || v1.starts_with(buf) || buf.get(..seen) == SIGNATURE.get(..seen)
}

/// Reads a header at the start of `buf` (what a peek saw): `Ok(None)` while it may still be
/// incomplete, an error for anything that is not one.
pub fn parse(buf: &[u8]) -> Result<Option<Received>, &'static str> {
    if buf.starts_with(b"PROXY ") || b"PROXY ".starts_with(buf) {
        return parse_v1(buf);
    }
    let signature_seen = buf.len().min(SIGNATURE.len());
    if buf.get(..signature_seen) != SIGNATURE.get(..signature_seen) {
        return Err("no PROXY protocol header");
    }
    parse_v2(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Option<Received>, &'static str> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err("a PROXY v1 line over 107 bytes")
        } else {
            Ok(None)
        };
    };
    let len = end + 2;
    if len > V1_MAX {
        return Err("a PROXY v1 line over 107 bytes");
    }
    let line = std::str::from_utf8(buf.get(..end).unwrap_or_default())
        .map_err(|_| "a PROXY v1 line not ASCII")?;
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(Some(Received { source: None, len })),
        ["PROXY", family @ ("TCP4" | "TCP6"), source, destination, sport, dport] => {
            let ip = |text: &str| -> Result<IpAddr, &'static str> {
                let ip: IpAddr = text.parse().map_err(|_| "a bad address in PROXY v1")?;
                match (*family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err("an address of the wrong family in PROXY v1"),
                }
            };
            let port = |text: &str| -> Result<u16, &'static str> {
                // Decimal without leading zeros, as the specification writes them.
                if text.len() > 1 && text.starts_with('0') {
                    return Err("a port with a leading zero in PROXY v1");
                }
                text.parse().map_err(|_| "a bad port in PROXY v1")
            };
            ip(destination)?;
            port(dport)?;
            Ok(Some(Received {
                source: Some(SocketAddr::new(ip(source)?, port(sport)?)),
                len,
            }))
        }
        _ => Err("a malformed PROXY v1 line"),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Option<Received>, &'static str> {
    let Some(fixed) = buf.get(..16) else {
        return Ok(None);
    };
    let (version_command, family) = (fixed[12], fixed[13]);
    let body = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if version_command >> 4 != 2 {
        return Err("a PROXY v2 header of another version");
    }
    if body > V2_MAX_BODY {
        return Err("a PROXY v2 header over 528 bytes");
    }
    let len = 16 + body;
    let Some(addresses) = buf.get(16..len) else {
        return Ok(None);
    };
    let source = match (version_command & 0x0F, family) {
        // LOCAL: the balancer's own connection (a health check).
        (0x0, _) => None,
        (0x1, 0x11) => {
            let a = addresses
                .get(..12)
                .ok_or("a PROXY v2 header too short for IPv4")?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([a[8], a[9]]),
            ))
        }
        (0x1, 0x21) => {
            let a = addresses
                .get(..36)
                .ok_or("a PROXY v2 header too short for IPv6")?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        // UDP, UNIX sockets, UNSPEC: the connection's own address stands.
        (0x1, _) => None,
        _ => return Err("a PROXY v2 header with an unknown command"),
    };
    Ok(Some(Received { source, len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn senders_by_address_and_block() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let senders = Senders::From(vec![
            Block::parse("10.1.0.0/16").unwrap(),
            Block::parse("192.0.2.7").unwrap(),
            Block::parse("2001:db8::/32").unwrap(),
        ]);
        assert!(senders.expects(ip("10.1.200.3")));
        assert!(
            senders.expects(ip("::ffff:10.1.0.1")),
            "IPv4 mapped into IPv6"
        );
        assert!(senders.expects(ip("192.0.2.7")));
        assert!(senders.expects(ip("2001:db8:5::1")));
        assert!(!senders.expects(ip("10.2.0.1")));
        assert!(!senders.expects(ip("192.0.2.8")));
        assert!(!senders.expects(ip("2001:db9::1")));
        assert!(Senders::Anyone.expects(ip("1.2.3.4")));
        assert!(!Senders::Nobody.expects(ip("1.2.3.4")));
        assert!(Block::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Block::parse("10.0.0.0/33").is_err());
        assert!(Block::parse("lb.example").is_err());
    }

    #[test]
    fn headers_round_trip_in_both_versions_and_families() {
        for (source, destination) in [
            ("192.0.2.7:40000", "127.0.0.1:8883"),
            ("[2001:db8::1]:40000", "[::1]:8883"),
            ("192.0.2.7:40000", "[::1]:8883"),
        ] {
            for version in [Version::V1, Version::V2] {
                let bytes = header(version, addr(source), addr(destination));
                let received = parse(&bytes).unwrap().unwrap();
                assert_eq!(received.len, bytes.len());
                let got = received.source.unwrap();
                assert_eq!(got.port(), 40000);
                assert_eq!(v6(got.ip()), v6(addr(source).ip()), "{version:?}");
            }
        }
        assert_eq!(
            header(Version::V1, addr("192.0.2.7:1"), addr("127.0.0.1:2")),
            b"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\r\n"
        );
    }

    #[test]
    fn incomplete_waits_and_anything_else_is_refused() {
        let full = header(Version::V2, addr("192.0.2.7:1"), addr("127.0.0.1:2"));
        for cut in [1, 5, 12, 15, 20] {
            assert_eq!(parse(&full[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Ok(None));
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            &[b'P'; 200][..],
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(
            parse(&[b"PROXY ".as_slice(), &[b'1'; 120]].concat()).is_err(),
            "too long"
        );
        let mut huge = full.clone();
        huge[14..16].copy_from_slice(&4000u16.to_be_bytes());
        assert!(parse(&huge).is_err());
        let mut local = full.clone();
        local[12] = 0x20;
        assert_eq!(parse(&local).unwrap().unwrap().source, None);
    }
}
