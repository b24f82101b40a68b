#!/usr/bin/env python3
"""Compares the tensors of two safetensors files (the same names, shapes and dtypes).

Usage: compare_safetensors.py A B [--rtol R] [--atol T]
Exit 0 when every float tensor of A is within atol + rtol·|B| of B's, elementwise, and every
integer tensor is equal; exit 1 otherwise, naming the tensors and their largest difference.
Reads the format itself (8-byte header length, JSON header, raw little-endian data) with numpy,
so that it checks the project's writer independently.
"""
import argparse
import json
import struct
import sys

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] == "BF16":  # widen: the top 16 bits of a float32
            raw = np.frombuffer(body[entry["data_offsets"][0]:entry["data_offsets"][1]], dtype=np.uint16)
            value = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            begin, end = entry["data_offsets"]
            value = np.frombuffer(body[begin:end], dtype=DTYPES[entry["dtype"]])
        tensors[name] = value.reshape(entry["shape"])
    return tensors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args()
    a, b = read(args.a), read(args.b)
    problems = []
    if sorted(a) != sorted(b):
        problems.append(f"different tensor names: {sorted(set(a) ^ set(b))[:5]}")
    worst = 0.0
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if x.shape != y.shape or x.dtype != y.dtype:
            problems.append(f"{name}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
            continue
        if np.issubdtype(x.dtype, np.floating):
            x64, y64 = x.astype(np.float64), y.astype(np.float64)
            excess = np.abs(x64 - y64) - (args.atol + args.rtol * np.abs(y64))
            worst = max(worst, float(np.max(np.abs(x64 - y64), initial=0.0)))
            if not np.all(np.isfinite(x64)) or not np.all(np.isfinite(y64)) or np.any(excess > 0):
                problems.append(f"{name}: largest difference {np.max(np.abs(x64 - y64)):.3g}")
        elif not np.array_equal(x, y):
            problems.append(f"{name}: integer values differ")
    for problem in problems[:20]:
        print(f"{args.a} vs {args.b}: {problem}")
    print(f"compared {len(a)} tensors; largest float difference {worst:.3g}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
