//! `throng proxy`'s flags, and `throng proxy reload|upgrade`, which signal a running proxy.

use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use throng_proxy::Config;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    throng proxy                          # the embedded default: :8080 and TLS :8443 in front of pong on 8282-8291\n  \
    throng proxy -c proxy.toml --check    # check a configuration and exit\n  \
    throng proxy reload -c proxy.toml     # check it, then have the running proxy (global.pidfile) reload it\n  \
    throng proxy upgrade -c proxy.toml    # hand the listeners to the binary now at this path\n  \
    throng proxy ctl -c proxy.toml set server app/a1 state drain   # a runtime command\n  \
    throng proxy --print-default > proxy.toml\n\n\
    Every configuration key is described in docs/proxy.md; reload and upgrade in docs/reload.md.\n\
    Access log lines go to stdout by default (global.log); messages to stderr (RUST_LOG=debug for\n\
    one line per refused request or failed handshake).")]
pub struct ProxyArgs {
    /// Run (no action), or act on a running proxy: reload its configuration (SIGHUP), upgrade
    /// it to the binary at its path (SIGUSR2), or give it a runtime command (ctl)
    #[arg(value_enum)]
    action: Option<Action>,

    /// ctl: the command, e.g. `show servers`, `set server app/a1 state drain` (`ctl help` lists
    /// them)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    words: Vec<String>,

    /// ctl: the admin socket [default: global.admin_socket of the configuration]
    #[arg(long, value_name = "PATH", conflicts_with = "admin")]
    socket: Option<PathBuf>,

    /// ctl: the admin listener over TCP, which takes commands only with global.admin_token
    /// [default: global.admin of the configuration, when it names no admin_socket]
    #[arg(long, value_name = "ADDRESS")]
    admin: Option<std::net::SocketAddr>,

    /// ctl over TCP: the admin token [default: $THRONG_ADMIN_TOKEN, else global.admin_token]
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,

    /// The configuration file (TOML) [default: the embedded default, see --print-default]
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the configuration (certificates and keys included) and exit: 0 when it is good
    #[arg(long)]
    check: bool,

    /// Print the embedded default configuration and exit
    #[arg(long)]
    print_default: bool,

    /// reload, upgrade: the running proxy's pid [default: read from global.pidfile]
    #[arg(long, value_name = "PID")]
    pid: Option<i32>,

    /// Run as worker process N of a master (global.processes): started by the master itself
    #[arg(long, value_name = "N", hide = true)]
    worker: Option<usize>,

    /// Take over from an old binary (its listeners and ticket key): started by it on SIGUSR2
    #[arg(long, hide = true)]
    successor: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Action {
    /// Check the file, then SIGHUP: a new generation on it, the old ones drain
    Reload,
    /// Check the file, then SIGUSR2: the binary at the proxy's path takes over its listeners
    Upgrade,
    /// A runtime command to the admin socket (or listener, POST /ctl): no reload
    Ctl,
}

pub fn run(args: ProxyArgs) -> ExitCode {
    if args.print_default {
        print!("{}", throng_proxy::config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    match args.action {
        Some(Action::Ctl) => return ctl(&args),
        Some(Action::Reload) => return signal_running(&args, Signalled::Reload),
        Some(Action::Upgrade) => return signal_running(&args, Signalled::Upgrade),
        None => {}
    }
    if !args.words.is_empty() {
        eprintln!(
            "throng proxy: unexpected `{}` (actions: reload, upgrade, ctl)",
            args.words.join(" ")
        );
        return ExitCode::from(2);
    }
    share_ticket_key(&args);
    let adjust = Adjust {
        // A worker's admin listener takes its master's commands, which carry this token.
        worker_token: args.worker.map(|_| {
            let token = std::env::var(throng_proxy::master::WORKER_TOKEN).unwrap_or_default();
            std::env::remove_var(throng_proxy::master::WORKER_TOKEN);
            token
        }),
    };
    // A worker takes its master's commands with the master's token only: without one (not
    // started by a master) it would take them from anyone on loopback.
    if adjust.worker_token.as_ref().is_some_and(|t| t.len() < 32) {
        eprintln!(
            "throng proxy: --worker is for a master to start (it gives the worker its token in {})",
            throng_proxy::master::WORKER_TOKEN
        );
        return ExitCode::from(2);
    }
    let path = args.config.clone();
    let loaded = read(path.as_deref()).map(|c| adjust.apply(c));
    let reread_adjust = adjust.clone();
    let config = match loaded {
        Ok(config) => config,
        Err(error) => {
            eprintln!("throng proxy: {error}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        for warning in &config.warnings {
            eprintln!("throng proxy: {}: warning: {warning}", config.source);
        }
        println!(
            "{}: configuration is valid ({} frontends, {} backends, {} servers)",
            config.source,
            config.frontends.len(),
            config.backends.len(),
            config
                .backends
                .iter()
                .map(|b| b.servers.len())
                .sum::<usize>()
        );
        return ExitCode::SUCCESS;
    }
    let reread_path = path.clone();
    let reread: throng_proxy::generation::Reread =
        Box::new(move || read(reread_path.as_deref()).map(|c| reread_adjust.apply(c)));
    use throng_proxy::generation::Role;
    let outcome = match args.worker {
        Some(_) => throng_proxy::run(config, reread, Role::Worker),
        None if config.global.processes > 1 => {
            throng_proxy::master::run(config, reread, move |index| {
                worker_args(path.as_deref(), index)
            })
        }
        None => throng_proxy::run(config, reread, Role::Alone),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("throng proxy: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One session-ticket key for the whole life of the proxy, across reloads and upgrades: a
/// worker and a new binary read theirs on stdin (from the master, from the old binary); a
/// proxy started by hand makes one.
fn share_ticket_key(args: &ProxyArgs) {
    let handed = args.worker.is_some() || args.successor;
    if handed && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if let Some(secrets) = throng_proxy::tickets::from_line(&line) {
            throng_proxy::tickets::share(secrets);
            return;
        }
    }
    if let Ok(current) = throng_proxy::tickets::new_key() {
        throng_proxy::tickets::share(throng_proxy::tickets::Secrets {
            current,
            previous: None,
        });
    }
}

/// What a worker changes in the configuration it reads, at start and at each reload.
#[derive(Clone)]
struct Adjust {
    /// This process is a worker, and its master's commands carry this token.
    worker_token: Option<String>,
}

impl Adjust {
    fn apply(&self, mut config: Config) -> Config {
        if let Some(token) = &self.worker_token {
            // A worker's admin listener is for its master only: a port of loopback the kernel
            // picks, commands with the master's own token (the operator's token and socket,
            // and the pages' credentials, are the master's). The pid file is the master's.
            let global = &mut config.global;
            let master_listens = global.admin.is_some() || global.admin_socket.is_some();
            global.admin = master_listens.then(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
            global.admin_token = Some(token.clone());
            global.admin_socket = None;
            global.stats_auth = None;
            global.pidfile = None;
        }
        config
    }
}

fn read(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(path) => throng_proxy::load(path),
        None => throng_proxy::parse(
            throng_proxy::config::DEFAULT_CONFIG,
            "<embedded default>",
            Path::new("."),
        ),
    }
    .map_err(|e| e.to_string())
}

/// The command line of worker `index`: this command, with the same configuration.
fn worker_args(config: Option<&Path>, index: usize) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["proxy".into()];
    if let Some(path) = config {
        args.extend(["-c".into(), path.as_os_str().to_owned()]);
    }
    args.extend(["--worker".into(), index.to_string().into()]);
    args
}

/// `throng proxy reload|upgrade`: checks the file here (a bad one is refused before the proxy
/// sees it), signals the running proxy, and waits to see the outcome where it can (the admin
/// listener's reload counters, the pid file's new pid).
/// What `reload` and `upgrade` ask of a running proxy.
#[derive(Clone, Copy)]
enum Signalled {
    Reload,
    Upgrade,
}

fn signal_running(args: &ProxyArgs, action: Signalled) -> ExitCode {
    let config = match read(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!(
                "throng proxy {}: {error}; the running proxy was not signalled",
                name(action)
            );
            return ExitCode::from(2);
        }
    };
    let pidfile = config.global.pidfile.clone();
    let pid = match (args.pid, &pidfile) {
        (Some(pid), _) => pid,
        (None, Some(path)) => match read_pid(path) {
            Ok(pid) => pid,
            Err(e) => {
                eprintln!("throng proxy {}: {e}", name(action));
                return ExitCode::FAILURE;
            }
        },
        (None, None) => {
            eprintln!(
                "throng proxy {}: which proxy? give --pid, or set global.pidfile in {}",
                name(action),
                config.source
            );
            return ExitCode::from(2);
        }
    };
    let counts_before = config.global.admin.and_then(reload_counts);
    let signal = match action {
        Signalled::Reload => libc::SIGHUP,
        Signalled::Upgrade => libc::SIGUSR2,
    };
    // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
    if unsafe { libc::kill(pid, signal) } != 0 {
        eprintln!(
            "throng proxy {}: cannot signal pid {pid}: {}",
            name(action),
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    match action {
        Signalled::Reload => {
            let (Some(admin), Some(before)) = (config.global.admin, counts_before) else {
                println!("throng proxy reload: sent SIGHUP to pid {pid}; its log says how it went");
                return ExitCode::SUCCESS;
            };
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                match reload_counts(admin) {
                    Some((ok, _)) if ok > before.0 => {
                        println!("throng proxy reload: pid {pid} reloaded {}", config.source);
                        return ExitCode::SUCCESS;
                    }
                    Some((_, failed)) if failed > before.1 => {
                        eprintln!(
                            "throng proxy reload: pid {pid} refused the reload; its log says why"
                        );
                        return ExitCode::FAILURE;
                    }
                    _ => {}
                }
            }
            eprintln!("throng proxy reload: sent SIGHUP to pid {pid}, no outcome seen on http://{admin}/metrics");
            ExitCode::FAILURE
        }
        Signalled::Upgrade => {
            let Some(path) = pidfile else {
                println!(
                    "throng proxy upgrade: sent SIGUSR2 to pid {pid}; its log says how it went"
                );
                return ExitCode::SUCCESS;
            };
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                if let Ok(new) = read_pid(&path) {
                    if new != pid {
                        println!("throng proxy upgrade: pid {new} serves; pid {pid} ends with its last connection");
                        return ExitCode::SUCCESS;
                    }
                }
            }
            eprintln!("throng proxy upgrade: pid {pid} still serves (the new binary did not start; its log says why)");
            ExitCode::FAILURE
        }
    }
}

fn name(action: Signalled) -> &'static str {
    match action {
        Signalled::Reload => "reload",
        Signalled::Upgrade => "upgrade",
    }
}

/// `throng proxy ctl WORDS...`: one runtime command, its answer on stdout (stderr and a
/// failing status when refused). It goes to the admin socket of the file (or `--socket`);
/// to the TCP admin listener with its token only when asked (`--admin`) or when the file
/// names no socket.
fn ctl(args: &ProxyArgs) -> ExitCode {
    if args.words.is_empty() || args.words == ["help"] {
        print!("{}", throng_proxy::ctl::command::USAGE);
        return ExitCode::SUCCESS;
    }
    let told = args.admin.is_some() || args.socket.is_some();
    let config = if told && args.config.is_none() {
        None
    } else {
        match read(args.config.as_deref()) {
            Ok(config) => Some(config),
            Err(error) => {
                eprintln!("throng proxy ctl: {error}");
                return ExitCode::from(2);
            }
        }
    };
    let global = config.as_ref().map(|c| &c.global);
    let socket = args.socket.clone().or_else(|| {
        args.admin
            .is_none()
            .then(|| {
                global
                    .and_then(|g| g.admin_socket.as_ref())
                    .map(|s| s.path.clone())
            })
            .flatten()
    });
    let line = args.words.join(" ");
    let timeout = Duration::from_secs(60);
    let (answer, to) = if let Some(path) = socket {
        let answer =
            throng_net::admin::request_socket(&path, "POST", "/ctl", line.as_bytes(), timeout);
        (answer, path.display().to_string())
    } else if let Some(admin) = args.admin.or_else(|| global.and_then(|g| g.admin)) {
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var("THRONG_ADMIN_TOKEN").ok())
            .or_else(|| global.and_then(|g| g.admin_token.clone()));
        let authorization = token.map(|t| format!("Bearer {t}"));
        let authorization = authorization.as_deref().map(str::as_bytes);
        let answer = throng_net::admin::request(
            admin,
            "POST",
            "/ctl",
            line.as_bytes(),
            authorization,
            timeout,
        );
        (answer, format!("http://{admin}/ctl"))
    } else {
        eprintln!("throng proxy ctl: which proxy? give --socket PATH or --admin ADDRESS, or a configuration with global.admin_socket");
        return ExitCode::from(2);
    };
    match answer {
        Ok((status, body)) if status < 300 => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprint!("throng proxy ctl: refused ({status}): {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("throng proxy ctl: {to}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_pid(path: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "global.pidfile {}: {e} (is the proxy running?)",
            path.display()
        )
    })?;
    text.trim().parse().map_err(|_| {
        format!(
            "global.pidfile {}: `{}` is not a pid",
            path.display(),
            text.trim()
        )
    })
}

/// The admin listener's reload counters: (reloads, refused), summed over workers.
fn reload_counts(admin: std::net::SocketAddr) -> Option<(u64, u64)> {
    let (status, text) =
        throng_net::admin::request(admin, "GET", "/metrics", b"", None, Duration::from_secs(5))
            .ok()?;
    if status != 200 {
        return None;
    }
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|v| v as u64)
    };
    Some((
        value("throng_proxy_reloads_total")?,
        value("throng_proxy_reload_failures_total")?,
    ))
}
