#!/usr/bin/env bash
# Trains a Fashion-MNIST tokenizer the way issue 13 chose (scripts/sweep_tokenizer.sh; README,
# "Tokenizer"): the perceptual loss through models/fashion-mnist-perceptual from the first step,
# base width 32, codebook 512 × 32, dead-code restarts, 3,000 steps of 128 images.
# This is the shipped models/fashion-mnist tokenizer's recipe. The earlier one was
# `git show cae7a99:scripts/train_tokenizer.sh` (MSE, width 16, 4,000 steps), its decoder then
# sharpened by scripts/train_tokenizer_decoder.sh.
# Resumable: run it again after a kill and it continues from the last checkpoint.
# Usage: scripts/train_tokenizer.sh OUT_DIR [maskgit-train flags the script does not set, e.g. --threads 2]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: train_tokenizer.sh OUT_DIR [maskgit-train flags...]}
shift
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# The schedule, given to a fresh run and to a resumed one alike (a checkpoint does not record it).
schedule=(--steps 3000 --lr 1e-3 --warmup 200 --checkpoint-every 100 --log-every 50)
if [ -f "$out/train-state/tokenizer.safetensors" ]; then
  exec "$root/build/apps/maskgit-train" --stage tokenizer -o "$out" --resume "${schedule[@]}" "$@"
fi
exec "$root/build/apps/maskgit-train" --stage tokenizer -o "$out" \
  --data /usr/share/datasets/fashion-mnist --split train \
  --filters 32 --channel-mult 1,2,4 --res-blocks 1 --codebook-size 512 --embedding-dim 32 --norm-groups 8 \
  --perceptual-model "$root/models/fashion-mnist-perceptual" --perceptual-weight 1 \
  --batch-size 128 --dead-code-window 100 --seed 1 "${schedule[@]}" "$@"
