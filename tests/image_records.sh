#!/usr/bin/env bash
# The images' maskgit-cpp.image/1 records (docs/metadata.md): maskgit-info prints them (text and
# --json); --replay FILE makes the same bytes again on this machine for every tool that writes
# results (sample, inpaint, outpaint, edit, tokenize reconstruct), taking only the flags that
# choose where results go; a replay refuses another tool's file, a changed model, input or mask,
# and a file without a record. Seeds are exact integers (2^64 - 1 included), -1 draws one that is
# printed and recorded. Options of the whole tool are accepted after a subcommand; -q silences
# progress, -v adds the model's identity.
# Usage: image_records.sh BIN_DIR   (needs /usr/bin/python3 for reading the JSON)
set -u
bin=${1:?usage: image_records.sh BIN_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
python=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$root/tests/cli_lib.sh"
fixtures=$root/tests/fixtures
model=$work/model
cp -r "$root/models/fashion-mnist" "$model"
run=(--threads 1 -q)

# json_field FILE.png KEY...: a field of the record, as maskgit-info --json reads it.
json_field() {
  "$bin/maskgit-info" --json "$1" | "$python" -c '
import json, sys
value = json.loads(sys.stdin.read())["record"]
for key in sys.argv[1:]:
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value if not isinstance(value, (dict, list)) else json.dumps(value))' "${@:2}"
}

# Samples: three images, the last seed 2^64 - 1; each replayed alone is the same file.
check "sample" "$bin/maskgit-sample" -m "$model" "${run[@]}" -c 3 -n 3 -s 18446744073709551613 -b 2 -o "$work/s%d.png"
check "the seed is an exact integer" test "$(json_field "$work/s2.png" seed)" = 18446744073709551615
check "schema" test "$(json_field "$work/s0.png" schema)" = maskgit-cpp.image/1
check "model identity is the weights' SHA-256" test "$(json_field "$work/s0.png" model transformer_sha256)" = \
  "$(sha256sum "$model/transformer.safetensors" | cut -d' ' -f1)"
for i in 0 2; do
  check "sample $i replayed gives the same bytes" "$bin/maskgit-sample" --replay "$work/s$i.png" "${run[@]}" -o "$work/re-s$i.png"
  check "sample $i: same bytes" cmp "$work/s$i.png" "$work/re-s$i.png"
done
# A custom schedule: the record holds the steps it ran (its length), and replays.
check "sample, custom schedule" "$bin/maskgit-sample" -m "$model" "${run[@]}" -c 3 -n 1 -s 7 --schedule custom:20,29 -o "$work/c.png"
check "custom schedule: its steps recorded" grep -q '"--steps","2"' "$work/c.png"
check "custom schedule replayed" "$bin/maskgit-sample" --replay "$work/c.png" "${run[@]}" -o "$work/re-c.png"
check "custom schedule: same bytes" cmp "$work/c.png" "$work/re-c.png"
# A linear guidance schedule: recorded and replayed. A record made before --cfg-schedule existed
# (no such argument) replays with the tool's constant schedule, even from a model that now
# recommends linear: what made the file, not the model's current default.
check "sample, linear guidance" "$bin/maskgit-sample" -m "$model" "${run[@]}" -c 6 -n 1 -s 11 --cfg-scale 3 \
  --cfg-schedule linear -o "$work/g.png"
check "linear guidance recorded" grep -q '"cfg_schedule":"linear"' "$work/g.png"
check "linear guidance replayed" "$bin/maskgit-sample" --replay "$work/g.png" "${run[@]}" -o "$work/re-g.png"
check "linear guidance: same bytes" cmp "$work/g.png" "$work/re-g.png"
check "sample, constant guidance" "$bin/maskgit-sample" -m "$model" "${run[@]}" -c 6 -n 1 -s 11 --cfg-scale 3 \
  --cfg-schedule constant -o "$work/g-constant.png"
check "linear and constant guidance give other pixels" "$python" -c '
import sys
from PIL import Image
a, b = (Image.open(p) for p in sys.argv[1:])
assert a.tobytes() != b.tobytes()
' "$work/g.png" "$work/g-constant.png"
cp -r "$model" "$work/model-linear"
check "a model recommending linear guidance" "$python" -c '
import json, sys
path = sys.argv[1] + "/config.json"
config = json.load(open(path))
config["sampling"]["guidance_schedule"] = "linear"
json.dump(config, open(path, "w"))
' "$work/model-linear"
check "an older record: its arguments without --cfg-schedule" "$python" -c '
import json, sys
from PIL import Image, PngImagePlugin
image = Image.open(sys.argv[1])
record = json.loads(image.text["maskgit"])
args = record["arguments"]
i = args.index("--cfg-schedule")
del args[i:i + 2]
del record["settings"]["cfg_schedule"]
info = PngImagePlugin.PngInfo()
info.add_itxt("maskgit", json.dumps(record))
image.save(sys.argv[2], pnginfo=info)
' "$work/g-constant.png" "$work/g-old.png"
check "the older record replayed with the linear model" "$bin/maskgit-sample" --replay "$work/g-old.png" \
  -m "$work/model-linear" "${run[@]}" -o "$work/re-g-old.png"
check "the older record's replay is the constant image" "$python" -c '
import sys
from PIL import Image
a, b = (Image.open(p) for p in sys.argv[1:])
assert a.tobytes() == b.tobytes()
' "$work/g-constant.png" "$work/re-g-old.png"
check "the older record's replay records constant" grep -q '"cfg_schedule":"constant"' "$work/re-g-old.png"
check "info prints the record" "$bin/maskgit-info" "$work/s1.png"
"$bin/maskgit-info" "$work/s1.png" >"$work/info.txt"
check "info text names the seed" grep -q "^  seed: 18446744073709551614$" "$work/info.txt"
check "info text gives the replay" grep -q "replay: maskgit-sample --replay $work/s1.png" "$work/info.txt"

# Editing tools.
input=$work/in.png
"$bin/maskgit-sample" -m "$model" "${run[@]}" -c 0 -s 5 -o "$input"
"$python" - "$work/mask.png" <<'PY'
import sys, struct, zlib
w = h = 28
rows = b"".join(b"\x00" + bytes(255 if 8 <= x < 20 and 6 <= y < 18 else 0 for x in range(w)) for y in range(h))
chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
check "inpaint" "$bin/maskgit-inpaint" -m "$model" "${run[@]}" -i "$input" --mask "$work/mask.png" -c 7 -n 2 -s 11 -o "$work/i%d.png"
check "outpaint" "$bin/maskgit-outpaint" -m "$model" "${run[@]}" -i "$input" --right 12 --top 4 -n 2 -s 3 -o "$work/o%d.png"
check "edit" "$bin/maskgit-edit" -m "$model" "${run[@]}" -i "$input" --box 4,4,16,16 -c Bag -n 2 -s 9 -o "$work/e%d.png"
check "tokenize reconstruct" "$bin/maskgit-tokenize" -m "$model" "${run[@]}" reconstruct -i "$input" -o "$work/t%d.png"
for made in i1 o1 e1 t0; do
  case $made in i*) tool=maskgit-inpaint ;; o*) tool=maskgit-outpaint ;; e*) tool=maskgit-edit ;; t*) tool=maskgit-tokenize ;; esac
  check "$made replayed" "$bin/$tool" --replay "$work/$made.png" "${run[@]}" -o "$work/re-$made.png"
  check "$made: same bytes" cmp "$work/$made.png" "$work/re-$made.png"
done
check "the edit records its input's SHA-256" test "$(json_field "$work/e0.png" input sha256)" = \
  "$(sha256sum "$input" | cut -d' ' -f1)"
check "the inpaint records its mask's SHA-256" test "$(json_field "$work/i0.png" region mask sha256)" = \
  "$(sha256sum "$work/mask.png" | cut -d' ' -f1)"
check "the edit's variant 1 has seed + 1" test "$(json_field "$work/e1.png" seed)" = 10

# What a replay refuses: other flags, another tool's file, changed inputs, files without a record.
expect 2 "--replay: -c" -- "$bin/maskgit-sample" --replay "$work/s0.png" -c 4 -o "$work/x.png"
expect 2 "--replay: --steps" -- "$bin/maskgit-sample" --replay "$work/s0.png" --steps 4 -o "$work/x.png"
expect 2 "made by maskgit-sample" -- "$bin/maskgit-edit" --replay "$work/s0.png" -o "$work/x.png"
expect 3 "no maskgit-cpp record" -- "$bin/maskgit-sample" --replay "$fixtures/image-grey-8x8.png" -o "$work/x.png"
expect 3 "no-such.png" -- "$bin/maskgit-sample" --replay "$work/no-such.png" -o "$work/x.png"
cp "$work/mask.png" "$work/mask.orig"
"$bin/maskgit-sample" -m "$model" "${run[@]}" -c 1 -s 1 -o "$work/mask.png"
expect 3 "is not the mask that made the file" -- "$bin/maskgit-inpaint" --replay "$work/i0.png" "${run[@]}" -o "$work/x.png"
cp "$work/mask.orig" "$work/mask.png"
cp "$input" "$work/in.orig"; cp "$work/s0.png" "$input"
expect 3 "is not the input" -- "$bin/maskgit-edit" --replay "$work/e0.png" "${run[@]}" -o "$work/x.png"
cp "$work/in.orig" "$input"
cp -r "$model" "$work/other"
"$python" -c 'import sys; p = sys.argv[1]; d = bytearray(open(p, "rb").read()); d[-1] ^= 1; open(p, "wb").write(d)' \
  "$work/other/transformer.safetensors"
expect 3 "is not the one that made the file" -- "$bin/maskgit-sample" --replay "$work/s0.png" -m "$work/other" "${run[@]}" -o "$work/x.png"
check "nothing written by refused replays" test ! -e "$work/x.png"
check "-m naming the model another way replays" "$bin/maskgit-sample" --replay "$work/s0.png" -m "$model/./" "${run[@]}" -o "$work/copy.png"
check "... to the same bytes (paths are recorded absolute and normalised)" cmp "$work/s0.png" "$work/copy.png"
(cd "$work" && "$bin/maskgit-sample" -m model "${run[@]}" -c 2 -s 4 -o rel.png)
mkdir -p "$work/elsewhere"
check "a run with relative paths replays from another folder" \
  sh -c 'cd "$1/elsewhere" && "$2/maskgit-sample" --replay ../rel.png --threads 1 -q -o again.png' _ "$work" "$bin"
check "... to the same bytes" cmp "$work/rel.png" "$work/elsewhere/again.png"
expect 2 "give -o/--output" -- "$bin/maskgit-sample" --replay "$work/s0.png"
expect 2 "--replay: -qc4" -- "$bin/maskgit-sample" --replay "$work/s0.png" -o "$work/x.png" -qc4
expect 2 "maskgit-train: error" -- "$bin/maskgit-train" --replay "$work/s0.png"
check "maskgit-tokenize reconstruct --replay (the subcommand typed again)" \
  "$bin/maskgit-tokenize" reconstruct --replay "$work/t0.png" "${run[@]}" -o "$work/re-t0b.png"
check "... the same bytes" cmp "$work/t0.png" "$work/re-t0b.png"
"$bin/maskgit-tokenize" -m "$model" "${run[@]}" reconstruct --data /usr/share/datasets/fashion-mnist --limit 1 -o "$work/d%d.png" 2>/dev/null
expect 3 "dataset image" -- "$bin/maskgit-tokenize" --replay "$work/d0.png" -o "$work/x.png"

# maskgit-info: several files, JSON, a file without a record (status 3, the others printed).
check "info --json of two files is two JSON lines" test "$("$bin/maskgit-info" --json "$work/s0.png" "$work/e0.png" | \
  "$python" -c 'import json, sys; print(sum(1 for line in sys.stdin if json.loads(line)["record"]["schema"]))')" = 2
"$bin/maskgit-info" "$work/s0.png" "$fixtures/image-grey-8x8.png" >"$work/out2" 2>"$work/err2"
check "info: status 3 when a file has no record" test $? -eq 3
check "info: the good file still printed" grep -q "seed: 18446744073709551613" "$work/out2"
expect 3 "image-grey-8x8.png" -- "$bin/maskgit-info" "$fixtures/image-grey-8x8.png"

# Seeds.
expect 2 "--seed" -- "$bin/maskgit-sample" -m "$model" -s 18446744073709551616 -o "$work/x.png"
expect 2 "--seed" -- "$bin/maskgit-sample" -m "$model" -s -2 -o "$work/x.png"
"$bin/maskgit-sample" -m "$model" --threads 1 -c 2 -s -1 -o "$work/r.png" 2>"$work/err3"
drawn=$(sed -n 's/^maskgit-sample: --seed \([0-9]*\) (random)$/\1/p' "$work/err3")
check "a random seed is printed" test -n "$drawn"
check "and recorded" test "$(json_field "$work/r.png" seed)" = "$drawn"
"$bin/maskgit-sample" -m "$model" --threads 1 -q -c 2 -s -1 -o "" --save-tokens "$work/r.safetensors" 2>"$work/err4"
check "a random seed is printed even with -q (a token file does not record it)" \
  grep -q "^maskgit-sample: --seed [0-9]* (random)$" "$work/err4"

# Flags where users put them, verbosity.
check "tokenize: the tool's --json after the subcommand" "$bin/maskgit-tokenize" -m "$model" evaluate --json --limit 8 --threads 1
"$bin/maskgit-sample" -m "$model" --threads 1 -q -c 1 -o "$work/q.png" 2>"$work/quiet"
check "-q: nothing on stderr" test ! -s "$work/quiet"
"$bin/maskgit-sample" -m "$model" --threads 1 -v -c 1 -o "$work/v.png" 2>"$work/verbose"
check "-v: the model's identity on stderr" grep -q "transformer sha256" "$work/verbose"
expect 2 "--quiet" -- "$bin/maskgit-sample" -m "$model" -q -v -o "$work/x.png"
finish image_records
