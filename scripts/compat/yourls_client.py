"""Drives hop's YOURLS API with the PyPI `yourls` client (1.2.3), which
nobody here wrote, and with plain HTTP for what that client does not do
(timed signatures, the XML, JSONP and simple formats). Prints one JSON
object of what each call gave; tests/api/compat.rs asserts on it.

usage: yourls_client.py BASE_URL SIGNATURE TOKEN
"""
import hashlib
import json
import sys
import time

import requests
import yourls
from yourls.exceptions import YOURLSHTTPError

base, signature, token = sys.argv[1:4]
api = base + "/yourls-api.php"
out = {}

client = yourls.YOURLSClient(api, signature=signature)
made = client.shorten("https://example.com/from-yourls?q=1", keyword="yclient", title="From the client")
out["shorten"] = {"keyword": made.keyword, "shorturl": made.shorturl, "url": made.url,
                  "title": made.title, "date": made.date.isoformat()}
random = client.shorten("https://example.com/random-keyword")
out["random_keyword"] = random.keyword
out["expand"] = client.expand("yclient")
out["expand_by_url"] = client.expand(made.shorturl)

# Follow the short link twice, as a browser would (no redirect followed).
for _ in range(2):
    r = requests.get(made.shorturl.replace("http://hop.test", base), allow_redirects=False,
                     headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"})
    out.setdefault("follow", []).append([r.status_code, r.headers.get("location")])

deadline = time.time() + 10
while True:
    stats = client.url_stats("yclient")
    if stats.clicks >= 2 or time.time() > deadline:
        break
    time.sleep(0.1)
out["url_stats"] = {"clicks": stats.clicks, "url": stats.url, "title": stats.title,
                    "shorturl": stats.shorturl}
links, db = client.stats(filter="top", limit=1)
out["stats_top"] = {"shorturl": links[0].shorturl, "clicks": links[0].clicks,
                    "total_links": db.total_links, "total_clicks": db.total_clicks}
db = client.db_stats()
out["db_stats"] = {"total_links": db.total_links, "total_clicks": db.total_clicks}

try:
    client.shorten("https://example.com/other", keyword="yclient")
    out["taken"] = "no error"
except YOURLSHTTPError as e:
    out["taken"] = {"status": e.response.status_code, "body": e.response.json()}

try:
    yourls.YOURLSClient(api, signature="wrong").db_stats()
    out["wrong_signature"] = "no error"
except YOURLSHTTPError as e:
    out["wrong_signature"] = {"status": e.response.status_code, "body": e.response.json()}

# Timed signatures: md5 (YOURLS's default) and sha256 of timestamp + token.
now = str(int(time.time()))
r = requests.get(api, params={"action": "expand", "shorturl": "yclient", "format": "json",
                              "timestamp": now,
                              "signature": hashlib.md5((now + token).encode()).hexdigest()})
out["timed_md5"] = [r.status_code, r.json().get("longurl")]
r = requests.post(api, data={"action": "version", "format": "json", "timestamp": now, "hash": "sha256",
                             "signature": hashlib.sha256((now + token).encode()).hexdigest()})
out["timed_sha256"] = [r.status_code, r.json()]
old = str(int(time.time()) - 50000)
r = requests.get(api, params={"action": "version", "format": "json", "timestamp": old,
                              "signature": hashlib.md5((old + token).encode()).hexdigest()})
out["timed_expired"] = [r.status_code, r.json()]
r = requests.get(api, params={"action": "version", "format": "json", "signature": token})
out["token"] = [r.status_code, r.json()]

# The other formats.
r = requests.get(api, params={"action": "expand", "shorturl": "yclient", "signature": signature})
out["xml"] = [r.status_code, r.headers.get("content-type"), r.text]
r = requests.get(api, params={"action": "expand", "shorturl": "yclient", "signature": signature,
                              "format": "simple"})
out["simple"] = [r.status_code, r.headers.get("content-type"), r.text]
r = requests.get(api, params={"action": "url-stats", "shorturl": "nope", "signature": signature,
                              "format": "jsonp", "callback": "cb"})
out["jsonp_missing"] = [r.status_code, r.headers.get("content-type"), r.text]
r = requests.get(api, params={"action": "version", "signature": signature, "format": "jsonp",
                              "callback": "alert(1)"})
out["jsonp_bad_callback"] = [r.status_code, r.text]
r = requests.get(api, params={"action": "nope", "signature": signature, "format": "json"})
out["unknown_action"] = [r.status_code, r.json()]
r = requests.get(api, params={"action": "shorturl", "url": "javascript:alert(1)",
                              "signature": signature, "format": "json"})
out["bad_url"] = [r.status_code, r.json()]
r = requests.get(api, params={"action": "version", "format": "json"})
out["no_signature"] = [r.status_code, r.json()]

print(json.dumps(out))
