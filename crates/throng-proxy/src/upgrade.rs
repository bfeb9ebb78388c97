//! Binary upgrade (SIGUSR2), and telling the world the process is ready.
//!
//! The running process starts the binary at its own path again (a new build put there, say),
//! with its own arguments and `--successor`. The new process inherits the listening sockets
//! (descriptors named in [`crate::listeners::INHERITED`]) and reads the session-ticket key on
//! its stdin, so returning clients resume their TLS sessions with it. It says it is ready on a
//! pipe named in [`READY_FD`]; only then does the old process stop accepting. A new binary that
//! fails to start, or is not ready within [`READY_WITHIN`], is stopped, and the old process
//! keeps serving as if nothing had happened.
//!
//! Under systemd the new process tells it its pid (`MAINPID=`, with `NotifyAccess=all`), and
//! rewrites `global.pidfile`.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// The environment variable naming the descriptor a new binary writes its ready line to.
pub const READY_FD: &str = "THRONG_PROXY_READY_FD";

/// The flag that tells a new binary it takes over from an old one.
pub const SUCCESSOR_FLAG: &str = "--successor";

/// How long a new binary has to read its configuration, bind what is new and start its threads.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The binary this process was started from, as a path (taken at start: a new build may be
/// written over the file later, and that is the one an upgrade starts).
static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// `$NOTIFY_SOCKET` as systemd gave it to this process, taken out of the environment at start.
static NOTIFY_SOCKET: OnceLock<Option<OsString>> = OnceLock::new();

/// The pipe an old binary waits on for this one's ready line, taken from the environment at
/// start (so that no process this one starts inherits it).
static READY_PIPE: Mutex<Option<RawFd>> = Mutex::new(None);

/// At start, before anything else: notes this process's binary (before anything can replace
/// it), and takes the ready pipe an old binary may have handed over.
pub fn prepare() {
    EXE.get_or_init(|| std::env::current_exe().ok());
    // systemd's socket is this process's to speak on: a master's workers must not tell systemd
    // they are the main process (an upgrade's new binary is given it again, explicitly).
    NOTIFY_SOCKET.get_or_init(|| {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        std::env::remove_var("NOTIFY_SOCKET");
        socket
    });
    let Some(fd) = std::env::var(READY_FD)
        .ok()
        .and_then(|v| v.parse::<RawFd>().ok())
    else {
        return;
    };
    std::env::remove_var(READY_FD);
    // SAFETY: fcntl on a descriptor number; a bad one only fails.
    if fd > 2 && unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == 0 {
        *READY_PIPE.lock().unwrap_or_else(|e| e.into_inner()) = Some(fd);
    }
}

/// Says the process is ready: `line` on stdout (scripts wait for it), on the ready pipe of an
/// old binary that started this one, in `pidfile`, and to systemd.
pub fn announce_ready(line: &str, pidfile: Option<&Path>) {
    println!("{line}");
    let _ = std::io::stdout().flush();
    let taken = READY_PIPE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(fd) = taken {
        // SAFETY: the descriptor was handed to this process to write its line to and close
        // (taken once, here); nothing else uses it.
        let mut pipe = unsafe { std::fs::File::from_raw_fd(fd) };
        let _ = writeln!(pipe, "{line}");
    }
    let pid = std::process::id();
    if let Some(path) = pidfile {
        let written = crate::privileges::create_file(path, 0o644, false)
            .and_then(|mut file| file.write_all(format!("{pid}\n").as_bytes()));
        if let Err(e) = written {
            warn!("global.pidfile {}: {e}", path.display());
        }
    }
    notify_systemd(&format!("READY=1\nMAINPID={pid}"));
}

/// Whether the kernel moves connections waiting in a closing listener's accept queue to another
/// listener of its `SO_REUSEPORT` group (`net.ipv4.tcp_migrate_req`, Linux 5.14); `None` when it
/// cannot tell.
pub fn migrates_accept_queues() -> Option<bool> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").ok()?;
    Some(text.trim() == "1")
}

/// Removes `pidfile` if it still names this process.
pub fn remove_pidfile(pidfile: Option<&Path>) {
    let Some(path) = pidfile else { return };
    let ours = std::fs::read_to_string(path)
        .map(|text| text.trim() == std::process::id().to_string())
        .unwrap_or(false);
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

/// sd_notify(3): a datagram to `$NOTIFY_SOCKET`, when systemd gave one. `RELOADING=1` carries
/// the monotonic clock, as `Type=notify-reload` wants it.
pub fn notify_systemd(state: &str) {
    let state = if state == "RELOADING=1" {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let micros = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000;
        format!("RELOADING=1\nMONOTONIC_USEC={micros}")
    } else {
        state.to_string()
    };
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = NOTIFY_SOCKET.get().cloned().flatten() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr));
    if let Err(e) = sent {
        warn!("cannot notify systemd: {e}");
    }
}

/// SIGUSR2: starts the new binary on the listeners (`inherit` names their descriptors `fds`,
/// as [`crate::listeners::Listeners::to_inherit`] gives them) and waits until it is ready. True when it
/// serves (this process should retire); false when it failed, and this process keeps serving.
pub(crate) async fn hand_over(
    inherit: String,
    fds: Vec<RawFd>,
    admin: Admin,
    next_generation: u32,
) -> bool {
    let key = crate::tickets::shared();
    let started = tokio::task::spawn_blocking(move || {
        let successor = Successor {
            inherit: &inherit,
            fds: &fds,
            admin,
            key: key.as_ref(),
            generation: next_generation,
        };
        start_successor(&successor)
    })
    .await;
    match started {
        Ok(Ok(pid)) => {
            info!("upgrade: the new binary serves (pid {pid}); this process stops accepting and ends with its last connection");
            true
        }
        Ok(Err(why)) => {
            error!("upgrade failed: {why}; this process keeps serving");
            false
        }
        Err(e) => {
            error!("upgrade failed: {e}; this process keeps serving");
            false
        }
    }
}

/// The admin listener and the admin socket a new binary answers on from then on.
#[derive(Clone, Copy, Default)]
pub(crate) struct Admin {
    pub listener: Option<RawFd>,
    pub socket: Option<RawFd>,
}

/// What a new binary takes over.
pub(crate) struct Successor<'a> {
    /// The listening sockets' descriptors, and their names as [`crate::listeners::INHERITED`]
    /// gives them (none for a master: its workers bind their own).
    pub inherit: &'a str,
    pub fds: &'a [RawFd],
    pub admin: Admin,
    pub key: Option<&'a crate::tickets::Secrets>,
    /// The number its first generation takes (numbers go on across upgrades).
    pub generation: u32,
}

/// The environment variable with the number of a new binary's first generation.
const GENERATION: &str = "THRONG_PROXY_GENERATION";

/// The number of this process's first generation: 1, or the one after the last generation of
/// the binary it took over from.
pub fn first_generation() -> u32 {
    let number = std::env::var(GENERATION)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    std::env::remove_var(GENERATION);
    number
}

/// Starts the binary at this process's path as its successor, handing it what `successor`
/// names; its pid once it said it is ready.
pub(crate) fn start_successor(successor: &Successor<'_>) -> Result<u32, String> {
    let Successor {
        inherit,
        fds,
        admin,
        key,
        generation,
    } = *successor;
    let exe = EXE
        .get()
        .cloned()
        .flatten()
        .ok_or("the path of this binary is not known")?;
    let args: Vec<OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != SUCCESSOR_FLAG)
        .chain([OsString::from(SUCCESSOR_FLAG)])
        .collect();
    let mut ends = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the two descriptors it creates.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "cannot make a pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    let [read_end, write_end] = ends;
    // SAFETY: both ends were just created and are owned here.
    let ready = unsafe { std::fs::File::from_raw_fd(read_end) };
    let write = unsafe { std::os::fd::OwnedFd::from_raw_fd(write_end) };
    let inherited: Vec<RawFd> = fds
        .iter()
        .copied()
        .chain([write_end])
        .chain(admin.listener)
        .chain(admin.socket)
        .collect();
    let mut command = Command::new(&exe);
    command
        .args(&args)
        .env(crate::listeners::INHERITED, inherit)
        .env(READY_FD, write_end.to_string())
        .env(GENERATION, generation.to_string())
        .stdin(Stdio::piped());
    if let Some(socket) = NOTIFY_SOCKET.get().cloned().flatten() {
        // The new binary becomes systemd's main process (MAINPID=).
        command.env("NOTIFY_SOCKET", socket);
    }
    if let Some(fd) = admin.listener {
        command.env(crate::listeners::INHERITED_ADMIN, fd.to_string());
    }
    if let Some(fd) = admin.socket {
        command.env(crate::ctl::socket::INHERITED_SOCKET, fd.to_string());
    }
    // SAFETY: between fork and exec only fcntl runs, which is async-signal-safe; it lets the
    // child keep the listeners and the ready pipe across exec.
    unsafe {
        command.pre_exec(move || {
            for &fd in &inherited {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    drop(write);
    if let Some(mut stdin) = child.stdin.take() {
        let line = key.map(crate::tickets::to_line).unwrap_or_default();
        let _ = stdin.write_all(&line);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(ready).read_line(&mut line);
        let _ = tx.send(line);
    });
    let deadline = Instant::now() + READY_WITHIN;
    let pid = child.id();
    let outcome = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.starts_with("throng proxy listening") => break Ok(pid),
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                break Err(format!(
                    "the new binary {} ended before it was ready ({status}; its messages are above)",
                    exe.display()
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                break Err(format!(
                    "the new binary {} was not ready within {}s",
                    exe.display(),
                    READY_WITHIN.as_secs()
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    };
    match outcome {
        Ok(pid) => {
            // Reaped here if it ends while this process still drains.
            std::thread::spawn(move || {
                if let Ok(status) = child.wait() {
                    warn!("the new binary (pid {pid}) ended: {status}");
                }
            });
            Ok(pid)
        }
        Err(why) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(why)
        }
    }
}
