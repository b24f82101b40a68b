#!/usr/bin/env bash
# Reconstruction quality of a tokenizer on the Fashion-MNIST test split (10,000 images):
# mean per-image PSNR, distinct codes used and codebook perplexity, tokens per image, parameter
# count and, judged by the evaluation classifier, its accuracy on originals and reconstructions
# and the Fréchet distance of reconstructions vs originals (JSON on stdout).
# Usage: scripts/eval_tokenizer.sh [MODEL_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/models/fashion-mnist}
exec "$root/build/apps/maskgit-tokenize" -m "$model" --json evaluate \
  --data /usr/share/datasets/fashion-mnist --split t10k
