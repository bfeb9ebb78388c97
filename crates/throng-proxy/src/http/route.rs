//! Step R's decision: which backend a request goes to, from its target and `Host`. Pure, so
//! every case is a unit test.
//!
//! A target is absolute-form (`GET http://host/path`) only when it starts with a scheme
//! (`http://` or `https://`, any case, RFC 9112 §3.2.2); its authority then wins over `Host`. A
//! `://` anywhere else (`/login?next=https://a/b`) is part of an origin-form path, never a host.

use crate::config::Route;

/// Where a request is going: the host (lower case, without a port) and the path to match.
#[derive(Debug, PartialEq, Eq)]
pub struct Destination<'t> {
    pub host: Option<String>,
    pub path: &'t str,
}

/// The host and path a request names, from its target and `Host` field.
pub fn destination<'t>(target: &'t str, host_field: Option<&[u8]>) -> Destination<'t> {
    let (authority, path) = match absolute_form(target) {
        Some(rest) => match rest.find(['/', '?']) {
            Some(at) => (Some(&rest[..at]), &rest[at..]),
            None => (Some(rest), "/"),
        },
        None => (None, target),
    };
    let host = match authority {
        Some(authority) => Some(authority),
        None => host_field.and_then(|h| std::str::from_utf8(h).ok()),
    };
    Destination {
        host: host.map(|h| without_port(without_userinfo(h.trim())).to_ascii_lowercase()),
        path,
    }
}

/// What follows the scheme of an absolute-form target, or `None` for any other form.
fn absolute_form(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    })
}

fn without_userinfo(authority: &str) -> &str {
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// `example.com:8443` is `example.com`; `[::1]:8443` is `[::1]`; `[::1]` stays whole.
fn without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(at) if !host.ends_with(']') => &host[..at],
        _ => host,
    }
}

/// The backend of the first route whose host and path prefix match, else `default`.
pub fn backend(routes: &[Route], default: Option<usize>, to: &Destination<'_>) -> Option<usize> {
    routes
        .iter()
        .find(|r| {
            r.host
                .as_deref()
                .is_none_or(|want| to.host.as_deref() == Some(want))
                && r.path_prefix
                    .as_deref()
                    .is_none_or(|p| to.path.starts_with(p))
        })
        .map(|r| r.backend)
        .or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(target: &str, host: Option<&str>) -> (Option<String>, String) {
        let d = destination(target, host.map(str::as_bytes));
        (d.host, d.path.to_string())
    }

    fn some(host: &str, path: &str) -> (Option<String>, String) {
        (Some(host.to_string()), path.to_string())
    }

    #[test]
    fn origin_form_takes_the_host_field() {
        assert_eq!(to("/a/b", Some("Example.COM")), some("example.com", "/a/b"));
        assert_eq!(to("/", None), (None, "/".to_string()));
    }

    #[test]
    fn a_url_in_the_query_is_not_a_host() {
        assert_eq!(
            to("/login?next=https://a/b", Some("site")),
            some("site", "/login?next=https://a/b")
        );
        assert_eq!(
            to("/x://y/admin", Some("site")),
            some("site", "/x://y/admin")
        );
    }

    #[test]
    fn absolute_form_wins_over_host() {
        assert_eq!(
            to("http://a.example/p?q", Some("b")),
            some("a.example", "/p?q")
        );
        assert_eq!(to("HTTPS://A.example", Some("b")), some("a.example", "/"));
        assert_eq!(to("http://a.example?q=1", None), some("a.example", "?q=1"));
        assert_eq!(
            to("http://user@a.example:81/x", None),
            some("a.example", "/x")
        );
        assert_eq!(to("ftp://a/b", Some("h")), some("h", "ftp://a/b"));
    }

    #[test]
    fn ports_and_ipv6_literals() {
        assert_eq!(to("/", Some("example.com:8443")), some("example.com", "/"));
        assert_eq!(to("/", Some("[::1]:8443")), some("[::1]", "/"));
        assert_eq!(to("/", Some("[::1]")), some("[::1]", "/"));
        assert_eq!(
            to("http://[2001:db8::1]:80/x", None),
            some("[2001:db8::1]", "/x")
        );
    }

    #[test]
    fn first_matching_route_else_default() {
        let routes = [
            Route {
                host: Some("api".into()),
                path_prefix: Some("/v1".into()),
                backend: 1,
            },
            Route {
                host: None,
                path_prefix: Some("/admin".into()),
                backend: 2,
            },
        ];
        let pick = |target: &str, host: &str| {
            backend(
                &routes,
                Some(0),
                &destination(target, Some(host.as_bytes())),
            )
        };
        assert_eq!(pick("/v1/x", "api:443"), Some(1));
        assert_eq!(pick("/v1/x", "web"), Some(0));
        assert_eq!(pick("/admin/x", "web"), Some(2));
        // The path of a query URL never reaches a path rule.
        assert_eq!(pick("/login?next=https://a/admin", "web"), Some(0));
        assert_eq!(backend(&routes, None, &destination("/", None)), None);
    }
}
