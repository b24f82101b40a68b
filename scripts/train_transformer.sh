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
# The schedule (not in the checkpoint) is saved by a fresh run and reused by a resumed one,
# unless given again.
recipe=$out/train-state/train_transformer.env
if [ ${#resume[@]} -gt 0 ] && [ -f "$recipe" ]; then
  while IFS='=' read -r key value; do
    case $key in STEPS | LR | WARMUP) [ -z "${!key:-}" ] && printf -v "$key" '%s' "$value" ;; esac
  done <"$recipe"
fi
STEPS=${STEPS:-4000} LR=${LR:-1e-3} WARMUP=${WARMUP:-200}
if [ ${#resume[@]} -eq 0 ]; then
  mkdir -p "$out/train-state"
  printf 'STEPS=%s\nLR=%s\nWARMUP=%s\n' "$STEPS" "$LR" "$WARMUP" >"$recipe"
fi
# Sized for a 2-core CPU and a budget of about an hour: 4 layers × 192 hidden (1.9M
# parameters), no dropout (a few epochs are far from overfitting), class dropout 0.1 so the
# no-class token exists for guidance and unconditional editing, and the shipped weights an
# exponential moving average of the trained ones (decay 0.999). STEPS, LR, WARMUP and SEED override
# the length, the peak learning rate, its warm-up and the seed (data order, masks; a resumed run
# takes it from the checkpoint).
exec "$root/build/apps/maskgit-train" --stage transformer -o "$out" \
  --data /usr/share/datasets/fashion-mnist --split train \
  "${architecture[@]}" --dropout 0 --class-dropout 0.1 \
  --steps "$STEPS" --batch-size 128 --lr "$LR" --warmup "$WARMUP" --seed "${SEED:-1}" --ema 0.999 \
  --checkpoint-every 100 --log-every 25 "${resume[@]}" "$@"
