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

# The file-reading code's unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
# (README "Tests"; build-sanitize/). SANITIZE=0 skips this step; SANITIZE=all runs the whole
# suite there (about 40 minutes to build on 2 cores).
case "${SANITIZE:-loaders}" in
  0) ;;
  all) "$root/scripts/test_sanitizers.sh" ;;
  *) "$root/scripts/test_sanitizers.sh" --loaders ;;
esac
