//! The open-files limit (`RLIMIT_NOFILE`): every connection is a file descriptor, so a process that
//! means to hold many connections raises its soft limit to the hard limit at start, and says
//! clearly when what the user asked for still cannot fit.

use std::io;

/// The soft and hard open-files limits of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// File descriptors a process keeps for itself besides connections: listeners, the runtime's
/// epoll and event fds, log files, stdio.
pub const RESERVED_FDS: u64 = 64;

/// Reads the current limits.
pub fn nofile() -> io::Result<NofileLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(NofileLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Raises the soft limit to the hard limit and returns the limits now in force.
pub fn raise_nofile() -> io::Result<NofileLimit> {
    let current = nofile()?;
    if current.soft < current.hard {
        let limit = libc::rlimit {
            rlim_cur: current.hard,
            rlim_max: current.hard,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    nofile()
}

/// Grows this process's descriptor table now, to hold `descriptors` (at most the soft limit), so
/// that it does not grow while connections open. The kernel doubles the table as descriptors are
/// taken (256, 512 ... 16,384), and in a process with threads each doubling waits for an RCU
/// grace period: every thread stalls for 10-20 ms at those connection counts, which an attack
/// records as lag and a server as latency. The table never shrinks; a slot costs 8 bytes.
/// Failing is harmless (only the stalls come back), so callers may ignore the error.
pub fn reserve_descriptor_table(descriptors: u64) -> io::Result<()> {
    let highest = descriptors.min(nofile()?.soft).saturating_sub(1);
    let Ok(highest) = libc::c_int::try_from(highest) else {
        return Ok(());
    };
    if highest < 3 {
        return Ok(());
    }
    let file = std::fs::File::open("/dev/null")?;
    // F_DUPFD takes the lowest free descriptor at or above `highest`: the table grows to hold it.
    // SAFETY: fcntl on a descriptor we own; the duplicate is closed at once.
    let duplicate = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::F_DUPFD_CLOEXEC,
            highest,
        )
    };
    if duplicate < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `duplicate` is ours and used nowhere else.
    unsafe { libc::close(duplicate) };
    Ok(())
}

/// How many connections fit in the open-files limit, each costing `fds_per_connection`
/// descriptors (1 for a server, 2 for a proxy: client side and server side).
pub fn connections_that_fit(limit: NofileLimit, fds_per_connection: u64) -> u64 {
    limit.soft.saturating_sub(RESERVED_FDS) / fds_per_connection.max(1)
}

/// Checks that `wanted` connections fit; the error says what to do about it.
pub fn check_fits(limit: NofileLimit, wanted: u64, fds_per_connection: u64) -> Result<(), String> {
    let fit = connections_that_fit(limit, fds_per_connection);
    if wanted <= fit {
        return Ok(());
    }
    Err(format!(
        "{wanted} connections need about {needed} open files, but this process may open at most \
         {soft} (RLIMIT_NOFILE, hard limit {hard}), so at most {fit} connections fit: raise the \
         hard limit (`ulimit -Hn`, systemd LimitNOFILE=, /etc/security/limits.conf) or run several \
         processes sharing the port",
        needed = wanted * fds_per_connection.max(1) + RESERVED_FDS,
        soft = limit.soft,
        hard = limit.hard,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor_table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line["FDSize:".len()..].trim().parse().unwrap()
    }

    #[test]
    fn the_descriptor_table_is_grown_at_once_and_no_descriptor_is_left_open() {
        let wanted = 3000.min(raise_nofile().unwrap().soft);
        reserve_descriptor_table(wanted).unwrap();
        assert!(
            descriptor_table_size() >= wanted,
            "FDSize {}",
            descriptor_table_size()
        );
        // The descriptor that grew it (at wanted - 1 or above) is closed again.
        let highest_open = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        assert!(
            highest_open < wanted - 1,
            "descriptor {highest_open} left open"
        );
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let raised = raise_nofile().unwrap();
        assert_eq!(raised.soft, raised.hard);
        assert_eq!(nofile().unwrap(), raised);
    }

    #[test]
    fn what_does_not_fit_is_explained() {
        let limit = NofileLimit {
            soft: 20_000,
            hard: 20_000,
        };
        assert_eq!(connections_that_fit(limit, 1), 19_936);
        assert_eq!(connections_that_fit(limit, 2), 9_968);
        assert!(check_fits(limit, 19_936, 1).is_ok());
        let message = check_fits(limit, 50_000, 2).unwrap_err();
        assert!(message.contains("50000 connections"), "{message}");
        assert!(message.contains("at most 20000"), "{message}");
        assert!(message.contains("several processes"), "{message}");
    }
}
