#!/usr/bin/env bash
# Tokenizer alternatives at equal training steps (issue 13): each variant is trained from
# scratch on the Fashion-MNIST train split with the same seed, batch, learning rate and steps,
# then judged by scripts/eval_tokenizer.sh on the test split (PSNR, codebook use and perplexity,
# the evaluation classifier on originals and reconstructions, Fréchet distance of
# reconstructions vs originals). This is how the shipped tokenizer's settings were chosen
# (README, "Tokenizer").
# Prints one JSON line per variant (its name, flags, training seconds and the evaluation), and
# appends it to OUT_DIR/sweep.jsonl. Resumable: a variant already in sweep.jsonl is skipped;
# one killed mid-training resumes from its last checkpoint.
# Usage: scripts/sweep_tokenizer.sh [OUT_DIR]   (default runs/tokenizer-sweep)
# Environment: STEPS (default 600), VARIANTS (names, default: all below), THREADS.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/runs/tokenizer-sweep}
steps=${STEPS:-600}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
perceptual="--perceptual-model $root/models/fashion-mnist-perceptual --perceptual-weight 1"
# The shipped architecture; a variant's flags replace these values or add flags.
base="--filters 16 --channel-mult 1,2,4 --res-blocks 1 --codebook-size 512 --embedding-dim 32 --norm-groups 8
  --dead-code-window 100"
# name | the variant's flags
variants_table="
base|$perceptual
mse|
dim8|$perceptual --embedding-dim 8
dim64|$perceptual --embedding-dim 64
wide|$perceptual --filters 32
codes1024|$perceptual --codebook-size 1024
no-restarts|$perceptual --dead-code-window 0
f2|$perceptual --channel-mult 1,2"
names=${VARIANTS:-$(sed -n 's/|.*//p' <<<"$variants_table" | tr '\n' ' ')}
mkdir -p "$out"
touch "$out/sweep.jsonl"
for name in $names; do
  row=$(grep -m1 "^$name|" <<<"$variants_table") || { echo "sweep_tokenizer.sh: unknown variant '$name'" >&2; exit 2; }
  grep -q "\"variant\": \"$name\"" "$out/sweep.jsonl" && continue
  # The base's flags with the variant's values, then the variant's other flags.
  declare -A value=()
  order=()
  set -- $base ${row#*|}
  while [ $# -gt 0 ]; do
    [ -z "${value[$1]+set}" ] && order+=("$1")
    value[$1]=$2
    shift 2
  done
  flags=()
  for flag in "${order[@]}"; do flags+=("$flag" "${value[$flag]}"); done
  unset value
  dir=$out/$name
  resume=()
  [ -f "$dir/train-state/tokenizer.safetensors" ] && resume=(--resume)
  start=$(date +%s)
  if [ ${#resume[@]} -gt 0 ]; then
    "$root/build/apps/maskgit-train" --stage tokenizer -o "$dir" --resume --threads "${THREADS:-0}" --log-every 100 >&2
  else
    "$root/build/apps/maskgit-train" --stage tokenizer -o "$dir" --data /usr/share/datasets/fashion-mnist --split train \
      "${flags[@]}" --steps "$steps" --batch-size 128 --lr 1e-3 --warmup 100 --seed 1 \
      --checkpoint-every 100 --log-every 100 --threads "${THREADS:-0}" >&2
  fi
  seconds=$(( $(date +%s) - start ))
  eval_json=$("$root/scripts/eval_tokenizer.sh" "$dir")
  /usr/bin/python3 - "$name" "${row#*|}" "$steps" "$seconds" "$eval_json" <<'EOF' | tee -a "$out/sweep.jsonl"
import json, sys
name, flags, steps, seconds, line = sys.argv[1:]
result = json.loads(line)
print(json.dumps({"variant": name, "flags": flags, "steps": int(steps), "train_seconds_this_run": int(seconds), **result}))
EOF
done
