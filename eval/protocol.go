package eval

import (
	"fmt"

	"github.com/unipruning/unipruning/provenance"
)

// Manifest states exactly what was evaluated or calibrated on, so numbers
// can be compared.
type Manifest = provenance.Data

// C4EvalWindows is the number of windows of the GPTQ C4 selection.
const C4EvalWindows = 256

// EvalWindows builds the evaluation windows of a protocol.
func EvalWindows(protocol, path string, tok Tokenizer, seqlen int) ([][]int32, *Manifest, error) {
	if seqlen < 2 {
		return nil, nil, fmt.Errorf("seqlen must be at least 2 (got %d)", seqlen)
	}
	src, err := ReadSource(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s text: %w", protocol, err)
	}
	m := &Manifest{Dataset: protocol, Path: path, SHA256: src.SHA256, Seqlen: seqlen}
	var ws [][]int32
	switch protocol {
	case WikiText2:
		stream := WikiTextStream(tok, src.data)
		m.Tokens, ws = len(stream), Split(stream, seqlen)
	case Lines:
		stream := LinesStream(tok, src.data)
		m.Tokens, ws = len(stream), Split(stream, seqlen)
	case C4:
		docs, err := JSONLTexts(src.data)
		if err != nil {
			return nil, nil, fmt.Errorf("c4 %s: %w", path, err)
		}
		seed := 0
		ws, err = SampleDocWindows(docs, tok, C4EvalWindows, seqlen, NewPyRandom(uint64(seed)))
		if err != nil {
			return nil, nil, fmt.Errorf("c4 %s: %w", path, err)
		}
		m.Seed, m.Tokens = &seed, len(ws)*seqlen
		m.Note = "GPTQ selection: 256 windows from documents longer than seqlen, Python random.seed(0) draws"
	default:
		return nil, nil, fmt.Errorf("unknown dataset %q (want wikitext2, c4 or lines)", protocol)
	}
	if len(ws) == 0 {
		return nil, nil, fmt.Errorf("%s: %s holds %d tokens, fewer than one window of %d", protocol, path, m.Tokens, seqlen)
	}
	m.Windows = len(ws)
	return ws, m, nil
}

// SampleDocWindows draws n windows as the GPTQ/Wanda/SparseGPT C4 loaders
// do: pick a random document (randint over all), re-draw until it has more
// than seqlen tokens (BOS included), then a random start in
// [0, len−seqlen−1]. Documents are tokenized lazily and cached.
func SampleDocWindows(docs []string, tok Tokenizer, n, seqlen int, r *PyRandom) ([][]int32, error) {
	cache := map[int][]int32{}
	encode := func(i int) []int32 {
		if ids, ok := cache[i]; ok {
			return ids
		}
		ids := toInt32(tok.Encode(docs[i], true, false))
		cache[i] = ids
		return ids
	}
	if !anyLonger(docs, encode, seqlen) {
		return nil, fmt.Errorf("no document has more than %d tokens", seqlen)
	}
	ws := make([][]int32, 0, n)
	for len(ws) < n {
		var ids []int32
		for {
			ids = encode(r.RandInt(0, len(docs)-1))
			if len(ids) > seqlen {
				break
			}
		}
		i := r.RandInt(0, len(ids)-seqlen-1)
		ws = append(ws, ids[i:i+seqlen])
	}
	return ws, nil
}

// anyLonger guards the rejection loop against never terminating.
func anyLonger(docs []string, encode func(int) []int32, seqlen int) bool {
	for i := range docs {
		if len(encode(i)) > seqlen {
			return true
		}
	}
	return false
}
