#!/usr/bin/env python3
"""Verifies webhook deliveries with the Standard Webhooks reference library
(PyPI `standardwebhooks`), independently of hop's own signing code.

    scripts/verify-webhooks.py SECRET FILE

FILE holds one JSON object per line: the request's `webhook-id`,
`webhook-timestamp` and `webhook-signature` headers and its `body`. Every
line must verify; prints how many did and exits 1 if any did not.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

secret, path = sys.argv[1], sys.argv[2]
wh = Webhook(secret)
ok = bad = 0
with open(path, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        headers = {k: r[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        try:
            wh.verify(r["body"], headers)
            ok += 1
        except Exception as e:  # the library raises WebhookVerificationError
            bad += 1
            print(f"not verified: {r['webhook-id']}: {e}", file=sys.stderr)
print(f"verified {ok} of {ok + bad}")
sys.exit(1 if bad or not ok else 0)
