#!/usr/bin/python3
"""Independent PyTorch forward of the Hugging Face decoder families
Qwen3ForCausalLM, MistralForCausalLM, LlamaForCausalLM and Qwen2ForCausalLM,
written from the definitions in transformers' modeling_qwen3.py /
modeling_mistral.py and masking_utils.py (read, not copied), in plain torch,
float64, for golden logits.

Model (per transformers):
  h = embed[ids]
  per layer:
    x = RMSNorm(h; input_layernorm)
    q = x Wq^T (+bq), viewed (T, heads, head_dim); Qwen3: q = RMSNorm(q; q_norm) per head
    k = x Wk^T (+bk), viewed (T, kv_heads, head_dim); Qwen3: k = RMSNorm(k; k_norm) per head
    v = x Wv^T (+bv)
    q, k = RoPE(q), RoPE(k)   rotate-half: (x[i], x[i+hd/2]) rotated by pos * theta^(-2i/hd)
    attention per head, query head h reads kv head h // (heads/kv_heads):
      softmax(q k^T * head_dim^-0.5 + mask) v,
      mask allows key j for query i iff j <= i and (no window or j > i - window)
    h += (attention output, heads concatenated) Wo^T (+bo)
    m = RMSNorm(h; post_attention_layernorm)
    h += Wdown (silu(Wgate m) * (Wup m))
  logits = RMSNorm(h; norm) W_head^T, W_head = embed when tie_word_embeddings
  RMSNorm(x; w) = w * x / sqrt(mean(x^2) + rms_norm_eps)

config.json is read with transformers' defaults: head_dim = hidden/heads
unless given (Qwen3Config: 128); num_key_value_heads = heads; Mistral's
sliding_window is 4096 when absent, none when null; Qwen's window needs
use_sliding_window (refused here); q/k/v(/o) biases: Qwen2 always q/k/v,
others with attention_bias; rope_theta 10000 unless given; only the default
RoPE (no rope_scaling).

Usage:
  decoder_ref.py --model DIR --ids "1,2,3;4,5,6" [--positions 0,5,23] --out golden.json
writes {"config", "ids", "positions", "logits": [window][position][vocab],
"sha256": {file: digest}} with float64 logits.
"""

import argparse
import hashlib
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_ref import read_safetensors  # hand-written safetensors reader (F32/F16/BF16)


def read_config(path):
    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    arch = c["architectures"][0]
    if arch not in ("Qwen3ForCausalLM", "MistralForCausalLM", "LlamaForCausalLM", "Qwen2ForCausalLM"):
        raise ValueError("architecture %s not covered by this reference" % arch)
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or (128 if arch == "Qwen3ForCausalLM" else c["hidden_size"] // heads)
    window = None
    if arch == "MistralForCausalLM":
        window = c["sliding_window"] if "sliding_window" in c else 4096
    elif c.get("use_sliding_window"):
        raise ValueError("Qwen sliding windows are not covered by this reference")
    if c.get("rope_scaling") or (c.get("rope_parameters") or {}).get("rope_type", "default") != "default":
        raise ValueError("only the default RoPE is covered by this reference")
    bias = c.get("attention_bias", False)
    return {
        "arch": arch,
        "hidden": c["hidden_size"],
        "layers": c["num_hidden_layers"],
        "heads": heads,
        "kv_heads": c.get("num_key_value_heads") or heads,
        "head_dim": head_dim,
        "vocab": c["vocab_size"],
        "eps": float(c.get("rms_norm_eps", 1e-6)),
        "theta": float((c.get("rope_parameters") or {}).get("rope_theta", c.get("rope_theta", 10000.0))),
        "tied": bool(c.get("tie_word_embeddings", False)),
        "qkv_bias": arch == "Qwen2ForCausalLM" or bias,
        "o_bias": bias and arch != "Qwen2ForCausalLM",
        "qk_norm": arch == "Qwen3ForCausalLM",
        "window": window,
    }


class Decoder:
    def __init__(self, path):
        self.cfg = read_config(path)
        tensors = {}
        self.sha256 = {}
        for fn in sorted(os.listdir(path)):
            if fn.endswith(".safetensors"):
                tensors.update(read_safetensors(os.path.join(path, fn)))
                with open(os.path.join(path, fn), "rb") as f:
                    self.sha256[fn] = hashlib.sha256(f.read()).hexdigest()
        self.t = {k: torch.tensor(v, dtype=torch.float64) for k, v in tensors.items()}

    def w(self, name):
        return self.t[name]

    def rmsnorm(self, x, weight):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg["eps"]))

    def rope(self, x):
        """x: (heads, T, hd), rotate-half layout."""
        hd, T = x.shape[-1], x.shape[-2]
        inv = 1.0 / (self.cfg["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)
        rot = torch.cat((-x[..., hd // 2:], x[..., :hd // 2]), -1)
        return x * cos + rot * sin

    def proj(self, x, p, name, bias):
        y = x @ self.w(p + name + ".weight").t()
        if bias:
            y = y + self.w(p + name + ".bias")
        return y

    def attention(self, x, p):
        c = self.cfg
        T, hd, H, KV = x.shape[0], c["head_dim"], c["heads"], c["kv_heads"]
        q = self.proj(x, p, "q_proj", c["qkv_bias"]).view(T, H, hd)
        k = self.proj(x, p, "k_proj", c["qkv_bias"]).view(T, KV, hd)
        v = self.proj(x, p, "v_proj", c["qkv_bias"]).view(T, KV, hd)
        if c["qk_norm"]:
            q = self.rmsnorm(q, self.w(p + "q_norm.weight"))
            k = self.rmsnorm(k, self.w(p + "k_norm.weight"))
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # (heads, T, hd)
        q, k = self.rope(q), self.rope(k)
        rep = H // KV
        k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        allowed = j <= i
        if c["window"]:
            allowed = allowed & (j > i - c["window"])
        s = (q @ k.transpose(1, 2)) * hd ** -0.5
        s = s.masked_fill(~allowed, float("-inf"))
        o = torch.softmax(s, -1) @ v  # (H, T, hd)
        o = o.transpose(0, 1).reshape(T, H * hd)
        return self.proj(o, p, "o_proj", c["o_bias"])

    def forward(self, ids):
        """ids: list of ints (one window) -> logits (T, vocab), float64."""
        c = self.cfg
        h = self.w("model.embed_tokens.weight")[torch.tensor(ids)]
        for l in range(c["layers"]):
            p = "model.layers.%d." % l
            h = h + self.attention(self.rmsnorm(h, self.w(p + "input_layernorm.weight")), p + "self_attn.")
            m = self.rmsnorm(h, self.w(p + "post_attention_layernorm.weight"))
            mp = p + "mlp."
            h = h + (F.silu(m @ self.w(mp + "gate_proj.weight").t()) * (m @ self.w(mp + "up_proj.weight").t())) \
                @ self.w(mp + "down_proj.weight").t()
        head = self.w("model.embed_tokens.weight") if c["tied"] else self.w("lm_head.weight")
        return self.rmsnorm(h, self.w("model.norm.weight")) @ head.t()


def finite_difference_check(model):
    """The forward's attention mask and norms are differentiable; as a sanity
    check of the reference itself, compare autograd with a central difference
    on one q_norm entry (Qwen3) or one q_proj entry."""
    name = "model.layers.0.self_attn.q_norm.weight" if model.cfg["qk_norm"] else "model.layers.0.self_attn.q_proj.weight"
    w = model.t[name]
    ids = list(range(1, 9))

    def loss():
        lg = model.forward(ids)
        return F.cross_entropy(lg[:-1], torch.tensor(ids[1:]))

    w.requires_grad_(True)
    g = torch.autograd.grad(loss(), w)[0].flatten()[1].item()
    w.requires_grad_(False)
    h, flat = 1e-5, w.view(-1)
    old = flat[1].item()
    flat[1] = old + h
    up = loss().item()
    flat[1] = old - h
    down = loss().item()
    flat[1] = old
    fd = (up - down) / (2 * h)
    return abs(fd - g) / max(abs(fd), abs(g), 1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="windows separated by ';', ids by ','")
    ap.add_argument("--positions", default="", help="positions whose logits are stored (default: all)")
    ap.add_argument("--note", default="", help="how the model was made (stored in the JSON)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = Decoder(a.model)
    windows = [[int(x) for x in w.split(",")] for w in a.ids.split(";")]
    T = len(windows[0])
    positions = [int(x) for x in a.positions.split(",")] if a.positions else list(range(T))
    logits = []
    with torch.no_grad():
        for ids in windows:
            lg = model.forward(ids)
            logits.append([[float(v) for v in lg[p].tolist()] for p in positions])
    rel = finite_difference_check(model)
    if rel > 1e-6:
        raise SystemExit("reference autograd and finite difference disagree: %g" % rel)
    out = {
        "generator": "tools/reference/decoder_ref.py (torch %s, float64)" % torch.__version__,
        "note": a.note,
        "config": model.cfg,
        "sha256": model.sha256,
        "ids": windows,
        "positions": positions,
        "logits": logits,
        "check_finite_difference": rel,
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %s: %d windows x %d positions x %d logits (fd check %.2g)" % (
        a.out, len(windows), len(positions), model.cfg["vocab"], rel))


if __name__ == "__main__":
    main()
