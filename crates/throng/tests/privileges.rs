//! Least privilege: a proxy started as root drops to `global.user`/`group` once its sockets are
//! bound and its keys read, and a reload, a new certificate and a binary upgrade still work
//! after the drop (what they read is readable by that user). Files it makes follow no symlink.
//! Real processes on loopback; the tests run as root (CI does).

mod common;

use common::proxy::{ctl_as, upgrade, Dir, KillOnDrop, Proxy};
use common::{throng, wait_until, Pong};
use std::os::unix::fs::PermissionsExt;

const NOBODY: u32 = 65534;

/// The real, effective, saved and filesystem uids of `pid`.
fn uids(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

fn running_as_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A directory that `nobody` owns (its pid file goes there), with files it can read.
fn nobodys_dir(name: &str) -> Dir {
    let dir = Dir::new(name);
    std::os::unix::fs::chown(&dir.0, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn root_is_dropped_and_reload_set_cert_and_upgrade_still_work() {
    if !running_as_root() {
        common::skip(
            "root_is_dropped_and_reload_set_cert_and_upgrade_still_work",
            "dropping root needs root (CI runs the tests as root)",
        );
        return;
    }
    let pong = Pong::start(&[]);
    let dir = nobodys_dir("privileges");
    dir.certificate("first", &["localhost"]);
    dir.certificate("second", &["localhost"]);
    let text = format!(
        "[global]\nthreads = 1\nuser = \"nobody\"\ngroup = \"nogroup\"\nadmin = \"127.0.0.1:0\"\n\
         admin_socket = \"{}\"\npidfile = \"{}\"\n\n\
         [frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\
         tls = {{ certificates = [{{ cert = \"first.pem\", key = \"first.key\" }}] }}\n\n\
         [backends.app]\nservers = [{{ name = \"a\", address = \"{}\" }}]\n",
        dir.path("run/proxy.sock").display(),
        dir.path("proxy.pid").display(),
        pong.addr()
    );
    let mut proxy = Proxy::start(&dir, &text);
    let file = dir.path("proxy.toml");
    assert_eq!(uids(proxy.pid()), vec![NOBODY; 4]);
    proxy.wait_for_message("running as uid 65534, gid 65534 from here on");
    // The pid file, written after the drop: 0644.
    let pid = wait_until(|| std::fs::metadata(dir.path("proxy.pid")).ok()).unwrap();
    assert_eq!(pid.permissions().mode() & 0o777, 0o644);
    // No core file could carry the keys: the process is not dumpable, so the kernel gives its
    // /proc files to root (a dumpable process's would be nobody's).
    let environ = std::fs::metadata(format!("/proc/{}/environ", proxy.pid())).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&environ), 0);

    // A reload reads the file again as nobody.
    proxy.signal(libc::SIGHUP);
    wait_until(|| (proxy.metric("throng_proxy_generation") == 2.0).then_some(()))
        .unwrap_or_else(|| panic!("no reload as nobody:\n{}", proxy.stderr()));
    // A new certificate, read as nobody.
    let (ok, said) = ctl_as(&file, "set cert web second.pem second.key", None);
    assert!(ok, "{said}");
    // A binary upgrade: the new binary starts as nobody, takes the sockets, and serves.
    let (new, _) = upgrade(&dir);
    let _new = KillOnDrop(new);
    assert_ne!(new, proxy.pid());
    assert_eq!(uids(new), vec![NOBODY; 4]);
    assert!(proxy.wait_exit().success());
    let (ok, said) = ctl_as(&file, "show servers", None);
    assert!(ok, "{said}");
}

#[test]
fn a_pid_file_or_log_that_is_a_symlink_is_not_followed() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("privileges-symlinks");
    let target = dir.path("target");
    std::fs::write(&target, "untouched").unwrap();
    std::os::unix::fs::symlink(&target, dir.path("proxy.log")).unwrap();
    let text = format!(
        "[global]\nthreads = 1\nlog = \"file:{}\"\n\n\
         [frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\n\
         [backends.app]\nservers = [{{ name = \"a\", address = \"{}\" }}]\n",
        dir.path("proxy.log").display(),
        pong.addr()
    );
    dir.write("proxy.toml", &text);
    let out = throng()
        .args(["proxy", "-c"])
        .arg(dir.path("proxy.toml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("is a symlink: refused"), "{said}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    // A log file made fresh is the proxy's, 0640.
    std::fs::remove_file(dir.path("proxy.log")).unwrap();
    let proxy = Proxy::start(&dir, &text);
    let mode = std::fs::metadata(dir.path("proxy.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    drop(proxy);
}
