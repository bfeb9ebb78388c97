//! What a run tells: report.txt and report.html from the phases' results and the monitor's
//! samples, and the summary's lines: peak connections, memory per connection of each component
//! and of the kernel, handshakes per second, each phase's figures, errors, and what the slope
//! says of the story's scale.

use crate::config::{Phase, Scenario};
use serde_json::Value;
use std::path::{Path, PathBuf};
use throng_results::mqtt::summary::Summary as MqttSummary;
use throng_results::report::Summary;
use throng_results::Reader;

/// The sockets of one end-to-end connection that this machine's monitor counts: the client's
/// end when the attack runs here, the proxy's two (toward the client and toward pong), pong's
/// end when pong runs here. All four on one machine; two on a proxy host of many.
struct SocketsHere {
    per_connection: u64,
    words: &'static str,
}

impl SocketsHere {
    fn of(scenario: &Scenario) -> SocketsHere {
        let attack_here = scenario.phases.iter().any(|p| p.hosts.is_empty());
        let pong_here = scenario.pong_hosts.is_empty();
        let per_connection = 2 + u64::from(attack_here) + u64::from(pong_here);
        let words = match (attack_here, pong_here) {
            (true, true) => "client, proxy twice and pong, all here",
            (false, true) => "proxy twice and pong here, the client on its host",
            (true, false) => "client and proxy twice here, pong on its host",
            (false, false) => "the proxy's two here, the client and pong on their hosts",
        };
        SocketsHere {
            per_connection,
            words,
        }
    }
}

/// What [`write`] leaves for the run's end: the summary's lines, and the phases with a
/// threshold broken.
pub struct Written {
    pub summary: String,
    pub broken: Vec<String>,
}

/// report.txt, report.html and the summary's lines; each phase's thresholds judged on its
/// merged results, said in both.
/// `host_monitors`: the samples of monitors on other hosts, drawn beside this machine's.
pub fn write(
    scenario: &Scenario,
    files: &[Vec<PathBuf>],
    host_monitors: &[PathBuf],
    dir: &Path,
) -> Result<Written, String> {
    let monitor = dir.join("monitor.jsonl");
    let samples = monitor_samples(&monitor);
    let mut text = String::new();
    let mut phase_lines = Vec::new();
    let mut broken = Vec::new();
    let mut all = Summary::new(None);
    for (index, (phase, parts)) in scenario.phases.iter().zip(files).enumerate() {
        // A phase on hosts left a file per part: merged exactly, as `throng report` does.
        // A phase whose attack could not start has no file: said, and the others reported.
        let listed = parts;
        let parts: Vec<PathBuf> = listed.iter().filter(|p| p.exists()).cloned().collect();
        let Some(file) = parts.first() else {
            if !listed.is_empty() {
                phase_lines.push(format!(
                    "phase {:02}-{}: no results (see attack.log)",
                    index + 1,
                    crate::phases::slug(&phase.name)
                ));
            }
            continue;
        };
        let parts = &parts[..];
        if phase.mqtt.is_some() {
            // A damaged file is said on the phase's line; the other phases are still reported.
            match mqtt_phase(index, phase, parts) {
                Ok((phase_text, line)) => {
                    text.push_str(&phase_text);
                    phase_lines.push(line);
                }
                Err(why) => phase_lines.push(format!(
                    "phase {:02}-{}: {why}",
                    index + 1,
                    crate::phases::slug(&phase.name)
                )),
            }
            continue;
        }
        let mut one = Summary::new(None);
        for part in parts {
            for summary in [&mut all, &mut one] {
                add_file(summary, part)?;
            }
        }
        let name = format!("{:02}-{}", index + 1, crate::phases::slug(&phase.name));
        let name = match parts.len() {
            1 => name,
            n => format!("{name} ({n} hosts)"),
        };
        text.push_str(&format!("== {name}\n{}\n", one.text()));
        let r = one.json();
        let tls = &r["throng"]["tls"];
        let handshakes = tls["count"].as_u64().unwrap_or(0);
        let seconds = phase.duration.as_secs_f64().max(1e-9);
        phase_lines.push(format!(
            "phase {name}: {} requests at {:.1}/s, success {:.3}%, p50 {}, p99 {}{}",
            r["requests"],
            r["throng"]["achieved_rate"].as_f64().unwrap_or(0.0),
            r["success"].as_f64().unwrap_or(0.0) * 100.0,
            ms(&r["latencies"]["50th"]),
            ms(&r["latencies"]["99th"]),
            if handshakes > 0 {
                format!(
                    ", {handshakes} TLS handshakes ({} resumed): {:.0}/s over the phase",
                    r["throng"]["tls_resumed"],
                    handshakes as f64 / seconds
                )
            } else {
                String::new()
            },
        ));
        // What a new connection costs the proxy, where the phase opened many.
        if handshakes >= 1000 {
            if let Some(cpu) = phase_start_ms(file)
                .map(|start| {
                    cpu_seconds(
                        &samples,
                        "proxy",
                        start,
                        start + phase.duration.as_millis() as u64,
                    )
                })
                .filter(|cpu| *cpu > 0.0)
            {
                if let Some(line) = phase_lines.last_mut() {
                    line.push_str(&format!(
                        "; the proxy used {cpu:.1} CPU-s meanwhile: {:.2} s per 1,000 new connections",
                        cpu * 1000.0 / handshakes as f64
                    ));
                }
            }
        }
        if !phase.thresholds.is_empty() {
            let verdicts = one.judge(&phase.thresholds);
            let said = throng_results::threshold::describe(&verdicts);
            let said = format!("phase {}: {}", phase.name, said.trim_end());
            text.push_str(&format!("{said}\n\n"));
            if verdicts.iter().any(|v| !v.met) {
                broken.push(phase.name.clone());
            }
            phase_lines.push(said);
        }
    }
    let http_phases = scenario.phases.iter().any(|p| p.mqtt.is_none());
    if http_phases {
        text.push_str(&format!("== all phases\n{}\n", all.text()));
    }
    std::fs::write(dir.join("report.txt"), &text).map_err(|e| e.to_string())?;
    // A page for the HTTP phases (report.html) and one for the MQTT phases (report-mqtt.html,
    // or report.html when there are only MQTT phases).
    let monitors: Vec<&std::path::Path> = monitor
        .exists()
        .then_some(monitor.as_path())
        .into_iter()
        .chain(host_monitors.iter().map(PathBuf::as_path))
        .collect();
    for (mqtt, page_name) in [(false, "report.html"), (true, "report-mqtt.html")] {
        let paths: Vec<&Path> = scenario
            .phases
            .iter()
            .zip(files)
            .filter(|(phase, _)| phase.mqtt.is_some() == mqtt)
            .flat_map(|(_, parts)| parts.iter().map(PathBuf::as_path))
            .collect();
        if paths.is_empty() {
            continue;
        }
        let page = throng_plot::page(&paths, &monitors)?;
        let page_name = if mqtt && !http_phases {
            "report.html"
        } else {
            page_name
        };
        std::fs::write(dir.join(page_name), page).map_err(|e| e.to_string())?;
    }

    let mut lines = memory_lines(&samples, &SocketsHere::of(scenario));
    if let Some(line) = kernel_with_hosts(&samples, host_monitors) {
        lines.push(line);
    }
    lines.extend(phase_lines);
    if !http_phases {
        return Ok(Written {
            summary: lines.join("\n"),
            broken,
        });
    }
    let report = all.json();
    let l = &report["latencies"];
    lines.push(format!(
        "all phases: {} requests at {:.1}/s achieved, success {:.3}%, p50 {}, p99 {}, max {}",
        report["requests"],
        report["throng"]["achieved_rate"].as_f64().unwrap_or(0.0),
        report["success"].as_f64().unwrap_or(0.0) * 100.0,
        ms(&l["50th"]),
        ms(&l["99th"]),
        ms(&l["max"]),
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
    Ok(Written {
        summary: lines.join("\n"),
        broken,
    })
}

/// An MQTT phase's section of report.txt (its parts merged) and its summary line.
fn mqtt_phase(index: usize, phase: &Phase, parts: &[PathBuf]) -> Result<(String, String), String> {
    let mut one = MqttSummary::default();
    for part in parts {
        let name = part.display().to_string();
        let input = std::fs::File::open(part).map_err(|e| format!("{name}: {e}"))?;
        let reader =
            Reader::new(std::io::BufReader::new(input)).map_err(|e| format!("{name}: {e}"))?;
        one.add_reader(&name, reader)?;
    }
    let name = format!("{:02}-{}", index + 1, crate::phases::slug(&phase.name));
    let r = one.json();
    let (c, p, rx) = (&r["connections"], &r["publish"], &r["receive"]);
    let errors = r["errors"]
        .as_object()
        .map(|m| m.values().filter_map(|e| e["count"].as_u64()).sum::<u64>())
        .unwrap_or(0);
    let mut line = format!(
        "phase {name}: mqtt {}, {} of {} connected (connect p99 {}), {} errors",
        r["role"].as_str().unwrap_or("?"),
        c["connected"],
        c["clients"],
        ms(&c["connect"]["99th"]),
        errors
    );
    if r["role"] == "pub" {
        let seconds = phase.duration.as_secs_f64().max(1e-9);
        line.push_str(&format!(
            "; {} messages at {:.1}/s (offered {}/s), {} received, {} lost, end to end p50 {}, p99 {} from the intended send",
            p["sent"],
            p["sent"].as_f64().unwrap_or(0.0) / seconds,
            p["offered_rate"],
            rx["received"],
            rx["lost"],
            ms(&rx["e2e"]["50th"]),
            ms(&rx["e2e"]["99th"]),
        ));
    }
    Ok((format!("== {name}\n{}\n", one.text()), line))
}

fn add_file(summary: &mut Summary, file: &Path) -> Result<(), String> {
    let input = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let reader = Reader::new(std::io::BufReader::new(input))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    summary
        .add_stream(reader)
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// When a phase's schedule started (Unix ms), from its results' meta frame.
fn phase_start_ms(file: &Path) -> Option<u64> {
    let input = std::fs::File::open(file).ok()?;
    let mut reader = Reader::new(std::io::BufReader::new(input)).ok()?;
    match reader.next_frame().ok()?? {
        throng_results::Frame::Meta(meta) => Some(meta.start_unix_ns / 1_000_000),
        _ => None,
    }
}

/// CPU-seconds the processes named `name` used between `from` and `to` (Unix ms), from the
/// monitor's samples (each gives the CPU share over the interval it ends).
fn cpu_seconds(samples: &[Value], name: &str, from: u64, to: u64) -> f64 {
    let mut total = 0.0;
    for pair in samples.windows(2) {
        let (before, after) = (
            pair[0]["unix_ms"].as_u64().unwrap_or(0),
            pair[1]["unix_ms"].as_u64().unwrap_or(0),
        );
        if after <= from || after > to {
            continue;
        }
        let share: f64 = pair[1]["processes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == name)
            .filter_map(|p| p["cpu_percent"].as_f64())
            .sum();
        total += share / 100.0 * after.saturating_sub(before) as f64 / 1000.0;
    }
    total
}

fn ms(nanoseconds: &Value) -> String {
    format!("{:.1} ms", nanoseconds.as_f64().unwrap_or(0.0) / 1e6)
}

/// Resident memory of the component `name` in one sample: its processes summed.
fn resident(sample: &Value, name: &str) -> Option<(u64, u64)> {
    let mut found = None;
    for p in sample["processes"].as_array().into_iter().flatten() {
        if p["name"] == name {
            let (rss, count) = found.unwrap_or((0, 0));
            found = Some((
                rss + p["rss"].as_u64().unwrap_or(0),
                count + p["count"].as_u64().unwrap_or(1),
            ));
        }
    }
    found
}

/// Where a component's memory is measured from: of the samples up to the peak (the last one)
/// that show it, the last one still near the bottom of the climb to the peak (within a tenth of
/// it). Not simply its first sample, nor the one with the fewest sockets: those may catch a
/// process just started, before its runtime is mapped (the attack's processes start with their
/// phases), and show it at 0 or 1 MiB. Any sample on the climb gives about the same slope.
fn base_sample<'a>(samples: &'a [Value], name: &str) -> Option<&'a Value> {
    let established = |s: &Value| s["established"].as_u64().unwrap_or(0);
    let shown: Vec<&Value> = samples
        .iter()
        .filter(|s| resident(s, name).is_some())
        .collect();
    let bottom = shown.iter().map(|s| established(s)).min()?;
    let peak = established(samples.last()?);
    let near_bottom = bottom + peak.saturating_sub(bottom) / 10;
    shown
        .into_iter()
        .rev()
        .find(|s| established(s) <= near_bottom)
}

/// Peak connections, and each component's memory per connection from the monitor's samples:
/// what its resident memory grew from the foot of the climb (see [`base_sample`]) to the peak of
/// connections, over the connections gained meanwhile.
fn memory_lines(samples: &[Value], here: &SocketsHere) -> Vec<String> {
    let per_connection = here.per_connection;
    let field = |s: &Value, key: &str| s[key].as_u64().unwrap_or(0);
    let Some(first) = samples.first() else {
        return vec!["no monitor samples: memory per connection unknown".into()];
    };
    let Some((peak_index, peak)) = samples
        .iter()
        .enumerate()
        .max_by_key(|(_, s)| field(s, "established"))
    else {
        return Vec::new();
    };
    let base = field(first, "established");
    let connections = field(peak, "established").saturating_sub(base) / per_connection;
    let mut lines = vec![format!(
        "peak established TCP sockets: {} (about {connections} end-to-end connections: each has {per_connection} sockets on this machine, {})",
        field(peak, "established"),
        here.words
    )];
    if connections == 0 {
        return lines;
    }
    let mut proxy_per = None;
    for name in ["proxy", "pong", "attack"] {
        // From the foot of the climb to the peak: the slope of its memory against connections.
        let Some(from) = base_sample(&samples[..=peak_index], name) else {
            continue;
        };
        let (Some((start, _)), Some((at_peak, processes))) =
            (resident(from, name), resident(peak, name))
        else {
            continue;
        };
        let gained =
            field(peak, "established").saturating_sub(field(from, "established")) / per_connection;
        let Some(per) = at_peak.saturating_sub(start).checked_div(gained) else {
            continue;
        };
        if name == "proxy" {
            proxy_per = Some(per);
        }
        lines.push(format!(
            "{name}: {} MiB at the foot of the climb, {} MiB at the peak of connections ({processes} process{}): about {per} B per connection",
            start >> 20,
            at_peak >> 20,
            if processes == 1 { "" } else { "es" }
        ));
    }
    let kernel = |s: &Value| field(s, "kernel_slab") + field(s, "tcp_memory");
    let sockets = field(peak, "tcp_sockets").saturating_sub(field(first, "tcp_sockets"));
    if let Some(per_socket) = kernel(peak)
        .saturating_sub(kernel(first))
        .checked_div(sockets)
    {
        lines.push(format!(
            "kernel: slab and TCP buffers grew {} MiB for {sockets} more sockets: about {per_socket} B per socket",
            kernel(peak).saturating_sub(kernel(first)) >> 20
        ));
        if let Some(proxy) = proxy_per {
            // The story counted 2.38M established connections on the HAProxy machine: half
            // from clients, half to servers. Per client there, the proxy's memory and 2 sockets.
            let per_client = proxy + 2 * per_socket;
            let clients = 1_000_000u64;
            lines.push(format!(
                "projection: 2,000,000 TCP connections at the proxy (1,000,000 clients and as many server connections, as the story counted) need about {:.1} GB ({:.1} GB proxy, {:.1} GB kernel); the story's HAProxy machine needed about 48 GB for 2.38M",
                (clients * per_client) as f64 / 1e9,
                (clients * proxy) as f64 / 1e9,
                (clients * 2 * per_socket) as f64 / 1e9
            ));
        }
    }
    lines
}

/// A monitor's samples (a JSON line each; an unreadable file or line: none).
fn monitor_samples(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// With monitors on hosts that may be network namespaces of this machine, whose sockets then
/// share its kernel: the kernel's growth here over the sockets of every host as well (which
/// figure holds depends on what the hosts are; the summary cannot tell).
fn kernel_with_hosts(samples: &[Value], host_monitors: &[PathBuf]) -> Option<String> {
    let field = |s: &Value, key: &str| s[key].as_u64().unwrap_or(0);
    let grown = |samples: &[Value], key: &str| -> u64 {
        let first = samples.first().map_or(0, |s| field(s, key));
        samples
            .iter()
            .map(|s| field(s, key))
            .max()
            .unwrap_or(0)
            .saturating_sub(first)
    };
    let on_hosts: u64 = host_monitors
        .iter()
        .map(|path| grown(&monitor_samples(path), "tcp_sockets"))
        .sum();
    let here = grown(samples, "tcp_sockets");
    let kernel = |s: &Value| field(s, "kernel_slab") + field(s, "tcp_memory");
    let peak = samples.iter().max_by_key(|s| field(s, "established"))?;
    let kernel_grown = kernel(peak).saturating_sub(kernel(samples.first()?));
    let per_socket = kernel_grown
        .checked_div(here + on_hosts)
        .filter(|_| on_hosts > 0)?;
    Some(format!(
        "kernel, if the hosts are namespaces of this machine: {on_hosts} more sockets on them too, about {per_socket} B per socket over all"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cpu_is_summed_over_the_window_and_the_named_processes() {
        let sample = |ms: u64, proxy: &[f64]| {
            let processes: Vec<Value> = proxy
                .iter()
                .map(|cpu| json!({"name": "proxy", "cpu_percent": cpu}))
                .chain([json!({"name": "pong", "cpu_percent": 90.0})])
                .collect();
            json!({"unix_ms": ms, "processes": processes})
        };
        let samples = [
            sample(1_000, &[100.0]),
            sample(2_000, &[50.0, 50.0]), // 1 s at one core in all: counted
            sample(3_000, &[25.0]),       // 0.25 s: counted
            sample(3_500, &[100.0, 100.0]), // after the window: not counted
        ];
        let cpu = cpu_seconds(&samples, "proxy", 1_000, 3_000);
        assert!((cpu - 1.25).abs() < 1e-9, "{cpu}");
    }

    #[test]
    fn memory_per_connection_is_measured_from_the_quietest_sample_not_a_process_just_started() {
        let sample = |ms: u64, established: u64, attack_mib: u64| {
            json!({
                "unix_ms": ms,
                "established": established,
                "processes": [{"name": "attack", "rss": attack_mib << 20, "count": 1}],
            })
        };
        let samples = [
            sample(1_000, 4, 0),            // the warm-up's process, just started
            sample(2_000, 40, 8),           // ... and running
            sample(3_000, 8_000 + 40, 12),  // the hold ramping up
            sample(4_000, 40_000 + 40, 40), // the peak: 10,000 connections
            sample(5_000, 40, 9),           // after the peak: not a base
        ];
        let here = SocketsHere {
            per_connection: 4,
            words: "all here",
        };
        let lines = memory_lines(&samples, &here);
        let attack = lines.iter().find(|l| l.starts_with("attack:")).unwrap();
        // 32 MiB over 10,000 connections, not 40 MiB.
        assert!(
            attack.contains("8 MiB at the foot") && attack.contains("about 3355 B"),
            "{attack}"
        );
    }
}
