#!/usr/bin/python3
"""Reference encodings of compressed-tensors' sparse formats, for the Go
golden test of model/compressed (testdata/reference/compressed_golden.json).

Re-states, in torch/numpy, the definitions of compressed-tensors 0.14.0
(src/compressed_tensors/compressors/sparse_compressors/sparse_bitmask.py,
sparse_24_bitmask.py and utils/helpers.py; read, not copied):

  sparse-bitmask, weight W (rows x cols):
    bytemasks   = W != 0                      (so -0.0 is dropped)
    compressed  = W[bytemasks]                (1-D, row-major, W's dtype)
    row_offsets = cumsum(bytemasks.sum(-1)) - bytemasks.sum(-1)   (int64)
    bitmask     = numpy.packbits(bytemasks, axis=-1, bitorder="little")  (uint8)
    shape       = torch.tensor([rows, cols])  (int64, shape [2])
  sparse-24-bitmask:
    groups of 4 consecutive elements of W.view(-1, 4); keep the top-2 |W| of
    each (topk(2)); compressed = W[kept].reshape(rows, cols/2);
    bitmask as above; shape = torch.tensor([rows, cols]).reshape(-1, 1)

The test weights are bf16 with exactly 2 non-zeros per group of 4 in the 2:4
case, so topk's order among equal values never matters.

Usage: compressed_ref.py --out testdata/reference/compressed_golden.json
"""

import argparse
import json

import numpy as np
import torch


def bits16(t):
    """bf16 tensor -> list of uint16 bit patterns (row-major)."""
    return t.contiguous().view(torch.int16).flatten().numpy().astype(np.uint16).tolist()


def part(dtype, arr):
    a = np.ascontiguousarray(arr)
    return {"dtype": dtype, "shape": list(a.shape), "hex": a.tobytes().hex()}


def bitmask_parts(w):
    m = w != 0
    counts = m.sum(dim=-1)
    offsets = torch.cumsum(counts, 0) - counts
    return {
        "shape": part("I64", torch.tensor(list(w.shape)).numpy().astype("<i8")),
        "compressed": part("BF16", w[m].view(torch.int16).numpy().astype("<i2")),
        "bitmask": part("U8", np.packbits(m.numpy(), axis=-1, bitorder="little")),
        "row_offsets": part("I64", offsets.numpy().astype("<i8")),
    }


def sparse24_parts(w):
    rows, cols = w.shape
    g = w.float().reshape(-1, 4).abs()
    idx = g.topk(2, dim=1).indices
    keep = torch.zeros_like(g, dtype=torch.bool)
    keep.scatter_(1, idx, True)
    keep = keep.view(rows, cols)
    vals = w[keep].reshape(rows, cols // 2)
    return {
        "shape": part("I64", torch.tensor([rows, cols]).reshape(-1, 1).numpy().astype("<i8")),
        "compressed": part("BF16", vals.view(torch.int16).numpy().astype("<i2")),
        "bitmask": part("U8", np.packbits(keep.numpy(), axis=-1, bitorder="little")),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(7)
    # unstructured: 6 x 20 (the last bitmask byte of a row is padded), ~50% zeros, some -0.0
    u = torch.randn(6, 20, generator=g)
    u[torch.rand(6, 20, generator=g) < 0.5] = 0.0
    u[0, 3], u[5, 19] = -0.0, -0.0
    u = u.to(torch.bfloat16)
    # 2:4: 4 x 16, exactly two non-zeros per group of 4
    s = torch.randn(4, 16, generator=g)
    for r in range(4):
        for c in range(0, 16, 4):
            drop = torch.randperm(4, generator=g)[:2]
            s[r, c + drop] = 0.0
    s = s.to(torch.bfloat16)
    out = {
        "generator": "tools/reference/compressed_ref.py (torch %s, numpy %s)" % (torch.__version__, np.__version__),
        "unstructured": {"rows": 6, "cols": 20, "bf16_bits": bits16(u), "sparse-bitmask": bitmask_parts(u)},
        "two_four": {"rows": 4, "cols": 16, "bf16_bits": bits16(s),
                     "sparse-24-bitmask": sparse24_parts(s), "sparse-bitmask": bitmask_parts(s)},
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
