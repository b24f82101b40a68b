#!/usr/bin/env bash
# Data-parallel training on c10d (Gloo on loopback), end to end through maskgit-train:
# - two ranks at --batch-size B reach the weights of one process at 2B (float tolerance), for
#   the tokenizer (also with its perceptual and adversarial losses: the discriminator and its
#   optimizer too) and the transformer, launched by --nproc 2 and by hand with torchrun's
#   environment variables (RANK, WORLD_SIZE, ..., as `torchrun --no-python` sets them);
# - a 2-rank run killed (SIGKILL) and resumed, and one interrupted (SIGINT) and resumed, end
#   bit for bit where an uninterrupted 2-rank run does; a 2-rank checkpoint resumes on 1 rank,
#   and is refused on 3 (its global batch does not split);
# - a rank that dies, or hangs past --dist-timeout, makes the other exit with a clear message
#   instead of hanging; --nproc under a launcher is refused.
# Usage: data_parallel.sh BIN_DIR TEST_DISTRIBUTED   (needs Debian's dataset-fashion-mnist and
# /usr/bin/python3 with numpy; TEST_DISTRIBUTED is build/tests/test_distributed, which hosts a
# store the way torchrun's agent does)
set -u
bin=${1:?usage: data_parallel.sh BIN_DIR TEST_DISTRIBUTED}
store_host=${2:?usage: data_parallel.sh BIN_DIR TEST_DISTRIBUTED}
bin=$(cd "$bin" && pwd)  # some ranks run in other folders
root=$(cd "$(dirname "$0")/.." && pwd)
data=/usr/share/datasets/fashion-mnist
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
source "$root/tests/cli_lib.sh"
compare() { /usr/bin/python3 "$root/tests/compare_safetensors.py" "$@" >"$work/compare" || { cat "$work/compare"; return 1; }; }
started=$SECONDS
export OMP_WAIT_POLICY=PASSIVE

tokenizer=("$bin/maskgit-train" --stage tokenizer --data "$data" --split t10k --limit 256 --filters 8
           --channel-mult 1,2 --codebook-size 16 --embedding-dim 4 --norm-groups 4 --dead-code-window 4
           --log-every 1 --threads 1 -q)
transformer=("$bin/maskgit-train" --stage transformer --data "$data" --split t10k --limit 256 --layers 1
             --hidden 16 --heads 2 --mlp-dim 32 --dropout 0 --log-every 1 --threads 1)

# A free TCP port on loopback, for the hand-made launches.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# by_hand PORT RANK: sets `hand` to the prefix that starts one rank of 2 as torchrun does (its
# variables, no --nproc): "${hand[@]}" COMMAND... (env execs COMMAND, so $! is the rank's pid).
by_hand() {
  hand=(env RANK="$2" LOCAL_RANK="$2" WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 GROUP_RANK=0 ROLE_RANK="$2"
        MASTER_ADDR=127.0.0.1 MASTER_PORT="$1" TORCHELASTIC_RUN_ID=test)
}

# wait_for_lines FILE N PID: until FILE has N lines (or PID ended, or 60 s passed).
wait_for_lines() {
  local i
  for ((i = 0; i < 6000; i++)); do
    [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}

# --- 1. Two ranks at B = one process at 2B --------------------------------------------------------
check "tokenizer, 1 process at batch 32" "${tokenizer[@]}" --steps 12 --batch-size 32 -o "$work/tok1"
check "tokenizer, --nproc 2 at batch 16" "${tokenizer[@]}" --steps 12 --batch-size 16 --nproc 2 -o "$work/tok2"
check "2 ranks at 16 = 1 process at 32 (tokenizer weights)" compare "$work/tok1/tokenizer.safetensors" "$work/tok2/tokenizer.safetensors"
check "2 ranks at 16 = 1 process at 32 (tokenizer checkpoint, AdamW moments included)" \
  compare "$work/tok1/train-state/tokenizer.safetensors" "$work/tok2/train-state/tokenizer.safetensors" --atol 1e-4
check "the 2-rank checkpoint records 2 ranks and the global batch" \
  grep -aq '"ranks":"2"' "$work/tok2/train-state/tokenizer.safetensors"
check "... and the global batch of 32" grep -aq '"batch_size":"32"' "$work/tok2/train-state/tokenizer.safetensors"
check "rank 0 alone wrote the metrics log: one record per step" test "$(wc -l <"$work/tok2/train-state/tokenizer-metrics.jsonl")" -eq 12
# The perceptual and adversarial losses too: the discriminator's step, its R1 penalty and the
# adaptive weight are taken over the global batch.
gan=(--perceptual-model "$root/models/fashion-mnist-perceptual" --adversarial-weight 0.5 --adversarial-start 3 --r1-weight 1)
check "tokenizer + discriminator, 1 process at batch 32" "${tokenizer[@]}" "${gan[@]}" --steps 8 --batch-size 32 -o "$work/gan1"
check "tokenizer + discriminator, --nproc 2 at batch 16" "${tokenizer[@]}" "${gan[@]}" --steps 8 --batch-size 16 --nproc 2 -o "$work/gan2"
check "2 ranks at 16 = 1 process at 32 (tokenizer weights, with the discriminator)" \
  compare "$work/gan1/tokenizer.safetensors" "$work/gan2/tokenizer.safetensors"
check "2 ranks at 16 = 1 process at 32 (checkpoint: the discriminator and its AdamW state included)" \
  compare "$work/gan1/train-state/tokenizer.safetensors" "$work/gan2/train-state/tokenizer.safetensors" --atol 1e-4

# torchrun's way: each rank started by hand with the launcher's variables, joining a store that
# the "agent" hosts (TORCHELASTIC_USE_AGENT_STORE=True, as torchrun sets), and, as older
# launchers do, with rank 0 hosting the store.
for agent in True none; do
  port=$(free_port)
  agent_env=()
  if [ "$agent" = True ]; then
    "$store_host" serve-store "$port" 120 >"$work/store.out" &
    store=$!
    pids+=($store)
    for ((i = 0; i < 500; i++)); do grep -q ready "$work/store.out" 2>/dev/null && break; sleep 0.01; done
    agent_env=(TORCHELASTIC_USE_AGENT_STORE=True TORCHELASTIC_RESTART_COUNT=0)
  fi
  rm -rf "$work/tokh"
  by_hand "$port" 1
  "${hand[@]}" "${agent_env[@]}" "${tokenizer[@]}" --steps 12 --batch-size 16 -o "$work/tokh" 2>"$work/rank1.err" &
  pids+=($!)
  by_hand "$port" 0
  "${hand[@]}" "${agent_env[@]}" "${tokenizer[@]}" --steps 12 --batch-size 16 -o "$work/tokh" 2>"$work/rank0.err"
  status0=$?
  wait "${pids[-1]}"
  status1=$?
  [ "$agent" = True ] && kill "$store" 2>/dev/null
  check "ranks started by hand (torchrun's variables, agent store: $agent) both exit 0 ($status0, $status1)" test "$status0$status1" = 00
  if [ "$status0$status1" != 00 ]; then sed 's/^/    rank 0: /' "$work/rank0.err"; sed 's/^/    rank 1: /' "$work/rank1.err"; fi
  check "... and train what --nproc 2 trains, bit for bit" cmp -s "$work/tokh/tokenizer.safetensors" "$work/tok2/tokenizer.safetensors"
done

cp -r "$work/tok1" "$work/tr1"
cp -r "$work/tok1" "$work/tr2"
check "transformer, 1 process at batch 32" "${transformer[@]}" -q --steps 10 --batch-size 32 -o "$work/tr1"
check "transformer, --nproc 2 at batch 16" "${transformer[@]}" -q --steps 10 --batch-size 16 --nproc 2 -o "$work/tr2"
check "2 ranks at 16 = 1 process at 32 (transformer weights; masks and class dropout drawn per global batch)" \
  compare "$work/tr1/transformer.safetensors" "$work/tr2/transformer.safetensors"

# --- 2. Kill, interrupt, resume ----------------------------------------------------------------------
steps=24
cp -r "$work/tok1" "$work/straight"
cp -r "$work/tok1" "$work/killed"
cp -r "$work/tok1" "$work/stopped"
run2=("${transformer[@]}" --steps "$steps" --checkpoint-every 4 --batch-size 16 --nproc 2)
check "an uninterrupted 2-rank transformer run" "${run2[@]}" -q -o "$work/straight"

"${run2[@]}" -q -o "$work/killed" 2>/dev/null &
launcher=$!
pids+=($launcher)
wait_for_lines "$work/killed/train-state/transformer-metrics.jsonl" 9 "$launcher"
kill -KILL "$launcher"  # the ranks die with it (they are started with PR_SET_PDEATHSIG)
wait "$launcher" 2>/dev/null
sleep 0.5
check "a checkpoint survived the kill" test -f "$work/killed/train-state/transformer.safetensors"
check "no rank outlived its killed launcher" test -z "$(pgrep -f -- "-o $work/killed" || true)"
# Given again, the batch must be the checkpoint's (here 16 per rank, 32 in all).
"${transformer[@]}" --steps "$steps" --checkpoint-every 4 --batch-size 32 --nproc 2 -q --resume -o "$work/killed" 2>"$work/err"
status=$?
check "a resume at another per-rank batch is refused (status 2, got $status)" test "$status" -eq 2
check "... naming the batch per rank and in all" \
  grep -q -- "--batch-size: 32 per rank (64 in all), but the checkpoint .* records batches of 32" "$work/err"
check "the killed 2-rank run resumes to the end" "${run2[@]}" -q --resume -o "$work/killed"
for file in transformer.safetensors train-state/transformer.safetensors; do
  check "killed and resumed = uninterrupted: $file, bit for bit" cmp -s "$work/killed/$file" "$work/straight/$file"
done
check "the resumed metrics log holds each step once" \
  test "$(sed 's/^{"step":\([0-9]*\),.*/\1/' "$work/killed/train-state/transformer-metrics.jsonl" | tr '\n' ' ')" = "$(seq -s' ' 1 "$steps") "

"${run2[@]}" -o "$work/stopped" 2>"$work/interrupt.err" &
launcher=$!
pids+=($launcher)
wait_for_lines "$work/stopped/train-state/transformer-metrics.jsonl" 6 "$launcher"
kill -INT "$launcher"
wait "$launcher"
status=$?
check "SIGINT to the launcher: status 130 (got $status)" test "$status" -eq 130
saved=$(grep -o 'checkpoint saved at step [0-9]*' "$work/interrupt.err" | grep -o '[0-9]*$')
check "every rank stopped at one step, saved once (step ${saved:-none})" test "$(grep -c 'checkpoint saved at step' "$work/interrupt.err")" -eq 1
check "the checkpoint is at that step" grep -aq "\"step\":\"${saved:-x}\"" "$work/stopped/train-state/transformer.safetensors"
check "the interrupted 2-rank run resumes to the end" "${run2[@]}" -q --resume -o "$work/stopped"
check "interrupted and resumed = uninterrupted, bit for bit" \
  cmp -s "$work/stopped/transformer.safetensors" "$work/straight/transformer.safetensors"

# SIGTERM to every process at once (a scheduler, a cgroup stop): the launcher passes it on too,
# and that second SIGTERM must not cut the checkpoint short.
cp -r "$work/tok1" "$work/termed"
"${run2[@]}" -o "$work/termed" 2>"$work/term.err" &
launcher=$!
pids+=($launcher)
wait_for_lines "$work/termed/train-state/transformer-metrics.jsonl" 6 "$launcher"
kill -TERM "$launcher" $(pgrep -P "$launcher") 2>/dev/null
wait "$launcher"
status=$?
check "SIGTERM to the launcher and its ranks at once: status 130 (got $status)" test "$status" -eq 130
check "... with one checkpoint saved" test "$(grep -c 'checkpoint saved at step' "$work/term.err")" -eq 1
if [ "$status" -ne 130 ]; then sed 's/^/    /' "$work/term.err"; fi
check "... which resumes to the end" "${run2[@]}" -q --resume -o "$work/termed"
check "... where the uninterrupted run ends, bit for bit" \
  cmp -s "$work/termed/transformer.safetensors" "$work/straight/transformer.safetensors"

# A different number of ranks: the global batch (32) must split evenly.
check "a 2-rank tokenizer run stopped after 6 steps" "${tokenizer[@]}" --steps 12 --batch-size 16 --nproc 2 --stop-after 6 -o "$work/moved"
"${tokenizer[@]}" --steps 12 --nproc 3 --resume -o "$work/moved" 2>"$work/err"
status=$?
check "... is refused on 3 ranks (status 2, got $status): its batch of 32 does not split" \
  test "$status" -eq 2 -a "$(grep -c 'do not split evenly over 3 ranks' "$work/err")" -eq 1
check "... resumes on 1 process (batch 32)" "${tokenizer[@]}" --steps 12 --resume -o "$work/moved"
check "... and ends where the 2-rank run does" compare "$work/moved/tokenizer.safetensors" "$work/tok2/tokenizer.safetensors"

# --- 3. Lost ranks ------------------------------------------------------------------------------------
# dead_or_hung SIGNAL: rank 1 of a by-hand launch gets SIGNAL (KILL: dies; STOP: hangs) after
# two steps; rank 0 must end by itself with status 1 and one clear error line.
dead_or_hung() {
  local signal=$1 port rank0 rank1 t0 status
  port=$(free_port)
  rm -rf "$work/lost"
  by_hand "$port" 1
  "${hand[@]}" "${tokenizer[@]}" --steps 100000 --batch-size 16 --dist-timeout 3 -o "$work/lost" 2>/dev/null &
  rank1=$!
  disown "$rank1"  # no "Killed" notice from the shell
  pids+=($rank1)
  by_hand "$port" 0
  "${hand[@]}" "${tokenizer[@]}" --steps 100000 --batch-size 16 --dist-timeout 3 -o "$work/lost" 2>"$work/lost.err" &
  rank0=$!
  pids+=($rank0)
  wait_for_lines "$work/lost/train-state/tokenizer-metrics.jsonl" 2 "$rank0"
  kill -"$signal" "$rank1"
  t0=$SECONDS
  local i
  for ((i = 0; i < 600; i++)); do kill -0 "$rank0" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$rank0" 2>/dev/null
  wait "$rank0"
  status=$?
  kill -KILL "$rank1" 2>/dev/null
  kill -CONT "$rank1" 2>/dev/null
  echo "SIG$signal to rank 1 -> rank 0 after $((SECONDS - t0)) s: $(cat "$work/lost.err")"
  check "SIG$signal to rank 1: rank 0 ends by itself in $((SECONDS - t0)) s with status 1 (got $status)" test "$status" -eq 1
  check "SIG$signal to rank 1: one error line naming the rank and the lost peer" \
    test "$(wc -l <"$work/lost.err")" -eq 1 -a -n "$(grep -E 'rank 0 of 2.*(another rank|rank 1)' "$work/lost.err")"
  if [ "$status" -ne 1 ]; then sed 's/^/    /' "$work/lost.err"; fi
}
dead_or_hung KILL
dead_or_hung STOP
check "the lost run's checkpoint directory holds no temporary" test -z "$(find "$work/lost" -name '*.tmp.*')"

# A rank's own failure (its data missing: another machine, say) is reported by that rank. The
# same command with a relative --data, started in a folder where that path holds nothing.
ln -s "$data" "$work/ds"
mkdir -p "$work/elsewhere"
port=$(free_port)
by_hand "$port" 1
(cd "$work/elsewhere" && exec "${hand[@]}" "${tokenizer[@]/#$data/ds}" --steps 12 --batch-size 16 --dist-timeout 20 \
  -o "$work/own" 2>"$work/rank1.err") &
rank1=$!
by_hand "$port" 0
(cd "$work" && exec "${hand[@]}" "${tokenizer[@]/#$data/ds}" --steps 12 --batch-size 16 --dist-timeout 20 \
  -o "$work/own" 2>"$work/rank0.err")
status0=$?
wait "$rank1"
status1=$?
check "rank 1 without its data: status 3 (got $status1) and its own error line" \
  test "$status1" -eq 3 -a "$(grep -c "error: rank 1 of 2: ds: " "$work/rank1.err")" -eq 1
check "... and rank 0 fails too (status 1, got $status0), saying a rank stopped" \
  test "$status0" -eq 1 -a "$(grep -c 'another rank stopped' "$work/rank0.err")" -eq 1

# Ranks started with different settings stop at once (status 2), the one that differs naming
# the first setting, instead of deadlocking or training what the checkpoint does not record.
mismatch() {  # mismatch DESCRIPTION NEEDLE RANK1_COMMAND...
  local what=$1 needle=$2 port status0 status1 rank1 t0=$SECONDS; shift 2
  port=$(free_port)
  rm -rf "$work/mm"
  by_hand "$port" 1
  "${hand[@]}" "$@" --steps 12 --batch-size 16 --dist-timeout 60 -o "$work/mm" 2>"$work/rank1.err" &
  rank1=$!
  by_hand "$port" 0
  "${hand[@]}" "${tokenizer[@]}" --steps 12 --batch-size 16 --dist-timeout 60 -o "$work/mm" 2>"$work/rank0.err"
  status0=$?
  wait "$rank1"
  status1=$?
  check "$what: both ranks stop with status 2 ($status0, $status1) in $((SECONDS - t0)) s, well before the timeout" \
    test "$status0$status1" = 22 -a $((SECONDS - t0)) -lt 30
  check "$what: rank 1 names the setting ($needle)" grep -q "rank 1 of 2 was started with other .*$needle" "$work/rank1.err"
  check "$what: rank 0 names rank 1" grep -q "rank(s) 1 of 2 were started with other" "$work/rank0.err"
}
mismatch "another seed" "seed=2 here" "${tokenizer[@]}" -s 2
mismatch "another learning rate" "learning_rate=0.01" "${tokenizer[@]}" --lr 0.01
mismatch "another architecture" '"filters":16' "${tokenizer[@]/#8/16}"  # --filters 8 -> 16
cp -r "$work/tok2" "$work/mm-resume"
port=$(free_port)
by_hand "$port" 1
"${hand[@]}" "${tokenizer[@]}" --steps 14 --batch-size 16 --resume -o "$work/mm-resume" 2>"$work/rank1.err" &
rank1=$!
by_hand "$port" 0
"${hand[@]}" "${tokenizer[@]}" --steps 14 --batch-size 16 --overwrite -o "$work/mm-resume" 2>"$work/rank0.err"
status0=$?
wait "$rank1"
check "--resume on one rank, --overwrite on the other: refused on both ($status0, $?)" grep -q "resume=true overwrite=false here" "$work/rank1.err"
check "... and the checkpoint is untouched" cmp -s "$work/mm-resume/train-state/tokenizer.safetensors" "$work/tok2/train-state/tokenizer.safetensors"

# A closed stderr is not taken over by a rank's sockets.
check "--nproc 2 with stderr closed trains" "${tokenizer[@]}" --steps 4 --batch-size 16 --nproc 2 -o "$work/closed" 2>&-
check "... and writes its model" test -f "$work/closed/tokenizer.safetensors"

# --nproc under a launcher is a usage error (exit 2, one line).
expect 2 "--nproc: this process is already rank 0 of 2" -- env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 \
  "${tokenizer[@]}" --nproc 2 -o "$work/never"
expect 2 "RANK" -- env RANK=2 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "${tokenizer[@]}" -o "$work/never"
expect 2 "--nproc: this process is already rank 0 of 1" -- env RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 \
  MASKGIT_LOCAL_LAUNCHER=1 "${tokenizer[@]}" --nproc 2 -o "$work/never"

# The classifier trains on two ranks too, and its evaluation runs once, on rank 0.
check "classifier on 2 ranks" "$bin/maskgit-train" --stage classifier --data "$data" --split t10k --limit 256 \
  --batch-size 16 --steps 6 --eval-split t10k --nproc 2 --threads 1 -q -o "$work/cls" 2>/dev/null
check "its metrics log ends with one evaluation record" test "$(grep -c evaluation_accuracy "$work/cls/train-state/classifier-metrics.jsonl")" -eq 1

echo "data_parallel: $((SECONDS - started)) s"
finish data_parallel
