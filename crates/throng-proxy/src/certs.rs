//! The frontends' TLS: one or more certificates, the one to use chosen by the name the client
//! asks for (SNI), the first when it asks for none or for a name no certificate holds.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::sync::Arc;

/// A server configuration offering `alpn`, with `certified` (chain and key) chosen by SNI; TLS
/// 1.3 connections leave rustls for throng's record layer after the handshake if `own_records`.
pub fn server_config(
    certified: Vec<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: &[String],
    groups: &[String],
    own_records: bool,
) -> Result<Arc<ServerConfig>, String> {
    let provider = throng_tls::config::provider(groups)?;
    let mut keys = Vec::new();
    for (i, (chain, key)) in certified.into_iter().enumerate() {
        let key = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| format!("certificate {} and its key do not go together: {e}", i + 1))?;
        keys.push(Arc::new(key));
    }
    let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { keys }));
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // TLS 1.3 connections leave rustls after the handshake (throng_tls::records) unless the
    // frontend says `record_layer = "rustls"`: without captured secrets they stay with rustls.
    if own_records {
        throng_tls::records::secrets::prepare_server(&mut config);
    }
    // TLS 1.2: the server's order of cipher suites (rustls's: AEADs, forward secrecy first),
    // not the client's, as HAProxy's `prefer-server-ciphers` (TLS 1.3 suites are all strong).
    config.ignore_client_order = true;
    // Stateless resumption (tickets), as HAProxy offers by default: a returning client skips
    // the full handshake and the proxy keeps no per-client session cache. Under the master's
    // key when there are several processes, so that any of them resumes any client.
    config.ticketer = crate::tickets::ticketer()?;
    Ok(Arc::new(config))
}

/// The largest certificate chain or key file `set cert` reads.
const MAX_PEM: u64 = 1 << 20;

/// `config` serving the certificate chain and key in `cert` and `key` (PEM files) instead of
/// its own; everything else (protocols, tickets, record layer) stays.
pub fn with_certificate(
    config: &Arc<ServerConfig>,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<ServerConfig>, String> {
    // Regular files of a sane size only: the admin listener must not hang on a pipe or a
    // device, nor read a huge file, on the runtime that also watches signals.
    let read = |path: &std::path::Path| {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() || meta.len() > MAX_PEM {
            return Err(format!(
                "{}: not a regular file of at most {} KiB",
                path.display(),
                MAX_PEM >> 10
            ));
        }
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let chain = throng_tls::config::parse_certs(&read(cert)?)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let private = throng_tls::config::parse_key(&read(key)?)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let certified =
        CertifiedKey::from_der(chain, private, config.crypto_provider()).map_err(|e| {
            format!(
                "{} and {} do not go together: {e}",
                cert.display(),
                key.display()
            )
        })?;
    let mut replaced = (**config).clone();
    replaced.cert_resolver = Arc::new(BySni {
        keys: vec![Arc::new(certified)],
    });
    Ok(Arc::new(replaced))
}

#[derive(Debug)]
struct BySni {
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let first = self.keys.first()?;
        if self.keys.len() == 1 {
            return Some(Arc::clone(first));
        }
        let wanted = hello
            .server_name()
            .and_then(|name| ServerName::try_from(name).ok());
        let chosen = wanted.and_then(|name| {
            self.keys.iter().find(|key| {
                key.end_entity_cert()
                    .ok()
                    .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
                    .is_some_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        Some(Arc::clone(chosen.unwrap_or(first)))
    }
}
