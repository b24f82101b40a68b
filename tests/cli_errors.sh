#!/usr/bin/env bash
# The tools against bad input: every case must exit nonzero with the expected status, print
# exactly one line on stderr that names the offending flag or file, and leave no output.
# Usage: cli_errors.sh BIN_DIR   (needs Debian's dataset-fashion-mnist for the tiny model)
set -u
bin=${1:?usage: cli_errors.sh BIN_DIR}
data=/usr/share/datasets/fashion-mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

# expect STATUS NEEDLE -- command...
expect() {
  local want=$1 needle=$2; shift 3
  "$@" >"$work/out" 2>"$work/err" </dev/null
  local got=$? lines
  lines=$(wc -l <"$work/err")
  if [ "$got" -eq "$want" ] && grep -qF -- "$needle" "$work/err" && [ "$lines" -eq 1 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $* -> status $got (want $want), stderr ($lines lines):"; sed 's/^/    /' "$work/err"
    echo "    (expected one line containing: $needle)"
  fi
}

check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; fi
}

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
sample=("$bin/maskgit-sample" -m "$work/gen" --threads 1)
"${sample[@]}" -c 1 -n 3 -s 5 -b 1 -o "$work/b1-%d.png" 2>/dev/null
"${sample[@]}" -c 1 -n 3 -s 5 -b 3 -o "$work/b3-%d.png" --json >"$work/lines" 2>/dev/null
check "sampling writes PNGs" test -f "$work/b3-2.png"
check "image i is the same whatever the batch size" cmp -s "$work/b1-2.png" "$work/b3-2.png"
"${sample[@]}" -c 1 -n 1 -s 7 -o "$work/again.png" 2>/dev/null
check "seed + i reproduces image i" cmp -s "$work/again.png" "$work/b3-2.png"
check "--json prints one line per image" test "$(wc -l <"$work/lines")" -eq 3
check "PNG text chunk carries the settings" grep -q '"schedule":"cosine"' "$work/b3-0.png"
expect 2 "--class" -- "${sample[@]}" -c Spaceship -o "$work/x%d.png"
expect 2 "--class" -- "${sample[@]}" -c 99 -o "$work/x%d.png"
expect 2 "--schedule" -- "${sample[@]}" --schedule wiggly -o "$work/x%d.png"
expect 2 "--steps" -- "${sample[@]}" --steps 0 -o "$work/x%d.png"
expect 4 "/no/such/dir" -- "${sample[@]}" -c 0 -o "/no/such/dir/x%d.png"
expect 3 "transformer" -- "$bin/maskgit-sample" -m "$work/model" --threads 1 -o "$work/x%d.png"
expect 2 "--images" -- "$bin/maskgit-eval" --threads 1
expect 3 "/no/such/classifier" -- "$bin/maskgit-eval" --threads 1 -c /no/such/classifier --self-test
expect 3 "/no/such/images" -- "$bin/maskgit-eval" --threads 1 --images /no/such/images
printf 'x' >"$work/noclass.png"
expect 3 "noclass.png" -- "$bin/maskgit-eval" --threads 1 "$work/noclass.png"
check "no output after failed sampling" test -z "$(find "$work" -maxdepth 1 -name 'x*.png')"

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

echo "cli_errors: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
