//! `throng pong`'s flags.

use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use throng_http1::{Limits, HEADER_SLOTS};
use throng_net::{duration, listen};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    throng pong --listen 127.0.0.1:8282-8291            # the story's 10 backends, one process\n  \
    throng pong --listen 127.0.0.1:8080 --max-rps 2000  # a knee at 2000 requests/s\n  \
    curl -H 'sleep: 500' -H 'times: 3' http://127.0.0.1:8282/\n\n\
    Logs go to stderr (RUST_LOG=debug for one line per timed-out connection).")]
pub struct PongArgs {
    /// Address to listen on; a port range (127.0.0.1:8282-8291) listens on each; repeatable
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:8282", value_parser = listen::parse)]
    listen: Vec<Vec<SocketAddr>>,

    /// Processes, each with its threads and its own listener per address (past the open-files
    /// limit of one process); a process that dies is started again
    #[arg(long, value_name = "N", default_value_t = 1)]
    procs: usize,

    /// Set by --procs in each process it starts: this is one of N
    #[arg(long, value_name = "N", hide = true)]
    process_of: Option<usize>,

    /// Worker threads, each with its own listener per address [default: number of cores]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// Close a connection after this long with no bytes in or out: idle, or in a sleeping response
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration::parse)]
    timeout: Duration,

    /// Time a client has to send a whole request head once it started (slowloris guard); 408 after
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    header_timeout: Duration,

    /// Serve at most R requests per second, first come first served; the rest wait in a queue
    #[arg(long, value_name = "R")]
    max_rps: Option<f64>,

    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,

    /// Most connections open at once; more wait in the accept queue [default: what the open-files limit allows]
    #[arg(long, value_name = "N")]
    max_connections: Option<u64>,

    /// On SIGTERM or SIGINT, time given to responses in progress before closing them
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    grace: Duration,

    /// Longest request head accepted, in bytes (431 beyond, 414 for the request line alone)
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_head_bytes)]
    max_head_bytes: usize,

    /// Most header fields in a request (431 beyond)
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_headers as u64,
          value_parser = clap::value_parser!(u64).range(1..=HEADER_SLOTS as u64))]
    max_headers: u64,

    /// Serve TLS with this certificate chain (PEM), with --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// The private key (PEM) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// Also serve HTTP/2 by prior knowledge (h2c) on plain listeners: a connection that opens
    /// with HTTP/2's preface gets h2, with `sleep` and `times` as over HTTP/1.1
    #[arg(long, conflicts_with = "tls_cert")]
    h2c: bool,

    /// Also serve HTTP/2: with --tls-cert, offered by ALPN before http/1.1 (a client that picks
    /// it gets h2); without, by prior knowledge, as --h2c
    #[arg(long)]
    http2: bool,

    /// Stop gracefully (as on SIGTERM) when stdin closes: a pong started over ssh (or by
    /// `throng scenario` on its hosts) ends with the session that started it
    #[arg(long)]
    until_stdin_closes: bool,
}

pub fn run(args: PongArgs) -> ExitCode {
    if args.until_stdin_closes {
        throng_net::admin::terminate_when_stdin_closes();
    }
    if args.procs > 1 && args.process_of.is_none() {
        return match supervise(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("throng pong: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let loaded = throng_tls::config::load_certs(cert).and_then(|certs| {
                let key = throng_tls::config::load_key(key)?;
                let alpn: &[&[u8]] = match args.http2 {
                    true => &[b"h2", b"http/1.1"],
                    false => &[b"http/1.1"],
                };
                throng_tls::config::server_config(certs, key, alpn, &[])
            });
            match loaded {
                Ok(config) => Some(config),
                Err(message) => {
                    eprintln!("throng pong: TLS: {message}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => None,
    };
    let config = throng_pong::Config {
        listen: args.listen.into_iter().flatten().collect(),
        threads: args
            .threads
            .unwrap_or_else(throng_net::workers::default_threads),
        timeout: args.timeout,
        header_timeout: args.header_timeout,
        // Each of N processes serves its share of the rate.
        max_rps: args
            .max_rps
            .map(|r| r / args.process_of.unwrap_or(1).max(1) as f64),
        admin: args.admin,
        max_connections: args.max_connections,
        grace: args.grace,
        tls,
        h2c: args.h2c || (args.http2 && args.tls_cert.is_none()),
        limits: Limits {
            max_head_bytes: args.max_head_bytes.max(64),
            max_headers: args.max_headers as usize,
        },
    };
    match throng_pong::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("throng pong: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `--procs N`: N processes of this same command (see throng_pong::master).
fn supervise(args: &PongArgs) -> Result<(), String> {
    if let Some(addr) = args.listen.iter().flatten().find(|a| a.port() == 0) {
        return Err(format!(
            "--listen {addr}: with --procs the processes share each port, so it must be given"
        ));
    }
    // The master alone watches stdin; its SIGTERM reaches the children as any other.
    let mut child_args =
        throng_net::procs::own_args_without_switches(&["procs", "admin"], &["until-stdin-closes"]);
    child_args.extend(["--process-of".into(), args.procs.to_string().into()]);
    throng_pong::master::run(throng_pong::master::Master {
        procs: args.procs,
        args: child_args,
        admin: args.admin,
        grace: args.grace,
    })
}
