//! Several processes of one command, the way HAProxy's `nbproc` was. Many machines cap the files
//! a process may open (20,000 here), so going past that takes processes. A master starts N copies
//! of its own binary, waits for each to say it is ready (its first line on stdout), restarts one
//! that dies, and stops them all together.
//!
//! Children get SIGTERM when the thread that started them ends (`PR_SET_PDEATHSIG`), so a master
//! killed outright leaves none behind: start, restart and stop them from one long-lived thread.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How long a child has to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A child that dies sooner than this after its start is restarted no sooner than this after it:
/// a child that cannot start does not make the master spin.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// What to start, and how to tell it started.
pub struct Spec {
    /// For messages: "proxy worker", "pong process".
    pub name: &'static str,
    /// The arguments of child `index` (the binary is this one).
    pub args: Box<dyn Fn(usize) -> Vec<OsString> + Send>,
    /// Text the child's first stdout line contains once it is ready; `None`: the caller takes
    /// each child's stdout ([`Group::take_stdout`]) and nothing is waited for.
    pub ready: Option<&'static str>,
    /// Copy each child's stdout after its ready line to ours, a whole line at a time (access log
    /// lines to stdout, say); otherwise it is read and dropped, so that no child blocks on it.
    pub relay_stdout: bool,
    /// What is written to each child's stdin as it starts (then closed), asked anew for each
    /// start (a child started again gets what holds then); `None`: stdin is /dev/null.
    pub stdin: Option<std::sync::Arc<dyn Fn() -> Vec<u8> + Send + Sync>>,
    /// Put each child in a process group of its own, so that a Ctrl-C at the terminal reaches
    /// only the master, which then decides what to tell the children.
    pub own_process_group: bool,
    /// Variables set in each child's environment (on top of this process's).
    pub env: Vec<(&'static str, String)>,
}

/// One child.
pub struct Member {
    pub index: usize,
    pub pid: u32,
    /// Its first stdout line (empty when `Spec::ready` is `None`).
    pub ready_line: String,
    pub restarts: u32,
    pub started: Instant,
    child: Child,
    stdout: Option<ChildStdout>,
    exited: Option<ExitStatus>,
}

/// N children of one command.
pub struct Group {
    spec: Spec,
    exe: PathBuf,
    members: Vec<Member>,
}

impl Group {
    /// Starts `count` children and waits until each is ready. A child that is not ready in time
    /// stops the whole group, with the reason.
    pub fn start(spec: Spec, count: usize) -> Result<Group, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let mut group = Group {
            spec,
            exe,
            members: Vec::with_capacity(count),
        };
        // Start them all first, then wait: their start-ups overlap.
        let mut waits = Vec::with_capacity(count);
        for index in 0..count {
            let (member, wait) = group.spawn(index, 0)?;
            group.members.push(member);
            waits.push(wait);
        }
        for (index, wait) in waits.into_iter().enumerate() {
            if let Err(message) = group.await_ready(index, wait) {
                group.stop(Duration::ZERO);
                return Err(message);
            }
        }
        Ok(group)
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The stdout of child `index`, once (for a spec without a ready line).
    pub fn take_stdout(&mut self, index: usize) -> Option<ChildStdout> {
        self.members.get_mut(index)?.stdout.take()
    }

    /// Notes the children that exited since the last call: (index, pid, status).
    pub fn reap(&mut self) -> Vec<(usize, u32, ExitStatus)> {
        let mut exited = Vec::new();
        for member in &mut self.members {
            if member.exited.is_some() {
                continue;
            }
            if let Ok(Some(status)) = member.child.try_wait() {
                member.exited = Some(status);
                exited.push((member.index, member.pid, status));
            }
        }
        exited
    }

    /// Whether every child has exited (as far as [`Group::reap`] saw).
    pub fn all_exited(&self) -> bool {
        self.members.iter().all(|m| m.exited.is_some())
    }

    /// Starts child `index` again after it exited, waiting for it to be ready; one that is not
    /// ready is ended, and the caller may try again.
    pub fn restart(&mut self, index: usize) -> Result<(), String> {
        let member = &self.members[index];
        let lived = member.started.elapsed();
        if lived < RESTART_PAUSE {
            std::thread::sleep(RESTART_PAUSE - lived);
        }
        let restarts = member.restarts + 1;
        let (member, wait) = self.spawn(index, restarts)?;
        self.members[index] = member;
        let ready = self.await_ready(index, wait);
        if ready.is_err() {
            // Not ready: ended here, so that it is started again once, not also reaped.
            let member = &mut self.members[index];
            let _ = member.child.kill();
            member.exited = member.child.wait().ok();
        }
        ready
    }

    /// Sends `signal` to every child still running.
    pub fn signal(&self, signal: i32) {
        for member in self.members.iter().filter(|m| m.exited.is_none()) {
            // SAFETY: kill(2) on our own child, which we have not reaped.
            unsafe { libc::kill(member.pid as i32, signal) };
        }
    }

    /// SIGTERM to every child, up to `grace` (and 5 s more) for them to end, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        self.signal(libc::SIGTERM);
        self.wait(grace + Duration::from_secs(5));
        for member in self.members.iter_mut().filter(|m| m.exited.is_none()) {
            tracing::warn!(
                "{} {} (pid {}) did not stop in time: killing it",
                self.spec.name,
                member.index,
                member.pid
            );
            let _ = member.child.kill();
            member.exited = member.child.wait().ok();
        }
    }

    /// Waits up to `limit` for every child to exit.
    pub fn wait(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.all_exited() && Instant::now() < deadline {
            self.reap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(&self, index: usize, restarts: u32) -> Result<(Member, Ready), String> {
        let mut command = Command::new(&self.exe);
        command
            .args((self.spec.args)(index))
            .stdin(match self.spec.stdin {
                Some(_) => Stdio::piped(),
                None => Stdio::null(),
            })
            .stdout(Stdio::piped())
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)));
        if self.spec.own_process_group {
            command.process_group(0);
        }
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {} {index}: {e}", self.spec.name))?;
        let pid = child.id();
        if let (Some(input), Some(mut stdin)) = (&self.spec.stdin, child.stdin.take()) {
            let bytes = input();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let mut stdout = child.stdout.take();
        let ready = match (self.spec.ready, stdout.take()) {
            (Some(_), Some(out)) => Ready::Line(read_ready_line(out, self.spec.relay_stdout)),
            (_, out) => {
                stdout = out;
                Ready::Nothing
            }
        };
        let member = Member {
            index,
            pid,
            ready_line: String::new(),
            restarts,
            started: Instant::now(),
            child,
            stdout,
            exited: None,
        };
        Ok((member, ready))
    }

    fn await_ready(&mut self, index: usize, ready: Ready) -> Result<(), String> {
        let (Ready::Line(lines), Some(expected)) = (ready, self.spec.ready) else {
            return Ok(());
        };
        let member = &mut self.members[index];
        let line = lines.recv_timeout(READY_TIMEOUT).unwrap_or_default();
        if line.contains(expected) {
            member.ready_line = line.trim_end().to_string();
            return Ok(());
        }
        let status = member.child.try_wait().ok().flatten();
        Err(match status {
            Some(status) => format!(
                "{} {index} (pid {}) ended before it was ready ({status}); its messages are above",
                self.spec.name, member.pid
            ),
            None => format!(
                "{} {index} (pid {}) was not ready in {} s",
                self.spec.name,
                member.pid,
                READY_TIMEOUT.as_secs()
            ),
        })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.all_exited() {
            self.stop(Duration::ZERO);
        }
    }
}

/// Keeps `group` running until SIGTERM or SIGINT: a child that ends is started again
/// (`on_restart` is told, after), then every child gets SIGTERM and up to `grace` (and 5 s more)
/// to stop. A second signal is passed on: children stop at once on their second. Call it from
/// the thread that started the group.
pub fn supervise(group: &mut Group, grace: Duration, on_restart: impl FnMut(&Group)) {
    supervise_until(group, grace, &AtomicBool::new(false), on_restart)
}

/// As [`supervise`], and once `retiring` is set (the group handed over to another master), no
/// child is started again and the call returns when the last one has ended by itself.
pub fn supervise_until(
    group: &mut Group,
    grace: Duration,
    retiring: &AtomicBool,
    mut on_restart: impl FnMut(&Group),
) {
    let signals = Arc::new(AtomicU32::new(0));
    let watch = Arc::clone(&signals);
    let watcher = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|runtime| {
            std::thread::spawn(move || {
                runtime.block_on(async move {
                    loop {
                        let signal = crate::admin::wait_for_signal().await;
                        if watch.fetch_add(1, Relaxed) > 0 {
                            tracing::warn!("{signal} again: stopping now");
                        }
                    }
                })
            })
        });
    if let Err(e) = watcher {
        tracing::warn!("cannot watch for signals ({e}); stop with SIGKILL");
    }
    // Children that could not be started again, tried again each second.
    let mut to_start: Vec<usize> = Vec::new();
    while signals.load(Relaxed) == 0 {
        if retiring.load(Relaxed) {
            for (index, pid, status) in group.reap() {
                tracing::info!("{} {index} (pid {pid}) ended ({status})", group.spec.name);
            }
            if group.all_exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        for (index, pid, status) in group.reap() {
            tracing::warn!(
                "{} {index} (pid {pid}) ended ({status}): starting it again",
                group.spec.name
            );
            to_start.push(index);
        }
        let mut failed = Vec::new();
        for index in to_start.drain(..) {
            match group.restart(index) {
                Ok(()) => tracing::info!(
                    "{} {index} is running again (pid {})",
                    group.spec.name,
                    group.members[index].pid
                ),
                Err(message) => {
                    tracing::error!("{message}; trying again");
                    failed.push(index);
                }
            }
            on_restart(group);
        }
        to_start = failed;
        let pause = if to_start.is_empty() { 100 } else { 1000 };
        std::thread::sleep(Duration::from_millis(pause));
    }
    tracing::info!(
        "stopping {} processes ({}); what is in progress has {} to finish (signal again to stop now)",
        group.members.len(),
        group.spec.name,
        crate::duration::format(grace)
    );
    group.signal(libc::SIGTERM);
    let deadline = Instant::now() + grace + Duration::from_secs(5);
    let mut forwarded = 1;
    while !group.all_exited() && Instant::now() < deadline {
        let now = signals.load(Relaxed);
        if now > forwarded {
            forwarded = now;
            group.signal(libc::SIGTERM);
        }
        group.reap();
        std::thread::sleep(Duration::from_millis(20));
    }
    group.stop(Duration::ZERO);
    tracing::info!("stopped");
}

/// This process's arguments (without the binary) less each `--FLAG VALUE` of `flags`, in any
/// spelling (`--flag V`, `-flag V`, `--flag=V`, `-flag=V`): what a master gives its children.
pub fn own_args_without(flags: &[&str]) -> Vec<OsString> {
    own_args_without_switches(flags, &[])
}

/// As `own_args_without`, also leaving out `switches`: flags that take no value.
pub fn own_args_without_switches(flags: &[&str], switches: &[&str]) -> Vec<OsString> {
    let spelled = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .flat_map(|f| [format!("--{f}"), format!("-{f}")])
            .collect()
    };
    let (valued, switches) = (spelled(flags), spelled(switches));
    let mut out = Vec::new();
    let mut skip_next = false;
    for arg in std::env::args_os().skip(1) {
        let text = arg.to_string_lossy();
        let name = text.split_once('=').map_or(&*text, |(name, _)| name);
        if skip_next {
            skip_next = false;
        } else if valued.iter().any(|s| s == name) {
            // `--flag VALUE` takes the next argument too; `--flag=VALUE` is one.
            skip_next = !text.contains('=');
        } else if !switches.iter().any(|s| s == name) {
            out.push(arg);
        }
    }
    out
}

enum Ready {
    Line(mpsc::Receiver<String>),
    Nothing,
}

/// Reads the first line of `stdout` for the caller, then keeps reading (and relays whole lines,
/// when asked) until the child closes it.
fn read_ready_line(stdout: ChildStdout, relay: bool) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        if !relay {
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            return;
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let _ = std::io::stdout().lock().write_all(&line);
                }
            }
        }
    });
    rx
}
