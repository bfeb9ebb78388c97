//! Listen addresses as users write them: `127.0.0.1:8282`, a port range `127.0.0.1:8282-8291`,
//! `[::1]:80`, or a bare port `8080` (meaning all IPv4 interfaces).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Expands one listen spec into the addresses it names, in port order.
pub fn parse(spec: &str) -> Result<Vec<SocketAddr>, String> {
    let spec = spec.trim();
    let (host, ports) = match spec.rsplit_once(':') {
        Some((host, ports)) => (host, ports),
        None => ("0.0.0.0", spec),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        host.parse()
            .map_err(|_| format!("`{spec}`: `{host}` is not an IP address"))?
    };
    let (first, last) = match ports.split_once('-') {
        Some((first, last)) => (parse_port(spec, first)?, parse_port(spec, last)?),
        None => {
            let port = parse_port(spec, ports)?;
            (port, port)
        }
    };
    if last < first {
        return Err(format!("`{spec}`: the port range ends before it starts"));
    }
    if first == 0 && last != 0 {
        return Err(format!(
            "`{spec}`: port 0 (any free port) cannot start a range"
        ));
    }
    Ok((first..=last)
        .map(|port| SocketAddr::new(ip, port))
        .collect())
}

fn parse_port(spec: &str, text: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|_| format!("`{spec}`: `{text}` is not a port number (0-65535)"))
}

/// Writes addresses compactly for people: consecutive ports on one IP become a range.
pub fn describe(addrs: &[SocketAddr]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < addrs.len() {
        let mut j = i;
        while j + 1 < addrs.len()
            && addrs[j + 1].ip() == addrs[i].ip()
            && addrs[j + 1].port() == addrs[j].port().wrapping_add(1)
        {
            j += 1;
        }
        parts.push(if i == j {
            addrs[i].to_string()
        } else {
            format!("{}-{}", addrs[i], addrs[j].port())
        });
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_ranges_and_single_ports() {
        let addrs = parse("127.0.0.1:8282-8291").unwrap();
        assert_eq!(addrs.len(), 10);
        assert_eq!(addrs[0], "127.0.0.1:8282".parse().unwrap());
        assert_eq!(addrs[9], "127.0.0.1:8291".parse().unwrap());
        assert_eq!(
            parse("[::1]:80").unwrap(),
            vec!["[::1]:80".parse().unwrap()]
        );
        assert_eq!(
            parse("8080").unwrap(),
            vec!["0.0.0.0:8080".parse().unwrap()]
        );
        assert_eq!(parse(":9").unwrap(), vec!["0.0.0.0:9".parse().unwrap()]);
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(parse("127.0.0.1:9-8").unwrap_err().contains("ends before"));
        assert!(parse("localhost:80").unwrap_err().contains("not an IP"));
        assert!(parse("127.0.0.1:70000").unwrap_err().contains("not a port"));
        assert!(parse("127.0.0.1:0-5").unwrap_err().contains("port 0"));
    }

    #[test]
    fn describes_ranges_compactly() {
        let mut addrs = parse("127.0.0.1:8282-8284").unwrap();
        addrs.extend(parse("127.0.0.2:9000").unwrap());
        assert_eq!(describe(&addrs), "127.0.0.1:8282-8284, 127.0.0.2:9000");
    }
}
