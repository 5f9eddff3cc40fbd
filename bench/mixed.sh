#!/usr/bin/env bash
# Mixed-traffic soak: 60 s (DURATION) of 95% redirects, 4% stats reads and
# 1% link creations (examples/load_mixed.rs) against
#   1. embedded mode: one node on SQLite;
#   2. cluster mode: 2 nodes + 1 worker on a private PostgreSQL and Redis.
# Servers pinned to CPU 0, the load generator to CPU 1 (PostgreSQL, Redis and
# the worker float). Rate limits are off: one client and one key make all
# the traffic. Prints one JSON report per mode (statuses, p50/p99/p99.9 per
# kind, resident memory over time) and fails on any status other than the
# one each kind expects (redirect 302, stats 200, create 201; so a 429 or
# 404 fails too), with its count, and on any transport error.
# Loopback only; bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
CONNS=${CONNS:-32}
LINKS=${LINKS:-1000}
MODES=${MODES:-embedded cluster}
# RATE: total requests per second (open loop); unset: as fast as answered.
RATE=${RATE:-}
# SQLITE_CACHE_MIB: SQLite page cache per connection (default 64; 5 connections).
SQLITE_CACHE_MIB=${SQLITE_CACHE_MIB:-}

cargo build --release --bin hop --example load_mixed
HOP=target/release/hop
LOAD=target/release/examples/load_mixed
source bench/lib.sh
limits=(--rate-create 0 --rate-api 0 --rate-auth-failures 0 --rate-link-secret 0)
status=0

for mode in $MODES; do
  case $mode in
    embedded)
      db="sqlite://$work/hop.db${SQLITE_CACHE_MIB:+?cache_mib=$SQLITE_CACHE_MIB}"
      key=$($HOP keys create --name mixed --admin --database-url "$db" 2>/dev/null)
      port=$(free_port)
      HOP_LOG=warn taskset -c 0 $HOP serve --listen "127.0.0.1:$port" --database-url "$db" \
        --public-url http://hop.bench "${limits[@]}" & node=$!
      pids+=("$node")
      wait_http "http://127.0.0.1:$port/healthz"
      bases="http://127.0.0.1:$port"
      watch="$node"
      ;;
    cluster)
      start_pg_redis
      export HOP_LOG=warn
      $HOP migrate >/dev/null
      key=$($HOP keys create --name mixed --admin 2>/dev/null)
      bases=""; watch=""
      for _ in 1 2; do
        p=$(free_port)
        taskset -c 0 $HOP serve --listen "127.0.0.1:$p" --public-url http://hop.bench \
          --no-migrate "${limits[@]}" & pids+=($!)
        watch+="${watch:+,}$!"
        bases+="${bases:+,}http://127.0.0.1:$p"
        wait_http "http://127.0.0.1:$p/healthz"
      done
      $HOP worker --no-migrate --worker-name mixed & pids+=($!)
      watch+=",$!"
      ;;
  esac
  echo "== $mode: ${DURATION}s, $CONNS connections, $LINKS links${RATE:+, $RATE req/s}"
  taskset -c 1 $LOAD --base "$bases" --key "$key" --pid "$watch" \
    --duration "$DURATION" --connections "$CONNS" --links "$LINKS" ${RATE:+--rate "$RATE"} | tee "target/mixed-$mode.json" || status=1
done
exit $status
