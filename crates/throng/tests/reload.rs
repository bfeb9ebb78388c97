//! Changing a running proxy without dropping a connection: reload (SIGHUP, `throng proxy
//! reload`), binary upgrade (SIGUSR2, `throng proxy upgrade`), and how old generations end
//! (`hard_stop_after`, `close_rate`, `max_generations`). Real processes on loopback, real TLS.

mod common;

use common::proxy::{upgrade, Backend, Dir, KillOnDrop, Proxy};
use common::{connect, throng, wait_until, Pong, PATIENCE};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A backend that sends back what it reads, for as long as the connection lives.
fn echo_backend() -> Backend {
    Backend::start(|mut stream| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || stream.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    })
}

/// A TLS client configuration that trusts anything and keeps session tickets (resumes).
fn tls_client() -> Arc<rustls::ClientConfig> {
    throng_tls::config::client_config(&throng_tls::config::ClientOptions {
        insecure: true,
        ..Default::default()
    })
    .unwrap()
}

/// A held connection through a TLS frontend in mode tcp to the echo backend.
struct Tunnel {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    resumed: bool,
}

impl Tunnel {
    fn open(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Tunnel {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut connection = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
        let mut socket = connect(addr);
        while connection.is_handshaking() {
            connection.complete_io(&mut socket).unwrap();
        }
        let resumed = connection.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        Tunnel {
            tls: rustls::StreamOwned::new(connection, socket),
            resumed,
        }
    }

    /// Sends a line and reads it back: the tunnel, its proxy and its backend are all alive.
    fn echo(&mut self, text: &str) -> Result<(), String> {
        let line = format!("{text}\n");
        self.tls
            .write_all(line.as_bytes())
            .and_then(|_| self.tls.flush())
            .map_err(|e| format!("write: {e}"))?;
        let mut back = vec![0u8; line.len()];
        self.tls
            .read_exact(&mut back)
            .map_err(|e| format!("read: {e}"))?;
        (back == line.as_bytes())
            .then_some(())
            .ok_or_else(|| format!("echoed {:?}", String::from_utf8_lossy(&back)))
    }
}

/// New connections, one request each, until stopped: what reloads must not refuse, reset or
/// time out. Bounded in count and time.
struct NewConnections {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NewConnections {
    fn start(addr: SocketAddr) -> NewConnections {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, d, f) = (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&failures));
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(120);
            for i in 0..20_000 {
                if s.load(Ordering::Relaxed) || Instant::now() > end {
                    break;
                }
                match one_request(addr) {
                    Ok(()) => d.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        f.lock().unwrap().push(format!("request {i}: {e}"));
                        0
                    }
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        NewConnections {
            stop,
            done,
            failures,
            thread: Some(thread),
        }
    }

    /// Stops, and gives (requests answered, failures).
    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        (
            self.done.load(Ordering::Relaxed),
            self.failures.lock().unwrap().clone(),
        )
    }
}

fn one_request(addr: SocketAddr) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, PATIENCE).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    if response.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("response {:?}", response.lines().next()))
    }
}

/// Stops `load` and checks what a change of the proxy must not do: a new connection refused,
/// reset, timed out or answered wrong, or one the kernel dropped since `drops_before`.
fn nothing_refused(load: NewConnections, drops_before: u64, proxy: &Proxy) {
    let (answered, failures) = load.finish();
    assert!(failures.is_empty(), "{failures:?}\n{}", proxy.stderr());
    assert!(answered > 0);
    assert_eq!(
        listen_drops(),
        drops_before,
        "the kernel dropped connections"
    );
}

/// The kernel's count of connections dropped because an accept queue was full or gone.
fn listen_drops() -> u64 {
    let netstat = std::fs::read_to_string("/proc/net/netstat").unwrap();
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenDrops")
        .map(|(_, value)| value.parse().unwrap())
        .unwrap()
}

fn config(dir: &Dir, global: &str, app: SocketAddr, server: &str, echo: SocketAddr) -> String {
    config_on(
        dir,
        global,
        ("127.0.0.1:0", "127.0.0.1:0"),
        app,
        server,
        echo,
    )
}

/// The test's configuration: `web` (HTTP to `app`, its one server named `server`) and
/// `tunnels` (TLS, mode tcp, to `echo`) on the `binds` given.
fn config_on(
    dir: &Dir,
    global: &str,
    (web, tunnels): (&str, &str),
    app: SocketAddr,
    server: &str,
    echo: SocketAddr,
) -> String {
    let threads = if global.contains("processes") { 1 } else { 2 };
    format!(
        "[global]\nthreads = {threads}\nadmin = \"127.0.0.1:0\"\npidfile = \"{}\"\n{global}\n\n\
         [frontends.web]\nbind = [\"{web}\"]\ndefault_backend = \"app\"\n\n\
         [frontends.tunnels]\nbind = [\"{tunnels}\"]\nmode = \"tcp\"\ndefault_backend = \"echo\"\n\
         tls = {{ self_signed = [\"localhost\"] }}\n\n\
         [backends.app]\nservers = [{{ name = \"{server}\", address = \"{app}\" }}]\n\n\
         [backends.echo]\nmode = \"tcp\"\nservers = [{{ name = \"e\", address = \"{echo}\" }}]\n",
        dir.path("proxy.pid").display()
    )
}

fn reload_command(dir: &Dir) -> std::process::Output {
    throng()
        .args(["proxy", "reload", "-c"])
        .arg(dir.path("proxy.toml"))
        .output()
        .unwrap()
}

fn wait_for_generation(proxy: &Proxy, generation: u32) {
    wait_until(|| (proxy.metric("throng_proxy_generation") == generation as f64).then_some(()))
        .unwrap_or_else(|| panic!("generation {generation} never served:\n{}", proxy.stderr()));
}

/// Held TLS tunnels and an unbroken stream of new connections through six reloads (by SIGHUP
/// and by `throng proxy reload`) and one refused file: no tunnel is dropped, no new connection
/// refused, reset or timed out, the kernel drops nothing from an accept queue, each reload's
/// servers take the new requests, and idle keep-alive connections of the old generation close.
#[test]
fn reloads_keep_every_connection_and_refuse_none() {
    let (pong_a, pong_b) = (Pong::start(&[]), Pong::start(&[]));
    let echo = echo_backend();
    let dir = Dir::new("reload-storm");
    // A fixed admin port: `throng proxy reload` reads it from the file to see the outcome.
    let admin = format!("admin = \"{}\"", common::free_addr());
    let first =
        config(&dir, "", pong_a.addr(), "a", echo.addr).replace("admin = \"127.0.0.1:0\"", &admin);
    let second =
        config(&dir, "", pong_b.addr(), "b", echo.addr).replace("admin = \"127.0.0.1:0\"", &admin);
    let proxy = Proxy::start(&dir, &first);
    let client = tls_client();
    let mut tunnels: Vec<Tunnel> = (0..20)
        .map(|_| Tunnel::open(proxy.addr("tunnels"), &client))
        .collect();
    for (i, t) in tunnels.iter_mut().enumerate() {
        t.echo(&format!("before {i}")).unwrap();
    }
    let mut idle = connect(proxy.addr("web"));
    idle.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let head = common::proxy::read_head(&mut idle).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let drops_before = listen_drops();
    let load = NewConnections::start(proxy.addr("web"));
    for generation in 2..=7u32 {
        let text = if generation % 2 == 0 { &second } else { &first };
        dir.write("proxy.toml", text);
        if generation == 2 {
            let out = reload_command(&dir);
            assert!(
                out.status.success(),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("reloaded"));
        } else {
            proxy.signal(libc::SIGHUP);
        }
        wait_for_generation(&proxy, generation);
        std::thread::sleep(Duration::from_millis(300));
        for (i, t) in tunnels.iter_mut().enumerate() {
            t.echo(&format!("generation {generation}, tunnel {i}"))
                .unwrap_or_else(|e| panic!("tunnel {i} after reload {generation}: {e}"));
        }
    }
    // A file that does not check changes nothing, and says where it is wrong.
    dir.write("proxy.toml", "[global]\nthreads = 0\n");
    let out = reload_command(&dir);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("proxy.toml") && said.contains("threads"),
        "{said}"
    );
    proxy.signal(libc::SIGHUP);
    let refused = proxy.wait_for_message("reload refused");
    assert!(refused.contains("threads"), "{refused}");
    assert_eq!(proxy.metric("throng_proxy_reload_failures_total"), 1.0);
    assert_eq!(proxy.metric("throng_proxy_generation"), 7.0);

    nothing_refused(load, drops_before, &proxy);
    // Generation 7 runs the first file again: server a takes the new requests.
    one_request(proxy.addr("web")).unwrap();
    proxy.wait_for_line(&["app/a"]);
    // The idle keep-alive connection of generation 1 was closed when it stopped serving.
    idle.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = [0u8; 1024];
    let mut pending = 0;
    loop {
        match idle.read(&mut rest) {
            Ok(0) => break,
            // The body of the one response it had.
            Ok(n) if pending < 64 => pending += n,
            other => panic!("the idle connection was not closed: {other:?}"),
        }
    }
    for (i, t) in tunnels.iter_mut().enumerate() {
        t.echo(&format!("at the end {i}")).unwrap();
    }
    // A session begun with generation 1 resumes with generation 7: one ticket key for the
    // process's whole life.
    let mut returning = Tunnel::open(proxy.addr("tunnels"), &client);
    assert!(returning.resumed, "no resumption across reloads");
    returning.echo("resumed").unwrap();
    // Old generations holding tunnels are still alive: none was cut.
    let metrics = proxy.metrics();
    let alive = metrics
        .lines()
        .filter(|l| l.starts_with("throng_proxy_generation_connections{"))
        .count();
    assert!((2..=7).contains(&alive), "{metrics}");
}

/// An old generation past `hard_stop_after` closes what it holds no faster than `close_rate`;
/// a reload beyond `max_generations`, with `at_max_generations = "close-oldest"`, closes the
/// oldest at once, at the same rate.
#[test]
fn old_generations_close_at_the_capped_rate() {
    let pong = Pong::start(&[]);
    let echo = echo_backend();
    let dir = Dir::new("reload-close-rate");
    let global = "hard_stop_after = \"1s\"\nclose_rate = 20\nmax_generations = 2\nat_max_generations = \"close-oldest\"";
    let text = config(&dir, global, pong.addr(), "a", echo.addr);
    let proxy = Proxy::start(&dir, &text);
    let client = tls_client();
    let mut tunnels: Vec<Tunnel> = (0..30)
        .map(|_| Tunnel::open(proxy.addr("tunnels"), &client))
        .collect();
    for t in tunnels.iter_mut() {
        t.echo("held").unwrap();
    }
    let reloaded = Instant::now();
    proxy.signal(libc::SIGHUP);
    wait_for_generation(&proxy, 2);
    // Each tunnel's end, as its client sees it.
    let ends: Vec<Duration> = std::thread::scope(|scope| {
        let readers: Vec<_> = tunnels
            .iter_mut()
            .map(|t| {
                scope.spawn(move || {
                    t.tls
                        .sock
                        .set_read_timeout(Some(Duration::from_secs(60)))
                        .unwrap();
                    let mut buf = [0u8; 64];
                    let _ = t.tls.read(&mut buf);
                    reloaded.elapsed()
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let first = ends.iter().min().unwrap();
    let last = ends.iter().max().unwrap();
    // None before hard_stop_after; then 30 at 20 a second take at least 1.45 s (the first may
    // go at once). A slow machine only makes it slower.
    assert!(*first >= Duration::from_millis(950), "{ends:?}");
    assert!(*last - *first >= Duration::from_millis(1200), "{ends:?}");
    proxy
        .wait_for_message("hard_stop_after 1s has passed; closing its 30 connections, 20 a second");
    proxy.wait_for_message("generation 1 ended");
    let closed = wait_until(|| {
        let m = proxy.metrics();
        (!m.contains("generation=\"1\"")).then_some(m)
    })
    .expect("generation 1 gone from the metrics");
    assert!(closed.contains("throng_proxy_generation 2"), "{closed}");

    // max_generations 2: generation 2 holds tunnels; reloading twice more puts it into closing
    // at once (without waiting for hard_stop_after).
    let mut held: Vec<Tunnel> = (0..5)
        .map(|_| Tunnel::open(proxy.addr("tunnels"), &client))
        .collect();
    for t in held.iter_mut() {
        t.echo("held by generation 2").unwrap();
    }
    let global = "hard_stop_after = \"1h\"\nclose_rate = 20\nmax_generations = 2\nat_max_generations = \"close-oldest\"";
    dir.write(
        "proxy.toml",
        &config(&dir, global, pong.addr(), "a", echo.addr),
    );
    proxy.signal(libc::SIGHUP);
    wait_for_generation(&proxy, 3);
    // A new tunnel in generation 3; generation 2 keeps its own (hard_stop_after is an hour).
    let mut newer = Tunnel::open(proxy.addr("tunnels"), &client);
    newer.echo("held by generation 3").unwrap();
    for t in held.iter_mut() {
        t.echo("generation 2 still serves").unwrap();
    }
    proxy.signal(libc::SIGHUP);
    wait_for_generation(&proxy, 4);
    proxy.wait_for_message("max_generations 2: generation 2 closes its 5 connections now");
    for t in held.iter_mut() {
        t.tls.sock.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut buf = [0u8; 8];
        assert!(matches!(t.tls.read(&mut buf), Ok(0) | Err(_)));
    }
    newer.echo("generation 3 keeps its tunnel").unwrap();
}

/// At the default, a reload beyond `max_generations` is refused: logged and counted, nothing
/// cut, the serving generation goes on; once the oldest has ended, the next reload goes through.
#[test]
fn a_reload_past_max_generations_is_refused_and_cuts_nothing() {
    let pong = Pong::start(&[]);
    let echo = echo_backend();
    let dir = Dir::new("reload-refused-at-max");
    let text = config(&dir, "max_generations = 2", pong.addr(), "a", echo.addr);
    let proxy = Proxy::start(&dir, &text);
    let client = tls_client();
    let mut first = Tunnel::open(proxy.addr("tunnels"), &client);
    first.echo("held by generation 1").unwrap();
    proxy.signal(libc::SIGHUP);
    wait_for_generation(&proxy, 2);
    proxy.signal(libc::SIGHUP);
    let said = proxy.wait_for_message("reload refused: max_generations 2");
    assert!(
        said.contains("the oldest (1) still holds 1 connections; nothing was cut"),
        "{said}"
    );
    wait_until(|| (proxy.metric("throng_proxy_reload_failures_total") == 1.0).then_some(()))
        .unwrap();
    assert_eq!(proxy.metric("throng_proxy_generation"), 2.0);
    first.echo("generation 1 keeps its tunnel").unwrap();
    one_request(proxy.addr("web")).unwrap();
    // Its last connection gone, generation 1 ends, and there is room again.
    drop(first);
    proxy.wait_for_message("generation 1 ended");
    proxy.signal(libc::SIGHUP);
    wait_for_generation(&proxy, 3);
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

/// SIGUSR2 (`throng proxy upgrade`): the binary at the proxy's path takes over the listening
/// sockets and the ticket key. New connections go to it (TLS sessions begun before resume on
/// it); the old process keeps its tunnel, stops when that ends, and no new connection is
/// refused in between.
#[test]
fn an_upgrade_hands_the_listeners_and_tickets_to_the_new_binary() {
    let pong = Pong::start(&[]);
    let echo = echo_backend();
    let dir = Dir::new("upgrade");
    let text = config(&dir, "", pong.addr(), "a", echo.addr);
    let mut proxy = Proxy::start(&dir, &text);
    let old = proxy.pid();
    let client = tls_client();
    let mut tunnel = Tunnel::open(proxy.addr("tunnels"), &client);
    tunnel.echo("before").unwrap();
    assert!(!tunnel.resumed);
    let load = NewConnections::start(proxy.addr("web"));
    let drops_before = listen_drops();

    let (new, said) = upgrade(&dir);
    let _new_proxy = KillOnDrop(new);
    assert_ne!(new, old);
    assert!(said.contains(&format!("pid {new} serves")), "{said}");
    proxy.wait_for_message("upgrade: the new binary serves");
    // The admin listener went with the sockets: only the new process answers on it (the old
    // one's generation, draining its tunnel, is not in what it says).
    for _ in 0..6 {
        let metrics = proxy.metrics();
        assert!(!metrics.contains("phase=\"draining\""), "{metrics}");
        // Generations are numbered on across the upgrade.
        assert!(
            metrics.contains("\nthrong_proxy_generation 2\n"),
            "{metrics}"
        );
    }

    // A new client connection reaches the new process, and resumes the session begun with
    // the old one.
    let mut after = Tunnel::open(proxy.addr("tunnels"), &client);
    after.echo("after").unwrap();
    assert!(
        after.resumed,
        "the session begun before the upgrade did not resume"
    );
    tunnel.echo("the old process keeps its tunnel").unwrap();
    nothing_refused(load, drops_before, &proxy);
    assert!(pid_alive(old));
    // The old process ends with its last connection.
    drop(tunnel);
    let status = proxy.wait_exit();
    assert!(status.success(), "{status}");
    assert!(pid_alive(new));
    after.echo("the new process serves on").unwrap();
    one_request(proxy.addr("web")).unwrap();
}

/// A new binary that cannot start leaves the old process serving, and says why.
#[test]
fn an_upgrade_that_fails_changes_nothing() {
    let pong = Pong::start(&[]);
    let echo = echo_backend();
    let dir = Dir::new("upgrade-fails");
    let text = config(&dir, "", pong.addr(), "a", echo.addr);
    let proxy = Proxy::start(&dir, &text);
    // The file goes bad after the start: the new binary reads it and refuses to start.
    dir.write("proxy.toml", "[global]\nthreads = 0\n");
    proxy.signal(libc::SIGUSR2);
    let said = proxy.wait_for_message("upgrade failed");
    assert!(said.contains("keeps serving"), "{said}");
    assert!(
        said.contains("threads"),
        "the new binary's own reason: {said}"
    );
    one_request(proxy.addr("web")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path("proxy.pid"))
            .unwrap()
            .trim(),
        proxy.pid().to_string()
    );
}

/// With `global.processes`, the master checks the file and passes SIGHUP on: every worker
/// reloads, and the tunnels they hold stay.
#[test]
fn a_master_passes_a_reload_to_its_workers() {
    let (pong_a, pong_b) = (Pong::start(&[]), Pong::start(&[]));
    let echo = echo_backend();
    let dir = Dir::new("reload-master");
    let (web, tunnels) = (common::free_addr(), common::free_addr());
    let binds = (web.to_string(), tunnels.to_string());
    let text = |app: SocketAddr, server: &str| {
        let binds = (binds.0.as_str(), binds.1.as_str());
        config_on(&dir, "processes = 2", binds, app, server, echo.addr)
    };
    let proxy = Proxy::start(&dir, &text(pong_a.addr(), "a"));
    let client = tls_client();
    let mut held: Vec<Tunnel> = (0..10).map(|_| Tunnel::open(tunnels, &client)).collect();
    for t in held.iter_mut() {
        t.echo("before").unwrap();
    }
    dir.write("proxy.toml", &text(pong_b.addr(), "b"));
    let out = reload_command(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both workers serve generation 2: the merged gauge is the highest, the reloads add up.
    wait_until(|| (proxy.metric("throng_proxy_reloads_total") == 2.0).then_some(()))
        .unwrap_or_else(|| panic!("{}", proxy.stderr()));
    for _ in 0..10 {
        one_request(web).unwrap();
    }
    proxy.wait_for_line(&["app/b"]);
    // No request was made before the reload: none went to the old file's server.
    assert!(
        !proxy.log().iter().any(|l| l.contains("app/a")),
        "{:?}",
        proxy.log()
    );
    for t in held.iter_mut() {
        t.echo("after").unwrap();
    }
}

/// `throng proxy ctl` on `dir`'s configuration (its socket, or its admin listener with its
/// token): (success, stdout + stderr).
fn ctl(dir: &Dir, command: &str) -> (bool, String) {
    common::proxy::ctl_as(&dir.path("proxy.toml"), command, None)
}

/// `POST /ctl` by hand: (status, body).
fn post_ctl(admin: SocketAddr, command: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST /ctl HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{command}",
        command.len()
    );
    let (status, _, body) = common::http_exchange(admin, request.as_bytes());
    (status, body)
}

const TOKEN: &str = "0123456789abcdef-test";

/// A configuration with two HTTP servers (round robin) and two echo servers for tunnels, an
/// admin listener on a fixed port and a token.
fn two_server_config(
    dir: &Dir,
    apps: [SocketAddr; 2],
    echoes: [SocketAddr; 2],
    global: &str,
) -> String {
    format!(
        "[global]\nthreads = 2\nadmin = \"{}\"\nadmin_token = \"{TOKEN}\"\npidfile = \"{}\"\n{global}\n\n\
         [frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\n\
         [frontends.tunnels]\nbind = [\"127.0.0.1:0\"]\nmode = \"tcp\"\ndefault_backend = \"echo\"\n\
         tls = {{ self_signed = [\"localhost\"] }}\n\n\
         [backends.app]\nbalance = \"roundrobin\"\nservers = [{{ name = \"a\", address = \"{}\" }}, {{ name = \"b\", address = \"{}\" }}]\n\n\
         [backends.echo]\nmode = \"tcp\"\nbalance = \"roundrobin\"\nservers = [{{ name = \"e1\", address = \"{}\" }}, {{ name = \"e2\", address = \"{}\" }}]\n",
        common::free_addr(),
        dir.path("proxy.pid").display(),
        apps[0], apps[1], echoes[0], echoes[1]
    )
}

fn sessions(proxy: &Proxy, backend: &str, server: &str) -> f64 {
    proxy.metric(&format!(
        "throng_proxy_server_sessions_total{{backend=\"{backend}\",server=\"{server}\"}}"
    ))
}

/// Runtime commands change servers in place: drain (no new connections, a held tunnel goes
/// on), maint, ready, weight; refused without the token or for an unknown server, changing
/// nothing.
#[test]
fn servers_are_drained_and_weighted_at_run_time() {
    let (a, b) = (Pong::start(&[]), Pong::start(&[]));
    let (e1, e2) = (echo_backend(), echo_backend());
    let dir = Dir::new("ctl-states");
    let text = two_server_config(&dir, [a.addr(), b.addr()], [e1.addr, e2.addr], "");
    let proxy = Proxy::start(&dir, &text);
    let admin = proxy.admin.unwrap();
    let client = tls_client();
    // Round robin over e1 and e2: two tunnels, one each.
    let mut held: Vec<Tunnel> = (0..2)
        .map(|_| Tunnel::open(proxy.addr("tunnels"), &client))
        .collect();
    for t in held.iter_mut() {
        t.echo("held").unwrap();
    }
    assert_eq!(sessions(&proxy, "echo", "e1"), 1.0);

    // Refused, and nothing changes: no token, a wrong one, an unknown server, a bad weight.
    assert_eq!(
        post_ctl(admin, "set server echo/e1 state drain", None).0,
        401
    );
    assert_eq!(
        post_ctl(
            admin,
            "set server echo/e1 state drain",
            Some("wrong-token-0123456")
        )
        .0,
        401
    );
    let (status, body) = post_ctl(admin, "set server echo/zz state drain", Some(TOKEN));
    assert_eq!((status, body.trim()), (404, "no server echo/zz"));
    let (status, body) = post_ctl(admin, "set server echo/e1 weight 0", Some(TOKEN));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("1 to 256") && body.contains("set server BACKEND/SERVER"),
        "{body}"
    );
    assert_eq!(
        proxy.metric("throng_proxy_server_admin_state{backend=\"echo\",server=\"e1\"}"),
        0.0
    );
    proxy.wait_for_message("refused (401)");

    // Drain e1: new tunnels all go to e2, the held one on e1 goes on.
    let (ok, said) = ctl(&dir, "set server echo/e1 state drain");
    assert!(ok, "{said}");
    proxy.wait_for_message("asked `set server echo/e1 state drain`: done");
    let mut fresh: Vec<Tunnel> = (0..4)
        .map(|_| Tunnel::open(proxy.addr("tunnels"), &client))
        .collect();
    for t in fresh.iter_mut().chain(held.iter_mut()) {
        t.echo("during the drain").unwrap();
    }
    assert_eq!(sessions(&proxy, "echo", "e1"), 1.0);
    assert_eq!(sessions(&proxy, "echo", "e2"), 5.0);
    let (ok, shown) = ctl(&dir, "show servers echo");
    assert!(
        ok && shown.contains("echo/e1 ") && shown.contains(" drain "),
        "{shown}"
    );

    // Maint, then ready again: back in the rotation.
    assert!(ctl(&dir, "set server echo/e1 state maint").0);
    assert_eq!(
        proxy.metric("throng_proxy_server_admin_state{backend=\"echo\",server=\"e1\"}"),
        2.0
    );
    Tunnel::open(proxy.addr("tunnels"), &client)
        .echo("e2 again")
        .unwrap();
    assert_eq!(sessions(&proxy, "echo", "e1"), 1.0);
    assert!(ctl(&dir, "set server echo/e1 state ready").0);
    for _ in 0..2 {
        Tunnel::open(proxy.addr("tunnels"), &client)
            .echo("both")
            .unwrap();
    }
    assert_eq!(sessions(&proxy, "echo", "e1"), 2.0);

    // Weight 3 to 1: forty requests in a row, thirty and ten.
    assert!(ctl(&dir, "set server app/a weight 3").0);
    let before = (sessions(&proxy, "app", "a"), sessions(&proxy, "app", "b"));
    for _ in 0..40 {
        one_request(proxy.addr("web")).unwrap();
    }
    let after = (sessions(&proxy, "app", "a"), sessions(&proxy, "app", "b"));
    assert_eq!((after.0 - before.0, after.1 - before.1), (30.0, 10.0));
    assert_eq!(
        proxy.metric("throng_proxy_server_weight{backend=\"app\",server=\"a\"}"),
        3.0
    );
}

/// Runtime commands change servers and certificates in place: no generation starts, no thread,
/// no connection is touched. An added server takes requests at once; a removed one takes no new
/// connection while the tunnel it holds goes on; a moved one's new connections go to its new
/// address; a new certificate serves the next handshakes. A reload puts the file back.
#[test]
fn servers_and_certificates_change_in_place() {
    let (a, b, c) = (Pong::start(&[]), Pong::start(&[]), Pong::start(&[]));
    let (e1, e2) = (echo_backend(), echo_backend());
    let dir = Dir::new("ctl-structure");
    let text = two_server_config(&dir, [a.addr(), b.addr()], [e1.addr, e2.addr], "");
    let proxy = Proxy::start(&dir, &text);
    let threads = || {
        std::fs::read_dir(format!("/proc/{}/task", proxy.pid()))
            .unwrap()
            .count()
    };
    let client = tls_client();
    let mut on_e1 = Tunnel::open(proxy.addr("tunnels"), &client);
    on_e1.echo("held on e1").unwrap();
    assert_eq!(sessions(&proxy, "echo", "e1"), 1.0);
    let threads_before = threads();

    // Added: it takes requests at once.
    let (ok, said) = ctl(&dir, &format!("add server app/c {} weight 2", c.addr()));
    assert!(ok && said.contains("takes new connections now"), "{said}");
    let (ok, said) = ctl(&dir, &format!("add server app/c {}", c.addr()));
    assert!(!ok && said.contains("exists already"), "{said}");
    for _ in 0..8 {
        one_request(proxy.addr("web")).unwrap();
    }
    proxy.wait_for_line(&["app/c"]);

    // Removed: new tunnels go to e2; the one on e1 goes on, and shows until it ends.
    let (ok, said) = ctl(&dir, "del server echo/e1");
    assert!(ok && said.contains("its 1 connections go on"), "{said}");
    assert!(!ctl(&dir, "del server echo/e2").0, "the last server stays");
    for _ in 0..3 {
        Tunnel::open(proxy.addr("tunnels"), &client)
            .echo("to e2")
            .unwrap();
    }
    on_e1.echo("e1 still answers").unwrap();
    let (_, shown) = ctl(&dir, "show servers echo");
    assert!(
        shown.contains(" removed 1 1 1\n") && shown.contains("echo/e2"),
        "{shown}"
    );
    assert_eq!(sessions(&proxy, "echo", "e2"), 3.0);

    // Moved: app/a's new connections go to b's address.
    let (ok, said) = ctl(&dir, &format!("set server app/a addr {}", b.addr()));
    assert!(ok, "{said}");
    let (_, shown) = ctl(&dir, "show servers app");
    assert!(shown.contains(&format!("app/a {} ", b.addr())), "{shown}");
    let a_before = sessions(&proxy, "app", "a");
    for _ in 0..8 {
        let (status, head, _) = common::http_exchange(
            proxy.addr("web"),
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200);
        assert!(
            !head.contains(&format!("x-served-by: {}", a.addr())),
            "{head}"
        );
    }
    assert!(
        sessions(&proxy, "app", "a") > a_before,
        "app/a took none of them"
    );

    // A new certificate for the TLS frontend: new connections get it.
    dir.certificate("second", &["localhost", "second.example"]);
    let (ok, said) = ctl(&dir, "set cert tunnels second.pem second.key");
    assert!(ok, "{said}");
    let fresh = Tunnel::open(
        proxy.addr("tunnels"),
        &Arc::new(
            // No resumption: a resumed session would not show the certificate.
            {
                let mut config = (*tls_client()).clone();
                config.resumption = rustls::client::Resumption::disabled();
                config
            },
        ),
    );
    let served = fresh.tls.conn.peer_certificates().unwrap()[0].to_vec();
    let wanted = throng_tls::config::load_certs(&dir.path("second.pem")).unwrap()[0].to_vec();
    assert_eq!(served, wanted);
    // Not a regular file (a device, a pipe): refused before anything reads it.
    let (ok, said) = ctl(&dir, "set cert tunnels /dev/zero second.key");
    assert!(!ok && said.contains("not a regular file"), "{said}");
    assert!(ctl(&dir, "set cert tunnels missing.pem second.key")
        .1
        .contains("missing.pem"));
    on_e1.echo("e1 through every change").unwrap();
    // Nothing of this started a generation or a thread.
    assert_eq!(proxy.metric("throng_proxy_generation"), 1.0);
    assert_eq!(threads(), threads_before);

    let (_, changes) = ctl(&dir, "show changes");
    assert_eq!(changes.lines().count(), 4, "{changes}");
    // The file again: its two servers, and a word about what it replaced.
    proxy.signal(libc::SIGHUP);
    proxy.wait_for_message("the file replaces 4 runtime changes");
    wait_for_generation(&proxy, 2);
    let (_, shown) = ctl(&dir, "show servers");
    assert!(
        shown.contains("echo/e1") && !shown.contains("app/c"),
        "{shown}"
    );
    on_e1.echo("e1 even now").unwrap();
}

/// At the default settings, held TLS tunnels live through ten runtime changes (add, weight,
/// drain, del, set cert) and six reloads, and the stream of new connections never fails: no
/// change closes anything, and no bound on generations cuts what the old ones hold.
#[test]
fn tunnels_live_through_runtime_changes_and_reloads_at_the_defaults() {
    let (a, b, c) = (Pong::start(&[]), Pong::start(&[]), Pong::start(&[]));
    let (e1, e2, e3) = (echo_backend(), echo_backend(), echo_backend());
    let dir = Dir::new("ctl-and-reloads");
    let text = two_server_config(&dir, [a.addr(), b.addr()], [e1.addr, e2.addr], "");
    let proxy = Proxy::start(&dir, &text);
    dir.certificate("second", &["localhost"]);
    let client = tls_client();
    let mut tunnels: Vec<Tunnel> = (0..20)
        .map(|_| Tunnel::open(proxy.addr("tunnels"), &client))
        .collect();
    let all_answer = |tunnels: &mut Vec<Tunnel>, when: &str| {
        for (i, t) in tunnels.iter_mut().enumerate() {
            t.echo(&format!("{when}: {i}"))
                .unwrap_or_else(|e| panic!("tunnel {i} {when}: {e}\n{}", proxy.stderr()));
        }
    };
    all_answer(&mut tunnels, "before");
    let load = NewConnections::start(proxy.addr("web"));
    let drops_before = listen_drops();
    for command in [
        format!("add server echo/e3 {}", e3.addr),
        "set server echo/e3 weight 3".to_string(),
        "set server echo/e1 state drain".to_string(),
        format!("add server app/c {}", c.addr()),
        "set server app/c weight 2".to_string(),
        "del server echo/e1".to_string(),
        "set cert tunnels second.pem second.key".to_string(),
        "set server app/a state drain".to_string(),
        "set server app/a state ready".to_string(),
        "del server app/c".to_string(),
    ] {
        let (ok, said) = ctl(&dir, &command);
        assert!(ok, "{command}: {said}");
        all_answer(&mut tunnels, &command);
        // A new tunnel works too, whatever the change.
        Tunnel::open(proxy.addr("tunnels"), &client)
            .echo("new")
            .unwrap();
    }
    assert_eq!(proxy.metric("throng_proxy_generation"), 1.0);
    for generation in 2..=7 {
        proxy.signal(libc::SIGHUP);
        wait_for_generation(&proxy, generation);
        all_answer(&mut tunnels, &format!("after reload {}", generation - 1));
    }
    nothing_refused(load, drops_before, &proxy);
    assert!(
        !proxy.stderr().contains("max_generations"),
        "{}",
        proxy.stderr()
    );
    assert_eq!(proxy.metric("throng_proxy_reload_failures_total"), 0.0);
}

/// `rotate tickets` reaches every worker of a master with one new secret: a session begun
/// before it still resumes (the secret before is kept for opening), sessions begun after it
/// resume on any worker, and the secret appears in no log line.
#[test]
fn a_ticket_rotation_reaches_every_worker_and_keeps_sessions() {
    let echo = echo_backend();
    let dir = Dir::new("tickets-rotate");
    let tunnels = common::free_addr();
    let text = format!(
        "[global]\nprocesses = 2\nthreads = 1\nadmin_socket = \"{}\"\n\n\
         [frontends.tunnels]\nbind = [\"{tunnels}\"]\nmode = \"tcp\"\ndefault_backend = \"echo\"\n\
         tls = {{ certificates = [{{ cert = \"t.pem\", key = \"t.key\" }}] }}\n\n\
         [backends.echo]\nmode = \"tcp\"\nservers = [{{ name = \"e\", address = \"{}\" }}]\n",
        dir.path("run/proxy.sock").display(),
        echo.addr
    );
    dir.certificate("t", &["localhost"]);
    let proxy = Proxy::start(&dir, &text);
    let client = tls_client();
    let mut first = Tunnel::open(tunnels, &client);
    first.echo("full handshake").unwrap();
    let (ok, said) = ctl(&dir, "rotate tickets");
    assert!(ok, "{said}");
    assert_eq!(said.matches("ticket secret rotated").count(), 2, "{said}");
    // Tickets of the secret before still open, on whichever worker the kernel picks.
    let mut resumed = 0;
    for _ in 0..6 {
        let mut t = Tunnel::open(tunnels, &client);
        t.echo("after the rotation").unwrap();
        resumed += u32::from(t.resumed);
    }
    assert_eq!(resumed, 6, "sessions from before the rotation must resume");
    // A secret given by the operator, and no secret in the log.
    let secret = "5a".repeat(32);
    let (ok, said) = ctl(&dir, &format!("rotate tickets {secret}"));
    assert!(ok, "{said}");
    for _ in 0..6 {
        let mut t = Tunnel::open(tunnels, &client);
        t.echo("after the second").unwrap();
        assert!(
            t.resumed,
            "a session of the last secret resumes on every worker"
        );
    }
    proxy.wait_for_message("asked `rotate tickets <secret>`");
    assert!(
        !proxy.stderr().contains(&secret),
        "the secret went into the log"
    );
    first.echo("the first tunnel goes on").unwrap();
}

/// With `global.processes`, the master passes a command to every worker.
#[test]
fn a_master_passes_commands_to_its_workers() {
    let (a, b) = (Pong::start(&[]), Pong::start(&[]));
    let (e1, e2) = (echo_backend(), echo_backend());
    let dir = Dir::new("ctl-master");
    let (web, tunnels) = (common::free_addr(), common::free_addr());
    let text = two_server_config(
        &dir,
        [a.addr(), b.addr()],
        [e1.addr, e2.addr],
        "processes = 2",
    )
    .replace("threads = 2", "threads = 1")
    .replacen(
        "bind = [\"127.0.0.1:0\"]",
        &format!("bind = [\"{web}\"]"),
        1,
    )
    .replacen(
        "bind = [\"127.0.0.1:0\"]",
        &format!("bind = [\"{tunnels}\"]"),
        1,
    );
    let proxy = Proxy::start(&dir, &text);
    let (ok, said) = ctl(&dir, "set server app/a state drain");
    assert!(ok, "{said}");
    assert_eq!(said.matches(": app/a: drain").count(), 2, "{said}");
    for _ in 0..10 {
        one_request(web).unwrap();
    }
    assert_eq!(sessions(&proxy, "app", "a"), 0.0);
    assert_eq!(sessions(&proxy, "app", "b"), 10.0);
    let (ok, said) = ctl(&dir, "set server app/nope state drain");
    assert!(!ok && said.contains("no server app/nope"), "{said}");
}

/// With `global.processes`, SIGUSR2 starts a new master from the binary at the old one's path;
/// once its workers serve, the old workers stop accepting and end with their last connection,
/// and the old master with them.
#[test]
fn a_master_hands_over_to_a_new_master() {
    let pong = Pong::start(&[]);
    let echo = echo_backend();
    let dir = Dir::new("upgrade-master");
    let (web, tunnels) = (common::free_addr(), common::free_addr());
    let binds = (web.to_string(), tunnels.to_string());
    let text = config_on(
        &dir,
        "processes = 2",
        (&binds.0, &binds.1),
        pong.addr(),
        "a",
        echo.addr,
    );
    let mut proxy = Proxy::start(&dir, &text);
    let old = proxy.pid();
    let client = tls_client();
    let mut held: Vec<Tunnel> = (0..6).map(|_| Tunnel::open(tunnels, &client)).collect();
    for t in held.iter_mut() {
        t.echo("before").unwrap();
    }
    let (new, _) = upgrade(&dir);
    let _new_master = KillOnDrop(new);
    assert_ne!(new, old);
    proxy.wait_for_message("workers stop accepting and end with their last connection");
    // New connections reach the new master's workers, and sessions begun with the old ones
    // resume there (one ticket key); the old workers keep their tunnels.
    for _ in 0..10 {
        one_request(web).unwrap();
    }
    let mut after = Tunnel::open(tunnels, &client);
    after.echo("after").unwrap();
    assert!(
        after.resumed,
        "a session begun with the old workers resumes with the new"
    );
    for t in held.iter_mut() {
        t.echo("the old workers keep their tunnels").unwrap();
    }
    assert!(pid_alive(old));
    drop(held);
    let status = proxy.wait_exit();
    assert!(status.success(), "{status}");
    after.echo("the new master's workers serve on").unwrap();
    // The new master's own workers are its children, ending with it (KillOnDrop).
}
