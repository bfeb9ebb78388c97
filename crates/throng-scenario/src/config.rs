//! A scenario file: what to start and which attack phases to run, checked whole before anything
//! starts. Errors name the file, the line and the key.

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;
use throng_net::{duration, listen};
use throng_proxy::config::locate::{line_at, line_of, KeyPath};

pub const DEFAULT: &str = include_str!("default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    pong: PongFile,
    #[serde(default)]
    proxy: ProxyFile,
    #[serde(default)]
    monitor: MonitorFile,
    mqtt: Option<MqttFile>,
    hosts: Option<HostsFile>,
    phase: Vec<PhaseFile>,
}

/// MQTT brokers: Debian's mosquitto started by the scenario (one process per address), or one
/// already running; and the proxy's MQTT-over-TLS frontend in front of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MqttFile {
    brokers: Option<String>,
    external: Option<String>,
    listen: Option<String>,
    bridge: Option<bool>,
}

/// Machines that run attack phases: how to start a command on one, and how to bring a file
/// back from it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    names: Vec<String>,
    launcher: String,
    throng: Option<String>,
    results: Option<String>,
    collect: Option<String>,
    start_lead: Option<String>,
    monitor: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PongFile {
    listen: Option<String>,
    threads: Option<usize>,
    procs: Option<usize>,
    /// pong on other machines, started through `[hosts]`' launcher: each host's addresses.
    hosts: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyFile {
    /// "throng" (the default) or "haproxy", started by the scenario.
    kind: Option<String>,
    listen: Option<String>,
    threads: Option<usize>,
    processes: Option<usize>,
    /// An already running proxy (HAProxy, nginx) at this address, instead of throng's.
    external: Option<String>,
    /// Whether the external proxy speaks TLS.
    tls: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorFile {
    interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseFile {
    name: String,
    /// Requests per second (HTTP), messages per second (MQTT `pub`).
    rate: Option<f64>,
    duration: String,
    /// An MQTT phase: `conn`, `sub` or `pub` (`throng mqtt`'s roles).
    mqtt: Option<String>,
    clients: Option<usize>,
    connect_rate: Option<f64>,
    keep_alive: Option<u16>,
    qos: Option<u8>,
    subscribers: Option<usize>,
    payload: Option<usize>,
    topic: Option<String>,
    /// MQTT: straight to the first broker instead of through the proxy.
    direct: Option<bool>,
    headers: Option<Vec<String>>,
    /// Several header sets: one target each, taken in turn.
    targets: Option<Vec<Vec<String>>>,
    timeout: Option<String>,
    /// HTTP/2 to the proxy (offered by ALPN, as vegeta's -http2); off unless asked, so that a
    /// scenario's figures keep their meaning.
    http2: Option<bool>,
    /// Conditions the phase must meet (`throng attack --threshold`'s syntax), judged on its
    /// merged results at the end.
    thresholds: Option<Vec<String>>,
    /// Starts this long after the first phase, alongside whatever runs then.
    at: Option<String>,
    procs: Option<usize>,
    threads: Option<usize>,
    source: Option<String>,
    /// Split over these of `[hosts]`' names, one part each.
    hosts: Option<Vec<String>>,
}

/// A checked scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Every pong address, the proxy's servers.
    pub pong: Vec<SocketAddr>,
    /// pong on hosts (`[pong.hosts]`): each host and its addresses; empty: pong runs here.
    pub pong_hosts: Vec<(String, Vec<SocketAddr>)>,
    pub pong_threads: usize,
    pub pong_procs: usize,
    pub proxy: Proxy,
    pub monitor_interval: Duration,
    pub mqtt: Option<Mqtt>,
    pub hosts: Option<Hosts>,
    pub phases: Vec<Phase>,
}

/// `[mqtt]`: where MQTT phases connect.
#[derive(Clone, Debug)]
pub struct Mqtt {
    pub brokers: Brokers,
    /// Several brokers started here are bridged to the first (a star, every topic both ways at
    /// QoS 1), so that a message reaches every subscriber as in a cluster; `false`: apart.
    pub bridge: bool,
    /// The proxy's MQTT frontend (TLS, `mode = "mqtt"`, `balance = "client-id"` for throng).
    pub listen: SocketAddr,
}

#[derive(Clone, Debug)]
pub enum Brokers {
    /// mosquitto processes the scenario starts, one per address.
    Started(Vec<SocketAddr>),
    /// A broker already running.
    External(SocketAddr),
}

impl Brokers {
    pub fn addresses(&self) -> Vec<SocketAddr> {
        match self {
            Brokers::Started(addresses) => addresses.clone(),
            Brokers::External(address) => vec![*address],
        }
    }
}

/// An MQTT phase: `throng mqtt ROLE` with these flags.
#[derive(Clone, Debug)]
pub struct MqttPhase {
    pub role: throng_results::mqtt::Role,
    pub clients: usize,
    pub connect_rate: f64,
    pub keep_alive: u16,
    pub qos: u8,
    pub subscribers: usize,
    pub payload: usize,
    pub topic: String,
    /// Straight to the first broker, not through the proxy.
    pub direct: bool,
}

/// `[hosts]`: where a phase with `hosts` runs its parts (`throng attack --part I/N --start-at`).
#[derive(Clone, Debug)]
pub struct Hosts {
    pub names: Vec<String>,
    /// The words before the `throng` command, `{host}` replaced: `ssh {host}`, `ip netns exec
    /// {host}`, `kubectl exec {host} --`.
    pub launcher: Vec<String>,
    /// The binary on the hosts; `None`: this one's path (a shared or local filesystem).
    pub throng: Option<String>,
    /// The folder parts write to on the hosts; `None`: the scenario's own folder (shared).
    pub results: Option<String>,
    /// How a part's file comes back, `{host}`, `{remote}` and `{local}` replaced (`scp
    /// {host}:{remote} {local}`); `None`: it is in the folder already.
    pub collect: Option<Vec<String>>,
    /// How far ahead of now the parts are told to start, so that every host is ready.
    pub start_lead: Duration,
    /// A monitor on each host too (through the launcher), its samples brought back by
    /// `collect` and drawn beside this machine's, a series per host.
    pub monitor: bool,
}

#[derive(Clone, Debug)]
pub enum Proxy {
    /// throng proxy with TLS on `listen`, started by the scenario.
    Throng {
        listen: SocketAddr,
        threads: usize,
        processes: usize,
    },
    /// HAProxy (Debian's `haproxy`) with TLS on `listen`: `processes` of them sharing the port
    /// (HAProxy 2.5 dropped `nbproc`), each with `threads` threads.
    Haproxy {
        listen: SocketAddr,
        threads: usize,
        processes: usize,
    },
    /// A proxy already running at `address`.
    External { address: SocketAddr, tls: bool },
}

#[derive(Clone, Debug)]
pub struct Phase {
    pub name: String,
    pub rate: f64,
    pub duration: Duration,
    /// One header set per target; requests take the targets in turn.
    pub targets: Vec<Vec<String>>,
    pub timeout: Duration,
    /// Requests over HTTP/2 (ALPN `h2` at the proxy's TLS frontend).
    pub http2: bool,
    /// Judged on the phase's results once it ended; one broken makes the scenario exit 1.
    pub thresholds: Vec<throng_results::threshold::Threshold>,
    /// When it starts, after the first phase's start; `None`: after the phase before it ends.
    pub at: Option<Duration>,
    pub procs: usize,
    pub threads: Option<usize>,
    pub source: Option<String>,
    /// The hosts that run it, a part each; empty: this machine.
    pub hosts: Vec<String>,
    /// An MQTT phase; `None`: HTTP requests to pong through the proxy.
    pub mqtt: Option<MqttPhase>,
}

/// Reads `text` (from `source`, for messages).
pub fn parse(text: &str, source: &str) -> Result<Scenario, String> {
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(":{}", line_at(text, s.start)))
            .unwrap_or_default();
        format!("{source}{line}: {}", e.message().trim())
    })?;
    build(file).map_err(|(path, message)| {
        let line = line_of(text, &path)
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        format!("{source}{line}: {path}: {message}")
    })
}

type Failure = (KeyPath, String);

fn positive(text: &str, at: KeyPath) -> Result<Duration, Failure> {
    match duration::parse(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err((at, "must be more than 0".into())),
        Err(e) => Err((at, e)),
    }
}

fn count(value: Option<usize>, at: KeyPath, most: usize) -> Result<usize, Failure> {
    match value {
        Some(0) => Err((at, "must be at least 1".to_string())),
        Some(n) if n > most => Err((at, format!("at most {most}"))),
        Some(n) => Ok(n),
        None => Ok(1),
    }
}

fn address(text: &str, at: KeyPath) -> Result<SocketAddr, Failure> {
    text.parse()
        .map_err(|_| (at, format!("`{text}` is not an address:port")))
}

fn build(file: File) -> Result<Scenario, Failure> {
    let root = KeyPath::default();
    let (pong, pong_hosts) = pong_places(&file, root.key("pong"))?;
    let pong_threads = count(file.pong.threads, root.key("pong").key("threads"), 1024)?;
    let pong_procs = count(file.pong.procs, root.key("pong").key("procs"), 256)?;
    let at = root.key("proxy");
    let listen_at = || {
        let spec = file.proxy.listen.as_deref().unwrap_or("127.0.0.1:8443");
        address(spec, at.key("listen"))
    };
    let threads = count(file.proxy.threads, at.key("threads"), 1024)?;
    let processes = count(file.proxy.processes, at.key("processes"), 256)?;
    let proxy = match (&file.proxy.external, file.proxy.kind.as_deref()) {
        (Some(_), Some(_)) => {
            return Err((
                at.key("kind"),
                "an external proxy is not started: give `external` or `kind`, not both".into(),
            ))
        }
        (Some(external), None) => Proxy::External {
            address: address(external, at.key("external"))?,
            tls: file.proxy.tls.unwrap_or(true),
        },
        (None, None | Some("throng")) => Proxy::Throng {
            listen: listen_at()?,
            threads,
            processes,
        },
        (None, Some("haproxy")) => Proxy::Haproxy {
            listen: listen_at()?,
            threads,
            processes,
        },
        (None, Some(other)) => {
            return Err((at.key("kind"), format!("`{other}`: use throng or haproxy")))
        }
    };
    let monitor_interval = match &file.monitor.interval {
        Some(text) => positive(text, root.key("monitor").key("interval"))?,
        None => Duration::from_secs(1),
    };
    let mqtt = file
        .mqtt
        .as_ref()
        .map(|m| mqtt(m, root.key("mqtt")))
        .transpose()?;
    let hosts = file
        .hosts
        .as_ref()
        .map(|h| hosts(h, root.key("hosts")))
        .transpose()?;
    let mut phases = Vec::new();
    for (i, p) in file.phase.iter().enumerate() {
        let at = root.key("phase").index(i);
        let built = phase(p, at.clone())?;
        let through_external = matches!(proxy, Proxy::External { .. });
        if built.mqtt.as_ref().is_some_and(|m| !m.direct) && through_external {
            return Err((
                at.key("mqtt"),
                "an external proxy has no MQTT frontend the scenario knows of: give `direct = true` \
                 (straight to the broker), or let the scenario start the proxy"
                    .into(),
            ));
        }
        if built.mqtt.is_some() && mqtt.is_none() {
            return Err((
                at.key("mqtt"),
                "an MQTT phase needs brokers: add [mqtt] with `brokers` (started here) or `external`"
                    .into(),
            ));
        }
        if !built.hosts.is_empty() {
            let known = hosts.as_ref().map(|h| &h.names);
            if let Some(unknown) = built
                .hosts
                .iter()
                .find(|name| !known.is_some_and(|names| names.contains(name)))
            {
                return Err((
                    at.key("hosts"),
                    format!("`{unknown}` is not one of [hosts] names"),
                ));
            }
        }
        phases.push(built);
    }
    if phases.is_empty() {
        return Err((root, "no phase: add [[phase]] tables".into()));
    }
    Ok(Scenario {
        pong,
        pong_hosts,
        pong_threads,
        pong_procs,
        proxy,
        monitor_interval,
        mqtt,
        hosts,
        phases,
    })
}

/// Where pong listens: every address, and the hosts it runs on (none: here).
#[allow(clippy::type_complexity)]
fn pong_places(
    file: &File,
    at: KeyPath,
) -> Result<(Vec<SocketAddr>, Vec<(String, Vec<SocketAddr>)>), Failure> {
    let Some(on_hosts) = &file.pong.hosts else {
        let spec = file.pong.listen.as_deref().unwrap_or("127.0.0.1:8282-8291");
        let here = listen::parse(spec).map_err(|e| (at.key("listen"), e))?;
        return Ok((here, Vec::new()));
    };
    if file.pong.listen.is_some() {
        return Err((
            at.key("listen"),
            "pong runs on [pong.hosts]: give each host's addresses there, not `listen` too".into(),
        ));
    }
    if file.hosts.is_none() {
        return Err((
            at.key("hosts"),
            "pong on hosts is started through [hosts]' launcher: add [hosts]".into(),
        ));
    }
    if on_hosts.is_empty() {
        return Err((at.key("hosts"), "no host: name at least one".into()));
    }
    let (mut all, mut places) = (Vec::new(), Vec::new());
    for (host, spec) in on_hosts {
        let at = at.key("hosts").key(host);
        if !is_host_name(host) {
            return Err((
                at,
                format!("`{host}`: a host name without spaces or slashes"),
            ));
        }
        let addresses = listen::parse(spec).map_err(|e| (at.clone(), e))?;
        if let Some(unusable) = addresses
            .iter()
            .find(|a| a.ip().is_unspecified() || a.port() == 0)
        {
            return Err((
                at,
                format!(
                    "`{unusable}`: the proxy connects to these: name the host's address and port"
                ),
            ));
        }
        all.extend(addresses.iter().copied());
        places.push((host.clone(), addresses));
    }
    Ok((all, places))
}

fn is_host_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '/')
}

fn mqtt(m: &MqttFile, at: KeyPath) -> Result<Mqtt, Failure> {
    let brokers = match (&m.brokers, &m.external) {
        (Some(_), Some(_)) => {
            return Err((
                at.key("external"),
                "give `brokers` (started here) or `external` (running), not both".into(),
            ))
        }
        (Some(spec), None) => {
            Brokers::Started(listen::parse(spec).map_err(|e| (at.key("brokers"), e))?)
        }
        (None, Some(external)) => Brokers::External(address(external, at.key("external"))?),
        (None, None) => Brokers::Started(vec![SocketAddr::from(([127, 0, 0, 1], 1883))]),
    };
    if m.bridge.is_some() && matches!(brokers, Brokers::External(_)) {
        return Err((
            at.key("bridge"),
            "an external broker is not configured here".into(),
        ));
    }
    Ok(Mqtt {
        brokers,
        bridge: m.bridge.unwrap_or(true),
        listen: address(
            m.listen.as_deref().unwrap_or("127.0.0.1:8883"),
            at.key("listen"),
        )?,
    })
}

/// An MQTT phase's flags; `None` for an HTTP phase (which must not have them).
fn mqtt_phase(p: &PhaseFile, at: &KeyPath) -> Result<Option<MqttPhase>, Failure> {
    use throng_results::mqtt::Role;
    let Some(role) = &p.mqtt else {
        let stray = [
            ("clients", p.clients.is_some()),
            ("connect_rate", p.connect_rate.is_some()),
            ("keep_alive", p.keep_alive.is_some()),
            ("qos", p.qos.is_some()),
            ("subscribers", p.subscribers.is_some()),
            ("payload", p.payload.is_some()),
            ("topic", p.topic.is_some()),
            ("direct", p.direct.is_some()),
        ];
        if let Some((key, _)) = stray.iter().find(|(_, given)| *given) {
            return Err((
                at.key(key),
                "an MQTT key in an HTTP phase: add `mqtt = \"conn\"|\"sub\"|\"pub\"`".into(),
            ));
        }
        return Ok(None);
    };
    let role = match role.as_str() {
        "conn" => Role::Conn,
        "sub" => Role::Sub,
        "pub" => Role::Pub,
        other => return Err((at.key("mqtt"), format!("`{other}`: use conn, sub or pub"))),
    };
    for (key, given) in [
        ("headers", p.headers.is_some()),
        ("targets", p.targets.is_some()),
        ("timeout", p.timeout.is_some()),
    ] {
        if given {
            return Err((at.key(key), "an HTTP key in an MQTT phase".into()));
        }
    }
    if role != Role::Pub && p.rate.is_some() {
        return Err((
            at.key("rate"),
            "messages per second are for mqtt = \"pub\"; connections per second are connect_rate"
                .into(),
        ));
    }
    if role != Role::Pub && p.subscribers.is_some() {
        return Err((
            at.key("subscribers"),
            "subscribers are for mqtt = \"pub\"".into(),
        ));
    }
    let connect_rate = p.connect_rate.unwrap_or(1000.0);
    if !(connect_rate.is_finite() && connect_rate > 0.0) {
        return Err((at.key("connect_rate"), "must be a positive number".into()));
    }
    let qos = p.qos.unwrap_or(0);
    if qos > 2 {
        return Err((at.key("qos"), "0, 1 or 2".into()));
    }
    Ok(Some(MqttPhase {
        role,
        clients: count(p.clients, at.key("clients"), 10_000_000)?,
        connect_rate,
        keep_alive: p.keep_alive.unwrap_or(60),
        qos,
        subscribers: p.subscribers.unwrap_or(0),
        payload: p.payload.unwrap_or(64).max(36),
        topic: p.topic.clone().unwrap_or_else(|| "bench/%i".into()),
        direct: p.direct.unwrap_or(false),
    }))
}

fn hosts(h: &HostsFile, at: KeyPath) -> Result<Hosts, Failure> {
    if h.names.is_empty() {
        return Err((at.key("names"), "no host: name at least one".into()));
    }
    for (i, name) in h.names.iter().enumerate() {
        if !is_host_name(name) || h.names[..i].contains(name) {
            return Err((
                at.key("names").index(i),
                format!("`{name}`: a host name, once, without spaces or slashes"),
            ));
        }
    }
    let launcher: Vec<String> = h.launcher.split_whitespace().map(String::from).collect();
    if !h.launcher.contains("{host}") {
        return Err((
            at.key("launcher"),
            "name the host in it: `ssh {host}`, `ip netns exec {host}`".into(),
        ));
    }
    let collect = match &h.collect {
        Some(text) if !(text.contains("{remote}") && text.contains("{local}")) => {
            return Err((
                at.key("collect"),
                "name both files: `scp {host}:{remote} {local}`".into(),
            ))
        }
        Some(text) => Some(text.split_whitespace().map(String::from).collect()),
        None => None,
    };
    Ok(Hosts {
        names: h.names.clone(),
        launcher,
        throng: h.throng.clone(),
        results: h.results.clone(),
        collect,
        start_lead: match &h.start_lead {
            Some(text) => positive(text, at.key("start_lead"))?,
            None => Duration::from_secs(3),
        },
        monitor: h.monitor.unwrap_or(false),
    })
}

fn phase(p: &PhaseFile, at: KeyPath) -> Result<Phase, Failure> {
    let mqtt = mqtt_phase(p, &at)?;
    let needs_rate = mqtt
        .as_ref()
        .is_none_or(|m| m.role == throng_results::mqtt::Role::Pub);
    let rate = match p.rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => rate,
        Some(_) => {
            return Err((
                at.key("rate"),
                "must be a positive number per second".into(),
            ))
        }
        None if needs_rate => {
            return Err((
                at.key("rate"),
                "missing: requests (HTTP) or messages (MQTT pub) per second".into(),
            ))
        }
        None => 0.0,
    };
    let targets = match (&p.headers, &p.targets) {
        (Some(_), Some(_)) => {
            return Err((
                at.key("targets"),
                "give `headers` (one target) or `targets` (several), not both".into(),
            ))
        }
        (Some(headers), None) => vec![headers.clone()],
        (None, Some(targets)) if targets.is_empty() => {
            return Err((
                at.key("targets"),
                "no target: give at least one header set".into(),
            ))
        }
        (None, Some(targets)) => targets.clone(),
        (None, None) => vec![Vec::new()],
    };
    for (t, headers) in targets.iter().enumerate() {
        for (j, header) in headers.iter().enumerate() {
            if !header.contains(':') {
                let key = match &p.targets {
                    Some(_) => at.key("targets").index(t).index(j),
                    None => at.key("headers").index(j),
                };
                return Err((key, format!("`{header}`: expected \"Name: value\"")));
            }
        }
    }
    if let Some(pool) = &p.source {
        throng_net::source::parse_pool(pool).map_err(|e| (at.key("source"), e))?;
    }
    Ok(Phase {
        name: p.name.clone(),
        rate,
        duration: positive(&p.duration, at.key("duration"))?,
        targets,
        timeout: match &p.timeout {
            Some(t) => positive(t, at.key("timeout"))?,
            None => Duration::from_secs(30),
        },
        http2: p.http2.unwrap_or(false),
        thresholds: match &p.thresholds {
            Some(_) if mqtt.is_some() => {
                return Err((
                    at.key("thresholds"),
                    "not yet for MQTT phases (HTTP phases take them)".into(),
                ))
            }
            Some(texts) => {
                let mut thresholds = Vec::new();
                for (i, text) in texts.iter().enumerate() {
                    let threshold = throng_results::threshold::Threshold::parse(text)
                        .map_err(|e| (at.key("thresholds").index(i), e))?;
                    thresholds.push(threshold);
                }
                thresholds
            }
            None => Vec::new(),
        },
        at: match &p.at {
            Some(text) => Some(duration::parse(text).map_err(|e| (at.key("at"), e))?),
            None => None,
        },
        procs: count(p.procs, at.key("procs"), 256)?,
        threads: match p.threads {
            Some(_) => Some(count(p.threads, at.key("threads"), 1024)?),
            None => None,
        },
        source: p.source.clone(),
        hosts: p.hosts.clone().unwrap_or_default(),
        mqtt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_bad_files_are_named() {
        let scenario = parse(DEFAULT, "default").unwrap();
        assert_eq!(scenario.pong.len(), 10);
        assert_eq!(scenario.phases.len(), 3);
        let bad = "[[phase]]\nname = \"x\"\nrate = 10\nduration = \"soon\"\n";
        let err = parse(bad, "s.toml").unwrap_err();
        assert!(err.starts_with("s.toml:4: phase[0].duration"), "{err}");
        let unknown = "[pong]\nports = 3\n[[phase]]\nname = \"x\"\nrate = 1\nduration = \"1s\"\n";
        let err = parse(unknown, "s.toml").unwrap_err();
        assert!(
            err.contains("s.toml:2") && err.contains("unknown field `ports`"),
            "{err}"
        );
    }

    #[test]
    fn pong_on_hosts_names_each_host_and_its_addresses() {
        let phase = "[[phase]]\nname = \"x\"\nrate = 1\nduration = \"1s\"\n";
        let hosts = "[hosts]\nnames = [\"c1\"]\nlauncher = \"ssh {host}\"\n";
        let file = format!(
            "[pong.hosts]\nb1 = \"10.0.0.21:8282-8283\"\nb2 = \"10.0.0.22:8282\"\n{hosts}{phase}"
        );
        let scenario = parse(&file, "p.toml").unwrap();
        assert_eq!(scenario.pong.len(), 3);
        assert_eq!(scenario.pong_hosts.len(), 2);
        assert_eq!(scenario.pong_hosts[0].0, "b1");
        assert_eq!(
            scenario.pong_hosts[1].1,
            ["10.0.0.22:8282".parse().unwrap()]
        );

        let without_launcher = format!("[pong.hosts]\nb1 = \"10.0.0.21:8282\"\n{phase}");
        let err = parse(&without_launcher, "p.toml").unwrap_err();
        assert!(
            err.contains("pong.hosts: pong on hosts is started through"),
            "{err}"
        );
        let both = format!(
            "[pong]\nlisten = \"127.0.0.1:8282\"\n[pong.hosts]\nb1 = \"10.0.0.21:8282\"\n{hosts}{phase}"
        );
        let err = parse(&both, "p.toml").unwrap_err();
        assert!(err.starts_with("p.toml:2: pong.listen"), "{err}");
        let anywhere = format!("[pong.hosts]\nb1 = \"0.0.0.0:8282\"\n{hosts}{phase}");
        let err = parse(&anywhere, "p.toml").unwrap_err();
        assert!(
            err.starts_with("p.toml:2: pong.hosts.b1") && err.contains("the proxy connects"),
            "{err}"
        );
    }

    #[test]
    fn mqtt_phases_are_checked_with_their_file_line_and_key() {
        let phase = "[[phase]]\nname = \"m\"\nmqtt = \"pub\"\nrate = 100\nduration = \"1s\"\n";
        let err = parse(phase, "m.toml").unwrap_err();
        assert!(
            err.starts_with("m.toml:3: phase[0].mqtt: an MQTT phase needs brokers"),
            "{err}"
        );
        let with_brokers = format!("[mqtt]\nbrokers = \"127.0.0.1:1883-1884\"\n{phase}");
        let scenario = parse(&with_brokers, "m.toml").unwrap();
        assert_eq!(scenario.mqtt.unwrap().brokers.addresses().len(), 2);
        assert_eq!(scenario.phases[0].mqtt.as_ref().unwrap().clients, 1);
        let stray = "[[phase]]\nname = \"h\"\nrate = 1\nduration = \"1s\"\nclients = 5\n";
        let err = parse(stray, "m.toml").unwrap_err();
        assert!(
            err.starts_with("m.toml:5: phase[0].clients: an MQTT key"),
            "{err}"
        );
        let role = "[mqtt]\n[[phase]]\nname = \"m\"\nmqtt = \"subscribe\"\nduration = \"1s\"\n";
        let err = parse(role, "m.toml").unwrap_err();
        assert!(
            err.contains("phase[0].mqtt: `subscribe`: use conn, sub or pub"),
            "{err}"
        );
        let no_rate = "[mqtt]\n[[phase]]\nname = \"m\"\nmqtt = \"pub\"\nduration = \"1s\"\n";
        let err = parse(no_rate, "m.toml").unwrap_err();
        assert!(err.contains("phase[0].rate: missing"), "{err}");
        let conn_rate =
            "[mqtt]\n[[phase]]\nname = \"m\"\nmqtt = \"conn\"\nrate = 5\nduration = \"1s\"\n";
        let err = parse(conn_rate, "m.toml").unwrap_err();
        assert!(err.contains("connect_rate"), "{err}");
    }
}
