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
    phase: Vec<PhaseFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PongFile {
    listen: Option<String>,
    threads: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyFile {
    listen: Option<String>,
    threads: Option<usize>,
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
    rate: f64,
    duration: String,
    #[serde(default)]
    headers: Vec<String>,
    timeout: Option<String>,
}

/// A checked scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub pong: Vec<SocketAddr>,
    pub pong_threads: usize,
    pub proxy: Proxy,
    pub monitor_interval: Duration,
    pub phases: Vec<Phase>,
}

#[derive(Clone, Debug)]
pub enum Proxy {
    /// throng proxy with TLS on `listen`, started by the scenario.
    Throng { listen: SocketAddr, threads: usize },
    /// A proxy already running at `address`.
    External { address: SocketAddr, tls: bool },
}

#[derive(Clone, Debug)]
pub struct Phase {
    pub name: String,
    pub rate: f64,
    pub duration: Duration,
    pub headers: Vec<String>,
    pub timeout: Duration,
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

fn build(file: File) -> Result<Scenario, Failure> {
    let root = KeyPath::default();
    let pong_spec = file.pong.listen.as_deref().unwrap_or("127.0.0.1:8282-8291");
    let pong = listen::parse(pong_spec).map_err(|e| (root.key("pong").key("listen"), e))?;
    let threads = |t: Option<usize>, at: KeyPath| match t {
        Some(0) => Err((at, "must be at least 1".to_string())),
        Some(n) => Ok(n),
        None => Ok(1),
    };
    let pong_threads = threads(file.pong.threads, root.key("pong").key("threads"))?;
    let at = root.key("proxy");
    let proxy = match &file.proxy.external {
        Some(address) => Proxy::External {
            address: address.parse().map_err(|_| {
                (
                    at.key("external"),
                    format!("`{address}` is not an address:port"),
                )
            })?,
            tls: file.proxy.tls.unwrap_or(true),
        },
        None => {
            let spec = file.proxy.listen.as_deref().unwrap_or("127.0.0.1:8443");
            Proxy::Throng {
                listen: spec
                    .parse()
                    .map_err(|_| (at.key("listen"), format!("`{spec}` is not an address:port")))?,
                threads: threads(file.proxy.threads, at.key("threads"))?,
            }
        }
    };
    let monitor_interval = match &file.monitor.interval {
        Some(text) => positive(text, root.key("monitor").key("interval"))?,
        None => Duration::from_secs(1),
    };
    let mut phases = Vec::new();
    for (i, p) in file.phase.iter().enumerate() {
        let at = root.key("phase").index(i);
        if !(p.rate.is_finite() && p.rate > 0.0) {
            return Err((
                at.key("rate"),
                "must be a positive number of requests per second".into(),
            ));
        }
        for (j, header) in p.headers.iter().enumerate() {
            if !header.contains(':') {
                return Err((
                    at.key("headers").index(j),
                    format!("`{header}`: expected \"Name: value\""),
                ));
            }
        }
        phases.push(Phase {
            name: p.name.clone(),
            rate: p.rate,
            duration: positive(&p.duration, at.key("duration"))?,
            headers: p.headers.clone(),
            timeout: match &p.timeout {
                Some(t) => positive(t, at.key("timeout"))?,
                None => Duration::from_secs(30),
            },
        });
    }
    if phases.is_empty() {
        return Err((root, "no phase: add [[phase]] tables".into()));
    }
    Ok(Scenario {
        pong,
        pong_threads,
        proxy,
        monitor_interval,
        phases,
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
}
