//! `TargetUrl`: the destination of a link, parsed and normalised once.

use std::fmt;

use url::{Host, Url};

/// Longest target accepted, in bytes, before and after normalisation.
pub const MAX_LEN: usize = 8 * 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct TargetUrl(Url);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("url is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("url must not contain spaces or control characters")]
    ForbiddenCharacter,
    #[error("url must not contain encoded line breaks or NUL bytes")]
    EncodedControl,
    #[error("url is not valid: {0}")]
    Invalid(String),
    #[error("only http and https urls can be shortened, not {0}")]
    UnsupportedScheme(String),
    #[error("url must have a host")]
    MissingHost,
    #[error("url host is not a valid host name")]
    InvalidHost,
    #[error("url must not contain a user name or password")]
    UserInfo,
    #[error("url points back at this shortener")]
    Loop,
}

impl UrlError {
    pub fn code(&self) -> &'static str {
        match self {
            UrlError::TooLong => "url_too_long",
            UrlError::UnsupportedScheme(_) => "unsupported_scheme",
            UrlError::Loop => "redirect_loop",
            UrlError::UserInfo => "userinfo_not_allowed",
            UrlError::MissingHost => "missing_host",
            UrlError::InvalidHost => "invalid_host",
            UrlError::ForbiddenCharacter | UrlError::EncodedControl | UrlError::Invalid(_) => {
                "invalid_url"
            }
        }
    }
}

impl TargetUrl {
    /// Parses and normalises a target. `own_hosts` are the hosts hop itself
    /// answers on: a target there would redirect to another short link or loop.
    pub fn parse(input: &str, own_hosts: &[String]) -> Result<TargetUrl, UrlError> {
        if input.len() > MAX_LEN {
            return Err(UrlError::TooLong);
        }
        // The url crate silently strips tabs and newlines; refuse them instead,
        // along with every other control or space character (U+2028 included).
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UrlError::ForbiddenCharacter);
        }
        let lower = input.to_ascii_lowercase();
        if ["%0d", "%0a", "%00"].iter().any(|p| lower.contains(p)) {
            return Err(UrlError::EncodedControl);
        }
        let url = Url::parse(input).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => {
                UrlError::Invalid("missing scheme; start with https://".into())
            }
            url::ParseError::EmptyHost => UrlError::MissingHost,
            other => UrlError::Invalid(other.to_string()),
        })?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(UrlError::UnsupportedScheme(other.to_owned())),
        }
        let host = match url.host() {
            Some(Host::Domain("")) | None => return Err(UrlError::MissingHost),
            Some(Host::Domain(d)) if !is_host_name(d) => return Err(UrlError::InvalidHost),
            Some(h) => h.to_string(),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        // The url crate has already lower-cased the name, decoded percent
        // escapes (`hop.test%2e`) and turned IDNs into punycode; what is
        // left to compare away is case in `own_hosts` and a trailing dot
        // (`hop.test.` is the same host in DNS).
        if own_hosts.iter().any(|own| same_host(own, &host)) {
            return Err(UrlError::Loop);
        }
        if url.as_str().len() > MAX_LEN {
            return Err(UrlError::TooLong);
        }
        Ok(TargetUrl(url))
    }

    /// Rebuilds a target read back from a store, where it was already checked.
    pub fn from_stored(s: &str) -> Result<TargetUrl, UrlError> {
        Url::parse(s)
            .map(TargetUrl)
            .map_err(|e| UrlError::Invalid(e.to_string()))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }
}

/// Whether two hosts name the same machine: case-insensitive, a trailing
/// dot ignored, and IDN and percent-encoded forms compared as the url crate
/// normalises them (`Hop.Test`, `hop.test.`, `HOP.TEST%2e`, `hóp.test` and
/// `xn--hp-5ja.test` as expected).
pub fn same_host(a: &str, b: &str) -> bool {
    fn key(h: &str) -> Option<String> {
        let h = h.trim();
        let url = Url::parse(&format!("http://{h}/")).ok()?;
        let host = url.host_str()?;
        Some(host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase())
    }
    match (key(a), key(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a
            .trim_end_matches('.')
            .eq_ignore_ascii_case(b.trim_end_matches('.')),
    }
}

/// A DNS host name as the url crate leaves it (IDNs already in punycode):
/// labels of 1–63 letters, digits, `-` or `_` (real subdomains do end in
/// `-`), the last one starting with a letter, at most one trailing dot. The
/// URL standard lets through more (`*`, `!`, `$`, …), which no DNS name has.
pub fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    name.split('.').all(label_ok)
        && name
            .rsplit('.')
            .next()
            .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
}

impl serde::Serialize for TargetUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TargetUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TargetUrl, D::Error> {
        let s = String::deserialize(d)?;
        TargetUrl::from_stored(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TargetUrl({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn own() -> Vec<String> {
        vec!["hop.example".into(), "localhost".into()]
    }

    #[test]
    fn table() {
        let ok: &[(&str, &str)] = &[
            ("https://example.com", "https://example.com/"),
            (
                "HTTPS://Example.COM/Path?q=1#frag",
                "https://example.com/Path?q=1#frag",
            ),
            ("http://example.com:8080/a", "http://example.com:8080/a"),
            (
                "https://münchen.de/straße",
                "https://xn--mnchen-3ya.de/stra%C3%9Fe",
            ),
            ("https://[2001:db8::1]/x", "https://[2001:db8::1]/x"),
            ("https://93.184.216.34/", "https://93.184.216.34/"),
            (
                "https://my_site.example.com./",
                "https://my_site.example.com./",
            ),
            ("https://foo-.blogspot.com/", "https://foo-.blogspot.com/"),
            ("https://shop.example/50%off", "https://shop.example/50%off"),
            ("https://example.com/a%20b", "https://example.com/a%20b"),
            ("https://example.com/?q='or 1=1", ""),
        ];
        for (input, want) in ok {
            let got = TargetUrl::parse(input, &own());
            if want.is_empty() {
                assert!(got.is_err(), "{input:?} should be refused (space)");
            } else {
                assert_eq!(got.unwrap().as_str(), *want, "input {input:?}");
            }
        }
        let bad: &[(&str, &str)] = &[
            ("", "invalid_url"),
            ("example.com", "invalid_url"),
            ("not a url", "invalid_url"),
            ("javascript:alert(1)", "unsupported_scheme"),
            ("JavaScript:alert(1)", "unsupported_scheme"),
            ("data:text/html,hi", "unsupported_scheme"),
            ("file:///etc/passwd", "unsupported_scheme"),
            ("ftp://example.com/", "unsupported_scheme"),
            ("https://", "missing_host"),
            ("https://exa mple.com", "invalid_url"),
            ("https://example.com/\r\nSet-Cookie:x", "invalid_url"),
            ("https://example.com/%0d%0aSet-Cookie:x", "invalid_url"),
            ("https://example.com/%0D%0A", "invalid_url"),
            ("https://example.com/\u{2028}", "invalid_url"),
            ("https://example.com/\t", "invalid_url"),
            ("https://good.com@evil.com/", "userinfo_not_allowed"),
            ("https://user:pw@evil.com/", "userinfo_not_allowed"),
            ("http://0.a*/", "invalid_host"),
            ("http://a..b/", "invalid_host"),
            ("http://a.-example/", "invalid_host"),
            ("http://a$b.example/", "invalid_host"),
            ("http://example.123x/", "invalid_host"),
            ("https://hop.example/abc", "redirect_loop"),
            ("http://HOP.example:9999/abc", "redirect_loop"),
            ("http://localhost:8080/x", "redirect_loop"),
            ("https://hop.example./x", "redirect_loop"),
            ("https://HOP.EXAMPLE./x", "redirect_loop"),
            ("https://hop.example%2e/x", "redirect_loop"),
            ("https://hop%2eexample/x", "redirect_loop"),
            ("https://localhost./x", "redirect_loop"),
        ];
        for (input, code) in bad {
            let err = TargetUrl::parse(input, &own()).unwrap_err();
            assert_eq!(err.code(), *code, "input {input:?}: {err}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_LEN));
        assert_eq!(
            TargetUrl::parse(&long, &own()).unwrap_err().code(),
            "url_too_long"
        );
    }

    #[test]
    fn same_host_ignores_case_trailing_dot_idn_and_escapes() {
        for (a, b) in [
            ("Hop.Test", "hop.test."),
            ("hop.test", "HOP.TEST%2e"),
            ("hóp.test", "xn--hp-5ja.test"),
            ("HÓP.TEST.", "xn--hp-5ja.test"),
            ("[::1]", "[0:0::1]"),
        ] {
            assert!(same_host(a, b), "{a} ~ {b}");
        }
        assert!(!same_host("hop.test", "hop.test.evil.example"));
        assert!(!same_host("hop.test", "xhop.test"));
        let own = vec!["Hóp.Test".to_owned()];
        assert_eq!(
            TargetUrl::parse("https://XN--HP-5JA.TEST./x", &own)
                .unwrap_err()
                .code(),
            "redirect_loop"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = TargetUrl::parse(&s, &own());
        }

        #[test]
        fn accepted_urls_are_http_and_idempotent(
            host in "[a-z][a-z0-9-]{0,20}\\.(com|org|de)",
            path in "[a-zA-Z0-9/_.~-]{0,40}",
        ) {
            let input = format!("https://{host}/{path}");
            let url = TargetUrl::parse(&input, &own()).unwrap();
            prop_assert!(url.as_str().starts_with("https://"));
            // Normalising an already normalised URL changes nothing.
            let again = TargetUrl::parse(url.as_str(), &own()).unwrap();
            prop_assert_eq!(again.as_str(), url.as_str());
            prop_assert!(!url.as_str().chars().any(|c| c.is_control() || c.is_whitespace()));
        }
    }
}
