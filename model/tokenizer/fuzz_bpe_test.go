package tokenizer

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"
)

var bpeFuzzTexts = []string{"", "hello world", "  héllo\n\n\tworld  ", "\xff\xfe<a>", "I'M 123456 ²", "日本語 😀 e\u0301", "<|endoftext|>x"}

// checkIDsInRange encodes a few texts and decodes ids including invalid ones.
func checkIDsInRange(t *testing.T, tok Tokenizer, texts ...string) {
	t.Helper()
	for _, s := range append(texts, bpeFuzzTexts...) {
		for _, id := range tok.Encode(s, true, true) {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q): id %d outside vocab %d", s, id, tok.VocabSize())
			}
		}
	}
	ids := []int{-1, 0, 1, 255, tok.VocabSize() - 1, tok.VocabSize(), 1 << 40}
	tok.Decode(ids)
	for _, id := range ids {
		tok.Piece(0, id)
	}
}

// FuzzTokenizerJSON: any bytes as a tokenizer.json load or fail cleanly;
// what loads encodes with ids in range, and, when nothing but byte-level
// BPE touches the text (no normaliser, added tokens or prefix space), is
// lossless: Decode(Encode(s)) == s.
func FuzzTokenizerJSON(f *testing.F) {
	add := func(tj tokenizerJSON) {
		b, _ := json.Marshal(tj)
		f.Add(b, "hello world")
	}
	add(tinyJSON())
	tj := tinyJSON()
	tj.Normalizer = obj{"type": "NFC"}
	tj.PreTokenizer = obj{"type": "Sequence", "pretokenizers": []any{splitPre(PatternQwen2), obj{"type": "Digits", "individual_digits": true}, byteLevelPre(false, false)}}
	tj.AddedTokens = []addedToken{{ID: 300, Content: "<a>", Special: true, LStrip: true}, {ID: 301, Content: "b", SingleWord: true, Normalized: true}}
	add(tj)
	tj = tinyJSON()
	tj.PreTokenizer = obj{"type": "Sequence", "pretokenizers": []any{
		obj{"type": "Split", "pattern": obj{"Regex": `\s+|(?=\d)`}, "behavior": "MergedWithNext", "invert": true}, byteLevelPre(true, true)}}
	tj.PostProcessor = obj{"type": "TemplateProcessing", "single": []any{obj{"SpecialToken": obj{"id": "h"}}, obj{"Sequence": obj{"id": "A"}}},
		"special_tokens": obj{"h": obj{"ids": []int{104}}}}
	add(tj)
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {}, "merges": []}}`), "")
	defer func(d time.Duration) { regexTimeout = d }(regexTimeout)
	regexTimeout = 50 * time.Millisecond // mutated patterns can backtrack forever
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		tok, err := parse(data)
		if err != nil {
			if tok != nil {
				t.Fatal("tokenizer and error both returned")
			}
			return
		}
		checkIDsInRange(t, tok, text)
		b, ok := tok.(*ByteBPE)
		if !ok || b.norm != nil || b.added != nil || b.addedN != nil || slices.ContainsFunc(b.steps, func(p preStep) bool { return p.prefixSpace }) {
			return
		}
		if got, want := tok.Decode(tok.Encode(text, false, false)), toValidUTF8(text); got != want {
			t.Fatalf("Decode(Encode(%q)) = %q", text, got)
		}
	})
}

// FuzzTiktoken: any bytes as a tiktoken file load or fail cleanly; ranks
// that parse (whatever their count) make a tokenizer that is lossless and
// encodes a piece that is a token as that token.
func FuzzTiktoken(f *testing.F) {
	f.Add(tiktokenFile(append(byteTokens(), "he", "ll", "hell", "hello", " w", " wo", " world")), "hello world")
	f.Add(tiktokenFile(append(byteTokens(), "ab", "abc", "bc", "bcd", "abcd")), "abcd abc bcd")
	f.Add([]byte("aGVsbG8= 0\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		if tok, err := parse(data); err == nil {
			checkIDsInRange(t, tok, text)
		} else if tok != nil {
			t.Fatal("tokenizer and error both returned")
		}
		ranks, byRank, err := parseTiktokenRanks(data)
		if err != nil {
			return
		}
		tok, err := newTiktoken(ranks, byRank, []string{"<s>", "</s>"}, llama3Scanner{maxDigits: 3})
		if err != nil {
			return
		}
		checkIDsInRange(t, tok, text)
		if got, want := tok.Decode(tok.Encode(text, false, false)), toValidUTF8(text); got != want {
			t.Fatalf("Decode(Encode(%q)) = %q", text, got)
		}
		for r, p := range byRank {
			if llama3Scanner.matchAt(llama3Scanner{3}, p, 0) == len(p) && toValidUTF8(p) == p && !slices.Contains([]string{"<s>", "</s>"}, p) {
				if got := tok.Encode(p, false, false); !slices.Equal(got, []int{r}) {
					t.Fatalf("token %d %q encodes to %v", r, p, got)
				}
			}
		}
	})
}

// FuzzByteBPEEncode: on any text the loading paths of each real tokenizer
// agree (Llama-3's tiktoken ranks and its tokenizer.json; Qwen2's and
// GPT-2's vocab.json + merges.txt and tokenizer.json) and decoding gives
// the text back (NFC-normalised for Qwen2). For Llama-3 the two paths use
// different merge rules (tiktoken ranks concatenations; the converted
// tokenizer.json lists every split, ties broken by the halves' ranks), so
// a difference found here would be one between tiktoken and tokenizers
// themselves: worth reporting, not necessarily a bug in this package.
func FuzzByteBPEEncode(f *testing.F) {
	for _, s := range append(bpeFuzzTexts, "Cửa Việt", "<|begin_of_text|>x<|eot_id|>", "a   b\r\n\r\n 1234567") {
		f.Add(s)
	}
	pairs := [][2]string{{"llama3/tiktoken", "llama3/tokenizer.json"}, {"qwen2/vocab+merges", "qwen2/tokenizer.json"}, {"gpt2/vocab+merges", "gpt2/tokenizer.json"}}
	toks := map[string]Tokenizer{}
	for _, p := range pairs {
		for _, name := range p {
			toks[name] = loadByName(f, name)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range pairs {
			a, b := toks[p[0]].Encode(s, false, false), toks[p[1]].Encode(s, false, false)
			if !slices.Equal(a, b) {
				t.Fatalf("%q: %s %v, %s %v", s, p[0], a, p[1], b)
			}
			want := toValidUTF8(s)
			if p[0] == "qwen2/vocab+merges" {
				want = norm.NFC.String(want)
			}
			if got := toks[p[0]].Decode(a); got != want {
				t.Fatalf("%s: Decode(Encode(%q)) = %q", p[0], s, got)
			}
		}
	})
}
