#!/usr/bin/env bash
# Other shorteners' client libraries, which the compatibility tests
# (tests/api/compat.rs) point at hop: the PyPI `yourls` client in the venv
# target/compat-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/compat-venv
if ! "$venv/bin/python" -c 'import yourls' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "yourls==1.2.3"
fi
echo "compat clients ready in $venv"
