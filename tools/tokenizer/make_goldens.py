#!/usr/bin/python3
"""Write the tokenizer goldens that model/tokenizer's Go tests compare against.

What it reads (from the shared data directory, never copied into the repo):
  models/llama2-tokenizer/tokenizer.model   LLaMA-2 SentencePiece BPE model
  models/llama2-tokenizer/tokenizer.bin     the same vocabulary, llama2.c format
  models/stories260K/tok512.bin             llama2.c 512-token tokenizer
  text/wikitext-2-raw/wiki.test.raw         every 13th line from line 1 (0-based)
  text/tinystories/TinyStories-validation-head-794K.txt   every 400th line

What it writes (into model/tokenizer/testdata/):
  llama2_sp_goldens.json  ids from the real SentencePiece library
                          (SentencePieceProcessor(model_file=...).encode(text),
                          and with add_bos=True), plus sp.decode(ids); and
                          "decode_cases": sp.decode of chosen and random
                          (seeded) id sequences
  llama2c_goldens.json    ids from an independent Python transcription of
                          llama2.c run.c encode() (below), for tok512.bin and
                          tokenizer.bin, bos=eos=False
Both also hold "digests": for every line of the two text files (not only the
sampled ones), sha256 digests of the ids per block of 64 lines and the token
count; for SentencePiece also the ids of each whole file encoded as one string.

Text taken from the data files is stored by reference (file, 0-based line,
sha256 of the file); the Go test reads the line itself. Hand-written cases
are stored inline: "text" when valid UTF-8, otherwise "hex" (raw bytes; the
real SentencePiece is then given bytes).

How to rerun (needs Debian's python3-sentencepiece; use /usr/bin/python3):
  apt-get install -y python3-sentencepiece
  cd <repo root> && /usr/bin/python3 tools/tokenizer/make_goldens.py
Options: --data DIR (default $UNIPRUNING_DATA, else ../shared/data beside
the checkout), --out DIR (default model/tokenizer/testdata).
"""

import argparse
import hashlib
import json
import os
import random
import struct
import sys

import sentencepiece as spm

WIKI = "text/wikitext-2-raw/wiki.test.raw"
STORIES = "text/tinystories/TinyStories-validation-head-794K.txt"
SP_MODEL = "models/llama2-tokenizer/tokenizer.model"
L2C_FILES = {
    "tok512": "models/stories260K/tok512.bin",
    "llama2": "models/llama2-tokenizer/tokenizer.bin",
}

# Hand-written inputs: whitespace, unicode, digits, byte fallback, literal
# special-token text, code. Byte strings are deliberately invalid UTF-8.
HAND = [
    ("empty", ""),
    ("space", " "),
    ("two spaces", "  "),
    ("three spaces", "   "),
    ("100 spaces", " " * 100),
    ("tab", "\t"),
    ("newline", "\n"),
    ("two newlines", "\n\n"),
    ("crlf", "line\r\n"),
    ("space newline space", " \n "),
    ("inner spaces", "a  b   c    d"),
    ("tabs", "a\tb\t\tc"),
    ("leading spaces", "   leading"),
    ("trailing spaces", "trailing   "),
    ("both", "  both  "),
    ("multi line", "first line\nsecond line\n\nthird\n"),
    ("hello", "Hello world"),
    ("punct", "Hello, World! How are you? (Fine.) \"Quoted\" 'single' -- dash..."),
    ("story", "Once upon a time, there was a little girl named Lily. She loved to play outside."),
    ("accents", "café naïve résumé Ångström Straße façade"),
    ("greek math", "Ω≈ç√∫ αβγδε ∀x∈ℝ: x²≥0"),
    ("cjk japanese", "日本語のテキストを処理します。"),
    ("cjk chinese", "中文分词测试，你好世界！"),
    ("korean", "한국어 텍스트"),
    ("hebrew rtl", "שלום עולם"),
    ("arabic rtl", "مرحبا بالعالم"),
    ("mixed rtl ltr", "abc אבג 123"),
    ("emoji", "I love 🍕 and 🎉!"),
    ("emoji modifiers", "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈"),
    ("combining acute", "e\u0301 cafe\u0301"),
    ("combining stack", "a\u0308\u0301o\u0323\u0302"),
    ("precomposed", "é ö"),
    ("ligature", "ﬁnd ﬂow"),
    ("nbsp", "a\u00a0b"),
    ("zero width", "a\u200bb\u200dc"),
    ("bom", "\ufeffstart"),
    ("digits", "12345"),
    ("long number", "123456789012345678901234567890"),
    ("pi", "3.14159265358979323846"),
    ("thousands", "1,234,567,890.00"),
    ("date", "2023-10-09T12:34:56Z"),
    ("zeros", "0000000000"),
    ("fraktur", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"),
    ("rare emoji", "\U0001f9ec\U0001fae0"),
    ("rare cjk", "𠀋𪚥"),
    ("cyrillic ext", "ꙮ ѣ"),
    ("nul", "a\x00b"),
    ("control chars", "\x01\x02\x1b[0m\x7f"),
    ("literal bos", "<s>"),
    ("literal eos", "</s>"),
    ("literal unk", "<unk>"),
    ("literal byte", "<0x0A>"),
    ("literal pad", "<pad>"),
    ("literal sp space", "\u2581"),
    ("literal sp spaces", "\u2581\u2581hello\u2581world"),
    ("replacement char", "a\ufffdb"),
    ("repeat a", "a" * 100),
    ("repeat eq", "=" * 50),
    ("repeat dash", "-" * 80),
    ("code", "def f(x):\n    return x * 2\n"),
    ("code braces", "if (a && b) { return; }\n\tfoo();"),
    ("url", "https://example.com/path?q=1&r=two#frag"),
    ("invalid ff", b"a\xffb"),
    ("invalid truncated", b"\xe4\xb8"),
    ("invalid overlong", b"\xc0\x80"),
    ("invalid surrogate", b"\xed\xa0\x80"),
    ("invalid continuations", b"\x80\x80\x80\x80\x80"),
    ("invalid truncated emoji", b"x\xf0\x9f\x98"),
    ("invalid above max", b"\xf4\x90\x80\x80"),
]


def llama2c_load(path):
    """Read a llama2.c tokenizer.bin: (pieces as bytes, scores)."""
    data = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    off, pieces, scores = 4, [], []
    while off < len(data):
        score, n = struct.unpack_from("<fi", data, off)
        off += 8
        pieces.append(data[off:off + n])
        scores.append(score)
        off += n
    assert max_len >= max(len(p) for p in pieces)
    return pieces, scores


def llama2c_encode(pieces, scores, text):
    """run.c encode(text, bos=0, eos=0), transcribed step by step.

    text is bytes. Lookups are exact-match on piece bytes (run.c bsearch; the
    vocabularies here have no duplicate pieces). One documented extension:
    a NUL byte is an ordinary byte here (run.c would stop at it).
    """
    index = {}
    for i, p in enumerate(pieces):
        index.setdefault(p, i)
    tokens = []
    if len(text) > 0:
        tokens.append(index[b" "])  # dummy prefix
    # code points: a lead byte plus up to 3 continuation bytes
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and (text[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        cp = text[i:j]
        if cp in index:
            tokens.append(index[cp])
        else:
            tokens.extend(b + 3 for b in cp)  # byte fallback
        i = j
    # merge the best-scoring pair until none is in the vocabulary
    no_merge = struct.unpack("<f", struct.pack("<f", -1e10))[0]
    while True:
        best_score, best_id, best_idx = no_merge, -1, -1
        for k in range(len(tokens) - 1):
            merged = index.get(pieces[tokens[k]] + pieces[tokens[k + 1]])
            if merged is not None and scores[merged] > best_score:
                best_score, best_id, best_idx = scores[merged], merged, k
        if best_idx == -1:
            break
        tokens[best_idx:best_idx + 2] = [best_id]
    return tokens


def file_lines(path, start, step):
    """Lines start, start+step, ... of a file (0-based), newline kept."""
    with open(path, "rb") as f:
        parts = f.read().decode("utf-8").split("\n")  # "\n" only, as Go's strings.SplitAfter
    lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    return [(i, lines[i]) for i in range(start, len(lines), step)]


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def cases(data):
    """All inputs as (record, text) with text a str or bytes."""
    out = []
    for name, text in HAND:
        rec = {"name": name}
        if isinstance(text, bytes):
            rec["hex"] = text.hex()
        else:
            rec["text"] = text
        out.append((rec, text))
    for rel, start, step in ((WIKI, 1, 13), (STORIES, 0, 400)):
        for i, line in file_lines(os.path.join(data, rel), start, step):
            out.append(({"name": "%s:%d" % (os.path.basename(rel), i), "file": rel, "line": i}, line))
    return out


def digest(id_lists):
    """First 16 hex digits of sha256 over lines "id,id,...\\n"."""
    h = hashlib.sha256()
    for ids in id_lists:
        h.update((",".join(str(i) for i in ids) + "\n").encode())
    return h.hexdigest()[:16]


def digests(data, encode, whole):
    """Per-file checks over every line of the text files, too big to keep
    as ids: the digest of each block of BLOCK lines and the token count.
    whole=True adds the encoding of the entire file as one string."""
    out = {}
    for rel in (WIKI, STORIES):
        lines = [l for _, l in file_lines(os.path.join(data, rel), 0, 1)]
        ids = [encode(l) for l in lines]
        d = {
            "lines": len(lines),
            "block": BLOCK,
            "tokens": sum(len(x) for x in ids),
            "blocks": [digest(ids[i:i + BLOCK]) for i in range(0, len(ids), BLOCK)],
        }
        if whole:
            all_ids = encode("".join(lines))
            d["whole_tokens"], d["whole_digest"] = len(all_ids), digest([all_ids])
        out[rel] = d
    return out


BLOCK = 64


def files_info(data):
    return {rel: sha256(os.path.join(data, rel)) for rel in (WIKI, STORIES)}


# Id sequences whose sp.decode is recorded: the leading-space rule around
# BOS, <unk>, bytes and "▁" pieces, then random sequences (fixed seed) that
# favour those ids.
DECODE_HAND = [
    [1, 15043, 1, 15043], [15043, 2, 15043], [0, 15043], [15043, 0, 15043],
    [29871, 15043], [1, 29871, 29871, 15043], [13, 15043], [35, 15043],
    [1, 35, 15043], [259], [1, 259], [3, 15043], [232, 188, 154], [232, 188],
    [1, 2], [], [2, 29871, 13],
]


def decode_cases(sp):
    rng = random.Random(20240601)
    special = [0, 1, 2, 29871, 259, 13, 35] + list(range(3, 259))
    seqs = [list(s) for s in DECODE_HAND]
    for _ in range(300):
        n = rng.randint(1, 12)
        seqs.append([rng.choice(special) if rng.random() < 0.5 else rng.randrange(sp.vocab_size()) for _ in range(n)])
    return [{"ids": s, "decoded": sp.decode(s)} for s in seqs]


def sp_goldens(data, inputs):
    model = os.path.join(data, SP_MODEL)
    sp = spm.SentencePieceProcessor(model_file=model)
    recs = []
    for rec, text in inputs:
        r = dict(rec)
        r["ids"] = sp.encode(text)
        r["ids_bos"] = sp.encode(text, add_bos=True)
        r["decoded"] = sp.decode(r["ids"])
        recs.append(r)
    return {
        "generator": "tools/tokenizer/make_goldens.py",
        "library": "sentencepiece %s (Debian python3-sentencepiece)" % spm.__version__,
        "model": SP_MODEL,
        "model_sha256": sha256(model),
        "text_files_sha256": files_info(data),
        "cases": recs,
        "digests": digests(data, sp.encode, True),
        "decode_cases": decode_cases(sp),
    }


def l2c_goldens(data, inputs):
    out = {
        "generator": "tools/tokenizer/make_goldens.py (Python transcription of llama2.c run.c encode)",
        "text_files_sha256": files_info(data),
        "tokenizers": {},
    }
    for key, rel in L2C_FILES.items():
        path = os.path.join(data, rel)
        pieces, scores = llama2c_load(path)
        recs = []
        for rec, text in inputs:
            raw = text if isinstance(text, bytes) else text.encode("utf-8")
            r = dict(rec)
            r["ids"] = llama2c_encode(pieces, scores, raw)
            recs.append(r)
        # run.c's quadratic merge loop is too slow in Python for whole files
        dig = digests(data, lambda t: llama2c_encode(pieces, scores, t.encode("utf-8")), False)
        out["tokenizers"][key] = {"file": rel, "sha256": sha256(path), "cases": recs, "digests": dig}
        print("%s: %d cases" % (key, len(recs)), file=sys.stderr)
    return out


def write(path, obj):
    """JSON with one case per line, which keeps diffs readable."""
    def dump(x):
        return json.dumps(x, ensure_ascii=True)

    def lines(o, indent):
        pad = " " * indent
        if isinstance(o, dict) and any(isinstance(v, (dict, list)) for v in o.values()) and "ids" not in o:
            items = ["%s %s: %s" % (pad, dump(k), lines(v, indent + 1)) for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and o and isinstance(o[0], dict):
            return "[\n" + ",\n".join(pad + " " + dump(x) for x in o) + "\n" + pad + "]"
        return dump(o)

    with open(path, "w") as f:
        f.write(lines(obj, 0) + "\n")


def default_data():
    if os.environ.get("UNIPRUNING_DATA"):
        return os.environ["UNIPRUNING_DATA"]
    d = os.getcwd()
    while True:
        cand = os.path.join(d, "shared", "data")
        if os.path.isdir(cand):
            return cand
        if os.path.dirname(d) == d:
            sys.exit("shared data not found; pass --data")
        d = os.path.dirname(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="shared data directory")
    ap.add_argument("--out", default="model/tokenizer/testdata", help="output directory")
    args = ap.parse_args()
    data = args.data or default_data()
    inputs = cases(data)
    os.makedirs(args.out, exist_ok=True)
    write(os.path.join(args.out, "llama2_sp_goldens.json"), sp_goldens(data, inputs))
    write(os.path.join(args.out, "llama2c_goldens.json"), l2c_goldens(data, inputs))
    print("%d inputs written to %s" % (len(inputs), args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
