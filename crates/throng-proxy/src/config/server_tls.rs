//! TLS toward servers: a backend's `tls` table, and a server's own `tls` keys over it (HAProxy's
//! `ssl verify required ca-file ... sni ... alpn ... crt ...` on `default-server` and `server`).
//! Everything is read and checked at load: the CA and client certificate files, the name, the
//! protocols offered; what a server's connections then use is one rustls client configuration
//! per server, with its own session cache so that each server resumes its own sessions.

use super::file;
use super::locate::KeyPath;
use super::Mode;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use throng_tls::config as tls;

type Failure = (KeyPath, String);

/// Sessions kept per server for resumption: a server has one name, and rustls keeps a few
/// tickets under each.
const SESSIONS_PER_SERVER: usize = 4;

/// What a server's TLS connections are made with.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub config: Arc<rustls::ClientConfig>,
    /// `sni`: sent, and what the certificate must name. Without it nothing is sent and the
    /// certificate must name the server's IP address.
    pub sni: Option<ServerName<'static>>,
    /// Whether the certificate is verified (`verify = "required"`).
    pub verify: bool,
    /// Whether sessions are resumed (`resume`, on by default).
    pub resume: bool,
}

impl ServerTls {
    /// The name the handshake with the server at `address` sends and verifies.
    pub fn name_for(&self, address: SocketAddr) -> ServerName<'static> {
        self.sni
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(address.ip().into()))
    }

    /// The same configuration with a session cache of its own (for another server).
    pub fn own_sessions(&self) -> ServerTls {
        let mut config = (*self.config).clone();
        if self.resume {
            config.resumption = rustls::client::Resumption::in_memory_sessions(SESSIONS_PER_SERVER);
        }
        ServerTls {
            config: Arc::new(config),
            ..self.clone()
        }
    }
}

/// A server's table over its backend's: each key the server gives wins.
pub(super) fn layered(
    backend: Option<&file::ServerTls>,
    server: Option<&file::ServerTls>,
) -> Option<file::ServerTls> {
    let (backend, server) = match (backend, server) {
        (None, None) => return None,
        (Some(only), None) | (None, Some(only)) => return Some(only.clone()),
        (Some(backend), Some(server)) => (backend, server),
    };
    let server = server.clone();
    Some(file::ServerTls {
        verify: server.verify.or_else(|| backend.verify.clone()),
        ca: server.ca.or_else(|| backend.ca.clone()),
        sni: server.sni.or_else(|| backend.sni.clone()),
        alpn: server.alpn.or_else(|| backend.alpn.clone()),
        cert: server.cert.or_else(|| backend.cert.clone()),
        key: server.key.or_else(|| backend.key.clone()),
        resume: server.resume.or(backend.resume),
    })
}

/// Checks `t` (at `at`) and makes its client configuration; paths are relative to `base`.
pub(super) fn build(
    t: &file::ServerTls,
    mode: Mode,
    base: &Path,
    at: &KeyPath,
) -> Result<ServerTls, Failure> {
    let verify = match t.verify.as_deref() {
        None | Some("required") => true,
        Some("none") => false,
        Some(other) => {
            return Err((
                at.key("verify"),
                format!("`{other}`: use required (the default) or none"),
            ))
        }
    };
    let mut root_certs = Vec::new();
    match (&t.ca, verify) {
        (Some(ca), _) => {
            let path = base.join(ca);
            tls::load_certs(&path).map_err(|e| (at.key("ca"), e))?;
            root_certs.push(path);
        }
        (None, true) => {
            return Err((
                at.key("ca"),
                "verify = \"required\" needs the CA that signs the servers' certificates: ca = \"FILE\" (or verify = \"none\", which trusts any server)".into(),
            ))
        }
        (None, false) => {}
    }
    let client_cert = match (&t.cert, &t.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let (cert, key) = (base.join(cert), base.join(key));
            tls::load_certs(&cert).map_err(|e| (at.key("cert"), e))?;
            tls::load_key(&key).map_err(|e| (at.key("key"), e))?;
            Some((cert, key))
        }
        (Some(_), None) => {
            return Err((at.key("cert"), "a client certificate needs its key".into()))
        }
        (None, Some(_)) => return Err((at.key("key"), "a key needs its certificate: cert".into())),
    };
    let sni = t
        .sni
        .as_deref()
        .map(|name| {
            ServerName::try_from(name.to_string())
                .map_err(|e| (at.key("sni"), format!("`{name}`: {e}")))
        })
        .transpose()?;
    let alpn = match (&t.alpn, mode) {
        (None, Mode::Http) => vec![b"http/1.1".to_vec()],
        (None, _) => Vec::new(),
        (Some(list), mode) => {
            let mut alpn = Vec::new();
            for (i, protocol) in list.iter().enumerate() {
                if protocol.is_empty() || protocol.len() > 255 {
                    return Err((at.key("alpn").index(i), "1 to 255 bytes".into()));
                }
                if mode == Mode::Http && protocol != "http/1.1" {
                    return Err((
                        at.key("alpn").index(i),
                        format!("`{protocol}`: an HTTP backend speaks http/1.1 to its servers (HTTP/2 toward servers is not built yet)"),
                    ));
                }
                alpn.push(protocol.as_bytes().to_vec());
            }
            alpn
        }
    };
    let resume = t.resume.unwrap_or(true);
    let options = tls::ClientOptions {
        insecure: !verify,
        root_certs,
        client_cert,
        resume,
        groups: Vec::new(),
        alpn,
    };
    let config = tls::client_config(&options).map_err(|e| (at.clone(), e))?;
    Ok(ServerTls {
        config,
        sni,
        verify,
        resume,
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// A directory with a CA file (`ca.pem`) and a client certificate and key, for `tls` keys
    /// to name.
    fn files() -> PathBuf {
        static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        MADE.get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("throng-server-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let (cert, key) = throng_tls::config::self_signed(&["backend.test"]).unwrap();
            std::fs::write(dir.join("ca.pem"), &cert).unwrap();
            std::fs::write(dir.join("client.pem"), &cert).unwrap();
            std::fs::write(dir.join("client.key"), &key).unwrap();
            dir
        })
        .clone()
    }

    fn parse(
        mode: &str,
        backend_tls: &str,
        server_tls: &str,
    ) -> Result<crate::config::Config, String> {
        let text = format!(
            "[frontends.web]\nbind = [\"127.0.0.1:8080\"]\nmode = \"{mode}\"\ndefault_backend = \"app\"\n\n\
             [backends.app]\nmode = \"{mode}\"\n{backend_tls}\n\
             servers = [\n  {{ name = \"a\", address = \"127.0.0.1:9000-9001\" }},\n  {{ name = \"b\", address = \"127.0.0.1:9002\"{server_tls} }},\n]\n"
        );
        crate::config::parse(&text, "tls.toml", &files()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_server_takes_its_backends_tls_and_its_own_keys_over_it() {
        let config = parse(
            "http",
            "tls = { ca = \"ca.pem\", sni = \"backend.test\" }",
            ", tls = { sni = \"b.test\", cert = \"client.pem\", key = \"client.key\" }",
        )
        .unwrap();
        let servers = &config.backends[0].servers;
        let name = |i: usize| {
            let server = &servers[i];
            let tls = server.tls.as_ref().unwrap();
            assert!(tls.verify && tls.resume);
            tls.name_for(server.address).to_str().into_owned()
        };
        assert_eq!(
            [name(0), name(1), name(2)],
            ["backend.test", "backend.test", "b.test"]
        );
        // Each server (each port of a range too) resumes its own sessions.
        let config_of = |i: usize| std::sync::Arc::as_ptr(&servers[i].tls.as_ref().unwrap().config);
        assert_ne!(config_of(0), config_of(1));
        assert_eq!(
            config.backends[0]
                .tls
                .as_ref()
                .unwrap()
                .config
                .alpn_protocols,
            [b"http/1.1".to_vec()],
            "an HTTP backend offers http/1.1"
        );
        // Without sni, the server's own address is what its certificate must name.
        let config = parse("tcp", "tls = { ca = \"ca.pem\", resume = false }", "").unwrap();
        let server = &config.backends[0].servers[2];
        let tls = server.tls.as_ref().unwrap();
        assert_eq!(tls.name_for(server.address).to_str(), "127.0.0.1");
        assert!(!tls.resume && tls.config.alpn_protocols.is_empty());
    }

    #[test]
    fn bad_tls_keys_name_their_file_line_and_key() {
        for (mode, backend, server, wanted) in [
            (
                "http",
                "tls = { sni = \"x.test\" }",
                "",
                "tls.toml:8: backends.app.tls.ca: verify = \"required\" needs the CA",
            ),
            (
                "http",
                "tls = { verify = \"maybe\" }",
                "",
                "backends.app.tls.verify: `maybe`: use required (the default) or none",
            ),
            (
                "http",
                "tls = { ca = \"missing.pem\" }",
                "",
                "backends.app.tls.ca: ",
            ),
            (
                "http",
                "tls = { verify = \"none\", alpn = [\"h2\"] }",
                "",
                "backends.app.tls.alpn[0]: `h2`: an HTTP backend speaks http/1.1",
            ),
            (
                "mqtt",
                "tls = { verify = \"none\", alpn = [\"\"] }",
                "",
                "backends.app.tls.alpn[0]: 1 to 255 bytes",
            ),
            (
                "http",
                "",
                ", tls = { ca = \"ca.pem\", cert = \"client.pem\" }",
                "tls.toml:11: backends.app.servers[1].tls.cert: a client certificate needs its key",
            ),
            (
                "http",
                "",
                ", tls = { ca = \"ca.pem\", sni = \"not a name\" }",
                "backends.app.servers[1].tls.sni: `not a name`",
            ),
            (
                "http",
                "tls = { ca = \"ca.pem\", colour = \"blue\" }",
                "",
                "unknown field `colour`",
            ),
        ] {
            let error = parse(mode, backend, server).unwrap_err();
            assert!(error.contains(wanted), "{backend}{server}: {error}");
        }
    }

    #[test]
    fn the_ca_file_is_read_from_the_configurations_folder() {
        let error = crate::config::parse(
            "[frontends.web]\nbind = [\"127.0.0.1:8080\"]\ndefault_backend = \"app\"\n\n\
             [backends.app]\ntls = { ca = \"ca.pem\" }\nservers = [{ name = \"a\", address = \"127.0.0.1:9000\" }]\n",
            "elsewhere.toml",
            Path::new("/nonexistent"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
