#!/usr/bin/env bash
# The independent webhook signature verifier of the tests: the Standard
# Webhooks reference library from PyPI (`standardwebhooks`) in the venv
# target/webhooks-venv, which tests run scripts/verify-webhooks.py with.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/webhooks-venv
if ! "$venv/bin/python" -c 'import standardwebhooks' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "standardwebhooks==1.1.0"
fi
echo "standardwebhooks ready in $venv"
