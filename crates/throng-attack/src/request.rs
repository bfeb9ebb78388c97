//! A target turned into the bytes of its request, once, before the attack: an HTTP/1.1 head
//! and body, and for HTTP/2 the same request as a header block (the encoder keeps no table, so
//! one block serves every stream).

use crate::targets::Target;
use std::net::{SocketAddr, ToSocketAddrs};

/// What the clients send for one target, and where.
#[derive(Debug)]
pub struct PreparedTarget {
    /// The request head and body, ready to write.
    pub bytes: Vec<u8>,
    pub body_len: u64,
    pub addr: SocketAddr,
    pub head_request: bool,
    /// For https targets, the name the TLS session is for (and sent as SNI when it is a name).
    pub tls_name: Option<String>,
    /// Index of the host (address and TLS name) this target shares a connection pool with.
    pub host: usize,
    /// Whether it goes over HTTP/2, and how that is agreed.
    pub http2: Http2,
    /// The request as an HTTP/2 header block (empty when `http2` is `No`); the body is the
    /// last `body_len` bytes of `bytes`.
    pub h2_block: Vec<u8>,
}

/// How a target's requests come to be HTTP/2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http2 {
    /// HTTP/1.1 only.
    No,
    /// An https target, h2 offered by ALPN beside http/1.1 (vegeta's `-http2`): whichever the
    /// server picks.
    Alpn,
    /// A plain target, spoken to in HTTP/2 from the first byte (vegeta's `-h2c`).
    PriorKnowledge,
}

impl PreparedTarget {
    pub fn body(&self) -> &[u8] {
        let at = self.bytes.len().saturating_sub(self.body_len as usize);
        self.bytes.get(at..).unwrap_or_default()
    }
}

/// What HTTP/2 is asked for: ALPN on https targets, prior knowledge on plain ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Http2Options {
    pub alpn: bool,
    pub h2c: bool,
}

/// Resolves each target's host (once per name) and writes its request. `extra_headers` and
/// `default_body` are the attack-wide `-header` and `-body`.
pub fn prepare(
    targets: &[Target],
    extra_headers: &[(String, String)],
    default_body: Option<&[u8]>,
    keepalive: bool,
    http2: Http2Options,
) -> Result<Vec<PreparedTarget>, String> {
    let mut hosts: Vec<(SocketAddr, Option<String>)> = Vec::new();
    let mut prepared = Vec::with_capacity(targets.len());
    for target in targets {
        let tls_name = target.url.tls.then(|| target.url.host.clone());
        let addr = (target.url.host.as_str(), target.url.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: cannot resolve {}: {e}", target.url, target.url.host))?
            .next()
            .ok_or_else(|| format!("{}: {} has no address", target.url, target.url.host))?;
        let host = match hosts
            .iter()
            .position(|(a, name)| *a == addr && *name == tls_name)
        {
            Some(i) => i,
            None => {
                hosts.push((addr, tls_name.clone()));
                hosts.len() - 1
            }
        };
        let body = if target.body.is_empty() {
            default_body.unwrap_or_default()
        } else {
            &target.body[..]
        };
        let headers = || target.headers.iter().chain(extra_headers);
        // A Host header given with the target or -header replaces the URL's.
        let host_header = headers()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map_or_else(|| target.url.host_header(), |(_, value)| value.clone());
        let mut bytes = format!(
            "{} {} HTTP/1.1\r\nHost: {host_header}\r\n",
            target.method, target.url.path
        );
        let has = |name: &str| headers().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let user_agent = !has("user-agent");
        // A body's length, and a zero one where the method gives content a meaning (RFC 9110
        // §8.6: a user agent SHOULD), as Go's net/http, and so vegeta, sends it.
        let content_means_something = matches!(target.method.as_str(), "POST" | "PUT" | "PATCH");
        let length = (!body.is_empty() || content_means_something)
            && !has("content-length")
            && !has("transfer-encoding");
        for (name, value) in headers() {
            if name.eq_ignore_ascii_case("host") {
                continue; // written first
            }
            bytes += &format!("{name}: {value}\r\n");
        }
        if user_agent {
            bytes += &format!("User-Agent: {USER_AGENT}\r\n");
        }
        if length {
            bytes += &format!("Content-Length: {}\r\n", body.len());
        }
        if !keepalive {
            bytes += "Connection: close\r\n";
        }
        bytes += "\r\n";
        let mut bytes = bytes.into_bytes();
        bytes.extend_from_slice(body);
        let http2 = match (target.url.tls, http2) {
            (true, Http2Options { alpn: true, .. }) => Http2::Alpn,
            (false, Http2Options { h2c: true, .. }) => Http2::PriorKnowledge,
            _ => Http2::No,
        };
        let h2_block = match http2 {
            Http2::No => Vec::new(),
            _ => {
                // HTTP/2's names are lowercase, and Host is :authority (RFC 9113 §8.3.1).
                let mut fields: Vec<(String, String)> = headers()
                    .filter(|(n, v)| {
                        !is_connection_specific(n, v) && !n.eq_ignore_ascii_case("host")
                    })
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                    .collect();
                if user_agent {
                    fields.push(("user-agent".into(), USER_AGENT.into()));
                }
                if length {
                    fields.push(("content-length".into(), body.len().to_string()));
                }
                throng_h2::client::request_block(
                    target.method.as_bytes(),
                    if target.url.tls { b"https" } else { b"http" },
                    host_header.as_bytes(),
                    target.url.path.as_bytes(),
                    fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                )
            }
        };
        prepared.push(PreparedTarget {
            bytes,
            body_len: body.len() as u64,
            addr,
            head_request: target.method == "HEAD",
            tls_name,
            host,
            http2,
            h2_block,
        });
    }
    Ok(prepared)
}

const USER_AGENT: &str = concat!("throng/", env!("CARGO_PKG_VERSION"));

/// HTTP/1.1's fields that say how a connection carries messages: HTTP/2 frames its own, and a
/// request carrying one is malformed there (RFC 9113 §8.2.2). `te` is kept only as "trailers".
fn is_connection_specific(name: &str, value: &str) -> bool {
    if name.eq_ignore_ascii_case("te") {
        return !value.eq_ignore_ascii_case("trailers");
    }
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// The number of distinct hosts in prepared targets.
pub fn host_count(prepared: &[PreparedTarget]) -> usize {
    prepared.iter().map(|p| p.host + 1).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::Url;

    fn target(headers: &[(&str, &str)], body: &[u8]) -> Target {
        Target {
            method: "POST".into(),
            url: Url::parse("http://127.0.0.1:8282/x?y=1").unwrap(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn writes_a_whole_request() {
        let prepared = prepare(
            &[target(&[("sleep", "100")], b"hello")],
            &[("X-Run".into(), "1".into())],
            None,
            true,
            Http2Options::default(),
        )
        .unwrap();
        let text = String::from_utf8(prepared[0].bytes.clone()).unwrap();
        assert!(
            text.starts_with(
                "POST /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8282\r\nsleep: 100\r\nX-Run: 1\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("Content-Length: 5\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nhello"), "{text}");
        assert_eq!(prepared[0].body_len, 5);
    }

    #[test]
    fn a_host_header_replaces_the_urls_and_close_is_said_without_keepalive() {
        let prepared = prepare(
            &[target(&[("Host", "example.com")], b"")],
            &[],
            Some(b"abc"),
            false,
            Http2Options::default(),
        )
        .unwrap();
        let text = String::from_utf8(prepared[0].bytes.clone()).unwrap();
        assert!(
            text.contains("Host: example.com\r\n") && !text.contains("Host: 127.0.0.1"),
            "{text}"
        );
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("abc"), "{text}");
    }

    #[test]
    fn bodiless_post_put_and_patch_say_content_length_zero_as_go_does() {
        for (method, zero) in [
            ("POST", true),
            ("PUT", true),
            ("PATCH", true),
            ("GET", false),
            ("DELETE", false),
            ("HEAD", false),
        ] {
            let mut bodiless = target(&[], b"");
            bodiless.method = method.into();
            let prepared = prepare(&[bodiless], &[], None, true, Http2Options::default()).unwrap();
            let text = String::from_utf8(prepared[0].bytes.clone()).unwrap();
            assert_eq!(text.contains("Content-Length: 0\r\n"), zero, "{text}");
            assert!(
                !text.contains("Content-Length: 0\r\nContent-Length"),
                "{text}"
            );
        }
        // A length the target gives itself is the only one.
        let given = target(&[("Content-Length", "0")], b"");
        let text = String::from_utf8(
            prepare(&[given], &[], None, true, Http2Options::default()).unwrap()[0]
                .bytes
                .clone(),
        )
        .unwrap();
        assert_eq!(text.matches("Content-Length").count(), 1, "{text}");
    }

    #[test]
    fn the_http2_block_is_the_same_request_in_lowercase_without_connection_fields() {
        let mut https = target(
            &[
                ("X-Run", "1"),
                ("Connection", "keep-alive"),
                ("TE", "trailers"),
                ("Host", "example.com"),
            ],
            b"hello",
        );
        https.url = Url::parse("https://127.0.0.1:8443/x?y=1").unwrap();
        let both = Http2Options {
            alpn: true,
            h2c: false,
        };
        let prepared = prepare(&[https, target(&[], b"")], &[], None, true, both).unwrap();
        assert_eq!(
            (prepared[0].http2, prepared[1].http2),
            (Http2::Alpn, Http2::No),
            "h2c was not asked for the plain target"
        );
        assert!(prepared[1].h2_block.is_empty());
        assert_eq!(prepared[0].body(), b"hello");
        let mut decoder = throng_h2::hpack::Decoder::new(4096);
        let mut fields = Vec::new();
        let limits = throng_h2::hpack::decoder::ListLimits {
            max_list_size: 1 << 16,
            max_fields: 100,
        };
        decoder
            .decode(&prepared[0].h2_block, limits, |n, v| {
                fields.push(format!(
                    "{}: {}",
                    String::from_utf8_lossy(n),
                    String::from_utf8_lossy(v)
                ))
            })
            .unwrap();
        assert_eq!(
            fields,
            [
                ":method: POST",
                ":scheme: https",
                ":authority: example.com",
                ":path: /x?y=1",
                "x-run: 1",
                "te: trailers",
                &format!("user-agent: {USER_AGENT}"),
                "content-length: 5",
            ]
        );
    }

    #[test]
    fn targets_on_one_address_share_a_host() {
        let mut other = target(&[], b"");
        other.url = Url::parse("http://127.0.0.1:9/").unwrap();
        let prepared = prepare(
            &[target(&[], b""), other, target(&[], b"")],
            &[],
            None,
            true,
            Http2Options::default(),
        )
        .unwrap();
        assert_eq!(
            prepared.iter().map(|p| p.host).collect::<Vec<_>>(),
            vec![0, 1, 0]
        );
        assert_eq!(host_count(&prepared), 2);
    }
}
