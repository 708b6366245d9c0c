#!/usr/bin/env python3
"""PyTorch CPU reference for `make bench-search` (issue 17).

Runs what a UniPruning search step costs in plain PyTorch on the same model:
forward + next-token cross-entropy + backward + gradient clipping at global
norm 1.0 + AdamW (betas 0.9/0.999, eps 1e-10, no weight decay) on the target
matrices only (q, k, v, o, gate, up, down of every layer), as
`unipruning search --mode global` does. It SKIPS the UniPruning-specific
parts (saliency metric, z/Γ update, threshold rounds), so it is a lower
bound of a search step in PyTorch. With --forward-only it times the forward
pass and the loss only (what `unipruning eval` does), in tokens/s.

The model is an HF LLaMA directory as `unipruning synth` writes it
(config.json + f32 model.safetensors; read here without the safetensors
package). The windows are random token ids of --seqlen tokens drawn from a
fixed seed: the time of a step does not depend on which tokens it sees.

Output: one JSON object on stdout (seconds per phase per step, wall, peak
RSS); progress on stderr.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            raise SystemExit(f"{name}: dtype {meta['dtype']} (synth the model with --dtype f32)")
        a, b = meta["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(meta["shape"])
    return out


class Llama(torch.nn.Module):
    def __init__(self, cfg, w):
        super().__init__()
        self.cfg = cfg
        self.dim = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.kv = cfg.get("num_key_value_heads", self.heads)
        self.hd = self.dim // self.heads
        self.eps = cfg.get("rms_norm_eps", 1e-5)
        P = lambda t: torch.nn.Parameter(t.clone(), requires_grad=False)
        self.embed = P(w["model.embed_tokens.weight"])
        self.norm = P(w["model.norm.weight"])
        self.head = P(w["lm_head.weight"]) if "lm_head.weight" in w else self.embed
        self.layers = []
        self.targets = []
        for l in range(cfg["num_hidden_layers"]):
            pre = f"model.layers.{l}."
            layer = {"in_norm": P(w[pre + "input_layernorm.weight"]), "post_norm": P(w[pre + "post_attention_layernorm.weight"])}
            for k, n in [("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"), ("o", "self_attn.o_proj"),
                         ("gate", "mlp.gate_proj"), ("up", "mlp.up_proj"), ("down", "mlp.down_proj")]:
                p = torch.nn.Parameter(w[pre + n + ".weight"].clone())
                layer[k] = p
                self.targets.append(p)
            self.layers.append(layer)
        theta = cfg.get("rope_theta", 10000.0)
        inv = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd))
        pos = torch.arange(cfg.get("max_position_embeddings", 2048), dtype=torch.float64)
        f = torch.outer(pos, inv)
        self.cos = torch.cat([f.cos(), f.cos()], -1).float()
        self.sin = torch.cat([f.sin(), f.sin()], -1).float()

    def rms(self, x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * g

    def rope(self, x, t):
        c, s = self.cos[:t], self.sin[:t]
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * c + rot * s

    def forward(self, ids):
        b, t = ids.shape
        x = self.embed[ids]
        mask = torch.full((t, t), float("-inf")).triu(1)
        for L in self.layers:
            h = self.rms(x, L["in_norm"])
            q = (h @ L["q"].T).view(b, t, self.heads, self.hd).transpose(1, 2)
            k = (h @ L["k"].T).view(b, t, self.kv, self.hd).transpose(1, 2)
            v = (h @ L["v"].T).view(b, t, self.kv, self.hd).transpose(1, 2)
            q, k = self.rope(q, t), self.rope(k, t)
            if self.kv != self.heads:
                k = k.repeat_interleave(self.heads // self.kv, 1)
                v = v.repeat_interleave(self.heads // self.kv, 1)
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.hd) + mask, -1) @ v
            x = x + a.transpose(1, 2).reshape(b, t, -1) @ L["o"].T
            h = self.rms(x, L["post_norm"])
            x = x + (F.silu(h @ L["gate"].T) * (h @ L["up"].T)) @ L["down"].T
        return self.rms(x, self.norm) @ self.head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF directory written by unipruning synth (f32)")
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--forward-only", action="store_true", help="time forward + loss only (eval), no grad")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    m = Llama(cfg, load_safetensors(os.path.join(a.model, "model.safetensors")))
    load = time.time() - t0
    g = torch.Generator().manual_seed(a.seed)
    wins = torch.randint(0, cfg["vocab_size"], (a.steps, 1, a.seqlen), generator=g)
    opt = None if a.forward_only else torch.optim.AdamW(m.targets, lr=a.lr, betas=(0.9, 0.999), eps=1e-10, weight_decay=0)
    ph = {"forward": 0.0, "backward": 0.0, "clip": 0.0, "optimizer": 0.0}
    start = time.time()
    for k in range(a.steps):
        ids = wins[k]
        t1 = time.time()
        if a.forward_only:
            with torch.no_grad():
                loss = F.cross_entropy(m(ids)[:, :-1].reshape(-1, cfg["vocab_size"]), ids[:, 1:].reshape(-1))
            ph["forward"] += time.time() - t1
            continue
        loss = F.cross_entropy(m(ids)[:, :-1].reshape(-1, cfg["vocab_size"]), ids[:, 1:].reshape(-1))
        t2 = time.time()
        loss.backward()
        t3 = time.time()
        torch.nn.utils.clip_grad_norm_(m.targets, 1.0)
        t4 = time.time()
        opt.step()
        opt.zero_grad(set_to_none=False)
        t5 = time.time()
        ph["forward"] += t2 - t1
        ph["backward"] += t3 - t2
        ph["clip"] += t4 - t3
        ph["optimizer"] += t5 - t4
        print(f"step {k+1}/{a.steps} loss {loss.item():.4f} {t5-t1:.2f}s", file=sys.stderr)
    wall = time.time() - start
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out = {"torch": torch.__version__, "threads": a.threads, "seqlen": a.seqlen, "steps": a.steps,
           "forward_only": a.forward_only, "load_seconds": load, "steps_seconds": wall,
           "seconds_per_step": {k: v / a.steps for k, v in ph.items()},
           "tokens_per_second": a.steps * a.seqlen / wall,
           "peak_rss_bytes": ru.ru_maxrss * 1024, "user_seconds": ru.ru_utime, "sys_seconds": ru.ru_stime,
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
