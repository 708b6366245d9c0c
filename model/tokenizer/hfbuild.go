package tokenizer

import (
	"errors"
	"fmt"
	"strings"
)

// bpeSpec is what the Hugging Face loaders (tokenizer.json, vocab.json +
// merges.txt) gather before building a ByteBPE.
type bpeSpec struct {
	kind         string
	vocab        map[string]int // byte-level spelling -> id
	merges       [][2]string    // in rank order
	ignoreMerges bool
	added        []addedToken
	splitSpecial bool
	norm         func(string) string
	steps        []preStep
	bos          int    // id put in front by the post-processor, -1 none
	eosName      string // "" = no EOS
}

// buildByteBPE checks a Hugging Face byte-level BPE and builds its tables.
func buildByteBPE(sp bpeSpec) (*ByteBPE, error) {
	if len(sp.vocab) == 0 {
		return nil, errors.New("empty vocabulary")
	}
	n, err := idSpace(sp)
	if err != nil {
		return nil, err
	}
	t := &ByteBPE{kind: sp.kind, norm: sp.norm, steps: sp.steps, bos: sp.bos, eos: -1, n: n}
	t.model.wholeFirst = sp.ignoreMerges
	if err := t.vocabTables(sp.vocab); err != nil {
		return nil, err
	}
	if t.model.merges, err = mergeTable(sp.vocab, sp.merges); err != nil {
		return nil, err
	}
	t.addedTables(sp)
	if sp.eosName != "" {
		id, ok := lookupName(&sp, sp.eosName)
		if !ok {
			return nil, fmt.Errorf("eos_token %q is not a token of the vocabulary", sp.eosName)
		}
		t.eos = id
	}
	if t.bos >= t.n {
		return nil, fmt.Errorf("BOS id %d outside the vocabulary of %d", t.bos, t.n)
	}
	return t, nil
}

// idSpace checks the ids and returns the vocabulary size (largest id + 1).
func idSpace(sp bpeSpec) (int, error) {
	maxID := -1
	for tok, id := range sp.vocab {
		if id < 0 || id >= maxVocabSize {
			return 0, fmt.Errorf("vocabulary: token %q has id %d outside [0, %d)", tok, id, maxVocabSize)
		}
		maxID = max(maxID, id)
	}
	for _, a := range sp.added {
		if a.ID < 0 || a.ID >= maxVocabSize {
			return 0, fmt.Errorf("added token %q has id %d outside [0, %d)", a.Content, a.ID, maxVocabSize)
		}
		maxID = max(maxID, a.ID)
	}
	if count := len(sp.vocab) + len(sp.added); maxID+1 > 2*count+1024 {
		return 0, fmt.Errorf("ids run up to %d for %d tokens: too sparse for a vocabulary", maxID, count)
	}
	return maxID + 1, nil
}

// vocabTables fills the decode texts and the raw-bytes vocabulary, and
// checks that the 256 byte symbols are there.
func (t *ByteBPE) vocabTables(vocab map[string]int) error {
	m := &t.model
	m.vocab = make(map[string]int32, len(vocab))
	t.text = make([]string, t.n)
	seen := make([]bool, t.n)
	for tok, id := range vocab {
		if seen[id] {
			return fmt.Errorf("vocabulary: id %d given to two tokens (one is %q)", id, tok)
		}
		seen[id] = true
		raw, ok := byteLevelDecode(tok)
		t.text[id] = raw
		if ok {
			m.vocab[raw] = int32(id)
		}
	}
	for b := range 256 {
		id, ok := vocab[string(byteChar[b])]
		if !ok {
			return fmt.Errorf("vocabulary has no token for byte 0x%02X (byte-level symbol %q): not a byte-level BPE vocabulary (all 256 byte symbols are needed)", b, string(byteChar[b]))
		}
		m.byteID[b] = int32(id)
	}
	return nil
}

// mergeTable maps each merge's pair of ids to its rank and result; every
// token it names, and the merged one, must be in the vocabulary.
func mergeTable(vocab map[string]int, merges [][2]string) (map[uint64]mergeRule, error) {
	table := make(map[uint64]mergeRule, len(merges))
	for rank, mg := range merges {
		a, okA := vocab[mg[0]]
		b, okB := vocab[mg[1]]
		ab, okAB := vocab[mg[0]+mg[1]]
		switch {
		case !okA:
			return nil, fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", rank+1, mg[0], mg[1], mg[0])
		case !okB:
			return nil, fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", rank+1, mg[0], mg[1], mg[1])
		case !okAB:
			return nil, fmt.Errorf("merge %d (%q %q): the merged token %q is not in the vocabulary", rank+1, mg[0], mg[1], mg[0]+mg[1])
		}
		// A later duplicate replaces an earlier one, as in tokenizers.
		table[pairKey(int32(a), int32(b))] = mergeRule{int32(rank), int32(ab)}
	}
	return table, nil
}

// addedTables sorts the added tokens into the two matchers (raw text,
// normalised text) and sets their decode texts.
func (t *ByteBPE) addedTables(sp bpeSpec) {
	var plain, normed []addedToken
	for _, a := range sp.added {
		if a.Content == "" {
			continue // tokenizers ignores empty added tokens
		}
		text := a.Content
		switch {
		case a.Normalized && sp.norm != nil:
			text = sp.norm(text)
			b := a
			b.Content = text
			normed = append(normed, b)
		case a.Normalized:
			normed = append(normed, a)
		default:
			plain = append(plain, a)
		}
		// The ByteLevel decoder maps the content's characters back to bytes
		// when all of them are byte symbols, else writes it as it is.
		t.text[a.ID], _ = byteLevelDecode(text)
	}
	t.added = newAddedMatcher(plain, sp.splitSpecial)
	t.addedN = newAddedMatcher(normed, sp.splitSpecial)
}

// withConfigSpecials returns the added tokens plus the config's special tokens
// that are vocabulary entries but not yet added tokens: transformers adds
// those to the tokenizer as special tokens, so they too are matched in text.
func withConfigSpecials(added []addedToken, vocab map[string]int, names ...string) []addedToken {
	for _, n := range names {
		if n == "" || lookupAdded(added, n) >= 0 {
			continue
		}
		if id, ok := vocab[n]; ok {
			added = append(added, addedToken{ID: id, Content: n, Special: true})
		}
	}
	return added
}

// parseMergeLine splits a "a b" merges line as tokenizers does: exactly one
// space between two tokens.
func parseMergeLine(line string) ([2]string, bool) {
	a, b, ok := strings.Cut(line, " ")
	if !ok || strings.Contains(b, " ") {
		return [2]string{}, false
	}
	return [2]string{a, b}, true
}
