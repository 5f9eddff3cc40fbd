//! Values hop puts in Redis, signed with the cluster key (`--cluster-key`),
//! which is never stored in Redis. Anyone who can write to Redis can then
//! still delete or replay what is there, but not forge a cached link, an
//! invalidation, a live event or a click, nor learn the visitor salts or
//! the rate-limit key (they are derived from what Redis holds and the key).
//!
//! A sealed value is `base64url(HMAC-SHA256(key, context ‖ 0 ‖ payload)).payload`.
//! The context names what the value is and where it lives (the Redis key or
//! channel), so a value signed for one place is refused in another.
//!
//! Values that hold personal data (click events carry the client's raw
//! address until a worker stores them) are encrypted instead, with
//! XChaCha20-Poly1305 under a key derived from the cluster key, so neither
//! Redis's memory nor its append-only file ever holds a raw address.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest cluster key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// Length of the encoded MAC in a sealed value.
const MAC_LEN: usize = 43;

#[derive(Clone)]
pub struct Sealer {
    mac: Hmac<Sha256>,
    cipher: chacha20poly1305::XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// A sealer for `key` (at least [`MIN_KEY_LEN`] bytes).
    pub fn new(key: &[u8]) -> Result<Sealer, String> {
        if key.len() < MIN_KEY_LEN {
            return Err(format!(
                "the cluster key must be at least {MIN_KEY_LEN} bytes (e.g. `openssl rand -hex 32`)"
            ));
        }
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
        let mut derived = mac.clone();
        derived.update(b"hop:encrypt\0");
        let cipher_key = derived.finalize().into_bytes();
        Ok(Sealer {
            mac,
            cipher: <chacha20poly1305::XChaCha20Poly1305 as chacha20poly1305::KeyInit>::new(
                &cipher_key,
            ),
        })
    }

    fn tag(&self, context: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// `payload`, signed for `context`.
    pub fn seal(&self, context: &str, payload: &str) -> String {
        let tag = self
            .tag(context, payload.as_bytes())
            .finalize()
            .into_bytes();
        format!("{}.{payload}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The payload of a value sealed for `context`; `None` if it was not
    /// sealed with this key for this context (forged, moved or damaged).
    pub fn open<'a>(&self, context: &str, sealed: &'a str) -> Option<&'a str> {
        let (tag, payload) = sealed.split_at_checked(MAC_LEN)?;
        let payload = payload.strip_prefix('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.tag(context, payload.as_bytes())
            .verify_slice(&tag)
            .ok()
            .map(|()| payload)
    }

    /// `plaintext`, encrypted and authenticated for `context` (a random
    /// nonce each time): `base64url(nonce ‖ ciphertext)`.
    pub fn encrypt(&self, context: &str, plaintext: &str) -> String {
        use chacha20poly1305::aead::{Aead, AeadCore, OsRng, Payload};
        let nonce = chacha20poly1305::XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("encrypting to memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plaintext of a value [`Sealer::encrypt`]ed for `context` with
    /// this key; `None` for anything else.
    pub fn decrypt(&self, context: &str, value: &str) -> Option<String> {
        use chacha20poly1305::aead::{Aead, Payload};
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().ok()?;
        let plain = self
            .cipher
            .decrypt(
                &chacha20poly1305::XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// A secret derived from one stored in Redis: what Redis holds is not
    /// the secret hop uses.
    pub fn derive(&self, context: &str, stored: &[u8]) -> [u8; 32] {
        self.tag(context, stored).finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let a = Sealer::new(&[7; 32]).unwrap();
        let b = Sealer::new(&[8; 32]).unwrap();
        let sealed = a.seal("link:abc", r#"{"x":1}"#);
        assert_eq!(a.open("link:abc", &sealed), Some(r#"{"x":1}"#));
        assert_eq!(a.open("link:abd", &sealed), None, "moved to another key");
        assert_eq!(b.open("link:abc", &sealed), None, "another cluster key");
        assert_eq!(a.open("link:abc", r#"{"x":1}"#), None, "unsigned");
        let mut forged = sealed.clone();
        forged.push(' ');
        assert_eq!(a.open("link:abc", &forged), None, "payload changed");
        let flipped = format!("A{}", &sealed[1..]);
        assert_eq!(a.open("link:abc", &flipped), None, "tag changed");
        assert_eq!(a.open("link:abc", ""), None);
        assert_eq!(a.open("link:abc", "é"), None);
        assert!(Sealer::new(&[1; 31]).is_err());
        assert_ne!(a.derive("salt", b"x"), b.derive("salt", b"x"));
        assert_ne!(a.derive("salt", b"x"), a.derive("secret", b"x"));
        assert_eq!(format!("{a:?}"), "Sealer(<redacted>)");
        let hidden = a.encrypt("hop:clicks", r#"{"ip":"198.51.100.77"}"#);
        assert!(!hidden.contains("198.51"));
        assert_ne!(hidden, a.encrypt("hop:clicks", r#"{"ip":"198.51.100.77"}"#));
        assert_eq!(
            a.decrypt("hop:clicks", &hidden).as_deref(),
            Some(r#"{"ip":"198.51.100.77"}"#)
        );
        assert_eq!(a.decrypt("hop:live", &hidden), None, "another context");
        assert_eq!(b.decrypt("hop:clicks", &hidden), None, "another key");
        assert_eq!(a.decrypt("hop:clicks", r#"{"ip":"198.51.100.77"}"#), None);
        assert_eq!(a.decrypt("hop:clicks", ""), None);
    }
}
