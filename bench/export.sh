#!/usr/bin/env bash
# Streaming exports (issue 17): hop's memory while it streams every click
# of a large database, and the export's count against the stats.
#  1. examples/fill_clicks.rs stores EXPORT_CLICKS clicks (default
#     10 000 000) over EXPORT_LINKS links (default 10) in a SQLite file,
#     through record_clicks, as the writer would.
#  2. A release hop serves that file. GET /api/v1/clicks.ndjson is read
#     with curl twice: a range holding about a tenth of the clicks, then
#     every click. During each, hop's resident memory (VmRSS) is sampled
#     every 0.1 s; printed: lines, seconds, MB/s, RSS before and at its peak.
#     Flat memory: the peak is about the same for the tenth and the whole
#     (what stays is SQLite's page caches, 64 MiB per connection at most).
#  3. The line count of the full export must equal the sum of the links'
#     stats totals (human clicks, as both count by default); FAIL otherwise.
# Also GET /api/v1/clicks.csv once, its rows counted the same way.
#  4. With COPY=1: `hop copy` of that file into a private PostgreSQL (initdb,
#     default durability), timed (rows a second); then the copy's stats
#     totals must equal the source's.
# Loopback only; nothing runs longer than the exports take.
set -euo pipefail
cd "$(dirname "$0")/.."
EXPORT_CLICKS=${EXPORT_CLICKS:-10000000}
EXPORT_LINKS=${EXPORT_LINKS:-10}

cargo build --release --bin hop --example fill_clicks
source bench/lib.sh

db="$work/hop.db"
# The clicks span the hour before this instant.
filled_at=$(date -u +%s)
target/release/examples/fill_clicks "$db" "$EXPORT_CLICKS" "$EXPORT_LINKS"
key=$(target/release/hop keys create --name bench --admin --database-url "sqlite://$db" 2>/dev/null)
port=$(free_port)
HOP_LOG=warn target/release/hop serve --listen "127.0.0.1:$port" \
  --database-url "sqlite://$db" --public-url http://hop.bench & pids+=($!)
pid=$!
base="http://127.0.0.1:$port"
wait_http "$base/healthz"
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

# export NAME PATH: streams PATH into wc -l while sampling hop's RSS.
export_run() {
  local name=$1 path=$2 before peak=0 r start end lines
  before=$(rss_kb)
  start=$(date +%s.%N)
  curl -sfN -H "authorization: Bearer $key" "$base$path" -o "$work/out" &
  local curl_pid=$!
  while kill -0 "$curl_pid" 2>/dev/null; do
    r=$(rss_kb); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.1
  done
  wait "$curl_pid" || fail "$name: the export failed"
  end=$(date +%s.%N)
  lines=$(wc -l <"$work/out")
  python3 -c 'import sys
name, lines, secs, size, before, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print(f"{name:<22} {lines:>10} lines  {secs:6.1f} s  {size/secs/1e6:6.1f} MB/s  {lines/secs:9.0f} lines/s  RSS {before/1024:6.1f} MB before, {peak/1024:6.1f} MB peak (+{(peak-before)/1024:.1f})")' \
    "$name" "$lines" "$(python3 -c "print($end-$start)")" "$(stat -c %s "$work/out")" "$before" "$peak"
  last_lines=$lines
}

# hop's own upkeep starts with it (sealing the fill's buckets, a second of
# work every 5 s): give it a moment, so the exports' figures are theirs.
sleep 10
# A tenth of the clicks: the last 6 minutes of the hour they span.
from=$(date -u -d "@$((filled_at - 360))" +%Y-%m-%dT%H:%M:%SZ)
export_run "ndjson, last 6 minutes" "/api/v1/clicks.ndjson?from=$from"
export_run "ndjson, every click" "/api/v1/clicks.ndjson"
ndjson_lines=$last_lines
export_run "csv, every click" "/api/v1/clicks.csv"
csv_rows=$(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=""))) - 1)' "$work/out")

# stats_total BASE: the links' stats totals (human clicks), summed.
stats_total() {
  local sum=0 n i
  for i in $(seq 0 $((EXPORT_LINKS - 1))); do
    n=$(curl -sf -H "authorization: Bearer $key" "$1/api/v1/links/export-$i/stats" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_clicks"])') \
      || fail "stats of export-$i on $1"
    sum=$((sum + n))
  done
  echo "$sum"
}
total=$(stats_total "$base")
echo "stats total (human clicks): $total; ndjson lines: $ndjson_lines; csv rows: $csv_rows"
[ "$ndjson_lines" = "$total" ] || fail "the NDJSON export has $ndjson_lines lines, the stats count $total"
[ "$csv_rows" = "$total" ] || fail "the CSV export has $csv_rows rows, the stats count $total"
echo "exact: every export equals the stats total"

if [ "${COPY:-0}" = 1 ]; then
  kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
  start_pg_redis
  start=$(date +%s.%N)
  target/release/hop copy --from "sqlite://$db" --to "$HOP_DATABASE_URL" >"$work/copy.txt"
  end=$(date +%s.%N)
  cat "$work/copy.txt"
  rows=$(awk 'NR > 1 {n += $2} END {print n}' "$work/copy.txt")
  python3 -c "import sys; r, s = int(sys.argv[1]), float(sys.argv[2]); print(f'hop copy: {r} rows in {s:.1f} s, {r/s:.0f} rows/s')" "$rows" "$(python3 -c "print($end-$start)")"
  port=$(free_port)
  HOP_LOG=warn target/release/hop serve --listen "127.0.0.1:$port" --no-migrate \
    --database-url "$HOP_DATABASE_URL" --public-url http://hop.bench & pids+=($!)
  base="http://127.0.0.1:$port"
  wait_http "$base/healthz"
  copied=$(stats_total "$base")
  [ "$copied" = "$total" ] || fail "the copy counts $copied clicks, the source $total"
  echo "exact: the copy's stats total equals the source's ($copied)"
fi
