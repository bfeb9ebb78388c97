//! The page of an MQTT run (`throng mqtt --output`): connections held and opened, messages out
//! and in, latency from the intended send and errors, second by second, over every file merged
//! (parts, processes), with the monitors' charts below.

use crate::chart::{self, escape, Series, COLOURS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use throng_results::encode::read_any;
use throng_results::mqtt::summary::Summary;
use throng_results::mqtt::{Second, Stats};
use throng_results::stream::Histogram;
use throng_results::{Frame, Reader};

fn open(path: &Path) -> Result<Reader<Box<dyn std::io::Read>>, String> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    read_any(file).map_err(|e| format!("{name}: {e}"))
}

/// Whether `path` holds an MQTT run.
pub(crate) fn is_mqtt(path: &Path) -> Result<bool, String> {
    let mut reader = open(path)?;
    match reader.next_frame() {
        Ok(Some(Frame::Meta(meta))) => Ok(meta.mqtt.is_some()),
        _ => Ok(false),
    }
}

/// Seconds a page spans at most (11 days): a file that claims more is damaged.
const MAX_SPAN: u64 = 1_000_000;

/// What a second shows once its frames from every file are added up: counters, and the
/// quantiles drawn (nanoseconds).
#[derive(Default)]
struct Point {
    stats: Stats,
    e2e: Option<(u64, u64, u64)>,
    e2e_from_send_p99: Option<u64>,
    ack_p99: Option<u64>,
    connect_p99: Option<u64>,
    ping_p99: Option<u64>,
}

impl Point {
    /// Adds up one second's frames and keeps what is drawn: the counters (and error counts),
    /// and the quantiles of its histograms, which are then let go.
    fn of(frames: &[Vec<u8>]) -> Point {
        let mut stats = Stats::default();
        for frame in frames {
            if let Some(second) = Second::decode(frame) {
                stats.merge(&second.stats);
            }
        }
        let q = |h: &Histogram<u64>, at: f64| (!h.is_empty()).then(|| h.value_at_quantile(at));
        Point {
            e2e: (!stats.e2e.is_empty()).then(|| {
                (
                    stats.e2e.value_at_quantile(0.5),
                    stats.e2e.value_at_quantile(0.99),
                    stats.e2e.max(),
                )
            }),
            e2e_from_send_p99: q(&stats.e2e_from_send, 0.99),
            ack_p99: q(&stats.ack_time, 0.99),
            connect_p99: q(&stats.connect_time, 0.99),
            ping_p99: q(&stats.ping_time, 0.99),
            // Only the counters stay: a second's nine histograms are large, a run has many.
            stats: Stats {
                connect_attempts: stats.connect_attempts,
                connected: stats.connected,
                disconnected: stats.disconnected,
                published: stats.published,
                acked: stats.acked,
                received: stats.received,
                errors: stats.errors.clone(),
                ..Stats::default()
            },
        }
    }
}

pub(crate) fn page(results: &[&Path], hosts: &[(String, Vec<Value>)]) -> Result<String, String> {
    let mut summary = Summary::default();
    // Each second's frames from every file, as written (compact), until they are added up.
    let mut frames: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for path in results {
        let name = path.display().to_string();
        summary.add_reader(&name, open(path)?)?;
        // Read again for the seconds: the summary keeps only the sums.
        let mut reader = open(path)?;
        while let Some(frame) = reader.next_frame().map_err(|e| format!("{name}: {e}"))? {
            if let Frame::MqttSecond(second) = frame {
                let mut bytes = Vec::new();
                second
                    .encode(&mut bytes)
                    .map_err(|e| format!("{name}: {e}"))?;
                frames.entry(second.unix_second).or_default().push(bytes);
            }
        }
    }
    summary.check_parts()?;
    if let (Some(first), Some(last)) = (frames.keys().next(), frames.keys().next_back()) {
        if last - first > MAX_SPAN {
            return Err(format!(
                "the results span {} s, more than a page draws ({MAX_SPAN} s): a damaged file?",
                last - first
            ));
        }
    }
    let seconds: BTreeMap<u64, Point> = frames
        .into_iter()
        .map(|(second, frames)| (second, Point::of(&frames)))
        .collect();
    let start = crate::first_second(seconds.keys().next().copied(), hosts);
    let at = |second: u64| second.saturating_sub(start) as f64;
    // Every second from the first to the last, so a second with nothing in it is drawn as 0.
    let span: Vec<u64> = match (seconds.keys().next(), seconds.keys().next_back()) {
        (Some(&first), Some(&last)) => (first..=last).collect(),
        _ => Vec::new(),
    };
    let empty = Stats::default();
    let per_second = |pick: &dyn Fn(&Stats) -> u64| -> Vec<(f64, f64)> {
        span.iter()
            .map(|s| {
                (
                    at(*s),
                    pick(seconds.get(s).map_or(&empty, |p| &p.stats)) as f64,
                )
            })
            .collect()
    };
    let line = |name: &str, colour: usize, points: Vec<(f64, f64)>| Series {
        name: name.into(),
        colour: COLOURS[colour % COLOURS.len()],
        points,
        dots: false,
    };
    let mut held = Vec::new();
    let mut open_now: i64 = 0;
    for s in &span {
        let stats = seconds.get(s).map_or(&empty, |p| &p.stats);
        let change = (stats.connected as i64).saturating_sub(stats.disconnected as i64);
        open_now = open_now.saturating_add(change);
        held.push((at(*s), open_now as f64));
    }
    let mut charts = vec![
        chart::svg("Connections held", "", &[line("open", 0, held)], false),
        chart::svg(
            "Connections per second",
            "/s",
            &[
                line("attempted", 0, per_second(&|s| s.connect_attempts)),
                line("connected", 1, per_second(&|s| s.connected)),
                line("ended", 2, per_second(&|s| s.disconnected)),
            ],
            false,
        ),
        chart::svg(
            "Messages per second",
            "/s",
            &[
                line("published", 0, per_second(&|s| s.published)),
                line("acknowledged", 1, per_second(&|s| s.acked)),
                line("received", 2, per_second(&|s| s.received)),
            ],
            false,
        ),
    ];
    let ms = |pick: &dyn Fn(&Point) -> Option<u64>| -> Vec<(f64, f64)> {
        seconds
            .iter()
            .filter_map(|(s, point)| Some((at(*s), pick(point)? as f64 / 1e6)))
            .collect()
    };
    charts.push(chart::svg(
        "End-to-end latency by second of receipt (from the intended send)",
        "ms",
        &[
            line("p50", 0, ms(&|p| p.e2e.map(|e| e.0))),
            line("p99", 1, ms(&|p| p.e2e.map(|e| e.1))),
            line("max", 2, ms(&|p| p.e2e.map(|e| e.2))),
            line("p99 from the actual send", 3, ms(&|p| p.e2e_from_send_p99)),
        ],
        true,
    ));
    charts.push(chart::svg(
        "Acknowledgement, connect and ping latency (p99)",
        "ms",
        &[
            line("PUBACK/PUBCOMP", 0, ms(&|p| p.ack_p99)),
            line("CONNACK", 1, ms(&|p| p.connect_p99)),
            line("PINGRESP", 2, ms(&|p| p.ping_p99)),
        ],
        true,
    ));
    let mut classes: Vec<String> = seconds
        .values()
        .flat_map(|p| p.stats.errors.keys().map(|k| k.to_string()))
        .collect();
    classes.sort();
    classes.dedup();
    let errors: Vec<Series> = classes
        .iter()
        .enumerate()
        .map(|(i, class)| {
            line(
                class,
                i + 3,
                per_second(&|s| s.errors.get(class.as_str()).map_or(0, |e| e.0)),
            )
        })
        .collect();
    charts.push(chart::svg(
        "Errors per second, by class",
        "/s",
        &errors,
        false,
    ));
    if !hosts.is_empty() {
        charts.extend(crate::monitor_charts(hosts, &at));
    }
    Ok(html(&summary.json(), &charts, results))
}

fn html(report: &Value, charts: &[String], results: &[&Path]) -> String {
    let ms = |v: &Value| match v.as_f64() {
        Some(ns) => format!("{:.2} ms", ns / 1e6),
        None => "-".into(),
    };
    let c = &report["connections"];
    let p = &report["publish"];
    let r = &report["receive"];
    let errors: Vec<String> = report["errors"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}: {}", v["count"]))
                .collect()
        })
        .unwrap_or_default();
    let files: Vec<String> = results
        .iter()
        .map(|p| escape(&p.display().to_string()))
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>throng plot: MQTT</title><style>body{{font-family:sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:.25em .7em;text-align:right}}th{{background:#f4f4f4}}svg.chart{{display:block;margin:.6em 0;border-top:1px solid #eee}}</style></head><body><h1>throng plot: MQTT {} (QoS {}, MQTT {})</h1><p>{}</p><table><tr><th>connected</th><th>offered msg/s</th><th>published</th><th>received</th><th>lost</th><th>duplicates</th><th>e2e p50</th><th>e2e p99</th><th>e2e max</th><th>errors</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>{}<p>End-to-end latency runs from each message's intended send time (free of coordinated omission); the exact figures are in the results files' histograms (`throng report`).</p></body></html>\n",
        escape(report["role"].as_str().unwrap_or("")),
        report["qos"],
        escape(report["version"].as_str().unwrap_or("")),
        files.join(", "),
        c["connected"],
        p["offered_rate"],
        p["sent"],
        r["received"],
        r["lost"],
        r["duplicates"],
        ms(&r["e2e"]["50th"]),
        ms(&r["e2e"]["99th"]),
        ms(&r["e2e"]["max"]),
        if errors.is_empty() { "none".to_string() } else { escape(&errors.join(", ")) },
        charts.join("\n"),
    )
}
