#!/usr/bin/env bash
# The whole test suite: installs what the tests need that a fresh Debian
# machine with Rust lacks (npm, pip, Chromium, PostgreSQL, Redis, MariaDB, moto, dynoxide), fetches the real GeoIP test databases, runs cargo test (and the DynamoDB store's tests with its feature), then the API contract check (schemathesis), a generated client (openapi-python-client) the observability check (Prometheus rules and Grafana panels against a real Prometheus), the deploy files (Kubernetes, compose, workflows), the container image and compose.yaml's two profiles (run with podman).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v npm >/dev/null || need+=(npm)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
# scripts/client-check.sh installs the generated client in a venv.
python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# Cluster tests start private PostgreSQL and Redis servers.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
# The YOURLS import test starts a private MariaDB server and dumps it.
command -v mariadb-install-db >/dev/null || need+=(mariadb-server)
command -v mariadb-dump >/dev/null || need+=(mariadb-client)
# Browser tests drive Debian's Chromium through chromedriver.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing: ${need[*]} (install them, e.g. sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

./scripts/test-data.sh
./scripts/moto.sh
./scripts/webhooks-verifier.sh
./scripts/compat-clients.sh
if [ $# -eq 0 ]; then ./scripts/dynoxide.sh; fi
cargo test "$@"
# The DynamoDB store (cargo feature dynamodb, off by default): its unit
# tests and the store conformance suite against moto, single-threaded
# (skipped when only some tests were asked for).
if [ $# -eq 0 ]; then
  cargo test --features dynamodb --lib --test store_conformance dynamo
  # The same suite against a second server, dynoxide: another reading of
  # DynamoDB's rules (it found an unescaped reserved word moto took). But
  # not the reference test's thousands of random stats reads, which test
  # hop's arithmetic (moto ran them above) and take dynoxide 9 minutes.
  HOP_TEST_DYNAMO=dynoxide cargo test --features dynamodb --test store_conformance dynamo \
    -- --skip stats_equal_reference
  # Two regions of a Global Table, simulated (docs/multi-region.md).
  cargo test --features dynamodb --test multi_region
  # hop copy from SQLite into DynamoDB (moto).
  cargo test --features dynamodb --test copy dynamodb
  # And the API suite in cluster mode on DynamoDB (moto, then dynoxide),
  # Redis and workers.
  HOP_TEST_CLUSTER=dynamodb cargo test --features dynamodb --test api
  HOP_TEST_DYNAMO=dynoxide HOP_TEST_CLUSTER=dynamodb cargo test --features dynamodb --test api
fi
# The API suite again, in cluster mode: PostgreSQL, Redis stream, worker.
HOP_TEST_CLUSTER=1 cargo test --test api "$@"
# The API contract: schemathesis against the OpenAPI document a live server
# serves (skipped when only some tests were asked for).
if [ $# -eq 0 ]; then
  ./scripts/api-contract.sh target/debug/hop
  ./scripts/client-check.sh target/debug/hop
  # Deploy files: rules, dashboards (against a real Prometheus), image,
  # Kubernetes, compose and workflow definitions.
  ./scripts/observability-check.sh target/debug/hop
  ./scripts/deploy-check.sh
  ./scripts/container-check.sh target/debug/hop
  ./scripts/compose-check.sh
fi
