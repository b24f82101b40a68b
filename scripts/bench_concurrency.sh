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
# Runs `count` copies at once; prints the wall time of the whole group in seconds.
run_group() {
  local count=$1 start pids=() i
  start=$(now)
  for ((i = 0; i < count; i++)); do
    "$tool" -c 0 -n "$images" -b "$batch" -s $((i * images)) -o "$work/c$i-%d.png" "${extra[@]}" \
      >/dev/null 2>"$work/err$i" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { cat "$work"/err* >&2; exit 1; }; done
  echo "$(now) - $start" | bc -l
}
# The best of `repeats` runs.
best_group() {
  local best="" t r
  for ((r = 0; r < repeats; r++)); do
    t=$(run_group "$1")
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  echo "$best"
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
  single=$(best_group 1)
  [ -z "$alone" ] && alone=$single
  for count in $copies; do
    if [ "$count" = 1 ]; then t=$single; else t=$(best_group "$count"); fi
    printf '| %d | %s | %.1f | %.1f | %.2f | %.2f |\n' "$count" \
      "$([ "$busy" = yes ] && echo "beside 1 busy process" || echo quiet)" "$t" \
      "$(echo "$count * $images / $t" | bc -l)" "$(echo "$count * $alone / $t" | bc -l)" \
      "$(echo "$t / ($count * $single)" | bc -l)"
  done
  [ "$busy" = yes ] && stop_busy
done
