#!/usr/bin/env python3
"""Regenerates the generated seeds of fuzz/corpus/<harness>/ (small valid files of each format
and a few hostile ones). Files named regress-* are inputs that once found a bug: they are kept
by hand and never touched here. JPEG seeds are written with stb_image_write (libstb-dev) by a
small C program compiled on the fly.

Usage: fuzz/make_seeds.py        (from anywhere; needs python3 and a C compiler)
"""
import gzip
import json
import pathlib
import struct
import subprocess
import tempfile
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
MAX_SEED = 4096  # bytes: seeds stay small so that mutations stay fast


def put(harness, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= MAX_SEED, (harness, name, len(data))
    folder = CORPUS / harness
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


# ---------------------------------------------------------------- JSON
def json_seeds():
    put("json", "object.json", '{"a":[1,2.5,-0.0,1e308,-12345678901234567890,5e-324],'
        '"b":{"c":null,"d":true,"e":false},"s":"\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/\\b\\f\\r"}')
    put("json", "array.json", ' [ [], {}, "", 0, -0, 1E+2, 1e-2, 0.5 ] ')
    put("json", "string.json", '"caf\xc3\xa9 \\u0041"')
    put("json", "number.json", "-9223372036854775808")
    put("json", "hostile-deep.json", "[" * 300 + "]" * 300)
    put("json", "hostile-duplicate.json", '{"a":1,"b":{"c":2,"c":3}}')
    put("json", "hostile-surrogate.json", '["\\ud800x", "\\udc00"]')
    put("json", "hostile-numbers.json", "[1e400, -1e400, 1e-400, 00, 1., .5, -]")
    put("json", "hostile-control.json", '"a\x01b"')
    put("json", "hostile-trailing.json", '{"a":1} x')
    for model in ("fashion-mnist", "fashion-mnist-classifier"):
        put("json", f"{model}-config.json", (ROOT / "models" / model / "config.json").read_bytes())


# ---------------------------------------------------------------- safetensors
DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U8": 1, "BOOL": 1}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, data bytes); contiguous offsets in list order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def raw_header(text, data=b""):
    text = text.encode()
    return struct.pack("<Q", len(text)) + text + data


def f32(*values):
    return struct.pack(f"<{len(values)}f", *values)


def safetensors_seeds():
    put("safetensors", "f32.safetensors", safetensors([("w", "F32", [2, 2], f32(1, 2, 3, 4))]))
    put("safetensors", "metadata.safetensors",
        safetensors([("b", "F32", [3], f32(0.5, -1, 2)), ("a", "I64", [1], struct.pack("<q", -7))],
                    {"format": "pt", "stage": "tokenizer"}))
    every = [(f"t_{dtype.lower()}", dtype, [2], bytes(range(2 * size))) for dtype, size in DTYPE_SIZE.items()]
    put("safetensors", "dtypes.safetensors", safetensors(every))
    put("safetensors", "empty-and-scalar.safetensors",
        safetensors([("empty", "F32", [0, 3], b""), ("scalar", "F32", [], f32(3.5))]))
    put("safetensors", "header-only.safetensors", raw_header("{}"))
    put("safetensors", "hostile-header-length.safetensors", struct.pack("<Q", 1 << 60) + b"{}")
    put("safetensors", "hostile-zero-length.safetensors", struct.pack("<Q", 0))
    put("safetensors", "hostile-overlap.safetensors", raw_header(
        '{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}',
        bytes(6)))
    put("safetensors", "hostile-gap.safetensors", raw_header(
        '{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}', bytes(6)))
    put("safetensors", "hostile-duplicate.safetensors", raw_header(
        '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
        bytes(1)))
    put("safetensors", "hostile-overflow.safetensors", raw_header(
        '{"a":{"dtype":"F64","shape":[4611686018427387904,4611686018427387904,8],"data_offsets":[0,0]}}'))
    put("safetensors", "hostile-offsets.safetensors", raw_header(
        '{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,0]}}', bytes(4)))
    put("safetensors", "hostile-metadata.safetensors", raw_header('{"__metadata__":{"a":1}}'))
    put("safetensors", "hostile-dtype.safetensors", raw_header(
        '{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', bytes(1)))


# ---------------------------------------------------------------- token files
def tokens(ids_dtype="I32", shape=(2, 3, 3), ids=None, labels=None, labels_dtype="I64", metadata=None):
    n = shape[0] * shape[1] * shape[2]
    if ids is None:
        ids = [i % 7 for i in range(n)]
    fmt = {"I32": "i", "I64": "q", "U8": "B", "I16": "h", "F32": "f", "BOOL": "B", "I8": "b"}
    tensors = [("ids", ids_dtype, list(shape), struct.pack(f"<{n}{fmt[ids_dtype]}", *ids))]
    if labels is not None:
        tensors.append(("labels", labels_dtype, [len(labels)],
                        struct.pack(f"<{len(labels)}{fmt[labels_dtype]}", *labels)))
    if metadata is None:
        metadata = {"image_height": "12", "image_width": "12", "codebook_size": "8"}
    return safetensors(tensors, metadata)


def token_file_seeds():
    put("token_file", "ids-labels.safetensors", tokens(labels=[3, 1]))
    put("token_file", "ids-only.safetensors", tokens())
    put("token_file", "ids-i64.safetensors", tokens(ids_dtype="I64"))
    put("token_file", "ids-u8.safetensors", tokens(ids_dtype="U8"))
    put("token_file", "empty.safetensors", tokens(shape=(0, 4, 4), ids=[]))
    put("token_file", "hostile-ids-range.safetensors", tokens(ids=[8] + [0] * 17))
    put("token_file", "hostile-ids-negative.safetensors", tokens(ids=[-1] + [0] * 17))
    put("token_file", "hostile-ids-float.safetensors", tokens(ids_dtype="F32", ids=[0.5] * 18))
    put("token_file", "hostile-ids-bool.safetensors", tokens(ids_dtype="BOOL", ids=[2] * 18))
    put("token_file", "hostile-labels-float.safetensors",
        tokens(labels=[float("nan"), 1e30], labels_dtype="F32"))
    put("token_file", "hostile-labels-negative.safetensors", tokens(labels=[-5, 1 << 40]))
    put("token_file", "hostile-labels-length.safetensors", tokens(labels=[1, 2, 3]))
    put("token_file", "hostile-metadata.safetensors",
        tokens(metadata={"image_height": " 12", "image_width": "+12", "codebook_size": "9223372036854775807"}))
    put("token_file", "hostile-no-metadata.safetensors", tokens(metadata={}))


# ---------------------------------------------------------------- IDX
def idx(shape, data=None, type_code=0x08):
    count = 1
    for size in shape:
        count *= size
    if data is None:
        data = bytes((i * 37) % 256 for i in range(count))
    return bytes([0, 0, type_code, len(shape)]) + b"".join(struct.pack(">I", s) for s in shape) + data


def gz(data):
    return gzip.compress(data, mtime=0)


def idx_seeds():
    put("idx", "labels.idx1", idx([5], bytes([0, 9, 3, 3, 1])))
    put("idx", "images.idx3", idx([2, 3, 3]))
    put("idx", "rank4.idx", idx([1, 2, 2, 2]))
    put("idx", "labels.idx1.gz", gz(idx([5], bytes([0, 9, 3, 3, 1]))))
    put("idx", "images.idx3.gz", gz(idx([3, 4, 4])))
    put("idx", "hostile-magic.idx", b"\x08\x03\x00\x00" + bytes(8))
    put("idx", "hostile-float.idx", idx([2], bytes(8), type_code=0x0D))
    put("idx", "hostile-zero-dim.idx", idx([2, 0, 3], b""))
    put("idx", "hostile-lying-count.idx", idx([65536, 65536], bytes(16)))
    put("idx", "hostile-lying-count.idx.gz", gz(idx([65536, 65536], bytes(16))))
    put("idx", "hostile-trailing.idx", idx([2], bytes(5)))
    put("idx", "hostile-truncated.idx.gz", gz(idx([64, 8]))[:40])


# ---------------------------------------------------------------- images
def png(width, height, color_type, bit_depth=8, rows=None, chunks=(), interlace=0):
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row_bytes = (width * channels * bit_depth + 7) // 8
    if rows is None:
        rows = [bytes((x * 31 + y * 17) % 256 for x in range(row_bytes)) for y in range(height)]
    raw = b"".join(bytes([y % 5]) + row for y, row in enumerate(rows))  # all five filter types

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace))
    for kind, body in chunks:
        out += chunk(kind, body)
    out += chunk(b"IDAT", zlib.compress(raw, 9))
    out += chunk(b"IEND", b"")
    return out


def jpegs(folder):
    """Baseline JPEGs from stb_image_write: name -> bytes."""
    source = r"""
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
int main(void) {
  unsigned char pixels[16 * 16 * 3];
  for (int i = 0; i < 16 * 16 * 3; ++i) pixels[i] = (unsigned char)(i * 7);
  stbi_write_jpg("grey.jpg", 8, 8, 1, pixels, 50);
  stbi_write_jpg("rgb.jpg", 16, 16, 3, pixels, 30);
  stbi_write_jpg("odd.jpg", 5, 3, 3, pixels, 90);
  return 0;
}
"""
    (folder / "make.c").write_text(source)
    subprocess.run(["cc", "-O0", "-I/usr/include/stb", "make.c", "-o", "make", "-lm"], cwd=folder, check=True)
    subprocess.run(["./make"], cwd=folder, check=True)
    return {name: (folder / name).read_bytes() for name in ("grey.jpg", "rgb.jpg", "odd.jpg")}


def image_seeds(pictures):
    for name, data in pictures.items():
        put("image", name, data)
    for fixture in sorted((ROOT / "tests" / "fixtures").glob("*.png")):
        put("image", fixture.name, fixture.read_bytes())
    put("image", "hostile-zero-size.png", png(0, 0, 0, rows=[]))
    put("image", "hostile-huge.png", png(16384, 16384, 6, rows=[]))
    put("image", "hostile-too-wide.png", png(100000, 1, 0, rows=[]))
    # A JPEG header for 16384x16384 followed by almost no scan data.
    grey = pictures["grey.jpg"]
    sof = grey.find(b"\xff\xc0")
    big = grey[:sof + 5] + struct.pack(">HH", 16384, 16384) + grey[sof + 9:]
    put("image", "hostile-huge.jpg", big)
    put("image", "hostile-truncated.png", pictures["alpha-rgba.png"][:60])


def pictures_png():
    return {
        "grey-alpha.png": png(3, 2, 4),
        "rgb.png": png(2, 2, 2),
        "alpha-rgba.png": png(4, 4, 6),
        "palette.png": png(4, 2, 3, bit_depth=2,
                           chunks=[(b"PLTE", bytes(range(12))), (b"tRNS", b"\x00\x80")]),
        "grey16.png": png(3, 3, 0, bit_depth=16),
        "grey1.png": png(9, 2, 0, bit_depth=1),
        "text.png": png(2, 2, 0, chunks=[(b"tEXt", b"maskgit\x00seed=1 steps=8"), (b"tEXt", b"k\x00")]),
        # All three text chunk kinds: Latin-1 tEXt and zTXt, UTF-8 iTXt plain and compressed.
        "text-kinds.png": png(2, 2, 0, chunks=[
            (b"tEXt", b"Title\x00caf\xe9"),
            (b"zTXt", b"Caf\xe9\x00\x00" + zlib.compress(b"na\xefve")),
            (b"iTXt", b"maskgit\x00\x00\x00\x00\x00" + '{"seed":1,"path":"d\u00edr/b\u00f6\u00f6t.png"}'.encode()),
            (b"iTXt", b"packed\x00\x01\x00en\x00gepackt\x00" + zlib.compress("gr\u00fc\u00df".encode()))]),
        "rgb16-key.png": png(2, 2, 2, bit_depth=16, chunks=[(b"tRNS", bytes(6))]),
        "interlaced-flag.png": png(2, 2, 0, interlace=1),
    }


def mask_seeds(pictures):
    # The first byte picks threshold, invert, factor and dilation (fuzz_mask.cpp).
    choices = [0x00, 0x0b, 0x35, 0x7e]
    sources = {"mask-white-16x16.png": (ROOT / "tests/fixtures/mask-white-16x16.png").read_bytes(),
               "mask-black-28x28.png": (ROOT / "tests/fixtures/mask-black-28x28.png").read_bytes()}
    sources.update({name: pictures[name] for name in ("grey-alpha.png", "alpha-rgba.png", "rgb.png", "grey.jpg")})
    for i, (name, data) in enumerate(sorted(sources.items())):
        put("mask", name, bytes([choices[i % len(choices)]]) + data)
    put("mask", "hostile-huge.jpg", b"\x08" + pictures["hostile-huge.jpg"])


# ---------------------------------------------------------------- config.json
def config_seeds():
    base = json.loads((ROOT / "models/fashion-mnist/config.json").read_text())

    def put_config(name, config):
        put("config", name, json.dumps(config, indent=1))

    put("config", "fashion-mnist.json", (ROOT / "models/fashion-mnist/config.json").read_bytes())
    no_transformer = json.loads(json.dumps(base))
    del no_transformer["transformer"]
    put_config("tokenizer-only.json", no_transformer)
    no_tokenizer = json.loads(json.dumps(base))
    del no_tokenizer["tokenizer"]
    put_config("transformer-only.json", no_tokenizer)
    colour = json.loads(json.dumps(base))
    colour["image"]["channels"] = 3
    colour["tokenizer"]["channels"] = 3
    colour["tokenizer"]["release_shortcut"] = True
    put_config("rgb.json", colour)
    # The release's shape: RGB, factor 16, no "no class" token, decoding defaults of its own.
    release = json.loads(json.dumps(colour))
    release["image"].update(width=256, height=256)
    release["tokenizer"].update(filters=128, channel_multipliers=[1, 1, 2, 2, 4], num_res_blocks=2, norm_groups=32)
    release["transformer"].update(grid_height=16, grid_width=16, no_class_token=False)
    release["sampling"] = {"steps": 8, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12,
                           "edit_start_step": 2}
    put_config("release.json", release)
    minimal = {"format": "maskgit-cpp", "format_version": 1, "image": {"width": 1, "height": 1, "channels": 1},
               "class_names": ["x"]}
    put_config("minimal.json", minimal)

    def hostile(name, section, **fields):
        config = json.loads(json.dumps(base))
        config[section].update(fields)
        put_config(name, config)

    hostile("hostile-filters.json", "tokenizer", filters=4611686018427387904, channel_multipliers=[4])
    hostile("hostile-multipliers.json", "tokenizer", channel_multipliers=[1, 9223372036854775807])
    hostile("hostile-levels.json", "tokenizer", channel_multipliers=[1] * 64)
    hostile("hostile-norm.json", "tokenizer", norm_groups=0, norm_eps=-1e308)
    hostile("hostile-grid.json", "transformer", grid_height=4294967296, grid_width=4294967296)
    hostile("hostile-heads.json", "transformer", num_heads=0, hidden_size=-1)
    hostile("hostile-dropout.json", "transformer", dropout=1.5)
    hostile("hostile-codebook.json", "transformer", codebook_size=9223372036854775807)
    image = json.loads(json.dumps(base))
    image["image"] = {"width": 9223372036854775807, "height": -1, "channels": 2}
    put_config("hostile-image.json", image)
    put("config", "hostile-not-object.json", "[1, 2]")
    put("config", "hostile-format.json", '{"format": "maskgit-cpp", "format_version": 1.0}')
    sampling = json.loads(json.dumps(release))
    sampling["sampling"] = {"steps": 9223372036854775807, "schedule": "custom:1,-1", "choice_temperature": -1e308,
                            "edit_steps": 0, "edit_start_step": -1, "stpes": 1}
    put_config("hostile-sampling.json", sampling)


# ---------------------------------------------------------------- Flax msgpack checkpoints
def mp(value):
    """A minimal msgpack encoder (no dependency): dict, list/tuple, str, bytes, int, bool, None,
    and ("ext", code, payload) for extension values."""
    if value is None:
        return b"\xc0"
    if value is True or value is False:
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 128:
            return bytes([value])
        if -32 <= value < 0:
            return struct.pack("b", value)
        return (b"\xcf" + struct.pack(">Q", value)) if value >= 0 else (b"\xd3" + struct.pack(">q", value))
    if isinstance(value, str):
        data = value.encode()
        return (bytes([0xa0 | len(data)]) if len(data) < 32 else b"\xd9" + bytes([len(data)])) + data
    if isinstance(value, bytes):
        return (b"\xc4" + bytes([len(value)]) if len(value) < 256 else b"\xc5" + struct.pack(">H", len(value))) + value
    if isinstance(value, tuple) and value and value[0] == "ext":
        _, code, payload = value
        return b"\xc8" + struct.pack(">Hb", len(payload), code) + payload
    if isinstance(value, (list, tuple)):
        return bytes([0x90 | len(value)]) + b"".join(mp(v) for v in value)
    if isinstance(value, dict):
        return bytes([0x80 | len(value)]) + b"".join(mp(k) + mp(v) for k, v in value.items())
    raise TypeError(value)


def flax_array(shape, dtype="float32", fill=b"\x00\x00\x80\x3f"):
    count = 1
    for size in shape:
        count *= size
    item = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int32": 4}[dtype]
    data = (fill * (count * item // len(fill) + 1))[: count * item]
    return ("ext", 1, mp((list(shape), dtype, data)))


def flax_seeds():
    put("flax", "tokenizer-like", mp({"params": {
        "encoder": {"Conv_0": {"kernel": flax_array((3, 3, 3, 4))}},
        "quantizer": {"codebook": flax_array((8, 2))}}}))
    put("flax", "transformer-like", mp({"params": {
        "Embed_0": {"word_embeddings": {"embedding": flax_array((6, 4))},
                    "embeddings_ln": {"scale": flax_array((4,)), "bias": flax_array((4,))}},
        "TransformerLayer_0": {"Attention_0": {"self_attention": {
            "query": {"kernel": flax_array((4, 2, 2)), "bias": flax_array((2, 2))}}}},
        "MlmLayer_0": {"mlm_bias": {"bias": flax_array((6,), "bfloat16")}}}}))
    put("flax", "dtypes", mp({"params": {"a": flax_array((2,), "float16"), "b": flax_array((1, 1), "float64"),
                                         "c": flax_array((0, 3))}}))
    put("flax", "hostile-int32", mp({"params": {"a": flax_array((2,), "int32")}}))
    put("flax", "hostile-scalar", mp({"params": {"a": ("ext", 3, mp(([], "float32", b"\0\0\0\0")))}}))
    put("flax", "hostile-chunked", mp({"params": {"a": {"__msgpack_chunked_array__": True, "shape": [2],
                                                         "chunks": {"0": flax_array((2,))}}}}))
    put("flax", "hostile-short", mp({"params": {"a": ("ext", 1, mp(([4], "float32", b"\0" * 8)))}}))
    put("flax", "hostile-huge-map", b"\x81\xa6params\xdf\xff\xff\xff\xff")
    put("flax", "hostile-other-key", mp({"params": {}, "opt_state": {}}))


def dictionaries():
    def put_dict(name, tokens):
        lines = ["# libFuzzer dictionary (-dict=...): tokens of the format, written by make_seeds.py"]
        for token in tokens:
            escaped = "".join(c if 0x20 <= ord(c) < 0x7f and c not in '"\\' else f"\\x{ord(c):02x}" for c in token)
            lines.append(f'"{escaped}"')
        (ROOT / "fuzz" / f"{name}.dict").write_text("\n".join(lines) + "\n")

    json_tokens = ["{", "}", "[", "]", ":", ",", '"', "true", "false", "null", "\\u", "\\ud800", "\\udc00",
                   "\\n", "-0", "1e", "E+", ".5", "1e308", "9223372036854775807", "-9223372036854775808"]
    safetensors_tokens = json_tokens + ["__metadata__", "dtype", "shape", "data_offsets"] + list(DTYPE_SIZE)
    config_tokens = json_tokens + [
        "format", "maskgit-cpp", "format_version", "image", "width", "height", "channels", "class_names",
        "tokenizer", "filters", "channel_multipliers", "num_res_blocks", "codebook_size", "embedding_dim",
        "norm_groups", "norm_eps", "release_shortcut", "transformer", "num_classes", "grid_height",
        "grid_width", "hidden_size", "num_layers", "num_heads", "mlp_dim", "dropout", "attention_dropout",
        "no_class_token", "sampling", "steps", "schedule", "choice_temperature", "edit_steps", "edit_start_step",
        "cosine", "custom:", "4096", "65536"]
    token_tokens = safetensors_tokens + ["ids", "labels", "image_height", "image_width", "codebook_size"]
    image_tokens = ["\x89PNG\r\n\x1a\n", "IHDR", "IDAT", "IEND", "PLTE", "tRNS", "tEXt", "zTXt", "iTXt", "gAMA", "iCCP",
                    "CgBI", "\xff\xd8", "\xff\xd9", "\xff\xc0", "\xff\xc2", "\xff\xc4", "\xff\xda",
                    "\xff\xdb", "\xff\xdd", "\xff\xe0", "\xff\xee", "Adobe", "\x40\x00"]
    idx_tokens = ["\x00\x00\x08\x01", "\x00\x00\x08\x03", "\x00\x00\x08\x04", "\x00\x00\x0d\x01", "\x1f\x8b\x08",
                  "\x00\x00\x00\x00", "\xff\xff\xff\xff", "\x00\x01\x00\x00"]
    put_dict("json", json_tokens)
    put_dict("safetensors", safetensors_tokens)
    put_dict("config", config_tokens)
    put_dict("token_file", token_tokens)
    put_dict("image", image_tokens)
    put_dict("idx", idx_tokens)
    put_dict("flax", ["params", "kernel", "bias", "scale", "embedding", "codebook", "float32", "float16",
                      "bfloat16", "float64", "int32", "__msgpack_chunked_array__", "\xc7", "\xc8", "\xc9",
                      "\xd4\x01", "\xc4", "\xc5", "\xde", "\xdf", "\xdc", "\xdd", "\x93", "\x91"])


def main():
    json_seeds()
    safetensors_seeds()
    token_file_seeds()
    idx_seeds()
    pictures = pictures_png()
    with tempfile.TemporaryDirectory() as folder:
        pictures.update(jpegs(pathlib.Path(folder)))
    image_seeds(pictures)
    pictures["hostile-huge.jpg"] = (CORPUS / "image" / "hostile-huge.jpg").read_bytes()
    mask_seeds(pictures)
    config_seeds()
    flax_seeds()
    dictionaries()
    total = sum(1 for _ in CORPUS.glob("*/*"))
    print(f"make_seeds: {total} seeds in {CORPUS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
