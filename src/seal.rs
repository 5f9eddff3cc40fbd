//! Values hop puts in Redis, signed with the cluster key (`--cluster-key`),
//! which is never stored in Redis. Anyone who can write to Redis can then
//! still delete or replay what is there, but not forge a cached link, an
//! invalidation, a live event or a click, nor learn the visitor salts or
//! the rate-limit key (they are derived from what Redis holds and the key).
//!
//! A sealed value is `base64url(HMAC-SHA256(key, context ‖ 0 ‖ payload)).payload`.
//! The context names what the value is and where it lives (the Redis key or
//! channel), so a value signed for one place is refused in another.

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
        Ok(Sealer {
            mac: Hmac::new_from_slice(key).expect("HMAC takes keys of any length"),
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
    }
}
