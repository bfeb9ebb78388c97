//! A running `throng proxy` with its own configuration directory, and scripted backends that
//! misbehave on purpose.

use super::{http_exchange, throng, wait_until, PATIENCE};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A directory for a test's configuration and certificates, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("throng-proxy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    /// Writes a self-signed certificate for `names` as `NAME.pem` and `NAME.key`.
    pub fn certificate(&self, file: &str, names: &[&str]) {
        let (cert, key) = throng_tls::config::self_signed(names).unwrap();
        std::fs::write(self.0.join(format!("{file}.pem")), cert).unwrap();
        std::fs::write(self.0.join(format!("{file}.key")), key).unwrap();
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `throng proxy -c FILE`, killed when dropped.
pub struct Proxy {
    child: Child,
    pub frontends: HashMap<String, SocketAddr>,
    pub admin: Option<SocketAddr>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Proxy {
    /// Writes `config` to `dir/proxy.toml`, starts the proxy on it and waits for its start-up
    /// line. Give frontends and the admin port 0: the line says which ports they got.
    pub fn start(dir: &Dir, config: &str) -> Proxy {
        let path = dir.write("proxy.toml", config);
        let mut child = throng()
            .args(["proxy", "-c"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start throng proxy");
        let stderr = super::capture(child.stderr.take().unwrap());
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stdout);
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            for line in reader.lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let line = rx.recv_timeout(PATIENCE).unwrap_or_default();
        if !line.starts_with("throng proxy listening: ") {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "throng proxy did not start: {line}\n{}",
                stderr.lock().unwrap()
            );
        }
        // throng proxy listening: web on 127.0.0.1:1; tls on 127.0.0.1:2 with TLS (2 threads, ..., stats at http://A/stats)
        let rest = line
            .trim()
            .strip_prefix("throng proxy listening: ")
            .unwrap();
        let (list, details) = rest.split_once(" (").unwrap();
        let frontends = list
            .split("; ")
            .map(|f| {
                let (name, addrs) = f.split_once(" on ").unwrap();
                let addrs = addrs.trim_end_matches(" with TLS");
                let first = addrs.split(", ").next().unwrap();
                (
                    name.to_string(),
                    throng_net::listen::parse(first).unwrap()[0],
                )
            })
            .collect();
        let admin = details
            .split("stats at http://")
            .nth(1)
            .map(|rest| rest.split('/').next().unwrap().parse().unwrap());
        Proxy {
            child,
            frontends,
            admin,
            stdout,
            stderr,
        }
    }

    pub fn addr(&self, frontend: &str) -> SocketAddr {
        self.frontends[frontend]
    }

    /// The access log so far (stdout after the start-up line).
    pub fn log(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits for an access log line containing every one of `parts`.
    pub fn wait_for_line(&self, parts: &[&str]) -> String {
        wait_until(|| {
            self.log()
                .into_iter()
                .find(|line| parts.iter().all(|p| line.contains(p)))
        })
        .unwrap_or_else(|| panic!("no log line with {parts:?} in:\n{}", self.log().join("\n")))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn wait_for_message(&self, text: &str) -> String {
        wait_until(|| Some(self.stderr()).filter(|log| log.contains(text)))
            .unwrap_or_else(|| panic!("no message with {text:?} in:\n{}", self.stderr()))
    }

    pub fn metrics(&self) -> String {
        let (status, _, body) = http_exchange(
            self.admin.expect("configured with global.admin"),
            b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200);
        body
    }

    /// One sample's value, e.g. `throng_proxy_backend_queue_max{backend="app"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let metrics = self.metrics();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no sample {sample} in:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "throng proxy did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A backend that does what the test says with each connection, on its own thread.
pub struct Backend {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    pub fn start(behave: impl Fn(TcpStream) + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (Arc::clone(&accepted), Arc::clone(&stop));
        let behave = Arc::new(behave);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::Relaxed);
                let behave = Arc::clone(&behave);
                std::thread::spawn(move || behave(stream));
            }
        });
        Backend {
            addr,
            accepted,
            stop,
        }
    }

    /// Answers each request with its own head as the body (so tests see what the proxy sent).
    pub fn echo_head() -> Backend {
        Backend::start(|mut stream| {
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            loop {
                let Some(head) = read_head(&mut stream) else {
                    return;
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{head}",
                    head.len()
                );
                if std::io::Write::write_all(&mut stream, response.as_bytes()).is_err() {
                    return;
                }
            }
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one request or response head (up to the blank line); `None` when the peer closes.
pub fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A proxy that stops when this test ends, whoever its parent is (a new binary's process is
/// not the test's child).
pub struct KillOnDrop(pub i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of a proxy this test started.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// `throng proxy upgrade` on `dir`'s configuration, which must succeed: the pid in the pid
/// file after it, and what it said.
pub fn upgrade(dir: &Dir) -> (i32, String) {
    let out = throng()
        .args(["proxy", "upgrade", "-c"])
        .arg(dir.path("proxy.toml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let pid = std::fs::read_to_string(dir.path("proxy.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if !out.status.success() {
        // Not left behind by a failed test.
        drop(KillOnDrop(pid));
        panic!("{said}{}", String::from_utf8_lossy(&out.stderr));
    }
    (pid, said)
}

/// `throng proxy ctl -c FILE WORDS`, as this user or as `user` (through runuser): (success,
/// stdout and stderr).
pub fn ctl_as(file: &std::path::Path, words: &str, user: Option<&str>) -> (bool, String) {
    let mut command = match user {
        None => throng(),
        Some(user) => {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", user, "--", env!("CARGO_BIN_EXE_throng")]);
            c
        }
    };
    let out = command
        .args(["proxy", "ctl", "-c"])
        .arg(file)
        .args(words.split(' '))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
