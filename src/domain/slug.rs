//! `Slug`: the path segment that names a link. A `Slug` that exists is valid.

use std::fmt;

use rand::Rng;

/// The slug alphabet: URL-safe without escaping, unambiguous in a path.
pub const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
/// Length of generated slugs: 64^7 ≈ 4.4e12 values, so collisions stay rare
/// until tens of millions of links exist (and are retried when they happen).
pub const RANDOM_LEN: usize = 7;
pub const MAX_LEN: usize = 64;

/// Words that name hop's own routes (or likely future ones). Compared
/// case-insensitively so `Admin` cannot impersonate `admin` either.
pub const RESERVED: &[&str] = &[
    "about",
    "account",
    "admin",
    // The Flask shortener's paths (`POST /shorten`, `GET /analytics/…`).
    "analytics",
    "api",
    "app",
    "assets",
    "auth",
    "dashboard",
    "docs",
    "favicon",
    "health",
    "healthz",
    "help",
    "hop",
    "keys",
    "links",
    "live",
    "login",
    "logout",
    "metrics",
    "new",
    "openapi",
    "qr",
    "readyz",
    "register",
    "report",
    "reports",
    "robots",
    "settings",
    "shorten",
    "signin",
    "signout",
    "signup",
    "static",
    "stats",
    "ui",
    "webhooks",
    "www",
];

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("slug must be 1 to {MAX_LEN} characters long")]
    Length,
    #[error("slug may only contain letters, digits, '_' and '-'")]
    Charset,
    #[error("this slug is reserved")]
    Reserved,
}

impl SlugError {
    pub fn code(self) -> &'static str {
        match self {
            SlugError::Length | SlugError::Charset => "invalid_slug",
            SlugError::Reserved => "reserved_slug",
        }
    }
}

impl Slug {
    /// Parses a slug a user asked for: alphabet, length, and not reserved.
    pub fn parse(input: &str) -> Result<Slug, SlugError> {
        let slug = Self::parse_path(input)?;
        if is_reserved(input) {
            return Err(SlugError::Reserved);
        }
        Ok(slug)
    }

    /// Parses a slug from a request path. Reserved words are not refused here:
    /// they cannot exist in the store, and their routes match before this one.
    pub fn parse_path(input: &str) -> Result<Slug, SlugError> {
        if input.is_empty() || input.len() > MAX_LEN {
            return Err(SlugError::Length);
        }
        if !input.bytes().all(in_alphabet) {
            return Err(SlugError::Charset);
        }
        Ok(Slug(input.to_owned()))
    }

    /// A fresh random slug that is never a reserved word.
    pub fn random(rng: &mut (impl Rng + ?Sized)) -> Slug {
        loop {
            let s: String = (0..RANDOM_LEN)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            if !is_reserved(&s) {
                return Slug(s);
            }
        }
    }

    /// A fresh random slug of part `slot` (0 to 63) of the random slug
    /// space: it ends in the slot's character, so two slots never draw the
    /// same slug.
    pub fn random_in(rng: &mut (impl Rng + ?Sized), slot: u8) -> Slug {
        let last = ALPHABET[usize::from(slot) % ALPHABET.len()] as char;
        loop {
            let s: String = (0..RANDOM_LEN - 1)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .chain([last])
                .collect();
            if !is_reserved(&s) {
                return Slug(s);
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `input` is a slug as a path segment has it ([`Slug::parse_path`]
/// would take it), without making one.
pub fn is_slug(input: &str) -> bool {
    (1..=MAX_LEN).contains(&input.len()) && input.bytes().all(in_alphabet)
}

/// A byte of [`ALPHABET`].
fn in_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether `s` is a reserved word (any case): hop's own routes.
pub fn is_reserved(s: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

impl serde::Serialize for Slug {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Slug, D::Error> {
        let s = String::deserialize(d)?;
        Slug::parse_path(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slug({})", self.0)
    }
}

impl AsRef<str> for Slug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        let cases: &[(&str, Result<(), SlugError>)] = &[
            ("a", Ok(())),
            ("AbC12x9", Ok(())),
            ("with_under-score", Ok(())),
            (&"x".repeat(64), Ok(())),
            ("", Err(SlugError::Length)),
            (&"x".repeat(65), Err(SlugError::Length)),
            ("has space", Err(SlugError::Charset)),
            ("dot.dot", Err(SlugError::Charset)),
            ("../etc", Err(SlugError::Charset)),
            ("sl/ash", Err(SlugError::Charset)),
            ("é", Err(SlugError::Charset)),
            ("a'; DROP TABLE links;--", Err(SlugError::Charset)),
            ("%2e%2e", Err(SlugError::Charset)),
            ("api", Err(SlugError::Reserved)),
            ("Admin", Err(SlugError::Reserved)),
            ("HEALTHZ", Err(SlugError::Reserved)),
            ("metrics", Err(SlugError::Reserved)),
            ("apis", Ok(())),
        ];
        for (input, want) in cases {
            assert_eq!(Slug::parse(input).map(|_| ()), *want, "input {input:?}");
        }
    }

    #[test]
    fn case_sensitive() {
        assert_ne!(Slug::parse("abc").unwrap(), Slug::parse("ABC").unwrap());
    }

    #[test]
    fn path_parse_accepts_reserved_words() {
        assert!(Slug::parse_path("api").is_ok());
    }

    proptest! {
        #[test]
        fn random_slugs_parse(seed in any::<u64>()) {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let slug = Slug::random(&mut rng);
            prop_assert_eq!(slug.as_str().len(), RANDOM_LEN);
            prop_assert_eq!(Slug::parse(slug.as_str()).unwrap(), slug);
        }

        #[test]
        fn slots_draw_apart(seed in any::<u64>(), a in 0u8..64, b in 0u8..64) {
            use rand::SeedableRng;
            // The same draws in two slots: two slugs, each a valid one.
            let x = Slug::random_in(&mut rand::rngs::StdRng::seed_from_u64(seed), a);
            let y = Slug::random_in(&mut rand::rngs::StdRng::seed_from_u64(seed), b);
            prop_assert_eq!(x == y, a == b);
            prop_assert_eq!(x.as_str().len(), RANDOM_LEN);
            prop_assert_eq!(Slug::parse(x.as_str()).unwrap(), x);
        }

        #[test]
        fn parse_never_panics_and_roundtrips(s in "\\PC{0,80}") {
            if let Ok(slug) = Slug::parse(&s) {
                prop_assert_eq!(slug.as_str(), s.as_str());
                prop_assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
            }
        }

        #[test]
        fn alphabet_strings_are_slugs(s in "[A-Za-z0-9_-]{1,64}") {
            let r = Slug::parse(&s);
            prop_assert!(r.is_ok() || r == Err(SlugError::Reserved));
        }
    }
}
