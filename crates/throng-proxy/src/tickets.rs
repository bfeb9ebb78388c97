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
//! as the master (restarting the proxy makes a new one) unless the operator rotates it
//! (`rotate tickets`, HAProxy's `set ssl tls-key`): a new secret then seals, and the one before
//! still opens tickets until the next rotation, so no client loses its session to a rotation.
//! A master hands both to its workers (a restarted worker too) and an old binary to the new
//! one. Secrets are wiped when replaced or dropped.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// The length of a shared ticket secret.
pub const KEY_LEN: usize = 32;

/// How long a ticket is honoured, as rustls's own ticketer: 6 hours.
const LIFETIME_SECONDS: u32 = 6 * 3600;
/// How often the sealing key changes, as rustls's own ticketer: every ticket lifetime.
const ROTATION_SECONDS: u64 = LIFETIME_SECONDS as u64;
/// The period's place at the front of a ticket.
const PERIOD_LEN: usize = 8;

/// A ticket secret, wiped when dropped.
pub type Secret = Zeroizing<[u8; KEY_LEN]>;

/// The secrets of this process: the one that seals, and the one before it (after a rotation).
#[derive(Clone)]
pub struct Secrets {
    pub current: Secret,
    pub previous: Option<Secret>,
}

static SECRETS: RwLock<Option<Secrets>> = RwLock::new(None);

/// A fresh random secret.
pub fn new_key() -> Result<Secret, String> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    aws_lc_rs::rand::fill(&mut key[..])
        .map_err(|_| "no randomness for the ticket key".to_string())?;
    Ok(key)
}

/// The secrets as the line a master writes to its worker's stdin (and an old binary to the
/// new one): the current one in hex, then the previous one if any, then a newline.
pub fn to_line(secrets: &Secrets) -> Vec<u8> {
    let mut line = throng_net::hex::encode(&secrets.current[..]);
    if let Some(previous) = &secrets.previous {
        line.push(' ');
        line.push_str(&throng_net::hex::encode(&previous[..]));
    }
    line.push('\n');
    line.into_bytes()
}

/// The secrets in such a line.
pub fn from_line(line: &str) -> Option<Secrets> {
    let mut words = line.split_whitespace();
    let secret = |word: &str| -> Option<Secret> {
        let bytes = Zeroizing::new(throng_net::hex::decode(word)?);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(bytes.get(..KEY_LEN).filter(|_| bytes.len() == KEY_LEN)?);
        Some(key)
    };
    let current = secret(words.next()?)?;
    let previous = match words.next() {
        Some(word) => Some(secret(word)?),
        None => None,
    };
    words
        .next()
        .is_none()
        .then_some(Secrets { current, previous })
}

/// Makes every TLS configuration seal tickets under `secrets` (a worker, before it reads its
/// configuration; a process started by hand, with a fresh one).
pub fn share(secrets: Secrets) {
    *SECRETS.write().unwrap_or_else(|e| e.into_inner()) = Some(secrets);
}

/// `rotate tickets`: `next` seals from now on, and the secret it replaces still opens tickets
/// until the next rotation; the one before that is wiped.
pub fn rotate(next: Secret) {
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    let previous = secrets.take().map(|s| s.current);
    *secrets = Some(Secrets {
        current: next,
        previous,
    });
}

/// This process's secrets, if it shares any (to hand to workers and a new binary).
pub fn shared() -> Option<Secrets> {
    SECRETS.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The ticketer for a frontend: under the shared secrets when there are some, else rustls's
/// own. It reads the secrets at each ticket, so a rotation reaches every configuration.
pub fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, String> {
    match shared() {
        Some(_) => Ok(Arc::new(Shared)),
        None => rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| e.to_string()),
    }
}

/// Tickets sealed under keys derived from the secrets the processes share, one key per period.
struct Shared;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared ticket keys")
    }
}

/// The keys of one secret, one per period.
struct Root(hkdf::Prk);

/// The rotation period a moment falls in.
fn period_of(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / ROTATION_SECONDS)
}

fn period_now() -> u64 {
    period_of(std::time::SystemTime::now())
}

impl Root {
    fn new(secret: &[u8; KEY_LEN]) -> Root {
        Root(hkdf::Salt::new(hkdf::HKDF_SHA256, b"throng session tickets").extract(secret))
    }

    /// The key of `period`: the same in every process that holds the same secret.
    fn key(&self, period: u64) -> Option<LessSafeKey> {
        let info = period.to_be_bytes();
        let info: [&[u8]; 2] = [b"throng ticket key for period ", &info];
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        self.0
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
        let secrets = shared()?;
        Root::new(&secrets.current).seal(plain, period_now())
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let secrets = shared()?;
        let now = period_now();
        Root::new(&secrets.current).open(ticket, now).or_else(|| {
            let previous = secrets.previous.as_ref()?;
            Root::new(previous).open(ticket, now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn a_ticket_opens_under_the_same_key_only() {
        let key = new_key().unwrap();
        let (one, two) = (Root::new(&key), Root::new(&key));
        let now = period_now();
        let ticket = one.seal(b"session state", now).unwrap();
        assert_eq!(two.open(&ticket, now).unwrap(), b"session state");
        let other = Root::new(&new_key().unwrap());
        assert!(other.open(&ticket, now).is_none());
        let mut tampered = ticket.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(two.open(&tampered, now).is_none());
        assert!(two.open(&ticket[..10], now).is_none());
        let mut moved = ticket.clone();
        moved[7] ^= 1; // another period: another key, and the period is authenticated
        assert!(two.open(&moved, now).is_none());
        assert_ne!(
            one.seal(b"x", now).unwrap(),
            one.seal(b"x", now).unwrap(),
            "fresh nonces"
        );
        let secrets = Secrets {
            current: key.clone(),
            previous: Some(new_key().unwrap()),
        };
        let line = String::from_utf8(to_line(&secrets)).unwrap();
        let back = from_line(&line).unwrap();
        assert_eq!(back.current, secrets.current);
        assert_eq!(back.previous, secrets.previous);
        let alone = from_line(
            &String::from_utf8(to_line(&Secrets {
                current: key.clone(),
                previous: None,
            }))
            .unwrap(),
        )
        .unwrap();
        assert!(alone.previous.is_none());
        assert!(from_line("zz").is_none());
        assert!(from_line(&format!("{} {} x", "00".repeat(32), "11".repeat(32))).is_none());
    }

    #[test]
    fn keys_rotate_each_period_and_the_previous_still_opens() {
        let shared = Root::new(&new_key().unwrap());
        let other_process = Root::new(&new_key().unwrap());
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

    /// A rotation: tickets sealed before it still open (under the previous secret), new ones
    /// are sealed under the new secret; a second rotation lets the first secret go.
    #[test]
    fn a_rotation_keeps_the_previous_secret_for_opening() {
        share(Secrets {
            current: new_key().unwrap(),
            previous: None,
        });
        let before = Shared.encrypt(b"before").unwrap();
        rotate(new_key().unwrap());
        assert_eq!(Shared.decrypt(&before).unwrap(), b"before");
        let after = Shared.encrypt(b"after").unwrap();
        let secrets = shared().unwrap();
        assert!(Root::new(&secrets.current)
            .open(&after, period_now())
            .is_some());
        rotate(new_key().unwrap());
        assert!(Shared.decrypt(&before).is_none(), "two rotations on");
        assert_eq!(Shared.decrypt(&after).unwrap(), b"after");
    }
}
