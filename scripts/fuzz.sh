#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang (in build-fuzz/, or FUZZ_BUILD_DIR) and runs
# each for a bounded time over a fresh copy of its seed corpus (fuzz/corpus/<harness>/), then
# prints a table: harness, executions, executions per second, corpus size before → after, peak
# memory, result. Any crash, sanitizer report, leak, timeout or out-of-memory fails the run;
# the input that caused it is saved under build-fuzz/findings/ and the log under
# build-fuzz/fuzz-logs/. README "Fuzzing" has the commands to reproduce and minimise one.
#
# Usage: scripts/fuzz.sh [--seconds N] [--parallel P] [--keep-corpus] [--build-only] [HARNESS...]
#   --seconds N     time per harness (default 20; CI uses 10, a long run 600)
#   --parallel P    harnesses run at once (default 1)
#   --keep-corpus   continue from build-fuzz/corpus/ (grown by earlier runs) instead of the seeds
#   --build-only    configure and build, run nothing
#   HARNESS...      some of: json safetensors config idx image mask token_file flax (default: all)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${FUZZ_BUILD_DIR:-$root/build-fuzz}
all_harnesses=(json safetensors config idx image mask token_file flax)

seconds=20
parallel=1
keep_corpus=0
build_only=0
harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds|--parallel)
      [ $# -ge 2 ] || { echo "fuzz.sh: $1 needs a value" >&2; exit 2; }
      if [ "$1" = --seconds ]; then seconds=$2; else parallel=$2; fi
      shift 2 ;;
    --keep-corpus) keep_corpus=1; shift ;;
    --build-only) build_only=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) harnesses+=("$1"); shift ;;
  esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${all_harnesses[@]}")
for harness in "${harnesses[@]}"; do
  [[ " ${all_harnesses[*]} " == *" $harness "* ]] || { echo "fuzz.sh: no harness \"$harness\" (${all_harnesses[*]})" >&2; exit 2; }
done
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -ge 1 ]] || { echo "fuzz.sh: --seconds needs a positive integer" >&2; exit 2; }
[[ "$parallel" =~ ^[0-9]+$ && "$parallel" -ge 1 ]] || { echo "fuzz.sh: --parallel needs a positive integer" >&2; exit 2; }

# clang with libFuzzer's runtime (Debian: libclang-rt-<version>-dev), and the project's own packages.
"$root/scripts/setup.sh" --deps-only
fuzzer_works() {
  command -v clang++ >/dev/null || return 1
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
    clang++ -x c++ -fsanitize=fuzzer,address,undefined - -o /dev/null 2>/dev/null
}
if ! fuzzer_works; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "fuzz: installing clang and libFuzzer" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang >/dev/null
  version=$(clang++ -dumpversion | cut -d. -f1)
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "libclang-rt-$version-dev" >/dev/null
  fuzzer_works || { echo "fuzz.sh: clang++ -fsanitize=fuzzer does not work" >&2; exit 1; }
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DMASKGIT_FUZZ=ON >&2
fi
build_start=$SECONDS
cmake --build "$build_dir" --parallel "${FUZZ_JOBS:-$(nproc)}" >&2
echo "fuzz: build took $((SECONDS - build_start)) s" >&2
[ "$build_only" = 1 ] && exit 0

findings=$build_dir/findings
logs=$build_dir/fuzz-logs
mkdir -p "$findings" "$logs"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_harness() {
  local harness=$1 corpus=$build_dir/corpus/$1
  if [ "$keep_corpus" = 0 ] || [ ! -d "$corpus" ]; then
    rm -rf "$corpus"
    mkdir -p "$corpus"
    cp "$root/fuzz/corpus/$harness/"* "$corpus/"
  fi
  local dict=()
  [ -f "$root/fuzz/$harness.dict" ] && dict=(-dict="$root/fuzz/$harness.dict")
  [ "$harness" = mask ] && dict=(-dict="$root/fuzz/image.dict")
  ls "$corpus" | wc -l >"$logs/$harness.seeds"
  # -malloc_limit_mb: no input of at most 4 KiB should make a loader ask for 512 MiB at once.
  # -timeout: seconds for one input. Both count as findings, as crashes and leaks do.
  local status=0 pid
  "$build_dir/fuzz/fuzz_$harness" "$corpus" "${dict[@]}" -max_total_time="$seconds" -max_len=4096 \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
    -artifact_prefix="$findings/$harness-" >"$logs/$harness.log" 2>&1 &
  pid=$!
  wait "$pid" || status=$?
  # The scratch folder of a harness that crashed (fuzz/fuzz_common.h removes it on a normal exit).
  rm -rf "/dev/shm/maskgit-fuzz-$pid" "${TMPDIR:-/tmp}/maskgit-fuzz-$pid"
  echo "$status" >"$logs/$harness.status"
}

run_start=$SECONDS
for harness in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  echo "fuzz: $harness for $seconds s" >&2
  run_harness "$harness" &
done
wait

stat() { sed -n "s/^stat::$2: *//p" "$logs/$1.log" | tail -1; }
failed=0
printf '\n%-12s %12s %8s %16s %8s  %s\n' harness execs exec/s "corpus" "rss MB" result
for harness in "${harnesses[@]}"; do
  log=$logs/$harness.log
  status=$(cat "$logs/$harness.status")
  execs=$(stat "$harness" number_of_executed_units)
  rate=$(stat "$harness" average_exec_per_sec)
  rss=$(stat "$harness" peak_rss_mb)
  corpus="$(cat "$logs/$harness.seeds") → $(ls "$build_dir/corpus/$harness" | wc -l)"
  result=ok
  if [ "$status" != 0 ]; then
    failed=1
    if grep -q "ERROR: libFuzzer: out-of-memory\|ERROR: libFuzzer: malloc" "$log"; then result=out-of-memory
    elif grep -q "ERROR: libFuzzer: timeout" "$log"; then result=timeout
    elif grep -q "ERROR: LeakSanitizer" "$log"; then result=leak
    else result=crash
    fi
    artifact=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -1)
    result="$result (exit $status): ${artifact:-no input saved}, log $log"
  fi
  printf '%-12s %12s %8s %16s %8s  %s\n' "$harness" "${execs:-?}" "${rate:-?}" "$corpus" "${rss:-?}" "$result"
done
echo "fuzz: ran $((SECONDS - run_start)) s, $seconds s per harness, $parallel at a time"
if [ "$failed" = 1 ]; then
  for harness in "${harnesses[@]}"; do
    if [ "$(cat "$logs/$harness.status")" != 0 ]; then
      echo "---- $harness: end of $logs/$harness.log" >&2
      grep -v '^#[0-9]' "$logs/$harness.log" | tail -40 >&2
    fi
  done
  echo "fuzz: FAILED; inputs in $findings" >&2
  exit 1
fi
