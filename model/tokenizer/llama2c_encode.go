package tokenizer

import "sync"

// noMerge is run.c's initial best_score (-1e10 as a C float): a pair whose
// piece scores no higher than this is never merged, and neither is one with
// a NaN score (the comparison is false).
const noMerge = float32(-1e10)

// Encode tokenizes text exactly as llama2.c run.c encode() does: BOS, the
// " " dummy prefix (for non-empty text), one token per UTF-8 code point
// (or per byte, id byte+3, when the code point is not in the vocabulary),
// then repeated merging of the adjacent pair whose concatenation is the
// best-scoring vocabulary piece, leftmost on ties; then EOS.
//
// run.c rescans the whole sequence after every merge (quadratic); here a
// heap of candidate pairs ordered by (score desc, position asc) makes the
// same choices in O(n log n), which matters for megabytes of eval text.
// One deliberate difference: run.c stops at a NUL byte (C string), here NUL
// is an ordinary byte (token <0x00>), so Decode(Encode(s)) == s holds for
// every valid UTF-8 s.
func (t *Llama2C) Encode(text string, bos, eos bool) []int {
	st := encStatePool.Get().(*encState)
	defer encStatePool.Put(st)
	out := make([]int, 0, len(text)/3+3)
	if bos {
		out = append(out, l2cBOS)
	}
	first := true
	for len(text) > 0 {
		seg := text
		if t.spaceWall {
			seg = text[:wordEnd(text)]
		}
		st.reset()
		if first {
			st.push(t.dummy)
			first = false
		}
		t.splitCodepoints(st, seg)
		t.mergeAll(st)
		for i := st.head(); i >= 0; i = int(st.next[i]) {
			out = append(out, int(st.ids[i]))
		}
		text = text[len(seg):]
	}
	if eos {
		out = append(out, l2cEOS)
	}
	return out
}

// wordEnd returns where the first segment of text ends: before the first
// space that follows a non-space byte (or at the end). When no piece of the
// vocabulary contains a non-space byte followed by a space (spaceWall),
// no merge can ever join tokens across such a point, so run.c's global
// merge order restricted to each segment is the same as merging each segment
// on its own; the segments are small, which keeps the heap in cache.
func wordEnd(text string) int {
	for k := 1; k < len(text); k++ {
		if text[k] == ' ' && text[k-1] != ' ' {
			return k
		}
	}
	return len(text)
}

// splitCodepoints appends the initial tokens. Grouping follows run.c
// byte for byte, including for invalid UTF-8: a group starts at any byte and
// takes following continuation bytes (10xxxxxx) while it is shorter than 4.
func (t *Llama2C) splitCodepoints(st *encState, text string) {
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.lookup[text[i:j]]; ok {
			st.push(id)
		} else {
			for k := i; k < j; k++ {
				st.push(int32(text[k]) + l2cByteBase)
			}
		}
		i = j
	}
}

// mergeAll runs the BPE merge loop on the linked list in st.
func (t *Llama2C) mergeAll(st *encState) {
	for i := 0; i+1 < len(st.ids); i++ {
		t.offer(st, int32(i), int32(i+1))
	}
	for len(st.h) > 0 {
		c := st.h.pop()
		l, r := c.left, c.right
		// Stale candidates: one side merged since the pair was offered.
		if st.dead[l] || st.next[l] != r || st.ids[l] != c.lid || st.ids[r] != c.rid {
			continue
		}
		st.ids[l] = c.merged
		st.dead[r] = true
		st.next[l] = st.next[r]
		if nr := st.next[r]; nr >= 0 {
			st.prev[nr] = l
		}
		if p := st.prev[l]; p >= 0 {
			t.offer(st, p, l)
		}
		if nr := st.next[l]; nr >= 0 {
			t.offer(st, l, nr)
		}
	}
}

// offer queues the pair (l, r) if run.c could merge it.
func (t *Llama2C) offer(st *encState, l, r int32) {
	id, ok := t.merges[pairKey(t.canon[st.ids[l]], t.canon[st.ids[r]])]
	if !ok {
		return
	}
	st.h.push(cand{score: t.scores[id], left: l, right: r, lid: st.ids[l], rid: st.ids[r], merged: id})
}

// encState is the scratch space of one Encode call, pooled because eval
// encodes many documents and the slices grow to the text's length.
type encState struct {
	ids, prev, next []int32
	dead            []bool
	h               candHeap
}

var encStatePool = sync.Pool{New: func() any { return new(encState) }}

func (st *encState) reset() {
	st.ids, st.prev, st.next = st.ids[:0], st.prev[:0], st.next[:0]
	st.dead, st.h = st.dead[:0], st.h[:0]
}

// head is the index of the first token, -1 if there is none (the first
// token is never merged away: merging keeps the left one).
func (st *encState) head() int {
	if len(st.ids) == 0 {
		return -1
	}
	return 0
}

// push appends a token to the doubly linked list (indices are positions
// in the initial sequence; merging keeps the left index).
func (st *encState) push(id int32) {
	i := int32(len(st.ids))
	st.ids = append(st.ids, id)
	st.prev = append(st.prev, i-1)
	st.next = append(st.next, -1)
	st.dead = append(st.dead, false)
	if i > 0 {
		st.next[i-1] = i
	}
}

// cand is a possible merge of the live pair (left, right), whose ids were
// lid and rid when it was offered.
type cand struct {
	score       float32
	left, right int32
	lid, rid    int32
	merged      int32
}

// candHeap is a binary max-heap of merge candidates, typed rather than
// container/heap so that pushing does not box (allocate) every candidate.
type candHeap []cand

// before orders candidates: the highest score first and, among equal
// scores, the leftmost pair, because run.c's strict ">" keeps the first
// best pair it scans.
func before(a, b cand) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.left < b.left
}

func (h *candHeap) push(c cand) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !before(s[i], s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() cand {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, best := 2*i+1, i
		if l < len(s) && before(s[l], s[best]) {
			best = l
		}
		if r := l + 1; r < len(s) && before(s[r], s[best]) {
			best = r
		}
		if best == i {
			break
		}
		s[i], s[best] = s[best], s[i]
		i = best
	}
	*h = s
	return top
}
