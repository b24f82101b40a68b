#!/usr/bin/env bash
# Sharpens a trained tokenizer's decoder with the perceptual loss (docs/training.md §4): the
# encoder and codebook stay frozen, so every image keeps its token grid and a transformer
# trained on BASE_MODEL_DIR's grids stays valid with the new decoder. This made the former shipped
# model's decoder (until the width-32 tokenizer) from its MSE-trained tokenizer (`git show cae7a99:scripts/train_tokenizer.sh`), e.g.:
#   mkdir -p runs/base && git show cae7a99:models/fashion-mnist/config.json >runs/base/config.json &&
#     git show cae7a99:models/fashion-mnist/tokenizer.safetensors >runs/base/tokenizer.safetensors
#   scripts/train_tokenizer_decoder.sh runs/decoder runs/base
# OUT_DIR receives a tokenizer (config.json with a tokenizer section only); for a whole model,
# copy a model directory to OUT_DIR first and add --overwrite (its transformer and "sampling"
# section are kept). Resumable: run it again after a kill and it continues from the last checkpoint.
# Usage: scripts/train_tokenizer_decoder.sh OUT_DIR BASE_MODEL_DIR [maskgit-train flags...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: train_tokenizer_decoder.sh OUT_DIR BASE_MODEL_DIR [flags...]}
base=${2:?usage: train_tokenizer_decoder.sh OUT_DIR BASE_MODEL_DIR [flags...]}
shift 2
# The schedule, given to a fresh run and to a resumed one alike (a checkpoint does not record it).
schedule=(--steps 1200 --lr 2e-4 --warmup 50 --checkpoint-every 200 --log-every 50)
if [ -f "$out/train-state/tokenizer.safetensors" ]; then
  exec "$root/build/apps/maskgit-train" --stage tokenizer -o "$out" --resume "${schedule[@]}" "$@"
fi
exec "$root/build/apps/maskgit-train" --stage tokenizer -o "$out" --init-from "$base" --decoder-only \
  --data /usr/share/datasets/fashion-mnist --split train \
  --perceptual-model "$root/models/fashion-mnist-perceptual" --perceptual-weight 1 \
  --batch-size 128 --seed 1 "${schedule[@]}" "$@"
