#!/usr/bin/env bash
# Fresh machine → installed, built, and the shipped model generating images: a grid of all ten
# Fashion-MNIST classes (8 samples each, 8 cosine decoding steps) in out/grid.png, the single
# images in out/sample-*.png, and one JSON line per image on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" "$root/build"
mkdir -p "$root/out"
"$root/build/apps/maskgit-sample" -n 8 --seed 0 -o "$root/out/sample-%03d.png" --grid "$root/out/grid.png" --json
echo "wrote $root/out/grid.png (a row per class) and $root/out/sample-*.png" >&2
