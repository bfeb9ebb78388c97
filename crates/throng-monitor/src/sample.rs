//! Signals per second, from two readings of the counters.

use crate::procfs::{self, Counters};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Serialize)]
pub struct Signals {
    /// When the interval ended: RFC 3339 UTC and milliseconds since the epoch.
    pub time: String,
    pub unix_ms: u64,
    /// The machine the samples are of (its host name, or what `--host` said): what tells
    /// apart the samples of several machines drawn in one plot.
    pub host: String,
    /// Established TCP connections, both directions (on loopback each counts twice: both ends).
    pub established: u64,
    pub segments_in_per_s: f64,
    pub segments_out_per_s: f64,
    pub retransmits_per_s: f64,
    /// All interfaces together.
    pub bytes_in_per_s: f64,
    pub bytes_out_per_s: f64,
    pub interfaces: BTreeMap<String, Rates>,
    pub memory_used: u64,
    pub memory_total: u64,
    pub tcp_sockets: u64,
    pub tcp_time_wait: u64,
    /// Buffer memory the kernel holds for TCP sockets.
    pub tcp_memory: u64,
    /// The kernel's slab caches (socket structures among them).
    pub kernel_slab: u64,
    pub processes: Vec<Process>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rates {
    pub bytes_in_per_s: f64,
    pub bytes_out_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Process {
    pub pid: u32,
    pub name: String,
    /// The process and its descendants (a master's workers): how many, and their sums.
    pub count: usize,
    pub rss: u64,
    /// Share of one core over the interval, in percent.
    pub cpu_percent: f64,
}

/// What the previous reading left, to take differences from.
#[derive(Default)]
pub struct Sampler {
    last: Option<(Counters, std::time::Instant)>,
    cpu: BTreeMap<u32, f64>,
}

impl Sampler {
    /// Reads now; `None` the first time (a rate needs two readings).
    /// `pids`: each process to watch, its name, and whether its descendants count with it.
    pub fn sample(&mut self, pids: &[(u32, String, bool)]) -> Option<Signals> {
        let now = std::time::Instant::now();
        let counters = procfs::read();
        let mut processes = Vec::new();
        let mut cpu_now = BTreeMap::new();
        let children = if pids.iter().any(|(_, _, tree)| *tree) {
            procfs::children()
        } else {
            Default::default()
        };
        for (pid, name, with_children) in pids {
            let members = match with_children {
                true => procfs::tree(*pid, &children),
                false => vec![*pid],
            };
            let tree: Vec<(u64, f64)> = members.into_iter().filter_map(procfs::process).collect();
            if tree.is_empty() {
                continue;
            }
            let rss = tree.iter().map(|(rss, _)| rss).sum();
            let cpu = tree.iter().map(|(_, cpu)| cpu).sum();
            cpu_now.insert(*pid, cpu);
            processes.push((*pid, name.clone(), tree.len(), rss, cpu));
        }
        let previous = self.last.replace((counters.clone(), now));
        let previous_cpu = std::mem::replace(&mut self.cpu, cpu_now);
        let (before, then) = previous?;
        let seconds = now.duration_since(then).as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
        let interfaces: BTreeMap<String, Rates> = counters
            .interfaces
            .iter()
            .map(|(name, &(rx, tx))| {
                let (rx0, tx0) = before.interfaces.get(name).copied().unwrap_or((rx, tx));
                let rates = Rates {
                    bytes_in_per_s: rate(rx0, rx),
                    bytes_out_per_s: rate(tx0, tx),
                };
                (name.clone(), rates)
            })
            .collect();
        let wall = SystemTime::now();
        let unix_ms = wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let (y, mo, d, h, mi, s, ms) = throng_net::calendar::utc(wall);
        Some(Signals {
            time: format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z"),
            unix_ms,
            host: String::new(),
            established: counters.established,
            segments_in_per_s: rate(before.in_segments, counters.in_segments),
            segments_out_per_s: rate(before.out_segments, counters.out_segments),
            retransmits_per_s: rate(before.retransmitted, counters.retransmitted),
            bytes_in_per_s: interfaces.values().map(|r| r.bytes_in_per_s).sum(),
            bytes_out_per_s: interfaces.values().map(|r| r.bytes_out_per_s).sum(),
            interfaces,
            memory_used: counters.memory_used,
            memory_total: counters.memory_total,
            tcp_sockets: counters.tcp_inuse,
            tcp_time_wait: counters.tcp_time_wait,
            tcp_memory: counters.tcp_memory,
            kernel_slab: counters.kernel_slab,
            processes: processes
                .into_iter()
                .map(|(pid, name, count, rss, cpu)| Process {
                    pid,
                    name,
                    count,
                    rss,
                    cpu_percent: previous_cpu
                        .get(&pid)
                        .map_or(0.0, |c| (cpu - c).max(0.0) / seconds * 100.0),
                })
                .collect(),
        })
    }
}
