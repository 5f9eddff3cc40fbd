"""Drives hop's Dub API (--compat-dub) with Dub's own Python SDK (PyPI
`dub` 0.39.0), which nobody here wrote, its server URL set to hop's /dub.
The SDK checks every answer against Dub's models (every key of a link,
error codes matching their statuses). Prints one JSON object of what each
call gave; tests/api/compat.rs asserts on it.

usage: dub_client.py BASE_URL API_KEY
"""
import json
import sys
import time

import requests
from dub import Dub
from dub.models import errors

base, token = sys.argv[1:3]
out = {}


def dump(x):
    if isinstance(x, list):
        return [dump(i) for i in x]
    if hasattr(x, "model_dump"):
        return x.model_dump(mode="json", by_alias=True)
    return x


def attempt(f):
    """What a call gave, or the error it was refused with."""
    try:
        return {"ok": dump(f())}
    except errors.DubError as e:
        return {"error": type(e).__name__, "status": e.status_code, "body": json.loads(e.body)}


with Dub(token=token, server_url=base + "/dub") as d:
    made = d.links.create(request={
        "url": "https://example.com/from-dub?x=1", "key": "dub-one", "title": "From the SDK",
        "tag_names": ["launch", "sdk"], "expired_url": "https://example.com/expired",
    })
    out["created"] = dump(made)
    out["taken"] = attempt(lambda: d.links.create(request={"url": "https://example.com/", "key": "dub-one"}))
    out["bad_url"] = attempt(lambda: d.links.create(request={"url": "javascript:alert(1)"}))
    other = d.links.create(request={"url": "https://example.com/other"})
    out["other_key"] = other.key
    out["by_key"] = dump(d.links.get(request={"domain": made.domain, "key": "dub-one"}))
    out["by_id"] = dump(d.links.get(request={"link_id": made.id}))

    # Follow it as two browsers (from a search engine and directly) and a
    # crawler, which Dub does not count.
    agents = [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36", "https://www.google.com/"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/17.0 Mobile/15E148 Safari/604.1", None),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", None),
    ]
    out["follow"] = []
    for ua, ref in agents:
        h = {"User-Agent": ua}
        if ref:
            h["Referer"] = ref
        r = requests.get(made.short_link.replace("http://hop.test", base), headers=h, allow_redirects=False)
        out["follow"].append([r.status_code, r.headers.get("location")])

    def analytics(group, **kw):
        return dump(d.analytics.retrieve(request={"event": "clicks", "group_by": group,
                                                  "link_id": made.id, **kw}))

    deadline = time.time() + 15
    while analytics("count")["clicks"] < 2 and time.time() < deadline:
        time.sleep(0.2)
    out["count"] = analytics("count", interval="24h")
    out["count_by_key"] = dump(d.analytics.retrieve(request={
        "group_by": "count", "domain": made.domain, "key": "dub-one",
        "start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}))
    out["workspace_count"] = dump(d.analytics.retrieve(request={"group_by": "count", "interval": "all"}))
    out["timeseries"] = analytics("timeseries", interval="24h")
    out["timeseries_all"] = analytics("timeseries", interval="all", timezone="Europe/Paris")
    for g in ["countries", "devices", "browsers", "os", "referers"]:
        out[g] = analytics(g, interval="7d")
    out["cities"] = attempt(lambda: analytics("cities"))
    out["filtered"] = attempt(lambda: analytics("count", country="US"))

    out["listed"] = [l.key for l in d.links.list(request={}).result]
    out["listed_tag"] = [l.key for l in d.links.list(request={"tag_names": "launch"}).result]
    out["listed_search"] = [l.key for l in d.links.list(request={"search": "other"}).result]
    out["updated"] = dump(d.links.update(link_id=made.id, request_body={
        "url": "https://example.com/updated", "title": "Updated", "tag_names": ["launch"]}))
    r = requests.get(base + "/dub-one", allow_redirects=False)
    out["follow_updated"] = [r.status_code, r.headers.get("location")]
    out["deleted"] = dump(d.links.delete(link_id=other.id))
    out["gone"] = attempt(lambda: d.links.get(request={"link_id": other.id}))

with Dub(token="hop_not_a_real_key", server_url=base + "/dub") as d:
    out["wrong_key"] = attempt(lambda: d.links.list(request={}).result)

print(json.dumps(out))
