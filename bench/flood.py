"""The dashboard's side of bench/flood.sh: first-paint calls timed every
250 ms while the flood runs, one SSE stream's `totals` events recorded, then
the same calls on the quiet server once every click is stored.

Usage: flood.py BASE_URL KEY DURATION_S OUT.json"""

import http.client
import json
import sys
import threading
import time
import urllib.parse
import urllib.request

base, key, duration, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
auth = {"authorization": f"Bearer {key}"}
totals = []  # (monotonic s, clicks_with_bots)
stop = threading.Event()


def get(path):
    t = time.monotonic()
    req = urllib.request.Request(base + path, headers=auth)
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
        if r.status != 200:
            sys.exit(f"FAIL: {path} answered {r.status}")
    return (time.monotonic() - t) * 1000, json.loads(body)


def listen():
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", "/api/v1/links/viral/live", headers=auth)
    r = conn.getresponse()
    if r.status != 200:
        sys.exit(f"FAIL: live stream answered {r.status}")
    event = None
    while not stop.is_set():
        line = r.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "totals":
            totals.append((time.monotonic(), json.loads(line[5:])["clicks_with_bots"]))


threading.Thread(target=listen, daemon=True).start()
stats_flood, recent_flood = [], []
start = time.monotonic()
while time.monotonic() - start < duration + 1:
    ms, _ = get("/api/v1/links/viral/stats")
    stats_flood.append(ms)
    ms, _ = get("/api/v1/links/viral/clicks/recent?limit=20")
    recent_flood.append(ms)
    time.sleep(0.25)
flood_end = time.monotonic()

# Every click stored: the count holds still for two seconds.
stored, since = -1, time.monotonic()
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    _, s = get("/api/v1/links/viral/stats?include_bots=true")
    if s["total_clicks"] != stored:
        stored, since = s["total_clicks"], time.monotonic()
    elif time.monotonic() - since > 2 and totals and totals[-1][1] == stored:
        break
    time.sleep(0.25)
stop.set()

stats_quiet = [get("/api/v1/links/viral/stats")[0] for _ in range(15)]
recent_quiet = [get("/api/v1/links/viral/clicks/recent?limit=20")[0] for _ in range(15)]
during = [t for t, _ in totals if start <= t <= flood_end]
gaps = [(b - a) * 1000 for a, b in zip(during, during[1:])] or [0]
json.dump(
    {
        "stats_flood": stats_flood,
        "recent_flood": recent_flood,
        "stats_quiet": stats_quiet,
        "recent_quiet": recent_quiet,
        "totals_events": len(during),
        "totals_gaps": gaps,
        "stored": stored,
        "last_totals": totals[-1][1] if totals else None,
    },
    open(out, "w"),
)
