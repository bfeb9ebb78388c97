//! Health checks: each checked server is tried every `interval` (a TCP connect, or an HTTP
//! `GET` wanting 2xx/3xx); `fall` failures in a row take it out, `rise` successes bring it back.
//! Changes are logged as HAProxy logs them.

use crate::config::{Check, CheckKind, Server};
use crate::server_stream::{self, ServerStream, Unsecured};
use crate::state::{AdminState, Phase, Place, Proxy};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use throng_http1::{self as http1, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{info, warn};

/// Starts a task per checked server on the current runtime.
pub fn start(proxy: &Arc<Proxy>) {
    for b in 0..proxy.backends.len() {
        let live: Vec<usize> = proxy.backends[b].live().map(|(s, _, _)| s).collect();
        for s in live {
            start_one(proxy, b, s);
        }
    }
}

/// Starts checking the server in slot `s` of backend `b`, if its backend checks and it is
/// checked (a server added at run time too); the check ends with the slot's server.
pub fn start_one(proxy: &Arc<Proxy>, b: usize, s: usize) {
    let Some(check) = &proxy.config.backends[b].check else {
        return;
    };
    let slot = &proxy.backends[b].servers[s];
    if slot.spec().is_some_and(|spec| spec.checked) {
        let epoch = slot.epoch.load(Relaxed);
        tokio::spawn(watch(Arc::clone(proxy), b, s, epoch, check.clone()));
    }
}

async fn watch(proxy: Arc<Proxy>, b: usize, s: usize, epoch: u32, check: Check) {
    let backend = &proxy.config.backends[b];
    let state = &proxy.backends[b].servers[s];
    // Spread the first checks over the interval, so that servers are not all tried at once.
    let offset = throng_net::random::up_to(check.interval.as_millis() as u64);
    tokio::time::sleep(Duration::from_millis(offset)).await;
    let (mut successes, mut failures) = (0u32, 0u32);
    // A generation that stops serving stops checking (what it still holds is relayed already,
    // or ends soon), and lets its state go; so does a server removed at run time.
    let holds_it = || state.place() == Place::Live && state.epoch.load(Relaxed) == epoch;
    while proxy.current_phase() == Phase::Serving && holds_it() {
        let began = Instant::now();
        let Some(server) = state.spec() else {
            return;
        };
        if state.admin_state() == AdminState::Maint {
            // In maintenance: not checked, as HAProxy's `maint`.
            tokio::time::sleep_until(began + check.interval).await;
            continue;
        }
        let result =
            tokio::time::timeout(check.timeout, probe(&server, &check.kind, check.timeout))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "timeout check ({})",
                        throng_net::duration::format(check.timeout)
                    ))
                });
        let took = began.elapsed().as_millis();
        // The slot may have changed hands, or its server its address, while the probe ran:
        // its result is for a server that is no longer there.
        let same_address = state
            .spec()
            .is_some_and(|now| now.address == server.address);
        if !holds_it() || !same_address {
            if holds_it() {
                (successes, failures) = (0, 0);
                continue;
            }
            return;
        }
        let up = state.up.load(Relaxed);
        match result {
            Ok(()) => {
                failures = 0;
                successes += 1;
                if !up && successes >= check.rise {
                    state.up.store(true, Relaxed);
                    info!(
                        "Server {}/{} is UP, reason: check passed, check duration: {took}ms. {} active servers online.",
                        backend.name, server.name, proxy.backends[b].servers_up()
                    );
                }
            }
            Err(reason) => {
                successes = 0;
                failures += 1;
                state.check_failures.fetch_add(1, Relaxed);
                if up && failures >= check.fall {
                    state.up.store(false, Relaxed);
                    state.went_down.fetch_add(1, Relaxed);
                    let left = proxy.backends[b].servers_up();
                    warn!(
                        "Server {}/{} is DOWN, reason: {reason}, check duration: {took}ms. {left} active servers left.",
                        backend.name, server.name
                    );
                    if left == 0 {
                        warn!("backend {} has no server available!", backend.name);
                    }
                }
            }
        }
        tokio::time::sleep_until(began + check.interval).await;
    }
}

/// One check of `server`: a connection (with its TLS, as requests make it), and for an HTTP
/// check a `GET` whose status must be 2xx or 3xx. The error is HAProxy's wording of the reason.
async fn probe(server: &Server, kind: &CheckKind, limit: Duration) -> Result<(), String> {
    let socket = TcpStream::connect(server.address)
        .await
        .map_err(|e| format!("Layer4 connection problem: {e}"))?;
    let mut stream = match &server.tls {
        None => ServerStream::Plain(socket),
        Some(tls) => match server_stream::secure(socket, tls, server.address, limit).await {
            Ok((stream, _)) => stream,
            Err(Unsecured::Refused(reason)) => {
                return Err(format!(
                    "Layer6 invalid response: TLS handshake failed: {reason}"
                ))
            }
            Err(Unsecured::Timeout) => return Err("Layer6 timeout: TLS handshake".into()),
        },
    };
    let CheckKind::Http { path, host } = kind else {
        return Ok(());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: throng-health-check\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("Layer7 write: {e}"))?;
    let limits = Limits {
        max_head_bytes: 4096,
        max_headers: 64,
    };
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() >= limits.max_head_bytes {
            return Err("Layer7 invalid response: head too large".into());
        }
        let n = (&mut stream)
            .take((limits.max_head_bytes - buf.len()) as u64)
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("Layer7 read: {e}"))?;
        if n == 0 {
            return Err("Layer7 invalid response: closed before a status".into());
        }
        let mut slots = http1::header_slots();
        match http1::parse_response(&buf, &mut slots, &limits, false) {
            Ok(Some(head)) if (200..400).contains(&head.status) => return Ok(()),
            Ok(Some(head)) => return Err(format!("Layer7 wrong status: {}", head.status)),
            Ok(None) => {}
            Err(e) => return Err(format!("Layer7 invalid response: {e}")),
        }
    }
}
