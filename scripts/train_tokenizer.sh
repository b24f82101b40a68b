#!/usr/bin/env bash
# Trains the shipped tokenizer (models/fashion-mnist) on the Fashion-MNIST train split.
# Resumable: run it again after a kill and it continues from the last checkpoint.
# Usage: scripts/train_tokenizer.sh [OUT_DIR [maskgit-train flags...]]  (e.g. --overwrite to retrain over the shipped model)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/models/fashion-mnist}
[ $# -gt 0 ] && shift
# A resumed run takes its settings from the checkpoint.
if [ -f "$out/train-state/tokenizer.safetensors" ]; then
  exec "$root/build/apps/maskgit-train" --stage tokenizer -o "$out" --resume --steps 4000 --log-every 50 "$@"
fi
exec "$root/build/apps/maskgit-train" --stage tokenizer -o "$out" \
  --data /usr/share/datasets/fashion-mnist --split train \
  --filters 16 --channel-mult 1,2,4 --res-blocks 1 --codebook-size 512 --embedding-dim 32 --norm-groups 8 \
  --steps 4000 --batch-size 128 --lr 1e-3 --warmup 200 --dead-code-window 100 --seed 1 \
  --checkpoint-every 250 --log-every 50 "$@"
