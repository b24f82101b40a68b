#!/usr/bin/env bash
# Release parity (ctest release:parity-reduced, release:parity-official):
#   1. tests/reference/maskgit_reference.py draws random weights in the release's exact Flax
#      checkpoint layout, writes them as msgpack checkpoints, and computes golden outputs with an
#      independent numpy reference of the release's networks and parallel decode;
#   2. maskgit-convert converts the checkpoints into a model directory;
#   3. release_parity loads that directory and compares our tokenizer, transformer and decoder
#      with the goldens.
# For `reduced` it then checks that the comparison can fail: with a checkpoint that is wrong on
# purpose (two tensors swapped in the transformer or in the encoder, one decoder weight
# perturbed) the comparison must report a mismatch.
#
# Usage: release_parity.sh reduced|official BIN_DIR [RELEASE_PARITY]
#   BIN_DIR holds maskgit-convert; RELEASE_PARITY defaults to BIN_DIR/../tests/release_parity.
# Everything is written to a temporary folder that is removed on exit.
set -euo pipefail

variant=${1:-}
bin_dir=${2:-}
if [[ $variant != reduced && $variant != official ]] || [[ -z $bin_dir ]]; then
  echo "usage: $0 reduced|official BIN_DIR [RELEASE_PARITY]" >&2
  exit 2
fi
parity=${3:-$bin_dir/../tests/release_parity}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=/usr/bin/python3
reference=$here/reference/maskgit_reference.py
convert=$bin_dir/maskgit-convert

fail() { echo "release_parity.sh: FAIL: $*" >&2; exit 1; }

# Missing tools are failures, not skips: a parity test that does not run proves nothing.
[[ -x $python ]] || fail "$python not found (install python3, python3-numpy and python3-msgpack: scripts/setup.sh)"
"$python" -c 'import numpy, msgpack' 2>/dev/null ||
  fail "$python cannot import numpy and msgpack (install python3-numpy and python3-msgpack: scripts/setup.sh)"
[[ -x $convert ]] || fail "$convert not found (build it first)"
[[ -x $parity ]] || fail "$parity not found (build the release_parity target first)"

work=$(mktemp -d "${TMPDIR:-/tmp}/maskgit-parity-$variant.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# One reference → convert → compare run in $work/$1 (run it in a subshell); prints the stage
# times; exits with the comparison's status (0 all pass, 1 a mismatch, 2 unreadable inputs), or 3
# when the reference or the converter failed.
stage_failed() { echo "release_parity.sh: $*" >&2; exit 3; }
pipeline() {
  local name=$1 sabotage=$2 dir=$work/$1 start status
  mkdir -p "$dir"
  start=$(now)
  "$python" "$reference" --variant "$variant" --out "$dir/release" ${sabotage:+--sabotage "$sabotage"} ||
    stage_failed "$name: the reference failed"
  echo "[$name] reference: $(elapsed "$start") s"
  start=$(now)
  "$convert" --tokenizer "$dir/release/tokenizer_checkpoint" --transformer "$dir/release/transformer_checkpoint" \
    -o "$dir/model" --class-names "$dir/release/class_names.txt" ||
    stage_failed "$name: maskgit-convert failed on the reference's checkpoints"
  echo "[$name] maskgit-convert: $(elapsed "$start") s"
  # The checkpoints are not needed any more: free the disk before loading the model.
  rm -f "$dir/release/tokenizer_checkpoint" "$dir/release/transformer_checkpoint"
  start=$(now)
  status=0
  "$parity" "$dir/model" "$dir/release/golden.safetensors" || status=$?
  echo "[$name] comparison: $(elapsed "$start") s, exit status $status"
  rm -rf "$dir"
  exit "$status"
}

total=$(now)
status=0
(pipeline parity "") || status=$?
case $status in
  0) ;;
  1) fail "$variant: the converted model differs from the reference (see the FAIL lines above)" ;;
  *) fail "$variant: the pipeline did not complete (exit status $status, see above)" ;;
esac

if [[ $variant == reduced ]]; then
  for sabotage in transformer-swap encoder-swap decoder-perturb; do
    status=0
    (pipeline "sabotage-$sabotage" "$sabotage") >"$work/sabotage.log" 2>&1 || status=$?
    if [[ $status -ne 1 ]]; then
      cat "$work/sabotage.log"
      fail "with a deliberately wrong checkpoint ($sabotage) the comparison exited $status, not 1 (mismatch)"
    fi
    echo "[sabotage $sabotage] detected: $(grep -c '^FAIL' "$work/sabotage.log") checks failed, as they must:"
    grep '^FAIL' "$work/sabotage.log" | sed 's/^/    /'
  done
fi
echo "release parity ($variant): passed in $(elapsed "$total") s"
