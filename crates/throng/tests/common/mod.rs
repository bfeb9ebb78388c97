//! Starting and stopping real `throng` processes on loopback for integration tests.
#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Says that `test` did not run, and why (a peer built beside the project is missing, the
/// tests do not run as root): on stderr, and in the totals of the test command (`./test.sh`
/// counts the files left in `$THRONG_TEST_SKIPPED`), so that a skip never reads as a pass.
pub fn skip(test: &str, why: &str) {
    eprintln!("{test}: skipped: {why}");
    if let Some(dir) = std::env::var_os("THRONG_TEST_SKIPPED") {
        let _ = std::fs::write(std::path::Path::new(&dir).join(test), why);
    }
}

/// How long any one step of a test may wait before it fails rather than hangs.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub fn throng() -> Command {
    Command::new(env!("CARGO_BIN_EXE_throng"))
}

/// A running `throng pong`, stopped (SIGKILL) when dropped.
pub struct Pong {
    child: Child,
    /// Every address it listens on, from its start-up line.
    pub addrs: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
}

impl Pong {
    /// Starts `throng pong ARGS` (with `--listen 127.0.0.1:0` unless ARGS has a `--listen`) and
    /// waits for its start-up line.
    pub fn start(args: &[&str]) -> Pong {
        let mut command = throng();
        command.arg("pong").args(args);
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start throng pong");
        let stderr = capture(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(PATIENCE).unwrap_or_default();
        if !line.contains("listening on") {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "throng pong did not start: {line}\n{}",
                stderr.lock().unwrap()
            );
        }
        let (addrs, admin) = parse_startup_line(&line);
        Pong {
            child,
            addrs,
            admin,
            stderr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr())
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `text`.
    pub fn wait_for_log(&self, text: &str) -> String {
        let log = wait_until(|| Some(self.stderr()).filter(|log| log.contains(text)));
        log.unwrap_or_else(|| panic!("no log line with {text:?} in:\n{}", self.stderr()))
    }

    pub fn metrics(&self) -> String {
        let admin = self.admin.expect("started with --admin");
        let (status, _, body) = http_exchange(
            admin,
            b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The value of one sample, e.g. `pong_requests_total{listen="127.0.0.1:5000"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let metrics = self.metrics();
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .unwrap_or_else(|| panic!("no sample {sample} in:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits until a sample has the value wanted, and fails with the last value seen otherwise.
    pub fn wait_for_metric(&self, sample: &str, wanted: f64) {
        if wait_until(|| (self.metric(sample) == wanted).then_some(())).is_none() {
            panic!(
                "{sample} stayed at {} (wanted {wanted})",
                self.metric(sample)
            );
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with our own child's pid.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "throng pong did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pong {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads addresses and the admin address from
/// `throng pong listening on 127.0.0.1:1-3, 127.0.0.2:9 (2 threads, ..., metrics at http://A/metrics)`.
fn parse_startup_line(line: &str) -> (Vec<SocketAddr>, Option<SocketAddr>) {
    let after = line.split("listening on ").nth(1).unwrap();
    let (list, details) = after.split_once(" (").unwrap();
    let addrs = list
        .split(", ")
        .flat_map(|spec| throng_net::listen::parse(spec).unwrap())
        .collect();
    let admin = details
        .split("metrics at http://")
        .nth(1)
        .map(|rest| rest.split('/').next().unwrap().parse().unwrap());
    (addrs, admin)
}

/// Collects what `from` says (a child's stderr), on a thread, for the test to read when it likes.
pub fn capture(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// Polls `check` every 20 ms until it gives a value or [`PATIENCE`] runs out.
pub fn wait_until<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A connection with the test's patience as its read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads until the server closes; returns what came.
pub fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "reading to close: {e} after {:?}",
                String::from_utf8_lossy(&all)
            ),
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Sends raw bytes on a new connection and reads until the server closes:
/// returns (status, head, body).
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    split_response(&read_to_close(&mut stream))
}

/// Splits a response into status, head and body.
pub fn split_response(response: &str) -> (u16, String, String) {
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A run of `count` consecutive free ports on 127.0.0.1.
pub fn free_port_range(count: u16) -> u16 {
    let seed = std::process::id() as u64
        ^ u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
    let mut candidate = 20_000 + (seed.wrapping_mul(2_654_435_761) % 30_000) as u16;
    for _ in 0..200 {
        let all_free =
            (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", candidate + i)).is_ok());
        if all_free {
            return candidate;
        }
        candidate = 20_000 + (candidate - 20_000 + 97) % 30_000;
    }
    panic!("no run of {count} free ports");
}

/// A running nginx (Debian's) with a plain and a TLS listener answering `/ping` with `pong`,
/// its self-signed certificate in `dir/cert.pem`. Stopped when dropped.
pub struct Nginx {
    child: Child,
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    /// TLS with ALPN h2 and http/1.1, and plain HTTP/2 by prior knowledge (h2c).
    pub h2: SocketAddr,
    pub h2c: SocketAddr,
    pub dir: std::path::PathBuf,
}

impl Nginx {
    pub fn start(name: &str) -> Nginx {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("nginx is not installed: apt-get install nginx-light (.ci/run does)");
        let dir = std::env::temp_dir().join(format!("throng-nginx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = throng_tls::config::self_signed(&["localhost", "127.0.0.1"]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        let plain = free_addr();
        let tls = free_addr();
        let h2 = free_addr();
        let h2c = free_addr();
        let d = dir.display();
        let config = format!(
            "master_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               keepalive_requests 100000;\n\
               server {{\n    listen {plain};\n    listen {tls} ssl;\n    listen {h2} ssl http2;\n    listen {h2c} http2;\n\
                 ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
                 location / {{ return 200 \"pong\"; }}\n  }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let child = Command::new(nginx)
            .args([
                "-e",
                &format!("{d}/error.log"),
                "-p",
                &d.to_string(),
                "-c",
                &format!("{d}/nginx.conf"),
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let up = wait_until(|| {
            TcpStream::connect(tls)
                .ok()
                .and(TcpStream::connect(plain).ok())
        });
        if up.is_none() {
            panic!(
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
        }
        Nginx {
            child,
            plain,
            tls,
            h2,
            h2c,
            dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback address with a port free right now.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts `throng attack ARGS` with `targets` on stdin.
pub fn spawn_attack(targets: &str, args: &[&str]) -> std::process::Child {
    spawn_with_input(throng().arg("attack").args(args), targets)
}

/// Starts `command` with its standard streams piped and `input` written to its stdin.
pub fn spawn_with_input(command: &mut Command, input: &str) -> std::process::Child {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child
}

/// After `wait`, Ctrl-C for `child` (SIGINT); returns its output once it has exited.
pub fn interrupt_after(child: Child, wait: Duration) -> std::process::Output {
    std::thread::sleep(wait);
    // SAFETY: kill(2) with our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait_with_output().unwrap()
}

/// Fails the test, with the process's stderr, unless `output`'s process succeeded.
#[track_caller]
pub fn assert_succeeded(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `throng report -type=json FILES`, parsed.
pub fn report_json<P: AsRef<std::path::Path>>(files: &[P]) -> serde_json::Value {
    let output = throng()
        .args(["report", "-type=json"])
        .args(files.iter().map(AsRef::as_ref))
        .output()
        .unwrap();
    assert_succeeded(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs `throng attack ARGS` with `targets` on stdin, to its end.
pub fn attack(targets: &str, args: &[&str]) -> std::process::Output {
    spawn_attack(targets, args).wait_with_output().unwrap()
}

/// A fresh, empty folder for a test's files (left after the test, to look into).
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("throng-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
