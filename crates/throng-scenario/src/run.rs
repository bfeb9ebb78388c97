//! Running a scenario: the processes started (each the `throng` binary itself), the phases one
//! after another, then everything stopped in reverse and the results folder written.

use crate::config::{Phase, Proxy, Scenario};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use throng_results::report::Summary;
use throng_results::Reader;

/// A process the scenario started; stopped (SIGTERM, then SIGKILL after 10 s) when dropped.
struct Started {
    name: &'static str,
    child: Child,
}

impl Started {
    /// Starts `exe args`, its stderr to `dir/NAME.log`, and waits for its first stdout line
    /// when `wait_for` is given.
    fn spawn(
        name: &'static str,
        exe: &Path,
        args: &[String],
        dir: &Path,
        wait_for: Option<&str>,
    ) -> Result<(Started, String), String> {
        let log = std::fs::File::create(dir.join(format!("{name}.log")))
            .map_err(|e| format!("{name}: log file: {e}"))?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let stdout = child.stdout.take();
        let mut started = Started { name, child };
        let mut first = String::new();
        if let (Some(expected), Some(stdout)) = (wait_for, stdout) {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = tx.send(line);
                // Keep reading, so that the child never blocks on a full pipe.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
            first = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
            if !first.contains(expected) {
                started.stop();
                let log =
                    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
                return Err(format!("{name} did not start: {}", last_lines(&log)));
            }
        }
        Ok((started, first))
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "throng scenario: {} did not stop in 10 s: killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.stop();
    }
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// What a run leaves: the folder, and the figures of the summary.
pub struct Outcome {
    pub dir: PathBuf,
    pub summary: String,
    pub interrupted: bool,
}

pub fn run(scenario: &Scenario, exe: &Path, dir: &Path) -> Result<Outcome, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let attack_pid = Arc::new(AtomicI32::new(0));
    watch_signals(Arc::clone(&interrupted), Arc::clone(&attack_pid));

    // pong, the proxy in front of it, and the monitor watching both.
    let pong_spec = throng_net::listen::describe(&scenario.pong);
    let mut args = vec![
        "pong".to_string(),
        "--threads".into(),
        scenario.pong_threads.to_string(),
    ];
    for addr in &scenario.pong {
        args.extend(["--listen".to_string(), addr.to_string()]);
    }
    say(&format!("starting throng pong on {pong_spec}"));
    let (pong, _) = Started::spawn("pong", exe, &args, dir, Some("listening on"))?;
    let (proxy, target, tls) = match &scenario.proxy {
        Proxy::Throng { listen, threads } => {
            let (cert, key) = throng_net::tls::self_signed(&["localhost", "127.0.0.1"])?;
            std::fs::write(dir.join("cert.pem"), cert).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("key.pem"), key).map_err(|e| e.to_string())?;
            let config = proxy_config(*listen, *threads, &scenario.pong, dir);
            std::fs::write(dir.join("proxy.toml"), config).map_err(|e| e.to_string())?;
            say(&format!(
                "starting throng proxy with TLS on {listen} (ECDSA P-256, self-signed)"
            ));
            let args = vec![
                "proxy".to_string(),
                "-c".into(),
                dir.join("proxy.toml").display().to_string(),
            ];
            let (proxy, _) =
                Started::spawn("proxy", exe, &args, dir, Some("throng proxy listening"))?;
            (Some(proxy), *listen, true)
        }
        Proxy::External { address, tls } => {
            say(&format!("using the proxy at {address}"));
            (None, *address, *tls)
        }
    };
    let mut args = vec![
        "monitor".to_string(),
        "-q".into(),
        "--interval".into(),
        format!("{}ms", scenario.monitor_interval.as_millis()),
        "--output".into(),
        dir.join("monitor.jsonl").display().to_string(),
        "--pid".into(),
        pong.pid().to_string(),
    ];
    if let Some(proxy) = &proxy {
        args.extend(["--pid".to_string(), proxy.pid().to_string()]);
    }
    let (mut monitor, _) = Started::spawn("monitor", exe, &args, dir, None)?;
    std::thread::sleep(scenario.monitor_interval * 2);

    let scheme = if tls { "https" } else { "http" };
    let mut files = Vec::new();
    for (i, phase) in scenario.phases.iter().enumerate() {
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        let file = dir.join(format!("{:02}-{}.bin", i + 1, slug(&phase.name)));
        run_phase(
            exe,
            phase,
            &format!("{scheme}://{target}/"),
            &file,
            dir,
            &attack_pid,
        )?;
        files.push(file);
    }

    // Stop in reverse, so that the monitor sees the others end.
    say("stopping");
    std::thread::sleep(scenario.monitor_interval);
    monitor.stop();
    let proxy_pid = proxy.as_ref().map(Started::pid);
    drop(proxy);
    drop(pong);
    let summary = report(&files, dir, proxy_pid)?;
    Ok(Outcome {
        dir: dir.to_path_buf(),
        summary,
        interrupted: interrupted.load(Ordering::Relaxed),
    })
}

fn say(text: &str) {
    eprintln!("throng scenario: {text}");
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn run_phase(
    exe: &Path,
    phase: &Phase,
    url: &str,
    file: &Path,
    dir: &Path,
    attack_pid: &AtomicI32,
) -> Result<(), String> {
    say(&format!(
        "phase {}: {} requests/s for {} ({})",
        phase.name,
        phase.rate,
        throng_net::duration::format(phase.duration),
        if phase.headers.is_empty() {
            "no headers".to_string()
        } else {
            phase.headers.join(", ")
        }
    ));
    let mut targets = format!("GET {url}\n");
    for header in &phase.headers {
        targets.push_str(header);
        targets.push('\n');
    }
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("attack.log"))
        .map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["attack", "-insecure", "-rate"])
        .arg(phase.rate.to_string())
        .arg("-duration")
        .arg(format!("{}ms", phase.duration.as_millis()))
        .arg("-timeout")
        .arg(format!("{}ms", phase.timeout.as_millis()))
        .arg("-name")
        .arg(&phase.name)
        .arg("-output")
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the attack: {e}"))?;
    attack_pid.store(child.id() as i32, Ordering::Relaxed);
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(targets.as_bytes());
    }
    let started = Instant::now();
    let mut next_word = started + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            attack_pid.store(0, Ordering::Relaxed);
            if !status.success() {
                return Err(format!(
                    "the attack of phase {} failed (see attack.log)",
                    phase.name
                ));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        // A word every 5 s: which phase, how far in (the attack waits for its last responses
        // after the phase's duration, so this may go past it), and the monitor's latest figures.
        if Instant::now() >= next_word {
            next_word += Duration::from_secs(5);
            say(&format!(
                "phase {}: {} s{}",
                phase.name,
                started.elapsed().as_secs(),
                live_figures(&dir.join("monitor.jsonl"))
            ));
        }
    }
    Ok(())
}

/// The latest monitor sample, in a few words: established sockets and each process's memory.
fn live_figures(monitor: &Path) -> String {
    // Only the file's end: it grows by a line a second for as long as the scenario runs.
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(monitor) else {
        return String::new();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(16 * 1024)));
    let mut text = String::new();
    if file.take(16 * 1024).read_to_string(&mut text).is_err() {
        return String::new();
    }
    let Some(sample) = text
        .lines()
        .next_back()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        return String::new();
    };
    let mut words = format!(", {} established sockets", sample["established"]);
    for p in sample["processes"].as_array().into_iter().flatten() {
        words += &format!(
            ", pid {} {} MiB {:.0}% cpu",
            p["pid"],
            p["rss"].as_u64().unwrap_or(0) >> 20,
            p["cpu_percent"].as_f64().unwrap_or(0.0)
        );
    }
    words
}

fn proxy_config(listen: SocketAddr, threads: usize, pong: &[SocketAddr], dir: &Path) -> String {
    let servers: Vec<String> = pong
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ name = \"pong{}\", address = \"{a}\" }}", i + 1))
        .collect();
    format!(
        "[global]\nthreads = {threads}\nlog = \"file:{}\"\n\n[defaults.timeout]\nclient = \"1h\"\nserver = \"1h\"\nhttp-request = \"30s\"\n\n\
         [frontends.tls]\nbind = [\"{listen}\"]\ndefault_backend = \"pong\"\ntls = {{ certificates = [{{ cert = \"cert.pem\", key = \"key.pem\" }}] }}\n\n\
         [backends.pong]\nbalance = \"leastconn\"\nservers = [{}]\n",
        dir.join("proxy-access.log").display(),
        servers.join(", ")
    )
}

/// First SIGINT/SIGTERM: end the phase in progress (its results are kept) and stop.
fn watch_signals(interrupted: Arc<AtomicBool>, attack_pid: Arc<AtomicI32>) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let signal = throng_net::admin::wait_for_signal().await;
            say(&format!(
                "{signal}: ending the phase in progress, then stopping everything"
            ));
            interrupted.store(true, Ordering::Relaxed);
            let pid = attack_pid.load(Ordering::Relaxed);
            if pid > 0 {
                // SAFETY: kill(2) on our own child; its first SIGINT ends it with results kept.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
        });
    });
}

/// report.txt, report.html and the summary's lines.
fn report(files: &[PathBuf], dir: &Path, proxy_pid: Option<i32>) -> Result<String, String> {
    let mut text = String::new();
    let mut phases = Vec::new();
    let mut all = Summary::new(None);
    for file in files {
        let mut one = Summary::new(None);
        for summary in [&mut all, &mut one] {
            let input =
                std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let reader = Reader::new(std::io::BufReader::new(input))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            summary
                .add_stream(reader)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        let name = file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        text.push_str(&format!("== {name}\n{}\n", one.text()));
        let r = one.json();
        phases.push(format!(
            "phase {name}: {} requests at {:.1}/s, success {:.3}%, p50 {:.1} ms, p99 {:.1} ms",
            r["requests"],
            r["throng"]["achieved_rate"].as_f64().unwrap_or(0.0),
            r["success"].as_f64().unwrap_or(0.0) * 100.0,
            r["latencies"]["50th"].as_f64().unwrap_or(0.0) / 1e6,
            r["latencies"]["99th"].as_f64().unwrap_or(0.0) / 1e6,
        ));
    }
    text.push_str(&format!("== all phases\n{}\n", all.text()));
    std::fs::write(dir.join("report.txt"), &text).map_err(|e| e.to_string())?;
    let monitor = dir.join("monitor.jsonl");
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    if !paths.is_empty() {
        let page = throng_plot::page(&paths, monitor.exists().then_some(monitor.as_path()))?;
        std::fs::write(dir.join("report.html"), page).map_err(|e| e.to_string())?;
    }

    // The summary: the monitor's peaks and the run's figures.
    let samples: Vec<serde_json::Value> = std::fs::read_to_string(&monitor)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let peak = samples
        .iter()
        .filter_map(|s| s["established"].as_u64())
        .max()
        .unwrap_or(0);
    let first = samples
        .first()
        .and_then(|s| s["established"].as_u64())
        .unwrap_or(0);
    let mut lines = vec![format!(
        "peak established TCP sockets: {peak} (about {} end-to-end connections: each has 4 sockets on loopback)",
        peak.saturating_sub(first) / 4
    )];
    if let Some(pid) = proxy_pid {
        let rss: Vec<u64> = samples
            .iter()
            .filter_map(|s| {
                s["processes"]
                    .as_array()?
                    .iter()
                    .find(|p| p["pid"] == pid)?["rss"]
                    .as_u64()
            })
            .collect();
        if let (Some(start), Some(max)) = (rss.first(), rss.iter().max()) {
            let connections = peak.saturating_sub(first) / 4;
            let per = (max - start).checked_div(connections).unwrap_or(0);
            lines.push(format!(
                "proxy memory: {} MiB at start, {} MiB at its peak: about {per} B per connection",
                start >> 20,
                max >> 20
            ));
        }
    }
    lines.extend(phases);
    let report = all.json();
    let l = &report["latencies"];
    lines.push(format!(
        "all phases: {} requests at {:.1}/s achieved, success {:.3}%, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        report["requests"],
        report["throng"]["achieved_rate"].as_f64().unwrap_or(0.0),
        report["success"].as_f64().unwrap_or(0.0) * 100.0,
        l["50th"].as_f64().unwrap_or(0.0) / 1e6,
        l["99th"].as_f64().unwrap_or(0.0) / 1e6,
        l["max"].as_f64().unwrap_or(0.0) / 1e6,
    ));
    let errors = &report["throng"]["error_classes"];
    lines.push(format!(
        "errors: {}",
        if errors.as_object().is_none_or(|m| m.is_empty()) {
            "none".to_string()
        } else {
            errors.to_string()
        }
    ));
    Ok(lines.join("\n"))
}
