//! API keys and per-link secrets. Both are 256-bit random tokens with a
//! prefix that says which is which; only their SHA-256 is stored, and stored
//! hashes are compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const KEY_PREFIX: &str = "hop_";
pub const LINK_SECRET_PREFIX: &str = "hls_";

/// A token shown once and never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn generate(prefix: &str) -> Token {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Token(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn new(s: impl Into<String>) -> Token {
        Token(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    pub fn is_api_key(&self) -> bool {
        self.0.starts_with(KEY_PREFIX)
    }

    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        self.hash().ct_eq(stored).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl std::str::FromStr for Token {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Token(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = Token::generate(KEY_PREFIX);
        assert!(t.is_api_key());
        assert_eq!(t.expose().len(), KEY_PREFIX.len() + 43);
        assert!(t.matches(&t.hash()));
        assert!(!Token::generate(KEY_PREFIX).matches(&t.hash()));
        assert!(!Token::generate(LINK_SECRET_PREFIX).is_api_key());
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }
}
