#!/usr/bin/env bash
# Quality of the editing tools on the first N Fashion-MNIST test images (default 1000), judged
# by maskgit-eval's classifier. Prints one JSON object per task on stdout:
#   original   the classifier on the unedited images (the ceiling for the tasks below)
#   inpaint    centred 50%x50% hole (examples/masks/centre-14x14.png) inpainted without a class:
#              accuracy = the true class is still the one predicted
#   outpaint   right half regrown from the left half (--crop 0,0,14,28 --canvas 28x28), no class
#   edit       whole-height box 8,0,12,28 regenerated as each of the 9 other classes:
#              accuracy = the edit is read as its target class
# Usage: scripts/eval_editing.sh [MODEL_DIR]
# Environment: N (images), OUT (default runs/eval-editing), THREADS, TASKS (default
# "inpaint outpaint edit"), ARGS (more flags for every editing tool, e.g. "--cfg-scale 2").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/models/fashion-mnist}
n=${N:-1000}
out=${OUT:-$root/runs/eval-editing}
bin=$root/build/apps
data=/usr/share/datasets/fashion-mnist
tasks=${TASKS:-inpaint outpaint edit}
read -r -a extra <<<"${ARGS:-}"
common=(-m "$model" --data "$data" --split t10k --limit "$n" --threads "${THREADS:-0}" "${extra[@]}")
rm -rf "$out"
mkdir -p "$out"

report() {  # report TASK maskgit-eval-arguments...
  local task=$1; shift
  printf '{"task":"%s",' "$task"
  "$bin/maskgit-eval" --json --threads "${THREADS:-0}" "$@" | sed 's/^{//'
}

report original --self-test --limit "$n"

wants() { [[ " $tasks " == *" $1 "* ]]; }

if wants inpaint; then
  "$bin/maskgit-inpaint" "${common[@]}" --mask "$root/examples/masks/centre-14x14.png" -o "$out/inpaint/%05d.png"
  report inpaint --images "$out/inpaint"
fi

if wants outpaint; then
  "$bin/maskgit-outpaint" "${common[@]}" --crop 0,0,14,28 --canvas 28x28 --offset 0,0 -o "$out/outpaint/%05d.png"
  report outpaint --images "$out/outpaint"
fi

wants edit || exit 0

# Every image is edited into every class; edits into its own class are left out of the figure.
for target in 0 1 2 3 4 5 6 7 8 9; do
  "$bin/maskgit-edit" "${common[@]}" --box 8,0,12,28 -c "$target" -o "$out/edit/$target-%05d.png" --json \
    >"$out/edit-$target.jsonl"
done
cat "$out"/edit-*.jsonl | python3 -c '
import json, sys
for line in sys.stdin:
    record = json.loads(line)
    target = record["class"]["id"] if isinstance(record["class"], dict) else record["class"]
    if target != record["input"]["label"]:
        print(record["file"])' >"$out/edit-other-class.txt"
mapfile -t edited <"$out/edit-other-class.txt"
report edit "${edited[@]}"
