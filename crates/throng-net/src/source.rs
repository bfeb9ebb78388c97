//! Source-address pools: one address has at most ~64k ports towards one destination, so holding
//! more connections than that needs more source addresses (`127.0.0.2-127.0.0.40` here; real
//! addresses on a real host). A pool is written as a comma-separated list of addresses, ranges
//! (`127.0.0.2-127.0.0.40`) and CIDR blocks (`10.0.0.0/24`).

use std::net::{IpAddr, Ipv4Addr};

/// The most addresses one pool may hold: far more than any host has, small enough to list.
pub const MAX_POOL: usize = 65_536;

/// A pool in a few words, for messages: the addresses, or the first and last of many.
pub fn describe(pool: &[IpAddr]) -> String {
    match pool {
        [] => "none".to_string(),
        [first, .., last] if pool.len() > 3 => format!("{first} ... {last}"),
        _ => pool
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Expands a pool spec into its addresses, in order, without duplicates.
pub fn parse_pool(spec: &str) -> Result<Vec<IpAddr>, String> {
    let mut pool: Vec<IpAddr> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let expanded = if let Some((first, last)) = part.split_once('-') {
            range(part, parse_v4(part, first)?, parse_v4(part, last)?)?
        } else if let Some((base, bits)) = part.split_once('/') {
            cidr(part, parse_v4(part, base)?, bits)?
        } else {
            vec![part
                .parse::<IpAddr>()
                .map_err(|_| format!("`{part}` is not an IP address"))?]
        };
        for address in expanded {
            if !pool.contains(&address) {
                pool.push(address);
            }
            if pool.len() > MAX_POOL {
                return Err(format!("`{spec}`: more than {MAX_POOL} source addresses"));
            }
        }
    }
    if pool.is_empty() {
        return Err("an empty source address pool".into());
    }
    Ok(pool)
}

fn parse_v4(part: &str, text: &str) -> Result<u32, String> {
    text.trim().parse::<Ipv4Addr>().map(u32::from).map_err(|_| {
        format!("`{part}`: `{text}` is not an IPv4 address (ranges and CIDR blocks are IPv4)")
    })
}

fn range(part: &str, first: u32, last: u32) -> Result<Vec<IpAddr>, String> {
    if last < first {
        return Err(format!("`{part}`: the range ends before it starts"));
    }
    if (last - first) as usize >= MAX_POOL {
        return Err(format!("`{part}`: more than {MAX_POOL} addresses"));
    }
    Ok((first..=last)
        .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
        .collect())
}

/// A CIDR block's host addresses: without its network and broadcast addresses when it has them.
fn cidr(part: &str, base: u32, bits: &str) -> Result<Vec<IpAddr>, String> {
    let bits: u32 = bits
        .parse()
        .ok()
        .filter(|b| *b <= 32)
        .ok_or_else(|| format!("`{part}`: `{bits}` is not a prefix length (0-32)"))?;
    let size = 1u64 << (32 - bits);
    let network = if bits == 0 {
        0
    } else {
        base & (u32::MAX << (32 - bits))
    };
    let (first, last) = if size > 2 {
        (network + 1, (u64::from(network) + size - 2) as u32)
    } else {
        (network, (u64::from(network) + size - 1) as u32)
    };
    range(part, first, last)
}

/// Hands out addresses of a pool in turn, so connections spread evenly over it.
#[derive(Debug)]
pub struct RoundRobin {
    pool: Vec<IpAddr>,
    next: usize,
}

impl RoundRobin {
    pub fn new(pool: Vec<IpAddr>) -> RoundRobin {
        RoundRobin { pool, next: 0 }
    }
}

/// Endless: the pool starts over after its last address. Each item is an address and its index.
impl Iterator for RoundRobin {
    type Item = (usize, IpAddr);

    fn next(&mut self) -> Option<(usize, IpAddr)> {
        let index = self.next % self.pool.len().max(1);
        let address = *self.pool.get(index)?;
        self.next = index + 1;
        Some((index, address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn lists_ranges_and_blocks() {
        let pool = parse_pool("127.0.0.2-127.0.0.4, 127.0.0.9,127.0.0.3").unwrap();
        assert_eq!(
            pool,
            vec![
                v4("127.0.0.2"),
                v4("127.0.0.3"),
                v4("127.0.0.4"),
                v4("127.0.0.9")
            ]
        );
        let block = parse_pool("10.1.2.0/30").unwrap();
        assert_eq!(block, vec![v4("10.1.2.1"), v4("10.1.2.2")]);
        assert_eq!(parse_pool("10.1.2.7/32").unwrap(), vec![v4("10.1.2.7")]);
        assert_eq!(parse_pool("127.0.0.0/24").unwrap().len(), 254);
        assert_eq!(parse_pool("::1").unwrap(), vec![v4("::1")]);
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(parse_pool("127.0.0.9-127.0.0.2")
            .unwrap_err()
            .contains("ends before"));
        assert!(parse_pool("127.0.0.0/8").unwrap_err().contains("more than"));
        assert!(parse_pool("10.0.0.0/33")
            .unwrap_err()
            .contains("prefix length"));
        assert!(parse_pool("localhost").unwrap_err().contains("not an IP"));
        assert!(parse_pool(" , ").unwrap_err().contains("empty"));
    }

    #[test]
    fn round_robin_spreads_evenly() {
        let mut turns = RoundRobin::new(parse_pool("127.0.0.2-127.0.0.4").unwrap());
        let picked: Vec<usize> = (0..6).map(|_| turns.next().unwrap().0).collect();
        assert_eq!(picked, vec![0, 1, 2, 0, 1, 2]);
    }
}
