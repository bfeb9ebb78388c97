//! Session tickets every process of one master can open. rustls's own ticketer makes a random
//! key per process; with `global.processes` the kernel hands a returning client to any process,
//! so with a key each only one in N resumes (7% of 105,000 over 14 processes, measured). The
//! master makes one key at start and gives it to each worker on its stdin (not in its
//! environment or command line, which other users' tools may read).
//!
//! Keys rotate as rustls's own ticketer's do: every 6 hours a new key seals tickets, and the one
//! before it still opens them (a ticket lives 6 hours, so each is honoured for its whole life),
//! while an older one does not. The processes rotate together without talking to each other:
//! the key of period `p` (Unix time / 6 h) is HKDF-SHA256 of the master's secret with `p` in its
//! info, so every worker derives the same key for the same period. A leaked period key opens
//! at most 12 hours of tickets, not those of the proxy's whole life.
//!
//! A ticket is the period (8 bytes, big-endian, also the AEAD's additional data), a random
//! 96-bit nonce, then the AES-256-GCM ciphertext and its tag. The master's secret lives as long
//! as the master; restarting the proxy makes a new one.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use std::sync::{Arc, OnceLock};
use zeroize::Zeroizing;

/// The length of a shared ticket key.
pub const KEY_LEN: usize = 32;

/// How long a ticket is honoured, as rustls's own ticketer: 6 hours.
const LIFETIME_SECONDS: u32 = 6 * 3600;
/// How often the sealing key changes, as rustls's own ticketer: every ticket lifetime.
const ROTATION_SECONDS: u64 = LIFETIME_SECONDS as u64;
/// The period's place at the front of a ticket.
const PERIOD_LEN: usize = 8;

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
    let mut line = throng_net::hex::encode(key).into_bytes();
    line.push(b'\n');
    line
}

/// The key in such a line.
pub fn from_line(line: &str) -> Option<[u8; KEY_LEN]> {
    throng_net::hex::decode(line.trim())?.try_into().ok()
}

/// Makes every TLS configuration built after this seal tickets under `key` (a worker, before it
/// reads its configuration).
pub fn share(key: [u8; KEY_LEN]) {
    let _ = SHARED_KEY.set(key);
}

/// The shared key, if the process has one (to hand to a new binary on upgrade).
pub fn shared_key() -> Option<[u8; KEY_LEN]> {
    SHARED_KEY.get().copied()
}

/// The ticketer for a frontend: under the master's key when there is one, else rustls's own.
pub fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, String> {
    match SHARED_KEY.get() {
        Some(key) => Ok(Arc::new(Shared::new(key)?)),
        None => rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| e.to_string()),
    }
}

/// Tickets sealed under keys derived from a secret the processes share, one key per period.
struct Shared {
    root: hkdf::Prk,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared ticket keys")
    }
}

/// The rotation period a moment falls in.
fn period_of(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / ROTATION_SECONDS)
}

fn period_now() -> u64 {
    period_of(std::time::SystemTime::now())
}

impl Shared {
    fn new(secret: &[u8; KEY_LEN]) -> Result<Shared, String> {
        Ok(Shared {
            root: hkdf::Salt::new(hkdf::HKDF_SHA256, b"throng session tickets").extract(secret),
        })
    }

    /// The key of `period`: the same in every process that holds the same secret.
    fn key(&self, period: u64) -> Option<LessSafeKey> {
        let info = period.to_be_bytes();
        let info: [&[u8]; 2] = [b"throng ticket key for period ", &info];
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        self.root
            .expand(&info, &AES_256_GCM)
            .and_then(|okm| okm.fill(&mut bytes[..]))
            .ok()?;
        UnboundKey::new(&AES_256_GCM, &bytes[..])
            .ok()
            .map(LessSafeKey::new)
    }

    /// Seals `plain` under the key of `period`.
    fn seal(&self, plain: &[u8], period: u64) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(PERIOD_LEN + NONCE_LEN + plain.len() + 16);
        ticket.extend_from_slice(&period.to_be_bytes());
        ticket.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        self.key(period)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(period.to_be_bytes()),
                &mut sealed,
            )
            .ok()?;
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    /// Opens a ticket sealed in period `now` or the one before.
    fn open(&self, ticket: &[u8], now: u64) -> Option<Vec<u8>> {
        if ticket.len() < PERIOD_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (period, rest) = ticket.split_at(PERIOD_LEN);
        let period = u64::from_be_bytes(period.try_into().ok()?);
        if period != now && period.checked_add(1) != Some(now) {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut opened = sealed.to_vec();
        let plain = self
            .key(period)?
            .open_in_place(nonce, Aad::from(period.to_be_bytes()), &mut opened)
            .ok()?;
        Some(plain.to_vec())
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
        self.seal(plain, period_now())
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        self.open(ticket, period_now())
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
        let mut moved = ticket.clone();
        moved[7] ^= 1; // another period: another key, and the period is authenticated
        assert!(two.decrypt(&moved).is_none());
        assert_ne!(
            one.encrypt(b"x").unwrap(),
            one.encrypt(b"x").unwrap(),
            "fresh nonces"
        );
        let line = String::from_utf8(to_line(&key)).unwrap();
        assert_eq!(from_line(&line), Some(key));
        assert_eq!(from_line("zz"), None);
    }

    #[test]
    fn keys_rotate_each_period_and_the_previous_still_opens() {
        let shared = Shared::new(&new_key().unwrap()).unwrap();
        let other_process = Shared::new(&new_key().unwrap()).unwrap();
        let now = period_now();
        let ticket = shared.seal(b"state", now).unwrap();
        assert_eq!(shared.open(&ticket, now).unwrap(), b"state");
        assert_eq!(
            shared.open(&ticket, now + 1).unwrap(),
            b"state",
            "previous key"
        );
        assert!(
            shared.open(&ticket, now + 2).is_none(),
            "two periods on: expired"
        );
        assert!(shared.open(&ticket, now - 1).is_none(), "from the future");
        assert!(other_process.open(&ticket, now).is_none());
        // Each period seals under a key of its own.
        let next = shared.seal(b"state", now + 1).unwrap();
        let mut relabelled = next.clone();
        relabelled[..PERIOD_LEN].copy_from_slice(&now.to_be_bytes());
        assert!(shared.open(&relabelled, now + 1).is_none());
        assert_eq!(
            period_of(std::time::UNIX_EPOCH + std::time::Duration::from_secs(6 * 3600 * 10 + 5)),
            10
        );
    }
}
