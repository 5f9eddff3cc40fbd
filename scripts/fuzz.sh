#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each) and
# fails on the first crash. libFuzzer needs nightly-only compiler flags
# (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the machine's stable toolchain take
# them, so no other toolchain is needed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The corpus lives in fuzz/corpus/<target> (committed): each run starts from
# it, and what a run adds is left in the working tree (minimise before
# committing: cargo fuzz cmin <target>). Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
cargo_fuzz_version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  cargo install --quiet --locked cargo-fuzz --version "$cargo_fuzz_version"
fi
export RUSTC_BOOTSTRAP=1

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build
mkdir -p target/fuzz-logs
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="target/fuzz-logs/$t.log"
  echo "== fuzz $t for ${seconds}s (log: $log)"
  # -rss_limit_mb: the api target keeps an in-memory store that grows with
  # every link and report it creates.
  status=0
  cargo fuzz run "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E "DONE|stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -60 "$log" >&2
    echo "fuzz target $t failed (exit $status); the input is in fuzz/artifacts/$t" >&2
    exit "$status"
  fi
done
