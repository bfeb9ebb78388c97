//! The control plane only its operator can use: runtime commands on a Unix socket whose
//! permissions say who may connect, over TCP only with a token and only from tools (no
//! browser's cross-site request, no rebound host name), pages behind `stats_auth`, and the
//! admin listener's own small limits. Real processes on loopback.

mod common;

use common::proxy::{upgrade, Dir, KillOnDrop, Proxy};
use common::{connect, http_exchange, throng, Pong};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "0123456789abcdef-admin";

/// A configuration with one HTTP frontend in front of `app`, an admin listener and socket, and
/// `global` added.
fn config(dir: &Dir, app: SocketAddr, global: &str) -> String {
    format!(
        "[global]\nthreads = 1\nadmin = \"127.0.0.1:0\"\nadmin_socket = \"{}\"\n{global}\n\n\
         [frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\n\
         [backends.app]\nservers = [{{ name = \"a\", address = \"{app}\" }}]\n",
        dir.path("run/proxy.sock").display()
    )
}

/// `POST /ctl` over TCP with `fields` added to a request for `host`: (status, body).
fn post(admin: SocketAddr, host: &str, fields: &str, command: &str) -> (u16, String) {
    let request = format!(
        "POST /ctl HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{fields}Content-Length: {}\r\n\r\n{command}",
        command.len()
    );
    let (status, _, body) = http_exchange(admin, request.as_bytes());
    (status, body)
}

fn ctl(file: &Path, words: &str, user: Option<&str>) -> (bool, String) {
    common::proxy::ctl_as(file, words, user)
}

/// The state `show servers` gives for app/a, through the socket.
fn state_of_a(file: &Path) -> String {
    let (ok, text) = ctl(file, "show servers", None);
    assert!(ok, "{text}");
    let line = text.lines().find(|l| l.starts_with("app/a ")).unwrap();
    line.split(' ').nth(3).unwrap().to_string()
}

/// Without a token, TCP takes no command at all (the embedded default's case, which has an
/// admin listener and no token); the socket does, for its owner only.
#[test]
fn without_a_token_commands_come_only_through_the_socket() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("admin-socket");
    let proxy = Proxy::start(&dir, &config(&dir, pong.addr(), ""));
    let admin = proxy.admin.unwrap();
    let file = dir.path("proxy.toml");

    let (status, body) = post(
        admin,
        &admin.to_string(),
        "",
        "set server app/a state maint",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("admin socket"), "{body}");
    let logged = proxy.wait_for_message("refused (403)");
    assert!(
        logged.contains("127.0.0.1:"),
        "the refusal names the peer: {logged}"
    );
    assert_eq!(
        state_of_a(&file),
        "ready",
        "a refused command changed something"
    );

    // The socket: made 0600 in a folder made 0700, and `throng proxy ctl` finds it in the file.
    let socket = dir.path("run/proxy.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let folder = std::fs::metadata(dir.path("run")).unwrap();
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);
    let (ok, text) = ctl(&file, "set server app/a state drain", None);
    assert!(ok, "{text}");
    assert_eq!(state_of_a(&file), "drain");
    proxy.wait_for_message("on the admin socket asked `set server app/a state drain`: done");

    // Another user reaches neither the folder nor the socket (the folder opened to all, so
    // that the socket's own mode is what refuses).
    std::fs::set_permissions(dir.path("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let words = format!("--socket {} set server app/a state maint", socket.display());
    let out = std::process::Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            env!("CARGO_BIN_EXE_throng"),
            "proxy",
            "ctl",
        ])
        .args(words.split(' '))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("Permission denied"), "{said}");
    assert_eq!(state_of_a(&file), "drain");
    // Through the same file, `auto` aside, nobody's ctl finds the same path and is refused too.
    let (ok, text) = ctl(&file, "set server app/a state maint", Some("nobody"));
    assert!(!ok && text.contains("Permission denied"), "{text}");
    assert_eq!(state_of_a(&file), "drain");
    drop(proxy);
}

/// With a token, TCP takes commands from tools only: a request a web page made (Origin,
/// Sec-Fetch-Site) or one for another host name (DNS rebinding) is refused with the right
/// token too, and changes nothing.
#[test]
fn with_a_token_tcp_takes_commands_from_tools_only() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("admin-token");
    let global = format!("admin_token = \"{TOKEN}\"");
    let proxy = Proxy::start(&dir, &config(&dir, pong.addr(), &global));
    let admin = proxy.admin.unwrap();
    let file = dir.path("proxy.toml");
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let host = admin.to_string();
    let command = "set server app/a state maint";
    for (host, fields) in [
        (
            host.as_str(),
            format!("{auth}Origin: http://evil.example\r\n"),
        ),
        (host.as_str(), format!("{auth}Origin: null\r\n")),
        (
            host.as_str(),
            format!("{auth}Sec-Fetch-Site: cross-site\r\n"),
        ),
        ("evil.example", auth.clone()),
        ("evil.example:9100", auth.clone()),
    ] {
        let (status, body) = post(admin, host, &fields, command);
        assert_eq!(status, 403, "{host} {fields:?}: {body}");
    }
    let (status, _) = post(
        admin,
        &host,
        "Authorization: Bearer wrong-token-1234\r\n",
        command,
    );
    assert_eq!(status, 401);
    assert_eq!(
        state_of_a(&file),
        "ready",
        "a refused command changed something"
    );

    // From a tool, with the token, naming the listener or localhost.
    for host in [host.clone(), format!("localhost:{}", admin.port())] {
        let (status, body) = post(admin, &host, &auth, "set server app/a weight 3");
        assert_eq!(status, 200, "{host}: {body}");
    }
    // `throng proxy ctl --admin` uses the token of the file.
    let out = throng()
        .args(["proxy", "ctl", "-c"])
        .arg(&file)
        .args(["--admin", &host, "set", "server", "app/a", "state", "drain"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state_of_a(&file), "drain");
}

/// `stats_auth` guards the pages over TCP (401 and a Basic challenge without it); the socket
/// needs none.
#[test]
fn stats_auth_guards_the_pages() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("admin-stats-auth");
    let global = "stats_auth = \"ops:a-long-secret\"";
    let proxy = Proxy::start(&dir, &config(&dir, pong.addr(), global));
    let admin = proxy.admin.unwrap();
    let get = |fields: &str| {
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\n{fields}Connection: close\r\n\r\n");
        http_exchange(admin, request.as_bytes())
    };
    let (status, head, _) = get("");
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"throng\""),
        "{head}"
    );
    let (status, _, _) = get("Authorization: Basic b3BzOndyb25n\r\n");
    assert_eq!(status, 401);
    // ops:a-long-secret
    let (status, _, body) = get("Authorization: Basic b3BzOmEtbG9uZy1zZWNyZXQ=\r\n");
    assert_eq!(status, 200);
    assert!(body.contains("throng_proxy_connections"));
    let socket = dir.path("run/proxy.sock");
    let (status, body) =
        throng_net::admin::request_socket(&socket, "GET", "/metrics", b"", Duration::from_secs(10))
            .unwrap();
    assert_eq!(status, 200, "{body}");
}

/// The admin listener takes `admin_maxconn` connections at once: the next is answered 503 and
/// closed (a flood never holds more), and once they go, requests are answered again.
#[test]
fn the_admin_listener_has_its_own_small_limit() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("admin-maxconn");
    let global = "admin_maxconn = 2\nadmin_timeout = \"30s\"";
    let proxy = Proxy::start(&dir, &config(&dir, pong.addr(), global));
    let admin = proxy.admin.unwrap();
    let held: Vec<_> = (0..2).map(|_| connect(admin)).collect();
    // Both are accepted and waiting for a request once a third is refused.
    let refused = common::wait_until(|| {
        let (status, _, body) = http_exchange(admin, b"GET /stats HTTP/1.1\r\nHost: a\r\n\r\n");
        (status == 503).then_some(body)
    })
    .expect("a third connection was not refused");
    assert!(refused.contains("too many admin connections"));
    proxy.wait_for_message("2 admin connections open (its maxconn)");
    drop(held);
    common::wait_until(|| {
        let (status, _, _) = http_exchange(admin, b"GET /stats HTTP/1.1\r\nHost: a\r\n\r\n");
        (status == 200).then_some(())
    })
    .expect("the admin listener did not answer again");
    // The data path never noticed.
    let mut web = connect(proxy.addr("web"));
    web.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    web.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The socket's path is checked before it is bound: one a live proxy answers on is refused by
/// name, a stale one replaced, a file or a symlink there refused; nothing else is touched.
#[test]
fn the_socket_path_is_checked_before_it_is_bound() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("admin-socket-path");
    let text = config(&dir, pong.addr(), "");
    let first = Proxy::start(&dir, &text);
    let check = |why: &str| {
        let out = throng()
            .args(["proxy", "-c"])
            .arg(dir.path("proxy.toml"))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "started: {said}");
        assert!(said.contains(why), "{said}");
    };
    check("a running proxy answers on it");
    drop(first);
    // Killed: its socket is left behind, stale; the next proxy replaces it.
    let socket = dir.path("run/proxy.sock");
    assert!(socket.exists());
    let second = Proxy::start(&dir, &text);
    // (Logged on stderr before the listening line on stdout: waited for, not looked up once.)
    second.wait_for_message("stale (nobody answers): replaced");
    drop(second);
    std::fs::remove_file(&socket).unwrap();
    std::fs::write(&socket, "not a socket").unwrap();
    check("exists and is not a socket");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
    std::fs::remove_file(&socket).unwrap();
    std::os::unix::fs::symlink(dir.path("elsewhere"), &socket).unwrap();
    check("is a symlink");
    assert!(!dir.path("elsewhere").exists());
}

/// A master takes commands on its socket and passes them to every worker, whose own admin
/// listeners (on loopback) take them only with the master's token.
#[test]
fn a_master_passes_socket_commands_to_its_workers() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("admin-master");
    let web = common::free_addr();
    let text =
        config(&dir, pong.addr(), "processes = 2").replace("127.0.0.1:0\"]", &format!("{web}\"]"));
    let proxy = Proxy::start(&dir, &text);
    let file = dir.path("proxy.toml");
    let (ok, text) = ctl(&file, "set server app/a weight 7", None);
    assert!(ok, "{text}");
    assert_eq!(text.matches(": app/a: weight 7").count(), 2, "{text}");
    // The master's TCP listener has no token: no command over TCP there either.
    let admin = proxy.admin.unwrap();
    let (status, _) = post(admin, &admin.to_string(), "", "set server app/a weight 1");
    assert_eq!(status, 403);
    let (ok, text) = ctl(&file, "show servers", None);
    assert!(ok && text.contains("app/a 127.0.0.1"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("app/a ") && l.split(' ').nth(4) == Some("7")),
        "{text}"
    );
}

/// `--check` refuses an admin listener other machines can reach without a token, naming the
/// line and the key.
#[test]
fn an_exposed_admin_listener_needs_a_token() {
    let dir = Dir::new("admin-exposed");
    let file = dir.write(
        "proxy.toml",
        "[global]\nadmin = \"0.0.0.0:9100\"\n\n[frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\n[backends.app]\nservers = [{ name = \"a\", address = \"127.0.0.1:1\" }]\n",
    );
    let out = throng()
        .args(["proxy", "--check", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("proxy.toml:2: global.admin: 0.0.0.0:9100 is reachable from other machines"),
        "{said}"
    );
}

/// A binary upgrade hands the socket itself to the new binary: commands reach the new process
/// through the same path, which stays when the old process ends. `processes` says whether a
/// master (1: a single process) hands it over.
fn the_socket_survives_an_upgrade(processes: usize) {
    let pong = Pong::start(&[]);
    let dir = Dir::new(&format!("admin-upgrade-{processes}"));
    let global = format!(
        "processes = {processes}\npidfile = \"{}\"",
        dir.path("proxy.pid").display()
    );
    let web = common::free_addr();
    let text = config(&dir, pong.addr(), &global).replace("127.0.0.1:0\"]", &format!("{web}\"]"));
    let mut proxy = Proxy::start(&dir, &text);
    let file = dir.path("proxy.toml");
    let old = proxy.pid();
    let (new, _) = upgrade(&dir);
    let _new = KillOnDrop(new);
    assert_ne!(new, old);
    // The old process ends (it holds no connection); the socket is the new one's.
    let status = proxy.wait_exit();
    assert!(status.success(), "{status}");
    assert!(dir.path("run/proxy.sock").exists());
    let (ok, text) = ctl(&file, "set server app/a state drain", None);
    assert!(ok, "{text}");
    assert_eq!(state_of_a(&file), "drain");
}

#[test]
fn the_socket_survives_an_upgrade_of_a_single_process() {
    the_socket_survives_an_upgrade(1);
}

#[test]
fn the_socket_survives_an_upgrade_of_a_master() {
    the_socket_survives_an_upgrade(2);
}

/// A worker process takes commands with its master's token only: started without one (not by a
/// master), it refuses to run rather than take them from anyone on loopback.
#[test]
fn a_worker_without_its_masters_token_does_not_start() {
    let out = throng()
        .args(["proxy", "--worker", "0"])
        .env_remove("THRONG_PROXY_WORKER_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--worker is for a master to start"), "{said}");
}
