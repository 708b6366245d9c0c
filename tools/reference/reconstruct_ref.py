#!/usr/bin/python3
"""An independent float64 numpy reference of the OBS reconstruction of a
FIXED mask (extract --reconstruct obs; prune.SparseGPTConfig.Mask), for the
Go golden test prune/reconstruct_test.go.

The mask is given (here: a random unstructured mask, a 2:4 mask from |W|,
and a mask that keeps a dead input); nothing is selected. Each row is swept
column by column, as SparseGPT does for its own mask, but written from the
textbook Optimal Brain Surgeon step rather than from SparseGPT's Cholesky
factor: at column i the still adjustable weights are S = {i, ..., in-1};
with Sinv = inv(H[S, S]) formed explicitly by numpy.linalg.inv, a pruned
w_i is removed and compensated over S by

    w[S] -= w_i / Sinv[0, 0] * Sinv[0, :],   loss += w_i^2 / Sinv[0, 0] / 2,

and kept weights are left as they are (they are frozen once passed). No
blocks, no lazy updates, no Cholesky: only the mathematics is shared with
the Go code (which uses the upper Cholesky factor U of H^-1, for which
U[i,i]*U[i,i:] is row 0 of inv(H[i:, i:])).

Hessian as SparseGPT's add_batch (H <- H n/(n+s); n += s; x <- sqrt(2/n) x;
H += x^T x); dead inputs (diag 0): H_dd = 1 and W[:, d] = 0; dampening
0.01 * mean(diag H) on the diagonal. Inputs and weights are drawn from
numpy's legacy RandomState (stable across versions) and rounded to float32,
the precision the Go API takes.

Usage: /usr/bin/python3 tools/reference/reconstruct_ref.py [OUT.json]
(default prune/testdata/reconstruct/case1.json). Needs numpy.
"""

import json
import math
import sys

import numpy as np

SEED = 20261202
OUT, IN, SEQLEN = 10, 36, 12
BATCHES = [3, 1, 2]
PERCDAMP = 0.01
DEAD = 7
BLOCK = 16  # for the Go side: 36 = 16 + 16 + 4 exercises the deferred updates


def make_problem(rng):
    mix = rng.randn(IN, IN) / math.sqrt(IN) + 0.5 * np.eye(IN)
    scale = np.exp(0.5 * rng.randn(IN))
    batches = []
    for s in BATCHES:
        x = (rng.randn(s * SEQLEN, IN) @ mix) * scale
        x[:, DEAD] = 0.0
        batches.append((s, x.astype(np.float32).astype(np.float64)))
    w = (0.1 * rng.randn(OUT, IN)).astype(np.float32).astype(np.float64)
    return batches, w


def hessian(batches):
    h = np.zeros((IN, IN))
    n = 0
    for s, x in batches:
        h *= n / (n + s)
        n += s
        xs = math.sqrt(2 / n) * x
        h += xs.T @ xs
    return h


def reconstruct(w, h, keep):
    w = w.copy()
    h = h.copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h[np.arange(IN), np.arange(IN)] += PERCDAMP * np.mean(np.diag(h))
    loss = 0.0
    for i in range(IN):
        sinv = np.linalg.inv(h[i:, i:])
        for r in range(OUT):
            if keep[r, i]:
                continue
            wi = w[r, i]
            loss += wi * wi / sinv[0, 0] / 2
            w[r, i:] -= wi / sinv[0, 0] * sinv[0, :]
            w[r, i] = 0.0
    return w, loss


def masks(rng, w):
    rand = rng.rand(OUT, IN) >= 0.6  # keeps about 40%
    nm = np.ones((OUT, IN), dtype=bool)
    for r in range(OUT):
        for g in range(0, IN, 4):
            order = sorted(range(4), key=lambda j: (abs(w[r, g + j]), j))
            for j in order[:2]:
                nm[r, g + j] = False
    keepdead = rand.copy()
    keepdead[:, DEAD] = True
    return [("random60", rand), ("nm24", nm), ("keepdead", keepdead)]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "prune/testdata/reconstruct/case1.json"
    rng = np.random.RandomState(SEED)
    batches, w = make_problem(rng)
    h = hessian(batches)
    doc = {
        "generator": "tools/reference/reconstruct_ref.py",
        "seed": SEED, "out": OUT, "in": IN, "blocksize": BLOCK, "percdamp": PERCDAMP, "dead": DEAD,
        "batches": [{"samples": s, "rows": x.shape[0], "x": x.flatten().tolist()} for s, x in batches],
        "w": w.flatten().tolist(),
        "hessian": h.flatten().tolist(),
        "cases": [],
    }
    for name, keep in masks(rng, w):
        wr, loss = reconstruct(w, h, keep)
        doc["cases"].append({"name": name, "keep": [int(k) for k in keep.flatten()],
                             "w": wr.flatten().tolist(), "loss": loss})
    with open(path, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
