//! `throng plot` on a real run: results from `throng attack` against pong, samples from
//! `throng monitor`.

mod common;

use common::{assert_succeeded, throng, Pong};
use std::io::Write;
use std::process::Stdio;

#[test]
fn draws_a_run_and_its_monitor_as_one_offline_page() {
    let pong = Pong::start(&["--max-rps", "150"]);
    let dir = common::scratch_dir("plot");
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
    assert_succeeded(&out);
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

    // Opened in a real browser: the charts are drawn, and a screenshot is kept.
    let (dom, screenshot) = open_in_chromium(&page);
    assert!(
        dom.matches("<polyline").count() >= 8,
        "charts without lines in the browser"
    );
    assert!(dom.contains("Requests per second") && dom.contains("Process resident memory"));
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 10_000,
        "an empty screenshot"
    );

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

/// The monitors of two machines (here two monitors told `--host`, as `ip netns exec %h` would
/// run them under pdsh): one page, a series per host in each machine chart.
#[test]
fn monitors_of_several_hosts_draw_a_series_each() {
    let dir = common::scratch_dir("plot-hosts");
    let monitor = |host: &str| {
        throng()
            .args(["monitor", "-q", "--interval", "200ms", "--duration", "1s"])
            .args(["--host", host, "--output"])
            .arg(dir.join(format!("{host}.jsonl")))
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (monitor("client-a"), monitor("proxy-b"));
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let sample = std::fs::read_to_string(dir.join("client-a.jsonl")).unwrap();
    assert!(sample.contains("\"host\":\"client-a\""), "{sample}");
    // A file from before monitors named their host: its samples go by the file's name.
    let old = dir.join("older.jsonl");
    let unnamed: String = sample
        .lines()
        .map(|l| l.replace("\"host\":\"client-a\",", "") + "\n")
        .collect();
    std::fs::write(&old, unnamed).unwrap();
    let page = dir.join("hosts.html");
    let out = throng()
        .args(["plot", "--output"])
        .arg(&page)
        .arg("--monitor")
        .arg(dir.join("client-a.jsonl"))
        .arg("--monitor")
        .arg(dir.join("proxy-b.jsonl"))
        .arg("--monitor")
        .arg(&old)
        .output()
        .unwrap();
    assert_succeeded(&out);
    let html = std::fs::read_to_string(&page).unwrap();
    let chart = |title: &str| {
        let at = html
            .find(title)
            .unwrap_or_else(|| panic!("no chart {title}"));
        html[at..at + html[at..].find("</svg>").unwrap()].to_string()
    };
    let established = chart("Established TCP connections");
    for host in ["client-a", "proxy-b", "older"] {
        assert!(established.contains(&format!("■ {host}<")), "{established}");
    }
    assert_eq!(established.matches("<polyline").count(), 3, "{established}");
    let segments = chart("TCP segments per second");
    assert!(segments.contains("■ in proxy-b<") && segments.contains("■ out client-a<"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Renders `page` in headless Chromium (Debian's; .ci/run installs it): the DOM the browser
/// built, and a screenshot kept in the test target's folder.
fn open_in_chromium(page: &std::path::Path) -> (String, std::path::PathBuf) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is not installed: apt-get install chromium (.ci/run does)");
    let url = format!("file://{}", page.display());
    let headless = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ];
    let dom = std::process::Command::new(chromium)
        .args(headless)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    assert_succeeded(&dom);
    let stderr = String::from_utf8_lossy(&dom.stderr);
    assert!(!stderr.contains("Uncaught"), "script errors: {stderr}");
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plot-screenshot.png");
    let shot = std::process::Command::new(chromium)
        .args(headless)
        .arg("--window-size=1000,2900")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert_succeeded(&shot);
    (
        String::from_utf8_lossy(&dom.stdout).into_owned(),
        screenshot,
    )
}

/// A vegeta user's past run, as vegeta wrote it, is drawn and reported beside throng's.
#[test]
fn draws_and_reports_vegetas_own_binary_results() {
    let vegeta_run = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../throng-results/tests/vegeta/story.gob"
    );
    let dir = common::scratch_dir("plot-vegeta");
    let page = dir.join("vegeta.html");
    let output = throng()
        .args(["plot", vegeta_run, "-output"])
        .arg(&page)
        .output()
        .unwrap();
    assert_succeeded(&output);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg"), "a chart is drawn");
    let output = throng()
        .args(["report", "-type=json", vegeta_run])
        .output()
        .unwrap();
    assert_succeeded(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["requests"], 6, "{report}");
}
