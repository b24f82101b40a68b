#!/usr/bin/env bash
# How a model's samples depend on the decoding settings a model directory can recommend
# (config.json "sampling": steps, choice temperature, temperature, guidance scale and schedule), judged by
# maskgit-eval at one sample count: how the shipped model's defaults were chosen (README, "The
# shipped model"). Every run starts from the release's settings (--release-defaults) and
# changes the settings of its row; all runs sample the same classes and seeds.
# Prints one JSON line per setting: the flags, accuracy, Fréchet distance and its floor.
# Usage: scripts/sweep_sampling.sh [MODEL_DIR]
# Environment: PER_CLASS (default 100), SEED (sample seed, default 0), THREADS,
#   SETTINGS (one setting per line, flags separated by spaces; default: the grid below).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/models/fashion-mnist}
per_class=${PER_CLASS:-100}
seed=${SEED:-0}
default_settings='
--temperature 1
--temperature 0.9
--temperature 0.8
--temperature 0.7
--choice-temperature 2
--choice-temperature 3
--steps 12
--steps 16
--cfg-scale 1.5
--cfg-scale 2
--temperature 0.9 --steps 12
--temperature 0.8 --steps 12
--temperature 0.9 --cfg-scale 1.25
--temperature 0.8 --cfg-scale 1.25
--temperature 0.9 --steps 12 --cfg-scale 1.25'
settings=${SETTINGS:-$default_settings}
while IFS= read -r setting; do
  [ -z "$setting" ] && continue
  read -r -a flags <<<"$setting"
  line=$("$root/build/apps/maskgit-eval" --sample-model "$model" --per-class "$per_class" --sample-seed "$seed" \
    --json -q --threads "${THREADS:-0}" --release-defaults "${flags[@]}")
  python3 - "$setting" "$line" <<'EOF'
import json, sys
setting, line = sys.argv[1:]
d = json.loads(line)
print(json.dumps({"settings": setting, "images": d["images"], "accuracy": d["accuracy"],
                  "frechet_distance": round(d["frechet_distance"], 3),
                  "floor_distance": round(d["floor_distance"], 3)}))
EOF
done <<<"$settings"
