#!/usr/bin/env bash
# A/B redirect benchmark: baseline hop (70fb9f5) vs this change, and a bare
# hyper 302, each pinned to CPU 0, wrk pinned to CPU 1, alternating, RUNS runs.
set -euo pipefail
BASE=${BASE:?path to the baseline hop binary}
NEW=${NEW:-target/release/hop}
BARE=${BARE:-target/release/examples/bare_redirect}
RUNS=${RUNS:-3}; DURATION=${DURATION:-6}; CONNS=64
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf $work' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for run in $(seq $RUNS); do
  for t in bare base new; do
    p=$(port)
    case $t in
      bare) taskset -c 0 $BARE 127.0.0.1:$p & pid=$!; sleep 0.5;;
      *) bin=$BASE; [ $t = new ] && bin=$NEW
         rm -f $work/$t.db*
         HOP_LOG=warn taskset -c 0 $bin serve --listen 127.0.0.1:$p --database-url sqlite://$work/$t.db --public-url http://hop.bench & pid=$!
         for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$p/healthz && break; sleep 0.1; done
         curl -sf -o /dev/null http://127.0.0.1:$p/api/v1/links -H 'content-type: application/json' -d '{"url":"https://example.com/","slug":"bench"}'
         curl -s -o /dev/null http://127.0.0.1:$p/bench;;
    esac
    out=$(taskset -c 1 wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:$p/bench)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    echo "$t $rps $p99"
    kill $pid; wait $pid 2>/dev/null || true
  done
done
