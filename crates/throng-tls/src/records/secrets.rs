//! The traffic secrets of a handshake, which rustls's kernel-TLS interface does not hand over
//! (only the keys made from them), and which a key update needs: rustls tells a `KeyLog` each
//! secret as it makes it, and [`Capture`] keeps the two traffic secrets in a slot of the thread
//! that is processing the handshake. rustls calls it inside `process_tls_records`, and the
//! caller takes the slot right after that call ([`take`]), before anything else can run on the
//! thread, so one connection never sees another's.

use rustls::KeyLog;
use std::cell::RefCell;
use std::sync::Arc;
use zeroize::Zeroize;

/// A TLS 1.3 traffic secret: as long as the suite's hash (32 or 48 bytes).
#[derive(Clone)]
pub struct Secret {
    bytes: [u8; 48],
    len: u8,
}

impl Secret {
    pub fn new(secret: &[u8]) -> Option<Secret> {
        let mut bytes = [0; 48];
        bytes.get_mut(..secret.len())?.copy_from_slice(secret);
        Some(Secret {
            bytes,
            len: secret.len() as u8,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// The first application traffic secrets of both sides.
#[derive(Default)]
pub struct TrafficSecrets {
    pub client: Option<Secret>,
    pub server: Option<Secret>,
}

impl TrafficSecrets {
    /// Keeps what `other` has.
    pub fn absorb(&mut self, other: TrafficSecrets) {
        if other.client.is_some() {
            self.client = other.client;
        }
        if other.server.is_some() {
            self.server = other.server;
        }
    }
}

const CLIENT: &str = "CLIENT_TRAFFIC_SECRET_0";
const SERVER: &str = "SERVER_TRAFFIC_SECRET_0";

thread_local! {
    static SLOT: RefCell<TrafficSecrets> = RefCell::new(TrafficSecrets::default());
}

/// The `KeyLog` that keeps traffic secrets for the thread's current handshake step.
#[derive(Debug)]
pub struct Capture;

impl KeyLog for Capture {
    fn will_log(&self, label: &str) -> bool {
        label == CLIENT || label == SERVER
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        SLOT.with(|slot| {
            let mut slot = slot.borrow_mut();
            match label {
                CLIENT => slot.client = Secret::new(secret),
                SERVER => slot.server = Secret::new(secret),
                _ => {}
            }
        });
    }
}

/// What [`Capture`] kept since the last call, on this thread.
pub fn take() -> TrafficSecrets {
    SLOT.with(|slot| std::mem::take(&mut *slot.borrow_mut()))
}

/// Readies a server configuration for connections that leave rustls after the handshake. Only
/// for configurations whose connections all run on `TlsStream`, which empties the slot after
/// each step: another driver would leave its secrets lying in it.
pub fn prepare_server(config: &mut rustls::ServerConfig) {
    config.enable_secret_extraction = true;
    config.key_log = Arc::new(Capture);
}

/// The same for a client configuration.
pub fn prepare_client(config: &mut rustls::ClientConfig) {
    config.enable_secret_extraction = true;
    config.key_log = Arc::new(Capture);
}
