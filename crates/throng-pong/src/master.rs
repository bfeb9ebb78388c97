//! `throng pong --procs N`: N processes of the same command sharing the ports, started again
//! when one dies, stopped together, with one `/metrics` merged from theirs (each process's own
//! admin listener is on a port of 127.0.0.1 the kernel picks).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use throng_net::admin::{self, Page};
use throng_net::procs::{self, Group, Spec};
use throng_net::prometheus::{self, Value};

/// What to run: `args` is each process's command line, without an admin listener.
pub struct Master {
    pub procs: usize,
    pub args: Vec<OsString>,
    /// Where the merged metrics are served.
    pub admin: Option<SocketAddr>,
    pub grace: Duration,
}

/// Runs the processes until SIGTERM or SIGINT.
pub fn run(master: Master) -> Result<(), String> {
    let listener = master
        .admin
        .map(|addr| {
            throng_net::sockets::bind_listener(addr, throng_net::sockets::ListenOptions::default())
                .map_err(|e| format!("admin listener: {e}"))
        })
        .transpose()?;
    let mut args = master.args;
    if listener.is_some() {
        args.extend(["--admin".into(), "127.0.0.1:0".into()]);
    }
    let spec = Spec {
        name: "pong process",
        args: Box::new(move |_| args.clone()),
        ready: Some("throng pong listening on"),
        relay_stdout: false,
        stdin: None,
        own_process_group: true,
        env: Vec::new(),
    };
    let mut group = Group::start(spec, master.procs)?;
    let admins = Arc::new(Mutex::new(admin_addresses(&group)));
    // The processes' line, with the merged listener instead of the first process's own.
    let first = &group.members()[0].ready_line;
    let mut line = first
        .split(", metrics at ")
        .next()
        .unwrap_or(first)
        .trim_end_matches(')')
        .replacen(" (", &format!(" ({} processes of ", master.procs), 1);
    if let Some(addr) = listener.as_ref().and_then(|l| l.local_addr().ok()) {
        line += &format!(", metrics at http://{addr}/metrics");
    }
    println!("{line})");
    if let Some(listener) = listener {
        serve_merged(listener, Arc::clone(&admins))?;
    }
    procs::supervise(&mut group, master.grace, |group| {
        *admins.lock().unwrap_or_else(|e| e.into_inner()) = admin_addresses(group);
    });
    Ok(())
}

/// Each process's admin address, from its line: "... metrics at http://ADDR/metrics)".
fn admin_addresses(group: &Group) -> Vec<Option<SocketAddr>> {
    group
        .members()
        .iter()
        .map(|m| {
            let (_, rest) = m.ready_line.split_once("metrics at http://")?;
            rest.split_once('/')?.0.parse().ok()
        })
        .collect()
}

/// The queue delay is the longest of the processes'; everything else adds up.
fn combine(name: &str, a: Value, b: Value) -> Value {
    match name {
        "pong_queue_delay_seconds" => Value::max(a, b),
        _ => Value::sum(a, b),
    }
}

fn serve_merged(
    listener: std::net::TcpListener,
    admins: Arc<Mutex<Vec<Option<SocketAddr>>>>,
) -> Result<(), String> {
    let route = move |path: &str| match path {
        "/metrics" => {
            let addrs = admins.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let (merged, texts) = prometheus::gather(&addrs, combine);
            let answering = texts.iter().filter(|t| t.is_some()).count();
            Page {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: format!(
                    "# HELP pong_processes Processes answering.\n# TYPE pong_processes gauge\npong_processes {answering}\n{}",
                    merged.text()
                ),
            }
        }
        _ => Page::text(404, "not found: try /metrics\n"),
    };
    admin::spawn_on_thread("pong-admin", listener, Arc::new(route))
}
