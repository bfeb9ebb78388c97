//! The signals as people and machines read them: a line per second on a terminal, JSON lines,
//! CSV, and Prometheus exposition.

use crate::sample::Signals;
use std::fmt::Write;

/// Bytes as people read them: 1.5 MiB.
fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

pub fn line(s: &Signals) -> String {
    let mut out = format!(
        "{} established {} | segments/s in {} out {} | bytes/s in {} out {} | memory {} | tcp {} sockets, {} time-wait, {} buffers | slab {}",
        &s.time[11..19],
        s.established,
        count(s.segments_in_per_s),
        count(s.segments_out_per_s),
        bytes(s.bytes_in_per_s),
        bytes(s.bytes_out_per_s),
        bytes(s.memory_used as f64),
        s.tcp_sockets,
        s.tcp_time_wait,
        bytes(s.tcp_memory as f64),
        bytes(s.kernel_slab as f64),
    );
    for p in &s.processes {
        let _ = write!(
            out,
            " | {}[{}{}] {} {:.0}% cpu",
            p.name,
            p.pid,
            if p.count > 1 {
                format!(" +{}", p.count - 1)
            } else {
                String::new()
            },
            bytes(p.rss as f64),
            p.cpu_percent
        );
    }
    out
}

pub const CSV_HEADER: &str = "time,established,segments_in_per_s,segments_out_per_s,retransmits_per_s,bytes_in_per_s,bytes_out_per_s,memory_used,memory_total,tcp_sockets,tcp_time_wait,tcp_memory,kernel_slab,processes";

/// One CSV row; the processes in one column as `name:pid:rss:cpu_percent` joined by `;`.
pub fn csv(s: &Signals) -> String {
    let processes: Vec<String> = s
        .processes
        .iter()
        .map(|p| format!("{}:{}:{}:{:.1}", p.name, p.pid, p.rss, p.cpu_percent))
        .collect();
    format!(
        "{},{},{:.1},{:.1},{:.1},{:.1},{:.1},{},{},{},{},{},{},{}",
        s.time,
        s.established,
        s.segments_in_per_s,
        s.segments_out_per_s,
        s.retransmits_per_s,
        s.bytes_in_per_s,
        s.bytes_out_per_s,
        s.memory_used,
        s.memory_total,
        s.tcp_sockets,
        s.tcp_time_wait,
        s.tcp_memory,
        s.kernel_slab,
        processes.join(";")
    )
}

pub fn prometheus(s: &Signals) -> String {
    let mut out = String::with_capacity(4096);
    let mut gauge = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(
            out,
            "# HELP throng_monitor_{name} {help}\n# TYPE throng_monitor_{name} gauge"
        );
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "throng_monitor_{name} {value}");
            } else {
                let _ = writeln!(out, "throng_monitor_{name}{{{labels}}} {value}");
            }
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    gauge(
        "established_connections",
        "Established TCP connections (CurrEstab).",
        &one(s.established as f64),
    );
    gauge(
        "tcp_segments_in_per_second",
        "TCP segments received per second.",
        &one(s.segments_in_per_s),
    );
    gauge(
        "tcp_segments_out_per_second",
        "TCP segments sent per second.",
        &one(s.segments_out_per_s),
    );
    gauge(
        "tcp_retransmits_per_second",
        "TCP segments retransmitted per second.",
        &one(s.retransmits_per_s),
    );
    let per_interface: Vec<(String, f64)> = s
        .interfaces
        .iter()
        .flat_map(|(name, r)| {
            [
                (
                    format!("interface=\"{name}\",direction=\"in\""),
                    r.bytes_in_per_s,
                ),
                (
                    format!("interface=\"{name}\",direction=\"out\""),
                    r.bytes_out_per_s,
                ),
            ]
        })
        .collect();
    gauge(
        "interface_bytes_per_second",
        "Bytes per second by interface and direction.",
        &per_interface,
    );
    gauge(
        "memory_used_bytes",
        "Memory in use (MemTotal - MemAvailable).",
        &one(s.memory_used as f64),
    );
    gauge(
        "memory_total_bytes",
        "Memory in all.",
        &one(s.memory_total as f64),
    );
    gauge(
        "tcp_sockets",
        "TCP sockets in use.",
        &one(s.tcp_sockets as f64),
    );
    gauge(
        "tcp_time_wait_sockets",
        "TCP sockets in TIME_WAIT.",
        &one(s.tcp_time_wait as f64),
    );
    gauge(
        "tcp_memory_bytes",
        "Buffer memory the kernel holds for TCP sockets.",
        &one(s.tcp_memory as f64),
    );
    gauge(
        "kernel_slab_bytes",
        "The kernel's slab caches, socket structures among them (Slab in /proc/meminfo).",
        &one(s.kernel_slab as f64),
    );
    let label = |p: &crate::sample::Process| format!("pid=\"{}\",name=\"{}\"", p.pid, p.name);
    let rss: Vec<(String, f64)> = s
        .processes
        .iter()
        .map(|p| (label(p), p.rss as f64))
        .collect();
    gauge(
        "process_resident_bytes",
        "Resident memory of a watched process (given by pid: with its descendants).",
        &rss,
    );
    let cpu: Vec<(String, f64)> = s
        .processes
        .iter()
        .map(|p| (label(p), p.cpu_percent))
        .collect();
    gauge(
        "process_cpu_percent",
        "CPU of a watched process (given by pid: with its descendants), percent of one core.",
        &cpu,
    );
    out
}
