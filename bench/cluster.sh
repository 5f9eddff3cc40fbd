#!/usr/bin/env bash
# Cluster-mode benchmark: a private PostgreSQL and Redis, 2 hop nodes and 1
# hop worker on this machine. Nodes are pinned to CPU 0 (as the embedded and
# bare servers are in bench/run.sh); wrk (two instances, one per node) to
# CPU 1; PostgreSQL, Redis and the worker float. Prints redirect req/s and
# p99 summed over both nodes (median of RUNS), then the worker's throughput
# draining the backlog, and checks the final count is exact: it fails
# (non-zero, a line starting FAIL) unless every request wrk completed was
# counted, and at most the ones wrk left in flight on top (see
# await_exact_count in bench/lib.sh), with no click dropped and no answer
# other than a 3xx. Loopback only; every load is bounded by DURATION, every
# wait by WAIT_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNS=${CONNS:-32}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --bin hop
HOP=target/release/hop
source bench/lib.sh

start_pg_redis
export HOP_LOG=warn
start_cluster
curl -sf -o /dev/null "http://127.0.0.1:${ports[0]}/api/v1/links" -H "authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d '{"url":"https://example.com/","slug":"bench"}'
for p in "${ports[@]}"; do curl -s -o /dev/null "http://127.0.0.1:$p/bench"; done

total() {
  curl -sf "http://127.0.0.1:${ports[1]}/api/v1/links/bench/stats?include_bots=true" -H "authorization: Bearer $KEY" \
    | python3 -c 'import sys,json; print(json.load(sys.stdin)["total_clicks"])'
}
bases=()
for p in "${ports[@]}"; do bases+=("http://127.0.0.1:$p"); done

answered=${#ports[@]}   # the warm-up clicks
socket_errors=0
load_start=$(date +%s.%N)
for run in $(seq "$RUNS"); do
  wrks=()
  for i in 0 1; do
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:${ports[$i]}/bench" >"$work/wrk$i" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  rps=0; p99=0
  for i in 0 1; do
    r=$(awk '/Requests\/sec/ {print $2}' "$work/wrk$i")
    n=$(awk '/requests in/ {print $1}' "$work/wrk$i")
    q=$(to_us "$(awk '$1=="99%" {print $2}' "$work/wrk$i")")
    not_3xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' "$work/wrk$i")
    [ -z "$not_3xx" ] || fail "run $run, node $i: $not_3xx answers were not 2xx or 3xx"
    # Each read or write error may cost wrk one request that hop answered.
    errs=$(sed -nE 's/.*Socket errors:.* read ([0-9]+), write ([0-9]+),.*/\1 + \2/p' "$work/wrk$i")
    socket_errors=$((socket_errors + ${errs:-0}))
    rps=$(python3 -c "print($rps + $r)"); p99=$(python3 -c "print(max($p99, $q))")
    answered=$((answered + n))
  done
  echo "$rps" >>"$work/rps"; echo "$p99" >>"$work/p99"
  echo "run $run cluster (2 nodes): $rps req/s, p99 ${p99} us" >&2
done
echo
echo "cluster redirect (2 nodes on CPU 0, median of $RUNS): $(median <"$work/rps") req/s, p99 $(median <"$work/p99") us"

# The worker: what it had stored when the load ended (sustained rate), then
# how long the rest of the backlog took, and the exact final count.
load_end=$(date +%s.%N)
start_count=$(total) || fail "cannot read hop's click count"
start=$(date +%s.%N)
python3 -c "print('worker during the load: %d of %d answered clicks stored by its end (%.0f clicks/s sustained over %.1f s)' % ($start_count, $answered, $start_count/($load_end-$load_start), $load_end-$load_start))"
# Two wrk instances per run, CONNS connections each.
slack=$((2 * CONNS * RUNS + socket_errors))
await_exact_count total "$answered" "$slack" "${bases[@]}"
python3 -c "print('worker after the load: the remaining %d clicks in %.1f s' % ($counted-$start_count, $reached_at-$start))"
echo "cluster clicks counted: $counted for $answered answered (at most $slack more in flight; $socket_errors socket errors), 0 dropped: exact"
