#!/usr/bin/env bash
# The tools on a model of the release's structure: a tiny RGB model with the ImageNet models'
# shape at small widths (factor-16 tokenizer: 5 levels, multipliers 1,1,2,2,4, 2 ResBlocks,
# 32-group GroupNorm, release_shortcut; no "no class" token; 64x64 pixels = 4x4 tokens),
# random weights (tests/make_test_model.cpp). Every tool runs on it: sample, inpaint, outpaint
# (also beyond the model's canvas, windowed), edit, tokenize (encode, decode, reconstruct);
# decoding defaults from config.json "sampling" are used, recorded and overridden by flags;
# guidance and class-less decoding are refused before any work; inputs of other sizes follow
# --fit (masks and boxes with them).
# Usage: release_tools.sh BIN_DIR MAKE_TEST_MODEL
set -u
bin=${1:?usage: release_tools.sh BIN_DIR MAKE_TEST_MODEL}
make_model=${2:?usage: release_tools.sh BIN_DIR MAKE_TEST_MODEL}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$root/tests/cli_lib.sh"
# Every refused command writes under $work/none: nothing may appear there.
expect_nothing_at=$work/none
run() {  # run COMMAND...: must succeed (stderr kept in $work/err)
  if ! "$@" >"$work/out" 2>"$work/err" </dev/null; then
    failed=$((failed + 1)); echo "FAIL (status $?): $*"; sed 's/^/    /' "$work/err"; return 1
  fi
}
# png_info FILE: "WIDTHxHEIGHT COLOURTYPE" from the IHDR chunk (colour type 0 grey, 2 RGB).
png_info() {
  local bytes
  bytes=($(od -An -tu1 -j16 -N10 "$1"))
  echo "$(( (bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3] ))x$(( (bytes[4] << 24) | (bytes[5] << 16) | (bytes[6] << 8) | bytes[7] )) ${bytes[9]}"
}
has() { grep -qF -- "$2" "$1"; }  # has FILE TEXT
lacks() { ! has "$@"; }

# ---- the model: the release's structure at tiny widths ----
model=$work/release
mkdir -p "$model"
cat >"$model/config.json" <<'EOF'
{
  "format": "maskgit-cpp",
  "format_version": 1,
  "image": {"width": 64, "height": 64, "channels": 3},
  "class_names": ["goldfish", "robin", "tabby", "daisy", "volcano"],
  "tokenizer": {"channels": 3, "filters": 32, "channel_multipliers": [1, 1, 2, 2, 4], "num_res_blocks": 2,
                "codebook_size": 64, "embedding_dim": 16, "norm_groups": 32, "norm_eps": 1e-06,
                "release_shortcut": true},
  "transformer": {"codebook_size": 64, "num_classes": 5, "grid_height": 4, "grid_width": 4, "hidden_size": 32,
                  "num_layers": 2, "num_heads": 4, "mlp_dim": 64, "dropout": 0.1, "attention_dropout": 0.1,
                  "no_class_token": false}
}
EOF
"$make_model" "$model" 1 || { echo "FAIL: make_test_model"; exit 1; }
# The same weights with decoding defaults of its own.
cp -r "$model" "$work/defaults"
sed -i 's/^}$/, "sampling": {"steps": 3, "schedule": "linear", "choice_temperature": 2.0, "edit_steps": 5, "edit_start_step": 1}}/' \
  "$work/defaults/config.json"

t=(--threads 1)
sample=("$bin/maskgit-sample" -m "$model" "${t[@]}")
inpaint=("$bin/maskgit-inpaint" -m "$model" "${t[@]}")
outpaint=("$bin/maskgit-outpaint" -m "$model" "${t[@]}")
edit=("$bin/maskgit-edit" -m "$model" "${t[@]}")
tokenize=("$bin/maskgit-tokenize" -m "$model" "${t[@]}")
grey28=$root/examples/fashion-mnist/0-tshirt-t10k-00019.png   # 28x28 grey: smaller than the model
centre28=$root/examples/masks/centre-14x14.png                # its 28x28 mask

# ---- maskgit-sample ----
run "${sample[@]}" -c robin,4 -n 2 -s 10 -o "$work/s%d.png" --save-tokens "$work/s.safetensors" --json
check "sample writes 64x64 RGB PNGs" test "$(png_info "$work/s3.png")" = "64x64 2"
check "sample --json: one line per image" test "$(wc -l <"$work/out")" -eq 4
check "sample without a sampling section uses the tools' defaults (8 cosine steps, 4.5)" \
  has "$work/s0.png" '"steps":8,"start_step":0,"schedule":"cosine","choice_temperature":4.5'
# Image i's tokens depend on seed + i alone. (Its pixels may differ in the last bit between
# batch sizes: LibTorch's oneDNN convolutions round differently for other batch sizes, so the
# tokens are compared, each decoded alone.)
run "${sample[@]}" -c volcano -n 1 -s 12 -o "$work/again.png" --save-tokens "$work/again.safetensors"
run "${tokenize[@]}" -b 1 decode -i "$work/s.safetensors" -o "$work/s-alone%d.png"
run "${tokenize[@]}" -b 1 decode -i "$work/again.safetensors" -o "$work/again-alone.png"
check "seed + i reproduces image i" same_pixels "$work/again-alone.png" "$work/s-alone2.png"
run "${sample[@]}" -c 1 -n 3 -s 10 --steps 2 -b 1 -o "" --save-tokens "$work/b1.safetensors" &&
  run "${sample[@]}" -c 1 -n 3 -s 10 --steps 2 -b 2 -o "" --save-tokens "$work/b2.safetensors"
check "image i is the same whatever the batch size" cmp -s "$work/b1.safetensors" "$work/b2.safetensors"

# ---- maskgit-edit and maskgit-inpaint at the model's size ----
run "${edit[@]}" -c daisy -i "$work/s0.png" -i "$work/s1.png" --box 0,0,16,16 -n 2 -o "$work/e%d.png" \
  --save-mask "$work/e-mask.png" --grid "$work/e-grid.png" --json
check "edit writes 64x64 RGB results" test "$(png_info "$work/e3.png")" = "64x64 2"
check "edit: one box token grown by one (the release's dilation), 12 steps from step 2, feather 3 (64/16-1)" \
  has "$work/out" '"regenerated_tokens":4,"tokens":16,"windows":1},"settings":{"steps":12,"start_step":2'
check "edit records the feather" has "$work/out" '"dilate":1,"feather":3.0}'
check "edit --save-mask is a 64x64 picture" test "$(png_info "$work/e-mask.png")" = "64x64 0"
run "${inpaint[@]}" -c 2 -i "$work/s1.png" --mask "$work/e-mask.png" -s 1 -o "$work/i.png" --json
check "inpaint with the saved token mask: its 4 tokens" has "$work/out" '"regenerated_tokens":4,"tokens":16'
check "inpaint writes a 64x64 RGB result" test "$(png_info "$work/i.png")" = "64x64 2"

# ---- decoding defaults from config.json "sampling" ----
run "$bin/maskgit-sample" -m "$work/defaults" "${t[@]}" -c 1 -n 1 -s 10 -o "$work/d.png"
check "the model's defaults are used and recorded" \
  has "$work/d.png" '"steps":3,"start_step":0,"schedule":"linear","choice_temperature":2.0'
run "${sample[@]}" -c 1 -n 1 -s 10 --steps 3 --schedule linear --choice-temperature 2 -o "$work/d-flags.png"
check "the model's defaults decode as the same flags do" same_pixels "$work/d.png" "$work/d-flags.png"
check "... and differently from the tools' defaults" different_pixels "$work/d.png" "$work/s0.png"
run "$bin/maskgit-sample" -m "$work/defaults" "${t[@]}" -c 1 -n 1 -s 10 --steps 8 --schedule cosine -o "$work/d-over.png"
check "flags win over the model's defaults (the others stay)" \
  has "$work/d-over.png" '"steps":8,"start_step":0,"schedule":"cosine","choice_temperature":2.0'
"$bin/maskgit-sample" --help >"$work/help"
check "--help names the model's default" has "$work/help" "default: the model's config.json sampling.steps, in maskgit-edit sampling.edit_steps, when it has them; else the value shown"
check "--help shows the tool's own default steps" grep -q -- "--steps INT:INT in \[1 - 1024\]=8" "$work/help"
"$bin/maskgit-edit" --help >"$work/help"
check "maskgit-edit --help shows its own default steps" grep -q -- "--steps INT:INT in \[1 - 1024\]=12" "$work/help"
check "maskgit-edit --help shows its own default start step" grep -q -- "--start-step INT:INT in \[0 - 1023\]=2" "$work/help"
d_edit=("$bin/maskgit-edit" -m "$work/defaults" "${t[@]}" -c 0 --box 0,0,16,16)
run "${d_edit[@]}" -i "$work/s0.png" -o "$work/de.png" --json
check "maskgit-edit takes the model's edit_steps and edit_start_step" has "$work/out" '"steps":5,"start_step":1,"schedule":"linear"'
run "${d_edit[@]}" -i "$work/s0.png" -o "$work/de.png" --json --steps 7
check "maskgit-edit --steps keeps the model's start step" has "$work/out" '"steps":7,"start_step":1,'
expect 2 "--steps: 1 must be above the first step 1 (the model's sampling.edit_start_step" -- \
  "${d_edit[@]}" -i "$work/s0.png" -o "$work/none/x.png" --steps 1
run "$bin/maskgit-inpaint" -m "$work/defaults" "${t[@]}" -c 0 -i "$work/s0.png" --mask "$work/e-mask.png" -o "$work/di.png" --json
check "maskgit-inpaint takes the generation defaults, from step 0" has "$work/out" '"steps":3,"start_step":0,"schedule":"linear"'
# A bad sampling section is a bad model: status 3 naming config.json and the field.
bad_sampling() {  # bad_sampling SECTION NEEDLE
  rm -rf "$work/bad" && cp -r "$model" "$work/bad"
  sed -i "s/^}\$/, \"sampling\": $1}/" "$work/bad/config.json"
  expect 3 "$2" -- "$bin/maskgit-sample" -m "$work/bad" "${t[@]}" -c 0 -o "$work/none/x.png"
}
bad_sampling '{"steps": 0, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 2}' "config.json: sampling.steps"
bad_sampling '{"steps": 8, "schedule": "wiggly", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 2}' "config.json: sampling.schedule"
bad_sampling '{"steps": 8, "schedule": "cosine", "choice_temperature": "hot", "edit_steps": 12, "edit_start_step": 2}' "config.json: sampling.choice_temperature"
bad_sampling '{"steps": 8, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 12}' "config.json: sampling.edit_start_step"
bad_sampling '{"steps": 8, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12}' "config.json: sampling.edit_start_step"
bad_sampling '{"steps": 8, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 2, "stpes": 3}' "config.json: sampling.stpes: unknown field"

# ---- no "no class" token: guidance and class-less decoding refused before any work ----
expect 2 "--cfg-scale: 2 needs the unconditional pass of a \"no class\" token" -- \
  "${sample[@]}" -c 0 --cfg-scale 2 -o "$work/none/x.png"
expect 2 "--cfg-scale" -- "${inpaint[@]}" -c 0 -i "$work/s0.png" --mask "$work/e-mask.png" --cfg-scale 0.5 -o "$work/none/x.png"
expect 2 "--cfg-scale" -- "${outpaint[@]}" -c 0 -i "$work/s0.png" --right 16 --cfg-scale 3 -o "$work/none/x.png"
expect 2 "--cfg-scale" -- "${edit[@]}" -c 0 -i "$work/s0.png" --box 0,0,16,16 --cfg-scale 3 -o "$work/none/x.png"
expect 2 "--class: this model has no \"no class\" token" -- "${inpaint[@]}" -i "$work/s0.png" --mask "$work/e-mask.png" -o "$work/none/x.png"
expect 2 "--class: this model has no \"no class\" token" -- "${outpaint[@]}" -i "$work/s0.png" --right 16 -o "$work/none/x.png"
expect 2 "--class is required" -- "${edit[@]}" -i "$work/s0.png" --box 0,0,16,16 -o "$work/none/x.png"

# ---- maskgit-outpaint: on the model's canvas and beyond it (windows of the model's 4x4 grid) ----
run "${outpaint[@]}" -c 3 -i "$work/s0.png" --right 64 -o "$work/o-wide.png" --json
check "outpaint --right 64: a 128x64 canvas" test "$(png_info "$work/o-wide.png")" = "128x64 2"
check "outpaint beyond the canvas decodes 4x4 windows" has "$work/out" '"region":{"canvas":"128x64","offset":"0,0","regenerated_tokens":16,"tokens":32,"windows":2}'
check "outpaint keeps no feather" has "$work/out" '"feather":0.0'
run "${outpaint[@]}" -c 3 -i "$work/s0.png" --canvas 150x100 -o "$work/o-big.png" --json
check "outpaint --canvas 150x100 (not whole tokens)" test "$(png_info "$work/o-big.png")" = "150x100 2"
check "... is 10x7 tokens in several windows" has "$work/out" '"tokens":70,"windows":'
check "... more than one" lacks "$work/out" '"windows":1,'
run "${outpaint[@]}" -c 3 -i "$grey28" --canvas 64x64 -o "$work/o-small.png" --json
check "outpaint puts a smaller (grey) image on the model's canvas" test "$(png_info "$work/o-small.png")" = "64x64 2"
expect 2 "--canvas: the canvas would be 60x64, smaller than the model's 64x64" -- \
  "${outpaint[@]}" -c 0 -i "$grey28" --canvas 60x64 -o "$work/none/x.png"
expect 2 "--left/--right/--top/--bottom: the canvas would be 44x28, smaller than the model's 64x64" -- \
  "${outpaint[@]}" -c 0 -i "$grey28" --right 4 -o "$work/none/x.png"
expect 2 "--feather" -- "${outpaint[@]}" -c 0 -i "$work/s0.png" --right 16 --feather 3 -o "$work/none/x.png"

# ---- inputs of other sizes: --fit none (the image's own size, at least the model's), crop, resize ----
expect 3 "0-tshirt-t10k-00019.png: the image is 28x28, smaller than the model's 64x64 (give --fit crop or --fit resize" -- \
  "${inpaint[@]}" -c 0 -i "$grey28" --mask "$centre28" -o "$work/none/x.png"
expect 3 "0-tshirt-t10k-00019.png: the image is 28x28, smaller than the model's 64x64" -- \
  "${edit[@]}" -c 0 -i "$grey28" --box 0,0,8,8 -o "$work/none/x.png"
expect 2 "--fit" -- "${inpaint[@]}" -c 0 -i "$grey28" --mask "$centre28" --fit squash -o "$work/none/x.png"
run "${inpaint[@]}" -c 0 -i "$grey28" --mask "$centre28" --fit resize -o "$work/f-resize.png" --save-mask "$work/f-mask.png" --json
check "--fit resize: a 64x64 RGB result" test "$(png_info "$work/f-resize.png")" = "64x64 2"
check "--fit resize: recorded with the input's size" has "$work/out" '"width":28,"height":28},"seed":'
check "--fit resize: recorded" has "$work/out" '"region":{"fit":"resize",'
# The centre 14x14 of 28 is pixels 7..20, 16..48 at 64: token rows and columns 1..2 (of 0..3).
check "--fit resize: the mask follows the image (the centre 2x2 tokens)" has "$work/out" '"regenerated_tokens":4,'
check "--save-mask has the result's size" test "$(png_info "$work/f-mask.png")" = "64x64 0"
expect 3 "e-mask.png: mask is 64x64, the image is 28x28" -- \
  "${inpaint[@]}" -c 0 -i "$grey28" --mask "$work/e-mask.png" --fit resize -o "$work/none/x.png"
# A wide 128x64 input: crop keeps its centre 64x64 (x 32..95); a box on its right half (x 64..127)
# is x 32..63 of the crop: token columns 2..3, grown by one: columns 1..3 of all 4 rows.
run "${edit[@]}" -c 4 -i "$work/o-wide.png" --box 64,0,64,64 --fit crop -o "$work/f-crop.png" --json
check "--fit crop: a 64x64 result" test "$(png_info "$work/f-crop.png")" = "64x64 2"
check "--fit crop: the box follows the crop" has "$work/out" '"region":{"fit":"crop","box":"64,0,64,64","regenerated_tokens":12,'
check "--fit crop: recorded with the input's size" has "$work/out" '"width":128,"height":64},"seed":'
expect 3 "the region is empty after --fit crop (it keeps 64x64 pixels at 32,0 of the input)" -- "${edit[@]}" -c 4 -i "$work/o-wide.png" --box 0,0,16,64 --fit crop --dilate 0 -o "$work/none/x.png"
# --fit none with a larger image: edited at its own size, in windows of the model's grid.
run "${edit[@]}" -c 4 -i "$work/o-wide.png" --box 100,40,8,8 -o "$work/f-none.png" --json
check "--fit none: a larger image keeps its size" test "$(png_info "$work/f-none.png")" = "128x64 2"
check "--fit none: decoded in the windows that hold its region (the most known first)" has "$work/out" '"region":{"fit":"none","box":"100,40,8,8","regenerated_tokens":9,"tokens":32,"windows":2}'

# ---- maskgit-tokenize ----
run "${tokenize[@]}" --json encode "$work/s0.png" "$work/s1.png" -o "$work/t.safetensors"
check "encode: 4x4 tokens per 64x64 image" has "$work/out" '"images":2,"grid_height":4,"grid_width":4,"image_height":64,"image_width":64,"fit":"none"'
run "${tokenize[@]}" decode -i "$work/t.safetensors" -o "$work/t%d.png"
check "decode: 64x64 RGB images" test "$(png_info "$work/t1.png")" = "64x64 2"
run "${tokenize[@]}" reconstruct "$work/s0.png" "$work/s1.png" -o "$work/r%d.png"
check "encode + decode = reconstruct" same_pixels "$work/t1.png" "$work/r1.png"
run "${tokenize[@]}" decode -i "$work/s.safetensors" -o "$work/st%d.png"
check "sampled tokens decode to the sampled image" same_pixels "$work/st3.png" "$work/s3.png"
# Other sizes: none encodes each at its own size (padded to whole tokens), all of one size;
# crop and resize bring any sizes to the model's.
run "${tokenize[@]}" --json encode "$grey28" -o "$work/t28.safetensors"
check "encode --fit none: a 28x28 image is 2x2 tokens" has "$work/out" '"grid_height":2,"grid_width":2,"image_height":28,"image_width":28'
run "${tokenize[@]}" decode -i "$work/t28.safetensors" -o "$work/t28.png"
check "decode restores the 28x28 size" test "$(png_info "$work/t28.png")" = "28x28 2"
expect 3 "0-tshirt-t10k-00019.png: image is 28x28, expected 128x64" -- \
  "${tokenize[@]}" encode "$work/o-wide.png" "$grey28" -o "$work/none"
run "${tokenize[@]}" --json encode --fit crop "$work/o-wide.png" "$grey28" "$work/o-big.png" -o "$work/tc.safetensors"
check "encode --fit crop: images of any size as the model's 4x4 tokens" has "$work/out" '"images":3,"grid_height":4,"grid_width":4,"image_height":64,"image_width":64,"fit":"crop"'
run "${tokenize[@]}" reconstruct --fit resize "$grey28" -o "$work/rr.png" --originals "$work/rr-in.png"
check "reconstruct --fit resize: the model's size" test "$(png_info "$work/rr.png")" = "64x64 2"
check "--originals shows the fitted input" test "$(png_info "$work/rr-in.png")" = "64x64 2"

finish release_tools
