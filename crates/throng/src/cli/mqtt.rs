//! `throng mqtt conn|sub|pub`: MQTT load with emqtt-bench's flags (`-h` is the broker's host, as
//! there; help is `--help`).

use super::parts::PartArgs;
use clap::{ArgAction, Args, Subcommand};
use std::io::{IsTerminal, Write};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use throng_mqtt::{QoS, Version};
use throng_mqtt_bench::{report, Config, Live, Role};
use throng_net::duration;
use throng_results::mqtt::{Plan, Stats};

#[derive(Debug, Args)]
pub struct MqttArgs {
    #[command(subcommand)]
    role: MqttRole,
}

#[derive(Debug, Subcommand)]
enum MqttRole {
    /// Open connections at an exact rate and hold them, pinging every keep-alive
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Conn(Common),
    /// Connect and subscribe; measure what arrives (end to end from throng publishers' stamps)
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Sub(Common),
    /// Connect and publish at an aggregate rate (open model); with --subscribers, measure end to end
    #[command(
        disable_help_flag = true,
        disable_version_flag = true,
        after_help = "Examples:\n  \
        throng mqtt pub -c 100 --rate 2000/1s -t 'bench/%i' -q 1 --subscribers 1 --duration 30s\n  \
        throng mqtt conn -h broker -c 10000 -R 1000 -k 30 -S --insecure --duration 5m"
    )]
    Pub(Common),
}

#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,

    /// The broker's host (emqtt-bench's -h)
    #[arg(short = 'h', long = "host", default_value = "127.0.0.1")]
    host: String,

    /// The broker's port [default: 1883, 8883 with -S]
    #[arg(short = 'p', long)]
    port: Option<u16>,

    /// Clients (publishers for pub, subscribers for sub)
    #[arg(short = 'c', long = "count", default_value_t = 200)]
    clients: usize,

    /// New connections per second [default: 1000/--interval]
    #[arg(short = 'R', long = "connrate")]
    connect_rate: Option<f64>,

    /// How new connections are spread over the ramp: constant (exactly 1/rate apart) or
    /// poisson (independent arrivals at that rate, as many real clients make)
    #[arg(long, default_value = "constant", value_parser = ["constant", "poisson"])]
    arrivals: String,

    /// Milliseconds between two new connections (emqtt-bench's -i), when -R is not given
    #[arg(short = 'i', long = "interval", default_value_t = 10)]
    interval_ms: u64,

    /// Keep-alive in seconds: a PINGREQ each, its PINGRESP timed; 0: none
    #[arg(short = 'k', long = "keepalive", default_value_t = 300)]
    keep_alive: u16,

    /// QoS of publishing and subscribing: 0, 1 or 2
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,

    /// Topic template, `%i` the client's index (publish topic, or the subscription's filter)
    #[arg(short = 't', long, default_value = "bench/%i")]
    topic: String,

    /// Payload bytes (at least the 36 of throng's stamp)
    #[arg(short = 's', long = "size", default_value_t = 256)]
    size: usize,

    /// Messages per second over all publishers: N or N/DURATION [default: from -I]
    #[arg(long)]
    rate: Option<String>,

    /// Milliseconds between two messages of one publisher (emqtt-bench's -I), when --rate is not given
    #[arg(short = 'I', long = "interval_of_msg", default_value_t = 1000)]
    interval_of_msg: u64,

    /// pub: also run this many subscribers, connected first, to measure end to end
    #[arg(long, default_value_t = 0)]
    subscribers: usize,

    /// pub: the subscribers' filter template [default: the topic with + for %i]
    #[arg(long = "sub-topic")]
    sub_topic: Option<String>,

    /// MQTT version: 3 (3.1.1, as emqtt-bench's -V 4 also means) or 5
    #[arg(short = 'V', long = "protocol-version", default_value = "5")]
    version: String,

    /// Client ids are PREFIX-ROLE-INDEX [default: throng-PID]
    #[arg(long)]
    prefix: Option<String>,

    #[arg(short = 'u', long)]
    username: Option<String>,

    #[arg(short = 'P', long)]
    password: Option<String>,

    /// Start clean sessions
    #[arg(short = 'C', long = "clean", default_value_t = true, action = ArgAction::Set)]
    clean: bool,

    /// Source addresses for connections: a list, a range or a CIDR block (emqtt-bench's --ifaddr)
    #[arg(long = "ifaddr", alias = "source", value_parser = throng_net::source::parse_pool)]
    sources: Option<std::vec::Vec<std::net::IpAddr>>,

    /// TLS (emqtt-bench's -S/--ssl)
    #[arg(short = 'S', long = "ssl")]
    tls: bool,

    /// TLS: accept any server certificate (handshake signatures are still checked)
    #[arg(long)]
    insecure: bool,

    /// TLS: trusted root certificates, PEM files separated by commas [default: the system's]
    #[arg(long = "root-certs", value_name = "FILES")]
    root_certs: Option<String>,

    /// TLS: the server name to check [default: --host]
    #[arg(long = "server-name")]
    server_name: Option<String>,

    /// TLS client certificate chain (PEM), with --key
    #[arg(long = "certfile", alias = "cert", requires = "key")]
    cert: Option<PathBuf>,

    /// TLS client private key (PEM)
    #[arg(long = "keyfile", alias = "key")]
    key: Option<PathBuf>,

    /// How long to publish (pub) or hold (conn, sub) once the connection ramp is done; 0: until Ctrl-C
    #[arg(long, default_value = "0s", value_parser = duration::parse)]
    duration: Duration,

    /// After publishing, how long subscribers wait for messages still on their way
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    drain: Duration,

    /// QoS 1 and 2 messages awaiting acknowledgement per connection, at most (and the broker's Receive Maximum)
    #[arg(long, default_value_t = 64)]
    inflight: u16,

    /// From the TCP connect to CONNACK (and SUBACK), at most
    #[arg(long = "connect-timeout", default_value = "10s", value_parser = duration::parse)]
    connect_timeout: Duration,

    /// Largest packet accepted from the broker
    #[arg(long = "max-packet", default_value_t = 1 << 20)]
    max_packet: usize,

    /// Reconnect a connection that ended, after this back-off (doubling to 30 s)
    #[arg(long, value_parser = duration::parse)]
    reconnect: Option<Duration>,

    /// Worker threads [default: number of cores]
    #[arg(long)]
    threads: Option<usize>,

    /// Print the report as JSON
    #[arg(long)]
    json: bool,

    /// No live line on stderr
    #[arg(long)]
    quiet: bool,

    /// Write the results stream here ("-": stdout, and no report printed): `throng report`,
    /// `plot` and `encode` read it, and merge it with other runs' and parts'
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// The run's name in its results
    #[arg(long, default_value = "")]
    name: String,

    /// Processes to split the run over (past the open-files limit of one process): each opens
    /// every N-th client and keeps the one publishing schedule; the report merges them
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    procs: u64,

    #[command(flatten)]
    parts: PartArgs,
}

pub fn run(args: MqttArgs) -> ExitCode {
    let (role, common) = match args.role {
        MqttRole::Conn(c) => (Role::Conn, c),
        MqttRole::Sub(c) => (Role::Sub, c),
        MqttRole::Pub(c) => (Role::Pub, c),
    };
    match mqtt(role, common) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("throng mqtt: {message}");
            ExitCode::FAILURE
        }
    }
}

fn mqtt(role: Role, mut args: Common) -> Result<ExitCode, String> {
    // Explicit flags win; else the launcher may say which part this is.
    args.parts.part = args.parts.resolve()?;
    // Parts started by hand share a start only when told one: without it, each would be its
    // own run (its stamps foreign to the others' subscribers, its file refused beside theirs).
    // (One part of one, as a one-task srun makes every run, needs none.)
    let several = args.parts.part.is_some_and(|(_, of)| of > 1);
    if several && args.parts.start_at.is_none() && args.parts.start_unix_ns.is_none() {
        return Err(
            "--part: give every part the same --start-at (RFC 3339 or Unix seconds, \
                    say $(($(date +%s) + 10))), so that the parts make one run"
                .into(),
        );
    }
    let config = config(role, &args)?;
    let to_stdout = args
        .output
        .as_ref()
        .is_some_and(|p| p.as_os_str() == "-" || p.as_os_str() == "stdout");
    if to_stdout && std::io::stdout().is_terminal() {
        return Err("results are binary: pipe them (| throng report) or use --output FILE".into());
    }
    if args.procs > 1 {
        return split(&args, &config, to_stdout);
    }
    let output: Option<Box<dyn Write + Send>> = match &args.output {
        None => None,
        Some(_) if to_stdout => Some(Box::new(std::io::stdout())),
        Some(path) => Some(Box::new(
            std::fs::File::create(path).map_err(|e| format!("--output {}: {e}", path.display()))?,
        )),
    };
    let live = Arc::new(Live::default());
    let progress = !args.quiet && args.parts.part.is_none() && std::io::stderr().is_terminal();
    let engine = {
        let (config, live) = (config.clone(), Arc::clone(&live));
        std::thread::spawn(move || throng_mqtt_bench::run(config, live, progress, output))
    };
    watch_signals(&live, &engine);
    let finished = engine.join().map_err(|_| "the run failed".to_string())??;
    if !to_stdout {
        print_report(&args, &config.plan(), &finished.stats);
    }
    if let Some(error) = finished.write_error {
        let path = args
            .output
            .as_ref()
            .map_or("-".into(), |p| p.display().to_string());
        return Err(format!(
            "--output {path}: {error} (the report above is whole)"
        ));
    }
    Ok(ExitCode::SUCCESS)
}

impl Common {
    /// A flag `throng knee ... mqtt` sets itself or cannot honour, if one was given.
    pub(crate) fn not_for_the_knee(&self) -> Option<&'static str> {
        [
            (self.procs > 1, "--procs"),
            (
                self.output.is_some(),
                "--output (each step's file is in --dir)",
            ),
            (
                self.parts.part.is_some() || self.parts.parts.is_some(),
                "--part",
            ),
            (self.parts.start_at.is_some(), "--start-at"),
            (
                !self.duration.is_zero(),
                "--duration (the knee's --step sets it)",
            ),
            (self.rate.is_some(), "--rate (the knee sets it)"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

fn print_report(args: &Common, plan: &Plan, stats: &Stats) {
    if args.json {
        println!("{}", report::json(plan, stats));
    } else {
        print!("{}", report::text(plan, stats));
    }
}

/// `--procs N`: the run in N processes (parts of one run on this machine, started together),
/// their results merged as they come into one stream (to `--output`, or kept in memory for the
/// report alone) and one report.
fn split(args: &Common, config: &Config, to_stdout: bool) -> Result<ExitCode, String> {
    let procs = args.procs as usize;
    // `--quiet` is put back below, once. Each process is told its own part (of this machine's,
    // when it has one).
    let mut common = throng_net::procs::own_args_without_switches(
        &["procs", "output", "threads", "part", "parts"],
        &["quiet"],
    );
    // The machine's cores shared out, unless told.
    let threads = args.threads.unwrap_or_else(|| {
        throng_net::workers::default_threads()
            .div_ceil(procs)
            .max(1)
    });
    common.extend([
        "--output".into(),
        "-".into(),
        "--quiet".into(),
        "--threads".into(),
        threads.to_string().into(),
    ]);
    let file = match &args.output {
        Some(path) if !to_stdout => Some(path.clone()),
        _ => None,
    };
    let memory = SharedBuffer::default();
    let merged: Box<dyn Write + Send> = match (&file, to_stdout) {
        (Some(path), _) => Box::new(
            std::fs::File::create(path).map_err(|e| format!("--output {}: {e}", path.display()))?,
        ),
        (None, true) => Box::new(std::io::stdout()),
        (None, false) => Box::new(memory.clone()),
    };
    let result = throng_attack::split::run(
        throng_attack::split::Split {
            command: "mqtt",
            procs,
            args: throng_attack::split::part_args(common, procs, args.parts.part),
            stdin: None,
            rate: config.publish_rate,
            progress: false,
            start_unix_ns: args.parts.start_at,
            part: args.parts.part,
        },
        merged,
    );
    if !to_stdout {
        // The processes' results, merged as one run's: read back from where they went.
        let bytes = match &file {
            Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
            None => memory.take(),
        };
        if let (true, Err(failure)) = (bytes.is_empty(), &result) {
            return Err(failure.clone());
        }
        let mut summary = throng_results::mqtt::summary::Summary::default();
        let reader = throng_results::Reader::new(bytes.as_slice())
            .map_err(|e| format!("merged results: {e}"))?;
        summary.add_reader("merged", reader)?;
        print_report(args, &config.plan(), summary.stats());
    }
    result.map(|_| ExitCode::SUCCESS)
}

/// The merged stream of `--procs` without `--output`, kept in memory for the report until the
/// processes end (a second of figures is a few KB per process).
#[derive(Clone, Default)]
struct SharedBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("results buffer poisoned"))?;
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn config(role: Role, args: &Common) -> Result<Config, String> {
    let version = match args.version.as_str() {
        "3" | "4" | "3.1.1" => Version::V311,
        "5" => Version::V5,
        other => return Err(format!("-V {other}: use 3 (3.1.1) or 5")),
    };
    let qos = QoS::from_bits(args.qos).ok_or("-q: use 0, 1 or 2")?;
    let port = args.port.unwrap_or(if args.tls { 8883 } else { 1883 });
    let broker = (args.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("-h {}: {e}", args.host))?
        .next()
        .ok_or_else(|| format!("-h {}: no address", args.host))?;
    let connect_rate = match args.connect_rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => rate,
        Some(rate) => return Err(format!("-R {rate}: must be above 0")),
        None => 1000.0 / args.interval_ms.max(1) as f64,
    };
    let publish_rate = match &args.rate {
        Some(text) => parse_rate(text)?,
        None => args.clients as f64 * 1000.0 / args.interval_of_msg.max(1) as f64,
    };
    if args.clients == 0 {
        return Err("-c 0: no clients".into());
    }
    let tls = args.tls.then(|| throng_tls::config::ClientOptions {
        insecure: args.insecure,
        root_certs: args
            .root_certs
            .as_ref()
            .map(|list| list.split(',').map(PathBuf::from).collect())
            .unwrap_or_default(),
        client_cert: args.cert.clone().zip(args.key.clone()),
        alpn: Vec::new(),
        ..Default::default()
    });
    Ok(Config {
        role,
        broker,
        broker_name: format!("{}:{port}", args.host),
        server_name: args
            .server_name
            .clone()
            .unwrap_or_else(|| args.host.clone()),
        tls,
        version,
        clients: args.clients,
        connect_rate,
        arrivals: match args.arrivals.as_str() {
            "poisson" => throng_mqtt_bench::config::Arrivals::Poisson,
            _ => throng_mqtt_bench::config::Arrivals::Constant,
        },
        keep_alive: args.keep_alive,
        qos,
        topic: args.topic.clone(),
        subscribers: args.subscribers,
        sub_topic: args
            .sub_topic
            .clone()
            .unwrap_or_else(|| Config::default_sub_topic(&args.topic)),
        publish_rate,
        payload_size: args.size,
        inflight: args.inflight.max(1),
        prefix: args
            .prefix
            .clone()
            .unwrap_or_else(|| format!("throng-{}", std::process::id())),
        username: args.username.clone(),
        password: args.password.clone(),
        clean_start: args.clean,
        sources: args.sources.clone().unwrap_or_default(),
        duration: (!args.duration.is_zero()).then_some(args.duration),
        drain: args.drain,
        connect_timeout: args.connect_timeout,
        max_packet: args.max_packet,
        threads: args
            .threads
            .unwrap_or_else(throng_net::workers::default_threads),
        reconnect: args.reconnect,
        name: args.name.clone(),
        part: args
            .parts
            .part
            .map(|(index, of)| throng_mqtt_bench::Part { index, of }),
        start_unix_ns: args
            .parts
            .part
            .map(|_| args.parts.shared_start())
            .or(args.parts.start_at),
        host_name: args.parts.host_name.clone(),
    })
}

/// `N` or `N/DURATION` messages per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    let (count, per) = match text.split_once('/') {
        Some((count, per)) => (count, duration::parse(per)?),
        None => (text, Duration::from_secs(1)),
    };
    let count: f64 = count
        .trim()
        .parse()
        .map_err(|_| format!("--rate {text}: expected N or N/DURATION"))?;
    let rate = count / per.as_secs_f64();
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(format!("--rate {text}: must be above 0"));
    }
    Ok(rate)
}

/// First Ctrl-C (or SIGTERM): stop publishing or holding, drain, report. Second: stop at once.
fn watch_signals<T>(live: &Live, engine: &std::thread::JoinHandle<T>) {
    super::on_signals(|| engine.is_finished(), |_| live.interrupt());
}
