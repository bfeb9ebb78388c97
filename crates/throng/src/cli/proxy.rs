//! `throng proxy`'s flags.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    throng proxy                          # the embedded default: :8080 and TLS :8443 in front of pong on 8282-8291\n  \
    throng proxy -c proxy.toml --check    # check a configuration and exit\n  \
    throng proxy --print-default > proxy.toml\n\n\
    Every configuration key is described in docs/proxy.md. Access log lines go to stdout by default\n\
    (global.log); messages to stderr (RUST_LOG=debug for one line per refused request or failed handshake).")]
pub struct ProxyArgs {
    /// The configuration file (TOML) [default: the embedded default, see --print-default]
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the configuration (certificates and keys included) and exit: 0 when it is good
    #[arg(long)]
    check: bool,

    /// Print the embedded default configuration and exit
    #[arg(long)]
    print_default: bool,

    /// Run as worker process N of a master (global.processes): started by the master itself
    #[arg(long, value_name = "N", hide = true)]
    worker: Option<usize>,
}

pub fn run(args: ProxyArgs) -> ExitCode {
    if args.print_default {
        print!("{}", throng_proxy::config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    if args.worker.is_some() && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        // The master's session-ticket key comes first on stdin; a worker started by hand has
        // none and keeps its own.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if let Some(key) = throng_proxy::tickets::from_line(&line) {
            throng_proxy::tickets::share(key);
        }
    }
    let loaded = match &args.config {
        Some(path) => throng_proxy::load(path),
        None => throng_proxy::parse(
            throng_proxy::config::DEFAULT_CONFIG,
            "<embedded default>",
            std::path::Path::new("."),
        ),
    };
    let mut config = match loaded {
        Ok(config) => config,
        Err(error) => {
            eprintln!("throng proxy: {error}");
            return ExitCode::from(2);
        }
    };
    if args.check {
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
    let outcome = match args.worker {
        // A worker's admin listener is for its master only: a port of loopback the kernel picks.
        Some(_) => {
            config.global.admin = config
                .global
                .admin
                .map(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
            throng_proxy::run(config)
        }
        None if config.global.processes > 1 => {
            let path = args.config.clone();
            throng_proxy::master::run(config, move |index| worker_args(path.as_deref(), index))
        }
        None => throng_proxy::run(config),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("throng proxy: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The command line of worker `index`: this command, with the same configuration.
fn worker_args(config: Option<&std::path::Path>, index: usize) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["proxy".into()];
    if let Some(path) = config {
        args.extend(["-c".into(), path.as_os_str().to_owned()]);
    }
    args.extend(["--worker".into(), index.to_string().into()]);
    args
}
