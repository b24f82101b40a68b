#!/usr/bin/python3
"""Independent numpy reference of the MaskGIT release's networks, for release-parity tests.

Written from the release's semantics (google-research/maskgit, JAX/Flax; docs/model.md and
docs/decoding.md describe them), independent of this project's C++ code. It

  * draws random weights in the release's exact checkpoint layout (the nested dict under
    "params", every official key and shape) and writes them as Flax msgpack files, the way
    flax.serialization.msgpack_serialize writes {"params": {...}}, with map keys in a shuffled
    (seeded) order;
  * runs both networks in NHWC and float64 on those float32 weights: the VQGAN tokenizer
    (encoder, nearest-code quantizer, decoder) and the BERT-style transformer, feeding the
    release's mask id -1 (the embedding lookup wraps it to the last row, V - 1);
  * runs the release's parallel decode (maskgit/libml/parallel_decode.py) with its random
    numbers drawn from this project's counter-based generator (lib/decoding/counter_rng.h),
    reproduced bit for bit in integer arithmetic, so that a decode can be compared exactly;
  * re-draws inputs and seeds (deterministically: the next seed) until every argmin/argmax
    decision has a margin far above float32 error, and prints the margins;
  * writes inputs and expected outputs to golden.safetensors, with the expected inferred
    configuration in its metadata.

Usage: maskgit_reference.py --variant reduced|official --out DIR [--sabotage KIND[,KIND]]
Writes DIR/tokenizer_checkpoint, DIR/transformer_checkpoint, DIR/golden.safetensors and
DIR/class_names.txt. Needs only numpy and msgpack. --sabotage writes checkpoints with one
deliberate mistake (see SABOTAGES) but the goldens of the true weights: a comparison that
passes then is blind to that mistake.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import msgpack
import numpy as np

# ----------------------------------------------------------------------------------------------
# Variants

VARIANTS = {
    # The official ImageNet 256x256 shapes (all keys and shapes), exercised on small inputs: the
    # tokenizer is fully convolutional, so a 32x32 image (2x2 tokens) tests every weight.
    "official": {
        "tokenizer": {"channels": 3, "filters": 128, "channel_multipliers": [1, 1, 2, 2, 4],
                      "num_res_blocks": 2, "codebook_size": 1024, "embedding_dim": 256},
        "transformer": {"num_classes": 1000, "grid": 16, "hidden_size": 768, "num_layers": 24,
                        "num_heads": 16, "mlp_dim": 3072},
        "test_image_size": 32,
        "tokenizer_batch": 2,
        "logits_batch": 1,
        "decode_loop": False,
        "totals": {"tokenizer": (168, 54515587), "transformer": (393, 172457193)},
    },
    # The same structure, small: 5 levels, two ResBlocks a level, width-changing ResBlock_4 and
    # ResBlock_8 in encoder and decoder; widths multiples of 32 for GroupNorm(32).
    "reduced": {
        "tokenizer": {"channels": 3, "filters": 32, "channel_multipliers": [1, 1, 2, 2, 4],
                      "num_res_blocks": 2, "codebook_size": 64, "embedding_dim": 16},
        "transformer": {"num_classes": 10, "grid": 4, "hidden_size": 64, "num_layers": 2,
                        "num_heads": 4, "mlp_dim": 128},
        "test_image_size": 64,
        "tokenizer_batch": 2,
        "logits_batch": 2,
        "decode_loop": True,
        "totals": None,
    },
}

GROUPS = 32            # every GroupNorm of the release
GN_EPS = 1e-6          # flax.linen.GroupNorm's default
LN_EPS = 1e-12         # BERT's LayerNorm epsilon
CHOICE_TEMPERATURE = 4.5   # maskgit_class_cond_config: sample_choice_temperature
MIN_MARGIN = 1e-3      # every argmin/argmax decision must beat its runner-up by this (relative)
WEIGHT_SEED = 20220601

# Deliberate mistakes for checking that the comparison can fail: each keeps every shape, so a
# converter accepts the file, and each must make some comparison fail.
SABOTAGES = {
    # Query and key kernels of the first layer swapped (a mapping mix-up; transposes scores).
    "transformer-swap": ("swap", ("TransformerLayer_0", "Attention_0", "self_attention", "query", "kernel"),
                         ("TransformerLayer_0", "Attention_0", "self_attention", "key", "kernel")),
    # Scale and bias of a GroupNorm in the encoder's second width-changing ResBlock swapped.
    "encoder-swap": ("swap", ("encoder", "ResBlock_8", "GroupNorm_1", "scale"),
                     ("encoder", "ResBlock_8", "GroupNorm_1", "bias")),
    # One weight of the decoder's width-changing shortcut conv (the release's h + Conv1x1(h)) off
    # by 0.05.
    "decoder-perturb": ("perturb", ("decoder", "ResBlock_4", "Conv_2", "kernel"), 0.05),
}
MAX_ATTEMPTS = 200

# ----------------------------------------------------------------------------------------------
# The release's parameter layout

def tokenizer_layout(cfg):
    """Ordered list of (path tuple, shape, kind) for the VQGAN tokenizer, as Flax names it.

    Flax numbers sub-modules of one class in creation order within their parent (Conv_0,
    Conv_1, ..., ResBlock_0, ...)."""
    F = cfg["filters"]
    mult = cfg["channel_multipliers"]
    L = len(mult)
    R = cfg["num_res_blocks"]
    C = cfg["channels"]
    D = cfg["embedding_dim"]
    out = []

    def conv(path, kh, cin, cout, bias):
        out.append((path + ("kernel",), (kh, kh, cin, cout), "conv"))
        if bias:
            out.append((path + ("bias",), (cout,), "bias"))

    def gn(path, c):
        out.append((path + ("scale",), (c,), "scale"))
        out.append((path + ("bias",), (c,), "bias"))

    def resblock(path, cin, cout):
        gn(path + ("GroupNorm_0",), cin)
        conv(path + ("Conv_0",), 3, cin, cout, False)
        gn(path + ("GroupNorm_1",), cout)
        conv(path + ("Conv_1",), 3, cout, cout, False)
        if cin != cout:  # the release's 1x1 conv on h: out -> out
            conv(path + ("Conv_2",), 1, cout, cout, False)

    # Encoder
    e = ("encoder",)
    conv(e + ("Conv_0",), 3, C, F, False)
    width, block = F, 0
    for i in range(L):
        for _ in range(R):
            resblock(e + ("ResBlock_%d" % block,), width, F * mult[i])
            width, block = F * mult[i], block + 1
    for _ in range(R):
        resblock(e + ("ResBlock_%d" % block,), width, width)
        block += 1
    gn(e + ("GroupNorm_0",), width)
    conv(e + ("Conv_1",), 1, width, D, True)
    # Decoder
    d = ("decoder",)
    width = F * mult[-1]
    conv(d + ("Conv_0",), 3, D, width, True)
    block, nconv = 0, 1
    for _ in range(R):
        resblock(d + ("ResBlock_%d" % block,), width, width)
        block += 1
    for i in reversed(range(L)):
        for _ in range(R):
            resblock(d + ("ResBlock_%d" % block,), width, F * mult[i])
            width, block = F * mult[i], block + 1
        if i > 0:
            conv(d + ("Conv_%d" % nconv,), 3, width, width, True)
            nconv += 1
    gn(d + ("GroupNorm_0",), width)
    conv(d + ("Conv_%d" % nconv,), 3, width, C, True)
    # Quantizer
    out.append((("quantizer", "codebook"), (cfg["codebook_size"], D), "codebook"))
    return out


def transformer_layout(cfg, codebook_size):
    H = cfg["hidden_size"]
    n = cfg["num_heads"]
    hd = H // n
    V = codebook_size + cfg["num_classes"] + 1
    P = cfg["grid"] * cfg["grid"] + 1
    out = []

    def ln(path):
        out.append((path + ("scale",), (H,), "scale"))
        out.append((path + ("bias",), (H,), "bias"))

    def dense(path, cin, cout):
        out.append((path + ("kernel",), (cin, cout), "dense"))
        out.append((path + ("bias",), (cout,), "bias"))

    out.append((("Embed_0", "word_embeddings", "embedding"), (V, H), "embedding"))
    out.append((("Embed_0", "position_embeddings", "embedding"), (P, H), "embedding"))
    ln(("Embed_0", "embeddings_ln"))
    for i in range(cfg["num_layers"]):
        layer = ("TransformerLayer_%d" % i,)
        sa = layer + ("Attention_0", "self_attention")
        for name in ("query", "key", "value"):
            out.append((sa + (name, "kernel"), (H, n, hd), "dense"))
            out.append((sa + (name, "bias"), (n, hd), "bias"))
        out.append((sa + ("out", "kernel"), (n, hd, H), "dense_out"))
        out.append((sa + ("out", "bias"), (H,), "bias"))
        ln(layer + ("Attention_0", "attention_output_ln"))
        dense(layer + ("Mlp_0", "intermediate_output"), H, cfg["mlp_dim"])
        dense(layer + ("Mlp_0", "layer_output"), cfg["mlp_dim"], H)
        ln(layer + ("Mlp_0", "layer_output_ln"))
    dense(("MlmLayer_0", "mlm_dense"), H, H)
    ln(("MlmLayer_0", "mlm_ln"))
    out.append((("MlmLayer_0", "mlm_bias", "bias"), (V,), "logit_bias"))
    return out


def draw_weights(layout, rng, hidden=None):
    """Random float32 weights, scaled so that no tensor is negligible: a wrong mapping of any
    one of them (a transpose, a swap, a missing bias) changes the outputs."""
    flat = {}
    for path, shape, kind in layout:
        if kind == "codebook":
            continue  # calibrated on the encoder's outputs later
        size = int(np.prod(shape))
        z = rng.standard_normal(size, dtype=np.float32).reshape(shape)
        if kind == "conv":
            w = z / math.sqrt(shape[0] * shape[1] * shape[2])
        elif kind == "dense":      # (in, out) or (in, heads, head_dim)
            w = z / math.sqrt(shape[0])
        elif kind == "dense_out":  # (heads, head_dim, out)
            w = z / math.sqrt(shape[0] * shape[1])
        elif kind == "scale":
            w = 1.0 + 0.15 * z
        elif kind == "bias":
            w = 0.1 * z
        elif kind == "embedding":  # logits = LN(h) . E^T: std ~2
            w = z * (2.0 / math.sqrt(hidden))
        elif kind == "logit_bias":
            w = 0.5 * z
        else:
            raise AssertionError(kind)
        flat[path] = w.astype(np.float32)
    return flat


def nest(flat):
    tree = {}
    for path, value in flat.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree

# ----------------------------------------------------------------------------------------------
# Flax msgpack

def write_flax_msgpack(path, params, shuffle_rng):
    """{"params": params} as flax.serialization.msgpack_serialize writes it: nested maps with
    string keys, every array an ExtType(1, packb((shape, dtype name, C-order LE bytes))). Map
    keys are written in a shuffled order (real files need not be sorted)."""

    def convert(node):
        if isinstance(node, dict):
            keys = sorted(node)
            order = shuffle_rng.permutation(len(keys))
            return {keys[i]: convert(node[keys[i]]) for i in order}
        arr = np.ascontiguousarray(node, dtype="<f4")
        payload = msgpack.packb((tuple(arr.shape), arr.dtype.name, arr.tobytes("C")), use_bin_type=True)
        return msgpack.ExtType(1, payload)

    data = msgpack.packb({"params": convert(params)}, use_bin_type=True)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def read_flax_msgpack(path):
    def ext_hook(code, data):
        assert code == 1, code
        shape, dtype, raw = msgpack.unpackb(data, raw=False)
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)

    with open(path, "rb") as f:
        return msgpack.unpackb(f.read(), ext_hook=ext_hook, raw=False, strict_map_key=True)


def flatten(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from flatten(value, prefix + (key,))
        else:
            yield prefix + (key,), value

# ----------------------------------------------------------------------------------------------
# Tokenizer (NHWC, float64)

def conv2d(x, kernel, bias=None):
    """Flax nn.Conv, stride 1, padding SAME: cross-correlation, kernel HWIO."""
    kh, kw, cin, cout = kernel.shape
    n, h, w, c = x.shape
    assert c == cin, (c, cin)
    ph, pw = kh - 1, kw - 1  # SAME: total padding k-1, the smaller half first
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    k = kernel.astype(np.float64)
    y = np.zeros((n, h, w, cout))
    for i in range(kh):
        for j in range(kw):
            y += xp[:, i:i + h, j:j + w, :] @ k[i, j]
    if bias is not None:
        y += bias.astype(np.float64)
    return y


def group_norm(x, p):
    """flax.linen.GroupNorm(num_groups=32, epsilon=1e-6): statistics over H, W and the
    channels of a group; var = E[x^2] - E[x]^2 (clamped at 0)."""
    n, h, w, c = x.shape
    assert c % GROUPS == 0, c
    g = x.reshape(n, h, w, GROUPS, c // GROUPS)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = np.maximum(0.0, (g * g).mean(axis=(1, 2, 4), keepdims=True) - mean * mean)
    g = (g - mean) / np.sqrt(var + GN_EPS)
    return g.reshape(n, h, w, c) * p["scale"].astype(np.float64) + p["bias"].astype(np.float64)


def swish(x):
    return x / (1.0 + np.exp(-x))


def resblock(x, p):
    cin = x.shape[-1]
    h = conv2d(swish(group_norm(x, p["GroupNorm_0"])), p["Conv_0"]["kernel"])
    h = conv2d(swish(group_norm(h, p["GroupNorm_1"])), p["Conv_1"]["kernel"])
    if cin != h.shape[-1]:
        # The release's shortcut: the 1x1 conv of h itself, not of x.
        return h + conv2d(h, p["Conv_2"]["kernel"])
    return x + h


def avg_pool_same(x):
    """TensorFlow-style SAME 2x2/2 average pooling: padding cells are not counted."""
    n, h, w, c = x.shape
    oh, ow = -(-h // 2), -(-w // 2)
    ph, pw = max(0, (oh - 1) * 2 + 2 - h), max(0, (ow - 1) * 2 + 2 - w)
    pad = ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
    s = np.pad(x, pad)
    ones = np.pad(np.ones((1, h, w, 1)), pad)

    def pool(a):
        return a[:, 0::2, 0::2] + a[:, 1::2, 0::2] + a[:, 0::2, 1::2] + a[:, 1::2, 1::2]

    return pool(s) / pool(ones)


def upsample_nearest(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def encoder(x, P, cfg):
    p = P["encoder"]
    L, R = len(cfg["channel_multipliers"]), cfg["num_res_blocks"]
    x = conv2d(x, p["Conv_0"]["kernel"])
    block = 0
    for i in range(L):
        for _ in range(R):
            x = resblock(x, p["ResBlock_%d" % block])
            block += 1
        if i < L - 1:
            x = avg_pool_same(x)
    for _ in range(R):
        x = resblock(x, p["ResBlock_%d" % block])
        block += 1
    x = swish(group_norm(x, p["GroupNorm_0"]))
    return conv2d(x, p["Conv_1"]["kernel"], p["Conv_1"]["bias"])


def decoder(z, P, cfg):
    p = P["decoder"]
    L, R = len(cfg["channel_multipliers"]), cfg["num_res_blocks"]
    x = conv2d(z, p["Conv_0"]["kernel"], p["Conv_0"]["bias"])
    block, nconv = 0, 1
    for _ in range(R):
        x = resblock(x, p["ResBlock_%d" % block])
        block += 1
    for i in reversed(range(L)):
        for _ in range(R):
            x = resblock(x, p["ResBlock_%d" % block])
            block += 1
        if i > 0:
            x = upsample_nearest(x)
            c = p["Conv_%d" % nconv]
            x = conv2d(x, c["kernel"], c["bias"])
            nconv += 1
    x = swish(group_norm(x, p["GroupNorm_0"]))
    c = p["Conv_%d" % nconv]
    return conv2d(x, c["kernel"], c["bias"])


def quantize(z, codebook):
    """Squared Euclidean argmin. Returns ids [N, h, w] and the decision margin per token:
    (second-nearest - nearest distance) / (|z|^2 + |nearest code|^2), a conservative scale for
    float32 error in |z|^2 - 2 z.e + |e|^2."""
    e = codebook.astype(np.float64)
    flat = z.reshape(-1, z.shape[-1])
    dist = ((flat[:, None, :] - e[None, :, :]) ** 2).sum(-1)
    order = np.argsort(dist, axis=1, kind="stable")
    best, second = order[:, 0], order[:, 1]
    rows = np.arange(len(flat))
    scale = (flat ** 2).sum(-1) + (e[best] ** 2).sum(-1)
    margin = (dist[rows, second] - dist[rows, best]) / scale
    return best.reshape(z.shape[:-1]), margin


def decode_ids(ids, P, cfg):
    z = P["quantizer"]["codebook"].astype(np.float64)[ids]  # [N, h, w, D]
    return decoder(z, P, cfg)

# ----------------------------------------------------------------------------------------------
# Transformer (float64)

def layer_norm(x, p):
    mean = x.mean(-1, keepdims=True)
    var = np.maximum(0.0, (x * x).mean(-1, keepdims=True) - mean * mean)
    return (x - mean) / np.sqrt(var + LN_EPS) * p["scale"].astype(np.float64) + p["bias"].astype(np.float64)


def gelu(x):  # jax.nn.gelu's default (approximate=True)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def dense(x, p):
    return x @ p["kernel"].astype(np.float64) + p["bias"].astype(np.float64)


def self_attention(x, p):
    """flax.linen.SelfAttention: DenseGeneral q/k/v to (heads, head_dim) with biases, query
    scaled by 1/sqrt(head_dim), softmax over keys (the all-ones mask changes nothing), output
    DenseGeneral over (heads, head_dim) with a bias."""
    b, l, hidden = x.shape
    n, hd = p["query"]["bias"].shape

    def project(name):  # [B, L, H] -> [B, n, L, hd]
        k = p[name]["kernel"].astype(np.float64).reshape(hidden, n * hd)
        y = x @ k + p[name]["bias"].astype(np.float64).reshape(n * hd)
        return y.reshape(b, l, n, hd).transpose(0, 2, 1, 3)

    q = project("query") / math.sqrt(hd)
    k = project("key")
    v = project("value")
    s = q @ k.transpose(0, 1, 3, 2)
    s = s - s.max(-1, keepdims=True)
    w = np.exp(s)
    w /= w.sum(-1, keepdims=True)
    o = (w @ v).transpose(0, 2, 1, 3).reshape(b, l, n * hd)
    return o @ p["out"]["kernel"].astype(np.float64).reshape(n * hd, hidden) + p["out"]["bias"].astype(np.float64)


def transformer_logits(ids, P, num_layers):
    """ids [B, L] in the release's convention (-1 = mask) -> logits [B, L, V]."""
    emb = P["Embed_0"]
    words = emb["word_embeddings"]["embedding"].astype(np.float64)
    positions = emb["position_embeddings"]["embedding"].astype(np.float64)
    ids = np.asarray(ids)
    assert ids.min() >= -1 and ids.max() < len(words)
    # jnp.take as Flax's nn.Embed does it: the release's mask id -1 wraps to the last row.
    x = np.take(words, ids, axis=0) + positions[None, :ids.shape[1]]
    x = layer_norm(x, emb["embeddings_ln"])
    for i in range(num_layers):
        layer = P["TransformerLayer_%d" % i]
        att = layer["Attention_0"]
        x = layer_norm(self_attention(x, att["self_attention"]) + x, att["attention_output_ln"])
        mlp = layer["Mlp_0"]
        m = dense(gelu(dense(x, mlp["intermediate_output"])), mlp["layer_output"])
        x = layer_norm(m + x, mlp["layer_output_ln"])
    mlm = P["MlmLayer_0"]
    h = layer_norm(gelu(dense(x, mlm["mlm_dense"])), mlm["mlm_ln"])
    return h @ words.T + mlm["mlm_bias"]["bias"].astype(np.float64)

# ----------------------------------------------------------------------------------------------
# The project's counter-based generator (lib/decoding/counter_rng.h), in integer arithmetic

MASK32 = 0xFFFFFFFF


def pcg_hash(x):
    """PCG hash on uint32 words (numpy uint64 arrays holding 32-bit values, or ints)."""
    x = np.asarray(x, dtype=np.uint64) & np.uint64(MASK32)
    state = (x * np.uint64(747796405) + np.uint64(2891336453)) & np.uint64(MASK32)
    word = (((state >> ((state >> np.uint64(28)) + np.uint64(4))) ^ state) * np.uint64(277803737)) & np.uint64(MASK32)
    return (word >> np.uint64(22)) ^ word


def splitmix64(x):
    m = (1 << 64) - 1
    x = (x + 0x9E3779B97F4A7C15) & m
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & m
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & m
    return x ^ (x >> 31)


def counter_uniform(seed, step, stream, count):
    """uniform(0..count-1) of one image's stream (step, stream): float64 values that are exact
    float32 numbers, ((bits >> 9) + 1/2) / 2^23."""
    mixed = splitmix64(int(seed))
    k0, k1 = mixed & MASK32, mixed >> 32
    h = int(pcg_hash(step * 4 + stream))
    a = int(pcg_hash(k0 ^ h))
    c = int(pcg_hash(k1 ^ int(pcg_hash(a))))
    index = np.arange(count, dtype=np.uint64)
    bits = pcg_hash(pcg_hash((np.uint64(a) + index) & np.uint64(MASK32)) ^ np.uint64(c))
    return ((bits >> np.uint64(9)).astype(np.float64) + 0.5) / 8388608.0

# ----------------------------------------------------------------------------------------------
# The release's parallel decode, with the project's random numbers

def cosine_gamma(ratio):
    # In double precision, as docs/decoding.md §2 states the schedule. Note: the release computes
    # it in float32 (JAX without x64): at ratio 8/12 the float32 argument exceeds pi/3 and cos
    # rounds to 0.49999997, so there floor(N0 * gamma) is N0/2 - 1 for even N0 (e.g. 511, not
    # 512, for N = 1024, T = 12); a backend whose cos rounds up gives N0/2. The goldens avoid
    # that case (the edit below has an odd N0; generation uses T = 8).
    return min(1.0, max(1e-6, math.cos(math.pi / 2.0 * ratio)))


def release_mask_len(n0, unknown, step, steps):
    """floor(N0 * gamma((t+1)/T)), clamped to [1, unknown - 1] (parallel_decode.py)."""
    mask_len = math.floor(n0 * cosine_gamma((step + 1) / steps))
    return max(1, min(unknown - 1, mask_len))


def float32_mask_len_agrees(n0, steps, start):
    """Whether the release's float32 schedule arithmetic gives the same counts as ours (see
    cosine_gamma) for a decode of n0 unknown tokens, T = steps, from step `start`."""
    for t in range(start, steps - 1):
        ratio = np.float32(t + 1) / np.float32(steps)
        gamma = np.clip(np.cos(np.float32(math.pi / 2.0) * ratio), np.float32(1e-6), np.float32(1.0))
        if int(np.floor(np.float32(n0) * gamma)) != math.floor(n0 * cosine_gamma((t + 1) / steps)):
            return False
    return True


def schedule_vector(n, steps):
    counts, unknown = [], n
    for t in range(steps):
        unknown = release_mask_len(n, unknown, t, steps)
        counts.append(unknown)
    return counts


def parallel_decode(inputs, seeds, logits_fn, K, steps, start):
    """maskgit/libml/parallel_decode.py's decode for inputs [B, 1+N] (-1 = mask). Sampling is
    the exponential race argmax_k p_k / E_k, E = -log U (stream 0, index n*K + k for image
    position n), the choice noise Gumbel = -log(-log U) (stream 1, index n). Returns the last
    step's sampled ids [B, 1+N], the masks left after each step [T, B, N] and the margins."""
    cur = np.array(inputs, dtype=np.int64)
    B, L = cur.shape
    N = L - 1
    n0 = (cur == -1).sum(1)
    masked_after = np.zeros((steps, B, N), dtype=np.int64)
    race_margins, cut_margins = [], []
    sampled = cur
    for t in range(start, steps):
        logits = logits_fn(cur)[..., :K]  # tokens_to_logits: image codes only
        logits = logits - logits.max(-1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(-1, keepdims=True)
        unknown = cur == -1
        draws = np.zeros_like(cur)
        for b in range(B):
            race = probs[b, 1:] / -np.log(counter_uniform(seeds[b], t, 0, N * K).reshape(N, K))
            draws[b, 1:] = race.argmax(-1)
            top = np.sort(race, axis=-1)[:, -2:]
            rel = (top[:, 1] - top[:, 0]) / top[:, 1]
            race_margins.extend(rel[unknown[b, 1:]].tolist())
        sampled = np.where(unknown, draws, cur)
        if t + 1 == steps:
            break
        ratio = (t + 1) / steps
        conf = np.full(cur.shape, np.inf)
        for b in range(B):
            gumbel = -np.log(-np.log(counter_uniform(seeds[b], t, 1, N)))
            chosen = probs[b, np.arange(1, L), np.clip(sampled[b, 1:], 0, K - 1)]
            if np.any(chosen[unknown[b, 1:]] < 1e-30):
                cut_margins.append(0.0)  # log(max(p, 1e-30)) would differ: not a usable golden
            score = np.log(chosen) + CHOICE_TEMPERATURE * (1.0 - ratio) * gumbel
            conf[b, 1:] = np.where(unknown[b, 1:], score, np.inf)
        for b in range(B):
            mask_len = release_mask_len(n0[b], int(unknown[b].sum()), t, steps)
            ordered = np.sort(conf[b])
            cut_off = ordered[mask_len]
            masking = conf[b] < cut_off
            if np.isfinite(cut_off):  # a decision between two unknown tokens
                lo, hi = ordered[mask_len - 1], ordered[mask_len]
                cut_margins.append((hi - lo) / max(1.0, abs(hi)))
                assert masking.sum() == mask_len
            sampled[b] = np.where(masking, -1, sampled[b])
        cur = sampled
        masked_after[t] = cur[:, 1:] == -1
    return sampled, masked_after, race_margins, cut_margins

# ----------------------------------------------------------------------------------------------
# safetensors

def write_safetensors(path, tensors, metadata):
    """8-byte LE header length, JSON header, contiguous raw data (no gaps)."""
    dtypes = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes("C")
        header[name] = {"dtype": dtypes[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)

# ----------------------------------------------------------------------------------------------

def log(message):
    print(message, flush=True)


def margin_summary(name, values):
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return "%s: no decisions" % name
    return "%s: %d decisions, min %.3e, 1st percentile %.3e" % (
        name, values.size, values.min(), np.percentile(values, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sabotage", default="", help="comma-separated: " + ", ".join(sorted(SABOTAGES)))
    args = parser.parse_args()
    sabotages = [k for k in args.sabotage.split(",") if k]
    for kind in sabotages:
        if kind not in SABOTAGES:
            parser.error("unknown sabotage %r (use %s)" % (kind, ", ".join(sorted(SABOTAGES))))
    v = VARIANTS[args.variant]
    tcfg, xcfg = v["tokenizer"], v["transformer"]
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()
    K = tcfg["codebook_size"]
    C = xcfg["num_classes"]
    V = K + C + 1
    grid = xcfg["grid"]
    N = grid * grid
    factor = 2 ** (len(tcfg["channel_multipliers"]) - 1)

    # The schedule test vectors of docs/decoding.md §10.
    sched = {(256, 8): [251, 236, 212, 181, 142, 97, 49, 1],
             (256, 12): [253, 247, 236, 221, 203, 181, 155, 128, 97, 66, 33, 1],
             (1024, 12): [1015, 989, 946, 886, 812, 724, 623, 512, 391, 265, 133, 1]}
    for (n, steps), expected in sched.items():
        got = schedule_vector(n, steps)
        assert got == expected, (n, steps, got)

    # ---- weights in the release's layout
    rng = np.random.default_rng(WEIGHT_SEED)
    tok_layout = tokenizer_layout(tcfg)
    tf_layout = transformer_layout(xcfg, K)
    tok_flat = draw_weights(tok_layout, rng)
    tf_flat = draw_weights(tf_layout, rng, hidden=xcfg["hidden_size"])
    for name, layout in (("tokenizer", tok_layout), ("transformer", tf_layout)):
        count, params = len(layout), sum(int(np.prod(s)) for _, s, _ in layout)
        log("%s: %d tensors, %d parameters" % (name, count, params))
        if v["totals"] is not None:
            assert (count, params) == v["totals"][name], (name, count, params, v["totals"][name])
    assert len(tok_layout) == 168  # the tokenizer's structure is the official one in both variants

    # Codebook: drawn around the encoder's outputs on a calibration image, so that nearest codes
    # vary across tokens (a codebook far from every latent would map all tokens to one code).
    tok_tree = nest(tok_flat)
    size = v["test_image_size"]
    calibration = rng.random((1, size, size, tcfg["channels"])).astype(np.float32)
    z = encoder(calibration.astype(np.float64), tok_tree, tcfg).reshape(-1, tcfg["embedding_dim"])
    codebook = z.mean(0) + z.std() * rng.standard_normal((K, tcfg["embedding_dim"]))
    tok_flat[("quantizer", "codebook")] = codebook.astype(np.float32)
    tok_tree = nest(tok_flat)
    tf_tree = nest(tf_flat)
    log("weights drawn in %.1f s" % (time.time() - t_start))

    # ---- checkpoints (with the deliberate mistakes asked for; the goldens use the true weights)
    written = dict(tok_flat)
    written.update(tf_flat)
    for kind in sabotages:
        action, path, arg = SABOTAGES[kind]
        if action == "swap":
            written[path], written[arg] = written[arg], written[path]
        else:
            written[path] = written[path].copy()
            written[path].flat[0] += np.float32(arg)
        log("SABOTAGE %s: the checkpoint is wrong on purpose" % kind)
    shuffle = np.random.default_rng(WEIGHT_SEED + 1)
    for name, layout in (("tokenizer", tok_layout), ("transformer", tf_layout)):
        path = os.path.join(args.out, name + "_checkpoint")
        nbytes = write_flax_msgpack(path, nest({p: written[p] for p, _, _ in layout}), shuffle)
        back = dict(flatten(read_flax_msgpack(path)))
        assert set(back) == {("params",) + p for p, _, _ in layout}
        for p, shape, _ in layout:
            assert back[("params",) + p].shape == shape and np.array_equal(back[("params",) + p], written[p])
        log("wrote %s (%d bytes)" % (path, nbytes))
    with open(os.path.join(args.out, "class_names.txt"), "w") as f:
        for c in range(C):
            f.write("class_%d\n" % c)

    golden, margins = {}, {}

    # ---- tokenizer encode: images NCHW in [0, 1] -> ids, re-drawn until every argmin is clear
    nb = v["tokenizer_batch"]
    for attempt in range(MAX_ATTEMPTS):
        irng = np.random.default_rng(1000 + attempt)
        images = irng.random((nb, size, size, tcfg["channels"])).astype(np.float32)
        latents = encoder(images.astype(np.float64), tok_tree, tcfg)
        ids, m = quantize(latents, tok_flat[("quantizer", "codebook")])
        if m.min() >= MIN_MARGIN:
            break
    else:
        sys.exit("no encode input with clear argmin decisions after %d attempts" % MAX_ATTEMPTS)
    margins["encode"] = m
    log("encode: image seed %d, %d distinct codes of %d tokens" % (1000 + attempt, len(np.unique(ids)), ids.size))
    golden["tok_encode_images"] = images.transpose(0, 3, 1, 2).copy()
    golden["tok_encode_ids"] = ids.astype(np.int64)
    # The encoder's output before quantization, so that an encoder error too small to move a
    # nearest code is still seen.
    golden["tok_encode_latents"] = latents.transpose(0, 3, 1, 2).astype(np.float32)

    # ---- tokenizer decode: random ids -> pixels (unclamped)
    drng = np.random.default_rng(2000)
    hw = size // factor
    dec_ids = drng.integers(0, K, size=(nb, hw, hw)).astype(np.int64)
    pixels = decode_ids(dec_ids, tok_tree, tcfg)
    golden["tok_decode_ids"] = dec_ids
    golden["tok_decode_images"] = pixels.transpose(0, 3, 1, 2).astype(np.float32)
    log("decode: pixels in [%.3f, %.3f], std %.3f" % (pixels.min(), pixels.max(), pixels.std()))

    # ---- transformer logits: [class token, ids with -1 for masked]
    lrng = np.random.default_rng(3000)
    lb = v["logits_batch"]
    seq = lrng.integers(0, K, size=(lb, 1 + N)).astype(np.int64)
    seq[:, 1:][lrng.random((lb, N)) < 0.5] = -1
    seq[:, 0] = K + lrng.choice(C, size=lb, replace=False)
    logits = transformer_logits(seq, tf_tree, xcfg["num_layers"])
    golden["tf_logits_ids"] = seq
    golden["tf_logits"] = logits.astype(np.float32)
    log("logits: %s, std %.3f, masked positions %d" % (logits.shape, logits.std(), int((seq == -1).sum())))

    # ---- the counter generator's numbers for a few seeds (compared bit for bit)
    rng_seeds = np.array([0, 1, 123456789, (1 << 63) - 25], dtype=np.int64)
    golden["rng_seeds"] = rng_seeds
    golden["rng_uniform_step3_stream1"] = np.stack(
        [counter_uniform(int(s), 3, 1, 64) for s in rng_seeds]).astype(np.float32)

    # ---- schedule vectors computed by this reference
    for (n, steps), _ in sched.items():
        golden["schedule_cosine_N%d_T%d" % (n, steps)] = np.array(schedule_vector(n, steps), dtype=np.int64)

    metadata = {}
    if v["decode_loop"]:
        def logits_fn(ids):
            return transformer_logits(ids, tf_tree, xcfg["num_layers"])

        def decode_golden(prefix, inputs, first_seeds, steps, start):
            """Decodes image by image, moving to the next seed until every decision is clear."""
            outs, masks, seeds = [], [], []
            race_all, cut_all = [], []
            for b in range(len(inputs)):
                n0 = int((inputs[b] == -1).sum())
                if not float32_mask_len_agrees(n0, steps, start):
                    sys.exit("%s: N0 = %d, T = %d hits a schedule count where the release's float32 arithmetic "
                             "differs from double precision; choose another" % (prefix, n0, steps))
                for attempt in range(MAX_ATTEMPTS):
                    seed = first_seeds[b] + attempt
                    out, masked, race, cut = parallel_decode(inputs[b:b + 1], [seed], logits_fn, K, steps, start)
                    if min(race + cut) >= MIN_MARGIN:
                        break
                else:
                    sys.exit("%s: no seed with clear decisions" % prefix)
                outs.append(out)
                masks.append(masked)
                seeds.append(seed)
                race_all += race
                cut_all += cut
            out = np.concatenate(outs)
            assert (out[:, 1:] >= 0).all() and (out[:, 1:] < K).all()
            golden[prefix + "_input_ids"] = np.asarray(inputs, dtype=np.int64)
            golden[prefix + "_seeds"] = np.array(seeds, dtype=np.int64)
            golden[prefix + "_output_ids"] = out
            golden[prefix + "_masked_after_step"] = np.concatenate(masks, axis=1)
            margins[prefix + " race"] = race_all
            margins[prefix + " cut-off"] = cut_all
            metadata[prefix + "_steps"] = steps
            metadata[prefix + "_start_step"] = start
            log("%s: seeds %s, T=%d from %d, output codes %s" % (prefix, seeds, steps, start,
                                                                   out[:, 1:].tolist()))

        # Generation from all-[MASK], two images with different classes and seeds, T = 8.
        gen = np.full((2, 1 + N), -1, dtype=np.int64)
        gen[:, 0] = [K + 1, K + C - 2]
        decode_golden("gen", gen, [7, 9001], 8, 0)

        # Class-conditional editing: the encoded image 0 with a 3x3 token box masked, a target
        # class, T = 12 from step 2 (the release's box editing).
        edit = np.concatenate([np.array([[K + 4]]), ids[0].reshape(1, -1)], axis=1).astype(np.int64)
        box = np.zeros((grid, grid), dtype=bool)
        box[1:4, 0:3] = True
        edit[0, 1:][box.reshape(-1)] = -1
        edit = np.concatenate([edit, edit])
        edit[1, 0] = K + 6
        decode_golden("edit", edit, [31, 4242], 12, 2)

    # ---- metadata: what the converter must infer
    expected_tokenizer = dict(tcfg, norm_groups=GROUPS, norm_eps=GN_EPS, release_shortcut=True)
    expected_transformer = {"codebook_size": K, "num_classes": C, "grid_height": grid, "grid_width": grid,
                            "hidden_size": xcfg["hidden_size"], "num_layers": xcfg["num_layers"],
                            "num_heads": xcfg["num_heads"], "mlp_dim": xcfg["mlp_dim"], "no_class_token": False}
    metadata.update({
        "variant": args.variant,
        "generator": "tests/reference/maskgit_reference.py",
        "expected_tokenizer": json.dumps(expected_tokenizer),
        "expected_transformer": json.dumps(expected_transformer),
        "image_width": grid * factor, "image_height": grid * factor, "image_channels": tcfg["channels"],
        "num_classes": C, "vocabulary_size": V,
        "choice_temperature": CHOICE_TEMPERATURE,
        "min_margin": MIN_MARGIN,
        "margins": json.dumps({k: float(np.min(m)) for k, m in margins.items() if len(m)}),
    })
    path = os.path.join(args.out, "golden.safetensors")
    write_safetensors(path, golden, metadata)
    for name, values in margins.items():
        log("margin " + margin_summary(name, values))
    log("wrote %s (%d tensors) in %.1f s total" % (path, len(golden), time.time() - t_start))


if __name__ == "__main__":
    main()
