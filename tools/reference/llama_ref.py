#!/usr/bin/python3
"""A small, independent PyTorch reference of the LLaMA forward pass.

Readers (written by hand, no transformers / safetensors packages):
  * llama2.c .bin, legacy "version 0" export: 7 x int32 header
      dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
    (vocab_size < 0 means the classifier is stored separately), then float32
    arrays: token_embedding (V x D), rms_att (L x D), wq (L x D x D),
    wk (L x KV x D), wv (L x KV x D), wo (L x D x D), rms_ffn (L x D),
    w1 (L x H x D), w2 (L x D x H), w3 (L x H x D), rms_final (D),
    freq_cis_real (S x hd/2), freq_cis_imag (S x hd/2) -- skipped, RoPE is
    recomputed --, and wcls (V x D) only when unshared. KV = n_kv_heads*hd.
    Matrices are row-major out x in. RoPE acts on interleaved pairs (2i, 2i+1).
  * Hugging Face directory: config.json + *.safetensors (8-byte little-endian
    header length, JSON header {name: {dtype, shape, data_offsets}}, data);
    dtypes F32, F16, BF16. q/k rows are in HF's "rotate half" layout.

Model (identical for both, only the RoPE pairing differs):
  h = embed[ids]
  per layer: h += Wo . Attn(RoPE(Wq.n), RoPE(Wk.n), Wv.n),  n = RMSNorm(h; rms_att)
             h += W2 . (silu(W1.m) * (W3.m)),                  m = RMSNorm(h; rms_ffn)
  logits = Wcls . RMSNorm(h; rms_final)
  RMSNorm(x; w) = x / sqrt(mean(x^2) + eps) * w, eps = 1e-5 (config rms_norm_eps for HF)
  Attn: causal softmax(q k^T / sqrt(hd)) v per head; query head h reads kv head
        h // (n_heads / n_kv_heads) (GQA).
  RoPE: theta_i = base^(-2i/hd), i = 0..hd/2-1, angle = pos * theta_i, base 10000;
        "interleaved" rotates (x[2i], x[2i+1]); "half" rotates (x[i], x[i+hd/2]).
  The angles (cos/sin tables) are computed in float64 and then cast to the
  model dtype.

Weights are kept in a dict of tensors with llama2.c-style names per layer
(wq wk wv wo w1 w2 w3 rms_att rms_ffn) so the training code can mark any of
them as trainable.
"""

import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

TARGETS = ("wq", "wk", "wv", "wo", "w1", "w3", "w2")
# llama2.c name -> HF name suffix (the 7 target matrices)
HF_TARGET_NAMES = {
    "wq": "self_attn.q_proj.weight",
    "wk": "self_attn.k_proj.weight",
    "wv": "self_attn.v_proj.weight",
    "wo": "self_attn.o_proj.weight",
    "w1": "mlp.gate_proj.weight",
    "w3": "mlp.up_proj.weight",
    "w2": "mlp.down_proj.weight",
}


class Config:
    def __init__(self, dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
                 seq_len, rope_theta=10000.0, norm_eps=1e-5, head_dim=None,
                 rope_layout="interleaved", shared_classifier=True):
        self.dim, self.hidden_dim, self.n_layers = dim, hidden_dim, n_layers
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.rope_theta, self.norm_eps = rope_theta, norm_eps
        self.head_dim = head_dim or dim // n_heads
        self.rope_layout = rope_layout
        self.shared_classifier = shared_classifier

    def __repr__(self):
        return "Config(%s)" % ", ".join("%s=%r" % kv for kv in sorted(vars(self).items()))


# ----------------------------------------------------------------------------
# readers


def read_llama2c_bin(path):
    """Returns (Config, weights) with weights a dict of float32 numpy arrays:
    embed, rms_final, wcls, and per layer l the keys (l, name)."""
    with open(path, "rb") as f:
        data = f.read()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack_from("<7i", data, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // n_heads
    kv_dim = n_kv_heads * hd
    off = 28

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        a = np.frombuffer(data, dtype="<f4", count=n, offset=off).reshape(shape)
        off += 4 * n
        return a

    w = {"embed": take(vocab, dim)}
    rms_att = take(n_layers, dim)
    wq = take(n_layers, dim, dim)
    wk = take(n_layers, kv_dim, dim)
    wv = take(n_layers, kv_dim, dim)
    wo = take(n_layers, dim, dim)
    rms_ffn = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    w["rms_final"] = take(dim)
    take(seq_len, hd // 2)  # freq_cis_real (unused)
    take(seq_len, hd // 2)  # freq_cis_imag (unused)
    w["wcls"] = w["embed"] if shared else take(vocab, dim)
    if off != len(data):
        raise ValueError("%s: %d bytes left over after the weights" % (path, len(data) - off))
    for l in range(n_layers):
        for name, arr in (("rms_att", rms_att), ("wq", wq), ("wk", wk), ("wv", wv), ("wo", wo),
                          ("rms_ffn", rms_ffn), ("w1", w1), ("w2", w2), ("w3", w3)):
            w[(l, name)] = arr[l]
    cfg = Config(dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len,
                 rope_layout="interleaved", shared_classifier=shared)
    return cfg, w


_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def read_safetensors(path):
    """Hand-written safetensors reader: {name: float32/float64 numpy array}."""
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = info["data_offsets"]
        raw = data[base + b0:base + b1]
        shape = tuple(info["shape"])
        dt = info["dtype"]
        if dt == "BF16":
            # bfloat16 = the top 16 bits of a float32
            u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
            arr = (u16 << 16).view(np.float32)
        elif dt in _ST_DTYPES:
            arr = np.frombuffer(raw, dtype=_ST_DTYPES[dt]).astype(np.float32 if dt != "F64" else np.float64)
        else:
            raise ValueError("%s: unsupported dtype %s for %s" % (path, dt, name))
        out[name] = arr.reshape(shape)
    return out


def read_hf_dir(path):
    """Returns (Config, weights) for a HF LLaMA directory (same key scheme as
    read_llama2c_bin; q/k stay in the HF rotate-half row layout)."""
    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    tensors = {}
    for fn in sorted(os.listdir(path)):
        if fn.endswith(".safetensors") and fn != "masks.safetensors":
            tensors.update(read_safetensors(os.path.join(path, fn)))
    rope = c.get("rope_parameters") or {}
    theta = rope.get("rope_theta", c.get("rope_theta", 10000.0))
    rtype = rope.get("rope_type", (c.get("rope_scaling") or {}).get("rope_type", "default"))
    if rtype not in ("default", None):
        raise ValueError("rope_type %r not supported by the reference" % rtype)
    n_heads = c["num_attention_heads"]
    cfg = Config(c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], n_heads,
                 c.get("num_key_value_heads", n_heads), c["vocab_size"],
                 c.get("max_position_embeddings", 2048), rope_theta=float(theta),
                 norm_eps=float(c.get("rms_norm_eps", 1e-6)),
                 head_dim=c.get("head_dim") or c["hidden_size"] // n_heads,
                 rope_layout="half", shared_classifier=bool(c.get("tie_word_embeddings", False)))
    w = {"embed": tensors["model.embed_tokens.weight"], "rms_final": tensors["model.norm.weight"]}
    if "lm_head.weight" in tensors and not cfg.shared_classifier:
        w["wcls"] = tensors["lm_head.weight"]
    else:
        w["wcls"] = w["embed"]
    for l in range(cfg.n_layers):
        p = "model.layers.%d." % l
        w[(l, "rms_att")] = tensors[p + "input_layernorm.weight"]
        w[(l, "rms_ffn")] = tensors[p + "post_attention_layernorm.weight"]
        for short, hf in HF_TARGET_NAMES.items():
            w[(l, short)] = tensors[p + hf]
    return cfg, w


def interleaved_to_half(w, n_heads):
    """Row permutation that turns llama2.c (interleaved RoPE) q/k rows into the
    HF rotate-half layout (as in stories260K-hf/PROVENANCE.md)."""
    rows, cols = w.shape
    return w.reshape(n_heads, rows // n_heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


# ----------------------------------------------------------------------------
# model


def _softmax_lastdim(s):
    """softmax over the last dim. Without autograd it is done in place and
    written out (torch.softmax is slow for float64 on this CPU build)."""
    if torch.is_grad_enabled():
        return torch.softmax(s, dim=-1)
    s.sub_(s.amax(-1, keepdim=True))
    s.exp_()
    s.div_(s.sum(-1, keepdim=True))
    return s


class Llama:
    def __init__(self, cfg, weights, dtype=torch.float64):
        self.cfg, self.dtype = cfg, dtype

        def t(a):
            return torch.tensor(np.array(a, dtype=np.float64), dtype=dtype)

        self.embed = t(weights["embed"])
        self.rms_final = t(weights["rms_final"])
        self.wcls = self.embed if weights["wcls"] is weights["embed"] else t(weights["wcls"])
        self.layers = [{name: t(weights[(l, name)]) for name in
                        ("rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3")}
                       for l in range(cfg.n_layers)]
        self._rope_cache = {}

    def targets(self):
        """[(l, name, tensor)] for the 7 target matrices of every layer."""
        return [(l, n, self.layers[l][n]) for l in range(self.cfg.n_layers) for n in TARGETS]

    # -- pieces ---------------------------------------------------------------
    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg.norm_eps) * w

    def rope_tables(self, T):
        if T not in self._rope_cache:
            hd = self.cfg.head_dim
            i = torch.arange(0, hd, 2, dtype=torch.float64)
            inv = 1.0 / (self.cfg.rope_theta ** (i / hd))           # (hd/2,)
            ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]  # (T, hd/2)
            self._rope_cache[T] = (ang.cos().to(self.dtype), ang.sin().to(self.dtype))
        return self._rope_cache[T]

    def rope(self, x):
        """x: (B, heads, T, hd)."""
        T = x.shape[2]
        cos, sin = self.rope_tables(T)
        if self.cfg.rope_layout == "interleaved":
            x0, x1 = x[..., 0::2], x[..., 1::2]
            y0 = x0 * cos - x1 * sin
            y1 = x0 * sin + x1 * cos
            return torch.stack((y0, y1), dim=-1).flatten(-2)
        h = x.shape[-1] // 2
        x0, x1 = x[..., :h], x[..., h:]
        return torch.cat((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)

    QUERY_BLOCK = 32  # attention is computed for 32 query positions at a time

    def causal_mask(self, T):
        """(T, T) bool, True above the diagonal (key after query: masked)."""
        key = ("mask", T)
        if key not in self._rope_cache:
            self._rope_cache[key] = torch.ones(T, T, dtype=torch.bool).triu(1)
        return self._rope_cache[key]

    def attention(self, x, L):
        cfg = self.cfg
        B, T, _ = x.shape
        hd, nh, nkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
        rep = nh // nkv  # query head h uses kv head h // rep (GQA)
        q = (x @ L["wq"].t()).view(B, T, nh, hd).transpose(1, 2)   # (B, nh, T, hd)
        k = (x @ L["wk"].t()).view(B, T, nkv, hd).transpose(1, 2)  # (B, nkv, T, hd)
        v = (x @ L["wv"].t()).view(B, T, nkv, hd).transpose(1, 2)
        q = self.rope(q) * (1.0 / math.sqrt(hd))
        k = self.rope(k)
        # The rep query heads sharing a kv head become extra rows of one matmul
        # (no copies of k, v): q viewed as (B, nkv, rep, T, hd).
        q = q.reshape(B, nkv, rep, T, hd)
        k = k.reshape(B * nkv, T, hd)
        v = v.reshape(B * nkv, T, hd)
        mask = self.causal_mask(T)
        outs = []
        # Exact causal attention, one block of query positions [i0, i1) at a
        # time; the block only needs keys [0, i1). Same result as the full
        # T x T softmax, ~4x faster on CPU (smaller, cache-resident tensors).
        for i0 in range(0, T, self.QUERY_BLOCK):
            i1 = min(T, i0 + self.QUERY_BLOCK)
            n = i1 - i0
            qb = q[:, :, :, i0:i1].reshape(B * nkv, rep * n, hd)
            s = torch.bmm(qb, k[:, :i1].transpose(1, 2))           # (B*nkv, rep*n, i1)
            s.view(B * nkv, rep, n, i1).masked_fill_(mask[i0:i1, :i1], float("-inf"))
            p = _softmax_lastdim(s)
            outs.append(torch.bmm(p, v[:, :i1]).view(B, nkv, rep, n, hd))
        o = torch.cat(outs, dim=3)                                  # (B, nkv, rep, T, hd)
        o = o.permute(0, 3, 1, 2, 4).reshape(B, T, nh * hd)         # head = kv*rep + r
        return o @ L["wo"].t()

    def mlp(self, x, L):
        return (F.silu(x @ L["w1"].t()) * (x @ L["w3"].t())) @ L["w2"].t()

    def forward(self, ids):
        """ids: LongTensor (B, T) -> logits (B, T, V)."""
        h = self.embed[ids]
        for L in self.layers:
            h = h + self.attention(self.rmsnorm(h, L["rms_att"]), L)
            h = h + self.mlp(self.rmsnorm(h, L["rms_ffn"]), L)
        return self.rmsnorm(h, self.rms_final) @ self.wcls.t()

    __call__ = forward


def window_nll(model, windows):
    """Sum of next-token NLLs per window (position i predicts token i+1).
    windows: LongTensor (B, T). Returns a float64 tensor (B,); the per-token
    losses are computed in the model dtype, summed in float64."""
    logits = model(windows[:, :-1])
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1),
                          reduction="none")
    return nll.to(torch.float64).view(windows.shape[0], -1).sum(1)


def mean_loss(model, window):
    """Mean next-token cross-entropy of one window (the training loss)."""
    logits = model(window[None, :-1])[0]
    return F.cross_entropy(logits, window[1:], reduction="mean")


def load(path, dtype=torch.float64):
    """A llama2.c .bin file or a HF directory."""
    cfg, w = read_hf_dir(path) if os.path.isdir(path) else read_llama2c_bin(path)
    return Llama(cfg, w, dtype)
