//! The processes a scenario starts (pong, the proxy, the monitor), each stopped when dropped, and
//! the watch file that tells the monitor which processes are which.

use crate::config::{Brokers, Proxy, Scenario};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started process has to say it is ready. A proxy of many processes starts them
/// all first.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A process the scenario started; stopped (SIGTERM, then SIGKILL after 30 s) when dropped.
pub struct Started {
    name: &'static str,
    child: Child,
}

impl Started {
    /// Starts `program args`, its stderr to `dir/NAME.log`, and waits for its first stdout line
    /// when `wait_for` is given.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        dir: &Path,
        wait_for: Option<&str>,
    ) -> Result<(Started, String), String> {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.log")))
            .map_err(|e| format!("{name}: log file: {e}"))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
        let ready = child.stdout.take().map(first_line);
        let mut started = Started { name, child };
        let mut first = String::new();
        if let Some(expected) = wait_for {
            first = ready
                .and_then(|ready| ready.recv_timeout(READY_TIMEOUT).ok())
                .unwrap_or_default();
            if !first.contains(expected) {
                started.stop();
                return Err(format!("{name} did not start: {}", log_tail(dir, name)));
            }
        }
        Ok((started, first))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stop(&mut self) {
        if !self.running() {
            return;
        }
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        say(&format!("{} did not stop in 30 s: killing it", self.name));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn say(text: &str) {
    eprintln!("throng scenario: {text}");
}

/// The last lines of `dir/NAME.log`, for a message.
pub fn log_tail(dir: &Path, name: &str) -> String {
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// `NAME PID` lines the monitor reads every sample: which processes are which component.
pub struct Watch(PathBuf);

impl Watch {
    pub fn new(dir: &Path) -> Result<Watch, String> {
        let path = dir.join("watch.txt");
        std::fs::write(&path, "").map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Watch(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn add(&self, name: &str, pid: i32) {
        let appended = std::fs::File::options()
            .append(true)
            .open(&self.0)
            .and_then(|mut f| writeln!(f, "{name} {pid}"));
        if let Err(e) = appended {
            say(&format!("watch file: {e}"));
        }
    }
}

/// pong, where the scenario runs it.
pub enum PongStarted {
    /// Here: one process group, watched by the monitor.
    Here(Started),
    /// On each of `[pong.hosts]`, through the launcher.
    OnHosts(Vec<OnHost>),
}

pub fn pong(scenario: &Scenario, exe: &Path, dir: &Path) -> Result<PongStarted, String> {
    let args = |listen: &[SocketAddr]| {
        let mut args = vec![
            "pong".to_string(),
            "--threads".into(),
            scenario.pong_threads.to_string(),
            "--procs".into(),
            scenario.pong_procs.to_string(),
        ];
        for addr in listen {
            args.extend(["--listen".to_string(), addr.to_string()]);
        }
        args
    };
    let shape = format!(
        "{} processes of {} threads",
        scenario.pong_procs, scenario.pong_threads
    );
    let Some(hosts) = scenario
        .hosts
        .as_ref()
        .filter(|_| !scenario.pong_hosts.is_empty())
    else {
        say(&format!(
            "starting throng pong on {} ({shape})",
            throng_net::listen::describe(&scenario.pong),
        ));
        let (pong, _) = Started::spawn(
            "pong",
            exe,
            &args(&scenario.pong),
            dir,
            Some("listening on"),
        )?;
        return Ok(PongStarted::Here(pong));
    };
    let mut started = Vec::new();
    for (host, listen) in &scenario.pong_hosts {
        say(&format!(
            "starting throng pong on {host}, {} ({shape})",
            throng_net::listen::describe(listen),
        ));
        let mut command = crate::phases::on_host(hosts, host, exe);
        command.args(args(listen)).arg("--until-stdin-closes");
        let log = dir.join(format!("pong.{host}.log"));
        let pong = OnHost::spawn(command, &log, Some("listening on"))
            .map_err(|why| format!("pong on {host}: {why}"))?;
        started.push(pong);
    }
    Ok(PongStarted::OnHosts(started))
}

impl PongStarted {
    /// For the watch file: pong here, or the launchers on the hosts (as a phase's parts are
    /// watched: `ip netns exec` becomes pong itself; over ssh, this machine sees only ssh).
    pub fn pids(&self) -> Vec<i32> {
        match self {
            PongStarted::Here(pong) => vec![pong.pid()],
            PongStarted::OnHosts(pongs) => pongs.iter().map(|p| p.child.id() as i32).collect(),
        }
    }

    pub fn stop(&mut self) {
        match self {
            PongStarted::Here(pong) => pong.stop(),
            PongStarted::OnHosts(pongs) => OnHost::stop_all(pongs.iter_mut()),
        }
    }
}

/// The proxy's processes, the address to attack, and whether it speaks TLS.
pub struct ProxyStarted {
    pub processes: Vec<Started>,
    pub target: SocketAddr,
    pub tls: bool,
}

pub fn proxy(scenario: &Scenario, exe: &Path, dir: &Path) -> Result<ProxyStarted, String> {
    let certificate = || -> Result<(), String> {
        let (cert, key) = throng_tls::config::self_signed(&["localhost", "127.0.0.1"])?;
        std::fs::write(dir.join("cert.pem"), &cert).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("key.pem"), &key).map_err(|e| e.to_string())?;
        // HAProxy takes the chain and the key in one file.
        std::fs::write(dir.join("cert-and-key.pem"), format!("{cert}{key}"))
            .map_err(|e| e.to_string())
    };
    match &scenario.proxy {
        Proxy::Throng {
            listen,
            threads,
            processes,
        } => {
            certificate()?;
            let mut config = throng_config(*listen, *threads, *processes, &scenario.pong, dir);
            if scenario.phases.iter().any(|p| p.http2) {
                // A phase over HTTP/2: the frontend offers it, http/1.1 still for the others.
                config = config.replace(
                    "key = \"key.pem\" }] }",
                    "key = \"key.pem\" }], alpn = [\"h2\", \"http/1.1\"] }",
                );
            }
            if let Some(mqtt) = &scenario.mqtt {
                config.push_str(&throng_mqtt_config(mqtt.listen, &mqtt.brokers.addresses()));
            }
            std::fs::write(dir.join("proxy.toml"), config).map_err(|e| e.to_string())?;
            say(&format!(
                "starting throng proxy with TLS on {listen} ({processes} processes of {threads} threads; ECDSA P-256, self-signed)"
            ));
            let args = vec![
                "proxy".to_string(),
                "-c".into(),
                dir.join("proxy.toml").display().to_string(),
            ];
            let (proxy, _) =
                Started::spawn("proxy", exe, &args, dir, Some("throng proxy listening"))?;
            Ok(ProxyStarted {
                processes: vec![proxy],
                target: *listen,
                tls: true,
            })
        }
        Proxy::Haproxy {
            listen,
            threads,
            processes,
        } => {
            certificate()?;
            let mut config = haproxy_config(*listen, *threads, &scenario.pong, dir);
            if scenario.phases.iter().any(|p| p.http2) {
                config = config.replace("alpn http/1.1", "alpn h2,http/1.1");
            }
            if let Some(mqtt) = &scenario.mqtt {
                config.push_str(&haproxy_mqtt_config(
                    mqtt.listen,
                    &mqtt.brokers.addresses(),
                    dir,
                ));
            }
            std::fs::write(dir.join("haproxy.cfg"), config).map_err(|e| e.to_string())?;
            say(&format!(
                "starting HAProxy with TLS on {listen} ({processes} processes of {threads} threads, sharing the port)"
            ));
            let haproxy = which("haproxy").ok_or(
                "kind = \"haproxy\": no haproxy on the PATH (Debian: apt install haproxy)",
            )?;
            let args = vec![
                "-db".to_string(),
                "-f".into(),
                dir.join("haproxy.cfg").display().to_string(),
            ];
            let mut started = Vec::new();
            for _ in 0..*processes {
                started.push(Started::spawn("proxy", &haproxy, &args, dir, None)?.0);
            }
            // HAProxy says nothing when it is ready: its port answers, and it still runs.
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect_timeout(listen, Duration::from_millis(200)).is_err() {
                if Instant::now() > deadline {
                    return Err(format!("HAProxy did not start: {}", log_tail(dir, "proxy")));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_millis(500));
            if !started.iter_mut().all(Started::running) {
                return Err(format!("HAProxy did not start: {}", log_tail(dir, "proxy")));
            }
            Ok(ProxyStarted {
                processes: started,
                target: *listen,
                tls: true,
            })
        }
        Proxy::External { address, tls } => {
            say(&format!("using the proxy at {address}"));
            Ok(ProxyStarted {
                processes: Vec::new(),
                target: *address,
                tls: *tls,
            })
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

fn throng_config(
    listen: SocketAddr,
    threads: usize,
    processes: usize,
    pong: &[SocketAddr],
    dir: &Path,
) -> String {
    let servers: Vec<String> = pong
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ name = \"pong{}\", address = \"{a}\" }}", i + 1))
        .collect();
    format!(
        "[global]\nprocesses = {processes}\nthreads = {threads}\nlog = \"file:{}\"\n\n[defaults.timeout]\nclient = \"1h\"\nserver = \"1h\"\nhttp-request = \"30s\"\n\n\
         [frontends.tls]\nbind = [\"{listen}\"]\ndefault_backend = \"pong\"\ntls = {{ certificates = [{{ cert = \"cert.pem\", key = \"key.pem\" }}] }}\n\n\
         [backends.pong]\nbalance = \"leastconn\"\nservers = [{}]\n",
        dir.join("proxy-access.log").display(),
        servers.join(", ")
    )
}

/// The same job for HAProxy: TLS with the same certificate, leastconn over the same servers,
/// keep-alive on both sides, the same timeouts, an access log line per session.
fn haproxy_config(listen: SocketAddr, threads: usize, pong: &[SocketAddr], dir: &Path) -> String {
    let servers: String = pong
        .iter()
        .enumerate()
        .map(|(i, a)| format!("    server pong{} {a}\n", i + 1))
        .collect();
    format!(
        "global\n    nbthread {threads}\n    log stderr format raw local0\n\n\
         defaults\n    mode http\n    log global\n    option httplog\n    timeout client 1h\n    timeout server 1h\n    timeout connect 5s\n    timeout http-request 30s\n\n\
         frontend tls\n    bind {listen} ssl crt {} alpn http/1.1\n    default_backend pong\n\n\
         backend pong\n    balance leastconn\n{servers}",
        dir.join("cert-and-key.pem").display()
    )
}

/// The MQTT side of throng proxy: TLS on `listen`, the CONNECT read, each client id kept on
/// its broker.
fn throng_mqtt_config(listen: SocketAddr, brokers: &[SocketAddr]) -> String {
    let servers: Vec<String> = brokers
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ name = \"broker{}\", address = \"{a}\" }}", i + 1))
        .collect();
    // Brokers on loopback are reached from eight source addresses: from one, the kernel finds
    // a free port for a new connection to a broker already holding some 14,000 by trying them
    // one by one (`__inet_check_established`), and the proxy's threads spend their time there.
    let source = match brokers.iter().all(|b| b.ip().is_loopback() && b.is_ipv4()) {
        true => "source = \"127.0.1.1-127.0.1.8\"\n",
        false => "",
    };
    format!(
        "\n[frontends.mqtt]\nmode = \"mqtt\"\nbind = [\"{listen}\"]\ndefault_backend = \"brokers\"\ntls = {{ certificates = [{{ cert = \"cert.pem\", key = \"key.pem\" }}] }}\n\n\
         [backends.brokers]\nmode = \"mqtt\"\nbalance = \"client-id\"\n{source}servers = [{}]\n",
        servers.join(", ")
    )
}

/// The same for HAProxy: TCP mode with TLS; HAProxy cannot read a client id, so leastconn.
fn haproxy_mqtt_config(listen: SocketAddr, brokers: &[SocketAddr], dir: &Path) -> String {
    let servers: String = brokers
        .iter()
        .enumerate()
        .map(|(i, a)| format!("    server broker{} {a}\n", i + 1))
        .collect();
    format!(
        "\nfrontend mqtt\n    mode tcp\n    option tcplog\n    bind {listen} ssl crt {}\n    default_backend brokers\n\n\
         backend brokers\n    mode tcp\n    balance leastconn\n{servers}",
        dir.join("cert-and-key.pem").display()
    )
}

/// The mosquitto processes `[mqtt] brokers` asks for, one per address (one mosquitto holds
/// what one process's open files allow), each with its configuration and log in the folder;
/// none for an external broker.
pub fn brokers(scenario: &Scenario, dir: &Path) -> Result<Vec<Started>, String> {
    let Some((Brokers::Started(addresses), bridge)) =
        scenario.mqtt.as_ref().map(|m| (&m.brokers, m.bridge))
    else {
        return Ok(Vec::new());
    };
    let mosquitto = which("mosquitto")
        .ok_or("[mqtt] brokers: no mosquitto on the PATH (Debian: apt install mosquitto)")?;
    say(&format!(
        "starting mosquitto on {} ({} processes{})",
        throng_net::listen::describe(addresses),
        addresses.len(),
        if bridge && addresses.len() > 1 {
            ", bridged to the first"
        } else {
            ""
        }
    ));
    let mut started = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        let file = dir.join(format!("mosquitto-{}.conf", i + 1));
        // mosquitto's own limits stay (1,000 queued messages per client: a stalled subscriber
        // loses the rest, and throng counts them).
        let mut config = format!(
            "per_listener_settings false\nallow_anonymous true\n\
             log_dest stderr\nlog_type error\nlog_type warning\nlistener {} {}\n",
            address.port(),
            address.ip()
        );
        // A star: every other broker bridges every topic both ways to the first; mosquitto
        // sends nothing back over the bridge it came from (try_private).
        if let (true, Some(hub), true) = (bridge, addresses.first(), i > 0) {
            config.push_str(&format!(
                "connection hub{i}\naddress {hub}\ntopic # both 1\ntry_private true\n\
                 cleansession true\nnotifications false\nbridge_protocol_version mqttv311\n"
            ));
        }
        std::fs::write(&file, config).map_err(|e| format!("{}: {e}", file.display()))?;
        let args = vec!["-c".to_string(), file.display().to_string()];
        started.push(Started::spawn("broker", &mosquitto, &args, dir, None)?.0);
        // The hub listens before anyone bridges to it: a bridge that finds nobody retries only
        // seconds later, and messages published meanwhile would stay on their broker.
        if i == 0 {
            listening(&addresses[..1], &mut started, dir)?;
        }
    }
    listening(addresses, &mut started, dir)?;
    if let (true, [hub, leaves @ ..]) = (bridge, addresses.as_slice()) {
        bridged(*hub, leaves.len(), dir)?;
    }
    Ok(started)
}

/// Waits until mosquitto answers on `addresses` (it says nothing when it is ready), while
/// every broker started still runs.
fn listening(addresses: &[SocketAddr], started: &mut [Started], dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    for address in addresses {
        while TcpStream::connect_timeout(address, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline || !started.iter_mut().all(Started::running) {
                return Err(format!(
                    "mosquitto did not start: {}",
                    log_tail(dir, "broker")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Waits until `leaves` bridges hold a connection to the hub (from the kernel's table), so that
/// the first message published reaches every broker.
fn bridged(hub: SocketAddr, leaves: usize, dir: &Path) -> Result<(), String> {
    let SocketAddr::V4(hub) = hub else {
        return Ok(());
    };
    // /proc/net/tcp: "sl local rem st ...", addresses as hex of the address's bytes read little
    // endian, and the port; state 01 is ESTABLISHED.
    let remote = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(hub.ip().octets()),
        hub.port()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let connected = table
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| {
                fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"01")
            })
            .count();
        if connected >= leaves {
            // Their SUBSCRIBE follows the CONNECT at once.
            std::thread::sleep(Duration::from_millis(200));
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "mosquitto's bridges to the first broker did not connect ({connected} of \
                 {leaves} in 15 s): {}",
                log_tail(dir, "broker")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The monitor, watching the processes the watch file names.
pub fn monitor(
    scenario: &Scenario,
    exe: &Path,
    dir: &Path,
    watch: &Watch,
) -> Result<Started, String> {
    let args = vec![
        "monitor".to_string(),
        "-q".into(),
        "--interval".into(),
        format!("{}ms", scenario.monitor_interval.as_millis()),
        "--output".into(),
        dir.join("monitor.jsonl").display().to_string(),
        "--watch".into(),
        watch.path().display().to_string(),
    ];
    Ok(Started::spawn("monitor", exe, &args, dir, None)?.0)
}

/// A process on a host of `[hosts]`, started through the launcher; it stops when its stdin
/// closes (`--until-stdin-closes`; over ssh, when the session does).
pub struct OnHost {
    child: Child,
}

impl OnHost {
    /// Starts `command` (the launcher's) with its stderr appended to `log`, and waits for its
    /// first stdout line to contain `wait_for` when given.
    pub(crate) fn spawn(
        mut command: Command,
        log: &Path,
        wait_for: Option<&str>,
    ) -> Result<OnHost, String> {
        let log_name = log.display().to_string();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{log_name}: {e}"))?;
        let child = command
            .stdin(Stdio::piped())
            .stdout(if wait_for.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the launcher: {e}"))?;
        let mut started = OnHost { child };
        if let Some(expected) = wait_for {
            let first = started
                .child
                .stdout
                .take()
                .map(|stdout| {
                    first_line(stdout)
                        .recv_timeout(READY_TIMEOUT)
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            if !first.contains(expected) {
                OnHost::stop_all([&mut started]);
                return Err(format!("did not start: see {log_name}"));
            }
        }
        Ok(started)
    }

    /// Closes every process's stdin, then waits for them together, 15 s at most (then kills
    /// the launchers that are left).
    pub fn stop_all<'a>(processes: impl IntoIterator<Item = &'a mut OnHost>) {
        let mut processes: Vec<&mut OnHost> = processes.into_iter().collect();
        for process in processes.iter_mut() {
            drop(process.child.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for process in processes {
            while Instant::now() < deadline && matches!(process.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            process.kill();
        }
    }

    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for OnHost {
    fn drop(&mut self) {
        OnHost::stop_all([self]);
    }
}

/// The first line `stdout` gives, on a channel; the rest is read and dropped so that the
/// child never blocks on a full pipe.
fn first_line(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx
}

/// A monitor on a host of `[hosts]`, and the file it writes there.
pub(crate) struct HostMonitor {
    pub(crate) process: OnHost,
    pub(crate) file: crate::phases::Part,
}

/// A monitor on each of `[hosts]` (and of `[pong.hosts]`) when `monitor = true`, writing
/// `monitor.HOST.jsonl` in the hosts' results folder (this one's when none is given). A host
/// where it cannot start is said, and the run goes on without its samples.
pub(crate) fn host_monitors(scenario: &Scenario, exe: &Path, dir: &Path) -> Vec<HostMonitor> {
    let Some(hosts) = scenario.hosts.as_ref().filter(|h| h.monitor) else {
        return Vec::new();
    };
    let mut names: Vec<&String> = hosts.names.iter().collect();
    for (host, _) in &scenario.pong_hosts {
        if !names.contains(&host) {
            names.push(host);
        }
    }
    let mut started = Vec::new();
    for host in names {
        let file = crate::phases::host_file(hosts, host, &format!("monitor.{host}.jsonl"), dir);
        let mut command = crate::phases::on_host(hosts, host, exe);
        command
            .args(["monitor", "-q", "--until-stdin-closes", "--interval"])
            .arg(format!("{}ms", scenario.monitor_interval.as_millis()))
            .args(["--host", host, "--output", &file.remote]);
        match OnHost::spawn(command, &dir.join("monitor.log"), None) {
            Ok(process) => {
                say(&format!("monitor on {host}: {}", file.remote));
                started.push(HostMonitor { process, file });
            }
            Err(why) => say(&format!("monitor on {host}: {why}")),
        }
    }
    started
}
