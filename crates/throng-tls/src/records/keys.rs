//! One direction's keys (RFC 8446 7.2, 7.3): the traffic secret, the key and IV made from it,
//! the next record's sequence number, and the AEAD context, built only while records move.

use super::secrets::Secret;
use super::tls_error;
use aws_lc_rs::aead::{
    Algorithm, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305,
};
use aws_lc_rs::hkdf;
use rustls::ConnectionTrafficSecrets;
use std::io;

pub struct Keys {
    algorithm: &'static Algorithm,
    secret: Secret,
    key: [u8; 32],
    iv: [u8; 12],
    pub seq: u64,
    built: Option<LessSafeKey>,
}

impl Keys {
    /// The keys rustls made at the end of the handshake, with their secret.
    pub fn new((seq, made): (u64, ConnectionTrafficSecrets), secret: Secret) -> io::Result<Keys> {
        let (algorithm, key, iv) = match &made {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key, iv),
            _ => return Err(tls_error("a cipher suite the record layer does not know")),
        };
        let mut keys = Keys {
            algorithm,
            secret,
            key: [0; 32],
            iv: [0; 12],
            seq,
            built: None,
        };
        keys.key
            .get_mut(..key.as_ref().len())
            .ok_or_else(|| tls_error("a key longer than 32 bytes"))?
            .copy_from_slice(key.as_ref());
        keys.iv.copy_from_slice(iv.as_ref());
        Ok(keys)
    }

    /// The keys after a KeyUpdate: the next secret and what is made from it.
    pub fn next(&self) -> io::Result<Keys> {
        let secret = self.secret.as_bytes();
        let mut next = [0u8; 48];
        let next = &mut next[..secret.len()];
        expand_label(secret, b"traffic upd", next)?;
        let secret = Secret::new(next).ok_or_else(|| tls_error("a secret too long"))?;
        let mut keys = Keys {
            algorithm: self.algorithm,
            key: [0; 32],
            iv: [0; 12],
            seq: 0,
            built: None,
            secret,
        };
        let key_len = self.algorithm.key_len();
        expand_label(keys.secret.as_bytes(), b"key", &mut keys.key[..key_len])?;
        expand_label(keys.secret.as_bytes(), b"iv", &mut keys.iv)?;
        Ok(keys)
    }

    /// The nonce of the next record, and its sequence number used up.
    pub fn next_nonce(&mut self) -> io::Result<Nonce> {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| tls_error("the record sequence number ran out"))?;
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    /// The AEAD context, built if it is not.
    pub fn context(&mut self) -> io::Result<&LessSafeKey> {
        let built = match self.built.take() {
            Some(built) => built,
            None => {
                let key = &self.key[..self.algorithm.key_len()];
                LessSafeKey::new(UnboundKey::new(self.algorithm, key).map_err(tls_error)?)
            }
        };
        Ok(self.built.insert(built))
    }

    /// Frees the AEAD context (about 600 B in aws-lc); the next record builds it again.
    pub fn rest(&mut self) {
        self.built = None;
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        for byte in self.key.iter_mut() {
            // SAFETY: a valid, aligned, exclusive reference to a byte of this struct.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

/// HKDF-Expand-Label(secret, label, "", out.len()) with the hash the secret's length names.
fn expand_label(secret: &[u8], label: &[u8], out: &mut [u8]) -> io::Result<()> {
    let hash = match secret.len() {
        32 => hkdf::HKDF_SHA256,
        48 => hkdf::HKDF_SHA384,
        n => return Err(tls_error(format!("a traffic secret of {n} bytes"))),
    };
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    // struct HkdfLabel { uint16 length; opaque label<7..255> = "tls13 " + label; opaque context<0..255> = ""; }
    let length = (out.len() as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&length, &label_len, b"tls13 ", label, &[0]];
    hkdf::Prk::new_less_safe(hash, secret)
        .expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| tls_error("HKDF-Expand-Label failed"))
}
