#!/usr/bin/env bash
# Training survives SIGKILL at any moment: a tiny tokenizer run, then a tiny transformer run on
# top of it, are killed at random moments (during start-up, between steps, and on purpose while
# a checkpoint, model or metrics file is being written) and restarted with --resume (or afresh
# while there is no checkpoint yet) until they finish. Then:
# - the last run exits 0 and the model loads (maskgit-tokenize reconstruct, maskgit-sample);
# - no temporary file is left (the trainers remove those of killed writers when they start);
# - the metrics log holds each step once, in order, with the loss of an uninterrupted run;
# - weights, checkpoint and config are byte-identical to those of an uninterrupted run with the
#   same settings (resume is bit for bit, README "maskgit-train").
# Usage: kill_resume.sh BIN_DIR [SEED]   (needs Debian's dataset-fashion-mnist)
# KILL_RESUME_MAX_KILLS (default 8) bounds the kills per stage, so the runtime stays bounded.
set -u
bin=${1:?usage: kill_resume.sh BIN_DIR [SEED]}
seed=${2:-$(( $$ % 32768 ))}
RANDOM=$seed
max_kills=${KILL_RESUME_MAX_KILLS:-8}
data=/usr/share/datasets/fashion-mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shopt -s nullglob
passed=0 failed=0
started=$SECONDS

check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; fi
}

steps=40
tokenizer=("$bin/maskgit-train" --stage tokenizer --data "$data" --split t10k --limit 64 --batch-size 32
           --filters 8 --channel-mult 1,2 --codebook-size 16 --embedding-dim 4 --norm-groups 4
           --dead-code-window 5 --steps "$steps" --checkpoint-every 3 --log-every 1 --threads 1 -q)
transformer=("$bin/maskgit-train" --stage transformer --data "$data" --split t10k --limit 64 --batch-size 32
             --layers 1 --hidden 16 --heads 2 --mlp-dim 32 --dropout 0.1
             --steps "$steps" --checkpoint-every 3 --log-every 1 --threads 1 -q)

temporaries() { find "$1" -name '*.tmp.*' 2>/dev/null | sort; }

# A random fraction of a second: random_sleep MIN_MS MAX_MS.
random_sleep() {
  local ms=$(( $1 + RANDOM % ($2 - $1 + 1) ))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# timed_run METRICS_LOG COMMAND...: runs COMMAND, setting `startup_ms` (until the first metrics
# record) and `step_ms` (the mean time of a step after it, with its share of the writes).
timed_run() {
  local log=$1 t0 t1 pid; shift
  t0=$(now_ms)
  "$@" 2>"$work/err" &
  pid=$!
  while [ ! -s "$log" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
  t1=$(now_ms)
  wait "$pid" || { echo "FAIL: uninterrupted run: $*"; cat "$work/err"; exit 1; }
  startup_ms=$((t1 - t0))
  step_ms=$(( ($(now_ms) - t1) / (steps - 1) + 1 ))
}

# kill_until_done STAGE DIR COMMAND...: runs COMMAND -o DIR (with --resume once a checkpoint
# exists), SIGKILLs it at random moments up to max_kills times, and lets the last run finish.
# The moments are drawn from the time the run still needs on this machine (startup_ms, and
# step_ms for each step past the checkpoint), so nearly every run is killed before it ends.
# Sets `kills`, `kills_in_writes` and `last_status`.
kill_until_done() {
  local stage=$1 dir=$2; shift 2
  local state=$dir/train-state/$stage.safetensors pid status before after mode i pending done_steps full
  kills=0 kills_in_writes=0 last_status=-1
  while :; do
    local resume=()
    done_steps=0
    if [ -f "$state" ]; then
      resume=(--resume)
      done_steps=$(grep -ao '"step":"[0-9]*"' "$state" | head -1 | tr -dc '0-9')
    fi
    full=$((startup_ms + (steps - ${done_steps:-0}) * step_ms))
    before=$(temporaries "$dir")
    "$@" "${resume[@]}" -o "$dir" 2>>"$work/$stage.log" &
    pid=$!
    if [ "$kills" -lt "$max_kills" ]; then
      mode=$((RANDOM % 2))
      if [ "$mode" -eq 0 ]; then
        random_sleep $((startup_ms / 10)) $((full * 9 / 10))  # anywhere: start-up, loading, steps, writes
      else
        random_sleep $((startup_ms / 2)) $((full * 6 / 10))   # then wait for a write and kill it there
        for ((i = 0; i < 500000; i++)); do  # builtins only: a few microseconds a look
          pending=("$dir"/*.tmp.* "$dir"/train-state/*.tmp.*)
          [ "${#pending[@]}" -gt 0 ] && break
          [ $((i % 256)) -eq 0 ] && ! kill -0 "$pid" 2>/dev/null && break
        done
      fi
      kill -KILL "$pid" 2>/dev/null
    fi
    { wait "$pid"; } 2>/dev/null  # without the shell's "Killed" notice
    status=$?
    if [ "$status" -eq 137 ]; then
      kills=$((kills + 1))
      after=$(temporaries "$dir")
      [ -n "$(comm -13 <(echo "$before") <(echo "$after"))" ] && kills_in_writes=$((kills_in_writes + 1))
      continue
    fi
    last_status=$status
    return
  done
}

# The trajectory of a metrics log: "step loss" per line.
trajectory() { sed -n 's/^{"step":\([0-9]*\),"loss":\([^,]*\),.*}$/\1 \2/p' "$1"; }

# --- Tokenizer --------------------------------------------------------------------------------
timed_run "$work/tokenizer-straight/train-state/tokenizer-metrics.jsonl" "${tokenizer[@]}" -o "$work/tokenizer-straight"
kill_until_done tokenizer "$work/tokenizer" "${tokenizer[@]}"
echo "tokenizer: start-up $startup_ms ms, $step_ms ms a step; $kills kills ($kills_in_writes while a file was being written), then a run to the end"
check "the last tokenizer run exits 0 (got $last_status)" test "$last_status" -eq 0
if [ "$last_status" -ne 0 ]; then sed 's/^/    /' "$work/tokenizer.log"; fi
check "no error from any tokenizer run" test ! -s "$work/tokenizer.log"
check "no temporary files left (tokenizer)" test -z "$(temporaries "$work/tokenizer")"
for file in tokenizer.safetensors config.json train-state/tokenizer.safetensors; do
  check "$file equals the uninterrupted run's, bit for bit" cmp -s "$work/tokenizer/$file" "$work/tokenizer-straight/$file"
done
log=$work/tokenizer/train-state/tokenizer-metrics.jsonl
check "the tokenizer metrics log has one whole record per step" test "$(wc -l <"$log")" -eq "$steps"
check "tokenizer steps are 1..$steps in order, each once" \
  test "$(trajectory "$log" | cut -d' ' -f1 | tr '\n' ' ')" = "$(seq -s' ' 1 "$steps") "
check "the tokenizer losses are those of the uninterrupted run" \
  cmp -s <(trajectory "$log") <(trajectory "$work/tokenizer-straight/train-state/tokenizer-metrics.jsonl")
"$bin/maskgit-tokenize" -m "$work/tokenizer" --threads 1 reconstruct --data "$data" --limit 2 -o "$work/r%d.png" 2>"$work/err"
check "the tokenizer loads and reconstructs (status $?)" test -f "$work/r1.png"

# --- Transformer, beside the tokenizer --------------------------------------------------------
cp -r "$work/tokenizer-straight" "$work/transformer-straight"
cp -r "$work/tokenizer-straight" "$work/transformer"
timed_run "$work/transformer-straight/train-state/transformer-metrics.jsonl" "${transformer[@]}" -o "$work/transformer-straight"
kill_until_done transformer "$work/transformer" "${transformer[@]}"
echo "transformer: start-up $startup_ms ms, $step_ms ms a step; $kills kills ($kills_in_writes while a file was being written), then a run to the end"
check "the last transformer run exits 0 (got $last_status)" test "$last_status" -eq 0
if [ "$last_status" -ne 0 ]; then sed 's/^/    /' "$work/transformer.log"; fi
check "no error from any transformer run" test ! -s "$work/transformer.log"
check "no temporary files left (transformer)" test -z "$(temporaries "$work/transformer")"
for file in transformer.safetensors config.json train-state/transformer.safetensors train-state/tokens-t10k.safetensors; do
  check "$file equals the uninterrupted run's, bit for bit" cmp -s "$work/transformer/$file" "$work/transformer-straight/$file"
done
log=$work/transformer/train-state/transformer-metrics.jsonl
check "the transformer metrics log has one whole record per step" test "$(wc -l <"$log")" -eq "$steps"
check "transformer steps are 1..$steps in order, each once" \
  test "$(trajectory "$log" | cut -d' ' -f1 | tr '\n' ' ')" = "$(seq -s' ' 1 "$steps") "
check "the transformer losses are those of the uninterrupted run" \
  cmp -s <(trajectory "$log") <(trajectory "$work/transformer-straight/train-state/transformer-metrics.jsonl")
"$bin/maskgit-sample" -m "$work/transformer" --threads 1 -c 1 -n 1 -o "$work/s%d.png" 2>"$work/err"
check "the transformer loads and samples (status $?)" test -f "$work/s0.png"

echo "kill_resume: $passed passed, $failed failed, seed $seed, $((SECONDS - started)) s"
[ "$failed" -eq 0 ]
