#!/usr/bin/env bash
# Fresh machine → installed, built, tested. This is what .ci/run calls.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
"$root/scripts/setup.sh" "$build_dir"
cd "$build_dir"
ctest --output-on-failure --timeout 900 -j "$(nproc)"

# Every loader under libFuzzer for a short, bounded time (README "Fuzzing"): clang build in
# build-fuzz/, then FUZZ_SECONDS per harness (default 10; 0 skips this step).
fuzz_seconds=${FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" != 0 ]; then
  "$root/scripts/fuzz.sh" --seconds "$fuzz_seconds" --parallel "$(nproc)"
fi
