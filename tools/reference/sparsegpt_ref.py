#!/usr/bin/python3
"""An independent float64 PyTorch reference of SparseGPT for the Go golden test.

Written from the published algorithm (Frantar & Alistarh, 2023, "SparseGPT:
Massive Language Models Can Be Accurately Pruned in One-Shot", Algorithm 1 and
the fasterprune procedure), in float64, with the one change unipruning makes
to the mask selection (exact counts, see prune/sparsegpt.go):

  Hessian   H <- H * n/(n+s); n += s; x <- sqrt(2/n) x; H += x^T x
            (per batch of s calibration windows; rows of x are tokens)
  inverse   dead = diag(H) == 0: H_dd = 1, W[:, dead] = 0;
            H += 0.01 * mean(diag H) * I;
            Hinv = upper Cholesky factor of H^-1, H^-1 formed through
            cholesky / cholesky_inverse as in the paper's code
            (the Go side uses a different but equivalent route).
  sweep     blocks of B columns; in each block, column by column:
            q = w with pruned entries 0, err = (w - q) / Hinv_ii,
            W[:, i:i2] -= err Hinv[i, i:i2]; after the block
            W[:, i2:] -= Err Hinv[i1:i2, i2:]; loss += sum (w-q)^2/Hinv_ii^2 / 2.
  masks     unstructured: a matrix prunes exactly round(out*in*p) weights
            (half away from zero); blocks get floor(total*width/in) plus one
            more for the largest remainders (ties to the lower block); a block
            prunes its quota of lowest (w^2/Hinv_jj^2, flat index) pairs,
            scored at the start of the block.
            N:M (keep N of M): at the first column of each group (groups
            aligned to the matrix, B a multiple of M), each row prunes the
            M-N lowest (score, column) of the group, on the current weights.

The problem (weights, inputs with one all-zero "dead" input column, three
batches of different window counts) is generated from a fixed seed with
numpy's legacy RandomState (stable across numpy versions) and rounded to
float32, the precision the Go API takes. The JSON holds the inputs, the
Hessian and, per case, the pruned float64 weights, the keep-mask and the loss.

Usage: /usr/bin/python3 tools/reference/sparsegpt_ref.py [OUT.json]
(default prune/testdata/sparsegpt/case1.json). Needs torch and numpy; Debian's
/usr/bin/python3 has both.
"""

import json
import math
import sys

import numpy as np
import torch

SEED = 20250517
OUT, IN, SEQLEN = 12, 40, 16
BATCHES = [2, 1, 3]  # calibration windows per add_batch call
BLOCK = 16  # 40 = 16 + 16 + 8: unequal blocks exercise the quota split
PERCDAMP = 0.01
DEAD = 5  # this input channel is zero in every token
CASES = [
    ("unstructured50", 0.5, 0, 0),
    ("unstructured30", 0.3, 0, 0),
    ("nm24", 0.0, 2, 4),
]


def make_problem(seed):
    """Correlated inputs X = Z A with per-channel scales, and weights."""
    rng = np.random.RandomState(seed)
    mix = rng.randn(IN, IN) / math.sqrt(IN) + 0.5 * np.eye(IN)
    scale = np.exp(0.5 * rng.randn(IN))
    batches = []
    for s in BATCHES:
        z = rng.randn(s * SEQLEN, IN)
        x = (z @ mix) * scale
        x[:, DEAD] = 0.0
        batches.append((s, x.astype(np.float32).astype(np.float64)))
    w = (0.1 * rng.randn(OUT, IN)).astype(np.float32).astype(np.float64)
    return batches, w


def hessian(batches):
    h = torch.zeros((IN, IN), dtype=torch.float64)
    n = 0
    for s, x in batches:
        h *= n / (n + s)
        n += s
        xs = math.sqrt(2 / n) * torch.from_numpy(x).t()
        h += xs.matmul(xs.t())
    return h


def inverse_factor(h, w):
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    damp = PERCDAMP * torch.mean(torch.diag(h))
    idx = torch.arange(IN)
    h[idx, idx] += damp
    l = torch.linalg.cholesky(h)
    hinv = torch.cholesky_inverse(l)
    return torch.linalg.cholesky(hinv, upper=True)


def block_quotas(total, cols, bs):
    widths = [min(bs, cols - i) for i in range(0, cols, bs)]
    q = [total * wd // cols for wd in widths]
    rem = [total * wd % cols for wd in widths]
    left = total - sum(q)
    order = sorted(range(len(widths)), key=lambda b: (-rem[b], b))
    for b in order[:left]:
        q[b] += 1
    return q


def lowest(values, k):
    """Positions of the k lowest (value, position) pairs."""
    return sorted(range(len(values)), key=lambda j: (values[j], j))[:k]


def sparsegpt(w, hinv, sparsity, keep_n, m, bs):
    rows, cols = w.shape
    w = w.clone()
    pruned = torch.zeros_like(w, dtype=torch.bool)
    if m:
        bs = max(bs - bs % m, m)
    else:
        total = int(math.floor(rows * cols * sparsity + 0.5))
        quotas = block_quotas(total, cols, bs)
    losses = torch.zeros(rows, dtype=torch.float64)
    for b, i1 in enumerate(range(0, cols, bs)):
        i2 = min(i1 + bs, cols)
        count = i2 - i1
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        loss1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        d1 = torch.diag(hinv1)
        mask1 = torch.zeros_like(w1, dtype=torch.bool)
        if not m:
            score = (w1 ** 2 / d1.reshape(1, -1) ** 2).flatten().tolist()
            mask1.view(-1)[lowest(score, quotas[b])] = True
        for i in range(count):
            if m and i % m == 0:
                score = w1[:, i:i + m] ** 2 / d1[i:i + m].reshape(1, -1) ** 2
                for r in range(rows):
                    for j in lowest(score[r].tolist(), m - keep_n):
                        mask1[r, i + j] = True
            col = w1[:, i]
            d = hinv1[i, i]
            q = col.clone()
            q[mask1[:, i]] = 0
            q1[:, i] = q
            loss1[:, i] = (col - q) ** 2 / d ** 2
            err = (col - q) / d
            w1[:, i:] -= err.unsqueeze(1).matmul(hinv1[i, i:].unsqueeze(0))
            err1[:, i] = err
        w[:, i1:i2] = q1
        pruned[:, i1:i2] = mask1
        losses += torch.sum(loss1, 1) / 2
        w[:, i2:] -= err1.matmul(hinv[i1:i2, i2:])
    return w, ~pruned, float(torch.sum(losses))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "prune/testdata/sparsegpt/case1.json"
    batches, w_np = make_problem(SEED)
    h = hessian(batches)
    doc = {
        "generator": "tools/reference/sparsegpt_ref.py",
        "seed": SEED,
        "out": OUT,
        "in": IN,
        "seqlen": SEQLEN,
        "blocksize": BLOCK,
        "percdamp": PERCDAMP,
        "dead": DEAD,
        "batches": [{"samples": s, "rows": x.shape[0], "x": x.flatten().tolist()} for s, x in batches],
        "w": w_np.flatten().tolist(),
        "hessian": h.flatten().tolist(),
        "cases": [],
    }
    for name, p, n, m in CASES:
        w = torch.from_numpy(w_np.copy())
        hinv = inverse_factor(h, w)
        wp, keep, loss = sparsegpt(w, hinv, p, n, m, BLOCK)
        doc["cases"].append({
            "name": name, "sparsity": p, "n": n, "m": m,
            "w": wp.flatten().tolist(),
            "keep": [int(k) for k in keep.flatten().tolist()],
            "loss": loss,
        })
    with open(path, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
