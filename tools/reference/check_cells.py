#!/usr/bin/python3
"""Independent re-computation of cells of the pruning results table
(docs/results.md) for stories260K, written against DESIGN §2.2, §2.5, §2.6.

For one cell (method + target) it
  1. reads the calibration windows that `unipruning prune --dump-calib` wrote
     (token ids; the sampler itself is not re-implemented, but every window is
     checked to be a contiguous slice of the `lines` stream of the calibration
     file, built by llama2c_tokenizer.lines_stream);
  2. prunes the dense .bin with the sequential layer-wise protocol of DESIGN
     §2.5, written here from the description (not from the Go code):
       h = embed[windows]            all 128 windows, one layer at a time
       layer l, weights dense:
         n   = RMSNorm(h; rms_att)                -> inputs of wq, wk, wv
         o   = Attn(RoPE(wq n), RoPE(wk n), wv n) -> input of wo
         h2  = h + wo o
         m   = RMSNorm(h2; rms_ffn)               -> inputs of w1, w3
         g   = silu(w1 m) * (w3 m)                -> input of w2
       per target: Σ over all tokens of x_j² (float64 sums), or for sparsegpt
       the Hessian H = 2 XᵀX / nsamples (float64);
       prune the 7 matrices; then recompute layer l's output with the pruned
       weights and feed it to layer l+1.
     Methods:
       wanda      S_ij = |W_ij|·sqrt(Σ x_j²); per output row, prune the
                  in − round_half_even(in·(1−p)) lowest (ties: lower column first)
       magnitude  S_ij = |W_ij|; N:M: in every row, every group of M consecutive
                  inputs keeps its N largest (ties: lower column pruned first);
                  no calibration needed (masks do not depend on the inputs)
       sparsegpt  tools/reference/sparsegpt_ref.py's float64 `sparsegpt` sweep
                  (damp 0.01·mean diag H, dead inputs zeroed, blocks of 128,
                  exact per-matrix count), with the inverse factor computed below
     Attention, MLP, RMSNorm and RoPE come from tools/reference/llama_ref.py
     (the attention input of wo and the MLP input of w2 are obtained by calling
     its attention / mlp with wo resp. w2 replaced by an identity matrix, which
     returns the pre-projection activations exactly).
     The forward runs in --dtype (float64 by default; float32 also possible).
  3. compares the masks with the tool's pruned model (--ours DIR/stories260K.bin;
     an entry is pruned iff it is exactly 0 there; the dense model has no exact
     zeros, which is checked), per matrix and overall; for wanda and magnitude the
     disagreements are explained by the float64 score margin;
  3b. optional: --also-float32 re-prunes with a float32 forward; --variants
     re-prunes with deliberately wrong protocols (statistics from the dense
     model, "true sequential" inside a layer, 255 instead of 256 tokens per
     window) to show that the mask comparison can tell protocols apart;
  4. evaluates the perplexity (DESIGN §2.6 `lines`, seqlen 256, all 1503
     windows of the validation head, float64 forward of llama_ref, as
     make_goldens.py) of (a) the reference's own pruned model and (b) the
     tool's pruned file, and compares both with the ppl in the tool's report
     (--report, the `--json` output of `unipruning prune`).

Usage (from the repo root, Debian's python with torch 1.13):
  /usr/bin/python3 tools/reference/check_cells.py --cell wanda50 \
      --calib /tmp/calib-wanda50.json --ours /tmp/cell-wanda50 --report /tmp/cell-wanda50.json
  cells: wanda50 (wanda, 50% unstructured, per row), mag24 (magnitude 2:4),
         sgpt50 (sparsegpt, 50% unstructured)
Writes a JSON summary to --json-out (default /tmp/check-<cell>.json).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from llama2c_tokenizer import Llama2cTokenizer, lines_stream  # noqa: E402
from llama_ref import TARGETS, Llama, read_llama2c_bin  # noqa: E402
from make_goldens import ppl_lines  # noqa: E402  (definitions only; no side effects)
import sparsegpt_ref  # noqa: E402

MODEL_BIN = "models/stories260K/stories260K.bin"
TOKENIZER = "models/stories260K/tok512.bin"
VALID = "text/tinystories/TinyStories-validation-head-794K.txt"
TRAIN = "text/tinystories/TinyStories-train-head-944K.txt"
SEQLEN = 256
CALIB_BATCH = 16  # windows per forward during calibration (does not change results beyond rounding)

CELLS = {
    "wanda50": {"method": "wanda", "sparsity": 0.5},
    "mag24": {"method": "magnitude", "n": 2, "m": 4},
    "sgpt50": {"method": "sparsegpt", "sparsity": 0.5},
}
HF = {"wq": "q_proj", "wk": "k_proj", "wv": "v_proj", "wo": "o_proj",
      "w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def data_dir(arg):
    if arg:
        return arg
    if os.environ.get("UNIPRUNING_DATA"):
        return os.environ["UNIPRUNING_DATA"]
    return os.path.abspath(os.path.join(HERE, "..", "..", "..", "shared", "data"))


# ----------------------------------------------------------------------------
# masks


def prune_count(n, p):
    """Number pruned of n at sparsity p: n − round_half_even(n·(1−p))."""
    return n - int(round(n * (1.0 - p)))  # Python round() is half-to-even


def lowest_per_row(scores, k):
    """bool (out, in), True = pruned: the k lowest of every row, ties by
    ascending column (stable sort)."""
    out, cols = scores.shape
    order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    pruned = np.zeros((out, cols), dtype=bool)
    np.put_along_axis(pruned, order, True, axis=1)
    return pruned


def nm_mask(scores, n, m):
    """bool (out, in), True = pruned: in each row and group of m consecutive
    columns, the m−n lowest (ties: lower column first)."""
    out, cols = scores.shape
    assert cols % m == 0, (cols, m)
    g = scores.reshape(out, cols // m, m)
    order = np.argsort(g, axis=2, kind="stable")[:, :, :m - n]
    pruned = np.zeros_like(g, dtype=bool)
    np.put_along_axis(pruned, order, True, axis=2)
    return pruned.reshape(out, cols)


def inverse_factor(h, w):
    """sparsegpt_ref.inverse_factor for any width (that one indexes with its
    module constant IN): dead inputs, dampening, upper Cholesky of H^-1."""
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    idx = torch.arange(h.shape[0])
    h[idx, idx] += sparsegpt_ref.PERCDAMP * torch.mean(torch.diag(h))
    l = torch.linalg.cholesky(h)
    hinv = torch.cholesky_inverse(l)
    return torch.linalg.cholesky(hinv, upper=True), int(dead.sum())


# ----------------------------------------------------------------------------
# sequential layer-wise pruning (DESIGN §2.5)


STAGES = (("wq", "wk", "wv"), ("wo",), ("w1", "w3"), ("w2",))
VARIANTS = ("sequential", "dense-inputs", "true-sequential", "drop-last-token")


def prune_sequential(cfg, dense, windows, cell, dtype, variant="sequential"):
    """Returns (pruned weights {(l, name): float32 array}, masks {(l, name):
    bool array, True = pruned}, info, float64 scores {(l, name)} for wanda /
    magnitude).

    variant "sequential" is DESIGN §2.5 (the protocol under test). The others
    are deliberate deviations, used only to show that the mask comparison can
    tell protocols apart:
      dense-inputs     statistics of every layer from the DENSE model (layer
                       outputs recomputed with the dense weights);
      true-sequential  inside a layer, wo / w1,w3 / w2 statistics taken after
                       the preceding matrices of the same layer are pruned;
      drop-last-token  statistics over the first 255 tokens of every window.
    """
    assert variant in VARIANTS
    method = cell["method"]
    model = Llama(cfg, dense, dtype)
    D, Hd = cfg.dim, cfg.hidden_dim
    eye_d = torch.eye(D, dtype=dtype)
    eye_h = torch.eye(Hd, dtype=dtype)
    ids = torch.tensor(windows, dtype=torch.long)
    nsamples = ids.shape[0]
    ntok = ids.shape[1] - 1 if variant == "drop-last-token" else ids.shape[1]
    h = model.embed[ids]  # (N, T, D)
    weights, masks, info = {}, {}, {"dead_inputs": 0, "sparsegpt_loss": {}}
    scores_of = {}  # (l, name) -> float64 scores (wanda, magnitude)
    in_of = {"wq": D, "wk": D, "wv": D, "wo": D, "w1": D, "w3": D, "w2": Hd}

    def collect(L, want):
        """Statistics of the inputs of the targets in `want`, layer weights L."""
        acc = {t: (torch.zeros(in_of[t], in_of[t], dtype=torch.float64) if method == "sparsegpt"
                   else torch.zeros(in_of[t], dtype=torch.float64)) for t in want}
        La = dict(L, wo=eye_d)
        Lm = dict(L, w2=eye_h)
        with torch.no_grad():
            for b in range(0, nsamples, CALIB_BATCH):
                hb = h[b:b + CALIB_BATCH]
                n1 = model.rmsnorm(hb, L["rms_att"])
                o = model.attention(n1, La)        # = attention output before wo
                h2 = hb + o @ L["wo"].t()
                m = model.rmsnorm(h2, L["rms_ffn"])
                g = model.mlp(m, Lm)                # = silu(w1 m) * (w3 m)
                for ts, x in zip(STAGES, (n1, o, m, g)):
                    if not any(t in want for t in ts):
                        continue
                    x = x[:, :ntok].reshape(-1, x.shape[-1]).to(torch.float64)
                    st = (x.t() @ x) if method == "sparsegpt" else x.pow(2).sum(0)
                    for t in ts:
                        acc[t] += st
        return acc

    def prune_one(l, t, L, acc):
        W = dense[(l, t)]  # float32 numpy, out x in
        if method == "wanda":
            xnorm = np.sqrt(acc[t].numpy())
            scores = np.abs(W.astype(np.float64)) * xnorm[None, :]
            pruned = lowest_per_row(scores, prune_count(W.shape[1], cell["sparsity"]))
            scores_of[(l, t)] = scores
            newW = np.where(pruned, np.float32(0), W).astype(np.float32)
        elif method == "magnitude":
            scores_of[(l, t)] = np.abs(W.astype(np.float64))
            pruned = nm_mask(scores_of[(l, t)], cell["n"], cell["m"])
            newW = np.where(pruned, np.float32(0), W).astype(np.float32)
        elif method == "sparsegpt":
            H = acc[t] * (2.0 / nsamples)
            w64 = torch.from_numpy(W.astype(np.float64))
            hinv, dead = inverse_factor(H, w64)
            info["dead_inputs"] += dead
            wp, keep, loss = sparsegpt_ref.sparsegpt(w64, hinv, cell["sparsity"], 0, 0, 128)
            info["sparsegpt_loss"]["%d.%s" % (l, t)] = loss
            pruned = ~keep.numpy()
            newW = wp.numpy().astype(np.float32)  # the model file is float32
            newW[pruned] = 0
        else:
            raise ValueError(method)
        weights[(l, t)] = newW
        masks[(l, t)] = pruned
        L[t] = torch.tensor(newW.astype(np.float64), dtype=dtype)

    for l, L in enumerate(model.layers):
        L_dense = dict(L)
        if method == "magnitude":
            for t in TARGETS:
                prune_one(l, t, L, None)
        elif variant == "true-sequential":
            for ts in STAGES:
                acc = collect(L, ts)
                for t in ts:
                    prune_one(l, t, L, acc)
        else:
            acc = collect(L, TARGETS)  # the whole layer dense
            for t in TARGETS:
                prune_one(l, t, L, acc)
        # layer l's outputs, with the pruned weights (dense for "dense-inputs")
        Lf = L_dense if variant == "dense-inputs" else L
        with torch.no_grad():
            outs = []
            for b in range(0, nsamples, CALIB_BATCH):
                hb = h[b:b + CALIB_BATCH]
                hb = hb + model.attention(model.rmsnorm(hb, Lf["rms_att"]), Lf)
                hb = hb + model.mlp(model.rmsnorm(hb, Lf["rms_ffn"]), Lf)
                outs.append(hb)
            h = torch.cat(outs, 0)
    return weights, masks, info, scores_of


# ----------------------------------------------------------------------------
# comparison


def compare_masks(cfg, mine, ours_w):
    rows = []
    tot_agree = tot_n = tot_mine = tot_ours = 0
    for l in range(cfg.n_layers):
        for t in TARGETS:
            a = mine[(l, t)]
            b = ours_w[(l, t)] == 0
            agree = int((a == b).sum())
            n = a.size
            rows.append({"matrix": "%d.%s" % (l, HF[t]), "shape": list(a.shape), "agree": agree, "n": n,
                         "pruned_ref": int(a.sum()), "pruned_ours": int(b.sum()),
                         "rows_differing": int((a != b).any(1).sum())})
            tot_agree += agree
            tot_n += n
            tot_mine += int(a.sum())
            tot_ours += int(b.sum())
    return {"per_matrix": rows, "agree": tot_agree, "n": tot_n, "fraction": tot_agree / tot_n,
            "pruned_ref": tot_mine, "pruned_ours": tot_ours}


def explain_differences(cfg, mine, ours_w, scores, group=None, limit=40):
    """For every row (or N:M group) where the masks differ, pair the entries
    the reference prunes but the tool keeps (a) with those the tool prunes but
    the reference keeps (b), and report the reference's float64 scores: a
    near-tie shows as |S_b − S_a| / S_a ≈ float32/float64 rounding."""
    out = []
    for l in range(cfg.n_layers):
        for t in TARGETS:
            a_m = mine[(l, t)]
            b_m = ours_w[(l, t)] == 0
            S = scores[(l, t)]
            rows, cols = np.nonzero(a_m != b_m)
            done = set()
            for r, c in zip(rows.tolist(), cols.tolist()):
                key = (r, c // group) if group else (r,)
                if key in done:
                    continue
                done.add(key)
                lo, hi = (key[1] * group, key[1] * group + group) if group else (0, a_m.shape[1])
                ra = [j for j in range(lo, hi) if a_m[r, j] and not b_m[r, j]]
                rb = [j for j in range(lo, hi) if b_m[r, j] and not a_m[r, j]]
                sa = sorted(ra, key=lambda j: S[r, j])
                sb = sorted(rb, key=lambda j: S[r, j])
                pairs = []
                for ja, jb in zip(sa, sb):
                    pairs.append({"ref_prunes_col": ja, "ours_prunes_col": jb,
                                  "S_ref_pruned": float(S[r, ja]), "S_ours_pruned": float(S[r, jb]),
                                  "rel_gap": float(abs(S[r, jb] - S[r, ja]) / max(S[r, ja], 1e-300))})
                out.append({"matrix": "%d.%s" % (l, HF[t]), "row": r, "group": key[1] if group else None,
                            "n_ref_only": len(ra), "n_ours_only": len(rb), "pairs": pairs})
    gaps = [p["rel_gap"] for d in out for p in d["pairs"]]
    return {"count_rows_or_groups": len(out), "max_rel_gap": max(gaps) if gaps else None,
            "median_rel_gap": float(np.median(gaps)) if gaps else None, "details": out[:limit]}


def cut_margin(cfg, scores, cell):
    """Smallest relative gap, over all rows (wanda) or N:M groups (magnitude),
    between the largest pruned and the smallest kept float64 score: how far
    the closest decision is from a tie. Also counts exact ties at the cut."""
    best, where, ties = math.inf, None, 0
    for (l, t), S in scores.items():
        if cell["method"] == "wanda":
            k = prune_count(S.shape[1], cell["sparsity"])
            srt = np.sort(S, axis=1)
            lo, hi = srt[:, k - 1], srt[:, k]
        else:
            m, n = cell["m"], cell["n"]
            srt = np.sort(S.reshape(S.shape[0], -1, m), axis=2)
            lo, hi = srt[:, :, m - n - 1].ravel(), srt[:, :, m - n].ravel()
        gap = (hi - lo) / np.maximum(lo, 1e-300)
        ties += int((gap == 0).sum())
        i = int(np.argmin(gap))
        if gap[i] < best:
            best, where = float(gap[i]), "%d.%s (row/group %d)" % (l, HF[t], i)
    return {"min_rel_gap": best, "where": where, "exact_ties": ties}


def check_windows(windows, stream):
    """Every window must be a contiguous slice of the stream; returns starts."""
    s = np.asarray(stream, dtype=np.int32)
    T = len(windows[0])
    starts = []
    for w in windows:
        w = np.asarray(w, dtype=np.int32)
        cand = np.nonzero(s[:len(s) - T + 1] == w[0])[0]
        found = [int(c) for c in cand if np.array_equal(s[c:c + T], w)]
        if not found:
            raise SystemExit("calibration window not found in the lines stream")
        starts.append(found[0])
    return starts


def weights_with(dense, repl):
    w = dict(dense)
    w.update(repl)
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", required=True, choices=sorted(CELLS))
    ap.add_argument("--calib", required=True, help="--dump-calib JSON of the tool")
    ap.add_argument("--ours", required=True, help="the tool's --out directory")
    ap.add_argument("--report", help="the tool's --json report (for its ppl)")
    ap.add_argument("--data", help="shared data dir (default ../shared/data or $UNIPRUNING_DATA)")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                    help="dtype of the calibration forward (default float64)")
    ap.add_argument("--also-float32", action="store_true",
                    help="also prune with a float32 forward and compare its masks (no extra ppl)")
    ap.add_argument("--variants", action="store_true",
                    help="also prune with deliberately different protocols and report their agreement")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--no-eval-ours", action="store_true", help="skip the reference evaluation of the tool's file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.time()
    D = data_dir(args.data)
    cell = CELLS[args.cell]
    bin_path = os.path.join(D, MODEL_BIN)
    cfg, dense = read_llama2c_bin(bin_path)
    tok = Llama2cTokenizer(os.path.join(D, TOKENIZER), vocab_size=cfg.vocab_size)
    out = {"cell": args.cell, "spec": cell, "model_sha256": sha256(bin_path),
           "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
           "threads": args.threads, "dtype": args.dtype, "timings": {}}

    for l in range(cfg.n_layers):
        for t in TARGETS:
            assert not (dense[(l, t)] == 0).any(), "dense model has exact zeros in %d.%s" % (l, t)

    with open(args.calib) as f:
        calib = json.load(f)
    windows = calib["windows"]
    man = calib["manifest"]
    assert len(windows) == 128 and all(len(w) == SEQLEN for w in windows), "unexpected calibration shape"
    out["calib_manifest"] = man
    t0 = time.time()
    tstream, tdocs = lines_stream(os.path.join(D, TRAIN), tok)
    assert sha256(os.path.join(D, TRAIN)) == man["sha256"]
    assert len(tstream) == man["tokens"], (len(tstream), man["tokens"])
    starts = check_windows(windows, tstream)
    out["calib_check"] = {"stream_tokens": len(tstream), "documents": tdocs,
                          "all_windows_are_stream_slices": True, "starts_head": starts[:8],
                          "max_start": max(starts), "start_bound": len(tstream) - SEQLEN - 1}
    assert max(starts) < len(tstream) - SEQLEN - 1
    out["timings"]["calib_check"] = time.time() - t0
    log("calibration: %d windows, all slices of the lines stream (%d tokens), %.1fs"
        % (len(windows), len(tstream), out["timings"]["calib_check"]))

    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    t0 = time.time()
    mine_w, mine_m, info, scores = prune_sequential(cfg, dense, windows, cell, dtype)
    out["timings"]["prune"] = time.time() - t0
    out["prune_info"] = info
    log("pruned (%s forward) in %.1fs" % (args.dtype, out["timings"]["prune"]))

    ocfg, ours = read_llama2c_bin(os.path.join(args.ours, "stories260K.bin"))
    assert vars(ocfg) == vars(cfg)
    for k in ("embed", "rms_final"):
        assert np.array_equal(ours[k], dense[k]), k
    for l in range(cfg.n_layers):
        for k in ("rms_att", "rms_ffn"):
            assert np.array_equal(ours[(l, k)], dense[(l, k)]), (l, k)
    cmp = compare_masks(cfg, mine_m, ours)
    out["masks"] = cmp
    log("mask agreement %d / %d = %.6f (pruned: ref %d, ours %d)"
        % (cmp["agree"], cmp["n"], cmp["fraction"], cmp["pruned_ref"], cmp["pruned_ours"]))
    for r in cmp["per_matrix"]:
        if r["agree"] != r["n"]:
            log("  %-14s %d/%d differ in %d rows" % (r["matrix"], r["n"] - r["agree"], r["n"], r["rows_differing"]))
    if cell["method"] != "sparsegpt":
        ex = explain_differences(cfg, mine_m, ours, scores, group=cell.get("m"))
        out["mask_differences"] = ex
        if ex["count_rows_or_groups"]:
            log("  differing rows/groups: %d, rel. score gap of the swapped entries: max %.3g, median %.3g"
                % (ex["count_rows_or_groups"], ex["max_rel_gap"], ex["median_rel_gap"]))
        # kept weights must be the dense values, bitwise
        bad = sum(int((ours[(l, t)][ours[(l, t)] != 0] != dense[(l, t)][ours[(l, t)] != 0]).sum())
                  for l in range(cfg.n_layers) for t in TARGETS)
        out["ours_kept_weights_changed"] = bad
    else:
        # weight values where both keep: how close are the reconstructed weights
        diffs, scale = [], []
        for l in range(cfg.n_layers):
            for t in TARGETS:
                both = (~mine_m[(l, t)]) & (ours[(l, t)] != 0)
                d = np.abs(mine_w[(l, t)][both].astype(np.float64) - ours[(l, t)][both].astype(np.float64))
                diffs.append(float(d.max()) if d.size else 0.0)
                scale.append(float(np.abs(dense[(l, t)]).max()))
                r = next(x for x in cmp["per_matrix"] if x["matrix"] == "%d.%s" % (l, HF[t]))
                r["kept_both_maxabs_diff"] = diffs[-1]
                r["kept_both_rel_l2_diff"] = float(np.linalg.norm(d) / max(np.linalg.norm(
                    ours[(l, t)][both].astype(np.float64)), 1e-30))
        out["sparsegpt_weights_maxabs_diff"] = max(diffs)

    # masks of the per-matrix pruning in a float32 forward, for comparison
    if cell["method"] != "sparsegpt":
        out["cut_margin"] = cut_margin(cfg, scores, cell)
        log("smallest relative score gap at the prune/keep boundary (float64 reference): %.3g in %s"
            % (out["cut_margin"]["min_rel_gap"], out["cut_margin"]["where"]))

    if args.variants and cell["method"] != "magnitude":
        out["variants"] = {}
        for v in VARIANTS[1:]:
            t0 = time.time()
            _, mv, _, _ = prune_sequential(cfg, dense, windows, cell, dtype, variant=v)
            cv = compare_masks(cfg, mv, ours)
            out["variants"][v] = {"agree_with_ours": cv["agree"], "fraction": cv["fraction"], "n": cv["n"],
                                  "seconds": time.time() - t0}
            log("protocol variant %-16s agrees with ours %d/%d = %.4f" % (v, cv["agree"], cv["n"], cv["fraction"]))

    if args.also_float32 and dtype != torch.float32 and cell["method"] != "magnitude":
        t0 = time.time()
        _, m32, _, _ = prune_sequential(cfg, dense, windows, cell, torch.float32)
        c32 = compare_masks(cfg, m32, ours)
        agree_64_32 = sum(int((m32[k] == mine_m[k]).sum()) for k in m32)
        out["masks_float32_forward"] = {"agree_with_ours": c32["agree"], "fraction_with_ours": c32["fraction"],
                                        "agree_with_float64_ref": agree_64_32, "n": c32["n"],
                                        "per_matrix_differ": {r["matrix"]: r["n"] - r["agree"] for r in c32["per_matrix"] if r["agree"] != r["n"]},
                                        "seconds": time.time() - t0}
        log("float32-forward reference: agrees with ours %d/%d, with float64 reference %d/%d"
            % (c32["agree"], c32["n"], agree_64_32, c32["n"]))

    if not args.no_eval:
        stream, docs = lines_stream(os.path.join(D, VALID), tok)
        assert len(stream) == 384909 and docs == 4356, (len(stream), docs)
        t0 = time.time()
        m = Llama(cfg, weights_with(dense, mine_w), torch.float64)
        nwin, pred, nll, ppl, _ = ppl_lines(m, stream, SEQLEN)
        out["timings"]["ppl_ref_model"] = time.time() - t0
        out["ppl_ref_model"] = {"windows": nwin, "predicted": pred, "nll_sum": nll, "ppl": ppl}
        log("ppl of the reference's pruned model (float64): %.10g (%.1fs)" % (ppl, out["timings"]["ppl_ref_model"]))
        if not args.no_eval_ours:
            t0 = time.time()
            m = Llama(cfg, ours, torch.float64)
            _, _, nll2, ppl2, _ = ppl_lines(m, stream, SEQLEN)
            out["timings"]["ppl_ours_file"] = time.time() - t0
            out["ppl_ours_file_ref_eval"] = {"nll_sum": nll2, "ppl": ppl2}
            log("ppl of the tool's pruned file, reference forward (float64): %.10g (%.1fs)"
                % (ppl2, out["timings"]["ppl_ours_file"]))
    if args.report:
        with open(args.report) as f:
            rep = json.load(f)
        ev = [e for e in rep["evals"] if e["model"] == "pruned"][0]
        out["tool"] = {"ppl": ev["ppl"], "nll": ev["nll"], "predicted": ev["predicted"],
                       "windows": ev["manifest"]["windows"], "eval_sha256": ev["manifest"]["sha256"],
                       "total_sparsity": rep.get("total_sparsity"), "seconds": rep.get("seconds"),
                       "machine": rep.get("machine"), "calibration": rep.get("calibration")}
        tp = ev["ppl"]
        if "ppl_ref_model" in out:
            out["rel_diff_ref_model_vs_tool"] = out["ppl_ref_model"]["ppl"] / tp - 1
            log("tool ppl %.10g; reference model / tool - 1 = %.3g" % (tp, out["rel_diff_ref_model_vs_tool"]))
        if "ppl_ours_file_ref_eval" in out:
            out["rel_diff_ref_eval_of_tool_file_vs_tool"] = out["ppl_ours_file_ref_eval"]["ppl"] / tp - 1
            log("reference eval of the tool's file / tool - 1 = %.3g" % out["rel_diff_ref_eval_of_tool_file_vs_tool"])
    out["timings"]["total"] = time.time() - t_start
    path = args.json_out or "/tmp/check-%s.json" % args.cell
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    log("wrote %s (total %.1fs)" % (path, out["timings"]["total"]))


if __name__ == "__main__":
    main()
