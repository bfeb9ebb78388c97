//! Running a scenario: pong, the proxy and the monitor started (each the `throng` binary itself,
//! or HAProxy), the phases run, then everything stopped in reverse and the folder written.

use crate::config::Scenario;
use crate::phases::{self, Running};
use crate::start::{self, say, Watch};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What a run leaves: the folder, and the figures of the summary.
pub struct Outcome {
    pub dir: PathBuf,
    pub summary: String,
    pub interrupted: bool,
    /// Phases whose attack failed (their results so far are in the folder).
    pub failed: Vec<String>,
    /// Phases with a threshold broken.
    pub broken: Vec<String>,
}

pub fn run(scenario: &Scenario, exe: &Path, dir: &Path) -> Result<Outcome, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let running: Running = Arc::new(Mutex::new(Vec::new()));
    watch_signals(Arc::clone(&interrupted), Arc::clone(&running));

    let watch = Watch::new(dir)?;
    let mut pong = start::pong(scenario, exe, dir)?;
    for pid in pong.pids() {
        watch.add("pong", pid);
    }
    let brokers = start::brokers(scenario, dir)?;
    for broker in &brokers {
        watch.add("broker", broker.pid());
    }
    let proxy = start::proxy(scenario, exe, dir)?;
    for process in &proxy.processes {
        watch.add("proxy", process.pid());
    }
    let mut monitor = start::monitor(scenario, exe, dir, &watch)?;
    let mut host_monitors = start::host_monitors(scenario, exe, dir);
    std::thread::sleep(scenario.monitor_interval * 2);

    let scheme = if proxy.tls { "https" } else { "http" };
    let url = format!("{scheme}://{}/", proxy.target);
    let ran = phases::run(scenario, exe, &url, dir, &watch, &interrupted, &running)?;

    // Stop in reverse, so that the monitor sees the others end.
    say("stopping");
    std::thread::sleep(scenario.monitor_interval);
    monitor.stop();
    // The hosts' monitors stop with their stdin; their samples come back as the parts' do.
    let mut monitors = Vec::new();
    start::OnHost::stop_all(host_monitors.iter_mut().map(|m| &mut m.process));
    for host in &host_monitors {
        match phases::collect(scenario, &host.file, dir) {
            Ok(()) => monitors.push(host.file.local.clone()),
            Err(why) => say(&format!("monitor on {}: {why}", host.file.host)),
        }
    }
    drop(proxy);
    drop(brokers);
    pong.stop();
    let written = crate::summary::write(scenario, &ran.files, &monitors, dir)?;
    Ok(Outcome {
        dir: dir.to_path_buf(),
        summary: written.summary,
        interrupted: interrupted.load(Ordering::Relaxed),
        failed: ran.failed,
        broken: written.broken,
    })
}

/// First SIGINT/SIGTERM: end the phases in progress (their results are kept) and stop.
fn watch_signals(interrupted: Arc<AtomicBool>, running: Running) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let signal = throng_net::admin::wait_for_signal().await;
            say(&format!(
                "{signal}: ending the phases in progress, then stopping everything"
            ));
            interrupted.store(true, Ordering::Relaxed);
            for &pid in running.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                // SAFETY: kill(2) on our own child; its first SIGINT ends it with results kept.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
        });
    });
}
