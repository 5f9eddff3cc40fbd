"""Schemathesis hooks for hop's contract run (scripts/api-contract.sh).

Three rules of the API depend on the clock or on several fields at once,
which a JSON Schema cannot say:

- an expiry (`expires_at`) must be in the future;
- a stats range's `from` must not come after its `to`;
- a stats range may hold at most 5000 buckets of its interval (`minute`,
  `hour`, `day`; when absent, chosen from the range's length).

Before each request, a schema-valid (positive) case that breaks only such
a rule is moved to the nearest valid value, so that "schema-valid data is
accepted" stays a strict check for everything else. Negative cases are
never touched: they must still be refused. A field that is not an RFC 3339
date-time (checked strictly, not by Python's laxer ISO parser) is left as
generated.

Positive cases of the stats and CSV operations also get the slug of the
link scripts/api-contract.sh creates, so that their query validation runs
against a real link in every phase, not only where the stateful phase
happens to chain a created link into them.
"""
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


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if not _positive(case):
        return
    if case.method.upper() in ("POST", "PATCH"):
        _future_expiry(case.body)
    if case.method.upper() == "GET" and case.path.endswith(("/stats", "/clicks.csv")):
        if isinstance(case.path_parameters, dict) and "slug" in case.path_parameters:
            case.path_parameters["slug"] = EXISTING_SLUG
        _valid_range(case.query)
