//! The proxy's configuration: read from TOML, checked whole, and turned into what the proxy runs.
//! Every error names the file, the line and the key.

mod build;
mod file;
mod h2;
pub mod locate;
mod server_tls;

pub use build::DEFAULT_CONFIG;
pub(crate) use build::MAX_SERVERS;
use locate::KeyPath;
use rustls::ServerConfig;
pub use server_tls::ServerTls;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A whole, checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from, for messages.
    pub source: String,
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
    /// What is valid but worth saying (`--check` prints them, the proxy logs them at start).
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Global {
    /// Worker processes sharing the listening ports (each with `threads` threads); more than
    /// one makes this process their master.
    pub processes: usize,
    pub threads: usize,
    /// Client connections in each process; `None` means "what the open-files limit allows".
    pub maxconn: Option<u64>,
    /// Resident memory (of each process) above which no new connection is accepted.
    pub memory_budget: Option<u64>,
    pub grace: Duration,
    pub admin: Option<SocketAddr>,
    /// What `POST /ctl` on the admin listener must carry (`Authorization: Bearer TOKEN`);
    /// without it, runtime commands come only through the admin socket.
    pub admin_token: Option<String>,
    /// The runtime API on a Unix socket, whose file permissions say who may use it.
    pub admin_socket: Option<AdminSocket>,
    /// Connections the admin listeners take at once, and each one's time.
    pub admin_limits: throng_net::admin::AdminLimits,
    /// `USER:PASSWORD` that the pages (`/stats`, `/metrics`) of the TCP admin listener ask for
    /// (HTTP Basic, as HAProxy's `stats auth`).
    pub stats_auth: Option<String>,
    /// Who the process becomes once its listeners are bound, its keys read and its admin socket
    /// made (HAProxy's `user` and `group`); a master stays root to start its workers.
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub log: LogTarget,
    pub log_format: LogFormat,
    /// Where the process writes its pid (the master's, with `processes`), for `throng proxy
    /// reload` and init systems.
    pub pidfile: Option<PathBuf>,
    pub reload: ReloadLimits,
}

/// `global.admin_socket`: where the runtime API's Unix socket is made, and who may use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSocket {
    pub path: PathBuf,
    /// Given as `auto`: the path depends on who reads the file (a process that dropped root
    /// works out another), so a socket handed over by an upgrade is kept wherever it is.
    pub auto: bool,
    /// `global.user`: who the proxy becomes, whose folder and stale socket it may take over.
    pub runs_as: Option<u32>,
    /// Permission bits of the socket file (0600 unless set).
    pub mode: u32,
    pub user: Option<u32>,
    pub group: Option<u32>,
}

/// How the generations a reload or an upgrade leaves behind end.
#[derive(Clone, Copy, Debug)]
pub struct ReloadLimits {
    /// How long an old generation may keep its connections (HAProxy's `hard-stop-after`);
    /// `None`: until they end by themselves.
    pub hard_stop_after: Option<Duration>,
    /// Connections closed per second (per process) once `hard_stop_after` has passed, so that
    /// their clients do not all come back at once.
    pub close_rate: u64,
    /// Generations alive together at most, the serving one included.
    pub max_generations: usize,
    /// What a reload (or a runtime change) beyond `max_generations` does.
    pub at_max_generations: AtMaxGenerations,
}

/// `at_max_generations`: a reload that would pass `max_generations` is refused (logged and
/// counted, nothing changes, no connection is cut), or, when the operator chose it, the oldest
/// generation closes what it holds at `close_rate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtMaxGenerations {
    Refuse,
    CloseOldest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    Stderr,
    File(PathBuf),
    /// RFC 3164 lines over UDP, as HAProxy sends them.
    Syslog(SocketAddr),
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// HAProxy's `httplog` / `tcplog` lines.
    Haproxy,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Http,
    Tcp,
    /// TCP relaying after the client's CONNECT, read and checked first.
    Mqtt,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
            Mode::Mqtt => "mqtt",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Frontend {
    /// Shared, not copied: every log line of every request names it.
    pub name: Arc<str>,
    pub binds: Vec<SocketAddr>,
    pub mode: Mode,
    pub maxconn: Option<u64>,
    pub tls: Option<Arc<ServerConfig>>,
    pub timeouts: FrontendTimeouts,
    pub default_backend: Option<usize>,
    pub routes: Vec<Route>,
    pub forwardfor: bool,
    pub forwarded: bool,
    /// Mode mqtt: the largest CONNECT packet read (its remaining length), in bytes.
    pub mqtt_max_connect: usize,
    /// New connections accepted per second at most (each worker process takes its share).
    pub rate_limit_sessions: Option<u64>,
    /// Who sends a PROXY protocol header (a load balancer in front), whose client address is
    /// then the connection's.
    pub accept_proxy: crate::proxy_protocol::Senders,
    /// A plain frontend that serves HTTP/2 to a client opening with its preface (h2c by prior
    /// knowledge), and HTTP/1.1 to the others.
    pub h2c: bool,
    /// What each HTTP/2 client connection is held to (`[frontends.NAME.h2]`).
    pub h2: throng_h2::server::Limits,
}

#[derive(Clone, Copy, Debug)]
pub struct FrontendTimeouts {
    /// Inactivity of the client while it is expected to send or receive.
    pub client: Duration,
    /// The time to receive a whole request head (slowloris ends here).
    pub http_request: Duration,
    /// Idle time between requests of a keep-alive connection.
    pub http_keep_alive: Duration,
    /// The time to complete a TLS handshake.
    pub handshake: Duration,
    /// Whether `client` was set, not defaulted: mode mqtt then defaults it to 1.5 times the
    /// keep-alive the client asks for, as a broker does (MQTT §3.1.2.10).
    pub client_given: bool,
    /// Mode mqtt: the time to receive the whole CONNECT packet.
    pub mqtt_connect: Duration,
    /// Mode mqtt: the ceiling on the idle time a client's keep-alive asks for (the operator's,
    /// not the client's, choice).
    pub mqtt_max_idle: Duration,
}

#[derive(Clone, Debug)]
pub struct Route {
    /// Lower case, without a port.
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub backend: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConn,
    /// A hash of the client's address: the same client goes to the same server while it is up.
    Source,
    /// Power of two random choices: the less loaded of two servers picked at random.
    Random,
    /// Mode mqtt: a consistent hash of the CONNECT's client id (rendezvous hashing by server
    /// name), so a client id reaches the same server on every reconnection and adding a server
    /// moves only the ids it now wins. An empty id is balanced by `balance_fallback`.
    ClientId,
}

#[derive(Clone, Debug)]
pub struct Backend {
    /// Shared, not copied: every log line of every request names it.
    pub name: Arc<str>,
    pub mode: Mode,
    pub balance: Balance,
    /// With `balance = "client-id"`: how connections without a client id are balanced.
    pub balance_fallback: Balance,
    /// With `balance = "client-id"`: bounded-load hashing (HAProxy's `hash-balance-factor`, a
    /// percentage above 100): a server takes a new connection only while it holds at most this
    /// share of the average per unit of weight; past it the id spills to its next server.
    pub hash_balance_factor: Option<u32>,
    pub servers: Vec<Server>,
    pub source: Vec<IpAddr>,
    pub check: Option<Check>,
    pub timeouts: BackendTimeouts,
    pub retries: u32,
    pub redispatch: bool,
    /// Idle keep-alive connections kept per server, per thread.
    pub max_idle_per_server: usize,
    /// The backend's `tls` table: what a server added at run time connects with.
    pub tls: Option<ServerTls>,
}

#[derive(Clone, Copy, Debug)]
pub struct BackendTimeouts {
    pub connect: Duration,
    /// Inactivity of the server while it is expected to answer or send.
    pub server: Duration,
    /// Inactivity of an upgraded (WebSocket) or TCP-mode connection, both sides at once.
    pub tunnel: Option<Duration>,
    /// The longest a request waits for a server slot.
    pub queue: Duration,
}

#[derive(Clone, Debug)]
pub struct Server {
    /// Shared, not copied: every log line of every request names it.
    pub name: Arc<str>,
    pub address: SocketAddr,
    pub weight: u32,
    /// Requests (HTTP) or connections (TCP) at once; more wait in the queue.
    pub maxconn: Option<u32>,
    pub checked: bool,
    /// A PROXY protocol header before the client's bytes (modes tcp and mqtt).
    pub send_proxy: Option<crate::proxy_protocol::Version>,
    /// TLS toward the server (after the PROXY header, if any).
    pub tls: Option<ServerTls>,
}

#[derive(Clone, Debug)]
pub struct Check {
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Clone, Debug)]
pub enum CheckKind {
    /// A TCP connection that opens.
    Tcp,
    /// `GET path` answered with a 2xx or 3xx status.
    Http { path: String, host: String },
}

/// A configuration error: where, which key, what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub source: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        // The file as a whole (no frontend at all) has no key to name.
        if let Some(key) = self.key.as_ref().filter(|k| !k.is_empty()) {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source: path.display().to_string(),
        line: None,
        key: None,
        message: format!("cannot read: {e}"),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), base)
}

/// Checks `text`; `source` names it in errors and relative certificate paths start at `base`.
pub fn parse(text: &str, source: &str, base: &Path) -> Result<Config, ConfigError> {
    let file: file::File = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|span| locate::line_at(text, span.start));
        let key = e.span().and_then(|span| {
            let spelled = text.get(span)?.trim();
            (!spelled.is_empty() && spelled.len() < 80 && !spelled.contains('\n'))
                .then(|| spelled.to_string())
        });
        ConfigError {
            source: source.to_string(),
            line,
            key,
            message: e.message().trim().to_string(),
        }
    })?;
    let mut config =
        build::build(file, base).map_err(|(path, message): (KeyPath, String)| ConfigError {
            source: source.to_string(),
            line: locate::line_of(text, &path),
            key: Some(path.to_string()),
            message,
        })?;
    config.source = source.to_string();
    Ok(config)
}
