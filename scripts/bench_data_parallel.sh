#!/usr/bin/env bash
# Data-parallel training benchmark (not a test): trains the shipped model's architectures (the
# tokenizer, and the transformer on the shipped tokenizer's token grids) on Fashion-MNIST with
# 1 rank and with N ranks (maskgit-train --nproc N, Gloo on loopback) at the same global batch,
# and prints one table of training images/s, each against 1 rank in the same run. The CPUs are
# shared out: each of N ranks gets cpus/N threads (1 rank: all of them).
#
# Usage: scripts/bench_data_parallel.sh [--build DIR] [--ranks "1 2"] [--batch GLOBAL]
#                                       [--steps N] [--stage tokenizer|transformer|both]
# Images/s are the mean of the metrics log's windows after the first (start-up, the token cache
# and the first steps' allocations are left out).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build ranks="1 2" batch=64 steps=40 stage=both
while [ $# -gt 0 ]; do
  case "$1" in
    --build|--ranks|--batch|--steps|--stage)
      [ $# -ge 2 ] || { echo "bench_data_parallel: $1 needs a value (see the header of $0)" >&2; exit 2; } ;;&
    --build) build=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    *) echo "bench_data_parallel: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
case "$stage" in tokenizer) stages=(tokenizer) ;; transformer) stages=(transformer) ;; both) stages=(tokenizer transformer) ;;
  *) echo "bench_data_parallel: --stage must be tokenizer, transformer or both" >&2; exit 2 ;; esac
tool=$build/apps/maskgit-train
[ -x "$tool" ] || { echo "bench_data_parallel: $tool not found (build first, or give --build)" >&2; exit 3; }
data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "bench_data_parallel: $data not found (apt-get install dataset-fashion-mnist)" >&2; exit 3; }
cpus=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=PASSIVE
log_every=$((steps / 4 > 0 ? steps / 4 : 1))

# mean_rate LOG: the mean images_per_second of LOG's records after the first.
mean_rate() {
  /usr/bin/python3 - "$1" <<'EOF'
import json, sys
rates = [json.loads(line)["images_per_second"] for line in open(sys.argv[1]) if '"images_per_second"' in line]
rates = rates[1:] or rates
print(f"{sum(rates) / len(rates):.1f}")
EOF
}

echo "data-parallel training on $(nproc) CPUs, global batch $batch, $steps steps, $(date -u +%Y-%m-%d)"
echo
echo "| stage | ranks | batch per rank | threads per rank | images/s | vs 1 rank |"
echo "|---|---|---|---|---|---|"
for s in "${stages[@]}"; do
  base=""
  for n in $ranks; do
    if [ $((batch % n)) -ne 0 ]; then echo "bench_data_parallel: --batch $batch does not split over $n ranks" >&2; exit 2; fi
    threads=$((cpus / n > 0 ? cpus / n : 1))
    out=$work/$s-$n
    if [ "$s" = tokenizer ]; then
      args=(--stage tokenizer --filters 16 --channel-mult 1,2,4 --res-blocks 1 --codebook-size 512 --embedding-dim 32
            --norm-groups 8)
    else
      # The shipped tokenizer; the token cache is built by a first, untimed run.
      mkdir -p "$out"
      cp "$root/models/fashion-mnist/config.json" "$root/models/fashion-mnist/tokenizer.safetensors" "$out/"
      args=(--stage transformer --layers 4 --hidden 192 --heads 6 --mlp-dim 768 --dropout 0)
      "$tool" "${args[@]}" --data "$data" --steps 1 --batch-size "$batch" --threads "$cpus" -q -o "$out" >/dev/null
      rm -f "$out/train-state/transformer.safetensors" "$out/transformer.safetensors"
      args+=(--overwrite)
    fi
    nproc_flag=()
    [ "$n" -gt 1 ] && nproc_flag=(--nproc "$n")
    "$tool" "${args[@]}" --data "$data" --steps "$steps" --batch-size $((batch / n)) --log-every "$log_every" \
      --checkpoint-every "$steps" --threads "$threads" "${nproc_flag[@]}" -q -o "$out"
    rate=$(mean_rate "$out/train-state/$s-metrics.jsonl")
    [ -z "$base" ] && base=$rate
    echo "| $s | $n | $((batch / n)) | $threads | $rate | $(awk "BEGIN { printf \"%.2fx\", $rate / $base }") |"
  done
done
