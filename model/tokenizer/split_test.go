package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// splitRunes are the characters the random texts are made of: every class
// the patterns tell apart, ASCII and not (letters, the contraction letters
// in both cases, marks, digits and other numbers, Unicode spaces, \r and \n,
// punctuation, symbols, emoji).
var splitRunes = []rune("aZsStTrReEvVmMlLdDſ\u212a'''   \t\t\n\n\r\u000b\u000c\u0085\u00a0\u2028\u3000\u200b" +
	"é日本語ж\u0301\u0903ΣΩ0123456789²½٣Ⅻ.,!?-_()\"/\\😀🦙€¥ﬀ\ufffd")

func randomSplitText(r *rand.Rand, n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteRune(splitRunes[r.IntN(len(splitRunes))])
	}
	return sb.String()
}

// foldedPattern spells out the case-insensitive contraction group of the
// Llama-3/Qwen2 patterns with Unicode simple case folding, which is what
// (?i) means in Oniguruma and Rust's regex: regexp2 folds like .NET, by
// lower-casing, so it would not let "'ſ" (ſ folds to s) be a contraction.
func foldedPattern(p string) string {
	const group = `(?i:'s|'t|'re|'ve|'m|'ll|'d)`
	if !strings.HasPrefix(p, group) {
		return p
	}
	class := func(r rune) string {
		c := "[" + string(r)
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			c += string(f)
		}
		return c + "]"
	}
	var alts []string
	for _, a := range []string{"s", "t", "re", "ve", "m", "ll", "d"} {
		alt := "'"
		for _, r := range a {
			alt += class(r)
		}
		alts = append(alts, alt)
	}
	return "(?:" + strings.Join(alts, "|") + ")" + p[len(group):]
}

var knownPatterns = []struct {
	name, pattern string
	sc            scanner
}{
	{"llama3", PatternLlama3, llama3Scanner{maxDigits: 3}},
	{"qwen2", PatternQwen2, llama3Scanner{maxDigits: 1}},
	{"gpt2", PatternGPT2, gpt2Scanner{}},
}

// TestScannersMatchRegexp2: on thousands of random texts, each hand-written
// scanner finds exactly the matches dlclark/regexp2 finds for its pattern,
// look-ahead included.
func TestScannersMatchRegexp2(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range knownPatterns {
		sp, err := newSplitter(p.pattern, true)
		if err != nil || sp != p.sc {
			t.Fatalf("%s: newSplitter gave %T (%v), want the scanner", p.name, sp, err)
		}
		re, _ := newSplitter(foldedPattern(p.pattern)+"|(?!)", true) // general engine
		if _, ok := re.(regexSplitter); !ok {
			t.Fatalf("%s: want the regexp2 fallback for an unknown pattern", p.name)
		}
		for i := range 3000 {
			s := randomSplitText(r, 1+i%40)
			got, want := p.sc.matches(s, nil), re.matches(s, nil)
			if !slices.Equal(got, want) {
				t.Fatalf("%s %q:\n scanner %v\n regexp2 %v", p.name, s, pieces(s, got), pieces(s, want))
			}
		}
	}
}

func pieces(s string, sp []span) []string {
	var out []string
	for _, x := range sp {
		out = append(out, s[x.start:x.end])
	}
	return out
}

// TestScannerCases pins the cases that make these patterns tricky, with the
// pieces the reference libraries give.
func TestScannerCases(t *testing.T) {
	llama := llama3Scanner{maxDigits: 3}
	for _, c := range []struct {
		sc   scanner
		in   string
		want []string
	}{
		// \s+(?!\S) leaves the last space for the next word.
		{llama, "a   b", []string{"a", "  ", " b"}},
		{gpt2Scanner{}, "a   b", []string{"a", "  ", " b"}},
		// A single space before a non-letter: \s+ alone (GPT-2), or
		// " ?[^\s\p{L}\p{N}]+" (Llama-3).
		{gpt2Scanner{}, "a \t1", []string{"a", " ", "\t", "1"}},
		{llama, "x .\n\ny", []string{"x", " .\n\n", "y"}},
		// Trailing whitespace at the end of the text is one piece.
		{llama, "a  ", []string{"a", "  "}},
		// \s*[\r\n]+ ends at the last newline of a whitespace run.
		{llama, "a \n \n  b", []string{"a", " \n \n", " ", " b"}},
		// Digits in threes (Llama-3), one by one (Qwen2).
		{llama, "12345", []string{"123", "45"}},
		{llama3Scanner{maxDigits: 1}, "123", []string{"1", "2", "3"}},
		// Contractions: case-insensitive for Llama-3 (also ſ, which folds
		// to s), case-sensitive for GPT-2.
		{llama, "I'M he'S it'ſ", []string{"I", "'M", " he", "'S", " it", "'ſ"}},
		{gpt2Scanner{}, "I'M he's", []string{"I", "'", "M", " he", "'s"}},
		// A non-letter, non-newline character joins the letters after it.
		{llama, "\tword(x", []string{"\tword", "(x"}},
		{llama, "\nword", []string{"\n", "word"}},
	} {
		if got := pieces(c.in, c.sc.matches(c.in, nil)); !slices.Equal(got, c.want) {
			t.Errorf("%T %q: %q, want %q", c.sc, c.in, got, c.want)
		}
	}
}

// FuzzSplitScanners: the scanners agree with regexp2 on any text (the
// fuzzer's strings may be invalid UTF-8, which the tokenizers replace
// first, so they are made valid the same way here).
func FuzzSplitScanners(f *testing.F) {
	for _, s := range []string{"", "a   b", "I'M he's", "x .\n\ny", "12345 ²½", "\t\t\n \u00a0x", "'ſ"} {
		f.Add(s)
	}
	refs := make([]splitter, len(knownPatterns))
	for i, p := range knownPatterns {
		refs[i], _ = newSplitter(foldedPattern(p.pattern)+"|(?!)", true)
	}
	f.Fuzz(func(t *testing.T, s string) {
		s = toValidUTF8(s)
		for i, p := range knownPatterns {
			got, want := p.sc.matches(s, nil), refs[i].matches(s, nil)
			if !slices.Equal(got, want) {
				t.Fatalf("%s %q:\n scanner %q\n regexp2 %q", p.name, s, pieces(s, got), pieces(s, want))
			}
		}
	})
}
