#!/usr/bin/env bash
# Trains the perceptual network of tokenizer training (docs/training.md §4) into
# models/fashion-mnist-perceptual: a classifier of the evaluation classifier's family but
# deliberately another network (half the width, another seed, shift/flip augmentation, 4
# epochs), so that the tokenizer is never trained against the judge's own features.
# Resumable. Usage: scripts/train_perceptual.sh [OUT_DIR [maskgit-train flags...]]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/models/fashion-mnist-perceptual}
[ $# -gt 0 ] && shift
# A resumed run takes its architecture, seed, batch and schedule from its checkpoint (given
# again they would have to match it, which a resume on another number of ranks would not).
run=(--epochs 4 --batch-size 128 --lr 1e-3 --warmup 100 --seed 11 --width-multiplier 0.5 --augment)
[ -f "$out/train-state/classifier.safetensors" ] && run=(--resume)
exec "$root/build/apps/maskgit-train" --stage classifier -o "$out" \
  --data /usr/share/datasets/fashion-mnist --split train --eval-split t10k \
  "${run[@]}" --checkpoint-every 250 --log-every 50 "$@"
