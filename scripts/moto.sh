#!/usr/bin/env bash
# The local DynamoDB server of the tests: moto[server] from PyPI in the venv
# target/moto (tests/support/dynamo.rs starts scripts/moto-server.py with it,
# single-threaded). Pinned: its behaviour is part of what the tests assume.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/moto
if ! "$venv/bin/python" -c 'import moto.dynamodb, werkzeug' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "moto[server]==5.2.5"
fi
echo "moto ready in $venv"
