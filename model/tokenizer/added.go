package tokenizer

import (
	"slices"
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens (or
// tokenizer_config.json's added_tokens_decoder): text matched in the input
// before normalisation and BPE and turned into one id.
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedMatcher finds added tokens in text the way tokenizers'
// AddedVocabulary does: leftmost-longest matches (its Aho-Corasick
// automaton's LeftmostLongest kind), scanning on after each match; a match
// that fails single_word is dropped (not retried shorter); lstrip / rstrip
// widen a match over the whitespace beside it.
type addedMatcher struct {
	toks  []addedToken
	nodes []trieNode
	// skipSpecial: special tokens are not matched (split_special_tokens).
	skipSpecial bool
}

type trieNode struct {
	keys []byte
	next []int32
	tok  int32 // index into toks of the token ending here, or -1
}

func newAddedMatcher(toks []addedToken, skipSpecial bool) *addedMatcher {
	if len(toks) == 0 {
		return nil
	}
	a := &addedMatcher{toks: toks, nodes: []trieNode{{tok: -1}}, skipSpecial: skipSpecial}
	for i, t := range toks {
		n := int32(0)
		for k := 0; k < len(t.Content); k++ {
			c := t.Content[k]
			j := slices.Index(a.nodes[n].keys, c)
			if j < 0 {
				a.nodes = append(a.nodes, trieNode{tok: -1})
				a.nodes[n].keys = append(a.nodes[n].keys, c)
				a.nodes[n].next = append(a.nodes[n].next, int32(len(a.nodes)-1))
				j = len(a.nodes[n].keys) - 1
			}
			n = a.nodes[n].next[j]
		}
		a.nodes[n].tok = int32(i)
	}
	return a
}

// longestAt returns the longest token that s[i:] starts with.
func (a *addedMatcher) longestAt(s string, i int) (tok, end int) {
	tok, n := -1, int32(0)
	for k := i; k < len(s); k++ {
		keys := a.nodes[n].keys
		j := slices.Index(keys, s[k])
		if j < 0 {
			break
		}
		n = a.nodes[n].next[j]
		if t := a.nodes[n].tok; t >= 0 {
			tok, end = int(t), k+1
		}
	}
	return tok, end
}

// split calls emit for the successive parts of s: an added token (id >= 0)
// or the text between them (id = -1).
func (a *addedMatcher) split(s string, emit func(part string, id int)) {
	if a == nil {
		emit(s, -1)
		return
	}
	root := a.nodes[0].keys
	done := 0 // end of what has been emitted
	for i := 0; i < len(s); {
		if slices.Index(root, s[i]) < 0 {
			i++
			continue
		}
		tok, stop := a.longestAt(s, i)
		if tok < 0 {
			i++
			continue
		}
		t := &a.toks[tok]
		start := i
		i = stop
		if a.skipSpecial && t.Special {
			continue
		}
		if t.SingleWord && ((start > 0 && endsWithWord(s[:start])) || (stop < len(s) && startsWithWord(s[stop:]))) {
			continue
		}
		if t.LStrip {
			start = max(trailingSpaceStart(s[:start]), done)
		}
		if t.RStrip {
			stop += leadingSpaceLen(s[stop:])
			i = stop
		}
		if done < start {
			emit(s[done:start], -1)
		}
		emit(s[start:stop], t.ID)
		done = stop
	}
	if done < len(s) || len(s) == 0 {
		emit(s[done:], -1)
	}
}

// isWordRune is \w of Rust's regex crate: Alphabetic, marks, decimal
// digits, connector punctuation and joiners.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.Other_Alphabetic, r) || unicode.Is(unicode.Nl, r) ||
		unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordRune(r)
}

// trailingSpaceStart is where the whitespace at the end of s begins.
func trailingSpaceStart(s string) int {
	for len(s) > 0 {
		r, n := utf8.DecodeLastRuneInString(s)
		if !unicode.IsSpace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return len(s)
}

// leadingSpaceLen is the length of the whitespace at the start of s.
func leadingSpaceLen(s string) int {
	n := 0
	for _, r := range s {
		if !unicode.IsSpace(r) {
			break
		}
		n += utf8.RuneLen(r)
	}
	return n
}
