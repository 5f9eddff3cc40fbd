#!/usr/bin/env bash
# Refreshes the country database hop embeds (assets/geoip/) from the npm
# package @ip-location-db/geo-whois-asn-country-mmdb (CC0). Prints the
# checksums to put in assets/geoip/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-2.3.2026061719}
out=assets/geoip
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@ip-location-db/geo-whois-asn-country-mmdb@$version" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp"
gzip -9 -n -c "$tmp/package/geo-whois-asn-country.mmdb" >"$out/geo-whois-asn-country.mmdb.gz"
cp "$tmp/package/package.json" "$tmp/package/NRO_LICENSE" "$out/"
sha256sum "$tmp"/*.tgz "$tmp/package/geo-whois-asn-country.mmdb"
ls -l "$out"
