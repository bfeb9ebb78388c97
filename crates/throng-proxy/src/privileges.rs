//! Least privilege: what the proxy holds and touches is no more than it needs.
//!
//! - Core dumps are off for the process's life ([`keep_secrets_in`]): it holds TLS private
//!   keys, session-ticket secrets and traffic keys, which a core file would write to disk.
//! - Root is dropped to `global.user` and `global.group` once the listeners are bound, the
//!   keys read and the admin socket made ([`drop_root`]), as HAProxy's `user` and `group`.
//! - Files it makes (the pid file, a log file) are created without following a symlink at
//!   their path, with the modes an operator expects ([`create_file`]): 0644 for the pid file,
//!   0640 for a log.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// No core dump, and no ptrace by other processes of the same user (`PR_SET_DUMPABLE` 0; the
/// kernel makes /proc's files of the process root's); the core size limit 0 as well, for a
/// process that becomes dumpable again by an exec.
pub fn keep_secrets_in() {
    // SAFETY: prctl and setrlimit with plain integer and struct arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            tracing::warn!("cannot turn core dumps off: {}", io::Error::last_os_error());
        }
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let _ = libc::setrlimit(libc::RLIMIT_CORE, &none);
    }
}

/// `path` created (or truncated, or appended to) as a regular file with `mode`, never through a
/// symlink at `path` (`O_NOFOLLOW`: refused with a clear error).
pub fn create_file(path: &Path, mode: u32, append: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    options.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symlink: refused (it could point anywhere)",
            )
        } else {
            e
        }
    })
}

/// Drops root to `user` (and `group`, else the user's own group), with the user's
/// supplementary groups. A process already running as them has nothing to drop (a new binary
/// started by one that dropped them); one that is neither root nor them cannot become them.
pub fn drop_root(user: Option<u32>, group: Option<u32>) -> Result<(), String> {
    if user.is_none() && group.is_none() {
        return Ok(());
    }
    // SAFETY: getuid, getgid, geteuid cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let uid = user.unwrap_or(euid);
    let gid = match (group, user) {
        (Some(gid), _) => gid,
        (None, Some(uid)) => throng_net::users::primary_gid(uid)?,
        (None, None) => egid,
    };
    if euid == uid && egid == gid {
        return Ok(());
    }
    if euid != 0 {
        return Err(format!(
            "global.user/group: uid {uid}, gid {gid} asked, but this process runs as uid {euid} (not root): start it as root, or as that user"
        ));
    }
    // SAFETY: setgroups, setgid and setuid with plain integers; the order (groups, then gid,
    // then uid) is the only one that works: after setuid nothing else may change.
    unsafe {
        let name = throng_net::users::name_of(uid);
        let groups_set = match &name {
            Some(name) => libc::initgroups(name.as_ptr(), gid),
            None => libc::setgroups(1, &gid),
        };
        if groups_set != 0 {
            return Err(format!("setgroups: {}", io::Error::last_os_error()));
        }
        if libc::setgid(gid) != 0 {
            return Err(format!("setgid {gid}: {}", io::Error::last_os_error()));
        }
        if libc::setuid(uid) != 0 {
            return Err(format!("setuid {uid}: {}", io::Error::last_os_error()));
        }
        // No way back: a process that could regain root has not dropped it.
        if uid != 0 && libc::setuid(0) == 0 {
            return Err("setuid: root could be regained".into());
        }
        // setuid made the process dumpable again only if it was allowed to; say no again.
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    tracing::info!("running as uid {uid}, gid {gid} from here on");
    Ok(())
}
