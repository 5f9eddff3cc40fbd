#!/usr/bin/env bash
# Generated-client check: what a new user of the API does first. Generates a
# Python client from the OpenAPI document a live hop serves, with
# openapi-python-client (PyPI) at its default settings, installs it in a
# venv and runs a short scenario with it: create a link, list links, read
# its stats and its QR code. Fails on any generator warning (a skipped
# operation or response, a clashing enum member) and on any wrong answer.
#
#   scripts/client-check.sh [HOP_BINARY]
#
# Runs against a private server (scripts/private-hop.sh) with an admin key.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/debug/hop}
[ -x "$bin" ] || cargo build --quiet
generator_version=0.29.1
# The generator runs ruff on what it writes, and warns when it is missing.
ruff_version=0.17.5

# One venv, kept between runs: the generator, then the client it generates.
venv=target/client-check/venv
if ! "$venv/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('openapi-python-client') != '$generator_version')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "openapi-python-client==$generator_version" "ruff==$ruff_version"
fi

source scripts/private-hop.sh
start_private_hop "$bin" client-check
curl -fsS "$base/api/v1/openapi.json" -o "$dir/openapi.json"

# Default settings: no config file, no options. Any warning fails the check,
# since the generator's warnings mean a part of the API left out of the client.
(cd "$dir" && PATH="$OLDPWD/$venv/bin:$PATH" openapi-python-client generate --path openapi.json) >"$dir/generate.log" 2>&1 || {
  cat "$dir/generate.log" >&2
  echo "client-check: openapi-python-client failed on the document" >&2
  exit 1
}
if grep -qi 'warning\|error' "$dir/generate.log"; then
  cat "$dir/generate.log" >&2
  echo "client-check: openapi-python-client warned on the document" >&2
  exit 1
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$dir/hop-client"

HOP_URL="$base" HOP_KEY="$key" "$venv/bin/python" - <<'EOF' || {
import os

from hop_client import AuthenticatedClient
from hop_client.api.links import create_link, get_link_qr_png, list_links
from hop_client.api.stats import get_link_stats
from hop_client.models import CreateLink, ErrorBody, LinkBody, LinkPage, RedirectStatus, StatsBody, TimeZone
from hop_client.types import File

client = AuthenticatedClient(base_url=os.environ["HOP_URL"], token=os.environ["HOP_KEY"])


def check(what, ok):
    if not ok:
        raise SystemExit(f"client-check: {what}")


with client:
    created = create_link.sync(
        client=client,
        body=CreateLink(url="https://example.com/client-check", slug="client-check", redirect_status=RedirectStatus.VALUE_307),
    )
    check(f"create_link answered {created!r}", isinstance(created, LinkBody))
    check("the created link redirects with 307", created.redirect_status == 307)
    check("the created link has its slug", created.slug == "client-check")
    check("the created link has its target", created.url == "https://example.com/client-check")

    taken = create_link.sync_detailed(client=client, body=CreateLink(url="https://example.com/again", slug="client-check"))
    check(f"a taken slug answered {taken.status_code}", taken.status_code == 409)
    check("a taken slug answers the error body", isinstance(taken.parsed, ErrorBody))

    page = list_links.sync(client=client)
    check(f"list_links answered {page!r}", isinstance(page, LinkPage))
    check("list_links holds the new link", [link.slug for link in page.links] == ["client-check"])

    stats = get_link_stats.sync("client-check", client=client, tz=TimeZone.ETC_GMT_MINUS_1)
    check(f"get_link_stats answered {stats!r}", isinstance(stats, StatsBody))
    check("a new link has no clicks", stats.total_clicks == 0)
    check("the stats are in the zone asked for", stats.tz == "Etc/GMT-1")

    qr = get_link_qr_png.sync("client-check", client=client, size=64)
    check(f"get_link_qr_png answered {qr!r}", isinstance(qr, File))
    check("the QR code is a PNG", qr.payload.read().startswith(b"\x89PNG"))

print("client-check: generated Python client passed (create, list, stats, qr)")
EOF
  echo "--- server log ---" >&2
  tail -50 "$dir/server.log" >&2
  exit 1
}
