package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// The split patterns of the byte-level BPE families, as written in their
// tokenizer.json files (and, for Llama-3, in Meta's tiktoken tokenizer.py).
// Each has a hand-written scanner (below) that gives exactly the matches of
// the pattern under the backtracking (Oniguruma / fancy-regex) semantics
// the reference libraries use; split_test.go checks every scanner against
// a general backtracking engine (dlclark/regexp2) on random text.
const (
	// PatternLlama3 is Llama-3's split regex (also OpenAI's cl100k_base).
	PatternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternQwen2 is Qwen2's (Qwen2.5, Qwen3): Llama-3's with single digits.
	PatternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternGPT2 is GPT-2's, the one a ByteLevel pre-tokenizer with
	// use_regex applies.
	PatternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// span is a piece [start, end) of a string; match tells whether it is a
// match of the pattern (true) or text between matches.
type span struct {
	start, end int
	match      bool
}

// splitter finds the matches of a pre-tokenizer pattern.
type splitter interface {
	// matches appends the successive non-overlapping matches of the
	// pattern in s (as find_iter reports them) to dst.
	matches(s string, dst []span) []span
}

// scanner is a splitter whose matches cover the whole string, one after
// another, so the pipeline can walk them without a buffer.
type scanner interface {
	splitter
	// matchAt returns the end of the match that starts at i < len(s).
	matchAt(s string, i int) int
}

// newSplitter returns the splitter of a Split pre-tokenizer pattern: a
// hand-written scanner for the known family patterns, a literal search for
// String patterns, and dlclark/regexp2 (a backtracking engine with
// look-around, like the Oniguruma engine Hugging Face uses) for any other
// regex.
func newSplitter(pattern string, isRegex bool) (splitter, error) {
	if !isRegex {
		return literalSplitter(pattern), nil
	}
	switch pattern {
	case PatternLlama3:
		return llama3Scanner{maxDigits: 3}, nil
	case PatternQwen2:
		return llama3Scanner{maxDigits: 1}, nil
	case PatternGPT2:
		return gpt2Scanner{}, nil
	}
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("split regex %q: %w", pattern, err)
	}
	re.MatchTimeout = regexTimeout
	return regexSplitter{re}, nil
}

// charClass is what the family patterns distinguish about a rune.
type charClass uint8

const (
	clOther   charClass = iota // [^\s\p{L}\p{N}]
	clLetter                   // \p{L}
	clNumber                   // \p{N}
	clSpace                    // \s other than \r and \n
	clNewline                  // \r or \n
)

var asciiClass = func() (t [utf8.RuneSelf]charClass) {
	for r := range t {
		t[r] = classOf(rune(r))
	}
	return t
}()

// classOf classifies a rune by Unicode general category (L, N) and the
// White_Space property, which is what \p{L}, \p{N} and \s mean in the
// Oniguruma and Rust regex engines.
func classOf(r rune) charClass {
	switch {
	case r == '\r' || r == '\n':
		return clNewline
	case unicode.IsSpace(r):
		return clSpace
	case unicode.IsLetter(r):
		return clLetter
	case unicode.IsNumber(r):
		return clNumber
	}
	return clOther
}

// classAt returns the class and byte length of the rune at s[i:] (i < len(s)).
func classAt(s string, i int) (charClass, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return classOf(r), n
}

// runEnd returns where the run of runes of class c starting at i ends.
func runEnd(s string, i int, c charClass) int {
	for i < len(s) {
		ci, n := classAt(s, i)
		if ci != c {
			break
		}
		i += n
	}
	return i
}

// newlineRunEnd is the end of [\r\n]* at i.
func newlineRunEnd(s string, i int) int {
	for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

// contraction returns the byte length of the contraction suffix ('s, 't,
// 're, 've, 'm, 'll, 'd without the apostrophe) at the start of s, 0 if
// none. With fold the match is case-insensitive by Unicode simple case
// folding, as (?i:…) is in Oniguruma and Rust's regex (so "'ſ" is a
// contraction: ſ folds to s).
func contraction(s string, fold bool) int {
	r1, n1 := asciiFold(s, fold)
	switch r1 {
	case 's', 't', 'm', 'd':
		return n1
	case 'r', 'v', 'l':
		want := rune('e')
		if r1 == 'l' {
			want = 'l'
		}
		if r2, n2 := asciiFold(s[n1:], fold); r2 == want {
			return n1 + n2
		}
	}
	return 0
}

// asciiFold returns the first rune of s (0 if s is empty) and its length;
// with fold, a rune whose simple case-folding orbit holds an ASCII letter is
// returned as that letter in lower case.
func asciiFold(s string, fold bool) (rune, int) {
	if s == "" {
		return 0, 0
	}
	r, n := utf8.DecodeRuneInString(s)
	if !fold {
		return r, n
	}
	for f := r; ; {
		if 'A' <= f && f <= 'Z' {
			return f + 'a' - 'A', n
		}
		if 'a' <= f && f <= 'z' {
			return f, n
		}
		if f = unicode.SimpleFold(f); f == r {
			return r, n
		}
	}
}

// wsTail examines the whitespace run starting at i (s[i] is whitespace):
// it returns the run's end, the start of its last rune and the end of its
// last \r or \n (-1 if it has none).
func wsTail(s string, i int) (end, lastStart, nlEnd int) {
	end, lastStart, nlEnd = i, i, -1
	for end < len(s) {
		c, n := classAt(s, end)
		if c != clSpace && c != clNewline {
			break
		}
		if c == clNewline {
			nlEnd = end + n
		}
		lastStart = end
		end += n
	}
	return end, lastStart, nlEnd
}

// llama3Scanner matches PatternLlama3 (maxDigits 3) or PatternQwen2
// (maxDigits 1), trying the alternatives in order as a backtracking engine
// does:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3} |
//	 ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
type llama3Scanner struct{ maxDigits int }

func (l llama3Scanner) matches(s string, dst []span) []span { return scanAll(l, s, dst) }

func (l llama3Scanner) matchAt(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s[i+1:], true); n > 0 {
			return i + 1 + n
		}
	}
	c0, n0 := classAt(s, i)
	switch c0 {
	case clLetter:
		return runEnd(s, i, clLetter)
	case clNumber:
		j := i
		for k := 0; k < l.maxDigits && j < len(s); k++ {
			c, n := classAt(s, j)
			if c != clNumber {
				break
			}
			j += n
		}
		return j
	case clOther, clSpace:
		// [^\r\n\p{L}\p{N}]\p{L}+: one such rune, then letters.
		if j := i + n0; j < len(s) {
			if c1, _ := classAt(s, j); c1 == clLetter {
				return runEnd(s, j, clLetter)
			}
		}
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	j := i
	if s[i] == ' ' {
		j++
	}
	if j < len(s) {
		if c, _ := classAt(s, j); c == clOther {
			return newlineRunEnd(s, runEnd(s, j, clOther))
		}
	}
	// s[i] is whitespace. \s*[\r\n]+ backtracks to the run's last newline.
	end, lastStart, nlEnd := wsTail(s, i)
	if nlEnd >= 0 {
		return nlEnd
	}
	return spaceRun(s, i, end, lastStart)
}

// spaceRun is `\s+(?!\S)|\s+` on the whitespace run [i, end) whose last
// rune starts at lastStart: the whole run at the end of the text, else the
// run less its last rune (which then starts the next match), else (a single
// rune before a non-space) that rune.
func spaceRun(s string, i, end, lastStart int) int {
	if end == len(s) || lastStart == i {
		return end
	}
	return lastStart
}

// gpt2Scanner matches PatternGPT2:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
type gpt2Scanner struct{}

func (g gpt2Scanner) matches(s string, dst []span) []span { return scanAll(g, s, dst) }

func (gpt2Scanner) matchAt(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s[i+1:], false); n > 0 {
			return i + 1 + n
		}
	}
	j := i
	if s[i] == ' ' && i+1 < len(s) {
		j = i + 1
	}
	if c, _ := classAt(s, j); c != clSpace && c != clNewline {
		return runEnd(s, j, c)
	}
	end, lastStart, _ := wsTail(s, i)
	return spaceRun(s, i, end, lastStart)
}

// scanAll lists the matches of a scanner (they tile s).
func scanAll(sc scanner, s string, dst []span) []span {
	for i := 0; i < len(s); {
		e := sc.matchAt(s, i)
		dst = append(dst, span{i, e, true})
		i = e
	}
	return dst
}

// literalSplitter matches a fixed string (a Split pattern {"String": …}).
type literalSplitter string

func (l literalSplitter) matches(s string, dst []span) []span {
	if l == "" {
		return dst
	}
	for i := 0; ; {
		k := strings.Index(s[i:], string(l))
		if k < 0 {
			return dst
		}
		dst = append(dst, span{i + k, i + k + len(l), true})
		i += k + len(l)
	}
}

// digitSplitter matches each rune of category N (Rust's char::is_numeric),
// for the Digits pre-tokenizer.
type digitSplitter struct{}

func (digitSplitter) matches(s string, dst []span) []span {
	for i, r := range s {
		if unicode.IsNumber(r) {
			dst = append(dst, span{i, i + utf8.RuneLen(r), true})
		}
	}
	return dst
}

// regexTimeout bounds one regexp2 match. It is off (as in the reference
// libraries, a pattern that backtracks catastrophically is slow there too):
// a timed-out match would drop text. The fuzz tests set it, since mutated
// patterns can be catastrophic.
var regexTimeout = regexp2.DefaultMatchTimeout

// regexSplitter runs any other pattern on dlclark/regexp2. It works on
// runes, so match positions are mapped back to byte offsets.
type regexSplitter struct{ re *regexp2.Regexp }

func (r regexSplitter) matches(s string, dst []span) []span {
	m, err := r.re.FindStringMatch(s)
	if m == nil || err != nil {
		return dst
	}
	// byteAt[k] is the byte offset of rune k (regexp2 indexes runes).
	byteAt := make([]int, 0, len(s)+1)
	for i := range s {
		byteAt = append(byteAt, i)
	}
	byteAt = append(byteAt, len(s))
	for m != nil {
		start, end := m.Index, m.Index+m.Length
		dst = append(dst, span{byteAt[start], byteAt[end], true})
		if m, err = r.re.FindNextMatch(m); err != nil {
			break
		}
	}
	return dst
}
