#!/usr/bin/python3
"""Independent reference for the zero-shot scorer of eval/tasks.

Scores the first N documents of a few tasks on a llama2.c model the way
lm-evaluation-harness (EleutherAI, commit 4e7e0d47) scores multiple-choice
tasks with its HF causal backend, and writes eval/tasks/testdata/ref_scores.json,
which eval/tasks/ref_test.go compares against the Go scorer.

Nothing here is shared with the Go code. The pieces:
  * model: tools/reference/llama_ref.py (a float64 PyTorch LLaMA forward
    with its own llama2.c .bin reader) and tokenizer:
    tools/reference/llama2c_tokenizer.py (the run.c encode algorithm),
    both written independently of the Go engine and tokenizer;
  * prompts: written here from the harness task files
    (arc/arc_easy.yaml, piqa/piqa.yaml, super_glue/boolq/default.yaml,
    winogrande/preprocess_winogrande.py, hellaswag/utils.py) applied to
    the gauntlet / original records;
  * requests: (context, " " + choice), or for winogrande
    (context_option, " " + continuation);
  * encoding: TemplateLM._encode_pair (lm_eval/api/model.py): trailing
    whitespace of the context moves to the continuation; whole =
    enc(context+continuation), ctx = enc(context) (both with BOS, as the
    HF LLaMA tokenizer adds it), continuation = whole[len(ctx):];
  * scoring: HFLM._loglikelihood_tokens: inp = (ctx+cont)[-(L+1):][:-1],
    log_softmax over the vocabulary, sum of the continuation tokens'
    log-probs from the last len(cont) positions, is_greedy = argmax matches
    every continuation token;
  * metrics: pred = argmax(lls), pred_norm = argmax(lls / len(choice)) with
    len in characters (ConfigurableTask.process_results).

Run from the repository root:
  /usr/bin/python3 tools/zeroshot/score_ref.py [--data ../shared/data] [--out FILE]
"""

import argparse
import hashlib
import json
import os
import re
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import llama_ref  # noqa: E402
from llama2c_tokenizer import BOS_ID as BOS, Llama2cTokenizer  # noqa: E402

# task -> (data file under tasks/, number of documents)
PLAN = [
    ("arc_easy", "arc_easy/arc_easy.jsonl", 50),
    ("piqa", "piqa/piqa.jsonl", 50),
    ("boolq", "boolq/boolq.jsonl", 12),           # long passages: left truncation
    ("winogrande", "winogrande/winogrande.jsonl", 30),  # partial evaluation
    ("hellaswag", "hellaswag/hellaswag_val_subset1000.jsonl", 30),  # preprocessing
    ("lambada_openai", "lambada_openai/lambada_openai.jsonl", 40),  # loglikelihood output
]

# Hand-written requests for paths the task data rarely reach: continuations
# the model predicts greedily (stories260K's greedy story starts "Once upon a
# time, there was a little girl named Lily. She loved to play outside in the
# park."), trailing whitespace in the context, an empty context (the prefix
# token path of TemplateLM.loglikelihood), and left truncation with a long
# continuation.
PROBES = [
    ("Once upon a", " time, there was a little girl named Lily."),
    ("Once upon a time, there was a little girl named", " Lily. She loved to play outside in the park."),
    ("Once upon a time, there was a little girl named", " Tom."),
    ("Once upon a ", "time"),
    ("Once upon a time,  \n ", "there was a cat."),
    ("", "Once upon a time"),
    ("Lily and Ben went to the park. " * 60, " They played on the swings and the slide until the sun went down." * 3),
]


# ---------------------------------------------------------------- prompts
# Each returns (requests, choices_for_norm, gold): requests is a list of
# (context, continuation) pairs, one per choice.

def arc_easy(rec):
    # gauntlet query "Question: <q>"; harness "Question: {{question}}\nAnswer:"
    q = rec["query"]
    assert q.startswith("Question: ")
    ctx = q + "\nAnswer:"
    return [(ctx, " " + c) for c in rec["choices"]], rec["choices"], rec["gold"]


def piqa(rec):
    # gauntlet query "Question: <goal>\n"; harness "Question: {{goal}}\nAnswer:"
    q = rec["query"]
    assert q.startswith("Question: ") and q.endswith("\n")
    goal = q[len("Question: "):-1]
    ctx = "Question: " + goal + "\nAnswer:"
    return [(ctx, " " + c) for c in rec["choices"]], rec["choices"], rec["gold"]


def boolq(rec):
    # gauntlet "Passage: <p>\nQuestion: <q>?"; harness
    # "{{passage}}\nQuestion: {{question}}?\nAnswer:" with choices no/yes.
    # (Documents whose passage holds the gauntlet's "\nQuestion" rewrite are
    # not in the first few, which this script asserts.)
    body = rec["query"][len("Passage: "):]
    passage, question = body.rsplit("\nQuestion: ", 1)
    assert "\nQuestion" not in passage and question.endswith("?")
    ctx = passage + "\nQuestion: " + question[:-1] + "?\nAnswer:"
    choices = ["no", "yes"]
    return [(ctx, " " + c) for c in choices], choices, rec["gold"]


def winogrande(rec):
    # multiple input: contexts = sentence[:blank] + option, target shared
    target = rec["continuation"].strip()
    ctxs = rec["context_options"]
    return [(c, " " + target) for c in ctxs], ctxs, rec["gold"]


def _hs_pre(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag(rec):
    ctx = rec["ctx_a"] + " " + rec["ctx_b"].capitalize()
    query = _hs_pre(rec["activity_label"] + ": " + ctx)
    choices = [_hs_pre(e) for e in rec["endings"]]
    return [(query, " " + c) for c in choices], choices, int(rec["label"])


def lambada_openai(rec):
    # output_type loglikelihood: (text minus last word, " " + last word);
    # acc = is_greedy. The one "choice" is the word.
    return [(rec["context"], " " + rec["continuation"])], [rec["continuation"]], 0


PROMPTS = {"arc_easy": arc_easy, "piqa": piqa, "boolq": boolq,
           "winogrande": winogrande, "hellaswag": hellaswag, "lambada_openai": lambada_openai}


# ---------------------------------------------------------------- scoring

def encode_pair(tok, context, continuation):
    n = len(context) - len(context.rstrip())
    if n > 0:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole = tok.encode(context + continuation, bos=True)
    ctx = tok.encode(context, bos=True)
    return ctx, whole[len(ctx):]


def encode_request(tok, context, continuation):
    if context == "":
        # TemplateLM.loglikelihood: the prefix token (BOS) is the context
        cont = tok.encode(continuation, bos=False)
        if cont[0] == BOS:
            return cont[:1], cont[1:]
        return [BOS], cont
    return encode_pair(tok, context, continuation)


@torch.no_grad()
def loglikelihood(model, tok, max_len, context, continuation):
    ctx, cont = encode_request(tok, context, continuation)
    assert 0 < len(cont) <= max_len
    seq = (ctx + cont)[-(max_len + 1):]
    inp = seq[:-1]
    logits = model(torch.tensor([inp], dtype=torch.long))[0]      # (T, V) float64
    logp = F.log_softmax(logits, dim=-1)[len(inp) - len(cont):]  # rows predicting cont
    target = torch.tensor(cont, dtype=torch.long)
    ll = float(logp.gather(1, target[:, None]).sum())
    greedy = bool((logp.argmax(dim=-1) == target).all())
    return ll, greedy, len(cont), len(ctx) + len(cont) - len(seq)


def request_digest(context, continuation):
    return hashlib.sha256((context + "\x00" + continuation).encode("utf-8")).hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def score_task(model, tok, max_len, name, path, n):
    items = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if len(items) == n:
                break
            reqs, choices, gold = PROMPTS[name](json.loads(line))
            scored = [loglikelihood(model, tok, max_len, c, k) for c, k in reqs]
            lls = np.array([s[0] for s in scored])
            lens = np.array([float(len(c)) for c in choices])
            items.append({
                "line": line_no,
                "requests_sha256": [request_digest(c, k) for c, k in reqs],
                "logliks": [s[0] for s in scored],
                "is_greedy": [s[1] for s in scored],
                "cont_tokens": [s[2] for s in scored],
                "truncated": [s[3] for s in scored],
                "gold": gold,
                "pred": int(np.argmax(lls)),
                "pred_norm": int(np.argmax(lls / lens)),
            })
    return {"file": os.path.relpath(path, os.path.dirname(os.path.dirname(path))),
            "sha256": sha256_file(path), "items": items}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(REPO, "eval", "tasks", "testdata", "ref_scores.json"))
    args = ap.parse_args()
    mdir = os.path.join(args.data, "models", "stories260K")
    mpath, tpath = os.path.join(mdir, "stories260K.bin"), os.path.join(mdir, "tok512.bin")
    model = llama_ref.load(mpath, dtype=torch.float64)
    tok = Llama2cTokenizer(tpath, vocab_size=model.cfg.vocab_size)
    max_len = model.cfg.seq_len
    out = {
        "generator": "tools/zeroshot/score_ref.py",
        "harness_commit": "4e7e0d47f33bc71070c1d38394bafbb52b117163",
        "model": "models/stories260K/stories260K.bin", "model_sha256": sha256_file(mpath),
        "tokenizer": "models/stories260K/tok512.bin", "tokenizer_sha256": sha256_file(tpath),
        "dtype": "float64", "bos": True, "max_length": max_len, "tasks": {},
    }
    for name, rel, n in PLAN:
        t0 = time.time()
        out["tasks"][name] = score_task(model, tok, max_len, name, os.path.join(args.data, "tasks", rel), n)
        print("%s: %d documents in %.1fs" % (name, n, time.time() - t0), file=sys.stderr)
    out["probes"] = []
    for c, k in PROBES:
        ll, greedy, n, trunc = loglikelihood(model, tok, max_len, c, k)
        out["probes"].append({"context": c, "continuation": k, "loglik": ll, "is_greedy": greedy,
                              "cont_tokens": n, "truncated": trunc})
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
