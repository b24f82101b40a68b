#!/usr/bin/env bash
# The paper's decoding ablations (MaskGIT §4.4, Fig. 5 and 8) at this project's scale, judged by
# maskgit-eval (class accuracy and Fréchet distance of classifier features against the test
# split, with the floor for as many real images):
#   1. each mask schedule (cosine, square, cubic, linear, exp, sqrt, log, arccos) at every T of
#      STEPS; its best T is the one with the lowest Fréchet distance;
#   2. quality against T for cosine (the same runs, cosine's row);
#   3. MaskGIT decoding (the model's default settings) against one token per step (T = the
#      number of tokens, schedule custom:1,1,...: the most confident token is fixed each step)
#      of the same model: quality and sampling time.
# Every run samples the same classes and seeds (--sample-seed SEED); only the decoding differs.
# Other decoding flags are the model's defaults (config.json "sampling"), or the release's with
# ARGS="--release-defaults".
# Prints one JSON line per run on stdout (also kept in OUT/results.jsonl) and, at the end, the
# README's tables (Markdown) on stderr and in OUT/tables.md.
# Usage: scripts/ablate_decoding.sh [MODEL_DIR]
# Environment: PER_CLASS (default 100), STEPS (default "4 6 8 12 16 24 32"), SCHEDULES,
#   SEED (default 0), OUT (default runs/ablate-decoding), THREADS, ARGS (more maskgit-eval flags).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/models/fashion-mnist}
per_class=${PER_CLASS:-100}
steps_list=${STEPS:-4 6 8 12 16 24 32}
schedules=${SCHEDULES:-cosine square cubic linear exp sqrt log arccos}
seed=${SEED:-0}
out=${OUT:-$root/runs/ablate-decoding}
bin=$root/build/apps
read -r -a extra <<<"${ARGS:-}"
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"

run() {  # run LABEL SCHEDULE STEPS flags...
  local label=$1 schedule=$2 steps=$3; shift 3
  local started ended line
  started=$(date +%s.%N)
  line=$("$bin/maskgit-eval" --sample-model "$model" --per-class "$per_class" --sample-seed "$seed" --json -q \
    --threads "${THREADS:-0}" "${extra[@]}" "$@")
  ended=$(date +%s.%N)
  python3 - "$label" "$schedule" "$steps" "$started" "$ended" "$line" <<'EOF' | tee -a "$results"
import json, sys
label, schedule, steps, started, ended, line = sys.argv[1:]
d = json.loads(line)
wall = float(ended) - float(started)
print(json.dumps({"run": label, "schedule": schedule, "steps": int(steps), "images": d["images"],
                  "accuracy": d["accuracy"], "frechet_distance": d["frechet_distance"],
                  "floor_distance": d["floor_distance"],
                  # the command's wall time less the judging: sampling, model loading, references
                  "sampling_seconds": round(wall - d["seconds"], 2)}))
EOF
}

for schedule in $schedules; do
  for t in $steps_list; do
    run sweep "$schedule" "$t" --schedule "$schedule" --steps "$t"
  done
done
# One token per step: T = the grid's token count.
tokens=$(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["transformer"]
print(t["grid_height"] * t["grid_width"])' "$model/config.json")
ones=$(python3 -c "print(','.join(['1'] * $tokens))")
run default default 0
run one-per-step "custom:1×$tokens" "$tokens" --schedule "custom:$ones" --steps "$tokens"

python3 - "$results" "$model" "$per_class" "$seed" <<'EOF' | tee "$out/tables.md" >&2
import json, sys
path, model, per_class, seed = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
sweep = [r for r in rows if r["run"] == "sweep"]
floor = rows[0]["floor_distance"]
print(f"Model {model}, {per_class} samples per class ({rows[0]['images']} images), sample seed {seed}; "
      f"Fréchet floor {floor:.2f}.\n")
print("| schedule | best T | Fréchet distance at best T | accuracy at best T | Fréchet distance over T |")
print("|---|---|---|---|---|")
order = []
for s in dict.fromkeys(r["schedule"] for r in sweep):
    runs = [r for r in sweep if r["schedule"] == s]
    best = min(runs, key=lambda r: r["frechet_distance"])
    order.append((best["frechet_distance"], s))
    curve = ", ".join(f"{r['steps']}: {r['frechet_distance']:.1f}" for r in runs)
    print(f"| {s} | {best['steps']} | {best['frechet_distance']:.2f} | {100 * best['accuracy']:.1f}% | {curve} |")
print("\nRanking by Fréchet distance at best T: " + " < ".join(s for _, s in sorted(order)))
cos = [r for r in sweep if r["schedule"] == "cosine"]
if cos:
    print("\n| cosine, T | " + " | ".join(str(r["steps"]) for r in cos) + " |")
    print("|---" * (len(cos) + 1) + "|")
    print("| Fréchet distance | " + " | ".join(f"{r['frechet_distance']:.2f}" for r in cos) + " |")
    print("| accuracy | " + " | ".join(f"{100 * r['accuracy']:.1f}%" for r in cos) + " |")
    print("| sampling seconds | " + " | ".join(f"{r['sampling_seconds']:.1f}" for r in cos) + " |")
print("\n| decoding | steps | Fréchet distance | accuracy | sampling seconds |")
print("|---|---|---|---|---|")
for r in rows:
    if r["run"] in ("default", "one-per-step"):
        what = "MaskGIT (this run's default settings)" if r["run"] == "default" else "one token per step"
        steps = "default" if r["run"] == "default" else r["steps"]
        print(f"| {what} | {steps} | {r['frechet_distance']:.2f} | {100 * r['accuracy']:.1f}% | {r['sampling_seconds']:.1f} |")
EOF
