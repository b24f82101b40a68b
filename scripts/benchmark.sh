#!/usr/bin/env bash
# Generation benchmark (not a test): maskgit-cpp against a PyTorch eager implementation of the
# same transformer and decoding loop (benchmarks/reference/maskgit_reference.py), in one run on
# this machine, printed as one table; then parallel vs one-token-per-step decoding and the
# tokenizer decoder's bf16 error.
#
# Usage: scripts/benchmark.sh [--build DIR] [--repeats R] [--full] [--no-reference]
#        scripts/benchmark.sh --loading [--build DIR] [--repeats R]
#   CPU: the shipped model at batch 1 and 64 (fp32, bf16) and the official ImageNet 256
#        transformer (random weights) at batch 1; --full adds batch 64 and the 512 model.
#   CUDA: the shipped model at batch 1, 64 and 256, official 256 and 512 at batch 1 and 64, fp32 and bf16.
# --loading: instead, loading and saving the official ImageNet 256 weights (benchmarks/bench_loading:
#   load_transformer and load_tokenizer against read() of the file, peak memory against its size).
# PYTHON names an interpreter with torch (default: the first of /usr/bin/python3, python3 that has it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build} repeats=3 full=0 reference=1 loading=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --full) full=1; shift ;;
    --no-reference) reference=0; shift ;;
    --loading) loading=1; shift ;;
    *) echo "benchmark: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$loading" = 1 ]; then
  [ -x "$build/benchmarks/bench_loading" ] || { echo "benchmark: $build/benchmarks/bench_loading not found (build first, or give --build)" >&2; exit 3; }
  exec "$build/benchmarks/bench_loading" --repeats "$repeats"
fi
bench=$build/benchmarks/bench_generation
[ -x "$bench" ] || { echo "benchmark: $bench not found (build first, or give --build)" >&2; exit 3; }
python=""
if [ "$reference" = 1 ]; then
  for candidate in ${PYTHON:-} /usr/bin/python3 python3; do
    if "$candidate" -c 'import torch' 2>/dev/null; then python=$candidate; break; fi
  done
  [ -n "$python" ] || echo "benchmark: no Python with torch found (Debian: apt-get install python3-torch); toolkit rows only" >&2
fi
# The reference gets the same passive OpenMP waiting the tools choose for themselves.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
device=cpu
"$bench" --device cuda --batch 1 --repeats 1 --json >/dev/null 2>&1 && device=cuda
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT

# row CONFIG DTYPE BATCHES REPEATS: one toolkit row and one reference row per batch size.
row() {
  local config=$1 dtype=$2 batches=$3 reps=$4 ref_config=$1
  [ "$config" = model ] && ref_config=$root/models/fashion-mnist
  "$bench" --device "$device" --config "$config" --dtype "$dtype" --batch "$batches" --repeats "$reps" --json >>"$rows"
  if [ -n "$python" ]; then
    "$python" "$root/benchmarks/reference/maskgit_reference.py" --config "$ref_config" --device "$device" \
      --dtype "$dtype" --batch ${batches//,/ } --repeats "$reps" >>"$rows"
  fi
}
if [ "$device" = cuda ]; then
  for dtype in fp32 bf16; do
    row model "$dtype" 1,64,256 "$repeats"
    row official256 "$dtype" 1,64 "$repeats"
    row official512 "$dtype" 1,64 "$repeats"
  done
else
  for dtype in fp32 bf16; do row model "$dtype" 1,64 "$repeats"; done
  for dtype in fp32 bf16; do
    if [ "$full" = 1 ]; then row official256 "$dtype" 1,64 1; row official512 "$dtype" 1 1; else row official256 "$dtype" 1 1; fi
  done
fi

"${python:-python3}" - "$rows" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
ours = {(r["config"].split("/")[-1], r["dtype"], r["batch"]): r for r in rows if r["implementation"] == "maskgit-cpp"}
theirs = {(r["config"].split("/")[-1], r["dtype"], r["batch"]): r for r in rows if r["implementation"] != "maskgit-cpp"}
first = next(iter(ours.values()))
rate = lambda r: f"{r['images_per_second']:.1f}" if r["images_per_second"] >= 10 else f"{r['images_per_second']:.3f}"
torch_version = next((r["torch"] for r in theirs.values()), "none")
print(f"device {first['device']} | {first['threads']} threads | PyTorch reference {torch_version} | token decoding "
      "(transformer + sampling loop; no pixels)\n")
print("| model | dtype | batch | steps | maskgit-cpp images/s | ms/step | of matmul ceiling | PyTorch eager images/s | ms/step | maskgit-cpp / PyTorch |")
print("|---|---|---|---|---|---|---|---|---|---|")
for key, r in ours.items():
    t = theirs.get(key)
    share = 100 * r["gflops"] / r["ceiling_gflops"]
    ref = f"{rate(t)} | {t['ms_per_step']:.2f} | {r['images_per_second'] / t['images_per_second']:.2f}x" if t else "— | — | —"
    print(f"| {key[0]} | {key[1]} | {key[2]} | {r['steps']} | {rate(r)} | {r['ms_per_step']:.2f} | "
          f"{share:.1f}% ({r['ceiling_gflops']:.0f} GFLOP/s) | {ref} |")
PY
echo
"$bench" --device "$device" --dtype fp32 --batch 64 --repeats "$repeats" --sequential --tokenizer-precision | tail -n 7
