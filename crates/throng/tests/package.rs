//! The Debian package as an operator meets it: `dpkg -i`, `man throng-attack`, completion of
//! `throng pr<TAB>` in bash, the installed unit's start, reload and stop commands run as
//! systemd runs them (systemd is not PID 1 here: the test is systemd, `$MAINPID` filled in and
//! `NOTIFY_SOCKET` on a socket of its own), an edited /etc/throng/proxy.toml kept through a
//! reinstall and `dpkg -r`.
//!
//! The package is the one `./test.sh` builds (`packaging/deb.sh dev`) and names in
//! `$THRONG_TEST_DEB`; without it, or without root, the test is skipped (and counted so).

mod common;

use common::{http_exchange, skip, wait_until, PATIENCE};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const UNIT: &str = "/usr/lib/systemd/system/throng-proxy.service";
const CONFIG: &str = "/etc/throng/proxy.toml";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

#[track_caller]
fn succeeds(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "throng"]);
    }
}

#[test]
fn the_package_installs_a_service_that_starts_reloads_and_stops() {
    let test = "the_package_installs_a_service_that_starts_reloads_and_stops";
    let Some(deb) = std::env::var_os("THRONG_TEST_DEB").map(PathBuf::from) else {
        return skip(
            test,
            "no package: ./test.sh builds one (packaging/deb.sh dev)",
        );
    };
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip(test, "dpkg -i needs root");
    }
    let deb = deb.to_str().unwrap();
    succeeds("dpkg", &["-i", deb]);
    let _installed = Installed;

    // The user the proxy becomes, made by the postinst.
    let passwd = succeeds("getent", &["passwd", "throng"]);
    let uid: u32 = passwd.split(':').nth(2).unwrap().parse().unwrap();

    // A man page per subcommand, and completion of subcommand names.
    let page = succeeds("man", &["-P", "cat", "throng-attack"]);
    assert!(page.contains("Open-model load generator"), "{page}");
    assert!(succeeds("man", &["-w", "throng-proxy"]).contains("/usr/share/man/man1/"));
    let completed = succeeds(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/throng \
             && function=$(complete -p throng | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p') \
             && COMP_WORDS=(throng pr) COMP_CWORD=1 COMP_LINE='throng pr' COMP_POINT=9 \
             && $function throng pr throng && printf '%s\\n' \"${COMPREPLY[@]}\"",
        ],
    );
    assert_eq!(completed.trim(), "proxy", "{completed}");

    serve_as_systemd_would(uid);

    // An edited configuration survives a reinstall and a removal.
    let edited = std::fs::read_to_string(CONFIG).unwrap() + "# edited by the operator\n";
    std::fs::write(CONFIG, &edited).unwrap();
    succeeds("dpkg", &["-i", deb]);
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited);
    succeeds("dpkg", &["-r", "throng"]);
    assert!(!Path::new("/usr/bin/throng").exists());
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited);
}

/// The [Service] section of the installed unit: its keys, in order, with their values.
fn service_section() -> Vec<(String, String)> {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let mut in_service = false;
    let mut keys = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line.split_once('=').unwrap();
            keys.push((key.to_string(), value.to_string()));
        }
    }
    keys
}

/// An Exec line as systemd runs it: its `${VAR}` and `$VAR` words replaced, split on spaces
/// (the unit quotes nothing), and run to its end.
fn exec(line: &str, env: &HashMap<String, String>) -> Command {
    let line = line.trim_start_matches(['+', '-', '@', '!', ':']);
    let words: Vec<String> = line
        .split_whitespace()
        .map(|word| {
            env.iter().fold(word.to_string(), |word, (name, value)| {
                word.replace(&format!("${{{name}}}"), value)
                    .replace(&format!("${name}"), value)
            })
        })
        .collect();
    assert!(
        !words.iter().any(|w| w.contains('$')),
        "unexpanded: {words:?}"
    );
    let mut command = Command::new(&words[0]);
    command.args(&words[1..]).envs(env);
    command
}

fn serve_as_systemd_would(uid: u32) {
    let service = service_section();
    let all = |key: &str| -> Vec<String> {
        service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(all("Type"), ["notify"]);
    let mut env: HashMap<String, String> = all("Environment")
        .iter()
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_string(), value.to_string())
        })
        .collect();

    // RuntimeDirectory=, made afresh with its mode, as at each start.
    for folder in all("RuntimeDirectory") {
        let path = Path::new("/run").join(folder);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        let mode = all("RuntimeDirectoryMode")
            .first()
            .map_or(0o755, |m| u32::from_str_radix(m, 8).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    for line in all("ExecStartPre") {
        let out = exec(&line, &env).output().unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
    }

    // The notify socket: one the proxy can still write to once it is the throng user.
    let folder = tempfile_dir("notify");
    let socket_path = folder.join("notify");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    notify.set_read_timeout(Some(PATIENCE)).unwrap();
    let started = all("ExecStart");
    assert_eq!(started.len(), 1, "{started:?}");
    let mut proxy = exec(&started[0], &env)
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = common::capture(proxy.stderr.take().unwrap());
    let pid = proxy.id();
    let killer = common::proxy::KillOnDrop(pid as i32);
    env.insert("MAINPID".into(), pid.to_string());
    let said = |wanted: &str| {
        let deadline = Instant::now() + PATIENCE;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = notify.recv(&mut buffer) else {
                break;
            };
            let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
            if message.lines().any(|l| l == wanted) {
                return;
            }
        }
        panic!("no {wanted} from the proxy:\n{}", stderr.lock().unwrap());
    };
    said("READY=1");

    // It runs as the throng user, its socket takes commands from root, its frontends answer.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let real_uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        real_uid.split_whitespace().nth(1),
        Some(uid.to_string().as_str())
    );
    let servers = succeeds(
        "/usr/bin/throng",
        &["proxy", "ctl", "-c", CONFIG, "show", "servers"],
    );
    assert!(servers.contains("pong"), "{servers}");
    let (code, _, _) = http_exchange(
        "127.0.0.1:8080".parse().unwrap(),
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 503, "no pong is there: the proxy says so");

    // `systemctl reload`: each ExecReload line, $MAINPID filled in.
    for line in all("ExecReload") {
        let out = exec(&line, &env).output().unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
    }
    said("RELOADING=1");
    said("READY=1");

    // `systemctl stop`: KillSignal to the main process, which says so and exits cleanly.
    assert_eq!(all("KillSignal"), ["SIGTERM"]);
    // SAFETY: kill(2) on the proxy this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    said("STOPPING=1");
    let exited = wait_until(|| proxy.try_wait().unwrap());
    assert!(
        exited.is_some_and(|status| status.success()),
        "{exited:?}: {}",
        stderr.lock().unwrap()
    );
    drop(killer);
    let _ = std::fs::remove_dir_all(folder);
}

/// A fresh folder under the system's temporary folder that anyone may enter.
fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("throng-package-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}
