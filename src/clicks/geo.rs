//! Client IP → country and city, from any MaxMind-format `.mmdb`. Reads both
//! record schemas found in the wild: MaxMind's nested one
//! (`country.iso_code`, `city.names.en`) and ip-location-db's flat one
//! (`country_code`, `city`), and several files (ip-location-db splits IPv4
//! and IPv6), asking each in turn.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Deserialize)]
struct Record {
    country: Option<Country>,
    country_code: Option<String>,
    city: Option<City>,
}

#[derive(Deserialize)]
struct Country {
    iso_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum City {
    Flat(String),
    Nested { names: Option<Names> },
}

#[derive(Deserialize)]
struct Names {
    en: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub country: Option<String>,
    pub city: Option<String>,
}

pub struct GeoDb {
    readers: Vec<(PathBuf, maxminddb::Reader<Vec<u8>>)>,
}

impl GeoDb {
    pub fn open(paths: &[PathBuf]) -> anyhow::Result<GeoDb> {
        let readers = paths
            .iter()
            .map(|p| {
                maxminddb::Reader::open_readfile(p)
                    .map(|r| (p.clone(), r))
                    .map_err(|e| anyhow::anyhow!("cannot open GeoIP database {}: {e}", p.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(GeoDb { readers })
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.readers.iter().map(|(p, _)| p.as_path())
    }

    /// Country (ISO code) and city (English name) of an address; empty when
    /// no database knows it. Never fails: a bad record is treated as unknown.
    pub fn lookup(&self, ip: IpAddr) -> Location {
        // An IPv4 client seen through an IPv6 socket is still an IPv4 client.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        for (_, reader) in &self.readers {
            let Ok(result) = reader.lookup(ip) else {
                continue;
            };
            let Ok(Some(record)) = result.decode::<Record>() else {
                continue;
            };
            let country = record
                .country_code
                .or_else(|| record.country.and_then(|c| c.iso_code))
                .filter(|c| !c.is_empty());
            let city = match record.city {
                Some(City::Flat(name)) => Some(name),
                Some(City::Nested { names }) => names.and_then(|n| n.en),
                None => None,
            }
            .filter(|c| !c.is_empty());
            if country.is_some() || city.is_some() {
                return Location { country, city };
            }
        }
        Location::default()
    }
}
