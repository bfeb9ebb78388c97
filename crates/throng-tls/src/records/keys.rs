//! One direction's keys (RFC 8446 7.2, 7.3): the traffic secret, the key and IV made from it,
//! the next record's sequence number, and the AEAD context, built only while records move.
//! Secret, key and IV are wiped (`zeroize`) when they are dropped.

use super::secrets::Secret;
use super::tls_error;
use aws_lc_rs::aead::{
    Algorithm, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305,
};
use aws_lc_rs::hkdf;
use rustls::ConnectionTrafficSecrets;
use std::io;
use zeroize::{Zeroize, Zeroizing};

pub struct Keys {
    algorithm: &'static Algorithm,
    secret: Secret,
    key: [u8; 32],
    iv: [u8; 12],
    pub seq: u64,
    built: Option<LessSafeKey>,
}

impl Keys {
    /// The keys rustls made at the end of the handshake, with their secret. The key and IV are
    /// derived again from the secret and must equal what rustls handed over: the secret was
    /// captured on the side (a `KeyLog`), and a wrong one would only show at the first key
    /// update, as records that no longer open.
    pub fn new((seq, made): (u64, ConnectionTrafficSecrets), secret: Secret) -> io::Result<Keys> {
        let (algorithm, key, iv) = match &made {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key, iv),
            _ => return Err(tls_error("a cipher suite the record layer does not know")),
        };
        let keys = Keys::from_secret(algorithm, secret, seq)?;
        let derived_key = keys.key.get(..algorithm.key_len());
        if derived_key != Some(key.as_ref()) || keys.iv[..] != *iv.as_ref() {
            return Err(tls_error(
                "the captured traffic secret does not make the key rustls handed over",
            ));
        }
        Ok(keys)
    }

    /// The key and IV of `secret` (RFC 8446 7.3), from sequence number `seq` on.
    pub fn from_secret(
        algorithm: &'static Algorithm,
        secret: Secret,
        seq: u64,
    ) -> io::Result<Keys> {
        let mut keys = Keys {
            algorithm,
            key: [0; 32],
            iv: [0; 12],
            seq,
            built: None,
            secret,
        };
        let key_len = algorithm.key_len();
        let key = keys
            .key
            .get_mut(..key_len)
            .ok_or_else(|| tls_error("a key longer than 32 bytes"))?;
        expand_label(keys.secret.as_bytes(), b"key", key)?;
        expand_label(keys.secret.as_bytes(), b"iv", &mut keys.iv)?;
        Ok(keys)
    }

    /// The keys after a KeyUpdate: the next secret and what is made from it.
    pub fn next(&self) -> io::Result<Keys> {
        let secret = self.secret.as_bytes();
        let mut next = Zeroizing::new([0u8; 48]);
        let next = next
            .get_mut(..secret.len())
            .ok_or_else(|| tls_error("a secret too long"))?;
        expand_label(secret, b"traffic upd", next)?;
        let secret = Secret::new(next).ok_or_else(|| tls_error("a secret too long"))?;
        Keys::from_secret(self.algorithm, secret, 0)
    }

    #[cfg(test)]
    pub fn key_and_iv(&self) -> (&[u8], &[u8]) {
        (&self.key[..self.algorithm.key_len()], &self.iv)
    }

    /// The nonce of the next record, and its sequence number used up.
    pub fn next_nonce(&mut self) -> io::Result<Nonce> {
        let mut nonce = Zeroizing::new(self.iv);
        // The sequence number, big-endian, XORed into the IV's last 8 bytes (RFC 8446 5.3).
        for (n, s) in nonce.iter_mut().skip(4).zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| tls_error("the record sequence number ran out"))?;
        Ok(Nonce::assume_unique_for_key(*nonce))
    }

    /// The AEAD context, built if it is not.
    pub fn context(&mut self) -> io::Result<&LessSafeKey> {
        let built = match self.built.take() {
            Some(built) => built,
            None => {
                let key = self.key.get(..self.algorithm.key_len()).unwrap_or_default();
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
        self.key.zeroize();
        self.iv.zeroize();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn keys_of(algorithm: &'static Algorithm, secret: &str) -> Keys {
        Keys::from_secret(algorithm, Secret::new(&hex(secret)).unwrap(), 0).unwrap()
    }

    /// RFC 8448 section 3 (a simple 1-RTT handshake, TLS_AES_128_GCM_SHA256): the application
    /// traffic secrets and the write keys and IVs the RFC derives from them.
    #[test]
    fn rfc8448_application_keys_sha256() {
        let server = keys_of(
            &AES_128_GCM,
            "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643",
        );
        assert_eq!(
            server.key_and_iv(),
            (
                &hex("9f02283b6c9c07efc26bb9f2ac92e356")[..],
                &hex("cf782b88dd83549aadf1e984")[..]
            )
        );
        let client = keys_of(
            &AES_128_GCM,
            "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5",
        );
        assert_eq!(
            client.key_and_iv(),
            (
                &hex("17422dda596ed5d9acd890e3c63f5051")[..],
                &hex("5b78923dee08579033e523d9")[..]
            )
        );
    }

    /// SHA-384 (TLS_AES_256_GCM_SHA384), which RFC 8448 has no trace for: HKDF-Expand-Label of
    /// a 48-byte secret (bytes 0..47) as OpenSSL 3's HKDF computes it
    /// (`openssl kdf -keylen 32 -kdfopt digest:SHA384 -kdfopt mode:EXPAND_ONLY ...`).
    #[test]
    fn hkdf_expand_label_sha384_as_openssl_computes_it() {
        let secret: Vec<u8> = (0..48).collect();
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let keys = keys_of(&AES_256_GCM, &secret);
        assert_eq!(
            keys.key_and_iv(),
            (
                &hex("6877d022f1c61d24ebb7487c16752d9a4798e40431c75b39320e537c90e23225")[..],
                &hex("42822531a0fe88648fc09e9f")[..]
            )
        );
        let mut next = [0u8; 48];
        expand_label(&hex(&secret), b"traffic upd", &mut next).unwrap();
        assert_eq!(
            next.to_vec(),
            hex("401331b63e9d59f202e8f041042d9516f4cd7fa2e2ee14631d3b49fc340d7af37fc2c0c9f252d8036f81ec5b85cbe5db")
        );
        assert_eq!(keys.next().unwrap().secret.as_bytes(), &next[..]);
    }

    #[test]
    fn a_secret_that_does_not_make_the_handed_over_key_is_refused() {
        let secret: Vec<u8> = (0..48).collect();
        let made = |key: [u8; 32]| {
            let iv: [u8; 12] = hex("42822531a0fe88648fc09e9f").try_into().unwrap();
            (
                0,
                ConnectionTrafficSecrets::Aes256Gcm {
                    key: key.into(),
                    iv: iv.into(),
                },
            )
        };
        let right: [u8; 32] =
            hex("6877d022f1c61d24ebb7487c16752d9a4798e40431c75b39320e537c90e23225")
                .try_into()
                .unwrap();
        assert!(Keys::new(made(right), Secret::new(&secret).unwrap()).is_ok());
        let error = Keys::new(made([7; 32]), Secret::new(&secret).unwrap())
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("does not make the key"),
            "{error}"
        );
    }
}
