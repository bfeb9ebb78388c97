//! `global.processes = N`: this process becomes the master of N worker processes, each a
//! `throng proxy` of the same configuration with its own threads, sharing the listening ports
//! through `SO_REUSEPORT` (HAProxy's old `nbproc`; here, the way past the open-files limit of
//! one process). The master restarts a worker that dies, stops them all on SIGTERM/SIGINT, and
//! serves the admin listener: one `/metrics` and one stats page merged from the workers' own
//! admin listeners (each on a port of 127.0.0.1 that the kernel picks).
//!
//! `global.maxconn` and `global.memory_budget` hold per process, as they did under `nbproc`.

mod merge;

use crate::config::Config;
use merge::int;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use throng_net::admin::{self, Page};
use throng_net::procs::{Group, Spec};
use throng_net::prometheus::{self, Merged};

/// What the master knows of a worker, for the admin pages.
#[derive(Clone, Debug, Default)]
struct WorkerInfo {
    pid: u32,
    restarts: u32,
    admin: Option<SocketAddr>,
}

/// Runs the master until SIGTERM or SIGINT. `worker_args(i)` is the command line of worker `i`
/// (this same binary, told to be a worker). On SIGHUP the master checks the file (`reread`)
/// and, when it is good, passes the signal on: each worker reloads (see
/// [`crate::generation`]); a file that does not check changes nothing anywhere.
pub fn run(
    config: Config,
    reread: crate::generation::Reread,
    worker_args: impl Fn(usize) -> Vec<OsString> + Send + 'static,
) -> Result<(), String> {
    crate::privileges::keep_secrets_in();
    crate::upgrade::prepare();
    for warning in &config.warnings {
        tracing::warn!("{}: {warning}", config.source);
    }
    // Sockets are handed to a single process, not to a master (its workers bind their own):
    // any an old single process handed over (an upgrade to more processes) are closed here,
    // not left to the workers, in whose SO_REUSEPORT group nobody would accept on them. The
    // workers count their generations from 1.
    drop(crate::listeners::Listeners::inherited()?);
    let _ = crate::upgrade::first_generation();
    let processes = config.global.processes;
    let workers = Arc::new(Mutex::new(vec![WorkerInfo::default(); processes]));
    let retiring = Arc::new(AtomicBool::new(false));
    let handover = Arc::new(Mutex::new(None));
    let access = Arc::new(Mutex::new(Access::of(&config)));
    // Before any worker starts: from here on SIGHUP reloads rather than kills.
    watch_reloads(
        reread,
        Arc::clone(&workers),
        Arc::clone(&access),
        Arc::clone(&retiring),
        Arc::clone(&handover),
    )?;
    let admin_listener = crate::server::bind_admin(&config)?;
    let admin_socket = crate::ctl::socket::bind_configured(&config)?;
    let mut secret = [0u8; 16];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no randomness for the workers' token")?;
    let worker_token = Arc::new(throng_net::hex::encode(&secret));
    let spec = Spec {
        name: "proxy worker",
        args: Box::new(worker_args),
        ready: Some("throng proxy listening"),
        relay_stdout: true,
        // One set of session-ticket secrets for all, so that any worker resumes any client's
        // session; a worker started again gets the secrets that hold then (after a rotation).
        stdin: Some(Arc::new(|| {
            crate::tickets::shared()
                .map(|secrets| crate::tickets::to_line(&secrets))
                .unwrap_or_default()
        })),
        own_process_group: true,
        env: vec![(WORKER_TOKEN, worker_token.to_string())],
    };
    let mut group = Group::start(spec, processes)?;
    note_workers(&group, &workers);
    announce(&config, &group, admin_listener.as_ref());

    // A copy kept to hand to a new master, which answers on it from then on.
    let admin_copy = admin_listener.as_ref().and_then(|l| l.try_clone().ok());
    let listeners = [
        admin_listener.map(admin::Listener::Tcp),
        crate::ctl::socket::listener(admin_socket.as_ref()).map(admin::Listener::Socket),
    ];
    let admin = Admin {
        workers: Arc::clone(&workers),
        access: Arc::clone(&access),
        worker_token,
    };
    let admin_stop = spawn_admin(listeners, admin, config.global.admin_limits)?;
    let socket_fd = admin_socket.as_ref().map(crate::ctl::socket::descriptor);
    *handover.lock().unwrap_or_else(|e| e.into_inner()) = Some(Handover {
        admin: admin_copy,
        socket: socket_fd,
        admin_stop,
    });
    let grace = config.global.grace;
    throng_net::procs::supervise_until(&mut group, grace, &retiring, |group| {
        note_workers(group, &workers)
    });
    if retiring.load(Relaxed) {
        tracing::info!("the last worker of this master has ended; the new master serves");
    } else {
        crate::upgrade::remove_pidfile(config.global.pidfile.as_deref());
        if let Some(socket) = &admin_socket {
            socket.remove();
        }
    }
    Ok(())
}

/// The environment variable that gives a worker the token its master's commands carry: a
/// worker's admin listener is on loopback, where any local user could reach it.
pub const WORKER_TOKEN: &str = "THRONG_PROXY_WORKER_TOKEN";

/// What the master's guards read, replaced at each reload of the file.
struct Access {
    admin_token: Option<String>,
    stats_auth: Option<String>,
}

impl Access {
    fn of(config: &Config) -> Access {
        Access {
            admin_token: config.global.admin_token.clone(),
            stats_auth: config.global.stats_auth.clone(),
        }
    }
}

/// What the master's admin listeners answer with.
struct Admin {
    workers: Arc<Mutex<Vec<WorkerInfo>>>,
    access: Arc<Mutex<Access>>,
    worker_token: Arc<String>,
}

/// SIGHUP: the file checked here, then passed on to every worker. SIGUSR2: a new master from
/// the binary at this one's path; once its workers are ready, this master's workers stop
/// accepting (SIGUSR2 to them) and end with their last connection, and so does this master.
fn watch_reloads(
    reread: crate::generation::Reread,
    workers: Arc<Mutex<Vec<WorkerInfo>>>,
    access: Arc<Mutex<Access>>,
    retiring: Arc<AtomicBool>,
    handover: Arc<Mutex<Option<Handover>>>,
) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (mut hup, mut usr2) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::hangup())?,
                signal(SignalKind::user_defined2())?,
            ))
        })
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    std::thread::Builder::new()
        .name("proxy-reloads".into())
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    tokio::select! {
                        _ = hup.recv() => pass_reload(&reread, &workers, &access),
                        _ = usr2.recv() => hand_over(&workers, &retiring, &handover),
                    }
                }
            })
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the reload thread: {e}"))
}

/// What a master hands to a new one: its admin listener and socket (and how to stop
/// answering on them).
struct Handover {
    admin: Option<std::net::TcpListener>,
    socket: Option<std::os::fd::RawFd>,
    admin_stop: Option<admin::Stop>,
}

fn hand_over(
    workers: &Mutex<Vec<WorkerInfo>>,
    retiring: &AtomicBool,
    handover: &Mutex<Option<Handover>>,
) {
    if retiring.load(Relaxed) {
        tracing::info!("SIGUSR2: this master has handed over already");
        return;
    }
    let Some(mine) = handover.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        tracing::info!("SIGUSR2: the workers are still starting; signal again once they serve");
        return;
    };
    let key = crate::tickets::shared();
    let admin_fd = mine.admin.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    // The new master's workers bind the same ports (SO_REUSEPORT) before it says it is ready.
    let successor = crate::upgrade::Successor {
        inherit: "",
        fds: &[],
        admin: crate::upgrade::Admin {
            listener: admin_fd,
            socket: mine.socket,
        },
        key: key.as_ref(),
        generation: 1,
    };
    match crate::upgrade::start_successor(&successor) {
        Err(why) => {
            *handover.lock().unwrap_or_else(|e| e.into_inner()) = Some(mine);
            tracing::error!("upgrade failed: {why}; this master and its workers keep serving")
        }
        Ok(pid) => {
            retiring.store(true, Relaxed);
            if let Some(stop) = mine.admin_stop {
                stop.stop();
            }
            let pids: Vec<u32> = workers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|w| w.pid)
                .collect();
            let queues = match crate::upgrade::migrates_accept_queues() {
                Some(true) => "connections waiting in their accept queues move to the new workers (net.ipv4.tcp_migrate_req = 1)",
                _ => "connections waiting in their accept queues at that moment are reset: set net.ipv4.tcp_migrate_req = 1 to have the kernel move them",
            };
            tracing::info!(
                "upgrade: the new master serves (pid {pid}); this master's {} workers stop accepting and end with their last connection; {queues}",
                pids.len()
            );
            for pid in pids.into_iter().filter(|&pid| pid > 0) {
                // SAFETY: kill(2) on a worker this master started.
                unsafe { libc::kill(pid as i32, libc::SIGUSR2) };
            }
        }
    }
}

fn pass_reload(
    reread: &crate::generation::Reread,
    workers: &Mutex<Vec<WorkerInfo>>,
    access: &Mutex<Access>,
) {
    match reread() {
        Err(why) => {
            tracing::error!("reload refused: {why}; the workers keep serving, nothing changed")
        }
        Ok(config) => {
            *access.lock().unwrap_or_else(|e| e.into_inner()) = Access::of(&config);
            let pids: Vec<u32> = workers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|w| w.pid)
                .filter(|&pid| pid > 0)
                .collect();
            tracing::info!(
                "reload: {} checks; passing it on to {} workers",
                config.source,
                pids.len()
            );
            for pid in pids {
                // SAFETY: kill(2) on a worker this master started.
                unsafe { libc::kill(pid as i32, libc::SIGHUP) };
            }
        }
    }
}

fn note_workers(group: &Group, workers: &Mutex<Vec<WorkerInfo>>) {
    let mut workers = workers.lock().unwrap_or_else(|e| e.into_inner());
    for (info, member) in workers.iter_mut().zip(group.members()) {
        *info = WorkerInfo {
            pid: member.pid,
            restarts: member.restarts,
            admin: admin_address(&member.ready_line),
        };
    }
}

/// The admin address in a worker's ready line: "... stats at http://ADDR/stats)".
fn admin_address(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("stats at http://")?;
    rest.split_once('/')?.0.parse().ok()
}

/// The master's line on stdout, in the workers' words: what listens, and the totals.
fn announce(config: &Config, group: &Group, admin: Option<&std::net::TcpListener>) {
    let first = group
        .members()
        .first()
        .map_or("", |m| m.ready_line.as_str());
    let listening = first
        .strip_prefix("throng proxy listening: ")
        .and_then(|rest| rest.rsplit_once(" (").map(|(what, _)| what))
        .unwrap_or("");
    let maxconn: u64 = group
        .members()
        .iter()
        .filter_map(|m| {
            let (_, rest) = m.ready_line.split_once("maxconn ")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let mut line = format!(
        "throng proxy listening: {listening} ({} processes of {} threads, maxconn {maxconn} in all",
        config.global.processes, config.global.threads
    );
    if let Some(addr) = admin.and_then(|a| a.local_addr().ok()) {
        line += &format!(", stats at http://{addr}/stats");
    }
    line += ")";
    crate::upgrade::announce_ready(&line, config.global.pidfile.as_deref());
}

/// The admin listener and socket, on a thread of their own: the merged pages, and runtime
/// commands passed on to every worker, behind the same guards as a single process's.
fn spawn_admin(
    listeners: [Option<admin::Listener>; 2],
    admin: Admin,
    limits: admin::AdminLimits,
) -> Result<Option<admin::Stop>, String> {
    let listeners: Vec<admin::Listener> = listeners.into_iter().flatten().collect();
    if listeners.is_empty() {
        return Ok(None);
    }
    let handler = Arc::new(move |request: &admin::Request<'_>| {
        let access = admin.access.lock().unwrap_or_else(|e| e.into_inner());
        let (token, stats_auth) = (access.admin_token.clone(), access.stats_auth.clone());
        drop(access);
        match (request.method, request.path) {
            ("POST", "/ctl") => match crate::ctl::guard::command(request, token.as_deref()) {
                Ok(()) => pass_command(request, &admin.workers, &admin.worker_token),
                Err(refused) => {
                    tracing::warn!(
                        "admin: {} asked `{}`: refused ({}): {}",
                        request.peer,
                        crate::ctl::said(request.body),
                        refused.status,
                        crate::ctl::said(refused.body.as_bytes())
                    );
                    refused
                }
            },
            (_, "/ctl") => Page::text(405, "POST a command to /ctl\n"),
            ("GET" | "HEAD", path) => match crate::ctl::guard::page(request, stats_auth.as_deref())
            {
                Ok(()) => route(path, &admin.workers),
                Err(refused) => {
                    tracing::warn!(
                        "admin: {} asked for {path}: refused ({})",
                        request.peer,
                        refused.status
                    );
                    refused
                }
            },
            _ => Page::text(405, "only GET and HEAD, or POST /ctl\n"),
        }
    });
    admin::spawn_handler_on_thread("proxy-admin", listeners, handler, limits).map(Some)
}

/// A runtime command, passed on to each worker's admin listener with the workers' token: their
/// answers, one line each (a `show` command: the first worker's, as they all run the same
/// configuration).
fn pass_command(
    request: &admin::Request<'_>,
    workers: &Mutex<Vec<WorkerInfo>>,
    worker_token: &str,
) -> Page {
    let workers = workers.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let line = std::str::from_utf8(request.body).unwrap_or_default();
    let showing = line.trim_start().starts_with("show");
    // A rotation: one secret for every worker (the master's choice when the operator gave
    // none), and the master's own, for a worker it starts again.
    let mut body = request.body.to_vec();
    if let Ok(crate::ctl::command::Command::RotateTickets { secret }) =
        crate::ctl::command::parse(line)
    {
        let secret = match secret {
            Some(secret) => secret,
            None => match crate::tickets::new_key() {
                Ok(secret) => secret,
                Err(e) => return Page::text(500, format!("{e}\n")),
            },
        };
        body = format!("rotate tickets {}", throng_net::hex::encode(&secret[..])).into_bytes();
        crate::tickets::rotate(secret);
    }
    let authorization = format!("Bearer {worker_token}");
    let mut worst = 200;
    let mut text = String::new();
    for (index, worker) in workers.iter().enumerate() {
        let answer = match worker.admin {
            Some(addr) => post(addr, &body, authorization.as_bytes()),
            None => Err("no admin listener".to_string()),
        };
        let (status, body) = answer.unwrap_or_else(|e| (502, format!("{e}\n")));
        worst = worst.max(status);
        if showing && status < 300 {
            return Page::text(status, body);
        }
        text += &format!("worker {index} (pid {}): {body}", worker.pid);
    }
    tracing::info!(
        "admin: {} asked `{}`: passed to {} workers ({worst})",
        request.peer,
        crate::ctl::said(request.body),
        workers.len()
    );
    Page::text(worst, text)
}

/// `POST /ctl` to a worker: its status and body.
fn post(addr: SocketAddr, body: &[u8], authorization: &[u8]) -> Result<(u16, String), String> {
    let timeout = std::time::Duration::from_secs(60);
    admin::request(addr, "POST", "/ctl", body, Some(authorization), timeout)
}

fn route(path: &str, workers: &Mutex<Vec<WorkerInfo>>) -> Page {
    let workers = workers.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let restarts = workers.iter().map(|w| w.restarts).sum();
    match path {
        "/metrics" => Page {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: merged_metrics(&workers, restarts).0,
        },
        "/" | "/stats" => Page {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: stats_page(&workers, restarts),
        },
        _ => Page::text(404, "not found: try /stats or /metrics\n"),
    }
}

/// Every worker's metrics (fetched at once), merged, with the master's own; and each worker's
/// own text for the stats page (`None` where it did not answer).
fn merged_metrics(workers: &[WorkerInfo], restarts: u32) -> (String, Merged, Vec<Option<String>>) {
    let addrs: Vec<Option<SocketAddr>> = workers.iter().map(|w| w.admin).collect();
    let (merged, texts) = prometheus::gather(&addrs, merge::combine);
    let answering = texts.iter().filter(|t| t.is_some()).count();
    let mut out = format!(
        "# HELP throng_proxy_processes Worker processes answering the master.\n# TYPE throng_proxy_processes gauge\nthrong_proxy_processes {answering}\n\
         # HELP throng_proxy_process_restarts_total Worker processes started again after they ended.\n# TYPE throng_proxy_process_restarts_total counter\nthrong_proxy_process_restarts_total {restarts}\n"
    );
    out.push_str(&merged.text());
    (out, merged, texts)
}

fn stats_page(workers: &[WorkerInfo], restarts: u32) -> String {
    let (_, merged, texts) = merged_metrics(workers, restarts);
    let total = |name: &str| int(&merged, name);
    let mut html = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>throng proxy</title><meta http-equiv=\"refresh\" content=\"5\"><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#eee}td:first-child{text-align:left}.down{background:#fcc}</style></head><body>");
    html += &format!(
        "<h1>throng proxy: {} processes</h1><p>{} connections open of {} (maxconn, all processes); resident memory {} MiB in all; {restarts} restarts</p>",
        workers.len(),
        total("throng_proxy_connections"),
        total("throng_proxy_max_connections"),
        total("throng_proxy_resident_memory_bytes") >> 20,
    );
    html.push_str("<h2>processes</h2><table><tr><th>process</th><th>pid</th><th>state</th><th>restarts</th><th>connections</th><th>resident MiB</th></tr>");
    for (index, (worker, text)) in workers.iter().zip(&texts).enumerate() {
        let mut one = Merged::new(merge::combine);
        if let Some(text) = text {
            one.add(text);
        }
        let value = |name: &str| one.get(name).map_or("-".to_string(), |v| v.to_string());
        let state = if text.is_some() {
            "up"
        } else {
            "not answering"
        };
        html += &format!(
            "<tr{}><td>{index}</td><td>{}</td><td>{state}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if text.is_some() { "" } else { " class=\"down\"" },
            worker.pid,
            worker.restarts,
            value("throng_proxy_connections"),
            one.get("throng_proxy_resident_memory_bytes")
                .map_or("-".to_string(), |v| (v.as_f64() as u64 >> 20).to_string()),
        );
    }
    html.push_str("</table>");
    html.push_str(&merge::tables_html(&merged));
    html.push_str(
        "<p>Counters are summed over the processes; a server is up where every process sees it \
         up.</p><p><a href=\"/metrics\">Prometheus metrics</a></p></body></html>\n",
    );
    html
}
