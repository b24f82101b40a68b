#!/usr/bin/env bash
# Generation benchmark of the shipped model on this machine (a table on stdout).
# On a CUDA machine also the official ImageNet 256 transformer with random weights, fp32 and bf16.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/build/benchmarks/bench_generation"
"$bench" --device cpu "$@"
if "$bench" --device cuda --official --repeats 1 >/dev/null 2>&1; then
  "$bench" --device cuda --official --dtype fp32
  "$bench" --device cuda --official --dtype bf16
fi
