# Shared by the bench scripts (sourced): a scratch directory, processes to
# end on exit, free loopback ports, and private PostgreSQL and Redis servers.
work=$(mktemp -d)
chmod 755 "$work"
pids=()
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
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

# A private PostgreSQL (initdb, default durability) and redis-server (AOF,
# appendfsync everysec) in $work; exports HOP_DATABASE_URL and HOP_REDIS_URL.
start_pg_redis() {
  local pg_port redis_port
  pg_port=$(free_port)
  mkdir "$work/pg"
  if [ "$(id -u)" = 0 ]; then chown postgres "$work/pg"; fi
  as_pg "$PGBIN/initdb" -D "$work/pg" -A trust -U postgres --no-sync >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" \
    --appendonly yes --appendfsync everysec >/dev/null & pids+=($!)
  sleep 0.3
  export HOP_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  export HOP_REDIS_URL="redis://127.0.0.1:$redis_port/"
  HOP_CLUSTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export HOP_CLUSTER_KEY
}
