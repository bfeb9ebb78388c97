//! `throng mqtt` end to end against Debian's mosquitto, plain and over TLS, and against small
//! brokers that misbehave on purpose.

mod common;

use common::proxy::{Dir, Proxy};
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running mosquitto with a plain listener and a TLS one (a self-signed certificate for
/// `localhost` in its directory), killed when dropped.
struct Mosquitto {
    child: Child,
    plain: SocketAddr,
    tls: SocketAddr,
    dir: PathBuf,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Mosquitto {
    fn start(name: &str, extra: &str) -> Mosquitto {
        let dir = scratch_dir(&format!("mqtt-{name}"));
        let (cert, key) = throng_tls::config::self_signed(&["localhost"]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        // A free port may be taken by a test beside this one before mosquitto binds it: then
        // mosquitto exits, and it is started again on other ports.
        for _ in 0..5 {
            if let Some(started) = Mosquitto::try_start(&dir, extra) {
                return started;
            }
        }
        panic!("mosquitto did not start on free ports five times");
    }

    fn try_start(dir: &std::path::Path, extra: &str) -> Option<Mosquitto> {
        let dir = dir.to_path_buf();
        let (plain, tls) = (free_addr(), free_addr());
        let config = format!(
            "per_listener_settings false\nlog_dest stdout\n{extra}\n\
             listener {} 127.0.0.1\n\
             listener {} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
            plain.port(),
            tls.port(),
            dir.join("cert.pem").display(),
            dir.join("key.pem").display(),
        );
        std::fs::write(dir.join("mosquitto.conf"), config).unwrap();
        let mut child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is not installed: apt-get install mosquitto (.ci/run does)");
        let log = capture(child.stdout.take().unwrap());
        let mut started = Mosquitto {
            child,
            plain,
            tls,
            dir,
            log,
        };
        for addr in [plain, tls] {
            wait_until(|| std::net::TcpStream::connect(addr).ok()).expect("mosquitto listening");
        }
        // Listening, and ours: it still runs a moment later (one that lost its port exits).
        std::thread::sleep(Duration::from_millis(200));
        match started.child.try_wait() {
            Ok(None) => Some(started),
            _ => {
                let _ = started.child.wait();
                None
            }
        }
    }

    /// The client ids mosquitto logged as connected ("New client connected from A as ID").
    fn client_ids(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter_map(|l| l.split(" as ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Connections established to the plain listener, from the kernel's table.
    fn established(&self) -> usize {
        let port = format!(":{:04X} ", self.plain.port());
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.len() > 3 && format!("{} ", &fields[1][8..]) == port && fields[3] == "01"
            })
            .count()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `throng mqtt ARGS --json --quiet` and returns its report.
fn mqtt(args: &[&str]) -> Value {
    let output = throng()
        .arg("mqtt")
        .args(args)
        .args(["--json", "--quiet"])
        .output()
        .unwrap();
    assert_succeeded(&output);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn spawn_mqtt(args: &[&str]) -> Child {
    throng()
        .arg("mqtt")
        .args(args)
        .args(["--json", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn report_of(child: Child) -> Value {
    let output = child.wait_with_output().unwrap();
    assert_succeeded(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn every_qos_in_both_versions_plain_and_over_tls_delivers_as_promised() {
    let broker = Mosquitto::start("qos", "allow_anonymous true");
    let cert = broker.dir.join("cert.pem");
    let mut runs = Vec::new();
    for version in ["3", "5"] {
        for qos in ["0", "1", "2"] {
            for tls in [false, true] {
                let port = if tls {
                    broker.tls.port()
                } else {
                    broker.plain.port()
                };
                let prefix = format!("q{qos}v{version}t{}", u8::from(tls));
                let topic = format!("{prefix}/%i");
                let mut args: Vec<String> = [
                    "pub",
                    "-h",
                    "localhost",
                    "-p",
                    &port.to_string(),
                    "-V",
                    version,
                    "-q",
                    qos,
                    "-c",
                    "4",
                    "-R",
                    "1000",
                    "--rate",
                    "400/1s",
                    "--subscribers",
                    "2",
                    "--duration",
                    "1s",
                    "--drain",
                    "1s",
                    "--threads",
                    "1",
                    "-t",
                    &topic,
                    "--prefix",
                    &prefix,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                if tls {
                    args.extend([
                        "-S".into(),
                        "--root-certs".into(),
                        cert.display().to_string(),
                    ]);
                }
                let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
                runs.push((prefix, spawn_mqtt(&args_ref)));
            }
        }
    }
    for (name, child) in runs {
        let report = report_of(child);
        let receive = &report["receive"];
        assert_eq!(report["errors"], serde_json::json!({}), "{name}: {report}");
        assert_eq!(report["connections"]["connected"], 6, "{name}: {report}");
        // 400 due; on a busy machine the last few may still be unsent when publishing ends
        // (counted as due, not sent): delivery is judged on what was sent.
        assert_eq!(report["publish"]["due"], 400, "{name}: {report}");
        let sent = report["publish"]["sent"].as_u64().unwrap();
        assert!(sent > 200, "{name}: {report}");
        // Two subscribers, each matching all four publishers.
        assert_eq!(receive["expected"], 2 * sent, "{name}: {report}");
        assert_eq!(
            receive["unique"],
            2 * sent,
            "{name}: nothing lost: {report}"
        );
        if name.starts_with("q2") {
            assert_eq!(receive["duplicates"], 0, "{name}: exactly once: {report}");
        }
        if !name.starts_with("q0") {
            assert_eq!(report["publish"]["acked"], sent, "{name}: {report}");
        }
        assert!(receive["e2e"]["99th"].as_u64().unwrap() > 0, "{name}");
        if name.ends_with("t1") {
            assert!(!report["connections"]["tls"].is_null(), "{name}: {report}");
        }
    }
}

#[test]
fn a_stalled_broker_shows_in_the_latency_from_the_intended_send() {
    // mosquitto keeps 1,000 messages per client by default and drops the rest (a run with the
    // default lost 1,956 of 12,000 on the way to the subscriber after the stall).
    let broker = Mosquitto::start("stall", "allow_anonymous true\nmax_queued_messages 100000");
    let port = broker.plain.port().to_string();
    // 2,000 messages/s for 6 s over 10 publishers at QoS 1, one subscriber.
    let child = spawn_mqtt(&[
        "pub",
        "-p",
        &port,
        "-q",
        "1",
        "-c",
        "10",
        "-R",
        "1000",
        "--rate",
        "2000/1s",
        "--subscribers",
        "1",
        "--duration",
        "6s",
        "--drain",
        "3s",
        "-t",
        "stall/%i",
    ]);
    wait_until(|| (broker.established() >= 11).then_some(())).expect("all connected");
    // Publishing starts a second after the ramp; stop the broker for 2 s inside it.
    std::thread::sleep(Duration::from_millis(2_000));
    broker.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(2));
    broker.signal(libc::SIGCONT);
    let report = report_of(child);
    let (publish, receive) = (&report["publish"], &report["receive"]);
    assert_eq!(publish["offered_rate"], 2000.0, "{report}");
    // The schedule kept its 12,000 due whatever the broker did; what was sent all arrived.
    assert_eq!(publish["due"], 12_000, "{report}");
    let sent = publish["sent"].as_u64().unwrap();
    assert!(sent > 6_000, "{report}");
    assert_eq!(receive["unique"], sent, "QoS 1 loses nothing: {report}");
    let p99 = receive["e2e"]["99th"].as_u64().unwrap();
    assert!(
        p99 >= 1_500_000_000,
        "the stall shows: p99 {p99} ns: {report}"
    );
    assert!(
        publish["delayed_by_window"].as_u64().unwrap() > 0,
        "the window filled while the broker was stopped: {report}"
    );
}

/// `--arrivals poisson`: the ramp's connections come as a Poisson process of the rate (its
/// gaps are checked in throng-mqtt-bench's unit tests); every one connects and holds.
#[test]
fn a_poisson_ramp_connects_every_client() {
    let broker = Mosquitto::start("poisson", "allow_anonymous true");
    let port = broker.plain.port().to_string();
    let report = mqtt(&[
        "conn",
        "-p",
        &port,
        "-c",
        "40",
        "-R",
        "200",
        "--arrivals",
        "poisson",
        "--duration",
        "1s",
    ]);
    assert_eq!(report["connections"]["connected"], 40, "{report}");
    assert!(
        report["errors"].as_object().is_none_or(|e| e.is_empty()),
        "{report}"
    );
}

/// Held connections ping every keep-alive (woken by their thread's one timer, not a timer each)
/// and time the answers.
#[test]
fn held_connections_ping_every_keep_alive_and_time_the_answers() {
    let broker = Mosquitto::start("pings", "allow_anonymous true");
    let port = broker.plain.port().to_string();
    let report = mqtt(&[
        "conn",
        "-p",
        &port,
        "-c",
        "30",
        "-R",
        "300",
        "-k",
        "1",
        "--duration",
        "3500ms",
    ]);
    assert_eq!(report["connections"]["connected"], 30, "{report}");
    let pings = &report["pings"];
    let (sent, answered) = (
        pings["sent"].as_u64().unwrap(),
        pings["answered"].as_u64().unwrap(),
    );
    // About 3 each in 3.5 s; a busy machine may wake them late, never skip them all.
    assert!(sent >= 60, "{report}");
    // At most one in flight per connection at the stop.
    assert!(answered + 30 >= sent && answered > 0, "{report}");
    assert_eq!(pings["rtt"]["count"].as_u64(), Some(answered), "{report}");
    assert!(
        report["errors"].as_object().is_none_or(|e| e.is_empty()),
        "{report}"
    );
}

#[test]
fn a_duplicate_client_id_shows_as_a_takeover_and_a_refusal_by_its_code() {
    let broker = Mosquitto::start("takeover", "allow_anonymous true");
    let port = broker.plain.port().to_string();
    let first = spawn_mqtt(&[
        "conn",
        "-p",
        &port,
        "-c",
        "1",
        "--prefix",
        "same",
        "--duration",
        "4s",
    ]);
    wait_until(|| (broker.established() >= 1).then_some(())).expect("connected");
    let second = mqtt(&[
        "conn",
        "-p",
        &port,
        "-c",
        "1",
        "--prefix",
        "same",
        "--duration",
        "1s",
    ]);
    assert_eq!(second["connections"]["connected"], 1, "{second}");
    // mosquitto 2.0.11 closes the older connection without a DISCONNECT (it gives no reason
    // even to MQTT 5 clients), so the end is named by what was seen: the broker closed it.
    let first = report_of(first);
    assert_eq!(first["errors"]["closed"]["count"], 1, "{first}");
    // A broker that gives the reason (MQTT 5, 0x8E: session taken over) is named by it.
    let taken_over = scripted_broker(&[0x20, 0x03, 0x00, 0x00, 0x00], &[0xE0, 0x02, 0x8E, 0x00]);
    let report = mqtt(&[
        "conn",
        "-p",
        &taken_over.port().to_string(),
        "-c",
        "1",
        "--duration",
        "1s",
    ]);
    assert_eq!(report["errors"]["takeover"]["count"], 1, "{report}");
    assert_eq!(report["server_disconnects"]["142"], 1, "{report}");

    let closed = Mosquitto::start("refusing", "allow_anonymous false");
    let port = closed.plain.port().to_string();
    for (version, code) in [("3", "5"), ("5", "135")] {
        let report = mqtt(&[
            "conn",
            "-p",
            &port,
            "-V",
            version,
            "-c",
            "3",
            "--duration",
            "1s",
        ]);
        assert_eq!(report["connections"]["connected"], 0, "{report}");
        assert_eq!(report["connections"]["connack_codes"][code], 3, "{report}");
        let refused = &report["errors"]["connack-refused"];
        assert_eq!(refused["count"], 3, "{report}");
        assert!(
            refused["example"]
                .as_str()
                .unwrap()
                .contains("not authorized"),
            "{report}"
        );
    }
}

/// A broker that accepts, sends `connack`, then `then`.
fn scripted_broker(connack: &'static [u8], then: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut connect = [0u8; 256];
            let _ = stream.read(&mut connect);
            let _ = stream.write_all(connack);
            let _ = stream.write_all(then);
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    addr
}

#[test]
fn a_bad_or_oversized_packet_from_the_broker_is_named_and_ends_that_connection_only() {
    // A PUBLISH announcing 2 MiB, over --max-packet 65536: refused from its header.
    const CONNACK_311: &[u8] = &[0x20, 0x02, 0x00, 0x00];
    let big = scripted_broker(CONNACK_311, &[0x30, 0x80, 0x80, 0x80, 0x01]);
    let report = mqtt(&[
        "sub",
        "-p",
        &big.port().to_string(),
        "-V",
        "3",
        "-c",
        "2",
        "--max-packet",
        "65536",
        "--duration",
        "1s",
    ]);
    // The scripted broker answers SUBSCRIBE with nothing: the PUBLISH comes first.
    let errors = &report["errors"];
    assert_eq!(errors["packet-too-large"]["count"], 2, "{report}");
    // PUBACK with packet identifier 0, forbidden (§2.2.1).
    let bad = scripted_broker(CONNACK_311, &[0x40, 0x02, 0x00, 0x00]);
    let report = mqtt(&[
        "conn",
        "-p",
        &bad.port().to_string(),
        "-V",
        "3",
        "-c",
        "2",
        "--duration",
        "1s",
    ]);
    let protocol = &report["errors"]["protocol"];
    assert_eq!(protocol["count"], 2, "{report}");
    assert!(
        protocol["example"]
            .as_str()
            .unwrap()
            .contains("packet identifier"),
        "{report}"
    );
}

#[test]
fn the_proxy_reads_the_connect_keeps_each_client_id_on_its_broker_and_refuses_what_is_not_mqtt() {
    let brokers = [
        Mosquitto::start("proxy-a", "allow_anonymous true"),
        Mosquitto::start("proxy-b", "allow_anonymous true"),
    ];
    let dir = Dir::new("mqtt-mode");
    dir.certificate("mqtt", &["localhost"]);
    let config = format!(
        "[global]\nthreads = 2\nadmin = \"127.0.0.1:0\"\n\n[defaults]\nmode = \"mqtt\"\n\n\
         [frontends.secure]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"by_id\"\n\
         tls = {{ certificates = [{{ cert = \"mqtt.pem\", key = \"mqtt.key\" }}] }}\n\n\
         [frontends.plain]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"one\"\n\n\
         [backends.by_id]\nbalance = \"client-id\"\nservers = [\
         {{ name = \"a\", address = \"{}\" }}, {{ name = \"b\", address = \"{}\" }}]\n\n\
         [backends.one]\nservers = [{{ name = \"a\", address = \"{}\" }}]\n",
        brokers[0].plain, brokers[1].plain, brokers[0].plain
    );
    let proxy = Proxy::start(&dir, &config);
    let secure = proxy.addr("secure").port().to_string();
    // The same 40 client ids twice, over TLS: each lands on the same broker both times.
    for _ in 0..2 {
        let report = mqtt(&[
            "conn",
            "-h",
            "localhost",
            "-p",
            &secure,
            "-S",
            "--insecure",
            "-c",
            "40",
            "-R",
            "1000",
            "--prefix",
            "fixed",
            "--duration",
            "500ms",
        ]);
        assert_eq!(report["connections"]["connected"], 40, "{report}");
        assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    }
    let on_a: std::collections::HashSet<String> = brokers[0].client_ids().into_iter().collect();
    let on_b: std::collections::HashSet<String> = brokers[1].client_ids().into_iter().collect();
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "a: {on_a:?}, b: {on_b:?}"
    );
    assert_eq!(on_a.len() + on_b.len(), 40, "a: {on_a:?}, b: {on_b:?}");
    assert!(
        on_a.is_disjoint(&on_b),
        "an id on both brokers: {on_a:?} {on_b:?}"
    );
    // The log line carries what the CONNECT said.
    let line = proxy.wait_for_line(&["secure~ by_id/", "{fixed-conn-0||5|300}"]);
    assert!(line.contains(" -- ") || line.contains(" CD "), "{line}");

    // Publishing through the proxy at QoS 1: nothing lost on the way.
    let plain = proxy.addr("plain").port().to_string();
    let report = mqtt(&[
        "pub",
        "-p",
        &plain,
        "-q",
        "1",
        "-c",
        "4",
        "--rate",
        "400/1s",
        "--subscribers",
        "2",
        "--duration",
        "1s",
        "-t",
        "through/%i",
    ]);
    assert_eq!(
        report["receive"]["unique"], report["receive"]["expected"],
        "{report}"
    );
    assert_eq!(
        report["receive"]["expected"],
        2 * report["publish"]["sent"].as_u64().unwrap(),
        "{report}"
    );

    // Not MQTT: closed before any server, counted and logged.
    let mut http = std::net::TcpStream::connect(proxy.addr("plain")).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = http.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{answer:?}");
    proxy.wait_for_line(&["plain plain/<NOSRV>", " PR "]);
    assert_eq!(
        proxy.metric("throng_proxy_frontend_mqtt_refusals_total{frontend=\"plain\"}"),
        1.0
    );
}

/// A client's keep-alive sets its tunnel's idle timeout only up to `mqtt-max-idle`: a
/// CONNECT asking for 65,535 s (27 hours of silence at 1.5 keep-alives) is closed once idle
/// for the operator's ceiling, and the log line says the client side timed out.
#[test]
fn a_clients_keep_alive_cannot_hold_a_tunnel_past_the_operators_ceiling() {
    // A broker that reads and never answers: only the idle timeout can end the tunnel.
    let silent = common::proxy::Backend::start(|mut stream| {
        let mut buf = [0u8; 1024];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    });
    let dir = Dir::new("mqtt-max-idle");
    let config = format!(
        "[global]\nthreads = 1\n\n[defaults]\nmode = \"mqtt\"\n\n\
         [frontends.m]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"one\"\n\
         timeout = {{ mqtt-max-idle = \"1s\" }}\n\n\
         [backends.one]\nservers = [{{ name = \"a\", address = \"{}\" }}]\n",
        silent.addr
    );
    let proxy = Proxy::start(&dir, &config);
    let mut client = std::net::TcpStream::connect(proxy.addr("m")).unwrap();
    // CONNECT, MQTT 3.1.1, clean session, keep-alive 65,535 s, client id "id".
    let connect = [
        0x10, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0xff, 0xff, 0, 2, b'i', b'd',
    ];
    client.write_all(&connect).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 16];
    // Closed by the proxy (no answer ever comes): 0 bytes, not a read timeout.
    assert!(
        matches!(client.read(&mut buf), Ok(0)),
        "the tunnel was not closed"
    );
    let line = proxy.wait_for_line(&["m one/a", "{id||3.1.1|65535}"]);
    assert!(line.contains(" cD "), "{line}");
}

/// `[30/Nov/2026:14:40:30.366]` in a log line, as milliseconds of the day.
fn accepted_ms(line: &str) -> u64 {
    let stamp = line.split('[').nth(1).unwrap().split(']').next().unwrap();
    let time = stamp.split(':').skip(1).collect::<Vec<_>>();
    let (h, m, s): (u64, u64, f64) = (
        time[0].parse().unwrap(),
        time[1].parse().unwrap(),
        time[2].parse().unwrap(),
    );
    (h * 3600 + m * 60) * 1000 + (s * 1000.0) as u64
}

#[test]
fn a_rate_limited_frontend_spreads_a_reconnect_storm() {
    let broker = Mosquitto::start("rate", "allow_anonymous true");
    let dir = Dir::new("mqtt-rate");
    let config = format!(
        "[global]\nthreads = 2\nadmin = \"127.0.0.1:0\"\n\n[defaults]\nmode = \"mqtt\"\n\n\
         [frontends.storm]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"one\"\n\
         rate_limit_sessions = 1000\n\n\
         [backends.one]\nservers = [{{ name = \"a\", address = \"{}\" }}]\n",
        broker.plain
    );
    let proxy = Proxy::start(&dir, &config);
    let port = proxy.addr("storm").port().to_string();
    // 3,000 clients offered at 5,000/s: a second's worth (1,000) at once, the other 2,000 at
    // 1,000/s, so the accepts span at least about 2 s however fast the machine is.
    let report = mqtt(&[
        "conn",
        "-p",
        &port,
        "-c",
        "3000",
        "-R",
        "5000",
        "-k",
        "60",
        "--duration",
        "3s",
    ]);
    assert_eq!(report["connections"]["connected"], 3000, "{report}");
    let lines = wait_until(|| {
        let lines = proxy.log();
        (lines.len() >= 3000).then_some(lines)
    })
    .expect("a log line per connection");
    let times: Vec<u64> = lines.iter().map(|l| accepted_ms(l)).collect();
    let span = times.iter().max().unwrap() - times.iter().min().unwrap();
    assert!(span >= 1_800, "3,000 accepts over {span} ms at 1,000/s");
    assert!(proxy.metric("throng_proxy_frontend_rate_limited_total{frontend=\"storm\"}") > 0.0);
}

#[test]
fn the_proxy_protocol_carries_the_clients_address_through_two_proxies() {
    let broker = Mosquitto::start("proxy-protocol", "allow_anonymous true");
    let inner_dir = Dir::new("mqtt-pp-inner");
    // The inner proxy trusts a PROXY header on its listener; the outer one sends one (v2).
    let inner = Proxy::start(
        &inner_dir,
        &format!(
            "[global]\nthreads = 1\nadmin = \"127.0.0.1:0\"\n\n[defaults]\nmode = \"mqtt\"\n\n\
             [frontends.inner]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"b\"\naccept_proxy = true\n\n\
             [backends.b]\nservers = [{{ name = \"m\", address = \"{}\" }}]\n",
            broker.plain
        ),
    );
    let outer_dir = Dir::new("mqtt-pp-outer");
    let outer = Proxy::start(
        &outer_dir,
        &format!(
            "[global]\nthreads = 1\n\n[defaults]\nmode = \"mqtt\"\n\n\
             [frontends.outer]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"b\"\n\n\
             [backends.b]\nservers = [{{ name = \"inner\", address = \"{}\", send_proxy = \"v2\" }}]\n",
            inner.addr("inner")
        ),
    );
    let report = mqtt(&[
        "conn",
        "-p",
        &outer.addr("outer").port().to_string(),
        "-c",
        "3",
        "--ifaddr",
        "127.0.0.5",
        "--prefix",
        "pp",
        "--duration",
        "500ms",
    ]);
    assert_eq!(report["connections"]["connected"], 3, "{report}");
    // The inner proxy logs the client's own address, not the outer proxy's.
    let line = inner.wait_for_line(&["inner b/m", "{pp-conn-0||5|300}"]);
    assert!(line.starts_with("127.0.0.5:"), "{line}");

    // Version 1 by hand, then a CONNECT in the same segment: both read, in order.
    let mut raw = std::net::TcpStream::connect(inner.addr("inner")).unwrap();
    let mut bytes = b"PROXY TCP4 192.0.2.9 127.0.0.1 5555 1883\r\n".to_vec();
    bytes.extend_from_slice(&[
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30, 0, 1, b'x',
    ]);
    raw.write_all(&bytes).unwrap();
    let mut connack = [0u8; 4];
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    drop(raw);
    let line = inner.wait_for_line(&["{x||3.1.1|30}"]);
    assert!(line.starts_with("192.0.2.9:5555 "), "{line}");

    // No header where one is required: refused and counted.
    let mut bare = std::net::TcpStream::connect(inner.addr("inner")).unwrap();
    bare.write_all(&[
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30, 0, 1, b'y',
    ])
    .unwrap();
    bare.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = bare.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{answer:?}");
    let refused = wait_until(|| {
        let n =
            inner.metric("throng_proxy_frontend_proxy_header_refusals_total{frontend=\"inner\"}");
        (n >= 1.0).then_some(n)
    });
    assert_eq!(refused, Some(1.0));
}

/// A connection to `to` from the source address `from` (a loopback address of 127.0.0.0/8).
fn connect_from(from: &str, to: SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// `accept_proxy` naming its senders: from them the header is required (and may come in
/// pieces: the proxy waits for the rest without spinning); from anyone else a connection is
/// its client's own, and one that brings a header anyway is refused and logged.
#[test]
fn a_proxy_header_is_taken_from_the_named_senders_only() {
    let broker = Mosquitto::start("proxy-senders", "allow_anonymous true");
    let dir = Dir::new("mqtt-pp-senders");
    let proxy = Proxy::start(
        &dir,
        &format!(
            "[global]\nthreads = 1\nadmin = \"127.0.0.1:0\"\n\n[defaults]\nmode = \"mqtt\"\n\n\
             [frontends.edge]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"b\"\n\
             accept_proxy = [\"127.0.0.0/30\", \"::1\"]\n\n\
             [backends.b]\nservers = [{{ name = \"m\", address = \"{}\" }}]\n",
            broker.plain
        ),
    );
    let edge = proxy.addr("edge");
    let connect = |id: u8| {
        [
            0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30, 0, 1, id,
        ]
    };
    let connack = |stream: &mut std::net::TcpStream| {
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer).map(|_| answer)
    };

    // A named sender (127.0.0.2), its header in three pieces.
    let mut lb = connect_from("127.0.0.2", edge);
    let header = b"PROXY TCP4 198.51.100.7 127.0.0.1 4444 1883\r\n";
    for piece in [&header[..3], &header[3..20], &header[20..]] {
        lb.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    lb.write_all(&connect(b'a')).unwrap();
    assert_eq!(connack(&mut lb).unwrap(), [0x20, 2, 0, 0]);
    // A tunnel's line is written when it ends.
    drop(lb);
    let line = proxy.wait_for_line(&["{a||3.1.1|30}"]);
    assert!(line.starts_with("198.51.100.7:4444 "), "{line}");

    // Anyone else (127.0.0.9): its own client, served with its own address.
    let mut direct = connect_from("127.0.0.9", edge);
    direct.write_all(&connect(b'b')).unwrap();
    assert_eq!(connack(&mut direct).unwrap(), [0x20, 2, 0, 0]);
    drop(direct);
    let line = proxy.wait_for_line(&["{b||3.1.1|30}"]);
    assert!(line.starts_with("127.0.0.9:"), "{line}");

    // ... and one that forges a header is refused, logged and counted, in both versions.
    let v2 = throng_proxy::proxy_protocol::header(
        throng_proxy::proxy_protocol::Version::V2,
        "198.51.100.8:1".parse().unwrap(),
        edge,
    );
    for forged in [header.to_vec(), v2] {
        let mut forger = connect_from("127.0.0.9", edge);
        // One write: the proxy may close (and reset) as soon as it has seen the header.
        let mut bytes = forged.clone();
        bytes.extend_from_slice(&connect(b'c'));
        let _ = forger.write_all(&bytes);
        let mut answer = Vec::new();
        let _ = forger.read_to_end(&mut answer);
        assert!(answer.is_empty(), "{answer:?}");
    }
    proxy.wait_for_message(
        "a PROXY protocol header from 127.0.0.9, which accept_proxy does not name",
    );
    let refused = wait_until(|| {
        let n =
            proxy.metric("throng_proxy_frontend_proxy_header_refusals_total{frontend=\"edge\"}");
        (n >= 2.0).then_some(n)
    });
    assert_eq!(refused, Some(2.0));
    assert!(!proxy.log().iter().any(|l| l.contains("198.51.100.8")));
}

/// `--check` says what `accept_proxy = true` trusts.
#[test]
fn check_warns_that_accept_proxy_true_trusts_anyone() {
    let dir = Dir::new("mqtt-pp-check");
    let file = dir.write(
        "proxy.toml",
        "[defaults]\nmode = \"mqtt\"\n[frontends.edge]\nbind = [\"127.0.0.1:1883\"]\ndefault_backend = \"b\"\naccept_proxy = true\n\
         [backends.b]\nservers = [{ name = \"m\", address = \"127.0.0.1:1884\" }]\n",
    );
    let out = throng()
        .args(["proxy", "--check", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("warning: frontends.edge.accept_proxy = true trusts a PROXY header from anyone who can reach 127.0.0.1:1883"),
        "{said}"
    );
}

/// `throng report --type json FILES...`.
fn report_files(files: &[&std::path::Path], env: &[(&str, &str)]) -> Result<Value, String> {
    let output = throng()
        .arg("report")
        .args(["--type", "json"])
        .args(files)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn an_mqtt_runs_results_file_reports_plots_and_encodes_as_the_run_itself_did() {
    let broker = Mosquitto::start("results", "allow_anonymous true");
    let port = broker.plain.port().to_string();
    let dir = scratch_dir("mqtt-results");
    let file = dir.join("run.bin");
    let own = mqtt(&[
        "pub",
        "-p",
        &port,
        "-c",
        "10",
        "--rate",
        "400/1s",
        "-q",
        "1",
        "--subscribers",
        "2",
        "--duration",
        "2s",
        "--output",
        file.to_str().unwrap(),
        "--name",
        "story",
    ]);
    let read = report_files(&[&file], &[]).unwrap();

    // The file holds the run's histograms themselves: every figure reads back exactly.
    for section in ["connections", "publish", "receive", "pings", "errors"] {
        assert_eq!(own[section], read[section], "{section}: {own} vs {read}");
    }
    assert_eq!(read["publish"]["sent"], 800, "{read}");
    assert_eq!(read["receive"]["unique"], 1600, "{read}");
    assert_eq!(read["receive"]["lost"], 0, "{read}");

    let csv = throng()
        .args(["encode", "--to", "csv"])
        .arg(&file)
        .output()
        .unwrap();
    assert_succeeded(&csv);
    let csv = String::from_utf8(csv.stdout).unwrap();
    let mut rows = csv.lines();
    assert!(rows
        .next()
        .unwrap()
        .starts_with("second,connect_attempts,connected"));
    let published: u64 = rows
        .map(|row| row.split(',').nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        published, 800,
        "one row a second, adding up to the run:\n{csv}"
    );

    let plot = throng().arg("plot").arg(&file).output().unwrap();
    assert_succeeded(&plot);
    let page = String::from_utf8(plot.stdout).unwrap();
    for chart in [
        "Connections held",
        "Messages per second",
        "End-to-end latency",
    ] {
        assert!(page.contains(chart), "no {chart} chart");
    }
}

#[test]
fn mqtt_parts_and_processes_make_one_run_and_parts_of_another_are_refused() {
    let broker = Mosquitto::start("parts", "allow_anonymous true");
    let port = broker.plain.port().to_string();
    let dir = scratch_dir("mqtt-parts");
    let start = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2)
    .to_string();
    let run = |index: usize, start: &str| {
        let file = dir.join(format!("part{index}-{start}.bin"));
        // Part 1 learns its place as a Kubernetes Indexed Job's pod does, and is itself two
        // processes (as a host past one process's open-files limit runs its part).
        let mut command = throng();
        command.args([
            "mqtt",
            "pub",
            "-p",
            &port,
            "-c",
            "12",
            "--rate",
            "300/1s",
            "-q",
            "1",
            "--subscribers",
            "3",
            "--duration",
            "2s",
            "--quiet",
            "--start-at",
            start,
            "--output",
            file.to_str().unwrap(),
        ]);
        if index == 1 {
            command
                .args(["--parts", "3", "--procs", "2"])
                .env("JOB_COMPLETION_INDEX", "1");
        } else {
            command.args(["--part", &format!("{index}/3")]);
        }
        (command.stdout(Stdio::null()).spawn().unwrap(), file)
    };
    let parts: Vec<_> = (0..3).map(|i| run(i, &start)).collect();
    let files: Vec<PathBuf> = parts
        .into_iter()
        .map(|(mut child, file)| {
            assert!(child.wait().unwrap().success());
            file
        })
        .collect();
    let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let whole = report_files(&paths, &[]).unwrap();

    // Three processes, one schedule: 300/s for 2 s, each message once, to each subscriber.
    assert_eq!(whole["connections"]["connected"], 15, "{whole}");
    assert_eq!(whole["publish"]["due"], 600, "{whole}");
    assert_eq!(whole["publish"]["sent"], 600, "{whole}");
    assert_eq!(whole["receive"]["expected"], 1800, "{whole}");
    assert_eq!(whole["receive"]["lost"], 0, "{whole}");
    assert_eq!(whole["parts"].as_array().unwrap().len(), 3, "{whole}");

    // A part missing is named; its subscribers and publishers count neither way.
    let two = report_files(&paths[..2], &[]).unwrap();
    let warnings = two["warnings"].to_string();
    assert!(warnings.contains("1 of 3 parts missing: 2"), "{warnings}");
    assert_eq!(two["receive"]["lost"], 0, "{two}");

    // A part of another run (another start) is refused, naming the files.
    let (mut other, other_file) = run(2, &(start.parse::<u64>().unwrap() + 1).to_string());
    assert!(other.wait().unwrap().success());
    let refused = report_files(&[paths[0], paths[1], &other_file], &[]).unwrap_err();
    assert!(refused.contains("not one run"), "{refused}");

    // --procs: the same run in two processes of this machine, merged as they come.
    let split = mqtt(&[
        "pub",
        "-p",
        &port,
        "-c",
        "12",
        "--rate",
        "300/1s",
        "-q",
        "1",
        "--subscribers",
        "3",
        "--duration",
        "2s",
        "--procs",
        "2",
    ]);
    assert_eq!(split["publish"]["sent"], 600, "{split}");
    assert_eq!(split["receive"]["expected"], 1800, "{split}");
    assert_eq!(split["receive"]["lost"], 0, "{split}");
}

#[test]
fn the_knee_searches_an_mqtt_publish_rate_on_end_to_end_latency() {
    let broker = Mosquitto::start("knee", "allow_anonymous true");
    let port = broker.plain.port().to_string();
    let dir = scratch_dir("mqtt-knee");
    let knee = |slo: &str, to: &str| {
        throng()
            .args([
                "knee", "--slo", slo, "--from", "200", "--to", to, "--step", "1s",
            ])
            .args(["--validate", "0", "--pause", "100ms", "--json", "--dir"])
            .arg(dir.join(slo))
            .args([
                "mqtt",
                "-p",
                &port,
                "-c",
                "5",
                "--subscribers",
                "1",
                "-q",
                "1",
            ])
            .args(["-R", "1000"])
            .output()
            .unwrap()
    };
    // Well within what mosquitto does: every step passes, up to --to.
    let easy = knee("p99=2s", "800");
    assert_succeeded(&easy);
    let found: Value = serde_json::from_slice(&easy.stdout).unwrap();
    assert_eq!(found["knee"], 800.0, "{found}");
    let steps = found["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "200 then 800: {found}");
    // Each step is an MQTT run's results file: the report reads it, nothing lost.
    let first = std::path::PathBuf::from(steps[0]["results"].as_str().unwrap());
    let report = report_files(&[&first], &[]).unwrap();
    assert_eq!(report["publish"]["offered_rate"], 200.0, "{report}");
    assert_eq!(report["receive"]["lost"], 0, "{report}");
    // No message crosses a broker in a microsecond: no rate meets it.
    let impossible = knee("p99=1us", "800");
    assert_eq!(impossible.status.code(), Some(1), "{impossible:?}");
    let outcome: Value = serde_json::from_slice(&impossible.stdout).unwrap();
    assert!(outcome["knee"].is_null(), "{outcome}");
    assert!(
        outcome["steps"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("p99")),
        "{outcome}"
    );
}
