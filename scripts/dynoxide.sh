#!/usr/bin/env bash
# The second local DynamoDB server of the tests: dynoxide (crate
# dynoxide-rs, an SQLite-backed emulator), built into target/dynoxide with
# only its HTTP server. Pinned: its behaviour is part of what the tests
# assume. scripts/test.sh runs the store conformance suite against it too
# (HOP_TEST_DYNAMO=dynoxide); the two-region tests stay on moto, which
# keeps regions apart (dynoxide has one namespace per process).
set -euo pipefail
cd "$(dirname "$0")/.."
root=target/dynoxide
if ! "$root/bin/dynoxide" --version >/dev/null 2>&1; then
  cargo install dynoxide-rs --version 3.2.0 --locked --quiet \
    --no-default-features --features native-sqlite,http-server,cli --root "$root"
fi
echo "dynoxide ready in $root"
