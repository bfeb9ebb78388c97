//! Step R: the request head, parsed and checked by the codec (every framing rule of RFC 9112,
//! see `throng_http1::framing`), then planned: the head the server gets, the log line's request,
//! and the backend its route picks. `plan` is pure, so each decision is a unit test.

use super::rewrite::{self, Forward};
use super::route;
use super::LIMITS;
use crate::config::Frontend;
use throng_http1::{self as http1, BodyLength, HeadError, RequestHead, Version};

/// The request head, read and checked, with what the server gets in its place.
pub(super) struct Request {
    pub(super) upstream_head: Vec<u8>,
    pub(super) line: String,
    pub(super) body: BodyLength,
    pub(super) version: Version,
    pub(super) keep_alive: bool,
    pub(super) upgrade: bool,
    pub(super) is_head: bool,
    pub(super) expect_continue: bool,
    pub(super) backend: Option<usize>,
    pub(super) head_len: usize,
}

/// Why a request is refused: the status the client gets and the reason for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Refused {
    pub(super) status: u16,
    pub(super) reason: &'static str,
}

impl From<HeadError> for Refused {
    fn from(error: HeadError) -> Refused {
        Refused {
            status: error.status(),
            reason: error.reason(),
        }
    }
}

/// Who sent a request, as the head for the server says it.
#[derive(Clone, Copy)]
pub(super) struct Client {
    pub(super) ip: std::net::IpAddr,
    pub(super) tls: bool,
}

/// Parses the head at the start of `bytes`: `Ok(None)` until it is whole, then the plan for it
/// or the refusal.
pub(super) fn parse(
    bytes: &[u8],
    frontend: &Frontend,
    client: Client,
) -> Result<Option<Request>, Refused> {
    let mut slots = http1::header_slots();
    match http1::parse_request(bytes, &mut slots, &LIMITS)? {
        Some(head) => plan(&head, frontend, client).map(Some),
        None => Ok(None),
    }
}

/// What the proxy does with a request whose head parsed: refuse it, or send the server this.
pub(super) fn plan(
    head: &RequestHead<'_, '_>,
    frontend: &Frontend,
    client: Client,
) -> Result<Request, Refused> {
    if head.version == Version::Http11 && head.header("host").is_none() {
        return Err(Refused {
            status: 400,
            reason: "an HTTP/1.1 request without Host",
        });
    }
    let upgrade = http1::header_tokens(head.headers, "connection")
        .any(|t| t.eq_ignore_ascii_case(b"upgrade"))
        .then(|| head.header("upgrade").map(|u| u.to_vec()))
        .flatten();
    let forward = Forward {
        client: client.ip,
        tls: client.tls,
        forwardfor: frontend.forwardfor,
        forwarded: frontend.forwarded,
        upgrade: upgrade.clone(),
    };
    let mut upstream_head = Vec::with_capacity(head.head_len + 128);
    rewrite::request(&mut upstream_head, head, &forward);
    Ok(Request {
        upstream_head,
        line: log_line(head),
        body: head.body,
        version: head.version,
        keep_alive: head.keep_alive,
        upgrade: upgrade.is_some(),
        is_head: head.method == "HEAD",
        expect_continue: head.expect_continue,
        backend: route::backend(
            &frontend.routes,
            frontend.default_backend,
            &route::destination(head.target, head.header("host")),
        ),
        head_len: head.head_len,
    })
}

/// The request line for the log, at most 1 KiB of it.
fn log_line(head: &RequestHead<'_, '_>) -> String {
    let minor = if head.version == Version::Http10 {
        0
    } else {
        1
    };
    let mut line = format!("{} {} HTTP/1.{minor}", head.method, head.target);
    if line.len() > 1024 {
        let mut cut = 1024;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::{FrontendTimeouts, Mode, Route};
    use std::time::Duration;

    fn frontend() -> Frontend {
        let t = Duration::from_secs(5);
        Frontend {
            name: "web".into(),
            binds: Vec::new(),
            mode: Mode::Http,
            maxconn: None,
            tls: None,
            timeouts: FrontendTimeouts {
                client: t,
                http_request: t,
                http_keep_alive: t,
                handshake: t,
                client_given: false,
                mqtt_connect: t,
                mqtt_max_idle: t,
            },
            default_backend: Some(0),
            h2c: false,
            h2: Default::default(),
            routes: vec![Route {
                host: None,
                path_prefix: Some("/admin".into()),
                backend: 1,
            }],
            forwardfor: true,
            forwarded: false,
            mqtt_max_connect: 1024,
            rate_limit_sessions: None,
            accept_proxy: crate::proxy_protocol::Senders::Nobody,
        }
    }

    const CLIENT: Client = Client {
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 9)),
        tls: false,
    };

    fn plan_of(bytes: &[u8]) -> Result<Request, Refused> {
        parse(bytes, &frontend(), CLIENT).map(|r| r.expect("a whole head"))
    }

    /// The plan for a request the tests expect to be accepted.
    pub(in crate::http) fn planned(bytes: &[u8]) -> Request {
        plan_of(bytes).expect("accepted")
    }

    #[test]
    fn a_request_is_planned_with_its_route_and_head() {
        let request =
            plan_of(b"POST /admin/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!(request.backend, Some(1));
        assert_eq!(request.body, BodyLength::Fixed(3));
        assert_eq!(request.line, "POST /admin/x HTTP/1.1");
        assert_eq!(
            String::from_utf8(request.upstream_head).unwrap(),
            "POST /admin/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-Forwarded-For: 127.0.0.9\r\n\r\n"
        );
        assert!(request.keep_alive && !request.is_head && !request.upgrade);
    }

    #[test]
    fn a_url_in_the_query_does_not_route_past_a_path_rule() {
        let request =
            plan_of(b"GET /login?next=https://a/admin HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(request.backend, Some(0));
    }

    #[test]
    fn refusals_carry_their_status_and_reason() {
        let refused = |bytes: &[u8]| plan_of(bytes).err().expect("refused");
        let smuggling = refused(b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\nConnection: content-length\r\n\r\n");
        assert_eq!(smuggling.status, 400);
        assert!(
            smuggling.reason.contains("Connection names"),
            "{smuggling:?}"
        );
        assert_eq!(refused(b"GET / HTTP/1.1\r\n\r\n").status, 400);
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
                .status,
            501
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHo", &frontend(), CLIENT),
            Ok(None)
        ));
    }
}
