//! Session tickets every process of one master can open. rustls's own ticketer makes a random
//! key per process; with `global.processes` the kernel hands a returning client to any process,
//! so with a key each only one in N resumes (7% of 105,000 over 14 processes, measured). The
//! master makes one key at start and gives it to each worker on its stdin (not in its
//! environment or command line, which other users' tools may read).
//!
//! Tickets are sealed with AES-256-GCM: a random 96-bit nonce, then the ciphertext and its tag.
//! The key lives as long as the master; restarting the proxy makes a new one.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use std::sync::{Arc, OnceLock};

/// The length of a shared ticket key.
pub const KEY_LEN: usize = 32;

/// How long a ticket is honoured, as rustls's own ticketer: 6 hours.
const LIFETIME_SECONDS: u32 = 6 * 3600;

/// The key of this process's master, when it has one.
static SHARED_KEY: OnceLock<[u8; KEY_LEN]> = OnceLock::new();

/// A fresh random key, for a master to hand to its workers.
pub fn new_key() -> Result<[u8; KEY_LEN], String> {
    let mut key = [0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| "no randomness for the ticket key".to_string())?;
    Ok(key)
}

/// A key as the line a master writes to its worker's stdin: hex, then a newline.
pub fn to_line(key: &[u8; KEY_LEN]) -> Vec<u8> {
    let mut line: Vec<u8> = key
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect();
    line.push(b'\n');
    line
}

/// The key in such a line.
pub fn from_line(line: &str) -> Option<[u8; KEY_LEN]> {
    let hex = line.trim();
    if hex.len() != 2 * KEY_LEN || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// Makes every TLS configuration built after this seal tickets under `key` (a worker, before it
/// reads its configuration).
pub fn share(key: [u8; KEY_LEN]) {
    let _ = SHARED_KEY.set(key);
}

/// The ticketer for a frontend: under the master's key when there is one, else rustls's own.
pub fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, String> {
    match SHARED_KEY.get() {
        Some(key) => Ok(Arc::new(Shared::new(key)?)),
        None => rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| e.to_string()),
    }
}

/// Tickets sealed under a key shared by the processes.
struct Shared {
    key: LessSafeKey,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared ticket key")
    }
}

impl Shared {
    fn new(key: &[u8; KEY_LEN]) -> Result<Shared, String> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| "bad ticket key".to_string())?;
        Ok(Shared {
            key: LessSafeKey::new(key),
        })
    }
}

impl rustls::server::ProducesTickets for Shared {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECONDS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .ok()?;
        let mut ticket = Vec::with_capacity(NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, sealed) = ticket.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut opened = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut opened)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn a_ticket_opens_under_the_same_key_only() {
        let key = new_key().unwrap();
        let (one, two) = (Shared::new(&key).unwrap(), Shared::new(&key).unwrap());
        let ticket = one.encrypt(b"session state").unwrap();
        assert_eq!(two.decrypt(&ticket).unwrap(), b"session state");
        let other = Shared::new(&new_key().unwrap()).unwrap();
        assert!(other.decrypt(&ticket).is_none());
        let mut tampered = ticket.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(two.decrypt(&tampered).is_none());
        assert!(two.decrypt(&ticket[..10]).is_none());
        assert_ne!(
            one.encrypt(b"x").unwrap(),
            one.encrypt(b"x").unwrap(),
            "fresh nonces"
        );
        let line = String::from_utf8(to_line(&key)).unwrap();
        assert_eq!(from_line(&line), Some(key));
        assert_eq!(from_line("zz"), None);
    }
}
