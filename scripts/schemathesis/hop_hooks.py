"""Schemathesis hooks for hop's contract run (scripts/api-contract.sh).

Some rules of the API depend on the clock, on several fields at once or
on lists a JSON Schema does not hold:

- an expiry (`expires_at`) must be in the future;
- a stats or export range's `from` must not come after its `to`;
- a stats range may hold at most 5000 buckets of its interval (`minute`,
  `hour`, `day`; when absent, chosen from the range's length);
- smart link rules: ids unique in their list and not `default` or
  `fallback`, exactly
  one of `target` and `split`, a time window not empty, its `from` before
  its `to` and its hours not equal, a time zone that exists (IANA names are
  replaced by one), addresses that parse (replaced by one), and a body
  under the 64 KiB bound (long lists are cut);
- a rule's target or a fallback URL must not be on a domain the run's
  takedowns (made up by schemathesis too) took down: they are replaced by
  example.com URLs (the `url` field checks target parsing already);
- webhooks: an endpoint URL must answer somewhere this machine may send to
  (it is replaced by a loopback URL nothing listens on: the contract
  server allows private endpoints, and delivery attempts stay on this
  machine), listed links must exist (the contract link), a scope is a tag
  or links, not both, a secret must decode to 24-64 bytes, and a replay
  names one message or a range whose `from` is before its `to`;
- imports from another shortener's API (Shlink, Kutt, Bitly, Dub) would
  reach out of this machine: in every case, positive or negative, such a
  source is replaced by `csv` before the request (so a job only ever reads
  the request's own data); which fields an import needs depends on its
  source, so a positive case becomes a CSV import with a small CSV.

Before each request, a schema-valid (positive) case that breaks only such
a rule is moved to the nearest valid value, so that "schema-valid data is
accepted" stays a strict check for everything else. Negative cases are
never touched: they must still be refused. A field that is not an RFC 3339
date-time (checked strictly, not by Python's laxer ISO parser) is left as
generated.

Positive cases of the stats and export operations also get the slug of the
link scripts/api-contract.sh creates, so that their query validation runs
against a real link in every phase, not only where the stateful phase
happens to chain a created link into them.
"""
import json
import re
from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis.generation.modes import GenerationMode

EXISTING_SLUG = "contract"
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

MAX_BUCKETS = 5000
INTERVALS = {"minute": 60, "hour": 3600, "day": 86400}


def _instant(value):
    if not isinstance(value, str) or not RFC3339.match(value):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _rfc3339(t):
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _future_expiry(body):
    if isinstance(body, dict):
        t = _instant(body.get("expires_at"))
        now = datetime.now(timezone.utc)
        if t is not None and t <= now:
            body["expires_at"] = _rfc3339(now + timedelta(days=365 * 20))


def _auto_interval(span):
    if span <= timedelta(hours=6):
        return "minute"
    if span <= timedelta(days=14):
        return "hour"
    return "day"


def _valid_range(query):
    if not isinstance(query, dict):
        return
    # Repeated or non-string parameters are negative cases: left alone.
    if any(not isinstance(query.get(k), (str, type(None))) for k in ("from", "to", "interval")):
        return
    start, end = _instant(query.get("from")), _instant(query.get("to"))
    if (query.get("from") is not None and start is None) or (
        query.get("to") is not None and end is None
    ):
        return
    end = end or datetime.now(timezone.utc)
    if start is not None and start > end:
        start, end = end, start
        query["to"] = _rfc3339(end)
    interval = query.get("interval")
    if interval is not None and (not isinstance(interval, str) or interval not in INTERVALS):
        return  # a negative case
    if start is None:
        # The default start is the link's creation, a moment ago.
        if end <= datetime.now(timezone.utc) + timedelta(minutes=1):
            if "to" in query:
                query["to"] = _rfc3339(end)
            return
        start = datetime.now(timezone.utc) - timedelta(minutes=1)
    step = timedelta(seconds=INTERVALS[interval or _auto_interval(end - start)])
    if (end - start) / step + 2 > MAX_BUCKETS:
        start = end - step * (MAX_BUCKETS - 100)
    query["from"] = _rfc3339(start)
    if "to" in query:
        query["to"] = _rfc3339(end)


MAX_BODY = 60_000


def _unique_ids(items, prefix):
    seen = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        n = i
        while item["id"] in seen or item["id"] in ("default", "fallback"):
            item["id"] = f"{prefix}{n}"
            n += 1
        seen.add(item["id"])


def _valid_time(window):
    if not isinstance(window, dict):
        return
    if "tz" in window:
        window["tz"] = "Europe/Berlin"
    start, end = _instant(window.get("from")), _instant(window.get("to"))
    if start is not None and end is not None and start >= end:
        window["to"] = _rfc3339(start + timedelta(days=1))
    hours = window.get("hours")
    if isinstance(hours, dict) and hours.get("from") == hours.get("to"):
        hours["to"] = 24 if hours.get("from") == 0 else hours["from"]
        hours["from"] = 0
    if not any(k in window for k in ("from", "to", "days", "hours")):
        window["days"] = ["mon"]


def _valid_rules(body):
    if isinstance(body, dict) and isinstance(body.get("fallback_url"), str):
        body["fallback_url"] = "https://example.com/fallback"
    rules = body.get("rules") if isinstance(body, dict) else None
    if not isinstance(rules, list):
        return
    _unique_ids(rules, "h")
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        if "target" in rule and "split" in rule:
            del rule["split"]
        if "target" in rule or "split" not in rule:
            rule["target"] = "https://example.com/rule"
        if isinstance(rule.get("split"), list):
            _unique_ids(rule["split"], "v")
            for variant in rule["split"]:
                if isinstance(variant, dict):
                    variant["target"] = "https://example.com/variant"
        for condition in rule.get("if") or []:
            if not isinstance(condition, dict):
                continue
            if isinstance(condition.get("ip"), list):
                condition["ip"] = ["203.0.113.0/24"]
            _valid_time(condition.get("time"))
    if len(json.dumps(body)) > MAX_BODY:
        del rules[3:]
        for rule in rules:
            if isinstance(rule, dict):
                del (rule.get("if") or [])[3:]
                del (rule.get("split") or [])[3:]
                for condition in rule.get("if") or []:
                    for value in condition.values() if isinstance(condition, dict) else []:
                        if isinstance(value, list):
                            del value[3:]


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


WEBHOOK_URL = "http://127.0.0.1:9/hook"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _valid_webhook(body):
    if not isinstance(body, dict):
        return
    if isinstance(body.get("url"), str):
        body["url"] = WEBHOOK_URL
    if isinstance(body.get("secret"), str):
        body["secret"] = WEBHOOK_SECRET
    scope = body.get("scope")
    if isinstance(scope, dict):
        if isinstance(scope.get("links"), list):
            if scope.get("tag") is not None:
                del scope["links"]
            else:
                scope["links"] = [EXISTING_SLUG]


def _valid_replay(body):
    if not isinstance(body, dict):
        return
    if isinstance(body.get("message_id"), str) and body["message_id"]:
        for k in ("from", "to"):
            body.pop(k, None)
        return
    body.pop("message_id", None)
    now = datetime.now(timezone.utc)
    start, end = _instant(body.get("from")), _instant(body.get("to"))
    start = start or now - timedelta(days=1)
    end = end or now
    if start >= end:
        start, end = end, start + timedelta(seconds=1) if start == end else start
    body["from"], body["to"] = _rfc3339(start), _rfc3339(end)


def _safe_import(body):
    # An import from another shortener's API would reach out of this
    # machine: the contract check imports CSVs instead (any mode).
    if isinstance(body, dict) and body.get("source") in ("shlink", "kutt", "bitly", "dub"):
        body["source"] = "csv"


def _valid_import(body):
    # Which fields a source needs depends on the source: a schema-valid
    # case becomes a CSV import with a CSV to read.
    if isinstance(body, dict):
        body["source"] = "csv"
        body["data"] = "url,slug\nhttps://example.com/imported,\n"


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.method.upper() == "POST" and case.path.endswith("/imports"):
        _safe_import(case.body)
        if _positive(case):
            _valid_import(case.body)
    if not _positive(case):
        return
    if case.method.upper() in ("POST", "PATCH"):
        _future_expiry(case.body)
        _valid_rules(case.body)
    if case.method.upper() in ("POST", "PATCH") and "/webhooks" in case.path:
        if case.path.endswith("/replay"):
            _valid_replay(case.body)
        else:
            _valid_webhook(case.body)
    if case.method.upper() == "PATCH" and "/rules/" in case.path and isinstance(case.body, dict):
        # One rule's patch: checked with the link's list like a whole one.
        _valid_rules({"rules": [case.body]})
    if case.method.upper() == "GET" and case.path.endswith(("/stats", "/clicks.csv", "/clicks.ndjson")):
        if isinstance(case.path_parameters, dict) and "slug" in case.path_parameters:
            case.path_parameters["slug"] = EXISTING_SLUG
        _valid_range(case.query)
