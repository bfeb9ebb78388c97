//! `throng attack`, `report` and `encode` end to end: real processes on loopback, against
//! `throng pong` and against small servers that misbehave on purpose.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until pong has at least `count` responses in progress at once.
fn assert_held(pong: &Pong, count: f64) {
    let in_progress = || pong.metric("pong_responses_in_progress");
    let held = wait_until(|| (in_progress() >= count).then_some(()));
    assert!(
        held.is_some(),
        "in progress: {} (wanted {count})",
        in_progress()
    );
}

fn encode(args: &[&str], files: &[&Path]) -> Vec<u8> {
    let output = throng()
        .arg("encode")
        .args(args)
        .args(files)
        .output()
        .unwrap();
    assert_succeeded(&output);
    output.stdout
}

/// A server that answers each of `connections` connections with `answer`, as it is told.
fn misbehaving_server(connections: usize, answer: fn(std::net::TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections).flatten() {
            answer(stream);
        }
    });
    addr
}

fn read_request_head(stream: &mut std::net::TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
}

#[test]
fn keeps_the_rate_and_reports_what_pong_did() {
    let pong = Pong::start(&[]);
    let dir = scratch_dir("rate");
    let out = dir.join("run.bin");
    let targets = format!("GET http://{}/\n", pong.addr());
    let result = attack(
        &targets,
        &[
            "-rate=200",
            "-duration=2s",
            "-output",
            out.to_str().unwrap(),
        ],
    );
    assert_succeeded(&result);

    let report = report_json(&[&out]);
    assert_eq!(report["requests"], 400, "{report}");
    assert_eq!(report["success"], 1.0);
    assert_eq!(report["status_codes"]["200"], 400);
    // The schedule is exact; the sends keep to it. A pacer that bursts, drifts or runs at
    // another rate is off by far more than 5%; a busy machine's late last send is not.
    assert_eq!(report["throng"]["offered_rate"], 200.0);
    assert_eq!(report["throng"]["scheduled"], 400);
    let achieved = report["throng"]["achieved_rate"].as_f64().unwrap();
    assert!(
        (achieved - 200.0).abs() / 200.0 < 0.05,
        "achieved {achieved}"
    );
    assert_eq!(report["throng"]["served_by"][pong.addr().to_string()], 400);
    assert_eq!(report["bytes_in"]["total"], 1600);

    let text =
        String::from_utf8(throng().arg("report").arg(&out).output().unwrap().stdout).unwrap();
    assert!(
        text.starts_with("Requests      [total, rate, throughput]         400,"),
        "{text}"
    );
    assert!(
        text.contains("Success       [ratio]                           100.00%"),
        "{text}"
    );
}

#[test]
fn sleep_requests_are_held_open_at_once() {
    let pong = Pong::start(&["--admin", "127.0.0.1:0"]);
    let dir = scratch_dir("hold");
    let out = dir.join("run.bin");
    let targets = format!("GET http://{}/\nsleep: 4000\ntimes: 1\n", pong.addr());
    let args = [
        "-rate=200",
        "-duration=1s",
        "-timeout=20s",
        "-output",
        out.to_str().unwrap(),
    ];
    let child = spawn_attack(&targets, &args);
    // 200 requests sent within a second, each taking two random waits of up to 4 s: most of
    // them are held open together.
    assert_held(&pong, 150.0);
    assert!(child.wait_with_output().unwrap().status.success());
    let report = report_json(&[&out]);
    assert_eq!(
        (report["requests"].as_u64(), report["success"].as_f64()),
        (Some(200), Some(1.0)),
        "{report}"
    );
    assert!(report["latencies"]["max"].as_u64().unwrap() <= 8_000_000_000 + 2_000_000_000);
}

#[test]
fn every_error_class_is_named() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let reset = misbehaving_server(20, |stream| {
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let garbage = misbehaving_server(20, |mut stream| {
        read_request_head(&mut stream);
        let _ = stream.write_all(b"this is not http\r\n\r\n");
    });
    let failing = misbehaving_server(20, |mut stream| {
        read_request_head(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
    });
    let pong = Pong::start(&[]);
    let targets = [closed, reset, garbage, failing]
        .iter()
        .map(|addr| format!("GET http://{addr}/\n\n"))
        .collect::<String>()
        + &format!("GET http://{}/\nsleep: 60000\ntimes: 10\n", pong.addr());

    let dir = scratch_dir("errors");
    let out = dir.join("run.bin");
    let result = attack(
        &targets,
        &[
            "-rate=50",
            "-duration=400ms",
            "-timeout=300ms",
            "-output",
            out.to_str().unwrap(),
        ],
    );
    assert_succeeded(&result);

    let report = report_json(&[&out]);
    let classes = &report["throng"]["error_classes"];
    for class in [
        "connection-refused",
        "connection-reset",
        "protocol",
        "server-error",
        "timeout",
    ] {
        assert_eq!(classes[class], 4, "{class}: {report}");
    }
    assert_eq!(report["status_codes"]["503"], 4);
    let errors: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors.iter().any(|e| e.starts_with("timeout (300ms)")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("bad response")),
        "{errors:?}"
    );
}

#[test]
fn files_merge_and_encodings_round_trip() {
    let pong = Pong::start(&[]);
    let dir = scratch_dir("merge");
    let (a, b) = (dir.join("a.bin"), dir.join("b.bin"));
    let targets = format!("GET http://{}/\n", pong.addr());
    for (file, rate) in [(&a, "100"), (&b, "50")] {
        let result = attack(
            &targets,
            &[
                "-rate",
                rate,
                "-duration",
                "1s",
                "--output",
                file.to_str().unwrap(),
                "-name=merge",
            ],
        );
        assert_succeeded(&result);
    }
    let merged = report_json(&[&a, &b]);
    assert_eq!(merged["requests"], 150);
    assert_eq!(merged["throng"]["offered_rate"], 150.0);
    assert_eq!(merged["throng"]["runs"], 2);

    let json = encode(&[], &[&a]);
    let first: Value = serde_json::from_slice(json.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        (first["attack"].as_str(), first["code"].as_u64()),
        (Some("merge"), Some(200))
    );
    std::fs::write(dir.join("a.json"), &json).unwrap();
    let binary = encode(&["--to", "throng"], &[&dir.join("a.json")]);
    std::fs::write(dir.join("again.bin"), &binary).unwrap();
    assert_eq!(encode(&[], &[&dir.join("again.bin")]), json);

    let csv = String::from_utf8(encode(&["-to=csv"], &[&b])).unwrap();
    assert_eq!(csv.lines().count(), 1 + 50);
    assert!(csv.starts_with("timestamp,code,latency,bytes_out,bytes_in,error,"));
}

#[test]
fn ctrl_c_ends_cleanly_and_what_was_measured_stays() {
    let pong = Pong::start(&["--admin", "127.0.0.1:0"]);
    let dir = scratch_dir("interrupt");
    let out = dir.join("run.bin");
    let child = spawn_attack(
        &format!("GET http://{}/\nsleep: 200-200\n", pong.addr()),
        &["-rate=100", "-output", out.to_str().unwrap()],
    );
    // Interrupted once pong has seen 50 requests: about 20 are then in flight.
    let seen = || {
        pong.metric(&format!(
            "pong_requests_total{{listen=\"{}\"}}",
            pong.addr()
        ))
    };
    wait_until(|| (seen() >= 50.0).then_some(())).expect("the attack began");
    let sent_by_the_stop = seen();
    let output = interrupt_after(child, Duration::ZERO);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted"));
    let report = report_json(&[&out]);
    let requests = report["requests"].as_u64().unwrap() as f64;
    // Every request sent is in the results, and none was sent long after the stop (20 is 0.2 s
    // of the schedule: time for the signal to arrive on a busy machine).
    assert!(
        requests >= sent_by_the_stop && requests <= sent_by_the_stop + 20.0,
        "{requests} requests, {sent_by_the_stop} at the stop"
    );
    assert_eq!(
        report["success"], 1.0,
        "requests in flight were finished, not cut: {report}"
    );
}

#[test]
fn a_stop_while_every_request_is_held_ends_the_schedule_when_it_was_asked() {
    let pong = Pong::start(&["--admin", "127.0.0.1:0"]);
    let dir = scratch_dir("interrupt-held");
    let out = dir.join("run.bin");
    // Two requests in flight at most, each held 2 s: when Ctrl-C comes half a second after pong
    // has both, no lane is free to look at the schedule for 1.5 s more. What was due counts up
    // to the stop, not up to then.
    let spawned = Instant::now();
    let child = spawn_attack(
        &format!("GET http://{}/\nsleep: 2000-2000\n", pong.addr()),
        &[
            "-rate=100",
            "-max-inflight=2",
            "-threads=1",
            "-output",
            out.to_str().unwrap(),
        ],
    );
    let seen = || {
        pong.metric(&format!(
            "pong_requests_total{{listen=\"{}\"}}",
            pong.addr()
        ))
    };
    wait_until(|| (seen() == 2.0).then_some(())).expect("both lanes busy");
    std::thread::sleep(Duration::from_millis(500));
    let stopped_after = spawned.elapsed().as_secs_f64();
    let output = interrupt_after(child, Duration::ZERO);
    assert!(output.status.success());
    let report = report_json(&[&out]);
    assert_eq!(report["requests"], 2, "{report}");
    // At least the half second since both were held was due; at most the time since the
    // attack was started (and 0.2 s for the signal to arrive), far from the 1.5 s after.
    let scheduled = report["throng"]["scheduled"].as_f64().unwrap();
    assert!(
        scheduled >= 45.0 && scheduled <= 100.0 * stopped_after + 20.0,
        "scheduled {scheduled}, stopped {stopped_after:.2} s after the start: {report}"
    );
}

#[test]
fn a_truncated_file_is_read_to_its_last_whole_record() {
    let pong = Pong::start(&[]);
    let dir = scratch_dir("truncated");
    let out = dir.join("run.bin");
    let result = attack(
        &format!("GET http://{}/\n", pong.addr()),
        &["-rate=50", "-duration=1s", "-output", out.to_str().unwrap()],
    );
    assert!(result.status.success());
    let bytes = std::fs::read(&out).unwrap();
    std::fs::write(&out, &bytes[..bytes.len() - 7]).unwrap();
    let output = throng().arg("report").arg(&out).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("ended in the middle of a record"), "{text}");
}

#[test]
fn bad_input_is_named() {
    let result = attack(
        "GET http://127.0.0.1:1/\nX-Fine: yes\n\nnonsense here\n",
        &["-duration=1s", "-output=/dev/null"],
    );
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("targets line 4"), "{stderr}");

    let result = attack("GET http://127.0.0.1:1/\n", &["-duration=10x"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !result.status.success() && stderr.contains("10x") && stderr.contains("unknown unit"),
        "{stderr}"
    );

    let result = attack("GET http://127.0.0.1:1/\n", &["-rat=5"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !result.status.success() && stderr.contains("--rat"),
        "{stderr}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_throng"))
        .args(["report", "Cargo.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("not a throng results file"),
        "{stderr}"
    );
}

#[test]
fn latency_counts_from_the_intended_send_when_requests_must_wait() {
    let pong = Pong::start(&[]);
    let dir = scratch_dir("omission");
    let out = dir.join("run.bin");
    // One request at a time, each taking 150 ms on average, while one is due every 50 ms: the
    // schedule falls further behind with each request. That wait must show in the latency, not
    // vanish from it, and what was never sent by the end must be counted.
    let targets = format!("GET http://{}/\nsleep: 300\n", pong.addr());
    let args = [
        "-rate=20",
        "-duration=2s",
        "-max-inflight=1",
        "-threads=1",
        "-output",
        out.to_str().unwrap(),
    ];
    let result = attack(&targets, &args);
    assert_succeeded(&result);
    let report = report_json(&[&out]);
    let requests = report["requests"].as_u64().unwrap();
    assert!((5..40).contains(&requests), "{report}");
    assert_eq!(report["throng"]["scheduled"], 40, "{report}");
    assert!(
        report["throng"]["delayed_by_max_inflight"]
            .as_u64()
            .unwrap()
            > 0,
        "{report}"
    );
    let latency_max = report["latencies"]["max"].as_u64().unwrap();
    let service_max = report["throng"]["service_time"]["max"].as_u64().unwrap();
    assert!(
        latency_max > service_max + 500_000_000,
        "latency {latency_max} vs service {service_max}"
    );
    let warnings = report["throng"]["warnings"].to_string();
    assert!(warnings.contains("waited for a slot"), "{warnings}");
    assert!(
        warnings.contains(&format!(
            "{} of 40 requests due by the end were never sent",
            40 - requests
        )),
        "{warnings}"
    );
    assert!(
        !warnings.contains("generator could not keep up"),
        "the cap, not the generator: {warnings}"
    );
}

#[test]
fn a_batch_window_sends_its_requests_together_at_its_end_and_none_is_lost_at_the_end() {
    let pong = Pong::start(&[]);
    let dir = scratch_dir("batch");
    let out = dir.join("run.bin");
    // 200/s in 20 ms windows: four requests a window, each sent at (or after) its window's end.
    let targets = format!("GET http://{}/\n", pong.addr());
    let args = [
        "-rate=200",
        "-duration=1s",
        "-threads=1",
        "--batch=20ms",
        "-output",
        out.to_str().unwrap(),
    ];
    let result = attack(&targets, &args);
    assert_succeeded(&result);
    let csv = String::from_utf8(encode(&["--to", "csv"], &[&out])).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 200, "every request due in the second was sent");
    let column = |name: &str| {
        csv.lines()
            .next()
            .unwrap()
            .split(',')
            .position(|c| c == name)
    };
    let (sent, intended) = (column("timestamp").unwrap(), column("intended").unwrap());
    let ns = |row: &Vec<&str>, i: usize| row[i].parse::<u64>().unwrap();
    let start = rows.iter().map(|r| ns(r, intended)).min().unwrap();
    const WINDOW: u64 = 20_000_000;
    for row in &rows {
        let window_end = (ns(row, intended) - start).div_ceil(WINDOW) * WINDOW;
        assert!(
            ns(row, sent) - start >= window_end,
            "sent before its window ended: {row:?}"
        );
    }
    let report = report_json(&[&out]);
    assert_eq!(report["success"], 1.0, "{report}");
}

#[test]
fn against_nginx_plain_and_tls_with_resumption_on_and_off() {
    let nginx = Nginx::start("attack");
    let dir = scratch_dir("nginx");
    let roots = nginx.dir.join("cert.pem");
    let run = |name: &str, target: String, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = vec!["-rate=40", "-duration=1s", "-output", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let result = attack(&format!("GET {target}\n"), &args);
        assert_succeeded(&result);
        report_json(&[&out])
    };

    let plain = run("plain.bin", format!("http://{}/ping", nginx.plain), &[]);
    assert_eq!(
        (plain["requests"].as_u64(), plain["success"].as_f64()),
        (Some(40), Some(1.0)),
        "{plain}"
    );
    assert_eq!(plain["bytes_in"]["total"], 160);

    // A new connection per request, so every request makes a handshake; one client
    // configuration for the run, so all but the first few resume.
    let roots_arg = format!("-root-certs={}", roots.display());
    let resumed = run(
        "tls.bin",
        format!("https://localhost:{}/ping", nginx.tls.port()),
        &[&roots_arg, "-keepalive=false"],
    );
    assert_eq!(resumed["success"], 1.0, "{resumed}");
    assert_eq!(resumed["throng"]["tls"]["count"], 40);
    assert!(
        resumed["throng"]["tls_resumed"].as_u64().unwrap() >= 30,
        "{resumed}"
    );

    let full = run(
        "full.bin",
        format!("https://localhost:{}/ping", nginx.tls.port()),
        &[&roots_arg, "-keepalive=false", "--no-resume"],
    );
    assert_eq!(full["success"], 1.0, "{full}");
    assert_eq!(
        (
            full["throng"]["tls"]["count"].as_u64(),
            full["throng"]["tls_resumed"].as_u64()
        ),
        (Some(40), Some(0)),
        "{full}"
    );

    let insecure = run(
        "insecure.bin",
        format!("https://127.0.0.1:{}/ping", nginx.tls.port()),
        &["-insecure"],
    );
    assert_eq!(insecure["success"], 1.0, "{insecure}");

    // The system's roots do not know this certificate: every request is a named TLS error.
    let untrusted = run(
        "untrusted.bin",
        format!("https://localhost:{}/ping", nginx.tls.port()),
        &[],
    );
    assert_eq!(
        untrusted["throng"]["error_classes"]["tls"], 40,
        "{untrusted}"
    );
    let errors = untrusted["errors"].to_string();
    assert!(errors.contains("tls: invalid peer certificate"), "{errors}");
}

#[test]
fn against_pong_over_tls_with_held_requests() {
    let dir = scratch_dir("pong-tls");
    let (cert, key) = throng_tls::config::self_signed(&["localhost"]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let pong = Pong::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
    ]);

    let out = dir.join("run.bin");
    let targets = format!(
        "GET https://localhost:{}/\nsleep: 1500\ntimes: 1\n",
        pong.addr().port()
    );
    let roots = format!("-root-certs={}", cert_path.display());
    let child = spawn_attack(
        &targets,
        &[
            "-rate=100",
            "-duration=1s",
            &roots,
            "-output",
            out.to_str().unwrap(),
        ],
    );
    assert_held(&pong, 50.0);
    let status = child.wait_with_output().unwrap();
    assert_succeeded(&status);

    let report = report_json(&[&out]);
    assert_eq!(
        (report["requests"].as_u64(), report["success"].as_f64()),
        (Some(100), Some(1.0)),
        "{report}"
    );
    assert_eq!(
        report["bytes_in"]["total"], 800,
        "pong twice per request, decrypted"
    );
    assert!(
        report["throng"]["tls"]["count"].as_u64().unwrap() >= 50,
        "{report}"
    );
    assert_eq!(pong.metric("pong_tls_failures_total"), 0.0);

    // Garbage on the TLS port is a TLS failure for pong, and pong carries on.
    let mut garbage = connect(pong.addr());
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let _ = read_to_close(&mut garbage);
    pong.wait_for_metric("pong_tls_failures_total", 1.0);
}

/// A network namespace of the test's own, deleted when dropped.
struct Namespace(String);

impl Namespace {
    fn new(name: &str) -> Namespace {
        let name = format!("throng-{name}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "`ip netns add` failed: this test needs root and iproute2"
        );
        let namespace = Namespace(name);
        namespace.run(&["ip", "link", "set", "lo", "up"]);
        namespace
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.0, program]);
        command
    }

    fn run(&self, argv: &[&str]) {
        let status = self.command(argv[0]).args(&argv[1..]).status().unwrap();
        assert!(status.success(), "{argv:?} in {}", self.0);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn running_out_of_source_ports_is_named() {
    // A namespace whose connections may use ten local ports in all.
    let namespace = Namespace::new("ports");
    namespace.run(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_local_port_range=40000 40009",
    ]);
    let throng_bin = env!("CARGO_BIN_EXE_throng");
    let mut pong = namespace
        .command(throng_bin)
        .args(["pong", "--listen", "127.0.0.1:18282"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(pong.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("listening on"), "{line}");

    let dir = scratch_dir("ports");
    let out = dir.join("run.bin");
    let mut attack = namespace
        .command(throng_bin)
        .args([
            "attack",
            "-rate=100",
            "-duration=300ms",
            "-timeout=1s",
            "-keepalive=false",
            "-output",
            out.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Thirty requests held open for seconds each, through ten ports.
    attack
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET http://127.0.0.1:18282/\nsleep: 10000\ntimes: 5\n")
        .unwrap();
    let result = attack.wait_with_output().unwrap();
    let _ = pong.kill();
    let _ = pong.wait();
    assert_succeeded(&result);

    let report = report_json(&[&out]);
    let exhausted = report["throng"]["error_classes"]["no-source-port"]
        .as_u64()
        .unwrap_or(0);
    assert!(exhausted >= 10, "{report}");
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("add source addresses (--source)"),
        "{errors}"
    );
}

/// The story's own vegeta lines, with `vegeta` replaced by `throng` and scaled down (seconds for
/// minutes, tens of requests per second for thousands, pong on loopback for its servers): the
/// global `-cpus` before `attack`, the pipe into `report`, the pdsh line's `-connections`,
/// repeated `-header`, `-timeout=2h` and `-workers`, the merge with `report -inputs`, and
/// `-timeout=0` meaning no timeout, as in vegeta.
#[test]
fn the_storys_vegeta_lines_run_with_the_word_changed() {
    let pong = Pong::start(&[]);
    let dir = scratch_dir("story-lines");
    std::fs::write(dir.join("post_smaller.txt"), "x".repeat(64)).unwrap();
    let throng = env!("CARGO_BIN_EXE_throng");
    let url = format!("http://{}/ping", pong.addr());
    let first = shell(
        &dir,
        &format!(
            "echo \"POST {url}\" | {throng} -cpus=32 attack -duration=1s -header=\"sleep:30\" \
         -body=post_smaller.txt -rate=20 -workers=500 | tee reports.bin | {throng} report"
        ),
    );
    assert!(
        first.contains("Requests      [total, rate, throughput]         20,"),
        "{first}"
    );
    assert!(
        first.contains("Success       [ratio]                           100.00%"),
        "{first}"
    );
    for machine in ["result_1.bin", "result_2.bin"] {
        shell(
            &dir,
            &format!(
                "echo \"POST {url}\" | {throng} -cpus=32 attack -connections=1000000 \
             -header=\"sleep:20\" -header=\"times:2\" -body=post_smaller.txt -timeout=2h \
             -rate=30 -workers=500 -duration=1s > {machine}"
            ),
        );
    }
    let merged = shell(
        &dir,
        &format!("{throng} report -inputs=\"result_1.bin,result_2.bin\""),
    );
    assert!(
        merged.contains("Requests      [total, rate, throughput]         60,"),
        "{merged}"
    );
    // Requests that take longer than any default would allow, with -timeout=0: none time out.
    let held = shell(
        &dir,
        &format!(
            "echo \"GET {url}\" | {throng} attack -rate=5 -duration=1s -timeout=0 \
         -header=\"sleep: 150-200\" | {throng} report -type=json"
        ),
    );
    let report: Value = serde_json::from_str(&held).unwrap();
    assert_eq!(report["success"], 1.0, "{report}");
    assert_eq!(report["requests"], 5, "{report}");
}

/// A server that closes a keep-alive connection as its second request arrives (as an idle
/// timeout firing just as a request goes out): every request that went out on a reused
/// connection is sent again on a new one, succeeds, and is counted as a retry.
#[test]
fn a_reused_connection_closed_under_a_request_is_retried_once_on_a_new_one() {
    let backend = common::proxy::Backend::start(|mut stream| {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        if common::proxy::read_head(&mut stream).is_none() {
            return;
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        // The second request: read, then closed without a byte of response.
        let _ = common::proxy::read_head(&mut stream);
    });
    let targets = format!("GET http://{}/\n", backend.addr);
    let out = attack(&targets, &["-rate=10", "-duration=1s", "-output", "-"]);
    assert_succeeded(&out);
    let dir = scratch_dir("retry");
    let file = dir.join("retry.bin");
    std::fs::write(&file, &out.stdout).unwrap();
    let report = report_json(&[&file]);
    assert_eq!(report["success"], 1.0, "{report}");
    assert_eq!(report["requests"], 10, "{report}");
    let retries = report["throng"]["retries"].as_u64().unwrap();
    assert!((5..=9).contains(&retries), "{retries} retries: {report}");
    let text = Command::new(env!("CARGO_BIN_EXE_throng"))
        .args(["report"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Retries"));
}

/// A server that closes idle keep-alive connections (pong's --timeout, shorter than the gap
/// between requests): the parked connections it closed are seen closed before reuse, so no
/// request is sent on one, none fails and none needs a retry.
#[test]
fn parked_connections_the_server_closed_are_not_reused() {
    let pong = Pong::start(&["--timeout", "150ms"]);
    let targets = format!("GET {}\n", pong.url());
    let out = attack(&targets, &["-rate=4", "-duration=2s", "-output", "-"]);
    assert_succeeded(&out);
    let dir = scratch_dir("idle-close");
    let file = dir.join("idle.bin");
    std::fs::write(&file, &out.stdout).unwrap();
    let report = report_json(&[&file]);
    assert_eq!(report["success"], 1.0, "{report}");
    assert_eq!(report["throng"]["retries"], 0, "{report}");
    // Every request after the first found its connection closed, and opened a new one.
    assert_eq!(report["throng"]["connect"]["count"], 8, "{report}");
}

/// Every flag of `vegeta attack` (v12.13) is taken: with its meaning, accepted with a note, or
/// refused with a message naming it; never the parser's "unexpected argument". The table in
/// docs/vegeta.md says which is which.
#[test]
fn every_vegeta_attack_flag_is_taken_or_refused_by_name() {
    let pong = Pong::start(&[]);
    let dir = scratch_dir("vegeta-flags");
    std::fs::write(dir.join("body.txt"), "x").unwrap();
    let body = format!("-body={}", dir.join("body.txt").display());
    let flags: [(&str, bool); 33] = [
        (&body, true),
        ("-chunked", false),
        ("-connect-to=a:80:b:80", false),
        ("-connections=100", true),
        ("-dns-ttl=0s", true),
        ("-duration=100ms", true),
        ("-format=http", true),
        ("-h2c", true),
        ("-header=X-A: 1", true),
        ("-http2=false", true),
        ("-http2", true),
        ("-insecure", true),
        ("-keepalive=false", true),
        ("-laddr=127.0.0.1", true),
        ("-lazy", true),
        ("-max-body=-1", true),
        ("-max-connections=10", true),
        ("-max-workers=10", true),
        ("-name=x", true),
        ("-output=-", true),
        ("-prometheus-addr=127.0.0.1:0", false),
        ("-proxy-header=X: 1", false),
        ("-rate=10/1s", true),
        ("-redirects=10", true),
        ("-resolvers=127.0.0.1:53", false),
        ("-root-certs=/nonexistent.pem", true),
        ("-session-tickets", true),
        ("-targets=-", true),
        ("-timeout=5s", true),
        ("-unix-socket=/tmp/x.sock", false),
        ("-workers=10", true),
        ("-cert=/nonexistent.pem", false),
        ("-key=/nonexistent.pem", false),
    ];
    let target = format!("GET {}\n", pong.url());
    for (flag, runs) in flags {
        let mut args = vec![flag, "-quiet"];
        for default in ["-rate=10", "-duration=100ms"] {
            if !flag.starts_with(default.split('=').next().unwrap()) {
                args.push(default);
            }
        }
        let out = attack(&target, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("unexpected argument"), "{flag}: {stderr}");
        let name = flag.split('=').next().unwrap();
        if runs {
            assert!(out.status.success(), "{flag}: {stderr}");
        } else {
            assert!(!out.status.success(), "{flag} ran");
            assert!(
                stderr.contains(name) || stderr.contains(&name[1..]),
                "{flag}: the refusal does not name it: {stderr}"
            );
        }
    }
}

/// vegeta's own `report` reads throng's `encode --to json`, and throng's `report` reads
/// vegeta's (its results encoded to JSON). Needs vegeta, a peer built from source beside the
/// project (`../shared/peers/bin/vegeta`); without it the test is counted as skipped.
#[test]
fn vegeta_and_throng_read_each_others_json() {
    let vegeta =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/bin/vegeta");
    if !vegeta.exists() {
        let why = format!("no vegeta at {}", vegeta.display());
        common::skip("vegeta_and_throng_read_each_others_json", &why);
        return;
    }
    let pong = Pong::start(&[]);
    let dir = scratch_dir("vegeta-json");
    let throng = env!("CARGO_BIN_EXE_throng");
    let vegeta = vegeta.display();
    let url = pong.url();
    shell(&dir, &format!("echo 'GET {url}' | {throng} attack -rate=20 -duration=1s | {throng} encode --to json > throng.json"));
    let by_vegeta = shell(&dir, &format!("{vegeta} report throng.json"));
    assert!(
        by_vegeta.contains("Requests      [total, rate, throughput]         20,"),
        "{by_vegeta}"
    );
    shell(&dir, &format!("echo 'GET {url}' | {vegeta} attack -rate=30 -duration=1s | {vegeta} encode --to json > vegeta.json"));
    let merged = shell(
        &dir,
        &format!("{throng} report -type=json vegeta.json throng.json"),
    );
    let report: Value = serde_json::from_str(&merged).unwrap();
    assert_eq!(report["requests"], 50, "{report}");
    assert_eq!(report["success"], 1.0, "{report}");
}

/// Runs `line` with bash (pipefail) in `dir`; asserts it succeeded and returns its stdout.
fn shell(dir: &Path, line: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; {line}"))
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{line}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Unix seconds a little ahead, as a launcher computes `--start-at` once for every part.
fn start_in(seconds: f64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    format!("{:.3}", now + seconds)
}

/// `throng attack` as part `index` of a run, told its index the way a Kubernetes Indexed Job
/// tells it (`JOB_COMPLETION_INDEX`, with `--parts N`).
fn spawn_part(targets: &str, index: usize, args: &[&str]) -> std::process::Child {
    spawn_with_input(
        throng()
            .arg("attack")
            .args(args)
            .env("JOB_COMPLETION_INDEX", index.to_string()),
        targets,
    )
}

#[test]
fn parts_started_by_a_launcher_make_one_run_and_strangers_are_refused() {
    let pong = Pong::start(&[]);
    let dir = scratch_dir("parts");
    let targets = format!("GET {}\n", pong.url());
    let run = |name: &str, duration: &str| -> Vec<std::path::PathBuf> {
        let start = start_in(2.0);
        let files: Vec<_> = (0..3)
            .map(|i| dir.join(format!("{name}-{i}.bin")))
            .collect();
        let children: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, file)| {
                let args = [
                    "-rate=300",
                    &format!("-duration={duration}"),
                    "-threads=1",
                    "--parts=3",
                    &format!("--start-at={start}"),
                    "-output",
                    file.to_str().unwrap(),
                ];
                spawn_part(&targets, i, &args)
            })
            .collect();
        for child in children {
            assert_succeeded(&child.wait_with_output().unwrap());
        }
        files
    };
    let a = run("a", "1s");
    // Merged, the three parts are the one schedule: every sequence number once, each at its
    // intended time from one shared start.
    let report = report_json(&a);
    // The schedule's 300 are due; on a busy machine a part's last one or two may miss the
    // wall-time end (counted as never sent): what was sent is checked request by request.
    assert_eq!(report["throng"]["scheduled"], 300, "{report}");
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 270, "{report}");
    assert_eq!(report["success"], 1.0, "{report}");
    let parts = &report["throng"]["parts"];
    assert_eq!(parts["of"], 3, "{report}");
    assert_eq!(parts["missing"], serde_json::json!([]), "{report}");
    assert_eq!(parts["each"].as_array().unwrap().len(), 3, "{report}");
    assert!(
        (report["throng"]["offered_rate"].as_f64().unwrap() - 300.0).abs() < 1e-6,
        "the schedule's rate once, not once per part: {report}"
    );
    let csv = String::from_utf8(encode(
        &["--to", "csv"],
        &a.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
    ))
    .unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let mut seqs: Vec<u64> = rows
        .iter()
        .map(|r| r[col("seq")].parse().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len() as u64, requests, "every sequence number once");
    assert!(seqs.iter().all(|s| *s < 300), "{seqs:?}");
    let intended: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r[col("seq")].parse().unwrap(),
                r[col("intended")].parse().unwrap(),
            )
        })
        .collect();
    let start = intended.iter().find(|(s, _)| *s == 0).unwrap().1;
    for (seq, at) in &intended {
        let expected = start + seq * 1_000_000_000 / 300;
        assert!(
            at.abs_diff(expected) <= 1_000,
            "request {seq} intended at {at}, not {expected}"
        );
    }

    // A part missing, and a part of another run: named, or refused.
    let output = throng().arg("report").args(&a[..2]).output().unwrap();
    assert_succeeded(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("1 of 3 parts missing: 2"), "{text}");
    let b = run("b", "1s");
    let output = throng()
        .args(["report"])
        .arg(&a[0])
        .arg(&b[1])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("not one run") && error.contains("a-0.bin") && error.contains("b-1.bin"),
        "{error}"
    );

    // A part killed mid-run: the others report, and the merge says which part ended early.
    let start = start_in(1.5);
    let files: Vec<_> = (0..3).map(|i| dir.join(format!("c-{i}.bin"))).collect();
    let children: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            spawn_part(
                &targets,
                i,
                &[
                    "-rate=300",
                    "-duration=4s",
                    "-threads=1",
                    "--parts=3",
                    &format!("--start-at={start}"),
                    "-output",
                    file.to_str().unwrap(),
                ],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(3_000));
    let mut children = children;
    let mut killed = children.remove(1);
    killed.kill().unwrap();
    let _ = killed.wait();
    for child in children {
        assert_succeeded(&child.wait_with_output().unwrap());
    }
    let output = throng().arg("report").args(&files).output().unwrap();
    assert_succeeded(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Part 1 (") && text.contains("ended early"),
        "{text}"
    );
}

/// A machine's part may be several processes (`--part I/N --procs P`, past one process's
/// open-files limit): its file is still part I of N, holding exactly part I's requests, and the
/// parts merge into the one schedule.
#[test]
fn a_part_split_over_processes_is_still_one_part() {
    let pong = Pong::start(&[]);
    let dir = scratch_dir("part-procs");
    let targets = format!("GET {}\n", pong.url());
    let start = start_in(2.0);
    let files: Vec<_> = (0..2).map(|i| dir.join(format!("p-{i}.bin"))).collect();
    let children: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let mut args = vec![
                "-rate=200".to_string(),
                "-duration=1s".into(),
                "-threads=1".into(),
                "--procs=2".into(),
                format!("--start-at={start}"),
                "-output".into(),
                file.to_str().unwrap().into(),
            ];
            // One told by its flag, one by its launcher's environment.
            match i {
                0 => args.push("--part=0/2".into()),
                _ => args.push("--parts=2".into()),
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            spawn_part(&targets, i, &args)
        })
        .collect();
    for child in children {
        assert_succeeded(&child.wait_with_output().unwrap());
    }
    for (i, file) in files.iter().enumerate() {
        let report = report_json(&[file]);
        let parts = &report["throng"]["parts"];
        assert_eq!(parts["of"], 2, "{report}");
        assert_eq!(parts["missing"], serde_json::json!([1 - i]), "{report}");
        let csv = String::from_utf8(encode(&["--to", "csv"], &[file.as_path()])).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let seq = header.iter().position(|c| *c == "seq").unwrap();
        let seqs: Vec<u64> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(seq).unwrap().parse().unwrap())
            .collect();
        assert!(seqs.len() > 80, "part {i}: {} requests", seqs.len());
        assert!(
            seqs.iter().all(|s| s % 2 == i as u64),
            "part {i} holds another part's requests: {seqs:?}"
        );
    }
    let report = report_json(&files);
    assert_eq!(report["throng"]["scheduled"], 200, "{report}");
    assert_eq!(
        report["throng"]["parts"]["missing"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(report["success"], 1.0, "{report}");
}

/// vegeta's `-http2`: h2 offered by ALPN on https targets (on by default), used when the server
/// picks it, HTTP/1.1 when it does not (and the report says so); `-h2c` speaks HTTP/2 from the
/// first byte on plain ones; `-http2=false` keeps HTTP/1.1. Against nginx's `http2` listeners.
#[test]
fn over_http2_to_nginx_by_alpn_and_prior_knowledge_and_back_to_http1_where_it_is_not_offered() {
    let nginx = Nginx::start("attack-h2");
    let dir = scratch_dir("nginx-h2");
    let roots = format!("-root-certs={}", nginx.dir.join("cert.pem").display());
    let run = |name: &str, target: String, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = vec![
            "-rate=50",
            "-duration=1s",
            "-output",
            out.to_str().unwrap(),
            &roots,
        ];
        args.extend_from_slice(extra);
        let result = attack(&format!("GET {target}\n"), &args);
        assert_succeeded(&result);
        let text = Command::new(env!("CARGO_BIN_EXE_throng"))
            .args(["report", out.to_str().unwrap()])
            .output()
            .unwrap();
        (
            report_json(&[&out]),
            String::from_utf8_lossy(&text.stdout).into_owned(),
        )
    };
    let h2 = format!("https://localhost:{}/ping", nginx.h2.port());

    let (alpn, text) = run("alpn.bin", h2.clone(), &[]);
    assert_eq!(
        (alpn["success"].as_f64(), alpn["throng"]["http2"].as_u64()),
        (Some(1.0), Some(50)),
        "{alpn}"
    );
    assert_eq!(alpn["bytes_in"]["total"], 200, "pong, 50 times");
    assert!(
        alpn["throng"]["tls"]["count"].as_u64().unwrap() <= 2,
        "streams share a connection per thread: {alpn}"
    );
    assert!(
        text.contains("Protocol      [HTTP/2, HTTP/1.1]                50, 0"),
        "{text}"
    );

    let (h2c, _) = run("h2c.bin", format!("http://{}/ping", nginx.h2c), &["-h2c"]);
    assert_eq!(
        (h2c["success"].as_f64(), h2c["throng"]["http2"].as_u64()),
        (Some(1.0), Some(50)),
        "{h2c}"
    );

    // One stream per connection when keep-alive is off, as Go's DisableKeepAlives does.
    let (single, _) = run("single.bin", h2.clone(), &["-keepalive=false"]);
    assert_eq!(single["success"], 1.0, "{single}");
    assert_eq!(single["throng"]["http2"], 50, "{single}");
    assert_eq!(single["throng"]["tls"]["count"], 50, "{single}");

    let (off, _) = run("off.bin", h2, &["-http2=false"]);
    assert_eq!(
        (off["success"].as_f64(), off["throng"]["http2"].as_u64()),
        (Some(1.0), Some(0)),
        "{off}"
    );

    // nginx's other TLS port offers no h2: HTTP/1.1, as vegeta falls back, and said.
    let (fallback, text) = run(
        "fallback.bin",
        format!("https://localhost:{}/ping", nginx.tls.port()),
        &[],
    );
    assert_eq!(
        (
            fallback["success"].as_f64(),
            fallback["throng"]["http2"].as_u64()
        ),
        (Some(1.0), Some(0)),
        "{fallback}"
    );
    assert!(
        text.contains(
            "0, 50 (HTTP/2 was asked for: the rest went over HTTP/1.1, the server's choice)"
        ),
        "{text}"
    );
}

/// Streams held by pong's `sleep` over h2c: past the server's 100 concurrent streams a second
/// connection opens; with `-max-connections 1` the requests past them wait for a stream, are
/// counted, and their latency runs from when they were due.
#[test]
fn held_streams_open_connections_as_the_servers_limit_fills_or_wait_at_the_cap() {
    let pong = Pong::start(&["--h2c", "--admin", "127.0.0.1:0"]);
    let dir = scratch_dir("pong-h2c");
    // Each held exactly 800 ms, so that waves of streams are known.
    let targets = format!("GET {}\nsleep: 800-800\n", pong.url());
    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = vec![
            "-h2c",
            "-rate=300",
            "-duration=1s",
            "-threads=1",
            "-output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        assert_succeeded(&attack(&targets, &args));
        report_json(&[&out])
    };

    let open = run("open.bin", &[]);
    assert_eq!(
        (open["success"].as_f64(), open["throng"]["http2"].as_u64()),
        (Some(1.0), Some(300)),
        "{open}"
    );
    assert!(
        open["throng"]["connect"]["count"].as_u64().unwrap() >= 2,
        "100 streams a connection (pong's limit), and more held at once: {open}"
    );
    assert_eq!(open["throng"]["waited_for_stream"], 0, "{open}");

    let capped = run("capped.bin", &["-max-connections=1"]);
    assert_eq!(capped["success"], 1.0, "{capped}");
    assert_eq!(capped["throng"]["connect"]["count"], 1, "{capped}");
    let waited = capped["throng"]["waited_for_stream"].as_u64().unwrap();
    assert!(waited >= 100, "{capped}");
    // 300 requests on 100 streams held 800 ms each take three waves: the last response comes
    // 2.4 s after the first send at the earliest, and every request was due within 1 s, so one
    // latency is 1.4 s or more (latency runs from the due time). A bound a busy machine can
    // only push further, not a timing sample compared with another.
    assert!(
        capped["latencies"]["max"].as_u64().unwrap() >= 1_400_000_000,
        "waits are in the latency: {capped}"
    );
}

/// A server that refuses streams (RST_STREAM REFUSED_STREAM) fails those requests by the code's
/// name; one that says GOAWAY sends the requests past its last stream elsewhere, once.
#[test]
fn http2_errors_are_named_and_requests_past_a_goaway_go_again() {
    let server = |mode: &str| {
        let addr = free_addr();
        let mut child = Command::new("/usr/bin/python3")
            .args([
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_refusing_server.py"),
                &addr.port().to_string(),
                mode,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3 (./test.sh installs python3-h2)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready");
        KillOnDrop(child, addr)
    };
    let dir = scratch_dir("h2-errors");

    let refusing = server("refuse");
    let out = dir.join("refused.bin");
    let target = format!("GET http://{}/\n", refusing.1);
    assert_succeeded(&attack(
        &target,
        &[
            "-h2c",
            "-rate=20",
            "-duration=1s",
            "-output",
            out.to_str().unwrap(),
        ],
    ));
    let report = report_json(&[&out]);
    assert_eq!(
        report["throng"]["error_classes"]["protocol"], 20,
        "{report}"
    );
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("h2: stream reset by the server (REFUSED_STREAM)"),
        "{errors}"
    );

    // Each connection answers one stream and sends the rest away: with requests held at once
    // (-threads=1, a burst), some go out past a GOAWAY and are sent again on a new connection.
    let goaway = server("goaway");
    let out = dir.join("goaway.bin");
    let target = format!("GET http://{}/\n", goaway.1);
    assert_succeeded(&attack(
        &target,
        &[
            "-h2c",
            "-rate=200",
            "-duration=1s",
            "-threads=1",
            "-batch=100ms",
            "-output",
            out.to_str().unwrap(),
        ],
    ));
    let report = report_json(&[&out]);
    let requests = report["requests"].as_u64().unwrap();
    let ok = report["status_codes"]["200"].as_u64().unwrap_or(0);
    let retries = report["throng"]["retries"].as_u64().unwrap();
    assert!(retries > 0, "{report}");
    assert!(ok > 1 && ok < requests, "{report}");
    let errors = report["errors"].to_string();
    // Those sent past a GOAWAY twice say so; nothing else failed.
    assert!(
        errors.contains("h2: GOAWAY (NO_ERROR, last stream 1): not processed"),
        "{errors}"
    );
    assert_eq!(
        report["throng"]["error_classes"]["protocol"]
            .as_u64()
            .unwrap_or(0),
        requests - ok,
        "{report}"
    );
}

/// A request as a server saw it: pseudo-headers, fields, body (hex).
type SentRequest = (Vec<(String, String)>, Vec<(String, String)>, String);

struct KillOnDrop(std::process::Child, SocketAddr);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// vegeta's `-http2` differential: one targets file over https, sent by vegeta and by throng to
/// a strict HTTP/2 server (python3-h2, ALPN h2 only) that records every request. Each sends the
/// same requests: pseudo-headers, the target's and `-header`'s fields in their order, the
/// framing fields and the body. Only what each generator says of itself differs, and the test
/// names it: `user-agent`, Go's `accept-encoding: gzip` (its transparent decompression) and
/// vegeta's `x-vegeta-seq`. Needs vegeta (`../shared/peers/bin/vegeta`); skipped without it.
#[test]
fn vegeta_and_throng_send_the_same_requests_over_http2() {
    let vegeta =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/bin/vegeta");
    if !vegeta.exists() {
        let why = format!("no vegeta at {}", vegeta.display());
        common::skip("vegeta_and_throng_send_the_same_requests_over_http2", &why);
        return;
    }
    let dir = scratch_dir("vegeta-h2");
    let (cert, key) = throng_tls::config::self_signed(&["localhost"]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("body.txt"), "body-bytes").unwrap();
    // One server for both, so that the requests name the same authority.
    let addr = free_addr();
    let recorded = dir.join("requests.jsonl");
    let mut server = Command::new("/usr/bin/python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_recording_server.py"),
            &addr.port().to_string(),
            dir.join("cert.pem").to_str().unwrap(),
            dir.join("key.pem").to_str().unwrap(),
            recorded.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (./test.sh installs python3-h2)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _server = KillOnDrop(server, addr);
    let base = format!("https://localhost:{}", addr.port());
    let targets = format!(
        "GET {base}/get?x=1\nX-Custom: a\nAccept: */*\n\n\
         POST {base}/post\nContent-Type: text/plain\n@{}\n\n\
         PUT {base}/put\n\n\
         HEAD {base}/head\n",
        dir.join("body.txt").display()
    );
    std::fs::write(dir.join("targets.txt"), targets).unwrap();
    let record = |name: &str, command: &str| -> Vec<Value> {
        let _ = std::fs::remove_file(&recorded);
        shell(&dir, &format!("{command} -insecure -rate=8 -duration=500ms -header 'X-Run: one' -targets targets.txt > {name}.bin"));
        let text = std::fs::read_to_string(&recorded).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let own = ["user-agent", "accept-encoding", "x-vegeta-seq"];
    // Sorted: the order of pseudo-headers is the encoder's, and Go sends a request's fields in
    // its map's order, which changes from run to run.
    let comparable = |requests: &[Value]| -> Vec<SentRequest> {
        let mut all: Vec<_> = requests
            .iter()
            .map(|r| {
                let fields: Vec<(String, String)> = r["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| (f[0].as_str().unwrap().into(), f[1].as_str().unwrap().into()))
                    .filter(|(n, _): &(String, String)| !own.contains(&n.as_str()))
                    .collect();
                let (mut pseudo, mut regular): (Vec<_>, Vec<_>) =
                    fields.into_iter().partition(|(n, _)| n.starts_with(':'));
                pseudo.sort();
                regular.sort();
                (pseudo, regular, r["body"].as_str().unwrap().to_string())
            })
            .collect();
        all.sort();
        all
    };
    let throng = env!("CARGO_BIN_EXE_throng");
    let by_vegeta = record("vegeta", &format!("{} attack", vegeta.display()));
    let by_throng = record("throng", &format!("{throng} attack -quiet"));
    assert_eq!(by_vegeta.len(), 4, "{by_vegeta:?}");
    assert_eq!(comparable(&by_vegeta), comparable(&by_throng));
    // What differs is only what each says of itself.
    let names = |requests: &[Value]| -> std::collections::BTreeSet<String> {
        requests
            .iter()
            .flat_map(|r| r["fields"].as_array().unwrap().clone())
            .map(|f| f[0].as_str().unwrap().to_string())
            .filter(|n| own.contains(&n.as_str()))
            .collect()
    };
    assert_eq!(
        names(&by_throng).into_iter().collect::<Vec<_>>(),
        ["user-agent"]
    );
    assert!(names(&by_vegeta).contains("user-agent"));
}

/// `--threshold` on attack and report: met ones exit 0, a broken one exits 1 with its figure
/// said, and the results are written whole either way; a malformed one is refused by name
/// before anything is sent. The same verdicts from the attack's own summing and from `report`
/// over its file.
#[test]
fn thresholds_gate_the_exit_status_of_attack_and_report() {
    let pong = Pong::start(&["--admin", "127.0.0.1:0"]);
    let dir = scratch_dir("thresholds");
    let out = dir.join("run.bin");
    let target = format!("GET {}\n", pong.url());
    let run = |thresholds: &[&str]| {
        let mut args = vec!["-rate=50", "-duration=1s", "-output", out.to_str().unwrap()];
        for t in thresholds {
            args.extend(["--threshold", t]);
        }
        attack(&target, &args)
    };
    let met = run(&["success>=99.9%", "errors==0", "requests==50", "p99<10s"]);
    assert_succeeded(&met);
    let said = String::from_utf8_lossy(&met.stderr);
    assert!(said.contains("Thresholds: all 4 met"), "{said}");
    assert!(said.contains("requests==50: met (50 requests)"), "{said}");

    let broken = run(&["p99<1ns", "errors.timeout==0"]);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let said = String::from_utf8_lossy(&broken.stderr);
    assert!(said.contains("Thresholds: 1 of 2 BROKEN"), "{said}");
    assert!(said.contains("p99<1ns: BROKEN (p99 "), "{said}");
    assert!(
        said.contains("errors.timeout==0: met (0 timeout errors)"),
        "{said}"
    );
    assert_eq!(
        report_json(&[&out])["requests"],
        50,
        "the results are whole"
    );

    let report = |thresholds: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_throng"));
        command.arg("report").arg(&out);
        for t in thresholds {
            command.args(["--threshold", t]);
        }
        command.output().unwrap()
    };
    let judged = report(&["p99<1ns", "requests>=50"]);
    assert_eq!(judged.status.code(), Some(1));
    let text = String::from_utf8_lossy(&judged.stdout);
    assert!(
        text.contains("Requests      [total, rate, throughput]         50,"),
        "{text}"
    );
    assert!(text.contains("Thresholds: 1 of 2 BROKEN"), "{text}");
    assert_succeeded(&report(&["requests>=50", "success==100%"]));

    let malformed = run(&["latency<5ms"]);
    assert!(!malformed.status.success());
    let said = String::from_utf8_lossy(&malformed.stderr);
    assert!(
        said.contains("--threshold `latency<5ms`: unknown metric `latency`"),
        "{said}"
    );
    let listen = format!("{{listen=\"{}\"}}", pong.addr());
    assert_eq!(
        pong.metric(&format!("pong_requests_total{listen}")),
        100.0,
        "nothing was sent for it"
    );
}
