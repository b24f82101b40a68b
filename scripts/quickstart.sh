#!/usr/bin/env bash
# Fresh machine → installed, built, and the shipped model run on the bundled examples.
# Until the generation stage lands this reconstructs real Fashion-MNIST test images through
# the shipped tokenizer (images → 7×7 token grids → images) and reports PSNR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" "$root/build"
mkdir -p "$root/out"
"$root/build/apps/maskgit-tokenize" reconstruct "$root"/examples/fashion-mnist/*.png \
  -o "$root/out/reconstructed-%02d.png" --json
echo "wrote $root/out/reconstructed-*.png" >&2
