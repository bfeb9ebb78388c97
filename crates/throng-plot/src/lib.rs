//! `throng plot`: results (and a monitor's samples) as one self-contained HTML page: charts over
//! time, inline SVG, no script and nothing fetched, so it opens offline and stays fast for long
//! runs (one point per second; the scatter keeps at most a few thousand requests).
//!
//! - [`chart`]: a line or scatter chart as SVG.

pub mod chart;
mod mqtt;

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

/// The page for `results` files and the JSON lines of any monitors (one per machine, say).
pub fn page(results: &[&Path], monitors: &[&Path]) -> Result<String, String> {
    let mut hosts: Vec<(String, Vec<Value>)> = Vec::new();
    for path in monitors {
        for (host, samples) in read_monitor(path)? {
            match hosts.iter_mut().find(|(h, _)| *h == host) {
                Some((_, known)) => known.extend(samples),
                None => hosts.push((host, samples)),
            }
        }
    }
    // MQTT runs have charts of their own; a page is of one kind.
    let mut kinds = Vec::new();
    for path in results {
        kinds.push((path, mqtt::is_mqtt(path)?));
    }
    if let Some((first, _)) = kinds.iter().find(|(_, is)| *is) {
        if let Some((http, _)) = kinds.iter().find(|(_, is)| !*is) {
            return Err(format!(
                "{} holds HTTP results and {} an MQTT run: plot them apart",
                http.display(),
                first.display()
            ));
        }
        return mqtt::page(results, &hosts);
    }
    let mut summary = Summary::new(None);
    let mut seconds = Seconds::default();
    for path in results {
        read_results(path, &mut summary, &mut seconds)?;
    }
    let report = summary.json();
    let start = first_second(seconds.offered.keys().next().copied(), &hosts);
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

    if !hosts.is_empty() {
        charts.extend(monitor_charts(&hosts, &at));
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
            Frame::End(_) | Frame::Progress(_) | Frame::MqttSecond(_) | Frame::MqttTotals(_) => {}
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

/// The second the page's time axis starts at: the results' first, or the monitors' first
/// sample when there are no results.
pub(crate) fn first_second(results: Option<u64>, hosts: &[(String, Vec<Value>)]) -> u64 {
    let first_sample = hosts
        .iter()
        .filter_map(|(_, samples)| samples.first()?["unix_ms"].as_u64())
        .min();
    results.or(first_sample.map(|ms| ms / 1000)).unwrap_or(0)
}

/// A monitor's samples, by host: each sample's `host`, or the file's name for samples without
/// one (written before monitors said their host).
fn read_monitor(path: &Path) -> Result<Vec<(String, Vec<Value>)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let unnamed = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut hosts: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let sample: Value = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: not a monitor sample: {e}", path.display(), i + 1))?;
        let host = match sample["host"].as_str() {
            Some(host) if !host.is_empty() => host.to_string(),
            _ => unnamed.clone(),
        };
        match hosts.iter_mut().find(|(h, _)| *h == host) {
            Some((_, samples)) => samples.push(sample),
            None => hosts.push((host, vec![sample])),
        }
    }
    Ok(hosts)
}

/// The machine charts: a series per host and signal (named by the host when there are
/// several), and a process's CPU and memory per host, name and pid.
pub(crate) fn monitor_charts(
    hosts: &[(String, Vec<Value>)],
    at: &dyn Fn(u64) -> f64,
) -> Vec<String> {
    let several = hosts.len() > 1;
    let signal = |samples: &[Value], key: &str, scale: f64| -> Vec<(f64, f64)> {
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
    // Every (name, key) of a chart, for every host.
    let lines = |parts: &[(&str, &str)], scale: f64| -> Vec<Series> {
        let mut series = Vec::new();
        for (h, (host, samples)) in hosts.iter().enumerate() {
            for (k, (name, key)) in parts.iter().enumerate() {
                let name = match (several, parts.len()) {
                    (false, _) => name.to_string(),
                    (true, 1) => host.clone(),
                    (true, _) => format!("{name} {host}"),
                };
                series.push(Series {
                    name,
                    colour: COLOURS[(h * parts.len() + k) % COLOURS.len()],
                    points: signal(samples, key, scale),
                    dots: false,
                });
            }
        }
        series
    };
    let mib = 1.0 / (1 << 20) as f64;
    let mut charts = vec![
        chart::svg(
            "Established TCP connections",
            "",
            &lines(&[("established", "established")], 1.0),
            false,
        ),
        chart::svg(
            "TCP segments per second",
            "/s",
            &lines(
                &[("in", "segments_in_per_s"), ("out", "segments_out_per_s")],
                1.0,
            ),
            false,
        ),
        chart::svg(
            "Bytes per second, all interfaces",
            "MB/s",
            &lines(
                &[("in", "bytes_in_per_s"), ("out", "bytes_out_per_s")],
                1e-6,
            ),
            false,
        ),
        chart::svg(
            "Memory",
            "MiB",
            &lines(
                &[
                    ("used", "memory_used"),
                    ("kernel TCP buffers", "tcp_memory"),
                ],
                mib,
            ),
            false,
        ),
    ];
    let mut processes: BTreeMap<String, ProcessLines> = BTreeMap::new();
    for (host, samples) in hosts {
        for s in samples {
            let t = at(s["unix_ms"].as_u64().unwrap_or(0) / 1000);
            for p in s["processes"].as_array().into_iter().flatten() {
                let process = format!("{}[{}]", p["name"].as_str().unwrap_or("?"), p["pid"]);
                let key = match several {
                    true => format!("{host} {process}"),
                    false => process,
                };
                let entry = processes.entry(key).or_default();
                entry
                    .cpu
                    .push((t, p["cpu_percent"].as_f64().unwrap_or(0.0)));
                entry.rss.push((t, p["rss"].as_f64().unwrap_or(0.0) * mib));
            }
        }
    }
    if !processes.is_empty() {
        let series = |pick: fn(&ProcessLines) -> &Vec<(f64, f64)>| -> Vec<Series> {
            processes
                .iter()
                .enumerate()
                .map(|(i, (name, both))| Series {
                    name: name.clone(),
                    colour: COLOURS[i % COLOURS.len()],
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
    charts
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
