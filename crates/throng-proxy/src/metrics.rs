//! What the admin listener shows: Prometheus metrics per frontend, backend and server, and a
//! small HTML page for a person.

use crate::generation::Registry;
use crate::state::{BackendState, FrontendState, Proxy, ServerState, StatusCounts};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use throng_h2::server::Flood;
use throng_net::prometheus::label_value;

/// A metric family read from one kind of state: name, type, help, and how to read it.
type Metric<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Resident memory of this process, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            self.out,
            "# HELP throng_proxy_{name} {help}\n# TYPE throng_proxy_{name} {kind}"
        );
    }
    fn sample(&mut self, name: &str, labels: &str, value: u64) {
        let _ = writeln!(self.out, "throng_proxy_{name}{{{labels}}} {value}");
    }
    /// Every family in `metrics`, one sample per labelled item.
    fn families<T>(&mut self, metrics: &[Metric<T>], items: &[(String, &T)]) {
        for (name, kind, help, get) in metrics {
            self.head(name, kind, help);
            for (labels, item) in items {
                self.sample(name, labels, get(item));
            }
        }
    }

    /// A family of responses by status class, one set per labelled item.
    fn responses(&mut self, name: &str, help: &str, items: &[(String, &StatusCounts)]) {
        self.head(name, "counter", help);
        for (labels, counts) in items {
            self.statuses(name, labels, counts);
        }
    }

    fn statuses(&mut self, name: &str, labels: &str, counts: &StatusCounts) {
        for (class, count) in CLASSES.iter().zip(&counts.0) {
            self.sample(
                name,
                &format!("{labels},code=\"{class}\""),
                count.load(Relaxed),
            );
        }
    }
}

pub fn render(proxy: &Proxy, generations: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let mut m = Family { out: &mut out };
    render_generations(&mut m, proxy, generations);
    m.head(
        "connections",
        "gauge",
        "Client connections open in the process.",
    );
    let _ = writeln!(
        m.out,
        "throng_proxy_connections {}",
        proxy.process.connections.load(Relaxed)
    );
    m.head(
        "max_connections",
        "gauge",
        "The most client connections the process accepts (maxconn).",
    );
    let _ = writeln!(
        m.out,
        "throng_proxy_max_connections {}",
        proxy.process.maxconn()
    );
    m.head(
        "resident_memory_bytes",
        "gauge",
        "Resident memory of the proxy process.",
    );
    let _ = writeln!(
        m.out,
        "throng_proxy_resident_memory_bytes {}",
        resident_bytes().unwrap_or(0)
    );
    m.head(
        "over_memory_budget",
        "gauge",
        "1 while resident memory is above global.memory_budget and nothing new is accepted.",
    );
    let _ = writeln!(
        m.out,
        "throng_proxy_over_memory_budget {}",
        proxy.process.over_budget.load(Relaxed) as u8
    );
    m.head(
        "log_lines_dropped_total",
        "counter",
        "Access log lines dropped because the log output fell behind.",
    );
    let _ = writeln!(
        m.out,
        "throng_proxy_log_lines_dropped_total {}",
        proxy.log.dropped.load(Relaxed)
    );
    m.head(
        "log_lines_written_total",
        "counter",
        "Access log lines written.",
    );
    let _ = writeln!(
        m.out,
        "throng_proxy_log_lines_written_total {}",
        proxy.log.written.load(Relaxed)
    );

    let frontends: Vec<(String, &FrontendState)> = proxy
        .config
        .frontends
        .iter()
        .zip(&proxy.frontends)
        .map(|(config, state)| (format!("frontend=\"{}\"", label_value(&config.name)), state))
        .collect();
    let per_frontend: [Metric<FrontendState>; 26] = [
        (
            "frontend_current_sessions",
            "gauge",
            "Client connections open.",
            |f| f.current.load(Relaxed),
        ),
        (
            "frontend_sessions_total",
            "counter",
            "Client connections accepted.",
            |f| f.total.load(Relaxed),
        ),
        (
            "frontend_requests_total",
            "counter",
            "HTTP requests received.",
            |f| f.requests.load(Relaxed),
        ),
        (
            "frontend_bytes_in_total",
            "counter",
            "Bytes received from clients.",
            |f| f.bytes_in.load(Relaxed),
        ),
        (
            "frontend_bytes_out_total",
            "counter",
            "Bytes sent to clients.",
            |f| f.bytes_out.load(Relaxed),
        ),
        (
            "frontend_bad_requests_total",
            "counter",
            "Requests refused as malformed, ambiguous or too large (400, 414, 431, 501).",
            |f| f.bad_requests.load(Relaxed),
        ),
        (
            "frontend_request_timeouts_total",
            "counter",
            "Requests not received within timeout http-request (408).",
            |f| f.request_timeouts.load(Relaxed),
        ),
        (
            "frontend_tls_handshakes_total",
            "counter",
            "TLS handshakes completed.",
            |f| f.tls_handshakes.load(Relaxed),
        ),
        (
            "frontend_tls_failures_total",
            "counter",
            "TLS handshakes failed or timed out.",
            |f| f.tls_failures.load(Relaxed),
        ),
        (
            "frontend_tls_refusals_total",
            "counter",
            "TLS connections given up after the handshake for a record or message refused.",
            |f| f.tls_refusals.load(Relaxed),
        ),
        (
            "frontend_mqtt_refusals_total",
            "counter",
            "Mode mqtt: connections closed before a server for a first packet that is not a valid CONNECT, or none in time.",
            |f| f.mqtt_refusals.load(Relaxed),
        ),
        (
            "frontend_rate_limited_total",
            "counter",
            "Times accepting waited for rate_limit_sessions.",
            |f| f.rate_limited.load(Relaxed),
        ),
        (
            "frontend_h2_connections_total",
            "counter",
            "HTTP/2 connections (ALPN h2, or h2c by prior knowledge).",
            |f| f.h2_connections.load(Relaxed),
        ),
        (
            "frontend_h2_streams_total",
            "counter",
            "HTTP/2 streams that carried a request.",
            |f| f.h2_streams.load(Relaxed),
        ),
        (
            "frontend_h2_stream_refusals_total",
            "counter",
            "HTTP/2 requests refused on their stream (malformed, past the stream limit, CONNECT) or streams reset for what the client sent.",
            |f| f.h2_stream_refusals.load(Relaxed),
        ),
        (
            "frontend_h2_connection_errors_total",
            "counter",
            "HTTP/2 connections closed for a protocol error (GOAWAY with its code).",
            |f| f.h2_connection_errors.load(Relaxed),
        ),
        (
            "frontend_h2_flood_resets_total",
            "counter",
            "HTTP/2 connections closed (ENHANCE_YOUR_CALM) for too many streams reset per second (Rapid Reset, MadeYouReset).",
            |f| f.h2_floods[Flood::Resets as usize].load(Relaxed),
        ),
        (
            "frontend_h2_flood_settings_total",
            "counter",
            "HTTP/2 connections closed for too many SETTINGS per second.",
            |f| f.h2_floods[Flood::Settings as usize].load(Relaxed),
        ),
        (
            "frontend_h2_flood_pings_total",
            "counter",
            "HTTP/2 connections closed for too many PINGs per second.",
            |f| f.h2_floods[Flood::Pings as usize].load(Relaxed),
        ),
        (
            "frontend_h2_flood_ignored_frames_total",
            "counter",
            "HTTP/2 connections closed for too many PRIORITY or unknown frames per second.",
            |f| f.h2_floods[Flood::Ignored as usize].load(Relaxed),
        ),
        (
            "frontend_h2_flood_window_updates_total",
            "counter",
            "HTTP/2 connections closed for too many WINDOW_UPDATEs per second.",
            |f| f.h2_floods[Flood::WindowUpdates as usize].load(Relaxed),
        ),
        (
            "frontend_h2_flood_empty_data_total",
            "counter",
            "HTTP/2 connections closed for too many empty DATA frames per second.",
            |f| f.h2_floods[Flood::EmptyData as usize].load(Relaxed),
        ),
        (
            "frontend_h2_flood_continuations_total",
            "counter",
            "HTTP/2 connections closed for too many CONTINUATION frames in one header block.",
            |f| f.h2_floods[Flood::Continuations as usize].load(Relaxed),
        ),
        (
            "frontend_h2_flood_header_block_total",
            "counter",
            "HTTP/2 connections closed for a header block over its byte limit.",
            |f| f.h2_floods[Flood::HeaderBlock as usize].load(Relaxed),
        ),
        (
            "frontend_proxy_header_refusals_total",
            "counter",
            "accept_proxy: connections closed for a missing, malformed or late PROXY protocol header.",
            |f| f.proxy_header_refusals.load(Relaxed),
        ),
        (
            "frontend_limit_waits_total",
            "counter",
            "Times accepting paused at maxconn or the memory budget.",
            |f| f.limit_waits.load(Relaxed),
        ),
    ];
    m.families(&per_frontend, &frontends);
    let responses: Vec<_> = frontends
        .iter()
        .map(|(l, f)| (l.clone(), &f.responses))
        .collect();
    m.responses(
        "frontend_responses_total",
        "Responses sent to clients, by status class.",
        &responses,
    );

    let backends: Vec<(String, &BackendState)> = proxy
        .config
        .backends
        .iter()
        .zip(&proxy.backends)
        .map(|(config, state)| (format!("backend=\"{}\"", label_value(&config.name)), state))
        .collect();
    let servers: Vec<(String, &ServerState)> = proxy
        .config
        .backends
        .iter()
        .zip(&proxy.backends)
        .flat_map(|(config, state)| {
            state.live().map(move |(_, s, server)| {
                let labels = format!(
                    "backend=\"{}\",server=\"{}\"",
                    label_value(&config.name),
                    label_value(&server.name)
                );
                (labels, s)
            })
        })
        .collect();
    let per_backend: [Metric<BackendState>; 10] = [
        (
            "backend_current_sessions",
            "gauge",
            "Requests or connections using a server.",
            |b| b.current.load(Relaxed),
        ),
        (
            "backend_sessions_total",
            "counter",
            "Requests or connections given a server.",
            |b| b.total.load(Relaxed),
        ),
        (
            "backend_queue_current",
            "gauge",
            "Requests waiting for a server slot.",
            |b| b.queued.load(Relaxed) as u64,
        ),
        (
            "backend_queue_max",
            "gauge",
            "The longest the queue has been.",
            |b| b.queue_max.load(Relaxed) as u64,
        ),
        (
            "backend_servers_up",
            "gauge",
            "Servers passing their health checks.",
            |b| b.servers_up() as u64,
        ),
        (
            "backend_no_server_total",
            "counter",
            "503: no server up, or none could be connected to.",
            |b| b.no_server.load(Relaxed),
        ),
        (
            "backend_queue_timeouts_total",
            "counter",
            "503: waited timeout queue for a slot.",
            |b| b.queue_timeouts.load(Relaxed),
        ),
        (
            "backend_retries_total",
            "counter",
            "Connection attempts retried.",
            |b| b.retries.load(Relaxed),
        ),
        (
            "backend_redispatches_total",
            "counter",
            "Retries sent to another server.",
            |b| b.redispatches.load(Relaxed),
        ),
        (
            "backend_bytes_out_total",
            "counter",
            "Bytes from servers to clients.",
            |b| b.bytes_out.load(Relaxed),
        ),
    ];
    m.families(&per_backend, &backends);
    let responses: Vec<_> = backends
        .iter()
        .map(|(l, b)| (l.clone(), &b.responses))
        .collect();
    m.responses(
        "backend_responses_total",
        "Responses from the backend's servers (and its 503s), by status class.",
        &responses,
    );

    let per_server: [Metric<ServerState>; 15] = [
        (
            "server_up",
            "gauge",
            "1 when the server passes its health checks (or has none).",
            |s| s.up.load(Relaxed) as u64,
        ),
        (
            "server_admin_state",
            "gauge",
            "What the operator set: 0 ready, 1 drain (no new connections), 2 maint (out, not checked).",
            |s| s.admin_state() as u64,
        ),
        (
            "server_weight",
            "gauge",
            "The weight in use (the configuration's, or a runtime command's).",
            |s| s.weight() as u64,
        ),
        (
            "server_current_sessions",
            "gauge",
            "Requests or connections on the server now.",
            |s| s.active.load(Relaxed) as u64,
        ),
        (
            "server_sessions_total",
            "counter",
            "Requests or connections sent to the server.",
            |s| s.total.load(Relaxed),
        ),
        (
            "server_bytes_in_total",
            "counter",
            "Bytes sent to the server.",
            |s| s.bytes_in.load(Relaxed),
        ),
        (
            "server_bytes_out_total",
            "counter",
            "Bytes received from the server.",
            |s| s.bytes_out.load(Relaxed),
        ),
        (
            "server_connect_failures_total",
            "counter",
            "Connections to the server that failed.",
            |s| s.connect_failures.load(Relaxed),
        ),
        (
            "server_response_failures_total",
            "counter",
            "Responses that never came or were not HTTP (502).",
            |s| s.response_failures.load(Relaxed),
        ),
        (
            "server_timeouts_total",
            "counter",
            "Responses not started within timeout server (504).",
            |s| s.timeouts.load(Relaxed),
        ),
        (
            "server_check_failures_total",
            "counter",
            "Failed health checks.",
            |s| s.check_failures.load(Relaxed),
        ),
        (
            "server_went_down_total",
            "counter",
            "Times health checks took the server out.",
            |s| s.went_down.load(Relaxed),
        ),
        (
            "server_tls_handshakes_total",
            "counter",
            "TLS handshakes with the server that succeeded.",
            |s| s.tls_handshakes.load(Relaxed),
        ),
        (
            "server_tls_resumed_total",
            "counter",
            "TLS handshakes with the server that resumed a session.",
            |s| s.tls_resumed.load(Relaxed),
        ),
        (
            "server_tls_failures_total",
            "counter",
            "TLS handshakes with the server that failed (verification, refusal, timeout).",
            |s| s.tls_failures.load(Relaxed),
        ),
    ];
    m.families(&per_server, &servers);
    let responses: Vec<_> = servers
        .iter()
        .map(|(l, s)| (l.clone(), &s.responses))
        .collect();
    m.responses(
        "server_responses_total",
        "Responses from the server, by status class.",
        &responses,
    );
    out
}

/// The generations alive: the serving one's number, reloads, and each one's phase, age and
/// connections.
fn render_generations(m: &mut Family, proxy: &Proxy, generations: &Registry) {
    let process: [(&str, &str, &str, u64); 3] = [
        (
            "generation",
            "gauge",
            "The serving generation: 1 at start, one more per reload.",
            proxy.generation as u64,
        ),
        (
            "reloads_total",
            "counter",
            "Reloads that started a new generation.",
            generations.reloads.load(Relaxed),
        ),
        (
            "reload_failures_total",
            "counter",
            "Reloads refused (a configuration that does not check, a bind that fails): nothing changed.",
            generations.reload_failures.load(Relaxed),
        ),
    ];
    for (name, kind, help, value) in process {
        m.head(name, kind, help);
        let _ = writeln!(m.out, "throng_proxy_{name} {value}");
    }
    let all = generations.all();
    let per_generation: [Metric<Proxy>; 3] = [
        (
            "generation_connections",
            "gauge",
            "Client connections each generation alive holds.",
            |g| g.open_connections(),
        ),
        (
            "generation_age_seconds",
            "gauge",
            "Seconds since each generation alive began serving.",
            |g| g.started.elapsed().as_secs(),
        ),
        (
            "generation_closed_total",
            "counter",
            "Connections a generation closed itself after hard_stop_after, at close_rate.",
            |g| g.closed_by_stop.load(Relaxed),
        ),
    ];
    for (name, kind, help, get) in per_generation {
        m.head(name, kind, help);
        for g in &all {
            let labels = format!(
                "phase=\"{}\",generation=\"{}\"",
                g.current_phase().name(),
                g.generation
            );
            m.sample(name, &labels, get(g));
        }
    }
}

/// A page a person can read: every frontend, backend and server with its state and counts.
pub fn stats_page(proxy: &Proxy, generations: &Registry) -> String {
    let mut html = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>throng proxy</title><meta http-equiv=\"refresh\" content=\"5\"><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#eee}td:first-child{text-align:left}.down{background:#fcc}.up{background:#cfc}</style></head><body>");
    let _ = write!(
        html,
        "<h1>throng proxy</h1><p>{} connections open of {} (maxconn); resident memory {} MiB{}</p>",
        proxy.process.connections.load(Relaxed),
        proxy.process.maxconn(),
        resident_bytes().unwrap_or(0) >> 20,
        if proxy.process.over_budget.load(Relaxed) {
            " <b>over the memory budget: not accepting</b>"
        } else {
            ""
        }
    );
    html.push_str("<h2>Generations</h2><table><tr><th>generation</th><th>phase</th><th>age (s)</th><th>connections</th><th>closed by the proxy</th></tr>");
    for g in generations.all().iter().rev() {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            g.generation,
            g.current_phase().name(),
            g.started.elapsed().as_secs(),
            g.open_connections(),
            g.closed_by_stop.load(Relaxed)
        );
    }
    let _ = write!(
        html,
        "</table><p>{} reloads, {} refused; the counters below are the serving generation's (they start again at each reload).</p>",
        generations.reloads.load(Relaxed),
        generations.reload_failures.load(Relaxed)
    );
    html.push_str("<h2>Frontends</h2><table><tr><th>name</th><th>mode</th><th>sessions now</th><th>sessions</th><th>requests</th><th>2xx</th><th>4xx</th><th>5xx</th><th>TLS handshakes</th><th>TLS failures</th><th>bytes in</th><th>bytes out</th></tr>");
    for (f, s) in proxy.config.frontends.iter().zip(&proxy.frontends) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.name), f.mode.name(), s.current.load(Relaxed), s.total.load(Relaxed), s.requests.load(Relaxed),
            s.responses.0[1].load(Relaxed), s.responses.0[3].load(Relaxed), s.responses.0[4].load(Relaxed),
            s.tls_handshakes.load(Relaxed), s.tls_failures.load(Relaxed), s.bytes_in.load(Relaxed), s.bytes_out.load(Relaxed)
        );
    }
    html.push_str("</table>");
    for (b, s) in proxy.config.backends.iter().zip(&proxy.backends) {
        let _ = write!(
            html,
            "<h2>Backend {} ({}, {:?})</h2><p>{} of {} servers up; queue {} (max {}); 503 no server {}; queue timeouts {}; retries {}</p><table><tr><th>server</th><th>address</th><th>state</th><th>weight</th><th>now</th><th>maxconn</th><th>total</th><th>2xx</th><th>5xx</th><th>connect failures</th><th>502</th><th>504</th><th>check failures</th></tr>",
            escape(&b.name), b.mode.name(), b.balance, s.servers_up(), s.live().count(), s.queued.load(Relaxed), s.queue_max.load(Relaxed),
            s.no_server.load(Relaxed), s.queue_timeouts.load(Relaxed), s.retries.load(Relaxed)
        );
        for (_, st, server) in s.live() {
            let up = st.up.load(Relaxed);
            let state = match (up, st.admin_state()) {
                (_, crate::state::AdminState::Maint) => "MAINT",
                (true, crate::state::AdminState::Drain) => "DRAIN",
                (true, _) => "UP",
                (false, _) => "DOWN",
            };
            let _ = write!(
                html,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if st.usable() { "up" } else { "down" }, escape(&server.name), server.address, state, st.weight(),
                st.active.load(Relaxed), server.maxconn.map_or("-".to_string(), |m| m.to_string()), st.total.load(Relaxed),
                st.responses.0[1].load(Relaxed), st.responses.0[4].load(Relaxed), st.connect_failures.load(Relaxed),
                st.response_failures.load(Relaxed), st.timeouts.load(Relaxed), st.check_failures.load(Relaxed)
            );
        }
        html.push_str("</table>");
    }
    html.push_str("<p><a href=\"/metrics\">Prometheus metrics</a></p></body></html>\n");
    html
}

/// Text made safe to put in HTML (the stats pages of a worker and of the master).
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
