#!/usr/bin/env bash
# Trains the shipped transformer (models/fashion-mnist) on the Fashion-MNIST train split,
# over the token grids of the shipped tokenizer (tokenized once, cached in train-state/).
# Resumable: run it again after a kill and it continues from the last checkpoint.
# Usage: scripts/train_transformer.sh [OUT_DIR [maskgit-train flags...]]  (e.g. --overwrite to retrain over the shipped model)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/models/fashion-mnist}
[ $# -gt 0 ] && shift
# The architecture, or with INIT_FROM=MODEL_DIR a new run continuing that model's transformer
# (its architecture; the same tokenizer); a resumed run takes it from its checkpoint.
architecture=(--layers 4 --hidden 192 --heads 6 --mlp-dim 768)
[ -n "${INIT_FROM:-}" ] && architecture=(--init-from "$INIT_FROM")
resume=()
[ -f "$out/train-state/transformer.safetensors" ] && resume=(--resume) && architecture=()
# Sized for a 2-core CPU and a budget of about an hour: 4 layers × 192 hidden (1.9M
# parameters), no dropout (a few epochs are far from overfitting), class dropout 0.1 so the
# no-class token exists for guidance and unconditional editing, and the shipped weights an
# exponential moving average of the trained ones (decay 0.999). STEPS, LR, WARMUP and SEED override
# the length, the peak learning rate, its warm-up and the seed (data order, masks).
exec "$root/build/apps/maskgit-train" --stage transformer -o "$out" \
  --data /usr/share/datasets/fashion-mnist --split train \
  "${architecture[@]}" --dropout 0 --class-dropout 0.1 \
  --steps "${STEPS:-4000}" --batch-size 128 --lr "${LR:-1e-3}" --warmup "${WARMUP:-200}" --seed "${SEED:-1}" --ema 0.999 \
  --checkpoint-every 100 --log-every 25 "${resume[@]}" "$@"
