#!/usr/bin/python3
"""Golden values for the Go LLaMA engine, from the independent PyTorch
reference in this directory (llama_ref.py, llama2c_tokenizer.py).

Writes testdata/reference/stories260k_golden.json:
  prompt / prompt_ids     tokenizer golden (BOS + run.c encode)
  logits, logits_hf       logits of the prompt at positions [0, 3, last], from
                          the llama2.c .bin and from the HF directory (float64)
  greedy                  64 greedy tokens from [BOS]
  ppl_lines               DESIGN §2.6 `lines` protocol on the TinyStories
                          validation head, seqlen 256, float64 and float32
  train, train_f64, train_f32
                          3 steps of the DESIGN §2.3 step-3 weight update
                          (targets only, clip 1.0, AdamW lr 1e-4 constant)

  cd <repo root> && /usr/bin/python3 tools/reference/make_goldens.py
Options: --data DIR (default $UNIPRUNING_DATA, else /work/shared/data),
         --out FILE (default testdata/reference/stories260k_golden.json),
         --threads N (torch threads, default 1: on the shared 2-core machine,
         with other jobs running, 2 threads were up to 10x slower in wall
         time because the OpenMP threads wait on each other).
"""

import os

# One BLAS thread: torch's own OpenMP threads plus OpenBLAS's pthreads
# oversubscribe the 2 shared cores (measured 2x slower).
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
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from llama2c_tokenizer import Llama2cTokenizer, lines_stream  # noqa: E402
from llama_ref import (HF_TARGET_NAMES, interleaved_to_half, load, mean_loss,  # noqa: E402
                       read_hf_dir, read_llama2c_bin, window_nll)

MODEL_BIN = "models/stories260K/stories260K.bin"
TOKENIZER = "models/stories260K/tok512.bin"
MODEL_HF = "models/stories260K-hf"
VALID = "text/tinystories/TinyStories-validation-head-794K.txt"
TRAIN = "text/tinystories/TinyStories-train-head-944K.txt"
PROMPT = "Once upon a time, there was a little girl named Lily."
PROVENANCE_GREEDY = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298]
SEQLEN = 256
BATCH = 16          # windows per forward in the ppl evaluation
TRAIN_STEPS = 3
LR, BETAS, EPS, WD, CLIP = 1e-4, (0.9, 0.999), 1e-10, 0.0, 1.0


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def hf_name(l, short):
    return "model.layers.%d.%s" % (l, HF_TARGET_NAMES[short])


def fixed_indices(n):
    """8 deterministic flat (row-major) indices into a matrix of n elements."""
    return [0, 1, n // 7, n // 3, n // 2, 2 * n // 3, n - 2, n - 1]


def floats(t):
    return [float(x) for x in t.reshape(-1).tolist()]


# ----------------------------------------------------------------------------
# logits and greedy


def logits_section(model, ids, positions):
    with torch.no_grad():
        lg = model(torch.tensor([ids]))[0]
    return lg, {"positions": positions, "values": [floats(lg[p]) for p in positions]}


def greedy(model, start, n):
    ids = list(start)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))  # first max on ties
    return ids[len(start):]


# ----------------------------------------------------------------------------
# perplexity, `lines` protocol


def ppl_lines(model, stream, seqlen):
    nwin = len(stream) // seqlen
    W = torch.tensor(stream[:nwin * seqlen], dtype=torch.long).view(nwin, seqlen)
    per_window = []
    with torch.no_grad():
        for i in range(0, nwin, BATCH):
            per_window.extend(window_nll(model, W[i:i + BATCH]).tolist())
    nll_sum = math.fsum(per_window)
    predicted = nwin * (seqlen - 1)
    return nwin, predicted, nll_sum, math.exp(nll_sum / predicted), per_window


# ----------------------------------------------------------------------------
# training golden (DESIGN §2.3 step 3, constant lr)


def fd_check(model, params, names, window, grads):
    """Central finite differences of the loss at one index per matrix of the
    first and last layer, against autograd (float64 only)."""
    worst_abs, worst_rel = 0.0, 0.0
    h = 1e-5
    L = model.cfg.n_layers
    with torch.no_grad():
        for p, name, g in zip(params, names, grads):
            if not (name.startswith("model.layers.0.") or name.startswith("model.layers.%d." % (L - 1))):
                continue
            flat = p.view(-1)
            i = flat.numel() // 3
            old = float(flat[i])
            flat[i] = old + h
            lp = float(mean_loss(model, window))
            flat[i] = old - h
            lm = float(mean_loss(model, window))
            flat[i] = old
            fd = (lp - lm) / (2 * h)
            ag = float(g.view(-1)[i])
            worst_abs = max(worst_abs, abs(fd - ag))
            worst_rel = max(worst_rel, abs(fd - ag) / max(abs(ag), 1e-6))
    return worst_abs, worst_rel


def train_golden(bin_path, windows, dtype):
    model = load(bin_path, dtype)
    targets = model.targets()          # layer-major; q, k, v, o, gate, up, down
    params = [t for _, _, t in targets]
    names = [hf_name(l, n) for l, n, _ in targets]
    for p in params:
        p.requires_grad_(True)         # everything else stays frozen (no grad)
    w0 = [p.detach().clone() for p in params]
    idx = [fixed_indices(p.numel()) for p in params]
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD,
                            amsgrad=False, maximize=False, foreach=False)
    # An independent float64 AdamW (written out) to cross-check torch's.
    m_ = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    v_ = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    w_ = [p.detach().to(torch.float64).clone() for p in params]
    losses, gnorms, step1, fd = [], [], None, None
    adam_dev = 0.0
    for k, win in enumerate(windows):
        window = torch.tensor(win, dtype=torch.long)
        opt.zero_grad(set_to_none=True)
        loss = mean_loss(model, window)          # mean CE over the 255 predictions
        loss.backward()
        grads = [p.grad.detach().clone() for p in params]
        if k == 0:
            mats = {}
            for name, p, g, ix, w in zip(names, params, grads, idx, w0):
                gf = g.view(-1)
                mats[name] = {"shape": list(p.shape), "idx": ix,
                              "w0_at_idx": [float(w.view(-1)[i]) for i in ix],
                              "grad_norm": float(g.to(torch.float64).norm()),
                              "grad_at_idx": [float(gf[i]) for i in ix]}
            step1 = {"loss": float(loss), "grad_norm": None, "matrices": mats}
            if dtype == torch.float64:
                fd = fd_check(model, params, names, window, grads)
        total = torch.nn.utils.clip_grad_norm_(params, CLIP)   # returns the pre-clip norm
        losses.append(float(loss))
        gnorms.append(float(total))
        if k == 0:
            step1["grad_norm"] = float(total)
        opt.step()
        # reference AdamW in float64 from the unclipped grads
        gn = math.sqrt(math.fsum(float(g.to(torch.float64).pow(2).sum()) for g in grads))
        coef = min(1.0, CLIP / (gn + 1e-6))
        t = k + 1
        for i, g in enumerate(grads):
            g = g.to(torch.float64) * coef
            m_[i] = BETAS[0] * m_[i] + (1 - BETAS[0]) * g
            v_[i] = BETAS[1] * v_[i] + (1 - BETAS[1]) * g * g
            mhat_step = LR / (1 - BETAS[0] ** t)
            denom = v_[i].sqrt() / math.sqrt(1 - BETAS[1] ** t) + EPS
            w_[i] = w_[i] - mhat_step * m_[i] / denom
            adam_dev = max(adam_dev, float((w_[i] - params[i].detach().to(torch.float64)).abs().max()))
    final = {}
    for name, p, ix, w in zip(names, params, idx, w0):
        pf, wf = p.detach().view(-1), w.view(-1)
        d = p.detach().to(torch.float64) - w.to(torch.float64)
        final[name] = {"values_at_idx": [float(pf[i]) for i in ix],
                       "delta_at_idx": [float(pf[i]) - float(wf[i]) for i in ix],
                       "delta_norm": float(d.norm())}
    out = {"dtype": str(dtype).replace("torch.", ""), "step1": step1, "losses": losses,
           "grad_norms": gnorms, "after": final,
           "check_manual_adamw_maxabs": adam_dev}
    if fd is not None:
        out["check_finite_difference"] = {"max_abs_err": fd[0], "max_rel_err": fd[1],
                                          "what": "central differences h=1e-5 at idx n//3 of every target "
                                                  "of layers 0 and 4, step 1, before clipping"}
    return out


# ----------------------------------------------------------------------------
# output


def dump(obj, indent=0):
    """JSON with lists of scalars on one line; floats as repr (full precision)."""
    sp = " " * indent
    if isinstance(obj, dict):
        items = [sp + " " + json.dumps(k) + ": " + dump(v, indent + 1).lstrip() for k, v in obj.items()]
        return sp + "{\n" + ",\n".join(items) + "\n" + sp + "}"
    if isinstance(obj, list) and any(isinstance(x, (list, dict)) for x in obj):
        return sp + "[\n" + ",\n".join(dump(x, indent + 1) for x in obj) + "\n" + sp + "]"
    return sp + json.dumps(obj)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("UNIPRUNING_DATA", "/work/shared/data"))
    ap.add_argument("--out", default=os.path.join(REPO, "testdata", "reference", "stories260k_golden.json"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.time()
    timings = {}
    D = lambda rel: os.path.join(args.data, rel)  # noqa: E731
    bin_path, hf_path = D(MODEL_BIN), D(MODEL_HF)

    def log(msg):
        print("[%6.1fs] %s" % (time.time() - t_start, msg), file=sys.stderr, flush=True)

    log("torch %s, numpy %s, python %s" % (torch.__version__, np.__version__, platform.python_version()))
    tok = Llama2cTokenizer(D(TOKENIZER), vocab_size=512)
    out = {
        "generator": {
            "script": "tools/reference/make_goldens.py (independent PyTorch reference: "
                      "tools/reference/llama_ref.py, tools/reference/llama2c_tokenizer.py)",
            "command": "/usr/bin/python3 tools/reference/make_goldens.py",
            "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": "%s, %s, torch threads %d"
            % (platform.platform(), cpu_name(), torch.get_num_threads()),
        },
        "model": MODEL_BIN, "model_sha256": sha256(bin_path),
        "model_hf": MODEL_HF, "model_hf_safetensors_sha256": sha256(os.path.join(hf_path, "model.safetensors")),
        "tokenizer": TOKENIZER, "tokenizer_sha256": sha256(D(TOKENIZER)),
    }

    # --- the two files hold the same weights (q/k rows permuted for HF) -----
    cb, wb = read_llama2c_bin(bin_path)
    ch, wh = read_hf_dir(hf_path)
    for l in range(cb.n_layers):
        assert np.array_equal(interleaved_to_half(wb[(l, "wq")], cb.n_heads), wh[(l, "wq")])
        assert np.array_equal(interleaved_to_half(wb[(l, "wk")], cb.n_kv_heads), wh[(l, "wk")])
        for n in ("wv", "wo", "w1", "w2", "w3", "rms_att", "rms_ffn"):
            assert np.array_equal(wb[(l, n)], wh[(l, n)])
    assert np.array_equal(wb["embed"], wh["embed"]) and np.array_equal(wb["rms_final"], wh["rms_final"])
    log("bin and HF weights identical up to the q/k RoPE row permutation")

    # --- prompt, logits -------------------------------------------------------
    t0 = time.time()
    m64 = load(bin_path, torch.float64)
    mhf = load(hf_path, torch.float64)
    m32 = load(bin_path, torch.float32)
    ids = tok.encode(PROMPT, bos=True)
    out["prompt"], out["prompt_ids"] = PROMPT, ids
    pos = [0, 3, len(ids) - 1]
    lg_bin, out["logits"] = logits_section(m64, ids, pos)
    lg_hf, out["logits_hf"] = logits_section(mhf, ids, pos)
    lg_32, _ = logits_section(m32, ids, pos)
    out["logits"]["dtype"] = out["logits_hf"]["dtype"] = "float64"
    out["logits_bin_vs_hf_maxabs"] = float((lg_bin - lg_hf).abs().max())
    out["logits_f32_vs_f64_maxabs"] = float((lg_32.double() - lg_bin).abs().max())
    log("logits: bin vs hf max |diff| %.3g (all positions), f32 vs f64 %.3g"
        % (out["logits_bin_vs_hf_maxabs"], out["logits_f32_vs_f64_maxabs"]))

    # --- greedy ---------------------------------------------------------------
    g = greedy(m64, [1], 64)
    assert g[:len(PROVENANCE_GREEDY)] == PROVENANCE_GREEDY, g[:10]
    same = {"hf_float64": greedy(mhf, [1], 64) == g, "bin_float32": greedy(m32, [1], 64) == g}
    out["greedy"] = {"start": [1], "ids": g, "text": tok.decode(g), "model": "bin float64",
                     "same_ids_from": same}
    timings["logits_greedy"] = time.time() - t0
    log("greedy ok (%s): %r" % (same, out["greedy"]["text"][:60]))

    # --- perplexity, lines protocol -------------------------------------------
    t0 = time.time()
    stream, docs = lines_stream(D(VALID), tok)
    log("validation stream: %d documents, %d tokens (%.1fs)" % (docs, len(stream), time.time() - t0))
    assert len(stream) == 384909, len(stream)
    nwin, predicted, nll, ppl, per_window = ppl_lines(m64, stream, SEQLEN)
    assert nwin == 1503
    timings["ppl_float64"] = time.time() - t0
    log("ppl float64 %.12g (%.1fs)" % (ppl, timings["ppl_float64"]))
    t0 = time.time()
    _, _, nll32, ppl32, pw32 = ppl_lines(m32, stream, SEQLEN)
    timings["ppl_float32"] = time.time() - t0
    log("ppl float32 %.12g (%.1fs)" % (ppl32, timings["ppl_float32"]))
    out["ppl_lines"] = {
        "dataset": "lines", "file": VALID, "file_sha256": sha256(D(VALID)),
        "documents": docs, "seqlen": SEQLEN, "tokens": len(stream), "windows": nwin,
        "predicted": predicted, "nll_sum": nll, "ppl": ppl,
        "nll_sum_float32": nll32, "ppl_float32": ppl32,
        "ppl_float32_minus_float64": ppl32 - ppl,
        "stream_head": stream[:64],
        "window_nll_head": per_window[:8], "window_nll_head_float32": pw32[:8],
        "note": "per-token NLL in the model dtype, summed in float64 (math.fsum of window sums)",
    }

    # --- training golden -------------------------------------------------------
    t0 = time.time()
    tstream, tdocs = lines_stream(D(TRAIN), tok)
    windows = [tstream[i * SEQLEN:(i + 1) * SEQLEN] for i in range(TRAIN_STEPS)]
    out["train"] = {
        "file": TRAIN, "file_sha256": sha256(D(TRAIN)), "documents": tdocs, "tokens": len(tstream),
        "seqlen": SEQLEN, "window_indices": list(range(TRAIN_STEPS)), "windows": windows,
        "model": MODEL_BIN + " (matrices in the .bin's own out x in orientation; q/k rows NOT permuted)",
        "trained": "only the 7 target matrices of every layer (q,k,v,o,gate=w1,up=w3,down=w2); "
                   "embedding, norms (and the tied head) frozen",
        "loss": "mean next-token cross-entropy over the 255 predictions of the window (batch 1)",
        "clip": "torch.nn.utils.clip_grad_norm_(targets, 1.0): total = L2 norm over all target grads; "
                "grads *= min(1, 1.0 / (total + 1e-6))",
        "optimizer": "torch.optim.AdamW(lr=1e-4 constant, betas=(0.9, 0.999), eps=1e-10, weight_decay=0, "
                     "foreach=False): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; "
                     "w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)",
        "idx_rule": "flat row-major indices [0, 1, n//7, n//3, n//2, 2n//3, n-2, n-1], n = numel",
        "records": "step1: loss, grad_norm (global, pre-clip), per matrix grad L2 norm (float64 sum) and grad "
                   "values at idx (pre-clip); losses/grad_norms: per step, loss before the update; after: W "
                   "after the 3 updates at idx, W_after - W_before at idx, ||W_after - W_before||_2",
    }
    log("train stream: %d documents, %d tokens" % (tdocs, len(tstream)))
    out["train_f64"] = train_golden(bin_path, windows, torch.float64)
    log("train f64: losses %s grad norms %s (manual AdamW dev %.3g, fd %s)"
        % (out["train_f64"]["losses"], out["train_f64"]["grad_norms"],
           out["train_f64"]["check_manual_adamw_maxabs"], out["train_f64"]["check_finite_difference"]))
    out["train_f32"] = train_golden(bin_path, windows, torch.float32)
    log("train f32: losses %s grad norms %s" % (out["train_f32"]["losses"], out["train_f32"]["grad_norms"]))
    timings["train"] = time.time() - t0
    assert out["train_f64"]["check_manual_adamw_maxabs"] < 1e-12
    assert out["train_f64"]["check_finite_difference"]["max_rel_err"] < 1e-5

    timings["total"] = time.time() - t_start
    out["generator"]["wall_time_s"] = {k: round(v, 1) for k, v in timings.items()}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    text = dump(out) + "\n"
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    log("wrote %s (%d bytes); wall time %.1fs" % (args.out, len(text), timings["total"]))


if __name__ == "__main__":
    main()
