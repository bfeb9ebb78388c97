//! TLS set-up with rustls (aws-lc-rs): server and client configurations, self-signed ECDSA
//! certificates, PEM loading. Connections run on [`crate::stream`] (rustls's unbuffered
//! API); [`Socket`] adapts a tokio socket for code that drives a buffered rustls connection
//! itself (`throng pong`'s state machine).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;

/// Where Debian (and most Linux systems) keep the trusted roots.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The key-exchange groups by name, as `--tls-groups` spells them.
pub const GROUP_NAMES: [&str; 4] = ["x25519mlkem768", "x25519", "secp256r1", "secp384r1"];

fn group(name: &str) -> Option<&'static dyn SupportedKxGroup> {
    use aws_lc_rs::kx_group;
    match name.to_ascii_lowercase().as_str() {
        "x25519mlkem768" => Some(kx_group::X25519MLKEM768),
        "x25519" => Some(kx_group::X25519),
        "secp256r1" | "p256" | "p-256" => Some(kx_group::SECP256R1),
        "secp384r1" | "p384" | "p-384" => Some(kx_group::SECP384R1),
        _ => None,
    }
}

/// The aws-lc-rs provider, limited to `groups` (in preference order) when any are named.
pub fn provider(groups: &[String]) -> Result<Arc<CryptoProvider>, String> {
    let mut provider = aws_lc_rs::default_provider();
    if !groups.is_empty() {
        provider.kx_groups = groups
            .iter()
            .map(|name| {
                group(name).ok_or_else(|| {
                    format!(
                        "unknown key-exchange group `{name}` (use {})",
                        GROUP_NAMES.join(", ")
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(Arc::new(provider))
}

/// A self-signed ECDSA P-256 certificate for `names`: (certificate PEM, private key PEM).
pub fn self_signed(names: &[&str]) -> Result<(String, String), String> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("key: {e}"))?;
    let params = rcgen::CertificateParams::new(names).map_err(|e| format!("certificate: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Certificates from PEM text in memory.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// The first private key in PEM text in memory.
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no private key read: {e}"))
}

/// The largest PEM file read: a system's whole CA bundle is a few hundred KiB.
const MAX_PEM_FILE: u64 = 4 * 1024 * 1024;

/// A PEM file's bytes: a regular file of at most [`MAX_PEM_FILE`] (a path a configuration names
/// could be `/dev/zero`, a FIFO or a huge file, and reading it would not end).
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(format!(
            "{}: {} bytes, over the {MAX_PEM_FILE} a PEM file may have",
            path.display(),
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_PEM_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// Certificates from a PEM file, with the file named in errors.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    parse_certs(&read_pem(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    parse_key(&read_pem(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// A server configuration from PEM certificate chain and key, offering `alpn` protocols.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
    groups: &[String],
) -> Result<Arc<ServerConfig>, String> {
    let mut config = ServerConfig::builder_with_provider(provider(groups)?)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not go together: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // TLS 1.2 takes the server's order of cipher suites, as the proxy's frontends do.
    config.ignore_client_order = true;
    // Not readied for throng's record layer (`records::secrets::prepare_server`): its users
    // (pong) drive rustls's buffered connections, which would leave secrets in the capture slot.
    Ok(Arc::new(config))
}

/// How the client side of TLS is set up: vegeta's `-insecure`, `-root-certs`, `-cert`/`-key`,
/// and throng's resumption and group choices.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Accept any server certificate (signatures are still checked).
    pub insecure: bool,
    /// PEM files of trusted roots; none means the system's.
    pub root_certs: Vec<PathBuf>,
    /// A client certificate chain and its key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Resume sessions (tickets and IDs), shared by every connection of the process.
    pub resume: bool,
    pub groups: Vec<String>,
    pub alpn: Vec<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            root_certs: Vec::new(),
            client_cert: None,
            resume: true,
            groups: Vec::new(),
            alpn: vec![b"http/1.1".to_vec()],
        }
    }
}

/// One client configuration, shared by every connection so that sessions resume.
pub fn client_config(options: &ClientOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = provider(&options.groups)?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        let files = if options.root_certs.is_empty() {
            vec![PathBuf::from(SYSTEM_ROOTS)]
        } else {
            options.root_certs.clone()
        };
        for file in &files {
            for cert in load_certs(file)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &options.client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| format!("client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = options.alpn.clone();
    // TLS 1.3 connections leave rustls after the handshake (throng_tls::records).
    crate::records::secrets::prepare_client(&mut config);
    if !options.resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// `-insecure`: any certificate is accepted, but handshake signatures are still verified, so the
/// handshake costs what a real one does.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client connection to `host` (a name gets SNI; an IP address does not) on rustls's
/// unbuffered API, for [`crate::stream`].
pub fn connect_unbuffered(
    config: &Arc<ClientConfig>,
    host: &str,
) -> Result<rustls::client::UnbufferedClientConnection, String> {
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("`{host}`: {e}"))?;
    rustls::client::UnbufferedClientConnection::new(Arc::clone(config), name)
        .map_err(|e| e.to_string())
}

/// Why a TLS exchange failed: the socket, or TLS itself (bad certificate, alert, garbage).
#[derive(Debug)]
pub enum TlsFailure {
    Io(io::Error),
    Tls(String),
}

impl From<io::Error> for TlsFailure {
    fn from(error: io::Error) -> Self {
        TlsFailure::Io(error)
    }
}

impl TlsFailure {
    /// Sorts an error from [`crate::stream`]: `InvalidData` is TLS's own (certificate,
    /// alert, garbage), anything else the socket's.
    pub fn from_stream(error: io::Error) -> TlsFailure {
        if error.kind() == io::ErrorKind::InvalidData {
            TlsFailure::Tls(error.to_string())
        } else {
            TlsFailure::Io(error)
        }
    }
}

/// `io::Read`/`io::Write` over a non-blocking tokio socket, for rustls's `read_tls`/`write_tls`:
/// `WouldBlock` when the socket is not ready.
pub struct Socket<'a>(pub &'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        throng_net::sockets::read_now(self.0, buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_path_that_is_no_regular_file_is_refused_not_read() {
        for path in ["/dev/zero", "/"] {
            let error = load_certs(Path::new(path)).unwrap_err();
            assert!(error.starts_with(path), "{error}");
            assert!(load_key(Path::new(path)).is_err());
        }
        assert!(load_certs(Path::new("/dev/zero"))
            .unwrap_err()
            .contains("not a regular file"));
    }

    #[test]
    fn a_self_signed_certificate_makes_a_server_config() {
        let (cert, key) = self_signed(&["localhost", "127.0.0.1"]).unwrap();
        let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        assert!(server_config(certs, key, &[b"http/1.1"], &[]).is_ok());
    }

    #[test]
    fn groups_are_chosen_by_name() {
        let chosen = provider(&["x25519".into()]).unwrap();
        assert_eq!(chosen.kx_groups.len(), 1);
        assert!(provider(&["nope".into()])
            .unwrap_err()
            .contains("unknown key-exchange group"));
    }

    #[test]
    fn missing_files_are_named() {
        let options = ClientOptions {
            root_certs: vec!["/no/such/roots.pem".into()],
            ..ClientOptions::default()
        };
        assert!(client_config(&options)
            .unwrap_err()
            .contains("/no/such/roots.pem"));
    }
}
