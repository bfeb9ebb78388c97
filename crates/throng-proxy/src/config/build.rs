//! From the file as written to the configuration the proxy runs: defaults filled in, names
//! resolved, certificates loaded, every value checked.

use super::file;
use super::locate::KeyPath;
use super::server_tls;
use super::*;
use std::collections::BTreeMap;
use throng_net::{duration, listen, source};
use throng_tls::config as tls;

/// The configuration `throng proxy` runs without `-c`: plain HTTP on 8080 and TLS (a self-signed
/// certificate made at start) on 8443, in front of the ten `throng pong` ports of the README.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

type Failure = (KeyPath, String);

/// Idle server connections kept per server per thread. An HTTP/2 client's streams each take
/// a server connection, so one connection may need a hundred at once; with 64, a hundred h2
/// clients ten streams deep reopened a server connection for a third of their requests (a
/// connect and a close each: 27k requests per CPU-second, 40k with 1,024). The pool grows only
/// to what was in use at once; HAProxy keeps them all (`pool-max-conn -1`).
const DEFAULT_MAX_IDLE_PER_SERVER: usize = 1024;

const DEFAULT_CLIENT: Duration = Duration::from_secs(30);
const DEFAULT_HTTP_REQUEST: Duration = Duration::from_secs(10);
/// The largest CONNECT read in mode mqtt: ids, names, a password and a will fit many times.
const DEFAULT_MQTT_MAX_CONNECT: usize = 64 * 1024;
/// The longest a client's keep-alive may keep its tunnel idle (1.5 keep-alives): a keep-alive
/// of 65,535 s would otherwise hold a connection 27 hours without a byte.
const DEFAULT_MQTT_MAX_IDLE: Duration = Duration::from_secs(15 * 60);
const DEFAULT_CONNECT: Duration = Duration::from_secs(5);
const DEFAULT_SERVER: Duration = Duration::from_secs(30);
const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Old generations closed at 1,000 connections a second: about a core's worth of full TLS
/// handshakes for the clients that come back.
const DEFAULT_CLOSE_RATE: u64 = 1000;
/// Room for a reload a minute for half an hour of long-lived connections (each old generation
/// keeps a thread per core and its pools while it holds some: see docs/reload.md).
const DEFAULT_MAX_GENERATIONS: usize = 32;
/// The most servers a configuration may name, all backends together: a port range makes one
/// server per port, and a file of ranges could otherwise ask for millions.
pub(crate) const MAX_SERVERS: usize = 65_536;

pub(super) fn build(file: file::File, base: &Path) -> Result<Config, Failure> {
    let root = KeyPath::default();
    let global = global(&file.global, &root.key("global"))?;
    let defaults = &file.defaults;
    let at_defaults = root.key("defaults");
    // Defaults are checked even where nothing uses them: a typo there is still a typo.
    timeouts_or(&defaults.timeout, None, &at_defaults.key("timeout"))?;

    let backend_names: Vec<&String> = file.backends.keys().collect();
    let mut backends: Vec<Backend> = Vec::new();
    for (name, backend) in &file.backends {
        let room = MAX_SERVERS - backends.iter().map(|b| b.servers.len()).sum::<usize>();
        backends.push(build_backend(
            name,
            backend,
            defaults,
            room,
            base,
            &root.key("backends").key(name),
        )?);
    }
    let mut frontends = Vec::new();
    for (name, frontend) in &file.frontends {
        let at = root.key("frontends").key(name);
        let built = build_frontend(name, frontend, defaults, &backend_names, base, &at)?;
        for route in &built.routes {
            check_modes(&built, &backends[route.backend], &at)?;
        }
        if let Some(backend) = built.default_backend {
            check_modes(&built, &backends[backend], &at)?;
        }
        frontends.push(built);
    }
    if frontends.is_empty() {
        return Err((root, "no frontend: add a [frontends.NAME] table".into()));
    }
    let mut seen = BTreeMap::new();
    for frontend in &frontends {
        for addr in &frontend.binds {
            // Port 0 asks for any free port: two of those never collide, but processes could
            // not share one.
            if addr.port() == 0 {
                if global.processes > 1 {
                    return Err((
                        root.key("frontends").key(&frontend.name).key("bind"),
                        format!("{addr}: with global.processes above 1 the processes share each port, so it must be given"),
                    ));
                }
                continue;
            }
            if let Some(other) = seen.insert(*addr, frontend.name.clone()) {
                return Err((
                    root.key("frontends").key(&frontend.name).key("bind"),
                    format!("{addr} is already bound by frontend `{other}`"),
                ));
            }
        }
    }
    let warnings = frontends
        .iter()
        .filter(|f| f.accept_proxy == crate::proxy_protocol::Senders::Anyone)
        .map(|f| {
            format!(
                "frontends.{}.accept_proxy = true trusts a PROXY header from anyone who can reach {}: fine where only a load balancer can; otherwise name its addresses (accept_proxy = [\"10.0.0.0/24\"])",
                f.name,
                f.binds.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    Ok(Config {
        source: String::new(),
        global,
        frontends,
        backends,
        warnings,
    })
}

fn check_modes(frontend: &Frontend, backend: &Backend, at: &KeyPath) -> Result<(), Failure> {
    if frontend.mode != backend.mode {
        return Err((
            at.key("mode"),
            format!(
                "frontend `{}` is mode {} but its backend `{}` is mode {}",
                frontend.name,
                frontend.mode.name(),
                backend.name,
                backend.mode.name()
            ),
        ));
    }
    Ok(())
}

fn global(g: &file::Global, at: &KeyPath) -> Result<Global, Failure> {
    let threads = match g.threads {
        Some(0) => return Err((at.key("threads"), "must be at least 1".into())),
        Some(n) if n > 1024 => return Err((at.key("threads"), "at most 1024".into())),
        Some(n) => n,
        None => throng_net::workers::default_threads(),
    };
    let processes = match g.processes {
        Some(0) => return Err((at.key("processes"), "must be at least 1".into())),
        Some(n) if n > 256 => return Err((at.key("processes"), "at most 256".into())),
        Some(n) => n,
        None => 1,
    };
    if g.maxconn == Some(0) {
        return Err((at.key("maxconn"), "must be at least 1".into()));
    }
    let memory_budget = g
        .memory_budget
        .as_deref()
        .map(|text| parse_size(text).map_err(|e| (at.key("memory_budget"), e)))
        .transpose()?;
    let admin = g
        .admin
        .as_deref()
        .map(|text| {
            text.parse::<SocketAddr>()
                .map_err(|_| (at.key("admin"), format!("`{text}` is not an address:port")))
        })
        .transpose()?;
    let log = match g.log.as_deref() {
        None | Some("stdout") => LogTarget::Stdout,
        Some("stderr") => LogTarget::Stderr,
        Some("off") => LogTarget::Off,
        Some(text) if text.starts_with("syslog:") => {
            let addr = &text["syslog:".len()..];
            LogTarget::Syslog(addr.parse().map_err(|_| {
                (
                    at.key("log"),
                    format!("`{addr}` is not an address:port for syslog"),
                )
            })?)
        }
        Some(text) if text.starts_with("file:") => LogTarget::File(text["file:".len()..].into()),
        Some(text) => {
            return Err((
                at.key("log"),
                format!("`{text}`: use stdout, stderr, off, file:PATH or syslog:ADDRESS:PORT"),
            ))
        }
    };
    let log_format = match g.log_format.as_deref() {
        None | Some("haproxy") => LogFormat::Haproxy,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err((
                at.key("log_format"),
                format!("`{other}`: use haproxy or json"),
            ))
        }
    };
    let max_generations = match g.max_generations {
        Some(n) if n < 2 => {
            return Err((
                at.key("max_generations"),
                "must be at least 2 (the serving generation and one that ends)".into(),
            ))
        }
        Some(n) if n > 256 => return Err((at.key("max_generations"), "at most 256".into())),
        Some(n) => n,
        None => DEFAULT_MAX_GENERATIONS,
    };
    let close_rate = match g.close_rate {
        Some(0) => return Err((at.key("close_rate"), "must be at least 1 per second".into())),
        Some(n) => n,
        None => DEFAULT_CLOSE_RATE,
    };
    let at_max_generations = match g.at_max_generations.as_deref() {
        None | Some("refuse") => AtMaxGenerations::Refuse,
        Some("close-oldest") => AtMaxGenerations::CloseOldest,
        Some(other) => {
            return Err((
                at.key("at_max_generations"),
                format!("`{other}`: use refuse or close-oldest"),
            ))
        }
    };
    let reload = ReloadLimits {
        at_max_generations,
        hard_stop_after: optional_duration(
            g.hard_stop_after.as_deref(),
            &at.key("hard_stop_after"),
        )?,
        close_rate,
        max_generations,
    };
    let admin_token = match g.admin_token.as_deref() {
        Some(token) if token.len() < 16 => {
            return Err((
                at.key("admin_token"),
                "at least 16 characters (it guards every runtime change)".into(),
            ))
        }
        Some(token) if !token.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err((
                at.key("admin_token"),
                "visible ASCII characters only (it travels in an HTTP header)".into(),
            ))
        }
        token => token.map(str::to_string),
    };
    if let (Some(addr), None) = (admin, &admin_token) {
        if !addr.ip().is_loopback() {
            return Err((
                at.key("admin"),
                format!("{addr} is reachable from other machines: set global.admin_token (and stats_auth for the pages), or bind it to 127.0.0.1"),
            ));
        }
    }
    let mut admin_socket = admin_socket(g, at)?;
    let defaults = throng_net::admin::AdminLimits::default();
    let admin_limits = throng_net::admin::AdminLimits {
        maxconn: match g.admin_maxconn {
            Some(0) => return Err((at.key("admin_maxconn"), "must be at least 1".into())),
            Some(n) if n > 10_000 => return Err((at.key("admin_maxconn"), "at most 10000".into())),
            Some(n) => n,
            None => defaults.maxconn,
        },
        timeout: optional_duration(g.admin_timeout.as_deref(), &at.key("admin_timeout"))?
            .unwrap_or(defaults.timeout),
    };
    let stats_auth = match g.stats_auth.as_deref() {
        Some(auth) if !auth.contains(':') || auth.starts_with(':') || auth.ends_with(':') => {
            return Err((at.key("stats_auth"), "`USER:PASSWORD`, both given".into()))
        }
        Some(auth) if auth.len() < 12 || !auth.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err((
                at.key("stats_auth"),
                "at least 12 visible ASCII characters in all".into(),
            ))
        }
        auth => auth.map(str::to_string),
    };
    let user = g
        .user
        .as_deref()
        .map(|name| throng_net::users::uid_of(name).map_err(|e| (at.key("user"), e)))
        .transpose()?;
    let group = g
        .group
        .as_deref()
        .map(|name| throng_net::users::gid_of(name).map_err(|e| (at.key("group"), e)))
        .transpose()?;
    if let Some(socket) = admin_socket.as_mut() {
        socket.runs_as = user;
    }
    Ok(Global {
        user,
        group,
        admin_socket,
        admin_limits,
        stats_auth,
        admin_token,
        pidfile: g.pidfile.as_deref().map(PathBuf::from),
        reload,
        processes,
        threads,
        maxconn: g.maxconn,
        memory_budget,
        grace: optional_duration(g.grace.as_deref(), &at.key("grace"))?.unwrap_or(DEFAULT_GRACE),
        admin,
        log,
        log_format,
    })
}

/// `admin_socket` and the keys that go with it; `auto` is the user's own runtime folder
/// ([`crate::ctl::socket::auto_path`]).
fn admin_socket(g: &file::Global, at: &KeyPath) -> Result<Option<AdminSocket>, Failure> {
    let Some(spelled) = g.admin_socket.as_deref() else {
        for (key, given) in [
            ("admin_socket_mode", g.admin_socket_mode.is_some()),
            ("admin_socket_user", g.admin_socket_user.is_some()),
            ("admin_socket_group", g.admin_socket_group.is_some()),
        ] {
            if given {
                return Err((at.key(key), "needs global.admin_socket".into()));
            }
        }
        return Ok(None);
    };
    let path = match spelled {
        "auto" => crate::ctl::socket::auto_path(),
        "" => return Err((at.key("admin_socket"), "a path, or auto".into())),
        path if !path.starts_with('/') => {
            return Err((
                at.key("admin_socket"),
                format!(
                "`{path}`: an absolute path (or auto), so that every tool finds the same socket"
            ),
            ))
        }
        path => PathBuf::from(path),
    };
    // sun_path holds 108 bytes with its NUL.
    if path.as_os_str().len() > 107 {
        return Err((
            at.key("admin_socket"),
            format!(
                "{}: longer than a Unix socket path may be (107 bytes)",
                path.display()
            ),
        ));
    }
    let mode = match g.admin_socket_mode.as_deref() {
        None => 0o600,
        Some(text) => match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
            Ok(mode) if mode <= 0o777 && mode & 0o007 == 0 => mode,
            Ok(mode) if mode <= 0o777 => {
                return Err((
                    at.key("admin_socket_mode"),
                    format!("{text}: a mode that lets every user steer the proxy; give others no access (0600, 0660)"),
                ))
            }
            _ => {
                return Err((
                    at.key("admin_socket_mode"),
                    format!("`{text}` is not a mode such as 0600 or 0660"),
                ))
            }
        },
    };
    let user = g
        .admin_socket_user
        .as_deref()
        .map(|name| throng_net::users::uid_of(name).map_err(|e| (at.key("admin_socket_user"), e)))
        .transpose()?;
    let group = g
        .admin_socket_group
        .as_deref()
        .map(|name| throng_net::users::gid_of(name).map_err(|e| (at.key("admin_socket_group"), e)))
        .transpose()?;
    Ok(Some(AdminSocket {
        path,
        auto: spelled == "auto",
        runs_as: None,
        mode,
        user,
        group,
    }))
}

fn mode(text: Option<&str>, at: &KeyPath) -> Result<Option<Mode>, Failure> {
    match text {
        None => Ok(None),
        Some("http") => Ok(Some(Mode::Http)),
        Some("tcp") => Ok(Some(Mode::Tcp)),
        Some("mqtt") => Ok(Some(Mode::Mqtt)),
        Some(other) => Err((at.clone(), format!("`{other}`: use http, tcp or mqtt"))),
    }
}

fn build_frontend(
    name: &str,
    f: &file::Frontend,
    defaults: &file::Defaults,
    backends: &[&String],
    base: &Path,
    at: &KeyPath,
) -> Result<Frontend, Failure> {
    let mode = mode(f.mode.as_deref(), &at.key("mode"))?
        .or(mode(defaults.mode.as_deref(), &KeyPath::default())?)
        .unwrap_or(Mode::Http);
    let mut binds = Vec::new();
    for (i, spec) in f.bind.iter().enumerate() {
        binds.extend(listen::parse(spec).map_err(|e| (at.key("bind").index(i), e))?);
    }
    if binds.is_empty() {
        return Err((at.key("bind"), "no address to listen on".into()));
    }
    let maxconn = f.maxconn.or(defaults.maxconn);
    if maxconn == Some(0) {
        return Err((at.key("maxconn"), "must be at least 1".into()));
    }
    let backend_index = |name: &str, at: KeyPath| {
        backends
            .iter()
            .position(|b| b.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = backends.iter().map(|b| b.as_str()).collect();
                (
                    at,
                    format!("no backend named `{name}` (backends: {})", known.join(", ")),
                )
            })
    };
    let default_backend = f
        .default_backend
        .as_deref()
        .map(|b| backend_index(b, at.key("default_backend")))
        .transpose()?;
    let mut routes = Vec::new();
    for (i, r) in f.route.iter().enumerate() {
        let at = at.key("route").index(i);
        if mode != Mode::Http {
            return Err((at, "routes by host and path need mode = \"http\"".into()));
        }
        if let Some(prefix) = &r.path_prefix {
            if !prefix.starts_with('/') {
                return Err((at.key("path_prefix"), "must start with `/`".into()));
            }
        }
        routes.push(Route {
            host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
            path_prefix: r.path_prefix.clone(),
            backend: backend_index(&r.backend, at.key("backend"))?,
        });
    }
    if default_backend.is_none() && routes.is_empty() {
        return Err((
            at.clone(),
            "no default_backend and no route: where should requests go?".into(),
        ));
    }
    let t = timeouts_or(&f.timeout, Some(&defaults.timeout), &at.key("timeout"))?;
    let client = t.client.unwrap_or(DEFAULT_CLIENT);
    let http_request = t.http_request.unwrap_or(DEFAULT_HTTP_REQUEST);
    let timeouts = FrontendTimeouts {
        client,
        http_request,
        // As HAProxy: without its own value, the keep-alive wait is the request's.
        http_keep_alive: t.http_keep_alive.unwrap_or(http_request),
        handshake: t.handshake.unwrap_or(http_request),
        client_given: t.client.is_some(),
        mqtt_connect: t.mqtt_connect.unwrap_or(http_request),
        mqtt_max_idle: t.mqtt_max_idle.unwrap_or(DEFAULT_MQTT_MAX_IDLE),
    };
    let mqtt_max_connect = match f.mqtt_max_connect {
        None => DEFAULT_MQTT_MAX_CONNECT,
        Some(n) if (16..=throng_mqtt::MAX_REMAINING_LENGTH as u64).contains(&n) => n as usize,
        Some(_) => {
            return Err((
                at.key("mqtt_max_connect"),
                format!("must be 16 to {} bytes", throng_mqtt::MAX_REMAINING_LENGTH),
            ))
        }
    };
    let tls = f
        .tls
        .as_ref()
        .map(|t| build_tls(t, mode, base, &at.key("tls")))
        .transpose()?;
    Ok(Frontend {
        name: name.into(),
        binds,
        mode,
        maxconn,
        tls,
        timeouts,
        default_backend,
        routes,
        forwardfor: f.forwardfor.or(defaults.forwardfor).unwrap_or(true),
        forwarded: f.forwarded.or(defaults.forwarded).unwrap_or(false),
        mqtt_max_connect,
        rate_limit_sessions: match f.rate_limit_sessions {
            Some(0) => {
                return Err((
                    at.key("rate_limit_sessions"),
                    "must be at least 1 (leave it out for no limit)".into(),
                ))
            }
            limit => limit,
        },
        accept_proxy: accept_proxy(f.accept_proxy.as_ref(), &at.key("accept_proxy"))?,
        h2c: match f.h2c {
            Some(true) if mode != Mode::Http => {
                return Err((
                    at.key("h2c"),
                    "HTTP/2 is served by mode = \"http\" frontends only".into(),
                ))
            }
            Some(true) if f.tls.is_some() => return Err((
                at.key("h2c"),
                "h2c is HTTP/2 without TLS; over TLS, offer it with alpn = [\"h2\", \"http/1.1\"]"
                    .into(),
            )),
            h2c => h2c.unwrap_or(false),
        },
        h2: super::h2::limits(f.h2.as_ref(), mode, &at.key("h2"))?,
    })
}

fn accept_proxy(
    given: Option<&file::AcceptProxy>,
    at: &KeyPath,
) -> Result<crate::proxy_protocol::Senders, Failure> {
    use crate::proxy_protocol::{Block, Senders};
    Ok(match given {
        None | Some(file::AcceptProxy::Anyone(false)) => Senders::Nobody,
        Some(file::AcceptProxy::Anyone(true)) => Senders::Anyone,
        Some(file::AcceptProxy::From(list)) if list.is_empty() => {
            return Err((at.clone(), "name the senders, or false".into()))
        }
        Some(file::AcceptProxy::From(list)) => Senders::From(
            list.iter()
                .enumerate()
                .map(|(i, text)| Block::parse(text).map_err(|e| (at.index(i), e)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn build_tls(
    t: &file::Tls,
    mode: Mode,
    base: &Path,
    at: &KeyPath,
) -> Result<Arc<ServerConfig>, Failure> {
    let mut certified = Vec::new();
    for (i, c) in t.certificates.iter().enumerate() {
        let at = at.key("certificates").index(i);
        let cert_path = base.join(&c.cert);
        let key_path = base.join(&c.key);
        let certs = tls::load_certs(&cert_path).map_err(|e| (at.key("cert"), e))?;
        let key = tls::load_key(&key_path).map_err(|e| (at.key("key"), e))?;
        certified.push((certs, key));
    }
    if let Some(names) = &t.self_signed {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (cert, key) = tls::self_signed(&names).map_err(|e| (at.key("self_signed"), e))?;
        let certs = tls::parse_certs(cert.as_bytes()).map_err(|e| (at.key("self_signed"), e))?;
        let key = tls::parse_key(key.as_bytes()).map_err(|e| (at.key("self_signed"), e))?;
        certified.push((certs, key));
    }
    if certified.is_empty() {
        return Err((
            at.key("certificates"),
            "no certificate: give certificates = [{ cert = ..., key = ... }] or self_signed = [\"name\"]".into(),
        ));
    }
    let alpn: Vec<String> = match &t.alpn {
        Some(list) => list.clone(),
        None if mode == Mode::Http => vec!["http/1.1".into()],
        None => Vec::new(),
    };
    if mode == Mode::Http {
        if let Some(bad) = alpn
            .iter()
            .find(|p| !matches!(p.as_str(), "h2" | "http/1.1" | "http/1.0"))
        {
            return Err((
                at.key("alpn"),
                format!("`{bad}`: an HTTP frontend speaks h2, http/1.1 and http/1.0"),
            ));
        }
    } else if alpn.iter().any(|p| p == "h2") {
        return Err((
            at.key("alpn"),
            "`h2`: HTTP/2 is served by mode = \"http\" frontends only (a TCP or MQTT frontend would offer a protocol it does not speak)".into(),
        ));
    }
    let groups = t.groups.clone().unwrap_or_default();
    let own_records = match t.record_layer.as_deref() {
        None | Some("throng") => true,
        Some("rustls") => false,
        Some(other) => {
            return Err((
                at.key("record_layer"),
                format!("`{other}`: the record layer is \"throng\" (the default) or \"rustls\""),
            ))
        }
    };
    crate::certs::server_config(certified, &alpn, &groups, own_records).map_err(|e| (at.clone(), e))
}

fn parse_balance(text: Option<&str>, at: &KeyPath) -> Result<Balance, Failure> {
    match text {
        None | Some("roundrobin") => Ok(Balance::RoundRobin),
        Some("leastconn") => Ok(Balance::LeastConn),
        Some("source") => Ok(Balance::Source),
        Some("random") => Ok(Balance::Random),
        Some("client-id") => Ok(Balance::ClientId),
        Some(other) => Err((
            at.clone(),
            format!("`{other}`: use roundrobin, leastconn, source, random or client-id"),
        )),
    }
}

/// A backend of at most `room` servers (what [`MAX_SERVERS`] leaves).
fn build_backend(
    name: &str,
    b: &file::Backend,
    defaults: &file::Defaults,
    room: usize,
    base: &Path,
    at: &KeyPath,
) -> Result<Backend, Failure> {
    let mode = mode(b.mode.as_deref(), &at.key("mode"))?
        .or(mode(defaults.mode.as_deref(), &KeyPath::default())?)
        .unwrap_or(Mode::Http);
    let balance_at = if b.balance.is_some() {
        at.key("balance")
    } else {
        KeyPath::default().key("defaults").key("balance")
    };
    let balance = parse_balance(
        b.balance.as_deref().or(defaults.balance.as_deref()),
        &balance_at,
    )?;
    if balance == Balance::ClientId && mode != Mode::Mqtt {
        return Err((balance_at, "client-id needs mode = \"mqtt\"".into()));
    }
    let fallback_at = at.key("balance_fallback");
    let balance_fallback = match parse_balance(b.balance_fallback.as_deref(), &fallback_at)? {
        Balance::ClientId => {
            return Err((fallback_at, "is for connections without a client id".into()))
        }
        fallback => fallback,
    };
    let hash_balance_factor = match b.hash_balance_factor {
        None | Some(0) => None,
        Some(_) if balance != Balance::ClientId => {
            return Err((
                at.key("hash_balance_factor"),
                "bounds the load of balance = \"client-id\" only".into(),
            ))
        }
        Some(n) if n <= 100 || n > 100_000 => return Err((
            at.key("hash_balance_factor"),
            "a percentage above 100 (125: no server above 1.25 times the average), or 0 for none"
                .into(),
        )),
        Some(n) => Some(n),
    };
    let tls = b
        .tls
        .as_ref()
        .map(|t| server_tls::build(t, mode, base, &at.key("tls")))
        .transpose()?;
    let mut servers = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, s) in b.servers.iter().enumerate() {
        let at = at.key("servers").index(i);
        let server_tls = match &s.tls {
            None => tls.clone(),
            Some(own) => server_tls::layered(b.tls.as_ref(), Some(own))
                .map(|t| server_tls::build(&t, mode, base, &at.key("tls")))
                .transpose()?,
        };
        let addrs = listen::parse(&s.address).map_err(|e| (at.key("address"), e))?;
        if servers.len() + addrs.len() > room {
            return Err((
                at.key("address"),
                format!("more than {MAX_SERVERS} servers in the configuration"),
            ));
        }
        let send_proxy = match s.send_proxy.as_deref() {
            None => None,
            Some(_) if mode == Mode::Http => {
                return Err((
                    at.key("send_proxy"),
                    "needs mode = \"tcp\" or \"mqtt\"".into(),
                ))
            }
            Some("v1") => Some(crate::proxy_protocol::Version::V1),
            Some("v2") => Some(crate::proxy_protocol::Version::V2),
            Some(other) => return Err((at.key("send_proxy"), format!("`{other}`: use v1 or v2"))),
        };
        let weight = s.weight.unwrap_or(1);
        if weight == 0 || weight > 256 {
            return Err((at.key("weight"), "must be 1 to 256".into()));
        }
        if s.maxconn == Some(0) {
            return Err((
                at.key("maxconn"),
                "must be at least 1 (leave it out for no limit)".into(),
            ));
        }
        for (n, address) in addrs.iter().enumerate() {
            if address.port() == 0 || address.ip().is_unspecified() {
                return Err((
                    at.key("address"),
                    format!("{address} cannot be connected to"),
                ));
            }
            let name: Arc<str> = if addrs.len() == 1 {
                s.name.as_str().into()
            } else {
                format!("{}{}", s.name, n + 1).into()
            };
            if !names.insert(Arc::clone(&name)) {
                return Err((at.key("name"), format!("server `{name}` is named twice")));
            }
            servers.push(Server {
                name,
                address: *address,
                weight,
                maxconn: s.maxconn,
                checked: s.check.unwrap_or(true),
                send_proxy,
                // Each server resumes its own sessions.
                tls: server_tls.as_ref().map(ServerTls::own_sessions),
            });
        }
    }
    if servers.is_empty() {
        return Err((at.key("servers"), "no server".into()));
    }
    let source = b
        .source
        .as_deref()
        .map(|spec| source::parse_pool(spec).map_err(|e| (at.key("source"), e)))
        .transpose()?
        .unwrap_or_default();
    let t = timeouts_or(&b.timeout, Some(&defaults.timeout), &at.key("timeout"))?;
    let connect = t.connect.unwrap_or(DEFAULT_CONNECT);
    let server = t.server.unwrap_or(DEFAULT_SERVER);
    let timeouts = BackendTimeouts {
        connect,
        server,
        tunnel: t.tunnel,
        // As HAProxy: without its own value, the queue wait is the connect timeout.
        queue: t.queue.unwrap_or(connect),
    };
    let check = b
        .check
        .as_ref()
        .map(|c| build_check(c, connect, &at.key("check")))
        .transpose()?;
    let retries = b.retries.or(defaults.retries).unwrap_or(3);
    if retries > 100 {
        return Err((at.key("retries"), "at most 100".into()));
    }
    Ok(Backend {
        name: name.into(),
        mode,
        balance,
        balance_fallback,
        hash_balance_factor,
        servers,
        source,
        check,
        timeouts,
        retries,
        redispatch: b.redispatch.or(defaults.redispatch).unwrap_or(true),
        max_idle_per_server: b
            .max_idle_per_server
            .or(defaults.max_idle_per_server)
            .unwrap_or(DEFAULT_MAX_IDLE_PER_SERVER),
        tls,
    })
}

fn build_check(c: &file::Check, connect: Duration, at: &KeyPath) -> Result<Check, Failure> {
    let kind = match c.kind.as_deref() {
        None | Some("tcp") => {
            if c.path.is_some() {
                return Err((at.key("path"), "a path needs type = \"http\"".into()));
            }
            CheckKind::Tcp
        }
        Some("http") => {
            let path = c.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err((at.key("path"), format!("`{path}` is not a request path")));
            }
            let host = c.host.clone().unwrap_or_else(|| "localhost".into());
            CheckKind::Http { path, host }
        }
        Some(other) => return Err((at.key("type"), format!("`{other}`: use tcp or http"))),
    };
    let interval = optional_duration(c.interval.as_deref(), &at.key("interval"))?
        .unwrap_or(Duration::from_secs(2));
    if interval < Duration::from_millis(10) {
        return Err((at.key("interval"), "at least 10ms".into()));
    }
    let timeout = optional_duration(c.timeout.as_deref(), &at.key("timeout"))?
        .unwrap_or(connect.min(interval));
    let rise = c.rise.unwrap_or(2);
    let fall = c.fall.unwrap_or(3);
    for (value, key) in [(rise, "rise"), (fall, "fall")] {
        if value == 0 || value > 1000 {
            return Err((at.key(key), "must be 1 to 1000".into()));
        }
    }
    Ok(Check {
        kind,
        interval,
        timeout,
        rise,
        fall,
    })
}

/// Timeouts as parsed, each from `own` or else `defaults`.
#[derive(Default)]
struct Parsed {
    client: Option<Duration>,
    http_request: Option<Duration>,
    http_keep_alive: Option<Duration>,
    handshake: Option<Duration>,
    mqtt_connect: Option<Duration>,
    mqtt_max_idle: Option<Duration>,
    connect: Option<Duration>,
    server: Option<Duration>,
    tunnel: Option<Duration>,
    queue: Option<Duration>,
}

fn timeouts_or(
    own: &file::Timeouts,
    defaults: Option<&file::Timeouts>,
    at: &KeyPath,
) -> Result<Parsed, Failure> {
    let default_at = KeyPath::default().key("defaults").key("timeout");
    let pick =
        |mine: &Option<String>, theirs: Option<&Option<String>>, key: &str| match (mine, theirs) {
            (Some(text), _) => positive_duration(text, &at.key(key)).map(Some),
            (None, Some(Some(text))) => positive_duration(text, &default_at.key(key)).map(Some),
            _ => Ok(None),
        };
    let d = |f: fn(&file::Timeouts) -> &Option<String>| defaults.map(f);
    Ok(Parsed {
        client: pick(&own.client, d(|t| &t.client), "client")?,
        http_request: pick(&own.http_request, d(|t| &t.http_request), "http-request")?,
        http_keep_alive: pick(
            &own.http_keep_alive,
            d(|t| &t.http_keep_alive),
            "http-keep-alive",
        )?,
        handshake: pick(&own.handshake, d(|t| &t.handshake), "handshake")?,
        mqtt_connect: pick(&own.mqtt_connect, d(|t| &t.mqtt_connect), "mqtt-connect")?,
        mqtt_max_idle: pick(&own.mqtt_max_idle, d(|t| &t.mqtt_max_idle), "mqtt-max-idle")?,
        connect: pick(&own.connect, d(|t| &t.connect), "connect")?,
        server: pick(&own.server, d(|t| &t.server), "server")?,
        tunnel: pick(&own.tunnel, d(|t| &t.tunnel), "tunnel")?,
        queue: pick(&own.queue, d(|t| &t.queue), "queue")?,
    })
}

fn positive_duration(text: &str, at: &KeyPath) -> Result<Duration, Failure> {
    let value = duration::parse(text).map_err(|e| (at.clone(), e))?;
    if value.is_zero() {
        return Err((at.clone(), "must be more than 0".into()));
    }
    Ok(value)
}

fn optional_duration(text: Option<&str>, at: &KeyPath) -> Result<Option<Duration>, Failure> {
    text.map(|t| positive_duration(t, at)).transpose()
}

/// `512MiB`, `20GiB`, `1.5GB`, or a number of bytes.
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 512MiB or 20GiB"))?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" | "K" | "k" => 1024.0,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => {
            return Err(format!(
                "unknown unit `{other}` (use KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    let bytes = number * scale;
    if !(1.0..1e18).contains(&bytes) {
        return Err(format!("`{text}` is not a sensible size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::{parse_size, MAX_SERVERS};
    use std::path::Path;

    fn config_with_servers(addresses: &[&str]) -> String {
        let servers: Vec<String> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{{ name = \"s{i}-\", address = \"{a}\" }}"))
            .collect();
        format!(
            "[frontends.web]\nbind = [\"127.0.0.1:8080\"]\ndefault_backend = \"app\"\n\
             [backends.app]\nservers = [{}]\n",
            servers.join(", ")
        )
    }

    /// Found by the `proxy_config` fuzz target: a port range of 27,464 servers took 4 s (a
    /// quadratic check for repeated names), past the fuzzer's 10 s under its sanitizer.
    #[test]
    fn a_wide_port_range_of_servers_loads_and_a_limit_holds() {
        let wide = config_with_servers(&["127.0.0.1:828-28291"]);
        let config = crate::config::parse(&wide, "wide.toml", Path::new(".")).unwrap();
        assert_eq!(config.backends[0].servers.len(), 27_464);
        let too_many = config_with_servers(&["127.0.0.1:1-65535", "127.0.0.2:1-10"]);
        let error = crate::config::parse(&too_many, "many.toml", Path::new("."))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains(&format!("more than {MAX_SERVERS} servers"))
                && error.contains("backends.app.servers[1].address"),
            "{error}"
        );
    }

    /// The embedded default takes commands on a socket of its user's only: it names no token,
    /// so its TCP admin listener takes none.
    #[test]
    fn the_default_has_an_admin_socket_and_no_token() {
        let config =
            crate::config::parse(super::DEFAULT_CONFIG, "default", Path::new(".")).unwrap();
        let socket = config.global.admin_socket.unwrap();
        assert!(socket.path.ends_with("throng/proxy.sock"), "{socket:?}");
        assert_eq!(socket.mode, 0o600);
        assert!(config.global.admin_token.is_none());
        assert!(config.global.admin.unwrap().ip().is_loopback());
    }

    #[test]
    fn admin_mistakes_are_named() {
        let base = config_with_servers(&["127.0.0.1:8282"]);
        let error = |global: &str| {
            let text = format!("[global]\n{global}\n{base}");
            crate::config::parse(&text, "admin.toml", Path::new("."))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let said = error("admin_socket = \"run/proxy.sock\"");
        assert!(
            said.contains("admin.toml:2: global.admin_socket: `run/proxy.sock`: an absolute path"),
            "{said}"
        );
        let said = error("admin_socket = \"/run/x.sock\"\nadmin_socket_mode = \"0666\"");
        assert!(
            said.contains(":3: global.admin_socket_mode: 0666: a mode that lets every user"),
            "{said}"
        );
        let said = error("admin_socket_mode = \"0600\"");
        assert!(
            said.contains("global.admin_socket_mode: needs global.admin_socket"),
            "{said}"
        );
        let said =
            error("admin_socket = \"/run/x.sock\"\nadmin_socket_user = \"no-such-user-here\"");
        assert!(
            said.contains("global.admin_socket_user: no user `no-such-user-here`"),
            "{said}"
        );
        let said = error("admin = \"[::]:9100\"");
        assert!(
            said.contains("global.admin: [::]:9100 is reachable from other machines"),
            "{said}"
        );
        assert!(error("admin = \"[::]:9100\"\nadmin_token = \"0123456789abcdef\"").is_empty());
        let said = error("stats_auth = \"nopassword\"");
        assert!(
            said.contains("global.stats_auth: `USER:PASSWORD`"),
            "{said}"
        );
        let said = error("admin_maxconn = 0");
        assert!(
            said.contains("global.admin_maxconn: must be at least 1"),
            "{said}"
        );
    }

    #[test]
    fn mqtt_mode_loads_and_its_mistakes_are_named() {
        let mqtt = "[defaults]\nmode = \"mqtt\"\n[frontends.m]\nbind = [\"127.0.0.1:8883\"]\n\
                    default_backend = \"b\"\nmqtt_max_connect = 4096\n\
                    [backends.b]\nbalance = \"client-id\"\nbalance_fallback = \"leastconn\"\n\
                    servers = [{ name = \"s\", address = \"127.0.0.1:1883\" }]\n";
        let config = crate::config::parse(mqtt, "m.toml", Path::new(".")).unwrap();
        assert_eq!(config.frontends[0].mqtt_max_connect, 4096);
        assert_eq!(config.backends[0].balance, crate::config::Balance::ClientId);
        for (bad, key, says) in [
            (
                mqtt.replace("mode = \"mqtt\"", "mode = \"http\""),
                "backends.b.balance",
                "client-id needs mode = \"mqtt\"",
            ),
            (
                mqtt.replace("\"leastconn\"", "\"client-id\""),
                "backends.b.balance_fallback",
                "without a client id",
            ),
            (
                mqtt.replace("4096", "3"),
                "frontends.m.mqtt_max_connect",
                "must be 16 to",
            ),
        ] {
            let error = crate::config::parse(&bad, "m.toml", Path::new("."))
                .err()
                .unwrap()
                .to_string();
            assert!(error.contains(key) && error.contains(says), "{error}");
            assert!(
                error.contains("m.toml:"),
                "names the file and line: {error}"
            );
        }
    }

    #[test]
    fn sizes_in_binary_and_decimal_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("10 parsecs").is_err());
    }
}
