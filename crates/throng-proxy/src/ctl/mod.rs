//! The runtime API: `POST /ctl` with one command (see [`command`]), without a reload, on the
//! admin socket ([`socket`]) or, with `admin_token`, on the TCP admin listener; [`guard`]
//! says who may ask what. `throng proxy ctl` is its command-line client.
//!
//! Every change is made in place, as HAProxy's runtime API makes it: no generation starts, no
//! thread, and no established connection is touched. Server states (`ready`, `drain`, `maint`),
//! weights and addresses change in every generation alive; `del server` takes a server out of
//! the rotation at once while its connections go on; `add server` takes one of the backend's
//! spare slots ([`crate::state::SPARE_SLOTS`]); `set cert` serves the next handshakes. Every
//! change is logged with who asked for it, and is lost on the next reload of the file (the log
//! lists what the file replaced): the file stays the one truth; write a change to it to keep
//! it.

pub mod command;
pub(crate) mod guard;
pub mod socket;

use crate::certs;
use crate::config::{Config, Server};
use crate::generation::Manager;
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
                        said(page.body.as_bytes())
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

/// A command's bytes as a log line may carry them: one line, control characters escaped, no
/// secret.
pub(crate) fn said(body: &[u8]) -> String {
    command::redacted(&String::from_utf8_lossy(body))
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
    let words = command::redacted(line);
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
    // Every change is made in place: no generation starts, no thread, and no connection is
    // touched. States, weights, addresses and removals hold in every generation alive (an old
    // one's requests in progress may still pick a server); additions and certificates in the
    // serving one, the only one that accepts.
    let everywhere = || manager.registry.all();
    match command {
        Command::ShowServers { backend } => show_servers(serving, backend.as_deref()),
        Command::ShowChanges => Ok(if manager.changes.is_empty() {
            "no runtime changes since the file was read\n".to_string()
        } else {
            manager.changes.iter().map(|c| format!("{c}\n")).collect()
        }),
        Command::SetState { server, state } => {
            locate(serving, server)?;
            for proxy in everywhere() {
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
            for proxy in everywhere() {
                if let Ok((b, s)) = locate(&proxy, server) {
                    proxy.backends[b].set_weight(s, *weight);
                }
            }
            Ok(format!("{server}: weight {weight}\n"))
        }
        Command::SetAddr { server, address } => {
            locate(serving, server)?;
            for proxy in everywhere() {
                if let Ok((b, s)) = locate(&proxy, server) {
                    proxy.backends[b].set_address(s, *address);
                }
            }
            Ok(format!(
                "{server}: new connections go to {address}; those it has stay where they are\n"
            ))
        }
        Command::AddServer {
            server,
            address,
            weight,
            maxconn,
        } => {
            let b = backend_index(serving, &server.backend)?;
            let (config, state) = (&serving.config.backends[b], &serving.backends[b]);
            if state.find(&server.server).is_some() {
                return Err((409, format!("{server} exists already")));
            }
            let servers: usize = serving.backends.iter().map(|b| b.live().count()).sum();
            if servers >= crate::config::MAX_SERVERS {
                return Err((
                    507,
                    format!(
                        "{} servers already: the most a configuration may have",
                        crate::config::MAX_SERVERS
                    ),
                ));
            }
            let added = state.add(Server {
                name: server.server.as_str().into(),
                address: *address,
                weight: *weight,
                maxconn: *maxconn,
                checked: config.check.is_some(),
                send_proxy: None,
                // The backend's TLS, with a session cache of the server's own.
                tls: config
                    .tls
                    .as_ref()
                    .map(crate::config::ServerTls::own_sessions),
            });
            let Some(slot) = added else {
                return Err((
                    507,
                    format!(
                        "backend {} has no room for another server until a reload ({} more than its file names, while removed ones still have connections): add it to the file and reload",
                        server.backend,
                        crate::state::SPARE_SLOTS
                    ),
                ));
            };
            crate::health::start_one(serving, b, slot);
            let tls = match &config.tls {
                Some(tls) => format!(
                    ", over the backend's TLS ({})",
                    tls.sni.as_ref().map_or_else(
                        || "its address as the name checked".to_string(),
                        |name| format!("sni {}", name.to_str())
                    )
                ),
                None => String::new(),
            };
            Ok(format!(
                "{server} at {address} added{tls}: it takes new connections now\n"
            ))
        }
        Command::DelServer { server } => {
            let (b, _) = locate(serving, server)?;
            if serving.backends[b].live().count() == 1 {
                return Err((
                    409,
                    format!("{server} is the last server of its backend: set it maint instead"),
                ));
            }
            let mut holding = 0;
            for proxy in everywhere() {
                if let Ok((b, s)) = locate(&proxy, server) {
                    let slot = &proxy.backends[b].servers[s];
                    holding += slot.active.load(std::sync::atomic::Ordering::Relaxed);
                    proxy.backends[b].remove(s);
                }
            }
            Ok(format!(
                "{server} removed: no new connections; its {holding} connections go on until they end\n"
            ))
        }
        Command::RotateTickets { secret } => {
            let secret = match secret {
                Some(secret) => secret.clone(),
                None => crate::tickets::new_key().map_err(|e| (500, e))?,
            };
            crate::tickets::rotate(secret);
            info!("admin: the session-ticket secret was rotated");
            Ok("ticket secret rotated: new tickets are sealed under it; those of the one before still resume until the next rotation\n".to_string())
        }
        Command::SetCert {
            frontend,
            cert,
            key,
        } => {
            let base = base_dir(&serving.config);
            let Some(f) = serving
                .config
                .frontends
                .iter()
                .position(|f| *f.name == **frontend)
            else {
                return Err((404, format!("no frontend {frontend}")));
            };
            let state = &serving.frontends[f];
            let Some(tls) = state.tls() else {
                return Err((409, format!("frontend {frontend} has no TLS")));
            };
            let (cert, key) = (base.join(cert), base.join(key));
            let replaced = certs::with_certificate(&tls, &cert, &key).map_err(|e| (400, e))?;
            state.set_tls(replaced);
            Ok(format!(
                "frontend {frontend}: {} serves the next handshakes; connections keep theirs\n",
                cert.display()
            ))
        }
    }
}

fn backend_index(proxy: &Proxy, name: &str) -> Result<usize, (u16, String)> {
    proxy
        .config
        .backends
        .iter()
        .position(|b| *b.name == *name)
        .ok_or_else(|| (404, format!("no backend {name}")))
}

/// Backend index and server slot of `server` in `proxy`.
fn locate(proxy: &Proxy, server: &ServerRef) -> Result<(usize, usize), (u16, String)> {
    let b = backend_index(proxy, &server.backend)?;
    let s = proxy.backends[b]
        .find(&server.server)
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
    use crate::state::Place;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::from("backend/server address check state weight active total\n");
    let mut found = false;
    for (backend, state) in proxy.config.backends.iter().zip(&proxy.backends) {
        if only.is_some_and(|name| *backend.name != *name) {
            continue;
        }
        found = true;
        for s in &state.servers {
            // A removed server is listed while connections still use it.
            let shown = match s.place() {
                Place::Live => s.admin_state().name(),
                Place::Removed if s.active.load(Relaxed) > 0 => "removed",
                _ => continue,
            };
            let Some(server) = s.spec() else { continue };
            let _ = writeln!(
                out,
                "{}/{} {} {} {} {} {} {}",
                backend.name,
                server.name,
                server.address,
                if s.up.load(Relaxed) { "UP" } else { "DOWN" },
                shown,
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
