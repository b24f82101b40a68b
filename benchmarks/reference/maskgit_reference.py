#!/usr/bin/env python3
"""PyTorch eager reference of maskgit-cpp's transformer and decoding loop, for benchmarks.

The same post-LayerNorm bidirectional transformer (the release's BERT layers, tanh-GELU,
tied input/output embedding plus an MLM bias, LayerNorm eps 1e-12) and the same
confidence-based parallel decoding loop (categorical sampling by the Gumbel-max trick, log p of
the sample plus annealed Gumbel noise as the keep score, the release's cosine re-mask counts
and `confidence < sorted[mask_len]` cut-off), written the plain way a PyTorch user would:
batched tensor ops, one forward per step, no compilation. scripts/benchmark.sh times it beside
bench_generation in the same run; nothing else depends on it. Weights are random (or read from
a maskgit-cpp model directory's transformer.safetensors, with Python's json + numpy only).

Prints one JSON line per (batch size): config, device, dtype, batch, steps, ms_per_step,
images_per_second.
"""
import argparse
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    # google-research/maskgit's ImageNet transformer: 24 layers, 768 hidden, 16 heads, MLP 3072,
    # 1024 codes + 1000 classes + [MASK]; 16x16 tokens at 256x256, 32x32 at 512x512.
    "official256": dict(codebook_size=1024, num_classes=1000, grid=16, hidden=768, layers=24, heads=16,
                        mlp=3072, no_class_token=False, steps=8),
    "official512": dict(codebook_size=1024, num_classes=1000, grid=32, hidden=768, layers=24, heads=16,
                        mlp=3072, no_class_token=False, steps=12),
}


class Layer(nn.Module):
    def __init__(self, hidden, heads, mlp):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(hidden, hidden) for _ in range(4))
        self.attention_ln = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, mlp)
        self.output = nn.Linear(mlp, hidden)
        self.output_ln = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x):
        b, n, h = x.shape
        split = lambda t: t.view(b, n, self.heads, h // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if hasattr(F, "scaled_dot_product_attention"):
            a = F.scaled_dot_product_attention(q, k, v)
        else:
            a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(h // self.heads), -1) @ v
        x = self.attention_ln(x + self.out(a.transpose(1, 2).reshape(b, n, h)))
        return self.output_ln(x + self.output(F.gelu(self.intermediate(x), approximate="tanh")))


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.vocabulary = c["codebook_size"] + c["num_classes"] + (1 if c["no_class_token"] else 0) + 1
        self.length = 1 + c["grid"] ** 2
        self.word = nn.Embedding(self.vocabulary, c["hidden"])
        self.position = nn.Embedding(self.length, c["hidden"])
        self.embed_ln = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.layers = nn.ModuleList(Layer(c["hidden"], c["heads"], c["mlp"]) for _ in range(c["layers"]))
        self.mlm_dense = nn.Linear(c["hidden"], c["hidden"])
        self.mlm_ln = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.mlm_bias = nn.Parameter(torch.zeros(self.vocabulary))

    def forward(self, ids):
        x = self.embed_ln(self.word(ids) + self.position.weight[: ids.shape[1]])
        for layer in self.layers:
            x = layer(x)
        x = self.mlm_ln(F.gelu(self.mlm_dense(x), approximate="tanh"))
        return x @ self.word.weight.t() + self.mlm_bias


def load_model_dir(directory):
    """Config and weights of a maskgit-cpp model directory (safetensors read with numpy)."""
    with open(os.path.join(directory, "config.json")) as f:
        t = json.load(f)["transformer"]
    c = dict(codebook_size=t["codebook_size"], num_classes=t["num_classes"], grid=t["grid_height"],
             hidden=t["hidden_size"], layers=t["num_layers"], heads=t["num_heads"], mlp=t["mlp_dim"],
             no_class_token=t["no_class_token"], steps=8)
    with open(os.path.join(directory, "transformer.safetensors"), "rb") as f:
        blob = f.read()
    (header_size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_size])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        data = np.frombuffer(blob, dtype="<f4", count=(end - begin) // 4, offset=8 + header_size + begin)
        tensors[name] = torch.from_numpy(data.reshape(info["shape"]).copy())
    rename = {"Embed_0.word_embeddings.weight": "word.weight", "Embed_0.position_embeddings.weight": "position.weight",
              "Embed_0.embeddings_ln.weight": "embed_ln.weight", "Embed_0.embeddings_ln.bias": "embed_ln.bias",
              "MlmLayer_0.mlm_dense.weight": "mlm_dense.weight", "MlmLayer_0.mlm_dense.bias": "mlm_dense.bias",
              "MlmLayer_0.mlm_ln.weight": "mlm_ln.weight", "MlmLayer_0.mlm_ln.bias": "mlm_ln.bias",
              "MlmLayer_0.mlm_bias": "mlm_bias"}
    state = {}
    for name, value in tensors.items():
        if name in rename:
            state[rename[name]] = value
            continue
        parts = name.split(".")  # TransformerLayer_3.Attention_0.self_attention.query.weight
        leaf = {"attention_output_ln": "attention_ln", "intermediate_output": "intermediate",
                "layer_output": "output", "layer_output_ln": "output_ln"}.get(parts[-2], parts[-2])
        state[f"layers.{int(parts[0].split('_')[1])}.{leaf}.{parts[-1]}"] = value
    return c, state


def cosine_counts(tokens, steps):
    """Tokens left masked after each step: floor(N cos(pi/2 (t+1)/T)) clamped to [1, unknown-1]."""
    counts, unknown = [], tokens
    for t in range(steps):
        masked = math.floor(tokens * max(1e-6, math.cos(math.pi / 2 * (t + 1) / steps)))
        unknown = max(1, min(unknown - 1, masked))
        counts.append(unknown)
    return counts


@torch.inference_mode()
def decode(model, batch, steps, device, generator, choice_temperature=4.5):
    c = model.c
    tokens, codes = c["grid"] ** 2, c["codebook_size"]
    mask_id = model.vocabulary - 1
    ids = torch.full((batch, tokens), mask_id, dtype=torch.long, device=device)
    classes = (torch.arange(batch, device=device) % c["num_classes"]) + codes
    counts = cosine_counts(tokens, steps)
    for t in range(steps):
        logits = model(torch.cat([classes[:, None], ids], 1))[:, 1:, :codes].float()
        unknown = ids == mask_id
        gumbel = -torch.log(-torch.log(torch.rand(logits.shape, device=device, generator=generator).clamp_(1e-20, 1)))
        sampled = torch.where(unknown, (logits + gumbel).argmax(-1), ids)
        if t == steps - 1:
            return sampled
        log_p = torch.log_softmax(logits, -1).gather(-1, sampled[..., None])[..., 0]
        noise = -torch.log(-torch.log(torch.rand(log_p.shape, device=device, generator=generator).clamp_(1e-20, 1)))
        confidence = torch.where(unknown, log_p + choice_temperature * (1 - (t + 1) / steps) * noise, math.inf)
        cut_off = confidence.sort(-1).values[:, counts[t] : counts[t] + 1]
        ids = torch.where(confidence < cut_off, mask_id, sampled)
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="official256", help="official256, official512 or a model directory")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--steps", type=int, default=0, help="decoding steps (default: the config's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: as many as CPUs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    if args.config in CONFIGS:
        c, state = dict(CONFIGS[args.config]), None
    else:
        c, state = load_model_dir(args.config)
    model = Transformer(c)
    if state is not None:
        model.load_state_dict(state)
    model.eval().to(args.device, torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    steps = args.steps or c["steps"]
    generator = torch.Generator(device=args.device)
    generator.manual_seed(0)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for batch in args.batch:
        decode(model, batch, steps, args.device, generator)  # warm-up
        sync()
        start = time.perf_counter()
        for _ in range(args.repeats):
            decode(model, batch, steps, args.device, generator)
        sync()
        seconds = (time.perf_counter() - start) / args.repeats
        print(json.dumps(dict(implementation="pytorch-eager", torch=torch.__version__, config=args.config,
                              device=args.device, dtype=args.dtype, batch=batch, steps=steps,
                              ms_per_step=1000 * seconds / steps, images_per_second=batch / seconds)), flush=True)


if __name__ == "__main__":
    main()
