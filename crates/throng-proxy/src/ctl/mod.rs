//! The runtime API: `POST /ctl` with one command (see [`command`]), without a reload, on the
//! admin socket ([`socket`]) or, with `admin_token`, on the TCP admin listener; [`guard`]
//! says who may ask what. `throng proxy ctl` is its command-line client.
//!
//! Server states (`ready`, `drain`, `maint`) and weights change in place, in every generation
//! alive. Adding or removing a server and replacing a certificate start a new generation on the
//! serving one's configuration so changed (what a reload does, without reading the file): the
//! old generation keeps its connections (a removed server's end at their own pace, or at
//! `hard_stop_after`), and the new one takes over states and weights. Every change is logged
//! with who asked for it, and is lost on the next reload of the file (the log lists what the
//! file replaced): the file stays the one truth; write a change to it to keep it.

pub mod command;
pub(crate) mod guard;
pub mod socket;

use crate::certs;
use crate::config::{Config, Server};
use crate::generation::{next_generation, Carry, Manager};
use crate::state::Proxy;
use command::{Command, ServerRef};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use throng_net::admin::{Handler, Page, Request};
use tracing::{info, warn};

/// The admin listeners' handler: pages for GET, commands for `POST /ctl`.
pub(crate) fn handler(manager: Arc<Mutex<Manager>>) -> Handler {
    Arc::new(move |request: &Request<'_>| {
        let mut manager = manager.lock().unwrap_or_else(|e| e.into_inner());
        let Some(serving) = manager.serving() else {
            return Page::text(503, "stopping\n");
        };
        let global = &serving.config.global;
        match (request.method, request.path) {
            ("POST", "/ctl") => {
                let page = guard::command(request, global.admin_token.as_deref()).map_or_else(
                    |refused| refused,
                    |()| answer(&mut manager, &serving, request),
                );
                if page.status >= 400 {
                    warn!(
                        "admin: {} asked `{}`: refused ({}): {}",
                        request.peer,
                        said(request.body),
                        page.status,
                        page.body.trim()
                    );
                }
                page
            }
            (_, "/ctl") => Page::text(405, "POST a command to /ctl\n"),
            ("GET" | "HEAD", path) => match guard::page(request, global.stats_auth.as_deref()) {
                Ok(()) => crate::server::route(path, &serving, &manager.registry),
                Err(refused) => {
                    warn!(
                        "admin: {} asked for {path}: refused ({})",
                        request.peer, refused.status
                    );
                    refused
                }
            },
            _ => Page::text(405, "only GET and HEAD, or POST /ctl\n"),
        }
    })
}

/// A command's bytes as a log line may carry them: one line, control characters escaped.
pub(crate) fn said(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .trim()
        .escape_debug()
        .to_string()
}

fn answer(manager: &mut Manager, serving: &Arc<Proxy>, request: &Request<'_>) -> Page {
    let Ok(line) = std::str::from_utf8(request.body) else {
        return Page::text(400, "a command is text (UTF-8)\n");
    };
    let command = match command::parse(line) {
        Ok(command) => command,
        Err(why) => return Page::text(400, format!("{why}\n{}", command::USAGE)),
    };
    let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
    match execute(manager, serving, &command) {
        Ok(text) => {
            if command.changes() {
                info!(
                    "admin: {} asked `{}`: done",
                    request.peer,
                    words.escape_debug()
                );
                manager.changes.push(words);
            }
            Page::text(200, text)
        }
        Err((status, why)) => Page::text(status, format!("{why}\n")),
    }
}

type Outcome = Result<String, (u16, String)>;

fn execute(manager: &mut Manager, serving: &Arc<Proxy>, command: &Command) -> Outcome {
    match command {
        Command::ShowServers { backend } => show_servers(serving, backend.as_deref()),
        Command::ShowChanges => Ok(if manager.changes.is_empty() {
            "no runtime changes since the file was read\n".to_string()
        } else {
            manager.changes.iter().map(|c| format!("{c}\n")).collect()
        }),
        Command::SetState { server, state } => {
            locate(serving, server)?;
            for proxy in manager.registry.all() {
                if let Ok((b, s)) = locate(&proxy, server) {
                    proxy.backends[b].servers[s]
                        .admin
                        .store(*state as u8, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Ok(format!("{server}: {}\n", state.name()))
        }
        Command::SetWeight { server, weight } => {
            locate(serving, server)?;
            for proxy in manager.registry.all() {
                if let Ok((b, s)) = locate(&proxy, server) {
                    proxy.backends[b].set_weight(s, *weight);
                }
            }
            Ok(format!("{server}: weight {weight}\n"))
        }
        Command::AddServer {
            server,
            address,
            weight,
            maxconn,
        } => {
            let mut config = serving.config.clone();
            let backend = backend_of(&mut config, &server.backend)?;
            if backend.servers.iter().any(|s| *s.name == *server.server) {
                return Err((409, format!("{server} exists already")));
            }
            backend.servers.push(Server {
                name: server.server.as_str().into(),
                address: *address,
                weight: *weight,
                maxconn: *maxconn,
                checked: backend.check.is_some(),
                send_proxy: None,
            });
            let number = start(manager, config)?;
            Ok(format!(
                "{server} at {address} added: generation {number} serves with it\n"
            ))
        }
        Command::DelServer { server } => {
            let mut config = serving.config.clone();
            let backend = backend_of(&mut config, &server.backend)?;
            let Some(at) = backend
                .servers
                .iter()
                .position(|s| *s.name == *server.server)
            else {
                return Err((404, format!("no server {server}")));
            };
            if backend.servers.len() == 1 {
                return Err((
                    409,
                    format!("{server} is the last server of its backend: set it maint instead"),
                ));
            }
            backend.servers.remove(at);
            let number = start(manager, config)?;
            Ok(format!(
                "{server} removed: generation {number} serves without it; its connections stay with the generations that have them\n"
            ))
        }
        Command::SetCert {
            frontend,
            cert,
            key,
        } => {
            let mut config = serving.config.clone();
            let base = base_dir(&config);
            let Some(target) = config.frontends.iter_mut().find(|f| *f.name == **frontend) else {
                return Err((404, format!("no frontend {frontend}")));
            };
            let Some(tls) = &target.tls else {
                return Err((409, format!("frontend {frontend} has no TLS")));
            };
            let (cert, key) = (base.join(cert), base.join(key));
            let replaced = certs::with_certificate(tls, &cert, &key).map_err(|e| (400, e))?;
            target.tls = Some(replaced);
            let number = start(manager, config)?;
            Ok(format!(
                "frontend {frontend}: {} serves from generation {number}\n",
                cert.display()
            ))
        }
    }
}

/// A runtime change's generation: the serving configuration changed, states carried over.
fn start(manager: &mut Manager, config: Config) -> Result<u32, (u16, String)> {
    next_generation(manager, config, Carry::Everything).map_err(|e| (500, e))
}

fn backend_of<'c>(
    config: &'c mut Config,
    name: &str,
) -> Result<&'c mut crate::config::Backend, (u16, String)> {
    config
        .backends
        .iter_mut()
        .find(|b| *b.name == *name)
        .ok_or_else(|| (404, format!("no backend {name}")))
}

/// Backend and server indices of `server` in `proxy`.
fn locate(proxy: &Proxy, server: &ServerRef) -> Result<(usize, usize), (u16, String)> {
    let b = proxy
        .config
        .backends
        .iter()
        .position(|b| *b.name == *server.backend)
        .ok_or_else(|| (404, format!("no backend {}", server.backend)))?;
    let s = proxy.config.backends[b]
        .servers
        .iter()
        .position(|s| *s.name == *server.server)
        .ok_or_else(|| (404, format!("no server {server}")))?;
    Ok((b, s))
}

/// Where relative paths in commands start: the configuration file's directory.
fn base_dir(config: &Config) -> std::path::PathBuf {
    std::path::Path::new(&config.source)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| ".".into(), |p| p.to_path_buf())
}

fn show_servers(proxy: &Proxy, only: Option<&str>) -> Outcome {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::from("backend/server address check state weight active total\n");
    let mut found = false;
    for (backend, state) in proxy.config.backends.iter().zip(&proxy.backends) {
        if only.is_some_and(|name| *backend.name != *name) {
            continue;
        }
        found = true;
        for (server, s) in backend.servers.iter().zip(&state.servers) {
            let _ = writeln!(
                out,
                "{}/{} {} {} {} {} {} {}",
                backend.name,
                server.name,
                server.address,
                if s.up.load(Relaxed) { "UP" } else { "DOWN" },
                s.admin_state().name(),
                s.weight(),
                s.active.load(Relaxed),
                s.total.load(Relaxed)
            );
        }
    }
    match (found, only) {
        (false, Some(name)) => Err((404, format!("no backend {name}"))),
        _ => Ok(out),
    }
}
