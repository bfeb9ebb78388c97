//! The access log: one line per session (per request in HTTP mode), in HAProxy's `httplog` and
//! `tcplog` formats or as JSON. Sessions hand entries to a writer thread through a bounded queue
//! and never wait for it: a full log does not slow the proxy; a line that does not fit is
//! counted and reported.

mod format;

use crate::config::{LogFormat, LogTarget, Mode};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Entries waiting for the writer at most; beyond, entries are dropped and counted. The queue
/// takes memory only for what waits: a channel bounded up front would set aside room for all of
/// them in every process (about 20 MB, 68 times over in a 500,000-connection run).
const QUEUE: usize = 64 * 1024;

/// What HAProxy logs about a session.
#[derive(Clone, Debug)]
pub struct Entry {
    pub mode: Mode,
    pub client: SocketAddr,
    /// When the connection was accepted (the request began, for later requests of a keep-alive
    /// connection).
    pub accepted: SystemTime,
    pub frontend: Arc<str>,
    pub tls: bool,
    pub backend: Option<Arc<str>>,
    /// `<NOSRV>` when none was reached.
    pub server: Option<Arc<str>>,
    /// The backend and server by index, for the counts taken when the line is logged.
    pub backend_index: Option<usize>,
    pub server_index: Option<usize>,
    /// Tq (Tq is HTTP only), Tw, Tc, Tr: `None` logs as -1, the step was never reached.
    pub t_request: Option<Duration>,
    pub t_queue: Option<Duration>,
    pub t_connect: Option<Duration>,
    pub t_response: Option<Duration>,
    pub t_total: Duration,
    /// `None` when nothing was answered.
    pub status: Option<u16>,
    /// Bytes sent to the client (HAProxy's bytes_read: read from the server side).
    pub bytes_to_client: u64,
    pub bytes_from_client: u64,
    /// Two characters: who or what ended the session, and in which state.
    pub termination: [u8; 2],
    pub actconn: u64,
    pub feconn: u64,
    pub beconn: u64,
    pub srv_conn: u64,
    pub retries: u32,
    pub srv_queue: u32,
    pub backend_queue: u32,
    /// The request line (HTTP), cut at 1 KiB.
    pub request: String,
    /// Mode mqtt: what the client's CONNECT said.
    pub mqtt: Option<Box<MqttConnect>>,
}

/// A CONNECT's fields for the log line: the client id and user name cut at 256 bytes (they
/// come from the client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttConnect {
    pub client_id: String,
    pub username: Option<String>,
    pub version: &'static str,
    pub keep_alive: u16,
}

impl MqttConnect {
    pub fn of(connect: &throng_mqtt::Connect<'_>) -> MqttConnect {
        let cut = |text: &str| {
            let mut end = text.len().min(256);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.get(..end).unwrap_or_default().to_string()
        };
        MqttConnect {
            client_id: cut(connect.client_id),
            username: connect.username.map(cut),
            version: connect.version.name(),
            keep_alive: connect.keep_alive,
        }
    }
}

/// Where sessions send entries.
#[derive(Clone)]
pub struct Sink {
    queue: Option<Sender<Entry>>,
    /// Entries sent and not yet taken by the writer.
    pending: Arc<AtomicUsize>,
    pub dropped: Arc<AtomicU64>,
    pub written: Arc<AtomicU64>,
}

impl Sink {
    /// Starts the writer thread for `target`.
    pub fn start(target: &LogTarget, format: LogFormat) -> Result<Sink, String> {
        let dropped = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let Some(output) = Output::open(target)? else {
            return Ok(Sink {
                queue: None,
                pending: Arc::default(),
                dropped,
                written,
            });
        };
        let (tx, rx) = channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let counts = (Arc::clone(&dropped), Arc::clone(&written));
        let taken = Arc::clone(&pending);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, &taken, output, format, counts))
            .map_err(|e| format!("cannot start the log writer: {e}"))?;
        Ok(Sink {
            queue: Some(tx),
            pending,
            dropped,
            written,
        })
    }

    pub fn send(&self, entry: Entry) {
        let Some(queue) = &self.queue else { return };
        if self.pending.fetch_add(1, Relaxed) >= QUEUE {
            self.pending.fetch_sub(1, Relaxed);
            self.dropped.fetch_add(1, Relaxed);
        } else if queue.send(entry).is_err() {
            self.pending.fetch_sub(1, Relaxed);
        }
    }
}

enum Output {
    Stream(Box<dyn Write + Send>),
    Syslog(std::net::UdpSocket, SocketAddr),
}

impl Output {
    /// Where lines go; `None` for a log that is off.
    fn open(target: &LogTarget) -> Result<Option<Output>, String> {
        Ok(Some(match target {
            LogTarget::Stdout => Output::Stream(Box::new(std::io::stdout())),
            LogTarget::Stderr => Output::Stream(Box::new(std::io::stderr())),
            LogTarget::File(path) => Output::Stream(Box::new(
                crate::privileges::create_file(path, 0o640, true)
                    .map_err(|e| format!("log file {}: {e}", path.display()))?,
            )),
            LogTarget::Syslog(addr) => {
                let bind: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().unwrap_or(*addr)
                } else {
                    "[::]:0".parse().unwrap_or(*addr)
                };
                let socket =
                    std::net::UdpSocket::bind(bind).map_err(|e| format!("syslog socket: {e}"))?;
                Output::Syslog(socket, *addr)
            }
            LogTarget::Off => return Ok(None),
        }))
    }
}

fn write_lines(
    rx: Receiver<Entry>,
    pending: &AtomicUsize,
    output: Output,
    format: LogFormat,
    (dropped, written): (Arc<AtomicU64>, Arc<AtomicU64>),
) {
    let mut reported_dropped = 0;
    match output {
        Output::Stream(stream) => {
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, stream);
            let mut line = String::with_capacity(512);
            while let Ok(first) = rx.recv() {
                // Write what is queued in one go, then flush: lines appear promptly, in batches.
                for entry in std::iter::once(first).chain(rx.try_iter()) {
                    pending.fetch_sub(1, Relaxed);
                    line.clear();
                    format::line(&mut line, &entry, format);
                    line.push('\n');
                    if out.write_all(line.as_bytes()).is_err() {
                        return;
                    }
                    written.fetch_add(1, Relaxed);
                }
                let _ = out.flush();
                reported_dropped = report_dropped(&dropped, reported_dropped);
            }
        }
        Output::Syslog(socket, addr) => {
            let pid = std::process::id();
            let mut line = String::with_capacity(512);
            while let Ok(entry) = rx.recv() {
                pending.fetch_sub(1, Relaxed);
                line.clear();
                format::syslog_prefix(&mut line, &entry, pid);
                format::line(&mut line, &entry, format);
                let _ = socket.send_to(line.as_bytes(), addr);
                written.fetch_add(1, Relaxed);
                reported_dropped = report_dropped(&dropped, reported_dropped);
            }
        }
    }
}

fn report_dropped(dropped: &AtomicU64, reported: u64) -> u64 {
    let now = dropped.load(Relaxed);
    if now > reported {
        tracing::warn!(
            "{} access log lines dropped: the log output is slower than the traffic ({} in all)",
            now - reported,
            now
        );
    }
    now
}
