#!/usr/bin/env bash
# The tools against bad input: every case must exit nonzero with the expected status, print
# exactly one line on stderr that names the offending flag or file, and leave no output.
# Usage: cli_errors.sh BIN_DIR   (needs Debian's dataset-fashion-mnist for the tiny model)
set -u
bin=${1:?usage: cli_errors.sh BIN_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
fixtures=$root/tests/fixtures
data=/usr/share/datasets/fashion-mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$root/tests/cli_lib.sh"

train=("$bin/maskgit-train" --stage tokenizer --data "$data" --split t10k --limit 64 --batch-size 32
       --filters 8 --channel-mult 1,2 --codebook-size 16 --embedding-dim 4 --norm-groups 4 --threads 1 -q)
tokenize=("$bin/maskgit-tokenize" --threads 1)

# A tiny real model to break.
"${train[@]}" --steps 2 -o "$work/model" 2>"$work/err" || { echo "FAIL: tiny training run"; cat "$work/err"; exit 1; }
"$bin/maskgit-tokenize" -m "$work/model" reconstruct --data "$data" --limit 2 -o "$work/ok-%d.png" 2>/dev/null
check "reconstruct writes files" test -f "$work/ok-1.png"

expect 2 "--bogus" -- "$bin/maskgit-train" --stage tokenizer -o "$work/x" --bogus
expect 2 "--stage" -- "$bin/maskgit-train" --stage nonsense -o "$work/x"
expect 2 "--channel-mult" -- "${train[@]}" --channel-mult 1,two -o "$work/x"
expect 2 "--device" -- "${train[@]}" --device tpu -o "$work/x"
expect 2 "--steps" -- "${train[@]}" --steps -5 -o "$work/x"
expect 3 "/no/such/dataset" -- "$bin/maskgit-train" --stage tokenizer --data /no/such/dataset -o "$work/x"
expect 3 "--resume" -- "${train[@]}" --resume -o "$work/fresh"
expect 2 "--bogus" -- "$bin/maskgit-tokenize" evaluate --bogus
expect 3 "missing.png" -- "${tokenize[@]}" -m "$work/model" reconstruct "$work/missing.png" -o "$work/r.png"
echo "not an image" >"$work/text.png"
expect 3 "text.png" -- "${tokenize[@]}" -m "$work/model" reconstruct "$work/text.png" -o "$work/r.png"
check "no output after a failed reconstruct" test ! -e "$work/r.png"
expect 3 "/no/such/model" -- "${tokenize[@]}" -m /no/such/model reconstruct "$work/ok-0.png" -o "$work/r.png"
expect 2 "--output" -- "${tokenize[@]}" -m "$work/model" reconstruct --data "$data" --limit 3 -o "$work/same.png"
expect 3 "no-tokens.safetensors" -- "${tokenize[@]}" -m "$work/model" decode -i "$work/no-tokens.safetensors" -o "$work/d%d.png"

# Corrupt checkpoints and configs, each named.
cp -r "$work/model" "$work/truncated"
truncate -s 200 "$work/truncated/tokenizer.safetensors"
expect 3 "tokenizer.safetensors" -- "${tokenize[@]}" -m "$work/truncated" reconstruct "$work/ok-0.png" -o "$work/r.png"
cp -r "$work/model" "$work/badjson"
printf '{"format": "maskgit-cpp",' >"$work/badjson/config.json"
expect 3 "config.json" -- "${tokenize[@]}" -m "$work/badjson" reconstruct "$work/ok-0.png" -o "$work/r.png"
cp -r "$work/model" "$work/badfield"
sed -i 's/"codebook_size": 16/"codebook_size": "16"/' "$work/badfield/config.json"
expect 3 "codebook_size" -- "${tokenize[@]}" -m "$work/badfield" reconstruct "$work/ok-0.png" -o "$work/r.png"
cp -r "$work/model" "$work/mismatch"
sed -i 's/"codebook_size": 16/"codebook_size": 32/' "$work/mismatch/config.json"
expect 3 "quantizer.codebook" -- "${tokenize[@]}" -m "$work/mismatch" reconstruct "$work/ok-0.png" -o "$work/r.png"
check "no output after failed loads" test ! -e "$work/r.png"

# Generation with a tiny transformer on top of the tiny tokenizer.
cp -r "$work/model" "$work/gen"
"$bin/maskgit-train" --stage transformer -o "$work/gen" --data "$data" --split t10k --limit 64 --steps 2 -b 32 \
  --layers 1 --hidden 16 --heads 2 --mlp-dim 32 --threads 1 -q 2>"$work/err" || { echo "FAIL: tiny transformer"; cat "$work/err"; }
# A new transformer over a model that recommends decoding settings: they are kept, with a note.
cp -r "$work/gen" "$work/resampled"
/usr/bin/python3 - "$work/resampled/config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["sampling"] = {"steps": 6, "schedule": "cosine", "choice_temperature": 3, "edit_steps": 6, "edit_start_step": 1}
json.dump(config, open(sys.argv[1], "w"))
PY
"$bin/maskgit-train" --stage transformer -o "$work/resampled" --data "$data" --split t10k --limit 64 --steps 1 -b 32 \
  --layers 1 --hidden 16 --heads 2 --mlp-dim 32 --threads 1 --overwrite 2>"$work/err" >/dev/null
check "a retrained transformer: the note on the kept sampling section" grep -q 'keeps its "sampling" section' "$work/err"
check "... which is kept" grep -q '"choice_temperature": 3' "$work/resampled/config.json"
# A new tokenizer beside a transformer: a note says the transformer no longer fits its codes.
cp -r "$work/gen" "$work/retokenized"
"$bin/maskgit-train" --stage tokenizer --data "$data" --split t10k --limit 64 --batch-size 32 --filters 8 --channel-mult 1,2 \
  --codebook-size 16 --embedding-dim 4 --norm-groups 4 --threads 1 --steps 1 --overwrite -o "$work/retokenized" 2>"$work/err" >/dev/null
check "a retrained tokenizer: the note on the transformer beside it" grep -q "transformer.safetensors was trained on the former tokenizer" "$work/err"
# ... also when the new tokenizer's codebook differs: config.json stays valid and the advice works.
cp -r "$work/gen" "$work/reshaped"
"$bin/maskgit-train" --stage tokenizer --data "$data" --split t10k --limit 64 --batch-size 32 --filters 8 --channel-mult 1,2 \
  --codebook-size 32 --embedding-dim 4 --norm-groups 4 --threads 1 --steps 1 --overwrite -q -o "$work/reshaped" 2>/dev/null
check "a reshaped tokenizer leaves a readable model" "$bin/maskgit-tokenize" -m "$work/reshaped" reconstruct --data "$data" --limit 1 -o "$work/reshaped-%d.png" -q
check "... whose transformer is retrained as the note says" "$bin/maskgit-train" --stage transformer -o "$work/reshaped" --data "$data" \
  --split t10k --limit 64 --steps 1 -b 32 --layers 1 --hidden 16 --heads 2 --mlp-dim 32 --threads 1 -q --overwrite
sample=("$bin/maskgit-sample" -m "$work/gen" --threads 1)
"${sample[@]}" -c 1 -n 3 -s 5 -b 1 -o "$work/b1-%d.png" 2>"$work/progress"
check "progress to a file is whole lines, no carriage returns" \
  test "$(tr '\r' '#' <"$work/progress" | tr '\n' '|')" = "sampled 1/3|sampled 2/3|sampled 3/3|"
"${sample[@]}" -c 1 -n 3 -s 5 -b 3 -o "$work/b3-%d.png" --json >"$work/lines" 2>/dev/null
check "sampling writes PNGs" test -f "$work/b3-2.png"
check "image i is the same whatever the batch size" cmp -s "$work/b1-2.png" "$work/b3-2.png"
"${sample[@]}" -c 1 -n 1 -s 7 -o "$work/again.png" 2>/dev/null
check "seed + i reproduces image i" cmp -s "$work/again.png" "$work/b3-2.png"
"$bin/maskgit-sample" -m "$work/gen" --threads 2 -c 1 -n 3 -s 5 -b 3 -o "$work/t2-%d.png" 2>/dev/null
check "image i is the same whatever the thread count" cmp -s "$work/t2-2.png" "$work/b3-2.png"
# The OpenMP wait policy: passive unless the user chose one (libgomp prints it at start-up).
env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=VERBOSE "$bin/maskgit-sample" --help >/dev/null 2>"$work/omp"
check "tools run with a passive OpenMP wait policy" grep -q "GOMP_SPINCOUNT = '0'" "$work/omp"
env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=1234 OMP_DISPLAY_ENV=VERBOSE "$bin/maskgit-sample" --help >/dev/null 2>"$work/omp"
check "a user's GOMP_SPINCOUNT is kept" grep -q "GOMP_SPINCOUNT = '1234'" "$work/omp"
# The re-executed tool keeps its name for ps and pkill, and runs when started through ld.so.
# (Waiting for the re-executed process: before it renames itself it is briefly "exe".)
env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$bin/maskgit-sample" -m "$work/gen" --threads 1 -n 100000 -o "" --json >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -q '^MASKGIT_OMP_WAIT_POLICY=' &&
    [ "$(cat /proc/$pid/comm 2>/dev/null)" = maskgit-sample ] && break
  sleep 0.1
done
check "the process is named maskgit-sample (got $(cat /proc/$pid/comm 2>/dev/null))" \
  test "$(cat /proc/$pid/comm 2>/dev/null)" = maskgit-sample
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
loader=$(ls /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1 2>/dev/null | head -1)
if [ -n "$loader" ]; then
  check "the tools run when started through the dynamic loader" \
    bash -c '"$0" "$1" --help >/dev/null' "$loader" "$bin/maskgit-sample"
fi
# libgomp prints its own complaint about a bad OMP_NUM_THREADS first; ours is the last line.
env OMP_NUM_THREADS=many "$bin/maskgit-sample" -m "$work/gen" -o "$work/x%d.png" >/dev/null 2>"$work/err"
status=$?
check "a bad OMP_NUM_THREADS is a usage error (got $status)" test "$status" -eq 2
check "a bad OMP_NUM_THREADS is named" grep -qF 'error: OMP_NUM_THREADS: "many" is not a thread count' "$work/err"
check "--json prints one line per image" test "$(wc -l <"$work/lines")" -eq 3
check "PNG text chunk carries the settings" grep -q '"schedule":"cosine"' "$work/b3-0.png"
check "PNG text chunk names the random number generator" grep -q '"rng":"counter-pcg32/1"' "$work/b3-0.png"
check "PNG text chunk names the forward precision" grep -q '"dtype":"fp32"' "$work/b3-0.png"
"${sample[@]}" -c 1 -n 1 -s 5 --dtype bf16 -o "$work/bf16.png" 2>/dev/null
check "--dtype bf16 runs on the CPU and is recorded" grep -q '"dtype":"bf16"' "$work/bf16.png"
expect 2 "--dtype" -- "${sample[@]}" -c 1 --dtype fp16 -o "$work/x.png"
# Values the float32 decoder cannot honour are refused before any work, naming the flag.
expect 2 "--temperature" -- "${sample[@]}" -c 1 --temperature 1e-40 -o "$work/x.png"
expect 2 "--temperature" -- "${sample[@]}" -c 1 --temperature nan -o "$work/x.png"
expect 2 "--cfg-scale" -- "${sample[@]}" -c 1 --cfg-scale 1e39 -o "$work/x.png"
expect 2 "--cfg-scale" -- "${sample[@]}" -c 1 --cfg-scale inf -o "$work/x.png"
expect 2 "--cfg-schedule" -- "${sample[@]}" -c 1 --cfg-schedule cosine -o "$work/x.png"
expect 2 "--choice-temperature" -- "${sample[@]}" -c 1 --choice-temperature 1e39 -o "$work/x.png"
expect 2 "--start-step" -- "${sample[@]}" -c 1 --start-step 2000000000 --schedule custom:1,1 -o "$work/x.png"
# A custom schedule sets the step count; a --steps that disagrees is refused, one that agrees is not.
expect 2 "--steps" -- "${sample[@]}" -c 1 --steps 8 --schedule custom:1,1 -o "$work/x.png"
"${sample[@]}" -c 1 -n 1 --steps 2 --schedule custom:1,1 -o "$work/custom.png" 2>/dev/null
check "--steps equal to a custom schedule's length is accepted" test -f "$work/custom.png"
expect 2 "--dtype" -- "${sample[@]}" -c 1 --dtype fp64 -o "$work/x.png"
expect 2 "--class" -- "${sample[@]}" -c Spaceship -o "$work/x%d.png"
expect 2 "--class" -- "${sample[@]}" -c 99 -o "$work/x%d.png"
expect 2 "--schedule" -- "${sample[@]}" --schedule wiggly -o "$work/x%d.png"
expect 2 "--steps" -- "${sample[@]}" --steps 0 -o "$work/x%d.png"
echo "a file, not a folder" >"$work/occupied"
expect 4 "occupied" -- "${sample[@]}" -c 0 -o "$work/occupied/x%d.png"
expect 3 "transformer" -- "$bin/maskgit-sample" -m "$work/model" --threads 1 -o "$work/x%d.png"
expect 2 "--images" -- "$bin/maskgit-eval" --threads 1
expect 3 "/no/such/classifier" -- "$bin/maskgit-eval" --threads 1 --classifier /no/such/classifier --self-test
expect 3 "/no/such/images" -- "$bin/maskgit-eval" --threads 1 --images /no/such/images
printf 'x' >"$work/noclass.png"
expect 3 "noclass.png" -- "$bin/maskgit-eval" --threads 1 "$work/noclass.png"
check "no output after failed sampling" test -z "$(find "$work" -maxdepth 1 -name 'x*.png')"

# Editing tools on the tiny model (factor 2: 28x28 images are 14x14 tokens).
inpaint=("$bin/maskgit-inpaint" -m "$work/gen" --threads 1)
outpaint=("$bin/maskgit-outpaint" -m "$work/gen" --threads 1)
edit=("$bin/maskgit-edit" -m "$work/gen" --threads 1)
centre=$root/examples/masks/centre-14x14.png
"${inpaint[@]}" -i "$work/ok-0.png" -i "$work/ok-1.png" --mask "$centre" -n 2 -o "$work/in-%d.png" \
  --save-mask "$work/in-mask.png" --grid "$work/in-grid.png" --json >"$work/in-lines" 2>/dev/null
check "inpaint writes one PNG per input and variant" test -f "$work/in-3.png" -a ! -e "$work/in-4.png"
check "inpaint --json prints one line per result" test "$(wc -l <"$work/in-lines")" -eq 4
check "inpaint --save-mask and --grid write pictures" test -f "$work/in-mask.png" -a -f "$work/in-grid.png"
check "inpaint PNG metadata names the tool and mask" grep -q '"tool":"maskgit-inpaint"' "$work/in-0.png"
"${inpaint[@]}" -i "$work/ok-1.png" --mask "$centre" -s 2 -o "$work/in-again.png" 2>/dev/null
check "result i is reproduced from seed + i" cmp -s "$work/in-again.png" "$work/in-2.png"
"${inpaint[@]}" -i "$work/ok-1.png" --mask "$work/in-mask.png" -s 2 -o "$work/in-saved-mask.png" 2>/dev/null
check "the saved token mask works as a --mask" same_pixels "$work/in-saved-mask.png" "$work/in-2.png"
check "same_pixels can tell images apart" different_pixels "$work/in-saved-mask.png" "$work/in-3.png"
"${outpaint[@]}" -i "$work/ok-0.png" --right 29 -c 1 -o "$work/out.png" --json >"$work/out-line" 2>/dev/null
check "outpaint rounds margins up to tokens and decodes windows" grep -q '"canvas":"58x28".*"windows":3' "$work/out-line"
"${edit[@]}" -i "$work/ok-0.png" --box 8,0,12,28 -c 0 -o "$work/edit.png" --json >"$work/edit-line" 2>/dev/null
check "edit defaults to the release's 12 steps from step 2 and 1-token dilation" \
  grep -q '"steps":12,"start_step":2.*"dilate":1' "$work/edit-line"

expect 3 "mask-white-16x16.png" -- "${inpaint[@]}" -i "$work/ok-0.png" --mask "$fixtures/mask-white-16x16.png" -o "$work/fail%d.png"
expect 3 "mask-black-28x28.png" -- "${inpaint[@]}" -i "$work/ok-0.png" --mask "$fixtures/mask-black-28x28.png" -o "$work/fail%d.png"
expect 3 "text.png" -- "${inpaint[@]}" -i "$work/ok-0.png" --mask "$work/text.png" -o "$work/fail%d.png"
expect 3 "text.png" -- "${inpaint[@]}" -i "$work/text.png" --mask "$centre" -o "$work/fail%d.png"
expect 3 "missing.png" -- "${inpaint[@]}" -i "$work/missing.png" --mask "$centre" -o "$work/fail%d.png"
expect 2 "--mask" -- "${inpaint[@]}" -i "$work/ok-0.png" -o "$work/fail%d.png"
expect 2 "--class" -- "${inpaint[@]}" -i "$work/ok-0.png" --mask "$centre" -c 10 -o "$work/fail%d.png"
expect 2 "--threshold" -- "${inpaint[@]}" -i "$work/ok-0.png" --mask "$centre" --threshold 2 -o "$work/fail%d.png"
expect 2 "--feather" -- "${inpaint[@]}" -i "$work/ok-0.png" --mask "$centre" --feather soft -o "$work/fail%d.png"
expect 2 "--output" -- "${inpaint[@]}" -i "$work/ok-0.png" --mask "$centre" -n 2 -o "$work/fail.png"
expect 2 "--data" -- "${inpaint[@]}" --mask "$centre" -o "$work/fail%d.png"
expect 3 "image-grey-8x8.png" -- "${inpaint[@]}" -i "$work/ok-0.png" -i "$fixtures/image-grey-8x8.png" --mask "$centre" -o "$work/fail%d.png"
expect 2 "smaller than the model's 28x28" -- "${outpaint[@]}" -i "$fixtures/image-grey-8x8.png" --right 4 -o "$work/fail%d.png"
expect 2 "--canvas" -- "${outpaint[@]}" -i "$work/ok-0.png" --canvas 56by28 -o "$work/fail%d.png"
expect 2 "--offset" -- "${outpaint[@]}" -i "$work/ok-0.png" --canvas 40x28 --offset 20,0 -o "$work/fail%d.png"
expect 2 "--canvas" -- "${outpaint[@]}" -i "$work/ok-0.png" --canvas 40x28 --left 4 -o "$work/fail%d.png"
expect 2 "nothing to outpaint" -- "${outpaint[@]}" -i "$work/ok-0.png" -o "$work/fail%d.png"
expect 2 "--crop" -- "${outpaint[@]}" -i "$work/ok-0.png" --crop 0,0,40,28 --right 4 -o "$work/fail%d.png"
expect 2 "--box" -- "${edit[@]}" -i "$work/ok-0.png" --box 20,0,12,28 -c 0 -o "$work/fail%d.png"
expect 2 "--box" -- "${edit[@]}" -i "$work/ok-0.png" --box 1,2,3 -c 0 -o "$work/fail%d.png"
expect 2 "--class" -- "${edit[@]}" -i "$work/ok-0.png" --box 8,0,12,28 -o "$work/fail%d.png"
expect 2 "--class" -- "${edit[@]}" -i "$work/ok-0.png" --box 8,0,12,28 -c Spaceship -o "$work/fail%d.png"
check "no output after failed edits" test -z "$(find "$work" -maxdepth 1 -name 'fail*.png')"

# Ctrl-C saves a checkpoint and exits 130; --resume then finishes the run.
"${train[@]}" --steps 100000 --log-every 1 --checkpoint-every 100000 -o "$work/interrupted" 2>"$work/err" &
pid=$!
for _ in $(seq 1 600); do
  [ -s "$work/interrupted/train-state/tokenizer-metrics.jsonl" ] && break
  sleep 0.1
done
kill -INT "$pid"
wait "$pid"
status=$?
check "SIGINT exits with 130 (got $status)" test "$status" -eq 130
check "SIGINT leaves a checkpoint" test -f "$work/interrupted/train-state/tokenizer.safetensors"
check "SIGINT leaves no temporary files" test -z "$(find "$work/interrupted" -name '*.tmp.*')"
"${train[@]}" --steps 3 --resume -o "$work/interrupted" 2>"$work/err"
status=$?
check "--resume after SIGINT succeeds (got $status)" test "$status" -eq 0

# A fresh run never replaces the same stage's run in its directory: --resume continues it,
# --overwrite starts over; the refusal comes before any work (here: before a missing dataset).
# Another stage's files do not count (the transformer above was trained beside the tokenizer).
same_files() {  # same_files DIR_A DIR_B FILE...: byte-identical
  local a=$1 b=$2 f; shift 2
  for f in "$@"; do cmp -s "$a/$f" "$b/$f" || return 1; done
}
tokenizer_files=(config.json tokenizer.safetensors train-state/tokenizer.safetensors train-state/tokenizer-metrics.jsonl)
cp -r "$work/model" "$work/again"
expect 4 "again: already holds a tokenizer training run (train-state/tokenizer.safetensors); pass --resume to continue it or --overwrite to start over" \
  -- "$bin/maskgit-train" --stage tokenizer --data /no/such/dataset --threads 1 -q -o "$work/again"
check "a refused run leaves the directory as it was" same_files "$work/model" "$work/again" "${tokenizer_files[@]}"
expect 2 "--overwrite" -- "${train[@]}" --steps 2 --resume --overwrite -o "$work/again"
rm -r "$work/again/train-state"
expect 4 "pass --overwrite" -- "${train[@]}" --steps 2 -o "$work/again"
"${train[@]}" --steps 3 --overwrite -o "$work/again" 2>"$work/err"
status=$?
check "--overwrite starts over (got $status)" test "$status" -eq 0
check "--overwrite writes a new checkpoint" grep -q '"step":"3"' "$work/again/train-state/tokenizer.safetensors"
tiny_transformer=(--data "$data" --split t10k --limit 64 -b 32 --layers 1 --hidden 16 --heads 2 --mlp-dim 32 --threads 1 -q)
expect 4 "already holds a transformer training run" -- "$bin/maskgit-train" --stage transformer -o "$work/gen" "${tiny_transformer[@]}" --steps 2
tiny_classifier=(--data "$data" --split t10k --limit 64 -b 32 --width-multiplier 0.25 --threads 1 -q)
"$bin/maskgit-train" --stage classifier -o "$work/classifier" "${tiny_classifier[@]}" --steps 2 2>"$work/err" ||
  { echo "FAIL: tiny classifier"; cat "$work/err"; }
expect 4 "already holds a classifier training run" -- "$bin/maskgit-train" --stage classifier -o "$work/classifier" "${tiny_classifier[@]}" --steps 2

# A run whose loss turns NaN (a real route: --lr 1e30 blows the tiny models up within a few
# steps) stops with status 1 and writes nothing: the last checkpoint and model stay byte for byte.
diverged="and the model saved with it are kept; --resume with a lower --lr (this run: 1e+30)"
cp -r "$work/model" "$work/diverge"
expect 1 "$diverged" -- "${train[@]}" --steps 12 --lr 1e30 --resume -o "$work/diverge"
grep -q "tokenizer training diverged at step [0-9]*: the loss is NaN" "$work/err"
check "the tokenizer message names the stage, the step and the NaN" test $? -eq 0
check "a diverged tokenizer run keeps the last model and checkpoint" same_files "$work/model" "$work/diverge" "${tokenizer_files[@]}"
cp -r "$work/gen" "$work/gen-diverge"
expect 1 "$diverged" -- "$bin/maskgit-train" --stage transformer -o "$work/gen-diverge" "${tiny_transformer[@]}" --steps 12 --lr 1e30 --resume
check "a diverged transformer run keeps the last model and checkpoint" \
  same_files "$work/gen" "$work/gen-diverge" config.json transformer.safetensors train-state/transformer.safetensors
cp -r "$work/classifier" "$work/classifier-diverge"
expect 1 "$diverged" -- "$bin/maskgit-train" --stage classifier -o "$work/classifier-diverge" "${tiny_classifier[@]}" --steps 12 --lr 1e30 --resume
check "a diverged classifier run keeps the last model and checkpoint" \
  same_files "$work/classifier" "$work/classifier-diverge" config.json classifier.safetensors train-state/classifier.safetensors
# Settings a checkpoint records, given with --resume: the same values are accepted (the runs
# above), other values refused before anything is written (they would do nothing).
cp -r "$work/gen" "$work/gen-refused"
expect 2 "--layers: 2, but the checkpoint $work/gen-refused/train-state/transformer.safetensors records 1" -- \
  "$bin/maskgit-train" --stage transformer -o "$work/gen-refused" --data "$data" --split t10k --limit 64 --layers 2 --steps 3 --threads 1 -q --resume
expect 2 "--dropout: 0.2, but the checkpoint" -- \
  "$bin/maskgit-train" --stage transformer -o "$work/gen-refused" --data "$data" --split t10k --limit 64 --dropout 0.2 --steps 3 --threads 1 -q --resume
# The data order (seed, global batch), the loss settings and the EMA decay are recorded too.
expect 2 "--seed: 5, but the checkpoint $work/gen-refused/train-state/transformer.safetensors records 1" -- \
  "$bin/maskgit-train" --stage transformer -o "$work/gen-refused" "${tiny_transformer[@]}" --seed 5 --steps 3 --resume
expect 2 "--batch-size: 16, but the checkpoint $work/gen-refused/train-state/transformer.safetensors records batches of 32" -- \
  "$bin/maskgit-train" --stage transformer -o "$work/gen-refused" --data "$data" --split t10k --limit 64 -b 16 --steps 3 --threads 1 -q --resume
expect 2 "--seed: -1 draws a new seed, but a resumed run keeps its checkpoint's" -- \
  "$bin/maskgit-train" --stage transformer -o "$work/gen-refused" "${tiny_transformer[@]}" --seed -1 --steps 3 --resume
expect 2 "--ema: 0.5, but the checkpoint" -- \
  "$bin/maskgit-train" --stage transformer -o "$work/gen-refused" "${tiny_transformer[@]}" --ema 0.5 --steps 3 --resume
expect 2 "--class-dropout: 0.3, but the checkpoint" -- \
  "$bin/maskgit-train" --stage transformer -o "$work/gen-refused" "${tiny_transformer[@]}" --class-dropout 0.3 --steps 3 --resume
expect 2 "--label-smoothing: 0.3, but the checkpoint" -- \
  "$bin/maskgit-train" --stage transformer -o "$work/gen-refused" "${tiny_transformer[@]}" --label-smoothing 0.3 --steps 3 --resume
check "refused resumes leave the run as it was" \
  same_files "$work/gen" "$work/gen-refused" config.json transformer.safetensors train-state/transformer.safetensors
# A resume without --ema keeps the run's averaged weights and their decay.
mkdir -p "$work/averaged" && cp "$work/model/config.json" "$work/model/tokenizer.safetensors" "$work/averaged/"
check "a run with --ema 0.9" "$bin/maskgit-train" --stage transformer -o "$work/averaged" "${tiny_transformer[@]}" --steps 2 --ema 0.9
cp -r "$work/averaged" "$work/averaged-legacy"
check "a resume without --ema" "$bin/maskgit-train" --stage transformer -o "$work/averaged" "${tiny_transformer[@]}" --steps 3 --resume
check "... reaches step 3" grep -aq '"step":"3"' "$work/averaged/train-state/transformer.safetensors"
check "... keeps the decay" grep -aqF 'ema\":0.9' "$work/averaged/train-state/transformer.safetensors"
check "... and the averaged weights" grep -aq '"ema\.' "$work/averaged/train-state/transformer.safetensors"
# A checkpoint of an earlier version (no recorded decay) with averaged weights needs --ema again.
/usr/bin/python3 - "$work/averaged-legacy/train-state/transformer.safetensors" <<'PY'
import json, struct, sys
path = sys.argv[1]
data = open(path, "rb").read()
length = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + length])
del header["__metadata__"]["transformer_training"]
text = json.dumps(header).encode()
open(path, "wb").write(struct.pack("<Q", len(text)) + text + data[8 + length:])
PY
expect 2 "--ema: the checkpoint $work/averaged-legacy/train-state/transformer.safetensors holds averaged weights" -- \
  "$bin/maskgit-train" --stage transformer -o "$work/averaged-legacy" "${tiny_transformer[@]}" --steps 3 --resume
check "... which --ema 0.9 resumes" "$bin/maskgit-train" --stage transformer -o "$work/averaged-legacy" "${tiny_transformer[@]}" --ema 0.9 --steps 3 --resume
check "... keeping them" grep -aq '"ema\.' "$work/averaged-legacy/train-state/transformer.safetensors"
expect 2 "--codebook-size: 32, but the checkpoint" -- \
  "$bin/maskgit-train" --stage tokenizer -o "$work/diverge" --data "$data" --split t10k --limit 64 --codebook-size 32 --steps 3 --threads 1 -q --resume
expect 2 "--channel-mult: 1,2,4, but the checkpoint $work/diverge/train-state/tokenizer.safetensors records 1,2" -- \
  "$bin/maskgit-train" --stage tokenizer -o "$work/diverge" --data "$data" --split t10k --limit 64 --channel-mult 1,2,4 --steps 3 --threads 1 -q --resume
expect 2 "--dead-code-window: 7, but the checkpoint" -- \
  "$bin/maskgit-train" --stage tokenizer -o "$work/diverge" --data "$data" --split t10k --limit 64 --dead-code-window 7 --steps 3 --threads 1 -q --resume
expect 2 "--width-multiplier: 0.5, but the checkpoint" -- \
  "$bin/maskgit-train" --stage classifier -o "$work/classifier-diverge" --data "$data" --split t10k --limit 64 --width-multiplier 0.5 --steps 3 --threads 1 -q --resume
expect 2 "--lr" -- "${train[@]}" --lr 1e39 -o "$work/x"
expect 2 "--lr" -- "${train[@]}" --lr inf -o "$work/x"
check "no output after refused learning rates" test ! -e "$work/x"
# --resume trains on the images the checkpoint was trained on (its --limit).
expect 2 "--limit: the checkpoint" -- "$bin/maskgit-train" --stage tokenizer --data "$data" --split t10k --limit 32 --threads 1 -q --resume -o "$work/again"

# The tokenizer's loss flags: refused where they would do nothing, on --resume (the checkpoint
# decides), and the evaluation classifier as the perceptual network.
expect 2 "--adversarial-start: only with --adversarial-weight" -- "${train[@]}" --adversarial-start 5 -o "$work/x"
expect 2 "--r1-weight: only with --adversarial-weight" -- "${train[@]}" --r1-weight 2 -o "$work/x"
expect 2 "--perceptual-weight: needs --perceptual-model" -- "${train[@]}" --perceptual-weight 2 -o "$work/x"
expect 2 "--adversarial-weight: a resumed run" -- "${train[@]}" --adversarial-weight 0.5 --resume -o "$work/model"
expect 2 "--init-from: a resumed run" -- "${train[@]}" --init-from "$work/model" --resume -o "$work/model"
expect 2 "--perceptual-model: " -- "${train[@]}" --perceptual-model "$root/models/fashion-mnist-classifier" --steps 1 -o "$work/x"
expect 2 "--discriminator-layers: 5 stride-2 layers" -- "${train[@]}" --adversarial-weight 0.5 --discriminator-layers 5 --steps 1 -o "$work/x"
expect 2 "--perceptual-model: " -- "${train[@]}" --perceptual-model "$root/models/fashion-mnist-perceptual" --resume -o "$work/model"
expect 2 "--adversarial-start: is 5" -- "${train[@]}" --adversarial-weight 0.5 --adversarial-start 5 --steps 5 -o "$work/x"
check "no output after refused loss flags" test ! -e "$work/x/tokenizer.safetensors"
expect 2 "--stop-after: 0 must be -1 (off) or a number of steps" -- "${train[@]}" --stop-after 0 -o "$work/x"
# A resumed run keeps its schedule: without --steps it ends at the checkpoint's 4 steps (not the
# stage's default of 6000, which would run past the test's time), with --steps 5 it extends.
"${train[@]}" --steps 4 --lr 2e-3 --stop-after 2 -o "$work/schedule" 2>"$work/err"
check "a run stopped after 2 of 4 steps" grep -q '"step":"2"' "$work/schedule/train-state/tokenizer.safetensors"
check "... resumes to its own 4 steps" timeout 120 "${train[@]}" --resume -o "$work/schedule"
check "... and stops there" grep -q '"step":"4"' "$work/schedule/train-state/tokenizer.safetensors"
check "... with its own learning rate" grep -qF 'learning_rate\":0.002' "$work/schedule/train-state/tokenizer.safetensors"
check "--steps given again extends it" timeout 120 "${train[@]}" --steps 5 --resume -o "$work/schedule"
check "... to 5 steps" grep -q '"step":"5"' "$work/schedule/train-state/tokenizer.safetensors"
# A recorded value clashing with a default is still the recorded value (hidden 12 with the
# default 8 heads is no architecture, but the checkpoint's 2 heads divide it).
mkdir -p "$work/h12" && cp "$work/model/config.json" "$work/model/tokenizer.safetensors" "$work/h12/"
"$bin/maskgit-train" --stage transformer -o "$work/h12" --data "$data" --split t10k --limit 64 --steps 2 -b 32 \
  --layers 1 --hidden 12 --heads 2 --mlp-dim 16 --threads 1 -q 2>"$work/err"
check "a resume giving the recorded --hidden again" "$bin/maskgit-train" --stage transformer -o "$work/h12" \
  --data "$data" --split t10k --limit 64 --hidden 12 --steps 3 --threads 1 -q --resume
expect 2 '--steps: "0" is not a finite number above 0' -- "${train[@]}" --steps 0 -o "$work/x"
expect 2 '--warmup: "-1" is not a finite number of 0 or more' -- "${train[@]}" --warmup -1 -o "$work/x"
# A flag of another stage would do nothing: refused, naming the flag and its stage.
expect 2 "--filters: a flag of the tokenizer stage" -- "$bin/maskgit-train" --stage transformer --filters 8 -o "$work/x"
expect 2 "--perceptual-model: a flag of the tokenizer stage" -- "$bin/maskgit-train" --stage classifier --perceptual-model "$work/x" -o "$work/x"
expect 2 "--ema: a flag of the transformer stage" -- "${train[@]}" --ema 0.99 -o "$work/x"
expect 2 "--augment: a flag of the classifier stage" -- "${train[@]}" --augment -o "$work/x"
expect 2 "--layers: a flag of the transformer stage" -- "$bin/maskgit-train" --stage classifier --layers 2 -o "$work/x"
expect 2 "--init-from: a flag of the tokenizer and transformer stages" -- "$bin/maskgit-train" --stage classifier --init-from "$root/models/fashion-mnist" -o "$work/x"
expect 2 "--hidden: the architecture comes from --init-from" -- "$bin/maskgit-train" --stage transformer --init-from "$root/models/fashion-mnist" --hidden 64 -o "$work/x"
expect 2 "--init-from: a resumed run" -- "$bin/maskgit-train" --stage transformer --init-from "$root/models/fashion-mnist" --resume -o "$work/x"
expect 2 "--filters: the architecture comes from --init-from's tokenizer" -- "${train[@]}" --init-from "$work/model" -o "$work/x"
expect 2 "--dead-code-window: not with --decoder-only" -- "$bin/maskgit-train" --stage tokenizer --init-from "$work/model" --decoder-only --dead-code-window 50 -o "$work/x"
# A transformer continued from a trained one, from the command line (its architecture and dropout).
mkdir -p "$work/continued" && cp "$work/model/config.json" "$work/model/tokenizer.safetensors" "$work/continued/"
check "a transformer run started from another (--init-from)" "$bin/maskgit-train" --stage transformer -o "$work/continued" \
  --init-from "$work/gen" --data "$data" --split t10k --limit 64 --steps 2 -b 32 --threads 1 -q
check "... takes its architecture" grep -q '"hidden_size": 16' "$work/continued/config.json"
expect 2 "--epochs: the run's length is given by --steps" -- "$bin/maskgit-train" --stage classifier --epochs 2 --steps 5 -o "$work/x"
expect 2 "--dist-backend: only for a multi-process run" -- "${train[@]}" --dist-backend gloo -o "$work/x"
expect 2 "--dist-timeout: only for a multi-process run" -- "${train[@]}" --nproc 1 --dist-timeout 30 -o "$work/x"
check "no output after flags of another stage" test ! -e "$work/x"
# A stage never writes over a directory of the other kind (its config.json would be replaced).
cp -r "$work/model" "$work/kind"
expect 4 "holds a MaskGIT model" -- "$bin/maskgit-train" --stage classifier --data "$data" --split t10k --limit 64 --steps 1 -o "$work/kind"
check "the model's config.json is untouched" cmp "$work/model/config.json" "$work/kind/config.json"
# maskgit-tokenize evaluate takes image files instead of its default dataset.
check "tokenize evaluate on image files" "$bin/maskgit-tokenize" -m "$work/model" evaluate -i "$fixtures/../../examples/fashion-mnist/1-trouser-t10k-00002.png"
# Data of other classes than the default classifier's: evaluated, not judged, and it says so.
mkdir -p "$work/folder/a" "$work/folder/b"
cp "$root"/examples/fashion-mnist/1-trouser-t10k-00002.png "$work/folder/a/"
cp "$root"/examples/fashion-mnist/1-trouser-t10k-00002.png "$work/folder/b/"
check "tokenize evaluate on other classes" "$bin/maskgit-tokenize" -m "$work/model" evaluate --data "$work/folder" 2>"$work/err"
check "... says it is not judged" grep -q "not judged: the default classifier" "$work/err"
check "tokenize evaluate on one image" "$bin/maskgit-tokenize" -m "$work/model" evaluate --data "$data" --limit 1 2>"$work/err"
check "... says it is not judged" grep -q "not judged: the classifier needs at least 2 images" "$work/err"
check "tokenize evaluate without a classifier" env MASKGIT_CLASSIFIER="$work/none" "$bin/maskgit-tokenize" -m "$work/model" \
  evaluate --data "$data" --limit 4 2>"$work/err"
check "... says it is not judged" grep -q "not judged: no classifier at $work/none" "$work/err"
rm -rf "$work/x"

# --show-defaults: the settings and where each comes from, then nothing else (no input needed).
model_dir=$root/models/fashion-mnist
"$bin/maskgit-sample" --show-defaults --json --temperature 0.7 -o "$work/never.png" >"$work/show.json" 2>"$work/err"
check "--show-defaults prints the resolved settings as JSON" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
s = d["settings"]
assert s["temperature"] == {"value": 0.7, "from": "the flag"}, s
assert set(s) == {"steps", "start-step", "schedule", "choice-temperature", "temperature", "cfg-scale", "cfg-schedule", "top-k", "order", "dtype"}, s
' "$work/show.json"
check "--show-defaults writes no image" test ! -e "$work/never.png"
"$bin/maskgit-edit" --show-defaults --release-defaults >"$work/show.txt" 2>"$work/err"
check "maskgit-edit --show-defaults needs no box, class or input" grep -q -- "--steps *12 *the tool's default" "$work/show.txt"
expect 2 "--show-defaults: only with --sample-model" -- "$bin/maskgit-eval" --show-defaults --images "$work"
expect 2 "--release-defaults: only with --sample-model" -- "$bin/maskgit-eval" --release-defaults --images "$work"

finish cli_errors
