#!/usr/bin/env bash
# Concurrency benchmark (not a test): runs 1, 2 and 4 copies of maskgit-sample side by side,
# on a quiet machine and beside one busy process (a single-threaded busy loop), and prints
# one table of aggregate images/s against one copy alone on a quiet machine.
#
# Usage: scripts/bench_concurrency.sh [--build DIR] [--images N] [--batch B] [--copies "1 2 4"]
#                                     [--repeats R] [-- extra maskgit-sample flags]
# Environment: everything set for this script reaches the tools (OMP_WAIT_POLICY, ...).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build images=128 batch=8 copies="1 2 4" repeats=1
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build|--images|--batch|--copies|--repeats)
      [ $# -ge 2 ] || { echo "bench_concurrency: $1 needs a value (see the header of $0)" >&2; exit 2; } ;;&
    --build) build=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --copies) copies=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "bench_concurrency: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
tool=$build/apps/maskgit-sample
[ -x "$tool" ] || { echo "bench_concurrency: $tool not found (build first, or give --build)" >&2; exit 3; }
work=$(mktemp -d); busy_pid=""
cleanup() { [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
# Runs `count` copies at once and sets group_time to the wall time of the whole group (s). A
# failing copy stops the benchmark, once all copies have ended, with their error output.
run_group() {
  local count=$1 start pids=() i failed=0
  start=$(now)
  for ((i = 0; i < count; i++)); do
    "$tool" -c 0 -n "$images" -b "$batch" -s $((i * images)) -o "$work/c$i-%d.png" "${extra[@]}" \
      >/dev/null 2>"$work/err$i" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if [ "$failed" = 1 ]; then
    cat "$work"/err* >&2
    echo "bench_concurrency: a copy of maskgit-sample failed" >&2
    exit 1
  fi
  group_time=$(calc "$(now) - $start")
}
# Sets best_time to the best of `repeats` group runs.
best_group() {
  local r
  best_time=""
  for ((r = 0; r < repeats; r++)); do
    run_group "$1"
    if [ -z "$best_time" ] || [ "$(calc "$group_time < $best_time")" = 1 ]; then best_time=$group_time; fi
  done
}
start_busy() { (while :; do :; done) & busy_pid=$!; }
stop_busy() { kill "$busy_pid" 2>/dev/null; wait "$busy_pid" 2>/dev/null || true; busy_pid=""; }

echo "maskgit-sample -n $images -b $batch ${extra[*]} | $(nproc) CPUs | OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
echo
alone=""
echo "| copies | machine | wall s | aggregate images/s | vs one copy alone, quiet | time vs the same copies one after the other |"
echo "|---|---|---|---|---|---|"
for busy in no yes; do
  [ "$busy" = yes ] && start_busy
  best_group 1
  single=$best_time
  [ -z "$alone" ] && alone=$single
  for count in $copies; do
    if [ "$count" = 1 ]; then t=$single; else best_group "$count"; t=$best_time; fi
    printf '| %d | %s | %.1f | %.1f | %.2f | %.2f |\n' "$count" \
      "$([ "$busy" = yes ] && echo "beside 1 busy process" || echo quiet)" "$t" \
      "$(calc "$count * $images / $t")" "$(calc "$count * $alone / $t")" "$(calc "$t / ($count * $single)")"
  done
  [ "$busy" = yes ] && stop_busy
done
