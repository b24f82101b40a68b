#!/usr/bin/env bash
# Hostile inputs, as a table: corrupt and out-of-bounds model directories, images, masks, token
# files, flag values and output destinations. For every case: the exit status (2 bad flag or
# value, 3 bad input file, 4 output), exactly one line on stderr naming the flag or file at
# fault, no "internal error", no LibTorch or standard-library message leaking through, and nothing written (the output
# folder stays empty, no folder is made). Every run is
# limited to 4 GiB of address space and 60 s, so a file that makes a tool allocate gigabytes or
# hang fails its case instead of the machine.
# Usage: hostile_inputs.sh BIN_DIR
set -u
bin=${1:?usage: hostile_inputs.sh BIN_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
shipped=$root/models/fashion-mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$work/out
mkdir -p "$out"
passed=0 failed=0
# Every case runs under a 4 GiB address-space limit (a loader that trusts a size field fails
# there). HOSTILE_MEMORY_KB=unlimited for a sanitizer build: ASan reserves terabytes of shadow
# address space at start.
memory_kb=${HOSTILE_MEMORY_KB:-4194304}
limit_memory() { [ "$memory_kb" = unlimited ] || ulimit -v "$memory_kb"; }

# case STATUS NEEDLE -- command...
case_() {
  local want=$1 needle=$2; shift 3
  rm -rf "$out" && mkdir -p "$out"
  (limit_memory; timeout 60 "$@") >"$work/stdout" 2>"$work/err" </dev/null
  local got=$? lines written
  lines=$(wc -l <"$work/err")
  written=$(find "$out" -mindepth 1 | head -3)
  if [ "$got" -eq "$want" ] && grep -qF -- "$needle" "$work/err" && [ "$lines" -eq 1 ] &&
     ! grep -qE "std::|enforce fail|is_symbolic|filesystem error|torch\.|c10::|Expected " "$work/err" &&
     [ -z "$written" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: ${*: -12} -> status $got (want $want), stderr ($lines lines):"; sed 's/^/    /' "$work/err" | head -5
    echo "    (expected one line containing: $needle)"
    [ -n "$written" ] && echo "    wrote: $written"
  fi
}
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; fi
}

sample=("$bin/maskgit-sample" --threads 1 -c 0)
inpaint=("$bin/maskgit-inpaint" --threads 1)
outpaint=("$bin/maskgit-outpaint" --threads 1)
edit=("$bin/maskgit-edit" --threads 1)
tokenize=("$bin/maskgit-tokenize" --threads 1)
centre=$root/examples/masks/centre-14x14.png

# Inputs that work: an image, its tokens.
"${sample[@]}" -s 3 -o "$work/ok.png" --save-tokens "$work/ok.safetensors" 2>/dev/null ||
  { echo "FAIL: sampling the fixtures"; exit 1; }

# ---- model directories: every config.json field out of bounds or of the wrong type ----
# set_field FILE SECTION FIELD VALUE: replaces the first "FIELD": ... inside "SECTION": { } (or
# at the top level for SECTION "").
set_field() {
  awk -v section="$2" -v field="$3" -v value="$4" '
    BEGIN { inside = (section == ""); done = 0 }
    section != "" && $0 ~ "^  \"" section "\": \\{" { inside = 1 }
    inside && !done && $0 ~ "^ +\"" field "\": " {
      match($0, /^ +"[a-z_]+": /); rest = substr($0, RLENGTH + 1)
      comma = (rest ~ /,$/) ? "," : ""; $0 = substr($0, 1, RLENGTH) value comma; done = 1 }
    { print }
    END { if (!done) exit 1 }' "$1" >"$1.new" && mv "$1.new" "$1"
}
bad_config() {  # bad_config SECTION FIELD VALUE [NEEDLE]
  rm -rf "$work/model" && cp -r "$shipped" "$work/model"
  set_field "$work/model/config.json" "$1" "$2" "$3" || { failed=$((failed + 1)); echo "FAIL: no field $1.$2"; return; }
  case_ 3 "${4:-config.json}" -- "${sample[@]}" -m "$work/model" -o "$out/x.png"
}
for value in -1 4611686018427387904 1.5 null; do
  for field in width height channels; do bad_config image "$field" "$value"; done
  for field in channels filters num_res_blocks codebook_size embedding_dim norm_groups; do
    bad_config tokenizer "$field" "$value"
  done
  for field in codebook_size num_classes grid_height grid_width hidden_size num_layers num_heads mlp_dim; do
    bad_config transformer "$field" "$value"
  done
done
for value in -1 0 1e300 null '"x"'; do bad_config tokenizer norm_eps "$value"; done
for value in -1 1 1e300 null; do bad_config transformer dropout "$value"; done
bad_config "" format_version 2
bad_config "" format '"other"'
for field in filters embedding_dim codebook_size; do bad_config tokenizer "$field" 1000000000; done
for field in hidden_size mlp_dim grid_height num_classes; do bad_config transformer "$field" 1000000000; done
for field in width height; do bad_config image "$field" 0; done
bad_config transformer num_heads '"8"'
# Models that parse but whose weights do not fit them.
bad_config transformer num_layers 64 transformer.safetensors  # far more than the weights hold: before allocating
bad_config transformer num_layers 3 transformer.safetensors   # other layers
bad_config tokenizer filters 8 tokenizer.safetensors          # other shapes
bad_config image width 32                                     # the grid no longer matches the image
rm -rf "$work/model" && cp -r "$shipped" "$work/model" && printf '{"format": "maskgit-cpp",' >"$work/model/config.json"
case_ 3 "config.json" -- "${sample[@]}" -m "$work/model" -o "$out/x.png"
rm -rf "$work/model" && cp -r "$shipped" "$work/model" && printf '{"a":1,"a":2}' >"$work/model/config.json"
case_ 3 "config.json" -- "${sample[@]}" -m "$work/model" -o "$out/x.png"
rm -rf "$work/model" && cp -r "$shipped" "$work/model" && rm "$work/model/config.json" && mkdir "$work/model/config.json"
case_ 3 "config.json" -- "${sample[@]}" -m "$work/model" -o "$out/x.png"

rm -rf "$work/model" && cp -r "$shipped" "$work/model" && rm "$work/model/config.json" && ln -s /dev/zero "$work/model/config.json"
case_ 3 "config.json" -- "${sample[@]}" -m "$work/model" -o "$out/x.png"
rm -rf "$work/model" && cp -r "$shipped" "$work/model" && rm "$work/model/config.json" && mkfifo "$work/model/config.json"
case_ 3 "config.json" -- "${sample[@]}" -m "$work/model" -o "$out/x.png"
rm -rf "$work/model" && cp -r "$shipped" "$work/model" && rm "$work/model/config.json" && ln -s config.json "$work/model/config.json"
case_ 3 "config.json" -- "${sample[@]}" -m "$work/model" -o "$out/x.png"
ln -s loop "$work/loop" 2>/dev/null
case_ 3 "loop" -- "${sample[@]}" -m "$work/loop" -o "$out/x.png"
# A bad model leaves no output folder behind.
rm -rf "$work/model" && cp -r "$shipped" "$work/model" && truncate -s 100 "$work/model/transformer.safetensors"
case_ 3 "transformer.safetensors" -- "${sample[@]}" -m "$work/model" -o "$out/new/deeper/x.png"

# ---- weights files ----
bad_weights() {  # bad_weights DESCRIPTION FILE COMMAND... (COMMAND edits $work/model/FILE)
  local file=$2; shift 2
  rm -rf "$work/model" && cp -r "$shipped" "$work/model"
  "$@" "$work/model/$file"
  case_ 3 "$file" -- "${sample[@]}" -m "$work/model" -o "$out/x.png"
}
for file in tokenizer.safetensors transformer.safetensors; do
  for size in 0 7 8 100 4096 100000; do bad_weights truncated "$file" truncate -s "$size"; done
  bad_weights "cut by one byte" "$file" bash -c 'truncate -s $(($(stat -c %s "$0") - 1)) "$0"'
  bad_weights "header length 2^63" "$file" bash -c 'printf "\xff\xff\xff\xff\xff\xff\xff\x7f" | dd of="$0" conv=notrunc status=none'
  bad_weights "header not JSON" "$file" bash -c 'printf "@@@@" | dd of="$0" bs=1 seek=8 conv=notrunc status=none'
  bad_weights "NaN in the last weight" "$file" bash -c \
    'printf "\x00\x00\xc0\x7f" | dd of="$0" bs=1 seek=$(($(stat -c %s "$0") - 4)) conv=notrunc status=none'
  bad_weights "infinity in the last weight" "$file" bash -c \
    'printf "\x00\x00\x80\x7f" | dd of="$0" bs=1 seek=$(($(stat -c %s "$0") - 4)) conv=notrunc status=none'
  bad_weights "a directory" "$file" bash -c 'rm "$0" && mkdir "$0"'
  bad_weights "missing" "$file" rm
  bad_weights "a FIFO" "$file" bash -c 'rm "$0" && mkfifo "$0"'
  bad_weights "/dev/zero" "$file" bash -c 'rm "$0" && ln -s /dev/zero "$0"'
  bad_weights "sparse 64 GiB" "$file" truncate -s 64G
  bad_weights "the other stage's file" "$file" bash -c \
    'other=$(dirname "$0")/$( [ "$(basename "$0")" = tokenizer.safetensors ] && echo transformer || echo tokenizer).safetensors; cp "$other" "$0"'
done

# ---- images and masks ----
printf '' >"$work/empty.png"
echo "not an image" >"$work/text.png"
head -c 100 "$work/ok.png" >"$work/cut.png"
mkdir -p "$work/folder.png"
ln -s /dev/zero "$work/zero.png"
mkfifo "$work/fifo.png"
for image in empty text cut folder missing zero fifo; do
  case_ 3 "$image.png" -- "${inpaint[@]}" -i "$work/$image.png" --mask "$centre" -o "$out/x.png"
  case_ 3 "$image.png" -- "${inpaint[@]}" -i "$work/ok.png" --mask "$work/$image.png" -o "$out/x.png"
  case_ 3 "$image.png" -- "${tokenize[@]}" encode "$work/$image.png" -o "$out/t.safetensors"
done
case_ 3 "mask-white-16x16.png" -- "${inpaint[@]}" -i "$work/ok.png" --mask "$root/tests/fixtures/mask-white-16x16.png" -o "$out/x.png"
case_ 3 "mask-black-28x28.png" -- "${inpaint[@]}" -i "$work/ok.png" --mask "$root/tests/fixtures/mask-black-28x28.png" -o "$out/x.png"
case_ 3 "image-grey-8x8.png: the image is 8x8, smaller than the model's 28x28" -- "${edit[@]}" -i "$root/tests/fixtures/image-grey-8x8.png" --box 0,0,4,4 -c 1 -o "$out/x.png"

# ---- token files ----
head -c 60 "$work/ok.safetensors" >"$work/cut.safetensors"
cp "$work/ok.safetensors" "$work/big-id.safetensors"
printf '\xff\xff\xff\x7f' | dd of="$work/big-id.safetensors" bs=1 seek=$(($(stat -c %s "$work/big-id.safetensors") - 16)) \
  conv=notrunc status=none
for tokens in cut big-id text empty missing; do
  file=$work/$tokens.safetensors
  [ "$tokens" = text ] && file=$work/text.png
  [ "$tokens" = empty ] && file=$work/empty.png
  case_ 3 "$(basename "$file")" -- "${tokenize[@]}" decode -i "$file" -o "$out/d%d.png"
done

# ---- flag values: each names its flag, exit 2 ----
flag_case() { case_ 2 "$1" -- "$@"; }
bad_flag() {  # bad_flag FLAG VALUE [TOOL...]: the flag is named
  local flag=$1 value=$2; shift 2
  case_ 2 "$flag" -- "$@" "$flag" "$value" -o "$out/x.png"
}
bad_flag --temperature 1e-45 "${sample[@]}"
for value in nan inf -inf 1e300 -1e300 '' abc; do
  bad_flag --temperature "$value" "${sample[@]}"
  bad_flag --cfg-scale "$value" "${sample[@]}"
  bad_flag --choice-temperature "$value" "${sample[@]}"
  bad_flag --threshold "$value" "${inpaint[@]}" -i "$work/ok.png" --mask "$centre"
  bad_flag --feather "$value" "${inpaint[@]}" -i "$work/ok.png" --mask "$centre"
done
for value in -2 18446744073709551616 99999999999999999999999 1e3 +1 abc ''; do
  bad_flag --seed "$value" "${sample[@]}"
  bad_flag --seed "$value" "${edit[@]}" -i "$work/ok.png" --box 0,0,8,8 -c 1
done
for flag in --steps --num --batch-size --top-k --grid-scale --threads --start-step; do
  for value in -1 1e9 99999999999999999999 nan abc; do bad_flag "$flag" "$value" "${sample[@]}"; done
done
for value in '' abc LINEAR 'linear ' cosine; do bad_flag --cfg-schedule "$value" "${sample[@]}"; done
bad_flag --steps 0 "${sample[@]}"
bad_flag --num 0 "${sample[@]}"
for value in 99999999999 16385 -5 nan; do bad_flag --right "$value" "${outpaint[@]}" -i "$work/ok.png"; done
for value in 100000x100000 0x0 -28x28 1e9x28 28 nanxnan; do bad_flag --canvas "$value" "${outpaint[@]}" -i "$work/ok.png"; done
for value in 0,0,0,0 -1,0,4,4 0,0,99999999999999999999,4 nan,0,4,4 0,0,4 0,0,29,28; do
  bad_flag --box "$value" "${edit[@]}" -i "$work/ok.png" -c 1
done
bad_flag --class 10 "${edit[@]}" -i "$work/ok.png" --box 0,0,8,8
bad_flag --class "" "${edit[@]}" -i "$work/ok.png" --box 0,0,8,8
bad_flag --class "" "${inpaint[@]}" -i "$work/ok.png" --mask "$centre"
bad_flag --class "" "$bin/maskgit-sample" --threads 1
bad_flag --dilate -1 "${edit[@]}" -i "$work/ok.png" --box 0,0,8,8 -c 1
for value in 1,1,9223372036854775807,4 9223372036854775807,1,4,4 -9223372036854775808,0,4,4; do
  bad_flag --box "$value" "${edit[@]}" -i "$work/ok.png" -c 1
  bad_flag --crop "$value" "${outpaint[@]}" -i "$work/ok.png" --right 4
done
bad_flag --offset 9223372036854775807,0 "${outpaint[@]}" -i "$work/ok.png" --canvas 64x64
case_ 2 "--seed" -- "${sample[@]}" -n 2 -s 18446744073709551615 -o "$out/s%d.png"
case_ 2 "--seed" -- "${edit[@]}" -i "$work/ok.png" --box 0,0,8,8 -c 1 -n 3 -s 18446744073709551614 -o "$out/e%d.png"
bad_flag --device tpu "${sample[@]}"
bad_flag --dtype fp64 "${sample[@]}"
bad_flag --schedule custom:1,-1 "${sample[@]}"
bad_flag --schedule custom:99999999999999999999 "${sample[@]}"
for value in squash "" none,crop; do
  bad_flag --fit "$value" "${inpaint[@]}" -i "$work/ok.png" --mask "$centre"
  bad_flag --fit "$value" "${edit[@]}" -i "$work/ok.png" --box 0,0,8,8 -c 1
done
case_ 2 "--grid" -- "${sample[@]}" -n 1000 --grid-scale 32 --grid "$out/g.png" -o ""
data=/usr/share/datasets/fashion-mnist
train=("$bin/maskgit-train" --threads 1 --data "$data" --limit 64 --steps 1 -o "$out/m")
for flag in --filters --codebook-size --embedding-dim --norm-groups; do
  for value in 0 -1 1000000000 nan; do case_ 2 "$flag" -- "${train[@]}" --stage tokenizer "$flag" "$value"; done
done
for value in -1 17 nan; do case_ 2 "--res-blocks" -- "${train[@]}" --stage tokenizer --res-blocks "$value"; done
for value in 0 -2 99999999999 nan; do
  case_ 2 "--limit" -- "${train[@]}" --stage tokenizer --limit "$value"
  case_ 2 "--limit" -- "${inpaint[@]}" --data "$data" --limit "$value" --mask "$centre" -o "$out/x%d.png"
  case_ 2 "--limit" -- "${tokenize[@]}" evaluate --data "$data" --limit "$value"
done
case_ 2 "--channel-mult" -- "${train[@]}" --stage tokenizer --channel-mult 1,99999
for flag in --layers --hidden --heads --mlp-dim; do
  for value in 0 -1 1000000000; do case_ 2 "$flag" -- "${train[@]}" --stage transformer "$flag" "$value"; done
done
for flag in --dropout --class-dropout --label-smoothing --ema --weight-decay --lr; do
  for value in nan inf -1 1e300; do case_ 2 "$flag" -- "${train[@]}" --stage transformer "$flag" "$value"; done
done
case_ 2 "--commitment" -- "${train[@]}" --stage tokenizer --commitment nan
# The tokenizer's perceptual and adversarial losses, and decoder-only fine-tuning.
for flag in --perceptual-weight --adversarial-weight --r1-weight; do
  for value in nan -1 1e300; do case_ 2 "$flag" -- "${train[@]}" --stage tokenizer "$flag" "$value"; done
done
for value in 0 2 nan; do case_ 2 "--discriminator-lr" -- "${train[@]}" --stage tokenizer --discriminator-lr "$value"; done
case_ 2 "--adversarial-start" -- "${train[@]}" --stage tokenizer --adversarial-start -1
case_ 2 "--discriminator-layers" -- "${train[@]}" --stage tokenizer --discriminator-layers 9
case_ 2 "--discriminator-filters" -- "${train[@]}" --stage tokenizer --discriminator-filters 0
case_ 2 "--perceptual-weight" -- "${train[@]}" --stage tokenizer --perceptual-weight 2
case_ 2 "--decoder-only" -- "${train[@]}" --stage tokenizer --decoder-only
case_ 3 "$work/none" -- "${train[@]}" --stage tokenizer --perceptual-model "$work/none"
case_ 3 "$work/none" -- "${train[@]}" --stage tokenizer --init-from "$work/none"
case_ 3 "$shipped" -- "${train[@]}" --stage tokenizer --perceptual-model "$shipped"
case_ 3 "fashion-mnist-classifier/config.json" -- "${train[@]}" --stage tokenizer --init-from "$root/models/fashion-mnist-classifier"
# A transformer started from a directory that is missing, not a MaskGIT model, or has no transformer.
rm -rf "$work/tmodel" && cp -r "$shipped" "$work/tmodel" && rm "$work/tmodel/transformer.safetensors"
python3 - "$work/tmodel/config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
del config["transformer"], config["sampling"]
json.dump(config, open(sys.argv[1], "w"))
PY
cp -r "$work/tmodel" "$work/tmodel.before"
tmodel_train=("$bin/maskgit-train" --threads 1 --data "$data" --limit 64 --steps 1 --stage transformer -o "$work/tmodel")
case_ 3 "$work/none" -- "${tmodel_train[@]}" --init-from "$work/none"
case_ 3 "fashion-mnist-classifier/config.json" -- "${tmodel_train[@]}" --init-from "$root/models/fashion-mnist-classifier"
case_ 2 "--init-from: $work/tmodel.before has no transformer" -- "${tmodel_train[@]}" --init-from "$work/tmodel.before"
# A starting transformer whose weights file is truncated: refused before the data is tokenized.
rm -rf "$work/tstart" && cp -r "$shipped" "$work/tstart" && truncate -s 1000 "$work/tstart/transformer.safetensors"
case_ 3 "$work/tstart/transformer.safetensors" -- "${tmodel_train[@]}" --init-from "$work/tstart"
check "a refused --init-from leaves the output directory as it was" diff -r "$work/tmodel" "$work/tmodel.before"
echo "a file" >"$work/plain"
case_ 4 "--out" -- "$bin/maskgit-train" --threads 1 --data "$data" --limit 64 --steps 1 --stage tokenizer -o "$work/plain/m"
case_ 4 "--metrics" -- "${train[@]}" --stage tokenizer --metrics "$out"
case_ 2 "--seed" -- "${train[@]}" --stage tokenizer --seed -2

# ---- outputs: checked before any work; never replaced unless a regular file ----
case_ 4 "/dev/full" -- "${sample[@]}" -o /dev/full
case_ 4 "$out" -- "${sample[@]}" -o "$out"
mkfifo "$work/fifo"
case_ 4 "no reader" -- "${sample[@]}" -o "$work/fifo"
case_ 4 "no reader" -- "${sample[@]}" -n 3 -o "$out/%d.png" --grid "$work/fifo"
case_ 4 "names a folder" -- "${sample[@]}" -o "$out/sub/"
case_ 4 "names a folder" -- "${sample[@]}" -o "$out/sub/.."
case_ 4 "File name too long" -- "${sample[@]}" -o "$out/$(printf 'n%.0s' $(seq 250)).png"
check "a FIFO stays a FIFO" test -p "$work/fifo"
echo "a file" >"$work/file"
case_ 4 "$work/file/x.png" -- "${sample[@]}" -o "$work/file/x.png"
for flag in --grid --save-tokens; do
  case_ 4 "$flag" -- "${sample[@]}" -n 3 -o "$out/%d.png" "$flag" /proc/no-such/x
done
case_ 4 "--save-mask" -- "${inpaint[@]}" -i "$work/ok.png" --mask "$centre" -o "$out/x.png" --save-mask /proc/no-such/m.png
case_ 4 "--grid" -- "${outpaint[@]}" -i "$work/ok.png" --right 4 -o "$out/x.png" --grid /proc/no-such/g.png
case_ 4 "--output" -- "${tokenize[@]}" encode "$work/ok.png" -o /proc/no-such/t.safetensors
# Results on stdout that cannot be written are an output error; progress on stderr is not.
(limit_memory; timeout 60 "${sample[@]}" -n 2 -o "" --json >/dev/full 2>"$work/err")
status=$?
check "--json into a full stdout exits 4 (got $status)" test "$status" -eq 4
check "... naming standard output" grep -q "standard output: cannot write" "$work/err"
"${sample[@]}" -n 2 -o "$out/p%d.png" 2>/dev/full
status=$?
check "progress into a full stderr does not stop the work (got $status)" test "$status" -eq 0 -a -s "$out/p1.png"
if [ "$(id -u)" -eq 0 ]; then
  "${sample[@]}" -o /dev/null 2>/dev/null
  check "/dev/null is written through and stays a device" test -c /dev/null
fi
touch "$work/target.png" && ln -s "$work/target.png" "$work/link.png"
"${sample[@]}" -o "$work/link.png" 2>/dev/null
check "a symbolic link is written through and stays a link" test -L "$work/link.png" -a -s "$work/target.png"
ln -s "$work/new-target.png" "$work/dangling.png"
"${sample[@]}" -o "$work/dangling.png" 2>/dev/null
check "a dangling link's target is created" test -L "$work/dangling.png" -a -s "$work/new-target.png"
echo previous >"$work/stdout.txt"
"${sample[@]}" -o /dev/stdout >>"$work/stdout.txt" 2>/dev/null
check "-o /dev/stdout appends to what stdout is" test "$(head -1 "$work/stdout.txt")" = previous
check "... and writes the PNG there" grep -q PNG "$work/stdout.txt"
echo private >"$work/private.png" && chmod 600 "$work/private.png"
"${sample[@]}" -o "$work/private.png" 2>/dev/null
check "a replaced file keeps its permissions" test "$(stat -c %a "$work/private.png")" = 600
mkdir -p "$work/pat" && ln -s /proc/no-such/x.png "$work/pat/1.png"
case_ 4 "1.png" -- "${sample[@]}" -n 3 -o "$work/pat/%d.png"
check "... and nothing of the pattern is written" test ! -e "$work/pat/0.png"
"${sample[@]}" -o "$out/deep/er/x.png" --save-tokens "$out/tokens/t.safetensors" 2>/dev/null
check "output folders are made for every destination" test -s "$out/deep/er/x.png" -a -s "$out/tokens/t.safetensors"
check "no temporary or probe files are left" test -z "$(find "$work" -name '*.tmp.*' -o -name '.maskgit-probe*')"

echo "hostile_inputs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
