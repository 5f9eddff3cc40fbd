# Sourced by scripts that test a live hop (api-contract.sh, client-check.sh):
#   start_private_hop BINARY KEY_NAME [SERVE_ARGS...]
# starts `BINARY serve` on a free loopback port with its own SQLite file in a
# temporary directory and an admin key, waits until it answers, and sets
#   $dir (the temporary directory, removed on exit), $base (its URL),
#   $key (the admin key), $pid (the server, stopped on exit);
# the server's log is $dir/server.log.
dir=$(mktemp -d)
pid=
stop_private_hop() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap stop_private_hop EXIT

start_private_hop() {
  local bin=$1 name=$2
  shift 2
  local port db
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  db="sqlite://$dir/hop.db"
  key=$("$bin" keys create --name "$name" --admin --database-url "$db" --log-level warn | grep -o 'hop_[A-Za-z0-9_-]*' | head -1)
  [ -n "$key" ] || { echo "could not create an API key" >&2; exit 1; }
  base="http://127.0.0.1:$port"
  "$bin" serve --listen "127.0.0.1:$port" --public-url "$base" \
    --database-url "$db" --log-level warn "$@" >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "hop did not start:" >&2
  tail -20 "$dir/server.log" >&2
  exit 1
}
