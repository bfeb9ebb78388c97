//! `throng monitor` against a known load: connections the test opens itself.

mod common;

use common::{capture, http_exchange, throng, wait_until};
use serde_json::Value;
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

/// The tests count the machine's connections: one at a time, or each sees the other's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn sees_the_connections_opened_and_the_process_watched() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = common::scratch_dir("monitor");
    let file = dir.join("signals.jsonl");
    let mut monitor = throng()
        .args([
            "monitor",
            "-q",
            "--interval",
            "200ms",
            "--duration",
            "4s",
            "--format",
            "json",
        ])
        .args(["--pid", &std::process::id().to_string(), "--output"])
        .arg(&file)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // 200 connections over loopback: 400 more established sockets (both ends count).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepted one by one: the listen backlog would not hold 200 at once.
    let pairs: Vec<(TcpStream, TcpStream)> = (0..200)
        .map(|_| {
            let client = TcpStream::connect(addr).unwrap();
            (client, listener.accept().unwrap().0)
        })
        .collect();
    assert!(monitor.wait().unwrap().success());
    drop(pairs);
    let samples: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(samples.len() >= 10, "{} samples", samples.len());
    let established: Vec<u64> = samples
        .iter()
        .map(|s| s["established"].as_u64().unwrap())
        .collect();
    let (first, peak) = (established[0], *established.iter().max().unwrap());
    assert!(
        peak >= first + 400,
        "established went from {first} to at most {peak}"
    );
    let me = &samples.last().unwrap()["processes"][0];
    assert_eq!(me["pid"], std::process::id());
    assert!(me["rss"].as_u64().unwrap() > 1 << 20, "{me}");
    assert!(samples
        .iter()
        .any(|s| s["interfaces"]["lo"]["bytes_in_per_s"].as_f64().unwrap() >= 0.0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serves_prometheus_metrics_and_writes_csv() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = common::scratch_dir("monitor-csv");
    let file = dir.join("signals.csv");
    let mut monitor = throng()
        .args([
            "monitor",
            "-q",
            "--interval",
            "200ms",
            "--format",
            "csv",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--output")
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = capture(monitor.stderr.take().unwrap());
    let addr: std::net::SocketAddr = wait_until(|| {
        let text = stderr.lock().unwrap().clone();
        let rest = text.split("metrics at http://").nth(1)?;
        rest.split('/').next()?.parse().ok()
    })
    .expect("monitor said where its metrics are");
    let metrics = wait_until(|| {
        let (status, _, body) = http_exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        (status == 200 && body.contains("throng_monitor_established_connections")).then_some(body)
    })
    .expect("metrics");
    assert!(metrics
        .contains("throng_monitor_interface_bytes_per_second{interface=\"lo\",direction=\"in\"}"));
    let _ = monitor.kill();
    let _ = monitor.wait();
    let csv = std::fs::read_to_string(&file).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("time,established,"));
    assert!(lines.next().is_some(), "no sample row: {csv}");
    let _ = std::fs::remove_dir_all(&dir);
}
