//! Slug parsing: never panics; what it accepts is exactly the input, 1–64
//! characters of the slug alphabet, and the user-facing parse refuses
//! reserved words that the path parse lets through.
#![no_main]

use hop::domain::Slug;
use hop::domain::slug_rules::{ALPHABET, MAX_LEN, RESERVED};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let path = Slug::parse_path(input);
    if let Ok(slug) = &path {
        assert_eq!(slug.as_str(), input);
        assert!((1..=MAX_LEN).contains(&input.len()));
        assert!(input.bytes().all(|b| ALPHABET.contains(&b)));
    } else {
        assert!(
            input.is_empty()
                || input.len() > MAX_LEN
                || input.bytes().any(|b| !ALPHABET.contains(&b))
        );
    }
    let reserved = RESERVED.iter().any(|r| r.eq_ignore_ascii_case(input));
    match Slug::parse(input) {
        Ok(slug) => {
            assert!(!reserved);
            assert_eq!(Some(&slug), path.as_ref().ok());
        }
        Err(_) => assert!(path.is_err() || reserved),
    }
});
