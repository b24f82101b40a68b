#!/usr/bin/env bash
# Trains a transformer of the shipped model's recipe on the Fashion-MNIST train split, over the
# token grids of OUT_DIR's tokenizer (tokenized once, cached in train-state/). The shipped
# transformer is four runs of it: the defaults, then INIT_FROM=<the first> STEPS=2800 LR=5e-4
# WARMUP=100 SEED=2, then INIT_FROM=<the second> STEPS=4000 LR=5e-4 WARMUP=100 SEED=3, then
# INIT_FROM=<the third> STEPS=4000 LR=5e-4 WARMUP=100 SEED=4 (README, "Transformer").
# Resumable: run it again after a kill and it continues from the last checkpoint, with the
# checkpoint's schedule (STEPS, LR, WARMUP given again replace it), seed and batch (on any
# number of ranks that divides it).
# Usage: scripts/train_transformer.sh [OUT_DIR [maskgit-train flags...]]  (default OUT_DIR: the
#   shipped model, which already has a transformer: give --overwrite to train one over it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/models/fashion-mnist}
[ $# -gt 0 ] && shift
overwrite=false
for arg in "$@"; do [ "$arg" = --overwrite ] && overwrite=true; done
# The architecture, or with INIT_FROM=MODEL_DIR a new run continuing that model's transformer
# (its architecture; the same tokenizer); a resumed run takes it from its checkpoint.
architecture=(--layers 4 --hidden 192 --heads 6 --mlp-dim 768)
[ -n "${INIT_FROM:-}" ] && architecture=(--init-from "$INIT_FROM")
schedule=(--steps "${STEPS:-4000}" --lr "${LR:-1e-3}" --warmup "${WARMUP:-200}" --seed "${SEED:-1}" --batch-size 128)
resume=()
if [ -f "$out/train-state/transformer.safetensors" ] && ! $overwrite; then
  if [ -n "${INIT_FROM:-}" ]; then
    echo "train_transformer.sh: INIT_FROM: $out already holds a run (train-state/transformer.safetensors): run" \
      "again without INIT_FROM to resume it, or give --overwrite to start over" >&2
    exit 2
  fi
  resume=(--resume)
  architecture=()
  schedule=()
  [ -n "${STEPS:-}" ] && schedule+=(--steps "$STEPS")
  [ -n "${LR:-}" ] && schedule+=(--lr "$LR")
  [ -n "${WARMUP:-}" ] && schedule+=(--warmup "$WARMUP")
fi
# Sized for a 2-core CPU and a budget of about an hour: 4 layers × 192 hidden (1.9M
# parameters), no dropout (32 epochs are far from overfitting), class dropout 0.1 so the
# no-class token exists for guidance and unconditional editing, and the shipped weights an
# exponential moving average of the trained ones (decay 0.999). STEPS, LR, WARMUP and SEED set
# the length, the peak learning rate, its warm-up and the seed (data order, masks).
exec "$root/build/apps/maskgit-train" --stage transformer -o "$out" \
  --data /usr/share/datasets/fashion-mnist --split train \
  "${architecture[@]}" --dropout 0 --class-dropout 0.1 --ema 0.999 \
  "${schedule[@]}" --checkpoint-every 100 --log-every 25 "${resume[@]}" "$@"
