package tokenizer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tinyWords are the multi-byte tokens of the synthetic vocabulary, in
// merge order; ids are 256+index (ids 0..255 are the bytes themselves).
var tinyWords = []string{"he", "ll", "hell", "hello", " w", " wo", "or", " wor", "ld", " world"}

// tinyMerges are the merges that build tinyWords, raw text "a b".
var tinyMerges = [][2]string{{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}, {" w", "o"}, {"o", "r"}, {" wo", "r"}, {"l", "d"}, {" wor", "ld"}}

// tinyJSON is a small byte-level tokenizer.json in GPT-2's layout.
func tinyJSON() tokenizerJSON {
	vocab := map[string]int{}
	for b := range 256 {
		vocab[string(byteChar[b])] = b
	}
	for i, w := range tinyWords {
		vocab[byteLevelEncode(w)] = 256 + i
	}
	var merges []string
	for _, m := range tinyMerges {
		merges = append(merges, byteLevelEncode(m[0])+" "+byteLevelEncode(m[1]))
	}
	return tokenizerJSON{
		PreTokenizer:  byteLevelPre(false, true),
		PostProcessor: obj{"type": "ByteLevel"},
		Decoder:       obj{"type": "ByteLevel"},
		Model:         bpeModelJSON(vocab, merges, false),
	}
}

func tinyID(w string) int {
	if len(w) == 1 {
		return int(w[0])
	}
	return 256 + slices.Index(tinyWords, w)
}

func loadTiny(t *testing.T, tj tokenizerJSON, cfg any) Tokenizer {
	t.Helper()
	return loadPath(t, writeTokenizerJSON(t, tj, cfg))
}

func TestTinyTokenizerJSON(t *testing.T) {
	pairs := tinyJSON()
	var pm [][2]string
	for _, m := range tinyMerges {
		pm = append(pm, [2]string{byteLevelEncode(m[0]), byteLevelEncode(m[1])})
	}
	pairs.Model["merges"] = pm
	for name, tj := range map[string]tokenizerJSON{"string merges": tinyJSON(), "pair merges": pairs} {
		tok := loadTiny(t, tj, nil)
		want := []int{tinyID("hello"), tinyID(" world"), '!', tinyID(" wo"), tinyID("ll")}
		if got := tok.Encode("hello world! woll", false, false); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
		if tok.VocabSize() != 256+len(tinyWords) || tok.BOS() != -1 || tok.EOS() != -1 || tok.Kind() != "hf-tokenizer-json" {
			t.Errorf("%s: vocab %d bos %d eos %d kind %s", name, tok.VocabSize(), tok.BOS(), tok.EOS(), tok.Kind())
		}
	}
}

// TestSplitBehaviors follows the tokenizers documentation of
// SplitDelimiterBehavior ("the-final--countdown" split on "-").
func TestSplitBehaviors(t *testing.T) {
	const s = "the-final--countdown"
	for _, c := range []struct {
		beh    string
		invert bool
		want   []string
	}{
		{"Removed", false, []string{"the", "final", "countdown"}},
		{"Isolated", false, []string{"the", "-", "final", "-", "-", "countdown"}},
		{"MergedWithPrevious", false, []string{"the-", "final-", "-", "countdown"}},
		{"MergedWithNext", false, []string{"the", "-final", "-", "-countdown"}},
		{"Contiguous", false, []string{"the", "-", "final", "--", "countdown"}},
		{"Removed", true, []string{"-", "-", "-"}},
		{"MergedWithPrevious", true, []string{"the-", "final-", "-", "countdown"}[:0]},
	} {
		if c.beh == "MergedWithPrevious" && c.invert {
			// Inverted, the words are the matches: each joins the
			// delimiter before it.
			c.want = []string{"the", "-final", "-", "-countdown"}
		}
		p := preStep{sp: literalSplitter("-"), beh: behaviors[c.beh], invert: c.invert}
		_, parts := p.split(s, nil, nil)
		if got := pieces(s, parts); !slices.Equal(got, c.want) {
			t.Errorf("%s invert=%v: %q, want %q", c.beh, c.invert, got, c.want)
		}
	}
	d := preStep{sp: digitSplitter{}, beh: behIsolated}
	if _, parts := d.split("ab12c3", nil, nil); !slices.Equal(pieces("ab12c3", parts), []string{"ab", "1", "2", "c", "3"}) {
		t.Errorf("Digits individual: %q", pieces("ab12c3", parts))
	}
	d.beh = behContiguous
	if _, parts := d.split("ab12c3", nil, nil); !slices.Equal(pieces("ab12c3", parts), []string{"ab", "12", "c", "3"}) {
		t.Errorf("Digits: %q", pieces("ab12c3", parts))
	}
}

// TestAddedTokens: matched before BPE, leftmost-longest, with lstrip,
// rstrip, single_word, normalized and split_special_tokens as tokenizers'
// AddedVocabulary applies them.
func TestAddedTokens(t *testing.T) {
	tj := tinyJSON()
	tj.Normalizer = obj{"type": "NFC"}
	tj.AddedTokens = []addedToken{
		{ID: 300, Content: "<a>", Special: true},
		{ID: 301, Content: "<a><b>", Special: true},
		{ID: 302, Content: "<l>", LStrip: true, Special: true},
		{ID: 303, Content: "<r>", RStrip: true, Special: true},
		{ID: 304, Content: "<w>", SingleWord: true},
		{ID: 305, Content: "\u01d8", Normalized: true}, // ǘ
		{ID: 306, Content: "\u1e09"},                   // ḉ
	}
	tok := loadTiny(t, tj, nil)
	enc := func(s string) []int { return tok.Encode(s, false, false) }
	cat := func(parts ...any) []int {
		var out []int
		for _, p := range parts {
			switch v := p.(type) {
			case int:
				out = append(out, v)
			case string:
				out = append(out, enc(v)...)
			}
		}
		return out
	}
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"x<a><b>y<a>", cat("x", 301, "y", 300)},
		{"a  <l> b", cat("a", 302, " b")},
		{"a <r>  b", cat("a ", 303, "b")},
		{"x<w>y", cat("x<", "w>y")},
		{"x <w> y", cat("x", " ", 304, " y")},
		{"u\u0308\u0301", cat(305)},              // normalised to ǘ, then matched
		{"c\u0327\u0301", cat(0xE1, 0xB8, 0x89)}, // ḉ is not normalised: not matched in c + ◌̧ + ◌́
		{"\u1e09", cat(306)},                     // but matched as written
		{"<a", cat("<", "a")},                    // prefix of a token only
		{"hello<a>", cat("hello", 300)},
	} {
		if got := enc(c.in); !slices.Equal(got, c.want) {
			t.Errorf("%q: %v, want %v", c.in, got, c.want)
		}
	}
	if tok.VocabSize() != 307 {
		t.Errorf("vocab %d, want 307", tok.VocabSize())
	}
	if got := tok.Decode(enc("x<a><b>\u01d8\u1e09")); got != "x<a><b>\u01d8\u1e09" {
		t.Errorf("decode %q", got)
	}
	split := loadTiny(t, tj, obj{"split_special_tokens": true})
	if got := split.Encode("<a>", false, false); !slices.Equal(got, []int{'<', 'a', '>'}) {
		t.Errorf("split_special_tokens: %v, want the text's own ids", got)
	}
	if got := split.Encode("<a>x<w>", false, false); slices.Contains(got, 300) || slices.Contains(got, 304) {
		// <w> is not special: single_word keeps it out here anyway.
		t.Errorf("split_special_tokens: special token matched: %v", got)
	}
	if got := split.Encode("x <w>", false, false); !slices.Contains(got, 304) {
		t.Errorf("split_special_tokens: non-special token not matched: %v", got)
	}
}

// TestBOSAndPrefixSpace: BOS from the TemplateProcessing, overridden by an
// explicit add_bos_token; add_prefix_space from the pre-tokenizer or the
// config.
func TestBOSAndPrefixSpace(t *testing.T) {
	tj := tinyJSON()
	tj.AddedTokens = []addedToken{{ID: 300, Content: "<s>", Special: true}, {ID: 301, Content: "</s>", Special: true}}
	tj.PostProcessor = obj{"type": "TemplateProcessing",
		"single":         []any{obj{"SpecialToken": obj{"id": "<s>", "type_id": 0}}, obj{"Sequence": obj{"id": "A", "type_id": 0}}},
		"special_tokens": obj{"<s>": obj{"id": "<s>", "ids": []int{300}, "tokens": []string{"<s>"}}}}
	for _, c := range []struct {
		cfg      any
		bos, eos int
	}{
		{nil, 300, -1},
		{obj{"eos_token": "</s>"}, 300, 301},
		{obj{"add_bos_token": false, "eos_token": obj{"content": "</s>", "__type": "AddedToken"}}, -1, 301},
		{obj{"add_bos_token": true, "bos_token": "</s>"}, 301, -1},
	} {
		tok := loadTiny(t, tj, c.cfg)
		if tok.BOS() != c.bos || tok.EOS() != c.eos {
			t.Errorf("config %v: bos %d eos %d, want %d %d", c.cfg, tok.BOS(), tok.EOS(), c.bos, c.eos)
		}
		want := []int{tinyID("hello")}
		if c.bos >= 0 {
			want = append([]int{c.bos}, want...)
		}
		if c.eos >= 0 {
			want = append(want, c.eos)
		}
		if got := tok.Encode("hello", true, true); !slices.Equal(got, want) {
			t.Errorf("config %v: %v, want %v", c.cfg, got, want)
		}
	}
	tj = tinyJSON()
	tj.PreTokenizer = byteLevelPre(true, true)
	prefixed := loadTiny(t, tj, nil)
	if got := prefixed.Encode("world", false, false); !slices.Equal(got, []int{tinyID(" world")}) {
		t.Errorf("add_prefix_space: %v", got)
	}
	if got := loadTiny(t, tj, obj{"add_prefix_space": false}).Encode("world", false, false); slices.Contains(got, tinyID(" world")) {
		t.Errorf("config add_prefix_space false: %v", got)
	}
}

// TestByteBPEBadInput: malformed or unsupported tokenizers fail at load
// with an error that says what is wrong.
func TestByteBPEBadInput(t *testing.T) {
	edit := func(f func(tj *tokenizerJSON)) []byte {
		tj := tinyJSON()
		f(&tj)
		b, _ := json.Marshal(tj)
		return b
	}
	model := func(f func(m map[string]any)) []byte {
		return edit(func(tj *tokenizerJSON) { f(tj.Model) })
	}
	good := edit(func(*tokenizerJSON) {})
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)/2], "JSON"},
		{"model not an object", []byte(`{"model": [1, 2]}`), "model: json"},
		{"model not BPE (WordPiece)", model(func(m map[string]any) { m["type"] = "WordPiece" }), `model type "WordPiece" not supported`},
		{"model not BPE (Unigram)", []byte(`{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}`), `model type "Unigram" not supported`},
		{"no vocab", model(func(m map[string]any) { delete(m, "vocab") }), "no vocab"},
		{"vocab not ids", model(func(m map[string]any) { m["vocab"] = map[string]any{"a": "b"} }), "model"},
		{"no merges", model(func(m map[string]any) { delete(m, "merges") }), "no merges"},
		{"merges not a list", model(func(m map[string]any) { m["merges"] = 5 }), "merges: want a list"},
		{"merge of three", model(func(m map[string]any) { m["merges"] = []string{"h e l"} }), "two tokens separated by one space"},
		{"merge names unknown token", model(func(m map[string]any) { m["merges"] = []string{"h Q\u0100"} }), `"QĀ" is not in the vocabulary`},
		{"merged token missing", model(func(m map[string]any) { m["merges"] = [][2]string{{"x", "y"}} }), `the merged token "xy" is not in the vocabulary`},
		{"vocab without byte symbols", model(func(m map[string]any) { delete(m["vocab"].(map[string]int), "Ġ") }), "no token for byte 0x20"},
		{"negative id", model(func(m map[string]any) { m["vocab"].(map[string]int)["zz"] = -3 }), "outside"},
		{"duplicate id", model(func(m map[string]any) { m["vocab"].(map[string]int)["zz"] = 7 }), "given to two tokens"},
		{"dropout", model(func(m map[string]any) { m["dropout"] = 0.1 }), "dropout"},
		{"subword prefix", model(func(m map[string]any) { m["continuing_subword_prefix"] = "##" }), "continuing_subword_prefix"},
		{"normalizer", edit(func(tj *tokenizerJSON) { tj.Normalizer = obj{"type": "Precompiled"} }), `normalizer "Precompiled" not supported`},
		{"normalizer in sequence", edit(func(tj *tokenizerJSON) {
			tj.Normalizer = obj{"type": "Sequence", "normalizers": []any{obj{"type": "NFC"}, obj{"type": "Lowercase"}}}
		}), `normalizer "Lowercase" not supported`},
		{"Metaspace", edit(func(tj *tokenizerJSON) { tj.PreTokenizer = obj{"type": "Metaspace"} }), `pre_tokenizer "Metaspace" not supported`},
		{"no ByteLevel", edit(func(tj *tokenizerJSON) { tj.PreTokenizer = splitPre(PatternGPT2) }), "no ByteLevel pre_tokenizer"},
		{"no pre_tokenizer", edit(func(tj *tokenizerJSON) { tj.PreTokenizer = nil }), "no ByteLevel pre_tokenizer"},
		{"Split after ByteLevel", edit(func(tj *tokenizerJSON) {
			tj.PreTokenizer = obj{"type": "Sequence", "pretokenizers": []any{byteLevelPre(false, false), splitPre(PatternGPT2)}}
		}), `"Split" after ByteLevel`},
		{"bad regex", edit(func(tj *tokenizerJSON) {
			tj.PreTokenizer = obj{"type": "Sequence", "pretokenizers": []any{splitPre(`(\p{L}`), byteLevelPre(false, false)}}
		}), "split regex"},
		{"bad behavior", edit(func(tj *tokenizerJSON) {
			tj.PreTokenizer = obj{"type": "Sequence", "pretokenizers": []any{obj{"type": "Split", "pattern": obj{"String": " "}, "behavior": "Sideways"}, byteLevelPre(false, false)}}
		}), `behavior "Sideways"`},
		{"decoder", edit(func(tj *tokenizerJSON) { tj.Decoder = obj{"type": "WordPiece"} }), `decoder "WordPiece" not supported`},
		{"no decoder", edit(func(tj *tokenizerJSON) { tj.Decoder = nil }), "no decoder"},
		{"post_processor", edit(func(tj *tokenizerJSON) { tj.PostProcessor = obj{"type": "RobertaProcessing"} }), `post_processor "RobertaProcessing" not supported`},
		{"template suffix", edit(func(tj *tokenizerJSON) {
			tj.PostProcessor = obj{"type": "TemplateProcessing", "single": []any{obj{"Sequence": obj{"id": "A"}}, obj{"SpecialToken": obj{"id": "h"}}},
				"special_tokens": obj{"h": obj{"ids": []int{104}}}}
		}), "after the text"},
		{"added token id", edit(func(tj *tokenizerJSON) { tj.AddedTokens = []addedToken{{ID: -1, Content: "<x>"}} }), "outside"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeTemp(t, "tokenizer.json", c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	t.Run("unknown eos_token", func(t *testing.T) {
		_, err := Load(writeTokenizerJSON(t, tinyJSON(), obj{"eos_token": "<none>"}))
		if err == nil || !strings.Contains(err.Error(), `eos_token "<none>"`) {
			t.Fatalf("error %v", err)
		}
	})
}

// writeVocabMerges writes a vocab.json / merges.txt directory.
func writeVocabMerges(t *testing.T, vocab map[string]int, merges string, cfg any) string {
	t.Helper()
	dir := t.TempDir()
	v, _ := json.Marshal(vocab)
	must(t, os.WriteFile(filepath.Join(dir, "vocab.json"), v, 0o644))
	if merges != "" {
		must(t, os.WriteFile(filepath.Join(dir, "merges.txt"), []byte(merges), 0o644))
	}
	if cfg != nil {
		c, _ := json.Marshal(cfg)
		must(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), c, 0o644))
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestVocabMergesFiles(t *testing.T) {
	tj := tinyJSON()
	vocab := tj.Model["vocab"].(map[string]int)
	merges := "#version: 0.2\n" + strings.Join(tj.Model["merges"].([]string), "\n") + "\n"
	dir := writeVocabMerges(t, vocab, merges, nil)
	tok := loadPath(t, dir)
	if got := tok.Encode("hello world", false, false); !slices.Equal(got, []int{tinyID("hello"), tinyID(" world")}) {
		t.Errorf("%v", got)
	}
	if tok.Kind() != "hf-vocab-merges" || tok.EOS() != -1 {
		t.Errorf("kind %s eos %d (<|endoftext|> is not in this vocabulary)", tok.Kind(), tok.EOS())
	}
	if files := Files(dir); len(files) != 2 || filepath.Base(files[0]) != "vocab.json" || filepath.Base(files[1]) != "merges.txt" {
		t.Errorf("Files: %v", files)
	}
	for _, c := range []struct {
		name   string
		merges string
		cfg    any
		vocab  map[string]int
		want   string
	}{
		{"bad merges line", "#version: 0.2\nh e\nhe\n", nil, vocab, "merges.txt line 3"},
		{"merges naming unknown token", "h \u0100\u0100\u0100\n", nil, vocab, `"ĀĀĀ" is not in the vocabulary`},
		{"no merges.txt", "", nil, vocab, "needs merges.txt"},
		{"tokenizer_class", "h e\n", obj{"tokenizer_class": "BertTokenizer"}, vocab, `tokenizer_class "BertTokenizer" not supported`},
		{"no byte symbols", "h e\n", nil, map[string]int{"h": 0, "e": 1, "he": 2}, "no token for byte 0x00"},
		{"bad config", "h e\n", "[", vocab, "tokenizer_config.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := writeVocabMerges(t, c.vocab, c.merges, c.cfg)
			_, err := Load(d)
			if c.merges == "" {
				_, err = Load(filepath.Join(d, "vocab.json"))
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no tokenizer in") {
		t.Errorf("empty directory: %v", err)
	}
}

// tiktokenFile writes ranks as a tiktoken file.
func tiktokenFile(toks []string) []byte {
	var sb strings.Builder
	for r, tok := range toks {
		fmt.Fprintf(&sb, "%s %d\n", base64.StdEncoding.EncodeToString([]byte(tok)), r)
	}
	return []byte(sb.String())
}

func byteTokens() []string {
	var toks []string
	for b := range 256 {
		toks = append(toks, string([]byte{byte(b)}))
	}
	return toks
}

func TestTiktokenBadInput(t *testing.T) {
	toks := append(byteTokens(), "he", "ll")
	good := tiktokenFile(toks)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"bad base64", append(slices.Clone(good), "!!! 258\n"...), "not base64"},
		{"rank twice", append(slices.Clone(good), "aGVs 257\n"...), "rank 257 given twice"},
		{"token twice", append(slices.Clone(good), "aGU= 258\n"...), "listed twice"},
		{"rank gap", append(slices.Clone(good), "aGVs 300\n"...), "not an integer in"},
		{"no rank", []byte("aGVs\n"), "not a recognised tokenizer"},
		{"missing byte", tiktokenFile(toks[1:]), "no token for byte 0x"},
		{"not Llama-3", good, "only Llama-3's (128000 ranks)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeTemp(t, "tokenizer.model", c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
