#!/usr/bin/env bash
# PNG metadata as another program sees it: the tools write text chunks as UTF-8 iTXt, so a path
# such as dír/bööt.png reads back intact in Pillow (Debian's python3-pil), not as Latin-1
# mojibake; every chunk's CRC is sound; and text that Pillow writes as tEXt, zTXt or iTXt is
# read by the tools (maskgit-eval's "maskgit:class").
# Usage: png_metadata.sh BIN_DIR   (needs /usr/bin/python3 with PIL: python3-pil, scripts/setup.sh)
set -u
bin=${1:?usage: png_metadata.sh BIN_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
python=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$root/tests/cli_lib.sh"
[[ -x $python ]] && "$python" -c 'import PIL' 2>/dev/null ||
  { echo "FAIL: $python cannot import PIL (install python3-pil: scripts/setup.sh)"; exit 1; }
export PYTHONIOENCODING=utf-8

# The shipped model and an input, both under folder names outside ASCII.
model=$work/mödel/fashion-mnist
input=$work/dír/bööt.png
output=$work/öut/récon.png
mkdir -p "$work/mödel" "$work/dír"
cp -r "$root/models/fashion-mnist" "$model"
check "sample into dír/bööt.png" "$bin/maskgit-sample" -m "$model" -c 9 -n 1 -s 3 --threads 1 -q -o "$input"
check "reconstruct dír/bööt.png" "$bin/maskgit-tokenize" -m "$model" --threads 1 -q reconstruct "$input" -o "$output"

# pil_check FILE EXPECTED...: Pillow decodes FILE (28x28 grey), every chunk's CRC matches, its
# text chunks are all iTXt, and each EXPECTED string (UTF-8) is, exactly, one of its text values
# or a string inside one that holds JSON (whatever the record's layout).
pil_check() {
  "$python" - "$@" <<'EOF'
import json, struct, sys, zlib
from PIL import Image
path, expected = sys.argv[1], sys.argv[2:]
data = open(path, "rb").read()
offset, kinds = 8, []
while offset < len(data):
    length, kind = struct.unpack(">I4s", data[offset:offset + 8])
    body = data[offset + 4:offset + 8 + length]
    crc, = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
    assert zlib.crc32(body) == crc, f"{path}: {kind} chunk CRC"
    kinds.append(kind.decode("latin-1"))
    offset += 12 + length
text_kinds = [k for k in kinds if k in ("tEXt", "zTXt", "iTXt")]
assert text_kinds and set(text_kinds) == {"iTXt"}, f"{path}: text chunks {text_kinds}"
image = Image.open(path)
image.load()
assert image.size == (28, 28) and image.mode == "L", (image.size, image.mode)
strings = []
def collect(value):
    if isinstance(value, str):
        strings.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            collect(item)
    elif isinstance(value, list):
        for item in value:
            collect(item)
for value in image.text.values():
    strings.append(value)
    try:
        collect(json.loads(value))
    except ValueError:
        pass
for want in expected:
    assert want in strings, f"{path}: {want!r} not in {strings!r}"
print("ok", path)
EOF
}
check "Pillow reads the model's path from the sample's metadata" pil_check "$input" "$model"
check "Pillow reads dír/bööt.png and the model's path from the reconstruction's metadata" \
  pil_check "$output" "$input" "$model"

# The other way: Pillow writes the class as tEXt (with a Latin-1 neighbour), zTXt and
# compressed iTXt; maskgit-eval reads all three (a folder of two of them is the reference).
mkdir -p "$work/pil/ref/0"
check "Pillow writes tEXt, zTXt and iTXt" "$python" - "$work/pil" <<'EOF'
import sys
from PIL import Image, PngImagePlugin
folder = sys.argv[1]
for kind in ("tEXt", "zTXt", "iTXt"):
    info = PngImagePlugin.PngInfo()
    if kind == "tEXt":
        info.add_text("maskgit:class", "3")
        info.add_text("Autor", "J\u00fcrgen")  # Latin-1: Pillow writes tEXt
    elif kind == "zTXt":
        info.add_text("maskgit:class", "3", zip=True)
    else:
        info.add_itxt("maskgit:class", "3", lang="en", tkey="Klasse", zip=True)
    image = Image.frombytes("L", (28, 28), bytes(range(256)) * 3 + bytes(16))
    image.save(f"{folder}/{kind}.png", pnginfo=info)
    image.save(f"{folder}/ref/0/{kind}.png")
EOF
if "$bin/maskgit-eval" "$work/pil/tEXt.png" "$work/pil/zTXt.png" "$work/pil/iTXt.png" --reference "$work/pil/ref" \
     --floor-count 2 --threads 1 --json >"$work/eval.json" 2>"$work/err"; then
  check "maskgit-eval reads maskgit:class from tEXt, zTXt and iTXt" "$python" -c '
import json, sys
result = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert result["images"] == 3 and result["classes"][3]["images"] == 3, result' "$work/eval.json"
else
  failed=$((failed + 1)); echo "FAIL: maskgit-eval on Pillow's PNGs"; sed 's/^/    /' "$work/err"
fi

finish png-metadata
