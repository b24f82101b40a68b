#!/usr/bin/env bash
# Runs the three editing tools on real Fashion-MNIST test images (examples/fashion-mnist) with
# the masks in examples/masks, using the shipped model. Writes a comparison grid per run into
# OUT_DIR (default out/editing) and every result under OUT_DIR/results. Each grid row is:
# input, regenerated tokens (red), then the results. The README's pictures are these grids
# (examples/run_editing.sh examples/editing).
# Usage: examples/run_editing.sh [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/out/editing}
bin=$root/build/apps
images=$root/examples/fashion-mnist
masks=$root/examples/masks
pick() { for name in "$@"; do printf -- '-i\n%s\n' "$images/$name"; done; }
mapfile -t clothes < <(pick 0-tshirt-t10k-00019.png 2-pullover-t10k-00001.png 3-dress-t10k-00013.png \
  4-coat-t10k-00006.png 6-shirt-t10k-00004.png 8-bag-t10k-00018.png)
mapfile -t shoes < <(pick 5-sandal-t10k-00008.png 7-sneaker-t10k-00009.png 9-ankle-boot-t10k-00000.png)
mapfile -t all < <(pick 0-tshirt-t10k-00019.png 1-trouser-t10k-00002.png 3-dress-t10k-00013.png \
  7-sneaker-t10k-00009.png 8-bag-t10k-00018.png 9-ankle-boot-t10k-00000.png)
mkdir -p "$out/results"
set -x

# Inpainting a centred hole (50% x 50% of the picture), without a class: 4 variants each.
"$bin/maskgit-inpaint" "${clothes[@]}" --mask "$masks/centre-14x14.png" -n 4 \
  -o "$out/results/inpaint-%02d.png" --save-mask "$out/inpaint-mask.png" --grid "$out/inpaint.png"

# Inpainting a free-form stroke, conditioned on each picture's own class would need one run
# per class; here the sneakers and boots get a stroke decoded as "Sneaker".
"$bin/maskgit-inpaint" "${shoes[@]}" --mask "$masks/stroke.png" -c Sneaker -n 4 \
  -o "$out/results/stroke-%02d.png" --grid "$out/inpaint-stroke.png"

# Outpainting: the right half regrown from the left half.
"$bin/maskgit-outpaint" "${all[@]}" --crop 0,0,14,28 --canvas 28x28 --offset 0,0 -n 4 \
  -o "$out/results/outpaint-%02d.png" --grid "$out/outpaint.png"

# Outpainting beyond the model's 28x28: a 56x28 canvas, decoded in overlapping 7x7-token windows.
"$bin/maskgit-outpaint" "${shoes[@]}" --right 28 -n 2 \
  -o "$out/results/wide-%02d.png" --grid "$out/outpaint-wide.png"

# Class-conditional editing of a whole-height box with the release's settings (the 1-token
# dilation, T = 12 from step 2, τ0 4.5, no guidance).
"$bin/maskgit-edit" "${all[@]}" --box 8,0,12,28 -c Bag -n 4 --release-defaults \
  -o "$out/results/edit-bag-%02d.png" --grid "$out/edit-bag.png"
# The same with the shipped model's defaults: classifier-free guidance 4 (its sampling.edit_guidance_scale)
# and choice temperature 6 (sampling.choice_temperature); it follows the target more.
"$bin/maskgit-edit" "${all[@]}" --box 8,0,12,28 -c Bag -n 4 \
  -o "$out/results/edit-bag-cfg4-%02d.png" --grid "$out/edit-bag-cfg4.png"
"$bin/maskgit-edit" "${clothes[@]}" --box 0,14,28,14 -c Dress -n 4 \
  -o "$out/results/edit-dress-%02d.png" --grid "$out/edit-dress.png"
