#!/usr/bin/env bash
# Observability as code, checked for real (issue 14):
#  1. promtool checks hop's rules and runs their unit tests (every alert);
#  2. a real Prometheus on a loopback port scrapes real hops under a short
#     load: one embedded node, and a cluster (private PostgreSQL and Redis,
#     two nodes, one worker), with hop's rules loaded and the scrape config
#     of deploy/observability/prometheus/prometheus.yml (targets and rule
#     path replaced by these);
#  3. every recording rule and every PromQL expression of every Grafana
#     panel is asked of that Prometheus and must return data. A panel whose
#     query returns nothing fails the check.
# Usage: scripts/observability-check.sh [path/to/hop]   (default target/debug/hop)
set -euo pipefail
cd "$(dirname "$0")/.."
HOP=${1:-target/debug/hop}
OBS=deploy/observability
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
  else
    echo "missing: prometheus (sudo apt-get install prometheus)" >&2
    exit 1
  fi
fi
[ -x "$HOP" ] || cargo build --bin hop

promtool check rules "$OBS/prometheus/rules.yml"
promtool test rules "$OBS/prometheus/rules_test.yml"

source bench/lib.sh
export HOP_LOG=error
# Embedded: one node with its own SQLite and click log.
emb_port=$(free_port)
mkdir "$work/emb"
env -u HOP_DATABASE_URL -u HOP_REDIS_URL "$HOP" serve --listen "127.0.0.1:$emb_port" \
  --database-url "sqlite://$work/emb/hop.db" --public-url http://hop.check & pids+=($!)
wait_http "http://127.0.0.1:$emb_port/healthz"
emb_key=$("$HOP" keys create --name check --admin --database-url "sqlite://$work/emb/hop.db" 2>/dev/null)
# Cluster: two nodes and a worker on private PostgreSQL and Redis.
start_pg_redis
"$HOP" migrate >/dev/null
key=$("$HOP" keys create --name check --admin 2>/dev/null)
ports=()
for _ in 1 2; do
  p=$(free_port); ports+=("$p")
  "$HOP" serve --listen "127.0.0.1:$p" --public-url http://hop.check --no-migrate & pids+=($!)
done
worker_port=$(free_port)
"$HOP" worker --no-migrate --worker-name check --listen "127.0.0.1:$worker_port" & pids+=($!)
for p in "${ports[@]}"; do wait_http "http://127.0.0.1:$p/healthz"; done
wait_http "http://127.0.0.1:$worker_port/healthz"

# Prometheus, with the repository's scrape config made local.
prom_port=$(free_port)
cp "$OBS/prometheus/rules.yml" "$work/rules.yml"
python3 - "$OBS/prometheus/prometheus.yml" "$work/prometheus.yml" "$work/rules.yml" \
  "127.0.0.1:$emb_port,127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}" "127.0.0.1:$worker_port" <<'EOF'
import sys, yaml
src, dst, rules, nodes, workers = sys.argv[1:]
c = yaml.safe_load(open(src))
c["global"]["scrape_interval"] = "1s"
c["global"]["evaluation_interval"] = "1s"
c["rule_files"] = [rules]
jobs = {j["job_name"]: j for j in c["scrape_configs"]}
assert set(jobs) == {"hop", "hop-worker"}, jobs
jobs["hop"]["static_configs"] = [{"targets": nodes.split(",")}]
jobs["hop-worker"]["static_configs"] = [{"targets": workers.split(",")}]
yaml.safe_dump(c, open(dst, "w"))
EOF
promtool check config "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn & pids+=($!)
wait_http "http://127.0.0.1:$prom_port/-/ready"

# A short load: links, redirects (found and not), stats reads, a few 4xx.
load() {
  local base=$1 key=$2 slug=$3
  curl -sf -o /dev/null "$base/api/v1/links" -H "authorization: Bearer $key" \
    -H 'content-type: application/json' -d "{\"url\":\"https://example.com/$slug\",\"slug\":\"$slug\"}" \
    || fail "creating $slug on $base"
  for _ in $(seq 200); do
    curl -s -o /dev/null -A 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0' "$base/$slug"
  done
  curl -s -o /dev/null "$base/no-such-link"
  curl -s -o /dev/null "$base/api/v1/links" -H 'authorization: Bearer wrong'
  curl -sf -o /dev/null "$base/api/v1/links/$slug/stats" -H "authorization: Bearer $key" || fail "stats on $base"
}
for round in 1 2 3 4 5 6; do
  load "http://127.0.0.1:$emb_port" "$emb_key" "e$round"
  load "http://127.0.0.1:${ports[0]}" "$key" "a$round"
  load "http://127.0.0.1:${ports[1]}" "$key" "b$round"
  sleep 1
done
sleep 3

# Every expression must return data.
python3 - "http://127.0.0.1:$prom_port" "$OBS" <<'EOF'
import glob, json, sys, time, urllib.parse, urllib.request, yaml
prom, obs = sys.argv[1:]
def query(expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body["status"] != "success":
        raise SystemExit(f"FAIL: {expr}: {body}")
    return body["data"]["result"]
exprs = []
for group in yaml.safe_load(open(f"{obs}/prometheus/rules.yml"))["groups"]:
    for rule in group["rules"]:
        if "record" in rule:
            exprs.append((f"recording rule {rule['record']}", rule["expr"]))
            exprs.append((f"recorded series {rule['record']}", rule["record"]))
for path in sorted(glob.glob(f"{obs}/grafana/dashboards/*.json")):
    dash = json.load(open(path))
    for panel in dash["panels"]:
        for t in panel["targets"]:
            e = t["expr"].replace("$__rate_interval", "1m").replace('"$instance"', '".+"')
            exprs.append((f"{dash['uid']} / {panel['title']} / {t['refId']}", e))
# The first scrapes and rule evaluations take a few seconds.
deadline = time.time() + 60
missing = exprs
while True:
    missing = [(name, e) for name, e in exprs if not query(e)]
    if not missing or time.time() > deadline:
        break
    time.sleep(2)
for name, e in missing:
    print(f"FAIL: no data for {name}: {e}", file=sys.stderr)
if missing:
    sys.exit(1)
print(f"observability: {len(exprs)} expressions (recording rules and Grafana panels) all return data")
EOF
