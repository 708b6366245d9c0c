package tokenizer

import "sync"

// bpeModel is the merge engine shared by the byte-level tokenizers. It works
// on raw bytes: each piece starts as one symbol per byte and adjacent
// symbols are merged, lowest rank first and leftmost among equal ranks,
// until no adjacent pair can merge. The two families differ only in which
// pairs merge:
//   - Hugging Face BPE (tokenizer.json, vocab.json + merges.txt): the pair
//     of token ids must be listed in merges; its rank is its line number;
//   - tiktoken: any pair whose concatenated bytes are a token merges, with
//     that token's rank (which is also its id).
//
// Both libraries pick merges in exactly this order (tiktoken's
// _byte_pair_merge scans for the minimum; tokenizers' Word::merge_all pops a
// heap ordered by rank then position), so one heap-based loop serves both.
type bpeModel struct {
	tiktoken bool
	// wholeFirst: a piece that is itself a token is that token, without
	// merging (tiktoken always; tokenizers when ignore_merges is set).
	wholeFirst bool
	vocab      map[string]int32 // raw bytes -> id, every mergeable token
	byteID     [256]int32       // the one-byte tokens
	merges     map[uint64]mergeRule
}

type mergeRule struct{ rank, id int32 }

// candidate is a possible merge of the symbol starting at pos (ending at
// mid) with the one starting at mid (ending at end). Symbols only grow, so
// it is still current exactly when both symbols still have these bounds.
type candidate struct {
	rank, id       int32
	pos, mid, stop int32
}

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// mergeState is the scratch of one merge, pooled so that encoding a corpus
// does not allocate per piece.
type mergeState struct {
	ids  []int32
	end  []int32 // end[i]: end of the symbol starting at i; -1 once merged away
	prev []int32
	heap []candidate
}

var mergePool = sync.Pool{New: func() any { return new(mergeState) }}

// encode appends the ids of one pre-tokenized piece.
func (m *bpeModel) encode(w string, out []int) []int {
	switch {
	case len(w) == 0:
		return out
	case len(w) == 1:
		return append(out, int(m.byteID[w[0]]))
	}
	if m.wholeFirst {
		if id, ok := m.vocab[w]; ok {
			return append(out, int(id))
		}
	}
	st := mergePool.Get().(*mergeState)
	out = m.merge(st, w, out)
	mergePool.Put(st)
	return out
}

// pair returns the merge of the symbols [l, mid) and [mid, r) of w.
func (m *bpeModel) pair(w string, ids []int32, l, mid, r int32) (candidate, bool) {
	if m.tiktoken {
		id, ok := m.vocab[w[l:r]]
		return candidate{rank: id, id: id, pos: l, mid: mid, stop: r}, ok
	}
	mr, ok := m.merges[pairKey(ids[l], ids[mid])]
	return candidate{rank: mr.rank, id: mr.id, pos: l, mid: mid, stop: r}, ok
}

func (m *bpeModel) merge(st *mergeState, w string, out []int) []int {
	n := int32(len(w))
	if cap(st.ids) < int(n) {
		st.ids = make([]int32, n)
		st.end = make([]int32, n)
		st.prev = make([]int32, n)
	}
	ids, end, prev := st.ids[:n], st.end[:n], st.prev[:n]
	for i := range n {
		ids[i] = m.byteID[w[i]]
		end[i] = i + 1
		prev[i] = i - 1
	}
	h := st.heap[:0]
	for i := int32(0); i+1 < n; i++ {
		if c, ok := m.pair(w, ids, i, i+1, i+2); ok {
			h = heapPush(h, c)
		}
	}
	for len(h) > 0 {
		var c candidate
		c, h = heapPop(h)
		if end[c.pos] != c.mid || end[c.mid] != c.stop {
			continue // stale: one of the two symbols has merged since
		}
		ids[c.pos] = c.id
		end[c.pos] = c.stop
		end[c.mid] = -1
		if c.stop < n {
			prev[c.stop] = c.pos
			if nc, ok := m.pair(w, ids, c.pos, c.stop, end[c.stop]); ok {
				h = heapPush(h, nc)
			}
		}
		if p := prev[c.pos]; p >= 0 {
			if nc, ok := m.pair(w, ids, p, c.pos, c.stop); ok {
				h = heapPush(h, nc)
			}
		}
	}
	st.heap = h
	for i := int32(0); i < n; i = end[i] {
		out = append(out, int(ids[i]))
	}
	return out
}

func heapPush(h []candidate, c candidate) []candidate {
	h = append(h, c)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []candidate) (candidate, []candidate) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		l, r, min := 2*i+1, 2*i+2, i
		if l < last && h[l].less(h[min]) {
			min = l
		}
		if r < last && h[r].less(h[min]) {
			min = r
		}
		if min == i {
			break
		}
		h[i], h[min] = h[min], h[i]
		i = min
	}
	return top, h
}
