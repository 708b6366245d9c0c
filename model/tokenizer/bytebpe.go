package tokenizer

import (
	"strings"
	"sync"
)

// ByteBPE is a byte-level BPE tokenizer: Hugging Face tokenizer.json or
// vocab.json + merges.txt (GPT-2, Llama-3, Qwen2 …), or a tiktoken ranks
// file (Llama-3's original tokenizer.model). Encoding follows the
// tokenizers library's pipeline, which tiktoken's is a special case of:
//  1. added tokens that are not normalised are cut out of the raw text
//     (AddedVocabulary, leftmost-longest);
//  2. each remaining part is normalised (NFC for Qwen2), then added tokens
//     that are normalised are cut out of it;
//  3. the pre-tokenizer steps split what remains into pieces (Split
//     regexes, Digits, ByteLevel with its optional GPT-2 regex);
//  4. each piece is merged by the BPE model over its UTF-8 bytes.
//
// Text is handled as raw bytes throughout: the byte-level alphabet
// (bytes_to_unicode) is only how vocabulary files spell bytes, so it is
// undone once at load instead of applied to every input.
type ByteBPE struct {
	kind   string
	model  bpeModel
	added  *addedMatcher // step 1
	addedN *addedMatcher // step 2
	norm   func(string) string
	steps  []preStep
	bos    int
	eos    int
	n      int
	text   []string // id -> the bytes Decode writes for it
}

func (t *ByteBPE) BOS() int       { return t.bos }
func (t *ByteBPE) EOS() int       { return t.eos }
func (t *ByteBPE) VocabSize() int { return t.n }

// Kind is "hf-tokenizer-json", "hf-vocab-merges" or "tiktoken".
func (t *ByteBPE) Kind() string { return t.kind }

// behavior is a Split pre-tokenizer's SplitDelimiterBehavior.
type behavior uint8

const (
	behIsolated behavior = iota
	behRemoved
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

var behaviors = map[string]behavior{
	"Isolated": behIsolated, "Removed": behRemoved, "MergedWithPrevious": behMergedWithPrevious,
	"MergedWithNext": behMergedWithNext, "Contiguous": behContiguous,
}

// preStep is one pre-tokenizer: it splits each piece it gets (after
// prepending a space when prefixSpace is set and the piece does not start
// with one) and hands the parts on to the next step.
type preStep struct {
	sp          splitter // nil: no split
	beh         behavior
	invert      bool
	prefixSpace bool // ByteLevel add_prefix_space
	byteLevel   bool // this is the ByteLevel step
}

// pretokState holds the span buffers of each pre-tokenizer step.
type pretokState struct{ m, parts [][]span }

var pretokPool = sync.Pool{New: func() any { return new(pretokState) }}

// Encode returns the ids of text: BOS first when bos is set and the
// tokenizer adds one (the post-processor's or tokenizer_config.json's
// choice; -1 = none), EOS last when eos is set and known. Invalid UTF-8 is
// first replaced by U+FFFD per maximal invalid subpart, as Python does when
// it decodes such bytes with errors="replace" (the libraries only take
// valid strings).
func (t *ByteBPE) Encode(text string, bos, eos bool) []int {
	text = toValidUTF8(text)
	out := make([]int, 0, len(text)/3+2)
	if bos && t.bos >= 0 {
		out = append(out, t.bos)
	}
	st := pretokPool.Get().(*pretokState)
	for len(st.m) < len(t.steps) {
		st.m, st.parts = append(st.m, nil), append(st.parts, nil)
	}
	t.added.split(text, func(part string, id int) {
		if id >= 0 {
			out = append(out, id)
			return
		}
		if t.norm != nil {
			part = t.norm(part)
		}
		t.addedN.split(part, func(p string, id int) {
			if id >= 0 {
				out = append(out, id)
				return
			}
			out = t.pretokenize(st, 0, p, out)
		})
	})
	pretokPool.Put(st)
	if eos && t.eos >= 0 {
		out = append(out, t.eos)
	}
	return out
}

// pretokenize runs the pre-tokenizer steps from level on s, then BPE.
func (t *ByteBPE) pretokenize(st *pretokState, level int, s string, out []int) []int {
	if s == "" {
		return out
	}
	if level == len(t.steps) {
		return t.model.encode(s, out)
	}
	step := &t.steps[level]
	if step.prefixSpace && s[0] != ' ' {
		s = " " + s
	}
	if step.sp == nil {
		return t.pretokenize(st, level+1, s, out)
	}
	if sc, ok := step.sp.(scanner); ok && step.beh == behIsolated && !step.invert {
		for i := 0; i < len(s); {
			e := sc.matchAt(s, i)
			out = t.pretokenize(st, level+1, s[i:e], out)
			i = e
		}
		return out
	}
	var parts []span
	st.m[level], parts = step.split(s, st.m[level], st.parts[level])
	st.parts[level] = parts
	for _, p := range parts {
		out = t.pretokenize(st, level+1, s[p.start:p.end], out)
	}
	return out
}

// split cuts s at the matches of the step's pattern and groups matches and
// the text between them as NormalizedString::split does for each behaviour.
// m and all are scratch buffers; the parts are returned in all's storage.
func (p *preStep) split(s string, m, all []span) (mOut, parts []span) {
	m = p.sp.matches(s, m[:0])
	all = all[:0]
	prev := 0
	for _, x := range m {
		if x.start > prev {
			all = append(all, span{prev, x.start, false})
		}
		all = append(all, x)
		prev = x.end
	}
	if prev < len(s) {
		all = append(all, span{prev, len(s), false})
	}
	if p.invert {
		for i := range all {
			all[i].match = !all[i].match
		}
	}
	switch p.beh {
	case behRemoved:
		out := all[:0]
		for _, x := range all {
			if !x.match {
				out = append(out, x)
			}
		}
		all = out
	case behContiguous:
		out := all[:0]
		prevMatch := false
		for i, x := range all {
			if i > 0 && x.match == prevMatch {
				out[len(out)-1].end = x.end
			} else {
				out = append(out, x)
			}
			prevMatch = x.match
		}
		all = out
	case behMergedWithPrevious:
		out := all[:0]
		prevMatch := false
		for _, x := range all {
			if x.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = x.end
			} else {
				out = append(out, x)
			}
			prevMatch = x.match
		}
		all = out
	case behMergedWithNext:
		// A match not preceded by a match joins the part before it, seen
		// from the back (tokenizers folds the reversed list).
		k := len(all)
		nextMatch := false
		for i := len(all) - 1; i >= 0; i-- {
			x := all[i]
			if x.match && !nextMatch && k < len(all) {
				all[k].start = x.start
			} else {
				k--
				all[k] = x
			}
			nextMatch = x.match
		}
		all = append(all[:0], all[k:]...)
	}
	return m, all
}

// Decode returns the text of ids as the tokenizers library decodes with
// skip_special_tokens=False (what tiktoken and Meta's reference do too):
// each token's bytes (an added token's content), concatenated, then invalid
// UTF-8 replaced by U+FFFD per maximal invalid subpart (from_utf8_lossy).
// Ids outside the vocabulary are skipped.
func (t *ByteBPE) Decode(ids []int) string {
	var sb strings.Builder
	for _, id := range ids {
		if id >= 0 && id < len(t.text) {
			sb.WriteString(t.text[id])
		}
	}
	return toValidUTF8(sb.String())
}

// Piece returns the bytes of id, to be written out as they come while
// generating: a multi-byte character split over tokens is complete once
// its last token is written.
func (t *ByteBPE) Piece(prev, id int) string {
	if id < 0 || id >= len(t.text) {
		return ""
	}
	return t.text[id]
}
