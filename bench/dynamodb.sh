#!/usr/bin/env bash
# Cluster mode on DynamoDB: a local DynamoDB (moto, single-threaded, as the
# tests run it), a private Redis, 2 hop nodes and 1 hop worker built with
# --features dynamodb. Measures, in this order:
#   1. the DynamoDB requests a hot link's clicks cost: CLICKS GETs of one
#      link, waited for until counted exactly, with every request moto
#      served meanwhile counted by operation (per 1 000 clicks; the nodes'
#      upkeep and this script's polling included, and said apart);
#   2. the worker's clicks/s into moto (moto's one Python thread bounds it:
#      a figure about the local server, not about DynamoDB);
#   3. redirects/s and p99 over both nodes (wrk, DURATION s, RUNS runs): the
#      redirect reads the cache and appends to Redis, DynamoDB is not on its
#      path. Those clicks are left in the stream when the script ends.
# Loopback only; every load and wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
CLICKS=${CLICKS:-2000}
DURATION=${DURATION:-3}
RUNS=${RUNS:-3}
CONNS=${CONNS:-32}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --features dynamodb --bin hop
./scripts/moto.sh >/dev/null
HOP=target/release/hop
source bench/lib.sh

moto_port=$(free_port)
target/moto/bin/python scripts/moto-server.py "$moto_port" 2>"$work/moto.log" & pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$moto_port/" && break; sleep 0.1; done
start_redis
export HOP_DATABASE_URL="dynamodb://hop-bench?region=eu-west-1&endpoint=http://127.0.0.1:$moto_port"
export HOP_LOG=warn
start_cluster
for slug in hot load; do
  curl -sf -o /dev/null "http://127.0.0.1:${ports[0]}/api/v1/links" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d "{\"url\":\"https://example.com/\",\"slug\":\"$slug\"}"
done
total() {
  curl -sf "http://127.0.0.1:${ports[1]}/api/v1/links/$1/stats?include_bots=true" -H "authorization: Bearer $KEY" \
    | python3 -c 'import sys,json; print(json.load(sys.stdin)["total_clicks"])'
}
ops() { # requests moto served, by operation, since line $1 of its log
  tail -n +"$1" "$work/moto.log" | awk '$1=="POST" {n[$3]++; t++} END {for (k in n) printf "%s=%d ", k, n[k]; printf "total=%d\n", t}'
}

# 1 and 2: a hot link's clicks.
sleep 6   # an upkeep round on each node, so its reads are in the idle rate
idle_from=$(wc -l <"$work/moto.log")
sleep 5
idle=$(ops "$idle_from")
mark=$(wc -l <"$work/moto.log")
start=$(date +%s.%N)
seq "$CLICKS" | xargs -P 16 -I{} curl -s -o /dev/null -A 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0' \
  "http://127.0.0.1:${ports[$(( RANDOM % 2 ))]}/hot?n={}"
n=0
for _ in $(seq 600); do
  n=$(total hot)
  [ "$n" -ge "$CLICKS" ] && break
  sleep 1
done
end=$(date +%s.%N)
[ "$n" = "$CLICKS" ] || fail "counted $n clicks of $CLICKS"
during=$(ops "$mark")
echo "moto requests while idle for 5 s (upkeep of 2 nodes and a worker): $idle"
echo "moto requests for $CLICKS clicks of one link (with the idle load and one stats read a second): $during"
python3 - "$during" "$idle" "$CLICKS" "$start" "$end" <<'PY'
import sys
def parse(s): return {k: int(v) for k, v in (p.split('=') for p in s.split())}
during, idle, clicks, start, end = parse(sys.argv[1]), parse(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
secs = end - start
writes = sum(v for k, v in during.items() if k in ('TransactWriteItems', 'UpdateItem', 'BatchGetItem', 'GetItem'))
print(f"per 1000 clicks: {1000 * during['total'] / clicks:.0f} requests in all, of which "
      + ", ".join(f"{k} {1000 * v / clicks:.0f}" for k, v in sorted(during.items()) if k != 'total'))
print(f"idle load over the same {secs:.0f} s would be about {idle['total'] / 5 * secs:.0f} requests")
print(f"worker into moto: {clicks / secs:.0f} clicks/s ({clicks} clicks counted exactly in {secs:.1f} s)")
PY

# 3: redirects.
for run in $(seq "$RUNS"); do
  rps=0; p99=0; wrks=()
  for i in 0 1; do
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:${ports[$i]}/load" >"$work/wrk$i" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  for i in 0 1; do
    r=$(awk '/Requests\/sec/ {print $2}' "$work/wrk$i")
    q=$(to_us "$(awk '$1=="99%" {print $2}' "$work/wrk$i")")
    not_3xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' "$work/wrk$i")
    [ -z "$not_3xx" ] || fail "run $run, node $i: $not_3xx answers were not 2xx or 3xx"
    rps=$(python3 -c "print($rps + $r)"); p99=$(python3 -c "print(max($p99, $q))")
  done
  echo "$rps" >>"$work/rps"; echo "$p99" >>"$work/p99"
  echo "run $run: $rps req/s, p99 ${p99} us" >&2
done
echo "redirects on DynamoDB (2 nodes on CPU 0, median of $RUNS): $(median <"$work/rps") req/s, p99 $(median <"$work/p99") us"
