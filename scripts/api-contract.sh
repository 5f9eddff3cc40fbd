#!/usr/bin/env bash
# API contract test: schemathesis (PyPI) generates requests from the OpenAPI
# document that a live hop serves and checks every answer against it: no 5xx,
# every status and body as declared, schema-valid input accepted and invalid
# input refused.
#
#   scripts/api-contract.sh [HOP_BINARY] [MAX_EXAMPLES]
#
# Runs against a private server on a free loopback port with its own SQLite
# file, an admin key (so every operation is reachable) and rate limits off
# (so the run tests the contract, not the limiter; tests/api/limits.rs does).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/debug/hop}
examples=${2:-25}
[ -x "$bin" ] || cargo build --quiet
st_version=4.32.5
if ! python3 -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$st_version')" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$st_version"
fi

source scripts/private-hop.sh
start_private_hop "$bin" contract --webhooks-allow-private \
  --rate-create 0 --rate-auth-failures 0 --rate-api 0 --rate-link-secret 0

# A link the path-parameter operations can find (schemathesis makes up its
# own slugs too; those are 404s, which the document declares).
curl -fsS -X POST "$base/api/v1/links" \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"url":"https://example.com/contract","slug":"contract"}' >/dev/null

status=0
PYTHONPATH=scripts/schemathesis SCHEMATHESIS_HOOKS=hop_hooks \
  st --config-file scripts/schemathesis/schemathesis.toml run "$base/api/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --max-examples "$examples" \
  --seed "${SEED:-1}" \
  --no-color \
  --report junit --report-dir "target/schemathesis" || status=$?

if [ $status -ne 0 ]; then
  echo "--- server log ---" >&2
  tail -50 "$dir/server.log" >&2
fi
exit $status
