#!/usr/bin/env bash
# Fresh machine → installed, built, tested. This is what .ci/run calls.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
"$root/scripts/setup.sh" "$build_dir"
cd "$build_dir"
ctest --output-on-failure --timeout 900 -j "$(nproc)"
