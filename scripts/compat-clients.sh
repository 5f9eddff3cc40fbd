#!/usr/bin/env bash
# Other shorteners' client libraries, which the compatibility tests
# (tests/api/compat.rs) point at hop: the PyPI `yourls`, `dub`,
# `bitly-api-sdk` and `pyshorteners` clients in the venv
# target/compat-venv, and Shlink's JavaScript SDK (npm) in
# target/compat-node. Versions are pinned here and in
# scripts/compat/package.json.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/compat-venv
if ! "$venv/bin/python" -c 'import yourls, dub, bitlyapi, pyshorteners' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "yourls==1.2.3" "dub==0.39.0" "bitly-api-sdk==1.0.0" "pyshorteners==1.0.1"
fi
node=target/compat-node
if ! cmp -s scripts/compat/package.json "$node/package.json" ||
  [ ! -d "$node/node_modules/@shlinkio/shlink-js-sdk" ]; then
  mkdir -p "$node"
  cp scripts/compat/package.json "$node/package.json"
  (cd "$node" && npm install --no-audit --no-fund --silent)
fi
echo "compat clients ready in $venv and $node"
