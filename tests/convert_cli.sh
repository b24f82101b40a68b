#!/usr/bin/env bash
# maskgit-convert from the command line (ctest cli:convert): a small checkpoint pair of the
# release's structure, written by the numpy reference (tests/reference), converted and run;
# then bad flags, bad files and bad destinations: each case's exit status (2 flag, 3 input
# file, 4 output), exactly one line on stderr naming the flag or file, nothing written.
# Usage: convert_cli.sh BIN_DIR
set -u
bin=${1:?usage: convert_cli.sh BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/maskgit-convert-cli.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
convert=$bin/maskgit-convert

fail() { echo "convert_cli.sh: FAIL: $*"; exit 1; }
[ -x "$convert" ] || fail "$convert not found"
"$python" -c 'import numpy, msgpack' 2>/dev/null || fail "$python cannot import numpy and msgpack (scripts/setup.sh installs them)"
"$python" "$here/reference/maskgit_reference.py" --variant reduced --out "$work/release" >/dev/null ||
  fail "the reference failed"
tok=$work/release/tokenizer_checkpoint
tr=$work/release/transformer_checkpoint

source "$here/cli_lib.sh"
# Nothing but the inputs may appear in $work/out-dir after a refused conversion.
nothing_left() { [ -z "$(ls -A "$work/dest")" ]; }

mkdir -p "$work/dest"
# The happy path: progress on stderr, a summary on stdout, a loadable model that samples.
check "converts" "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/model" -q
check "three files" test -f "$work/dest/model/config.json" -a -f "$work/dest/model/tokenizer.safetensors" \
  -a -f "$work/dest/model/transformer.safetensors"
check "no temporaries" test -z "$(ls -A "$work/dest" | grep -v '^model$')"
check "samples" "$bin/maskgit-sample" -m "$work/dest/model" --class 3 -n 1 --steps 2 -o "$work/sample.png"
check "sample written" test -s "$work/sample.png"
"$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/model" --overwrite --json \
  --class-names "$work/release/class_names.txt" -q >"$work/json"
check "--json is one object" "$python" -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['transformer']['no_class_token'] is False and d['image_width'] == 64" "$work/json"
rm -rf "$work/dest/model"

# The release has no "no class" token: guidance and class-free editing are refused by flag.
"$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/model" -q
expect 2 "--cfg-scale" -- "$bin/maskgit-sample" -m "$work/model" --class 1 --cfg-scale 3 -n 1 -o "$work/x.png"

# Flags and values.
expect 2 "--tokenizer" -- "$convert" --transformer "$tr" -o "$work/dest/m"
expect 2 "--output" -- "$convert" --tokenizer "$tok" --transformer "$tr"
expect 2 "--bogus" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/m" --bogus
expect 2 "--class-names" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/m" --class-names ""
expect 2 "--output" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o ""
expect 2 "--tokenizer" -- "$convert" --tokenizer "" --transformer "$tr" -o "$work/dest/m"
# Input files.
expect 3 "$work/missing" -- "$convert" --tokenizer "$work/missing" --transformer "$tr" -o "$work/dest/m"
expect 3 "$work/release: not a regular file" -- "$convert" --tokenizer "$work/release" --transformer "$tr" -o "$work/dest/m"
head -c 1000 "$tr" >"$work/truncated"
expect 3 "$work/truncated: " -- "$convert" --tokenizer "$tok" --transformer "$work/truncated" -o "$work/dest/m"
expect 3 "$tr: encoder/Conv_0/kernel: missing" -- "$convert" --tokenizer "$tr" --transformer "$tr" -o "$work/dest/m"
expect 3 "$tok: Embed_0/word_embeddings/embedding: missing" -- "$convert" --tokenizer "$tok" --transformer "$tok" -o "$work/dest/m"
: >"$work/empty"
expect 3 "$work/empty: 0 bytes" -- "$convert" --tokenizer "$work/empty" --transformer "$tr" -o "$work/dest/m"
printf 'a\nb\n' >"$work/names"
expect 3 "$work/names: 2 class names, the transformer has 10 classes" -- \
  "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/m" --class-names "$work/names"
expect 3 "$work/no-names" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/m" --class-names "$work/no-names"
check "nothing written for bad inputs" nothing_left
# Destinations, checked before anything is read.
: >"$work/dest/file"
expect 4 "exists and is not a directory" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/file"
mkdir -p "$work/dest/full" && : >"$work/dest/full/keep"
expect 4 "exists and is not empty" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/full"
expect 4 "is not a model directory" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/full" --overwrite
check "kept" test -f "$work/dest/full/keep"
# --overwrite replaces a converted model only: not one holding other files too.
"$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/trained" -q && mkdir "$work/dest/trained/train-state"
expect 4 "holds train-state besides a model's files" -- "$convert" --tokenizer "$tok" --transformer "$tr" \
  -o "$work/dest/trained" --overwrite
check "train-state kept" test -d "$work/dest/trained/train-state"
rm -rf "$work/dest/trained"
ln -s "$work/dest/full" "$work/dest/link"
expect 4 "is a symbolic link" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/dest/link"
expect 4 "--output /proc/version/m" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o /proc/version/m
if [ "$(id -u)" -ne 0 ]; then
  mkdir -p "$work/locked" && chmod a-w "$work/locked"
  expect 4 "cannot create it" -- "$convert" --tokenizer "$tok" --transformer "$tr" -o "$work/locked/m"
fi
rm -rf "$work/dest/file" "$work/dest/full" "$work/dest/link"
check "no temporaries after refusals" nothing_left
# Results that cannot be written to stdout are an output error.
if [ -w /dev/full ]; then
  expect 4 "standard output" -- bash -c '"$0" "$@" >/dev/full' "$convert" --tokenizer "$tok" --transformer "$tr" \
    -o "$work/dest/m2" -q --json
  # (the model itself was written: the JSON line is what failed)
  rm -rf "$work/dest/m2"
fi

finish convert_cli.sh
