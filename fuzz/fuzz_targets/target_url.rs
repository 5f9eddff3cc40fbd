//! Target URL parsing and normalisation: never panics, and what it accepts
//! is an http(s) URL with a host, no user info, no control or space
//! characters, no encoded CR/LF/NUL, within the length bound, and already
//! normal (parsing the normalised form gives it back unchanged).
#![no_main]

use hop::domain::{MAX_URL_LEN, TargetUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let own = ["hop.example".to_owned()];
    let Ok(url) = TargetUrl::parse(input, &own) else {
        return;
    };
    let s = url.as_str();
    assert!(s.starts_with("http://") || s.starts_with("https://"), "{s}");
    assert!(s.len() <= MAX_URL_LEN);
    assert!(!url.host().is_empty());
    assert!(!url.host().eq_ignore_ascii_case("hop.example"));
    assert!(
        !s.chars().any(|c| c.is_control() || c.is_whitespace()),
        "{s:?}"
    );
    let lower = s.to_ascii_lowercase();
    assert!(
        !["%0d", "%0a", "%00"].iter().any(|p| lower.contains(p)),
        "{s}"
    );
    let again = TargetUrl::parse(s, &own).expect("a normalised URL parses again");
    assert_eq!(again.as_str(), s);
});
