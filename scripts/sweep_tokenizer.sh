#!/usr/bin/env bash
# Tokenizer alternatives at equal training steps (issue 13): each variant is trained from
# scratch on the Fashion-MNIST train split with the same seed, batch, learning-rate schedule and
# steps, then judged by scripts/eval_tokenizer.sh on the test split (PSNR, codebook use and
# perplexity, the evaluation classifier on originals and reconstructions, Fréchet distance of
# reconstructions vs originals). This is how the next tokenizer's settings were chosen (README,
# "Tokenizer").
# Prints one JSON line per variant (its name, its whole flag list, the steps done, training
# seconds and the evaluation), and appends it to OUT_DIR/sweep.jsonl. Resumable: a variant
# already in sweep.jsonl at these steps is skipped; one killed mid-training resumes from its
# last checkpoint.
# Usage: scripts/sweep_tokenizer.sh [OUT_DIR]   (default runs/tokenizer-sweep)
# Environment: STEPS (default 600), VARIANTS (names, default: all below), THREADS.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/runs/tokenizer-sweep}
steps=${STEPS:-600}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# The schedule, given to a fresh run and to a resumed one alike (a checkpoint does not record it).
schedule=(--steps "$steps" --lr 1e-3 --warmup 100 --checkpoint-every 100 --log-every 100 --threads "${THREADS:-0}")
# The shipped architecture: FLAG VALUE pairs; a variant's pairs replace these values or add flags.
# PERCEPTUAL stands for the perceptual network's path (kept out of the word splitting).
base="--filters 16 --channel-mult 1,2,4 --res-blocks 1 --codebook-size 512 --embedding-dim 32 --norm-groups 8
  --dead-code-window 100"
perceptual="--perceptual-model PERCEPTUAL --perceptual-weight 1"
# name | the variant's FLAG VALUE pairs
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
done_before() {  # done_before NAME: whether sweep.jsonl has NAME at these steps
  /usr/bin/python3 - "$out/sweep.jsonl" "$1" "$steps" <<'EOF'
import json, sys
path, name, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(line) for line in open(path) if line.strip()]
sys.exit(0 if any(r.get("variant") == name and r.get("steps") == steps for r in rows) else 1)
EOF
}
for name in $names; do
  row=$(grep -m1 "^$name|" <<<"$variants_table") || { echo "sweep_tokenizer.sh: unknown variant '$name'" >&2; exit 2; }
  done_before "$name" && continue
  # The base's pairs with the variant's values, then the variant's other pairs.
  declare -A value=()
  order=()
  read -r -a words <<<"$(tr '\n' ' ' <<<"$base ${row#*|}")"
  (( ${#words[@]} % 2 == 0 )) || { echo "sweep_tokenizer.sh: variant '$name': flags must be FLAG VALUE pairs" >&2; exit 2; }
  for ((i = 0; i < ${#words[@]}; i += 2)); do
    flag=${words[i]}
    [ -z "${value[$flag]+set}" ] && order+=("$flag")
    value[$flag]=${words[i + 1]}
  done
  flags=()
  for flag in "${order[@]}"; do
    v=${value[$flag]}
    [ "$v" = PERCEPTUAL ] && v=$root/models/fashion-mnist-perceptual
    flags+=("$flag" "$v")
  done
  unset value
  dir=$out/$name
  start=$(date +%s)
  if [ -f "$dir/train-state/tokenizer.safetensors" ]; then
    "$root/build/apps/maskgit-train" --stage tokenizer -o "$dir" --resume "${schedule[@]}" >&2
  else
    "$root/build/apps/maskgit-train" --stage tokenizer -o "$dir" --data /usr/share/datasets/fashion-mnist --split train \
      "${flags[@]}" "${schedule[@]}" --batch-size 128 --seed 1 >&2
  fi
  seconds=$(( $(date +%s) - start ))
  done_steps=$(/usr/bin/python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]["step"])' \
    "$dir/train-state/tokenizer-metrics.jsonl")
  eval_json=$("$root/scripts/eval_tokenizer.sh" "$dir")
  /usr/bin/python3 - "$name" "${flags[*]}" "$done_steps" "$seconds" "$eval_json" <<'EOF' | tee -a "$out/sweep.jsonl"
import json, sys
name, flags, steps, seconds, line = sys.argv[1:]
result = json.loads(line)
print(json.dumps({"variant": name, "flags": flags, "steps": int(steps), "train_seconds_this_run": int(seconds), **result}))
EOF
done
