//! Who may ask what of the admin listeners. The admin socket's file permissions decide who can
//! connect to it, so what comes through it is the operator's. Over TCP anyone who can reach the
//! port can send bytes, and so can any web page the operator has open (a form's POST is a
//! "simple" request that needs no preflight) or one whose name was rebound to 127.0.0.1; so:
//!
//! - commands (`POST /ctl`) need `admin_token`: without one, TCP takes no commands at all;
//! - a request a browser made (`Origin`, or `Sec-Fetch-Site` other than `none` or
//!   `same-origin`) is refused, token or not: a tool sends neither;
//! - `Host` must name the address the connection reached, or `localhost` (DNS rebinding gives
//!   the attacker's name);
//! - the pages (`/stats`, `/metrics`) ask for `stats_auth`'s user and password when it is set.
//!
//! Every refusal is logged by the caller with the peer that asked.

use base64::Engine;
use throng_net::admin::{Page, Peer, Request};

/// Whether `request` may run a command; the refusal to answer otherwise.
pub(crate) fn command(request: &Request<'_>, token: Option<&str>) -> Result<(), Page> {
    let Peer::Tcp { local, .. } = request.peer else {
        return Ok(());
    };
    let Some(token) = token else {
        return Err(Page::text(
            403,
            "runtime commands over TCP need global.admin_token; use the admin socket (throng proxy ctl)\n",
        ));
    };
    from_a_tool(request)?;
    if !host_is(request.host, local) {
        return Err(Page::text(
            403,
            format!(
                "Host `{}` is not this listener's address ({local}) or localhost\n",
                String::from_utf8_lossy(request.host.unwrap_or_default())
            ),
        ));
    }
    if !bearer_matches(request.authorization, token) {
        return Err(Page::text(
            401,
            "give the admin token: Authorization: Bearer TOKEN\n",
        ));
    }
    Ok(())
}

/// Whether `request` may read a page; the refusal otherwise.
pub(crate) fn page(request: &Request<'_>, stats_auth: Option<&str>) -> Result<(), Page> {
    let (Peer::Tcp { .. }, Some(credentials)) = (request.peer, stats_auth) else {
        return Ok(());
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    match request.authorization {
        Some(given) if same(throng_http1::trim_ows(given), expected.as_bytes()) => Ok(()),
        _ => Err(Page::text(
            401,
            "the pages need stats_auth's user and password\n",
        )),
    }
}

/// Refuses what a browser sends on a page's behalf.
fn from_a_tool(request: &Request<'_>) -> Result<(), Page> {
    if let Some(origin) = request.origin {
        return Err(Page::text(
            403,
            format!(
                "a request from a web page (Origin: {}) is refused: commands come from tools\n",
                String::from_utf8_lossy(origin)
            ),
        ));
    }
    match request.fetch_site.map(throng_http1::trim_ows) {
        None | Some(b"none" | b"same-origin") => Ok(()),
        Some(site) => Err(Page::text(
            403,
            format!(
                "a request from a web page (Sec-Fetch-Site: {}) is refused: commands come from tools\n",
                String::from_utf8_lossy(site)
            ),
        )),
    }
}

/// `Host` names `local` (with or without its port) or `localhost`.
fn host_is(host: Option<&[u8]>, local: std::net::SocketAddr) -> bool {
    let Some(host) = host.and_then(|h| std::str::from_utf8(throng_http1::trim_ows(h)).ok()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let port = local.port().to_string();
    // A dual-stack listener reached over IPv4 sees ::ffff:127.0.0.1: the address is 127.0.0.1.
    let ip = match local.ip().to_canonical() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    [ip.as_str(), "localhost"].iter().any(|name| {
        host == *name
            || host
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|p| p == port)
    })
}

/// `Authorization: Bearer TOKEN` with this token.
fn bearer_matches(header: Option<&[u8]>, token: &str) -> bool {
    header
        .and_then(|h| h.strip_prefix(b"Bearer "))
        .is_some_and(|given| same(throng_http1::trim_ows(given), token.as_bytes()))
}

/// Compared in constant time (the length is not a secret worth keeping).
fn same(given: &[u8], wanted: &[u8]) -> bool {
    given.len() == wanted.len()
        && given
            .iter()
            .zip(wanted)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef";

    fn tcp() -> Peer {
        Peer::Tcp {
            peer: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:9100".parse().unwrap(),
        }
    }

    fn request<'a>(peer: Peer, fields: &[(&str, &'a str)]) -> Request<'a> {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        };
        Request {
            method: "POST",
            path: "/ctl",
            peer,
            authorization: get("authorization"),
            origin: get("origin"),
            fetch_site: get("sec-fetch-site"),
            host: get("host"),
            body: b"show servers",
        }
    }

    const AUTH: (&str, &str) = ("authorization", "Bearer 0123456789abcdef");

    #[test]
    fn the_socket_needs_nothing_more() {
        let socket = Peer::Socket { uid: 0, pid: 1 };
        assert!(command(&request(socket, &[]), None).is_ok());
    }

    #[test]
    fn tcp_takes_commands_only_with_a_token_and_from_tools() {
        let ok = [AUTH, ("host", "127.0.0.1:9100")];
        assert!(command(&request(tcp(), &ok), Some(TOKEN)).is_ok());
        assert!(command(&request(tcp(), &[AUTH, ("host", "localhost")]), Some(TOKEN)).is_ok());
        let status = |fields: &[(&str, &str)], token| {
            command(&request(tcp(), fields), token).unwrap_err().status
        };
        assert_eq!(status(&ok, None), 403);
        assert_eq!(status(&[("host", "127.0.0.1")], Some(TOKEN)), 401);
        let wrong = ("authorization", "Bearer 0123456789abcdeF");
        assert_eq!(status(&[wrong, ("host", "127.0.0.1")], Some(TOKEN)), 401);
        for refused in [
            [AUTH, ("host", "evil.example"), ("origin", "null")],
            [
                AUTH,
                ("host", "127.0.0.1"),
                ("origin", "http://evil.example"),
            ],
            [
                AUTH,
                ("host", "127.0.0.1"),
                ("sec-fetch-site", "cross-site"),
            ],
            [AUTH, ("host", "127.0.0.1"), ("sec-fetch-site", "same-site")],
            [AUTH, ("host", "evil.example"), ("x", "")],
            [AUTH, ("host", "127.0.0.1:9101"), ("x", "")],
            [AUTH, ("host", "localhost.evil.example"), ("x", "")],
        ] {
            assert_eq!(status(&refused, Some(TOKEN)), 403, "{refused:?}");
        }
    }

    /// A dual-stack listener reached over IPv4 sees its own address as ::ffff:127.0.0.1.
    #[test]
    fn a_dual_stack_listener_knows_its_ipv4_name() {
        let mapped = Peer::Tcp {
            peer: "[::ffff:127.0.0.1]:40000".parse().unwrap(),
            local: "[::ffff:127.0.0.1]:9100".parse().unwrap(),
        };
        let fields = [AUTH, ("host", "127.0.0.1:9100")];
        assert!(command(&request(mapped, &fields), Some(TOKEN)).is_ok());
    }

    #[test]
    fn pages_ask_for_stats_auth_when_it_is_set() {
        assert!(page(&request(tcp(), &[]), None).is_ok());
        let auth = Some("admin:a-long-password");
        assert_eq!(page(&request(tcp(), &[]), auth).unwrap_err().status, 401);
        let basic = ("authorization", "Basic YWRtaW46YS1sb25nLXBhc3N3b3Jk");
        assert!(page(&request(tcp(), &[basic]), auth).is_ok());
        let socket = Peer::Socket { uid: 0, pid: 1 };
        assert!(page(&request(socket, &[]), auth).is_ok());
    }
}
