//! TLS toward servers (a backend's `tls`), end to end: a real `throng proxy` in front of Debian's
//! nginx serving TLS with certificates of a test CA. Verification passes and fails (wrong CA,
//! wrong name, expired) with a 502, a log line naming the server and the reason, and a counter;
//! mTLS; sessions resumed and counted (nginx's own `$ssl_session_reused` agrees); a TCP tunnel
//! over TLS; health checks over the same TLS.

mod common;

use common::proxy::{Dir, Proxy};
use common::{free_addr, http_exchange, wait_until};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};

const GLOBAL: &str = "[global]\nthreads = 2\nadmin = \"127.0.0.1:0\"\n";

/// A CA of the test's own, written as `NAME.pem`.
fn ca(dir: &Dir, name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("throng test CA {name}"));
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    dir.write(&format!("{name}.pem"), &issuer.pem());
    issuer
}

/// A certificate for `names` signed by `ca`, written as `NAME.pem` and `NAME.key`.
fn leaf(
    dir: &Dir,
    name: &str,
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
    expired: bool,
) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![purpose];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &**ca).unwrap();
    dir.write(&format!("{name}.pem"), &cert.pem());
    dir.write(&format!("{name}.key"), &key.serialize_pem());
}

/// The test's certificates in `dir`: `ca` (the CA the proxy trusts) and `other` (one it does
/// not), `good` and `expired` server certificates of `ca` for backend.test and 127.0.0.1, and a
/// `client` certificate of `ca` for mTLS.
fn certificates(dir: &Dir) {
    let authority = ca(dir, "ca");
    ca(dir, "other");
    let names = ["backend.test", "127.0.0.1"];
    let server = ExtendedKeyUsagePurpose::ServerAuth;
    leaf(dir, "good", &authority, &names, server.clone(), false);
    leaf(dir, "expired", &authority, &names, server, true);
    let client = ExtendedKeyUsagePurpose::ClientAuth;
    leaf(dir, "client", &authority, &["proxy.test"], client, false);
}

/// nginx with four TLS listeners: `good` (TLS 1.3, a certificate for backend.test and
/// 127.0.0.1), `legacy` (the same on TLS 1.2 only), `expired` (the same names, expired), and
/// `mtls` (the good certificate, and a client certificate of the CA required). `good` and
/// `legacy` answer with whether the session was resumed, and log it.
struct Nginx {
    child: Child,
    good: SocketAddr,
    legacy: SocketAddr,
    expired: SocketAddr,
    mtls: SocketAddr,
}

impl Nginx {
    fn start(dir: &Dir) -> Nginx {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("nginx is not installed: apt-get install nginx-light (test.sh does)");
        let (good, legacy) = (free_addr(), free_addr());
        let (expired, mtls) = (free_addr(), free_addr());
        let d = dir.0.display();
        let server = |addr: SocketAddr, cert: &str, extra: &str, body: &str| {
            format!(
                "  server {{\n    listen {addr} ssl;\n    ssl_certificate {d}/{cert}.pem;\n    ssl_certificate_key {d}/{cert}.key;\n    {extra}\n    location / {{ return 200 \"{body}\"; }}\n  }}\n"
            )
        };
        let config = format!(
            "master_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  log_format reuse '$server_port reused=$ssl_session_reused $ssl_protocol';\n  access_log {d}/access.log reuse;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  ssl_protocols TLSv1.3;\n{}{}{}{}}}\n",
            server(good, "good", "", "pong reused=$ssl_session_reused"),
            server(
                legacy,
                "good",
                "ssl_protocols TLSv1.2;",
                "pong reused=$ssl_session_reused"
            ),
            server(expired, "expired", "", "expired pong"),
            server(
                mtls,
                "good",
                &format!("ssl_verify_client on;\n    ssl_client_certificate {d}/ca.pem;"),
                "client $ssl_client_s_dn"
            ),
        );
        dir.write("nginx.conf", &config);
        let child = Command::new(nginx)
            .args(["-e", &format!("{d}/error.log"), "-p", &d.to_string()])
            .args(["-c", &format!("{d}/nginx.conf"), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let up = wait_until(|| {
            [good, legacy, expired, mtls]
                .iter()
                .all(|a| TcpStream::connect(a).is_ok())
                .then_some(())
        });
        assert!(
            up.is_some(),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path("error.log")).unwrap_or_default()
        );
        Nginx {
            child,
            good,
            legacy,
            expired,
            mtls,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(proxy: &Proxy, frontend: &str) -> (u16, String) {
    let (status, _, body) = http_exchange(
        proxy.addr(frontend),
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    (status, body)
}

/// A frontend `NAME` on its own port to backend `NAME`, whose one server is at `server`.
fn pair(name: &str, server: SocketAddr, tls: &str, extra: &str) -> String {
    format!(
        "[frontends.{name}]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"{name}\"\n\n\
         [backends.{name}]\nretries = 0\n{extra}tls = {{ {tls} }}\nservers = [{{ name = \"n\", address = \"{server}\" }}]\n\n"
    )
}

fn server_metric(proxy: &Proxy, name: &str, backend: &str) -> f64 {
    proxy.metric(&format!(
        "throng_proxy_server_{name}_total{{backend=\"{backend}\",server=\"n\"}}"
    ))
}

#[test]
fn tls_to_servers_verifies_resumes_and_refuses_with_a_502_a_reason_and_a_counter() {
    let dir = Dir::new("server-tls");
    certificates(&dir);
    let nginx = Nginx::start(&dir);
    let sni = "ca = \"ca.pem\", sni = \"backend.test\"";
    let config = [
        GLOBAL.to_string(),
        // Every request on a new connection: each is a handshake, and all but the first resume.
        pair("good", nginx.good, sni, "max_idle_per_server = 0\n"),
        pair("legacy", nginx.legacy, sni, "max_idle_per_server = 0\n"),
        // No sni: the certificate must name the server's address (it does: 127.0.0.1).
        pair("address", nginx.good, "ca = \"ca.pem\"", ""),
        pair(
            "other_ca",
            nginx.good,
            "ca = \"other.pem\", sni = \"backend.test\"",
            "",
        ),
        pair(
            "wrong_name",
            nginx.good,
            "ca = \"ca.pem\", sni = \"elsewhere.test\"",
            "",
        ),
        pair("expired", nginx.expired, sni, ""),
        pair("no_cert", nginx.mtls, sni, ""),
        pair(
            "mtls",
            nginx.mtls,
            &format!("{sni}, cert = \"client.pem\", key = \"client.key\""),
            "",
        ),
        pair(
            "unverified",
            nginx.expired,
            "verify = \"none\", sni = \"backend.test\"",
            "",
        ),
    ]
    .concat();
    let proxy = Proxy::start(&dir, &config);

    for _ in 0..5 {
        let (status, body) = get(&proxy, "good");
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("pong reused="), "{body}");
    }
    assert_eq!(server_metric(&proxy, "tls_handshakes", "good"), 5.0);
    let resumed = server_metric(&proxy, "tls_resumed", "good");
    assert!(resumed >= 3.0, "{resumed} of 5 handshakes resumed");
    // nginx says the same of its side: as many sessions reused as the proxy counted.
    // (nginx logs a request just after its response: waited for, not raced.)
    let port = nginx.good.port();
    let reused_by_nginx = || {
        let access = std::fs::read_to_string(dir.path("access.log")).unwrap_or_default();
        let reused = access
            .lines()
            .filter(|l| l.starts_with(&format!("{port} reused=r TLSv1.3")))
            .count();
        (reused as f64 == resumed).then_some(())
    };
    assert!(
        wait_until(reused_by_nginx).is_some(),
        "nginx reused other than {resumed}: {}",
        std::fs::read_to_string(dir.path("access.log")).unwrap_or_default()
    );
    // TLS 1.2 stays with rustls for the connection's life, and resumes too.
    for _ in 0..3 {
        assert_eq!(get(&proxy, "legacy").0, 200);
    }
    assert!(server_metric(&proxy, "tls_resumed", "legacy") >= 1.0);

    // Keep-alive toward the server over TLS: a handshake per thread (2), not per request.
    for _ in 0..6 {
        assert_eq!(get(&proxy, "address").0, 200);
    }
    let handshakes = server_metric(&proxy, "tls_handshakes", "address");
    assert!(
        (1.0..=2.0).contains(&handshakes),
        "{handshakes} for 6 requests"
    );

    for (frontend, reason) in [
        ("other_ca", "UnknownIssuer"),
        ("wrong_name", "not valid for name \"elsewhere.test\""),
        ("expired", "certificate expired"),
    ] {
        let (status, _) = get(&proxy, frontend);
        assert_eq!(status, 502, "{frontend}");
        assert_eq!(server_metric(&proxy, "tls_failures", frontend), 1.0);
        let said = proxy.wait_for_message(&format!("Server {frontend}/n: TLS handshake with"));
        let line = said
            .lines()
            .find(|l| l.contains(&format!("Server {frontend}/n: TLS handshake")))
            .unwrap();
        assert!(line.contains(reason), "{frontend}: {line}");
        proxy.wait_for_line(&[&format!(" {frontend} {frontend}/n "), " 502 ", " SC"]);
    }

    // mTLS: nginx wants a client certificate of the CA; without one it answers 400 itself.
    let (status, body) = get(&proxy, "mtls");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("CN=client"), "{body}");
    let (status, body) = get(&proxy, "no_cert");
    assert_eq!(status, 400, "{body}");
    // verify = "none" trusts even an expired certificate.
    assert_eq!(get(&proxy, "unverified"), (200, "expired pong".to_string()));
}

#[test]
fn tcp_tunnels_and_health_checks_use_the_servers_tls() {
    let dir = Dir::new("server-tls-tcp");
    certificates(&dir);
    let nginx = Nginx::start(&dir);
    let check =
        "check = { type = \"http\", path = \"/\", interval = \"100ms\", rise = 1, fall = 1 }\n";
    let socket = dir.path("admin.sock");
    let config = format!(
        "{GLOBAL}admin_socket = \"{}\"\n\n[frontends.tunnel]\nbind = [\"127.0.0.1:0\"]\nmode = \"tcp\"\ndefault_backend = \"tunnel\"\n\n\
         [backends.tunnel]\nmode = \"tcp\"\ntls = {{ ca = \"ca.pem\", sni = \"backend.test\" }}\nservers = [{{ name = \"n\", address = \"{}\" }}]\n\n{}{}",
        socket.display(),
        nginx.good,
        pair("checked", nginx.good, "ca = \"ca.pem\", sni = \"backend.test\"", check),
        pair("badly_checked", nginx.good, "ca = \"other.pem\", sni = \"backend.test\"", check),
    );
    let proxy = Proxy::start(&dir, &config);

    // The client speaks plain HTTP into the tunnel; the proxy carries it to nginx over TLS.
    let (status, _, body) = http_exchange(
        proxy.addr("tunnel"),
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status, body.as_str()), (200, "pong reused=."));
    assert_eq!(server_metric(&proxy, "tls_handshakes", "tunnel"), 1.0);
    proxy.wait_for_line(&[" tunnel tunnel/n ", " --"]);

    // A check that cannot verify takes its server out and says why; the good one stays up.
    let down = proxy.wait_for_message("Server badly_checked/n is DOWN");
    let line = down
        .lines()
        .find(|l| l.contains("Server badly_checked/n is DOWN"))
        .unwrap();
    assert!(
        line.contains("Layer6") && line.contains("UnknownIssuer"),
        "{line}"
    );
    assert!(!proxy.stderr().contains("Server checked/n is DOWN"));
    assert_eq!(get(&proxy, "checked").0, 200);
    let (status, _) = get(&proxy, "badly_checked");
    assert_eq!(status, 503, "no server up: 503, as HAProxy");
    assert_eq!(
        proxy.metric("throng_proxy_server_check_failures_total{backend=\"checked\",server=\"n\"}"),
        0.0
    );

    // A server added at run time speaks its backend's TLS, and says so.
    let (ok, said) = common::proxy::ctl_as(
        &dir.path("proxy.toml"),
        &format!("add server checked/m {}", nginx.good),
        None,
    );
    assert!(ok, "{said}");
    assert!(
        said.contains("over the backend's TLS (sni backend.test)"),
        "{said}"
    );
    let added = "throng_proxy_server_tls_handshakes_total{backend=\"checked\",server=\"m\"}";
    let reached = wait_until(|| {
        assert_eq!(get(&proxy, "checked").0, 200);
        (proxy.metric(added) >= 1.0).then_some(())
    });
    assert!(
        reached.is_some(),
        "no request reached the added server over TLS"
    );
}

/// MQTT clients in the clear to the proxy, the proxy to mosquitto over TLS: a message published
/// through it reaches a subscriber through it, and the broker saw TLS (a plain connection to its
/// TLS listener would fail).
#[test]
fn mqtt_reaches_a_broker_over_tls() {
    let dir = Dir::new("server-tls-mqtt");
    certificates(&dir);
    let broker_addr = free_addr();
    dir.write(
        "mosquitto.conf",
        &format!(
            "listener {} 127.0.0.1\nallow_anonymous true\ncertfile {}\nkeyfile {}\n",
            broker_addr.port(),
            dir.path("good.pem").display(),
            dir.path("good.key").display()
        ),
    );
    let mut broker = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(dir.path("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is not installed: apt-get install mosquitto mosquitto-clients (test.sh does)");
    wait_until(|| TcpStream::connect(broker_addr).ok()).expect("mosquitto listening");
    let config = format!(
        "{GLOBAL}\n[frontends.mqtt]\nbind = [\"127.0.0.1:0\"]\nmode = \"mqtt\"\ndefault_backend = \"brokers\"\n\n\
         [backends.brokers]\nmode = \"mqtt\"\nbalance = \"client-id\"\n\
         tls = {{ ca = \"ca.pem\", sni = \"backend.test\" }}\n\
         servers = [{{ name = \"n\", address = \"{broker_addr}\" }}]\n"
    );
    let proxy = Proxy::start(&dir, &config);
    let port = proxy.addr("mqtt").port().to_string();
    let client = |program: &str, extra: &[&str]| {
        let mut command = Command::new(program);
        command.args(["-h", "127.0.0.1", "-p", &port, "-t", "throng/tls"]);
        command.args(extra);
        command
    };
    let mut subscriber = Some(
        client("mosquitto_sub", &["-i", "sub", "-C", "1", "-W", "10"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Publish until the subscriber has subscribed and got one.
    let got = wait_until(|| {
        let published = client("mosquitto_pub", &["-i", "pub", "-m", "over tls"])
            .status()
            .unwrap();
        assert!(published.success());
        let done = subscriber.as_mut()?.try_wait().unwrap()?;
        Some((done, subscriber.take()?.wait_with_output().unwrap()))
    });
    let (status, output) = got.expect("the subscriber got nothing");
    assert!(status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "over tls");
    assert!(server_metric(&proxy, "tls_handshakes", "brokers") >= 2.0);
    let _ = broker.kill();
    let _ = broker.wait();
}
