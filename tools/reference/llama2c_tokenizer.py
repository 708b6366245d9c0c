#!/usr/bin/python3
"""llama2.c tokenizer (tokenizer.bin format) and the run.c `encode` algorithm.

Written from a reading of karpathy/llama2.c run.c (functions `build_tokenizer`,
`str_lookup`, `encode`); no code is shared with the Go implementation or with
tools/tokenizer/.

tokenizer.bin layout (little-endian):
    int32 max_token_length
    vocab_size times: float32 score, int32 len, len raw bytes (the piece)
vocab_size is not stored: it comes from the model header (512 for tok512.bin);
by default we read pieces until the end of the file.

encode(text, bos):
  1. optional BOS (id 1);
  2. if the text is non-empty, the id of the piece " " (the SentencePiece
     "dummy prefix");
  3. walk the UTF-8 bytes; gather one code point (a lead byte plus up to 3
     continuation bytes, exactly as run.c: a buffer is flushed when the NEXT
     byte is not a continuation byte or the buffer already holds 4 bytes);
     look the code point's bytes up as a piece; if absent, emit one
     byte-fallback token per byte, id = byte + 3;
  4. repeat: among all adjacent pairs (a, b) whose concatenated piece
     bytes(a)+bytes(b) is itself a piece, take the one whose piece has the
     highest score (strictly greater than the best so far, so the leftmost
     pair wins ties; scores must exceed run.c's initial best of -1e10);
     replace the pair by that piece; stop when no pair merges.
  No EOS is appended (run.c's eos flag is off in every use here).

Like C strings, the text ends at its first NUL byte (stop_at_nul=True, run.c's
behaviour). With stop_at_nul=False a NUL byte is an ordinary byte (it has no
piece, so it becomes byte-fallback id 3), which is what the Go tokenizer and
its goldens (model/tokenizer/testdata/llama2c_goldens.json) do. The two
differ only for text containing NUL, which never occurs in the data sets.

Two implementations of step 4 are given: `_merge_naive` (a literal
transcription of the quadratic loop, easiest to audit) and `_merge_fast` (a
heap with lazy invalidation, the one used for whole files). They pick exactly
the same merge at every step: deleting tokens never reorders the survivors,
so "leftmost" is "smallest original start index", and the heap key is
(-score, start index). `check_tokenizer.py --naive` cross-checks them.
"""

import heapq
import struct

BOS_ID = 1
EOS_ID = 2
BYTE_FALLBACK_OFFSET = 3  # id of byte b is b + 3 (<0x00> is id 3)
_C_INITIAL_BEST = -1e10   # run.c: float best_score = -1e10


class Llama2cTokenizer:
    def __init__(self, path, vocab_size=None):
        with open(path, "rb") as f:
            data = f.read()
        (self.max_token_length,) = struct.unpack_from("<i", data, 0)
        off = 4
        self.pieces = []   # list of bytes
        self.scores = []   # python floats holding the exact float32 values
        while off < len(data) and (vocab_size is None or len(self.pieces) < vocab_size):
            score, n = struct.unpack_from("<fi", data, off)
            off += 8
            self.pieces.append(data[off:off + n])
            self.scores.append(score)
            off += n
        if vocab_size is not None and len(self.pieces) != vocab_size:
            raise ValueError("tokenizer has %d pieces, want %d" % (len(self.pieces), vocab_size))
        # piece bytes -> id. run.c uses bsearch over the sorted vocabulary, which
        # is ambiguous for duplicate pieces; refuse them (tok512 has none).
        self.lookup = {}
        for i, p in enumerate(self.pieces):
            if p in self.lookup:
                raise ValueError("duplicate piece %r (ids %d, %d)" % (p, self.lookup[p], i))
            self.lookup[p] = i
        self.vocab_size = len(self.pieces)

    # -- step 3: code points with byte fallback -------------------------------
    def _initial_tokens(self, data):
        toks = []
        buf = bytearray()
        n = len(data)
        for i in range(n):
            c = data[i]
            if (c & 0xC0) != 0x80:       # ASCII or lead byte: start a new code point
                buf = bytearray()
            buf.append(c)
            nxt = data[i + 1] if i + 1 < n else 0   # as C: a NUL after the end
            if (nxt & 0xC0) == 0x80 and len(buf) < 4:
                continue                 # more continuation bytes follow
            tid = self.lookup.get(bytes(buf))
            if tid is not None:
                toks.append(tid)
            else:
                toks.extend(b + BYTE_FALLBACK_OFFSET for b in buf)
            buf = bytearray()
        return toks

    # -- step 4, literal version ---------------------------------------------
    def _merge_naive(self, toks):
        toks = list(toks)
        while True:
            best_score, best_id, best_idx = _C_INITIAL_BEST, -1, -1
            for i in range(len(toks) - 1):
                tid = self.lookup.get(self.pieces[toks[i]] + self.pieces[toks[i + 1]])
                if tid is not None and self.scores[tid] > best_score:
                    best_score, best_id, best_idx = self.scores[tid], tid, i
            if best_idx == -1:
                return toks
            toks[best_idx:best_idx + 2] = [best_id]

    # -- step 4, heap version (same result, O(n log n)) ---------------------
    def _merge_fast(self, toks):
        n = len(toks)
        if n < 2:
            return list(toks)
        tok = list(toks)
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        nxt[n - 1] = -1
        alive = [True] * n
        heap = []

        def push(i):
            j = nxt[i]
            if j == -1:
                return
            tid = self.lookup.get(self.pieces[tok[i]] + self.pieces[tok[j]])
            if tid is not None and self.scores[tid] > _C_INITIAL_BEST:
                # entry remembers both token ids to detect staleness
                heapq.heappush(heap, (-self.scores[tid], i, tok[i], j, tok[j], tid))

        for i in range(n - 1):
            push(i)
        while heap:
            _, i, ti, j, tj, tid = heapq.heappop(heap)
            if not alive[i] or not alive[j] or nxt[i] != j or tok[i] != ti or tok[j] != tj:
                continue  # stale entry
            tok[i] = tid
            alive[j] = False
            k = nxt[j]
            nxt[i] = k
            if k != -1:
                prev[k] = i
            if prev[i] != -1:
                push(prev[i])
            push(i)
        return [tok[i] for i in range(n) if alive[i]]

    def encode(self, text, bos=True, eos=False, naive=False, stop_at_nul=True):
        """text: str (encoded as UTF-8) or bytes. Returns a list of ids."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        z = data.find(b"\0")
        if z >= 0 and stop_at_nul:
            data = data[:z]
        out = [BOS_ID] if bos else []
        if len(data) == 0:
            return out + ([EOS_ID] if eos else [])
        toks = [self.lookup[b" "]] + self._initial_tokens(data)
        toks = self._merge_naive(toks) if naive else self._merge_fast(toks)
        return out + toks + ([EOS_ID] if eos else [])

    def decode_piece(self, prev_id, tid):
        """run.c decode: strip the leading space after BOS, map <0xXX> to a byte."""
        p = self.pieces[tid]
        if prev_id == BOS_ID and p[:1] == b" ":
            p = p[1:]
        if len(p) == 6 and p[:3] == b"<0x" and p[5:] == b">":
            try:
                return bytes([int(p[3:5], 16)])
            except ValueError:
                pass
        return p

    def decode(self, ids, start_prev=BOS_ID):
        out, prev = bytearray(), start_prev
        for t in ids:
            out += self.decode_piece(prev, t)
            prev = t
        return bytes(out).decode("utf-8", errors="replace")


def lines_stream(path, tok):
    """DESIGN §2.6 `lines` protocol: every line (split on "\\n") that is
    non-empty after str.strip() is one document, encoded with BOS, no EOS;
    documents concatenated. Returns (ids, number of documents)."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    ids, docs = [], 0
    for line in text.split("\n"):
        s = line.strip()
        if s:
            ids.extend(tok.encode(s, bos=True))
            docs += 1
    return ids, docs


if __name__ == "__main__":
    import sys
    t = Llama2cTokenizer(sys.argv[1])
    for arg in sys.argv[2:]:
        print(t.encode(arg, bos=True))
