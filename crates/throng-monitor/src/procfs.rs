//! The few `/proc` files the monitor reads: all counters the kernel keeps, none of them a
//! per-socket table (`/proc/net/tcp` takes seconds with a million sockets).

use std::collections::{BTreeMap, HashMap};
use std::fs;

/// Raw counters at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// `Tcp: CurrEstab` from `/proc/net/snmp`.
    pub established: u64,
    pub in_segments: u64,
    pub out_segments: u64,
    pub retransmitted: u64,
    /// Bytes received and sent, per interface, from `/proc/net/dev`.
    pub interfaces: BTreeMap<String, (u64, u64)>,
    /// MemTotal − MemAvailable, bytes.
    pub memory_used: u64,
    pub memory_total: u64,
    /// TCP sockets in use, in TIME_WAIT, and the pages of buffer memory the kernel holds for
    /// TCP (`/proc/net/sockstat`), in bytes.
    pub tcp_inuse: u64,
    pub tcp_time_wait: u64,
    pub tcp_memory: u64,
    /// The kernel's slab caches (socket structures among them): with `tcp_memory`, what the
    /// kernel spends on connections.
    pub kernel_slab: u64,
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Reads the machine's counters; a file that cannot be read leaves its fields at zero.
pub fn read() -> Counters {
    let mut c = Counters::default();
    if let Ok(snmp) = fs::read_to_string("/proc/net/snmp") {
        let tcp = named_values(&snmp, "Tcp:");
        let get = |key: &str| tcp.get(key).copied().unwrap_or(0);
        c.established = get("CurrEstab");
        c.in_segments = get("InSegs");
        c.out_segments = get("OutSegs");
        c.retransmitted = get("RetransSegs");
    }
    if let Ok(dev) = fs::read_to_string("/proc/net/dev") {
        c.interfaces = interfaces(&dev);
    }
    if let Ok(meminfo) = fs::read_to_string("/proc/meminfo") {
        let kib = |key: &str| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        c.memory_total = kib("MemTotal:");
        c.memory_used = c.memory_total.saturating_sub(kib("MemAvailable:"));
        c.kernel_slab = kib("Slab:");
    }
    if let Ok(sockstat) = fs::read_to_string("/proc/net/sockstat") {
        let tcp: Vec<&str> = sockstat
            .lines()
            .find(|l| l.starts_with("TCP:"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        let field = |name: &str| {
            tcp.iter()
                .position(|w| *w == name)
                .and_then(|i| tcp.get(i + 1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        c.tcp_inuse = field("inuse");
        c.tcp_time_wait = field("tw");
        c.tcp_memory = field("mem") * page_size();
    }
    c
}

/// `Tcp: A B C` followed by `Tcp: 1 2 3`: the values by name.
fn named_values(text: &str, prefix: &str) -> BTreeMap<String, u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return BTreeMap::new();
    };
    names
        .split_whitespace()
        .skip(1)
        .zip(values.split_whitespace().skip(1))
        .filter_map(|(n, v)| Some((n.to_string(), v.parse::<i64>().ok()?.max(0) as u64)))
        .collect()
}

fn interfaces(dev: &str) -> BTreeMap<String, (u64, u64)> {
    dev.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let fields: Vec<u64> = rest
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            Some((name.trim().to_string(), (*fields.first()?, *fields.get(8)?)))
        })
        .collect()
}

/// A process's resident memory (bytes) and CPU time used so far (seconds), if it exists.
pub fn process(pid: u32) -> Option<(u64, f64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    Some((rss_pages * page_size(), ticks as f64 / clock_ticks()))
}

/// Every process's children, from each `/proc/PID/stat`'s parent field.
pub fn children() -> HashMap<u32, Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return children;
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let parent = stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(parent) = parent {
            children.entry(parent).or_default().push(pid);
        }
    }
    children
}

/// `pid` and all its descendants.
pub fn tree(pid: u32, children: &HashMap<u32, Vec<u32>>) -> Vec<u32> {
    let mut all = vec![pid];
    let mut at = 0;
    while at < all.len() {
        if let Some(kids) = children.get(&all[at]) {
            all.extend(kids);
        }
        at += 1;
    }
    all
}

/// Processes whose name (`/proc/PID/comm`) is `name`.
pub fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .collect();
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_formats_the_kernel_writes() {
        let snmp = "Ip: Forwarding\nIp: 1\nTcp: RtoAlgorithm MaxConn CurrEstab InSegs\nTcp: 1 -1 42 1000\n";
        let tcp = named_values(snmp, "Tcp:");
        assert_eq!(tcp["CurrEstab"], 42);
        assert_eq!(tcp["MaxConn"], 0);
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 100 2 0 0 0 0 0 0 200 3 0 0 0 0 0 0\n  eth0: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n";
        let ifs = interfaces(dev);
        assert_eq!(ifs["lo"], (100, 200));
        assert_eq!(ifs["eth0"], (5, 7));
    }

    #[test]
    fn this_process_is_measured() {
        let (rss, cpu) = process(std::process::id()).unwrap();
        assert!(rss > 0 && cpu >= 0.0);
        assert!(read().memory_total > 0);
        assert!(read().kernel_slab > 0);
    }

    #[test]
    fn a_tree_is_a_process_and_all_its_descendants() {
        let children: HashMap<u32, Vec<u32>> =
            [(1, vec![2, 3]), (3, vec![4]), (9, vec![10])].into();
        let mut tree = tree(1, &children);
        tree.sort();
        assert_eq!(tree, [1, 2, 3, 4]);
        assert!(tree_of_this_process_has_a_child());
    }

    /// The real table: a child this test starts is found under this process.
    fn tree_of_this_process_has_a_child() -> bool {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = tree(std::process::id(), &children()).contains(&child.id());
        let _ = child.kill();
        let _ = child.wait();
        found
    }
}
