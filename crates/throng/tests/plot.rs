//! `throng plot` on a real run: results from `throng attack` against pong, samples from
//! `throng monitor`.

mod common;

use common::{throng, Pong};
use std::io::Write;
use std::process::Stdio;

#[test]
fn draws_a_run_and_its_monitor_as_one_offline_page() {
    let pong = Pong::start(&["--max-rps", "150"]);
    let dir = std::env::temp_dir().join(format!("throng-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (results, samples, page) = (
        dir.join("run.bin"),
        dir.join("m.jsonl"),
        dir.join("run.html"),
    );
    let mut monitor = throng()
        .args([
            "monitor",
            "-q",
            "--interval",
            "250ms",
            "--duration",
            "3s",
            "--name",
            "throng",
            "--output",
        ])
        .arg(&samples)
        .spawn()
        .unwrap();
    // 200/s against a server that answers 150/s: latency climbs, as the chart should show.
    let mut attack = throng()
        .args(["attack", "-rate=200", "-duration=2s", "-output"])
        .arg(&results)
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let target = format!("GET {}\n", pong.url());
    attack
        .stdin
        .take()
        .unwrap()
        .write_all(target.as_bytes())
        .unwrap();
    assert!(attack.wait().unwrap().success());
    assert!(monitor.wait().unwrap().success());

    let out = throng()
        .arg("plot")
        .arg(&results)
        .arg("--monitor")
        .arg(&samples)
        .arg("--output")
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    // Nothing to run and nothing to fetch (the SVG namespace is a name, not a fetch).
    assert!(
        !html.contains("<script") && !html.contains("src=") && !html.contains("<link"),
        "the page must stand alone"
    );
    // The summary table, and every chart with data in it.
    assert!(html.contains("<td>400</td>"), "400 requests in the summary");
    for title in [
        "Requests per second",
        "Latency by second",
        "Latency of each request",
        "Established TCP connections",
        "Process CPU",
    ] {
        let at = html
            .find(title)
            .unwrap_or_else(|| panic!("no chart {title}"));
        let chart = &html[at..at + html[at..].find("</svg>").unwrap()];
        assert!(
            chart.contains("<polyline") || chart.contains("<circle"),
            "{title} has no data"
        );
        assert!(!chart.contains("no data"), "{title} has no data");
    }

    // A damaged monitor file is named, with its line.
    std::fs::write(&samples, "{\"unix_ms\": 1}\nnot json\n").unwrap();
    let out = throng()
        .arg("plot")
        .arg(&results)
        .arg("--monitor")
        .arg(&samples)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("m.jsonl:2: not a monitor sample"));
    let _ = std::fs::remove_dir_all(&dir);
}
