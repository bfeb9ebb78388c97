//! The few parts of an `http://` or `https://` URL a load generator needs.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Url {
    pub tls: bool,
    /// The host as written (a name, an IPv4 address, or an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(format!("`{text}`: only http:// and https:// URLs"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('?') => (&rest[..at], format!("/{}", &rest[at..])),
            Some(at) => (&rest[..at], rest[at..].to_string()),
            None => (rest, "/".to_string()),
        };
        let path = path.split('#').next().unwrap_or("/").to_string();
        if authority.contains('@') {
            return Err(format!(
                "`{text}`: user names in URLs are not supported; use an Authorization header"
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => parse_port(text, port)?,
                None if after.is_empty() => default_port,
                None => return Err(format!("`{text}`: unexpected `{after}` after the host")),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), parse_port(text, port)?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("`{text}`: no host"));
        }
        Ok(Url {
            tls,
            host,
            port,
            path,
        })
    }

    /// The `Host` header's value: the port only when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.path)
    }
}

fn parse_port(text: &str, port: &str) -> Result<u16, String> {
    port.parse()
        .map_err(|_| format!("`{text}`: `{port}` is not a port number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parts_load_needs() {
        let url = Url::parse("http://127.0.0.1:8282/ping?x=1").unwrap();
        assert_eq!(
            (url.tls, url.host.as_str(), url.port, url.path.as_str()),
            (false, "127.0.0.1", 8282, "/ping?x=1")
        );
        assert_eq!(url.host_header(), "127.0.0.1:8282");
        let url = Url::parse("https://example.com").unwrap();
        assert_eq!((url.tls, url.port, url.path.as_str()), (true, 443, "/"));
        assert_eq!(url.host_header(), "example.com");
        let url = Url::parse("http://[::1]:9000?q#frag").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("::1", 9000, "/?q")
        );
        assert_eq!(url.host_header(), "[::1]:9000");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(Url::parse("ftp://x/").unwrap_err().contains("only http"));
        assert!(Url::parse("http://:80/").unwrap_err().contains("no host"));
        assert!(Url::parse("http://x:99999/")
            .unwrap_err()
            .contains("not a port"));
        assert!(Url::parse("http://u:p@x/")
            .unwrap_err()
            .contains("Authorization"));
    }
}
