//! The attack phases: one after another, except a phase with `at`, which starts at that time
//! after the first phase, alongside whatever runs then (a small steady rate measured during a
//! hold, say). Each phase is a `throng attack` process (split over `procs` processes), or, on
//! `hosts`, one part per host started through `[hosts]`' launcher at one `--start-at`, each
//! part's file brought back by its `collect` command.

use crate::config::{Hosts, MqttPhase, Phase, Proxy, Scenario};
use crate::start::{say, Watch};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The attacks running now, for the signal watcher: each gets SIGINT on Ctrl-C.
pub type Running = Arc<Mutex<Vec<i32>>>;

/// What the phases left: each phase's results files (none for a phase that did not start; a
/// file per host for a phase on hosts) and the phases whose attack failed.
pub struct Ran {
    pub files: Vec<Vec<PathBuf>>,
    pub failed: Vec<String>,
}

struct Attack {
    phase: usize,
    child: Child,
    started: Instant,
    /// A part on a host: the host, where its file is there, and where it goes here.
    part: Option<Part>,
}

/// A file on a host, and where it comes back to here.
pub(crate) struct Part {
    pub host: String,
    pub remote: String,
    pub local: PathBuf,
}

/// Runs every phase against `url`; stops starting new ones once `interrupted`.
pub fn run(
    scenario: &Scenario,
    exe: &Path,
    url: &str,
    dir: &Path,
    watch: &Watch,
    interrupted: &AtomicBool,
    running: &Running,
) -> Result<Ran, String> {
    let phases = &scenario.phases;
    let mut ran = Ran {
        files: vec![Vec::new(); phases.len()],
        failed: Vec::new(),
    };
    let mut started = vec![false; phases.len()];
    let mut attacks: Vec<Attack> = Vec::new();
    let first_start = Instant::now();
    let mut next_word = first_start + Duration::from_secs(5);
    loop {
        let stopping = interrupted.load(Ordering::Relaxed);
        let elapsed = first_start.elapsed();
        let sequential_busy = attacks.iter().any(|a| phases[a.phase].at.is_none());
        let next_sequential = (0..phases.len()).find(|&i| !started[i] && phases[i].at.is_none());
        let due: Vec<usize> = (0..phases.len())
            .filter(|&i| !started[i] && phases[i].at.is_some_and(|at| at <= elapsed))
            .chain(next_sequential.filter(|_| !sequential_busy))
            .collect();
        for index in due.into_iter().filter(|_| !stopping) {
            started[index] = true;
            let phase = &phases[index];
            let stem = format!("{:02}-{}", index + 1, slug(&phase.name));
            let mut begun = Vec::new();
            if phase.hosts.is_empty() {
                let file = dir.join(format!("{stem}.bin"));
                let child = start(scenario, exe, &Launch::Here, phase, url, &file, dir)?;
                ran.files[index].push(file);
                begun.push((child, None));
            } else {
                let hosts = scenario
                    .hosts
                    .as_ref()
                    .ok_or("phase on hosts without [hosts]")?;
                let (parts, not_started) =
                    start_parts(scenario, exe, hosts, phase, url, &stem, dir);
                begun.extend(parts);
                ran.failed.extend(not_started);
            }
            for (child, part) in begun {
                watch.add("attack", child.id() as i32);
                lock(running).push(child.id() as i32);
                attacks.push(Attack {
                    phase: index,
                    child,
                    started: Instant::now(),
                    part,
                });
            }
        }
        let mut still = Vec::with_capacity(attacks.len());
        for mut attack in attacks {
            match attack.child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => {
                    let pid = attack.child.id() as i32;
                    lock(running).retain(|&p| p != pid);
                    let name = match &attack.part {
                        Some(part) => format!("{} on {}", phases[attack.phase].name, part.host),
                        None => phases[attack.phase].name.clone(),
                    };
                    if status.success() {
                        say(&format!(
                            "phase {name}: done in {} s",
                            attack.started.elapsed().as_secs()
                        ));
                    } else {
                        say(&format!(
                            "phase {name}: the attack ended with {status} (see attack.log)"
                        ));
                        ran.failed.push(name.clone());
                    }
                    // A part's file, whole or up to its last record, is worth bringing back.
                    if let Some(part) = &attack.part {
                        match collect(scenario, part, dir) {
                            Ok(()) => ran.files[attack.phase].push(part.local.clone()),
                            Err(why) => {
                                say(&format!("phase {name}: {why}"));
                                if status.success() {
                                    ran.failed.push(name.clone());
                                }
                            }
                        }
                    }
                }
                None => still.push(attack),
            }
        }
        attacks = still;
        let all_started = started.iter().all(|&s| s);
        if attacks.is_empty() && (all_started || stopping) {
            return Ok(ran);
        }
        // A word every 5 s: which phases run, how far in (an attack waits for its last
        // responses after its duration, so this may go past it), and the monitor's figures.
        if Instant::now() >= next_word {
            next_word += Duration::from_secs(5);
            // A phase on hosts is named once, with how many of its parts still run.
            let mut names: Vec<String> = Vec::new();
            for (index, phase) in phases.iter().enumerate() {
                let running = attacks.iter().filter(|a| a.phase == index).count();
                match (running, phase.hosts.len()) {
                    (0, _) => {}
                    (_, 0) => names.push(phase.name.clone()),
                    (running, hosts) => {
                        names.push(format!("{} ({running} of {hosts} hosts)", phase.name))
                    }
                }
            }
            say(&format!(
                "{} s: {}{}",
                first_start.elapsed().as_secs(),
                if names.is_empty() {
                    "waiting for the next phase".to_string()
                } else {
                    format!("phase {}", names.join(" and "))
                },
                live_figures(&dir.join("monitor.jsonl"))
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lock(running: &Running) -> std::sync::MutexGuard<'_, Vec<i32>> {
    running.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where an attack runs: here, or on a host as part I of N.
enum Launch<'a> {
    Here,
    Part {
        hosts: &'a Hosts,
        host: &'a str,
        index: usize,
        of: usize,
        start_at: u64,
    },
}

/// Starts a part of `phase` on each of its hosts, at one start a little ahead of now: the
/// parts begun, and the names of those whose launcher could not even be started (said; the
/// launcher's own errors, once started, go to attack.log and end that part only).
fn start_parts(
    scenario: &Scenario,
    exe: &Path,
    hosts: &Hosts,
    phase: &Phase,
    url: &str,
    stem: &str,
    dir: &Path,
) -> (Vec<(Child, Option<Part>)>, Vec<String>) {
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + hosts.start_lead.as_secs().max(1);
    let (mut begun, mut not_started) = (Vec::new(), Vec::new());
    for (index, host) in phase.hosts.iter().enumerate() {
        let Part { remote, local, .. } = host_file(hosts, host, &format!("{stem}.{host}.bin"), dir);
        let launch = Launch::Part {
            hosts,
            host,
            index,
            of: phase.hosts.len(),
            start_at,
        };
        match start(scenario, exe, &launch, phase, url, Path::new(&remote), dir) {
            Ok(child) => begun.push((
                child,
                Some(Part {
                    host: host.clone(),
                    remote,
                    local,
                }),
            )),
            Err(why) => {
                say(&format!("phase {} on {host}: {why}", phase.name));
                not_started.push(format!("{} on {host}", phase.name));
            }
        }
    }
    (begun, not_started)
}

/// `throng` on `host`, started through `[hosts]`' launcher (its arguments to add).
pub(crate) fn on_host(hosts: &Hosts, host: &str, exe: &Path) -> Command {
    let mut words = hosts.launcher.iter().map(|w| w.replace("{host}", host));
    let mut command = Command::new(words.next().unwrap_or_default());
    command.args(words);
    match &hosts.throng {
        Some(throng) => command.arg(throng),
        None => command.arg(exe),
    };
    command
}

/// The file `name` a process on `host` writes: in `[hosts]`' results folder there (this
/// scenario's folder when none is given), and where it comes back to here.
pub(crate) fn host_file(hosts: &Hosts, host: &str, name: &str, dir: &Path) -> Part {
    let local = dir.join(name);
    let remote = match &hosts.results {
        Some(folder) => format!("{}/{name}", folder.trim_end_matches('/')),
        None => local.display().to_string(),
    };
    Part {
        host: host.to_string(),
        remote,
        local,
    }
}

/// Brings a part's file back with `[hosts]`' collect command (none: it is here already).
pub(crate) fn collect(scenario: &Scenario, part: &Part, dir: &Path) -> Result<(), String> {
    let Some(template) = scenario.hosts.as_ref().and_then(|h| h.collect.as_ref()) else {
        return match part.local.exists() {
            true => Ok(()),
            false => Err(format!("no results at {}", part.local.display())),
        };
    };
    let words: Vec<String> = template
        .iter()
        .map(|w| {
            w.replace("{host}", &part.host)
                .replace("{remote}", &part.remote)
                .replace("{local}", &part.local.display().to_string())
        })
        .collect();
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("attack.log"))
        .map_err(|e| e.to_string())?;
    let (program, arguments) = words.split_first().ok_or("collect: an empty command")?;
    let status = Command::new(program)
        .args(arguments)
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .map_err(|e| format!("collect: cannot run `{}`: {e}", words.join(" ")))?;
    if status.success() && part.local.exists() {
        Ok(())
    } else {
        Err(format!(
            "collect: `{}` ended with {status} (see attack.log)",
            words.join(" ")
        ))
    }
}

/// Starts the attack of `phase` where `launch` says: `throng attack` with its targets on
/// stdin, or `throng mqtt` for an MQTT phase.
fn start(
    scenario: &Scenario,
    exe: &Path,
    launch: &Launch<'_>,
    phase: &Phase,
    url: &str,
    file: &Path,
    dir: &Path,
) -> Result<Child, String> {
    let place = match launch {
        Launch::Here if phase.procs > 1 => format!(", {} processes", phase.procs),
        Launch::Here => String::new(),
        Launch::Part {
            host, index, of, ..
        } => format!(", part {index}/{of} on {host}"),
    };
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("attack.log"))
        .map_err(|e| e.to_string())?;
    let mut command = match launch {
        Launch::Here => Command::new(exe),
        Launch::Part { hosts, host, .. } => on_host(hosts, host, exe),
    };
    let stdin = match &phase.mqtt {
        Some(mqtt) => {
            let (broker, tls) = mqtt_target(scenario, mqtt)?;
            say(&format!(
                "phase {}: mqtt {} with {} clients at {}/s{}, QoS {}{} ({}){place}",
                phase.name,
                mqtt.role.name(),
                mqtt.clients,
                mqtt.connect_rate,
                if mqtt.role == throng_results::mqtt::Role::Pub {
                    format!(
                        ", {} messages/s to {} subscribers",
                        phase.rate, mqtt.subscribers
                    )
                } else {
                    String::new()
                },
                mqtt.qos,
                if tls { ", TLS" } else { "" },
                if mqtt.direct {
                    format!("straight to the broker {broker}")
                } else {
                    format!("through the proxy {broker}")
                },
            ));
            mqtt_args(&mut command, phase, mqtt, broker, tls);
            None
        }
        None => {
            say(&format!(
                "phase {}: {} requests/s for {} ({}){place}",
                phase.name,
                phase.rate,
                throng_net::duration::format(phase.duration),
                described(phase).join(" | "),
            ));
            attack_args(&mut command, phase);
            Some(targets(phase, url))
        }
    };
    command
        .arg("--name")
        .arg(&phase.name)
        .arg("--output")
        .arg(file)
        .arg("--procs")
        .arg(phase.procs.to_string());
    if let Some(threads) = phase.threads {
        command.arg("--threads").arg(threads.to_string());
    }
    if let Some(source) = &phase.source {
        command.arg("--source").arg(source);
    }
    if let Launch::Part {
        host,
        index,
        of,
        start_at,
        ..
    } = launch
    {
        command
            .arg("--part")
            .arg(format!("{index}/{of}"))
            .arg("--start-at")
            .arg(start_at.to_string())
            // Namespaces share their machine's host name: the part says which host it is.
            .arg("--host-name")
            .arg(host);
    }
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the attack: {e}"))?;
    if let (Some(mut pipe), Some(targets)) = (child.stdin.take(), stdin) {
        let _ = pipe.write_all(targets.as_bytes());
    }
    Ok(child)
}

/// The phase's targets for `throng attack`, one per header set.
fn targets(phase: &Phase, url: &str) -> String {
    let targets: Vec<String> = phase
        .targets
        .iter()
        .map(|headers| {
            let mut target = format!("GET {url}\n");
            for header in headers {
                target.push_str(header);
                target.push('\n');
            }
            target
        })
        .collect();
    targets.join("\n")
}

fn described(phase: &Phase) -> Vec<String> {
    phase
        .targets
        .iter()
        .map(|h| {
            if h.is_empty() {
                "no headers".to_string()
            } else {
                h.join(", ")
            }
        })
        .collect()
}

fn attack_args(command: &mut Command, phase: &Phase) {
    command
        .args(["attack", "-insecure", "-rate"])
        .arg(phase.rate.to_string())
        .arg("-duration")
        .arg(format!("{}ms", phase.duration.as_millis()))
        .arg("-timeout")
        .arg(format!("{}ms", phase.timeout.as_millis()))
        .arg(format!("-http2={}", phase.http2));
}

/// Where an MQTT phase connects: the proxy's MQTT frontend (TLS), or the first broker.
fn mqtt_target(scenario: &Scenario, mqtt: &MqttPhase) -> Result<(SocketAddr, bool), String> {
    let side = scenario
        .mqtt
        .as_ref()
        .ok_or("an MQTT phase without [mqtt]")?;
    if mqtt.direct {
        let first = side.brokers.addresses().first().copied();
        return Ok((first.ok_or("[mqtt]: no broker")?, false));
    }
    match &scenario.proxy {
        Proxy::External { .. } => Err(
            "an MQTT phase through an external proxy: give `direct = true`, or let the scenario start the proxy"
                .into(),
        ),
        _ => Ok((side.listen, true)),
    }
}

fn mqtt_args(
    command: &mut Command,
    phase: &Phase,
    mqtt: &MqttPhase,
    broker: SocketAddr,
    tls: bool,
) {
    command
        .args(["mqtt", mqtt.role.name(), "--quiet", "-h"])
        .arg(broker.ip().to_string())
        .arg("-p")
        .arg(broker.port().to_string())
        .arg("-c")
        .arg(mqtt.clients.to_string())
        .arg("-R")
        .arg(mqtt.connect_rate.to_string())
        .arg("-k")
        .arg(mqtt.keep_alive.to_string())
        .arg("-q")
        .arg(mqtt.qos.to_string())
        .arg("-t")
        .arg(&mqtt.topic)
        .arg("-s")
        .arg(mqtt.payload.to_string())
        .arg("--duration")
        .arg(format!("{}ms", phase.duration.as_millis()))
        // Client ids of phases that run alongside must not take each other over.
        .arg("--prefix")
        .arg(format!("throng-{}", slug(&phase.name)));
    if mqtt.role == throng_results::mqtt::Role::Pub {
        command
            .arg("--rate")
            .arg(phase.rate.to_string())
            .arg("--subscribers")
            .arg(mqtt.subscribers.to_string());
    }
    if tls {
        command.args(["-S", "--insecure"]);
    }
}

pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The latest monitor sample, in a few words: established sockets and each component's memory.
fn live_figures(monitor: &Path) -> String {
    // Only the file's end: it grows by a line a second for as long as the scenario runs.
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(monitor) else {
        return String::new();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(16 * 1024)));
    let mut text = String::new();
    if file.take(16 * 1024).read_to_string(&mut text).is_err() {
        return String::new();
    }
    let Some(sample) = text
        .lines()
        .next_back()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        return String::new();
    };
    let mut words = format!(", {} established sockets", sample["established"]);
    let mut by_name: Vec<(String, u64, f64)> = Vec::new();
    for p in sample["processes"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("?").to_string();
        let (rss, cpu) = (
            p["rss"].as_u64().unwrap_or(0),
            p["cpu_percent"].as_f64().unwrap_or(0.0),
        );
        match by_name.iter_mut().find(|(n, ..)| *n == name) {
            Some(entry) => {
                entry.1 += rss;
                entry.2 += cpu;
            }
            None => by_name.push((name, rss, cpu)),
        }
    }
    for (name, rss, cpu) in by_name {
        words += &format!(", {name} {} MiB {cpu:.0}% cpu", rss >> 20);
    }
    words
}
