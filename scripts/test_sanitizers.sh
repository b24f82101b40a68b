#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (our code instrumented;
# LibTorch is not). Builds in build-sanitize/ (or BUILD_DIR) and runs ctest there; any report
# fails the test that caused it. Leak checking is off: LibTorch keeps static allocations alive
# until exit, which LeakSanitizer would report on every test.
# Usage: scripts/test_sanitizers.sh [--loaders] [ctest arguments...]
#   --loaders: only the unit tests of the code that reads files (test_base: JSON, safetensors,
#              atomic writes; test_io_data: images, IDX, image folders, batching), which builds
#              in a few minutes; CI runs this (the whole suite takes ~40 min to build on 2 cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
targets=() filter=()
if [ "${1:-}" = --loaders ]; then
  shift
  targets=(--target test_base test_io_data)
  filter=(-R '^test_(base|io_data):')
fi
build_dir=${BUILD_DIR:-$root/build-sanitize}
"$root/scripts/setup.sh" --deps-only
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMASKGIT_SANITIZE=ON >&2
fi
cmake --build "$build_dir" --parallel "$(nproc)" "${targets[@]}" >&2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build_dir"
ctest --output-on-failure --timeout 1800 -j "$(nproc)" "${filter[@]}" "$@"
