//! `throng plot`: results (and a monitor's samples) as one self-contained HTML page: charts over
//! time, inline SVG, no script and nothing fetched, so it opens offline and stays fast for long
//! runs (one point per second; the scatter keeps at most a few thousand requests).
//!
//! - [`chart`]: a line or scatter chart as SVG.

pub mod chart;

use chart::{escape, Series, COLOURS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use throng_results::encode::read_any;
use throng_results::report::Summary;
use throng_results::{Frame, Interval};

/// Requests drawn in the scatter at most.
const SCATTER: usize = 2000;

/// A watched process's CPU (percent) and memory (MiB) over time.
#[derive(Default)]
struct ProcessLines {
    cpu: Vec<(f64, f64)>,
    rss: Vec<(f64, f64)>,
}

/// What the results hold, per second of wall-clock time.
#[derive(Default)]
struct Seconds {
    offered: BTreeMap<u64, u64>,
    sent: BTreeMap<u64, u64>,
    intervals: BTreeMap<u64, Interval>,
    errors: BTreeMap<String, BTreeMap<u64, u64>>,
    scatter: Vec<(u64, u64)>,
    records: u64,
}

/// The page for `results` files and, if given, a monitor's JSON lines.
pub fn page(results: &[&Path], monitor: Option<&Path>) -> Result<String, String> {
    let mut summary = Summary::new(None);
    let mut seconds = Seconds::default();
    for path in results {
        read_results(path, &mut summary, &mut seconds)?;
    }
    let samples = match monitor {
        Some(path) => read_monitor(path)?,
        None => Vec::new(),
    };
    let report = summary.json();
    let start = seconds
        .offered
        .keys()
        .next()
        .copied()
        .or_else(|| {
            samples
                .first()
                .map(|s| s["unix_ms"].as_u64().unwrap_or(0) / 1000)
        })
        .unwrap_or(0);
    let at = |second: u64| second.saturating_sub(start) as f64;
    let mut charts = Vec::new();

    // Counts per second, with the seconds in between that had none drawn as zero (a gap
    // between phases is a gap, not a line across it).
    let rate = |map: &BTreeMap<u64, u64>| -> Vec<(f64, f64)> {
        let (Some(&first), Some(&last)) = (map.keys().next(), map.keys().next_back()) else {
            return Vec::new();
        };
        (first..=last)
            .map(|s| (at(s), map.get(&s).copied().unwrap_or(0) as f64))
            .collect()
    };
    charts.push(chart::svg(
        "Requests per second",
        "/s",
        &[
            Series {
                name: "offered".into(),
                colour: COLOURS[0],
                points: rate(&seconds.offered),
                dots: false,
            },
            Series {
                name: "sent".into(),
                colour: COLOURS[1],
                points: rate(&seconds.sent),
                dots: false,
            },
            Series {
                name: "completed".into(),
                colour: COLOURS[2],
                points: seconds
                    .intervals
                    .iter()
                    .map(|(s, i)| (at(*s), i.requests as f64))
                    .collect(),
                dots: false,
            },
        ],
        false,
    ));
    let quantile = |q: f64| -> Vec<(f64, f64)> {
        seconds
            .intervals
            .iter()
            .filter(|(_, i)| i.requests > 0)
            .map(|(s, i)| (at(*s), i.latency.value_at_quantile(q) as f64 / 1e6))
            .collect()
    };
    let percentiles: Vec<Series> = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)]
        .iter()
        .enumerate()
        .map(|(i, (name, q))| Series {
            name: (*name).into(),
            colour: COLOURS[i],
            points: quantile(*q),
            dots: false,
        })
        .collect();
    charts.push(chart::svg(
        "Latency by second of completion (from the intended send)",
        "ms",
        &percentiles,
        true,
    ));
    let scatter = Series {
        name: "requests".into(),
        colour: COLOURS[0],
        points: seconds
            .scatter
            .iter()
            .map(|(sent_ns, latency)| (*sent_ns as f64 / 1e9 - start as f64, *latency as f64 / 1e6))
            .collect(),
        dots: true,
    };
    charts.push(chart::svg(
        "Latency of each request (a sample), by intended send",
        "ms",
        &[scatter],
        true,
    ));
    let errors: Vec<Series> = seconds
        .errors
        .iter()
        .enumerate()
        .map(|(i, (class, per))| Series {
            name: class.clone(),
            colour: COLOURS[(i + 3) % 8],
            points: rate(per),
            dots: false,
        })
        .collect();
    charts.push(chart::svg(
        "Errors per second, by class",
        "/s",
        &errors,
        false,
    ));

    if !samples.is_empty() {
        let signal = |key: &str, scale: f64| -> Vec<(f64, f64)> {
            samples
                .iter()
                .map(|s| {
                    (
                        at(s["unix_ms"].as_u64().unwrap_or(0) / 1000),
                        s[key].as_f64().unwrap_or(0.0) * scale,
                    )
                })
                .collect()
        };
        let one = |name: &str, key: &str, scale: f64| {
            vec![Series {
                name: name.into(),
                colour: COLOURS[0],
                points: signal(key, scale),
                dots: false,
            }]
        };
        charts.push(chart::svg(
            "Established TCP connections",
            "",
            &one("established", "established", 1.0),
            false,
        ));
        charts.push(chart::svg(
            "TCP segments per second",
            "/s",
            &[
                Series {
                    name: "in".into(),
                    colour: COLOURS[0],
                    points: signal("segments_in_per_s", 1.0),
                    dots: false,
                },
                Series {
                    name: "out".into(),
                    colour: COLOURS[1],
                    points: signal("segments_out_per_s", 1.0),
                    dots: false,
                },
            ],
            false,
        ));
        charts.push(chart::svg(
            "Bytes per second, all interfaces",
            "MB/s",
            &[
                Series {
                    name: "in".into(),
                    colour: COLOURS[0],
                    points: signal("bytes_in_per_s", 1e-6),
                    dots: false,
                },
                Series {
                    name: "out".into(),
                    colour: COLOURS[1],
                    points: signal("bytes_out_per_s", 1e-6),
                    dots: false,
                },
            ],
            false,
        ));
        let mut memory = one("used", "memory_used", 1.0 / (1 << 20) as f64);
        memory.push(Series {
            name: "kernel TCP buffers".into(),
            colour: COLOURS[1],
            points: signal("tcp_memory", 1.0 / (1 << 20) as f64),
            dots: false,
        });
        charts.push(chart::svg("Memory", "MiB", &memory, false));
        let mut processes: BTreeMap<String, ProcessLines> = BTreeMap::new();
        for s in &samples {
            let t = at(s["unix_ms"].as_u64().unwrap_or(0) / 1000);
            for p in s["processes"].as_array().into_iter().flatten() {
                let key = format!("{}[{}]", p["name"].as_str().unwrap_or("?"), p["pid"]);
                let entry = processes.entry(key).or_default();
                entry
                    .cpu
                    .push((t, p["cpu_percent"].as_f64().unwrap_or(0.0)));
                let mib = p["rss"].as_f64().unwrap_or(0.0) / (1 << 20) as f64;
                entry.rss.push((t, mib));
            }
        }
        if !processes.is_empty() {
            let series = |pick: fn(&ProcessLines) -> &Vec<(f64, f64)>| -> Vec<Series> {
                processes
                    .iter()
                    .enumerate()
                    .map(|(i, (name, both))| Series {
                        name: name.clone(),
                        colour: COLOURS[i % 8],
                        points: pick(both).clone(),
                        dots: false,
                    })
                    .collect()
            };
            charts.push(chart::svg("Process CPU", "%", &series(|p| &p.cpu), false));
            charts.push(chart::svg(
                "Process resident memory",
                "MiB",
                &series(|p| &p.rss),
                false,
            ));
        }
    }
    // The busiest second: merged files may be phases one after another, whose rates do not add.
    let peak_offered = seconds.offered.values().copied().max().unwrap_or(0) as f64;
    Ok(html(
        &report,
        &charts,
        results,
        seconds.records,
        peak_offered,
    ))
}

fn read_results(path: &Path, summary: &mut Summary, seconds: &mut Seconds) -> Result<(), String> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let mut reader = read_any(file).map_err(|e| format!("{name}: {e}"))?;
    let mut start = 0;
    while let Some(frame) = reader.next_frame().map_err(|e| format!("{name}: {e}"))? {
        match frame {
            Frame::Meta(meta) => {
                start = meta.start_unix_ns;
            }
            Frame::Record(record) => {
                let intended = start + record.intended;
                *seconds.offered.entry(intended / 1_000_000_000).or_default() += 1;
                *seconds
                    .sent
                    .entry((start + record.sent) / 1_000_000_000)
                    .or_default() += 1;
                if let Some(class) = record.error {
                    let done = (intended + record.latency) / 1_000_000_000;
                    *seconds
                        .errors
                        .entry(class.name().to_string())
                        .or_default()
                        .entry(done)
                        .or_default() += 1;
                }
                // A uniform sample of every request of every file (reservoir sampling).
                if seconds.scatter.len() < SCATTER {
                    seconds.scatter.push((intended, record.latency));
                } else {
                    let slot = throng_net::random::up_to(seconds.records) as usize;
                    if slot < SCATTER {
                        seconds.scatter[slot] = (intended, record.latency);
                    }
                }
                seconds.records += 1;
            }
            Frame::Interval(interval) => match seconds.intervals.get_mut(&interval.unix_second) {
                Some(existing) => existing.merge(&interval),
                None => {
                    seconds.intervals.insert(interval.unix_second, interval);
                }
            },
            Frame::End(_) | Frame::Progress(_) => {}
        }
    }
    // The summary reads the file again: it keeps its own exact histograms.
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let reader = read_any(file).map_err(|e| format!("{name}: {e}"))?;
    summary
        .add_stream(reader)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(())
}

fn read_monitor(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: not a monitor sample: {e}", path.display(), i + 1))
        })
        .collect()
}

fn html(
    report: &Value,
    charts: &[String],
    results: &[&Path],
    records: u64,
    peak_offered: f64,
) -> String {
    let ms = |v: &Value| v.as_f64().unwrap_or(0.0) / 1e6;
    let l = &report["latencies"];
    let t = &report["throng"];
    let errors: Vec<String> = t["error_classes"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}: {v}")).collect())
        .unwrap_or_default();
    let files: Vec<String> = results
        .iter()
        .map(|p| escape(&p.display().to_string()))
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>throng plot</title><style>body{{font-family:sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:.25em .7em;text-align:right}}th{{background:#f4f4f4}}svg.chart{{display:block;margin:.6em 0;border-top:1px solid #eee}}</style></head><body><h1>throng plot</h1><p>{}</p><table><tr><th>requests</th><th>peak offered/s</th><th>achieved/s (average)</th><th>success</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>errors</th></tr><tr><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.3}%</td><td>{:.2} ms</td><td>{:.2} ms</td><td>{:.2} ms</td><td>{:.2} ms</td><td>{}</td></tr></table>{}<p>Latency is measured from each request's intended send time (free of coordinated omission); the exact figures are in the results files' histograms (`throng report`). {records} requests.</p></body></html>\n",
        files.join(", "),
        report["requests"],
        peak_offered,
        t["achieved_rate"].as_f64().unwrap_or(0.0),
        report["success"].as_f64().unwrap_or(0.0) * 100.0,
        ms(&l["50th"]), ms(&l["90th"]), ms(&l["99th"]), ms(&l["max"]),
        if errors.is_empty() { "none".to_string() } else { escape(&errors.join(", ")) },
        charts.join("\n"),
    )
}
