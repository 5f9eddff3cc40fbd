#!/usr/bin/env bash
# compose.yaml run for real (issue 14), with podman-compose on rootful
# podman:
#  - the embedded profile: one hop on its volume; a link, clicks, exact;
#  - the cluster profile: two hop nodes behind nginx, two workers,
#    PostgreSQL, Redis (AOF) and Prometheus with hop's rules, from
#    compose.yaml itself, with deploy/compose/ci/compose.ci.yaml swapping
#    the public images (no registry is reachable here) for stand-ins built
#    from Debian's packages on the local base. A link made through the
#    proxy, clicks spread over both nodes, the count exact through the
#    workers, and Prometheus scraping all four hop processes with hop's
#    rules loaded. Grafana has no Debian package, so it is not started (its
#    dashboards' queries are run by scripts/observability-check.sh).
# Needs what scripts/container-check.sh builds (the hop image and the
# Debian base); uses ports 8080 and 9090 as compose.yaml publishes them.
# Usage: scripts/compose-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CLICKS=${CLICKS:-200}
BASE=localhost/debian-min:bookworm
source bench/lib.sh
need_podman
use_podman
podman_compose=$(deploy_tool podman-compose podman-compose)
podman image exists "$BASE" && podman image exists localhost/hop:check \
  || fail "run scripts/container-check.sh first (it builds $BASE and localhost/hop:check)"
for port in 8080 9090; do
  ! curl -s -o /dev/null "http://127.0.0.1:$port/" || fail "port $port is taken: compose.yaml publishes it"
done

# The stand-ins, built once per machine.
for image in "postgres postgresql" "redis redis-server" "nginx nginx" "prometheus prometheus"; do
  set -- $image
  podman image exists "localhost/hop-ci-$1" \
    || podman build -q --build-arg BASE="$BASE" --build-arg PACKAGES="$2" \
      -t "localhost/hop-ci-$1" deploy/compose/ci >/dev/null
done
# compose.yaml's hop image, from the host's binary (container-check.sh).
podman tag localhost/hop:check localhost/hop:compose

compose=("$podman_compose" -f compose.yaml -f deploy/compose/ci/compose.ci.yaml)
down() {
  # Anonymous volumes (the image's /data) too.
  local vols
  vols=$(podman ps -a --filter label=io.podman.compose.project=hop --format '{{.ID}}' \
    | xargs -r podman inspect --format '{{range .Mounts}}{{.Name}} {{end}}')
  "${compose[@]}" --profile "$1" down -v -t 10 >>"$work/compose.log" 2>&1 || true
  for v in $vols; do podman volume rm -f "$v" >/dev/null 2>&1 || true; done
}
trap 'down embedded; down cluster; cleanup' EXIT

base=http://127.0.0.1:8080
ready() {
  for _ in $(seq 120); do
    curl -sf -o /dev/null "$base/readyz" && return 0
    sleep 1
  done
  "${compose[@]}" --profile "$1" logs >&2 || true
  fail "compose profile $1: no ready hop at $base"
}
# A key from inside a container (retried: the container may be restarting
# while its store comes up).
key_in() {
  local k
  for _ in $(seq 30); do
    k=$(podman exec "$1" /usr/local/bin/hop keys create --name check --admin 2>/dev/null) && [ -n "$k" ] && { echo "$k"; return; }
    sleep 1
  done
  fail "no API key from $1"
}
clicks_and_count() {
  local key=$1 slug=$2 total
  curl -sf -o /dev/null "$base/api/v1/links" -H "authorization: Bearer $key" \
    -H 'content-type: application/json' -d "{\"url\":\"https://example.com/\",\"slug\":\"$slug\"}" \
    || fail "creating $slug"
  for _ in $(seq "$CLICKS"); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base/$slug")
    [ "$code" = 302 ] || fail "redirect answered $code"
  done
  for _ in $(seq 60); do
    total=$(curl -sf "$base/api/v1/links/$slug/stats?include_bots=true" -H "authorization: Bearer $key" \
      | python3 -c 'import sys,json; print(json.load(sys.stdin)["total_clicks"])')
    [ "$total" = "$CLICKS" ] && return 0
    sleep 1
  done
  fail "$slug: $total clicks counted for $CLICKS"
}

echo "== compose --profile embedded"
"${compose[@]}" --profile embedded up -d >>"$work/compose.log" 2>&1
ready embedded
clicks_and_count "$(key_in hop_hop_1)" emb
down embedded

echo "== compose --profile cluster"
"${compose[@]}" --profile cluster up -d hop-1 hop-2 worker-1 worker-2 proxy postgres redis prometheus \
  >>"$work/compose.log" 2>&1
ready cluster
# Both nodes up (a node that started before PostgreSQL was ready exits and
# is restarted: podman 4.3 ignores `condition: service_healthy`), then
# nginx's fail_timeout (10 s) for one it marked down meanwhile.
for _ in $(seq 120); do
  n=$(curl -s 'http://127.0.0.1:9090/api/v1/query?query=sum(up%7Bjob%3D%22hop%22%7D)' \
    | python3 -c 'import sys,json; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)' 2>/dev/null || echo 0)
  [ "$n" = 2 ] && break
  sleep 1
done
[ "$n" = 2 ] || fail "Prometheus never saw both hop nodes up"
sleep 11
clicks_and_count "$(key_in hop_hop-1_1)" cls
# Prometheus: every hop process scraped, hop's rules loaded, and the
# redirects spread over both nodes.
python3 - <<'EOF'
import json, sys, time, urllib.parse, urllib.request
def q(expr):
    url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]
deadline = time.time() + 60
while True:
    up = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in q("up")}
    per_node = {r["metric"]["instance"]: float(r["value"][1]) for r in q("hop_redirect_duration_seconds_count")}
    want_up = {("hop", "hop-1:8080"), ("hop", "hop-2:8080"), ("hop-worker", "worker-1:9100"), ("hop-worker", "worker-2:9100")}
    ok = all(up.get(t) == "1" for t in want_up) and len(per_node) == 2 and all(v > 0 for v in per_node.values())
    if ok or time.time() > deadline:
        break
    time.sleep(2)
if not ok:
    sys.exit(f"FAIL: Prometheus sees up={up}, redirects per node={per_node}")
rules = json.load(urllib.request.urlopen("http://127.0.0.1:9090/api/v1/rules", timeout=10))["data"]["groups"]
n = sum(len(g["rules"]) for g in rules)
if n == 0:
    sys.exit("FAIL: Prometheus loaded none of hop's rules")
print(f"compose cluster: 4 hop processes scraped, {n} rules loaded, redirects per node {per_node}")
EOF
echo "compose: embedded and cluster profiles up, $CLICKS clicks counted exactly in each"
