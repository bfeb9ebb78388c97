//! `throng mqtt conn|sub|pub`: MQTT load with emqtt-bench's flags (`-h` is the broker's host, as
//! there; help is `--help`).

use clap::{ArgAction, Args, Subcommand};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use throng_mqtt::{QoS, Version};
use throng_mqtt_bench::{report, Config, Live, Role};
use throng_net::duration;

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
struct Common {
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

fn mqtt(role: Role, args: Common) -> Result<ExitCode, String> {
    let config = config(role, &args)?;
    let live = Arc::new(Live::default());
    let progress = !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let engine = {
        let (config, live) = (config.clone(), Arc::clone(&live));
        std::thread::spawn(move || throng_mqtt_bench::run(config, live, progress))
    };
    watch_signals(&live, &engine);
    let stats = engine.join().map_err(|_| "the run failed".to_string())??;
    if args.json {
        println!("{}", report::json(&config, &stats));
    } else {
        print!("{}", report::text(&config, &stats));
    }
    Ok(ExitCode::SUCCESS)
}

fn config(role: Role, args: &Common) -> Result<Config, String> {
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
