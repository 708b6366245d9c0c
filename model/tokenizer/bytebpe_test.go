package tokenizer

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// The byte-level BPE tokenizers of shared/data/tokenizers (see its
// PROVENANCE.md) and llama.cpp's goldens: ids the Hugging Face tokenizers
// library gives for 46 strings, no BOS.
const (
	llama3TiktokenPath = "tokenizers/llama3/tokenizer.model"
	qwen2Dir           = "tokenizers/qwen2"
	gpt2Dir            = "tokenizers/gpt2"
	goldenDir          = "tokenizers/goldens"
)

// readGoldens returns the inputs and ids of goldens/<name>.inp/.out: inputs
// separated by "\n__ggml_vocab_test__\n" (one after the last too), one line
// of space-separated ids per input.
func readGoldens(t testing.TB, name string) ([]string, [][]int) {
	t.Helper()
	inp, err := os.ReadFile(shareddata.Path(t, filepath.Join(goldenDir, name+".inp")))
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(shareddata.Path(t, filepath.Join(goldenDir, name+".out")))
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	if texts[len(texts)-1] != "" {
		t.Fatalf("%s.inp does not end with the separator", name)
	}
	texts = texts[:len(texts)-1]
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d inputs, %d id lines", name, len(texts), len(lines))
	}
	ids := make([][]int, len(lines))
	for i, l := range lines {
		for _, f := range strings.Fields(l) {
			id, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", name, i+1, err)
			}
			ids[i] = append(ids[i], id)
		}
	}
	return texts, ids
}

// checkGoldens encodes every golden input (no BOS) and compares, and checks
// that the ids decode back to the input.
func checkGoldens(t *testing.T, tok Tokenizer, name string) {
	texts, want := readGoldens(t, name)
	if len(texts) < 40 {
		t.Fatalf("only %d goldens", len(texts))
	}
	for i, s := range texts {
		got := tok.Encode(s, false, false)
		if !slices.Equal(got, want[i]) && !(len(got) == 0 && len(want[i]) == 0) {
			t.Errorf("%s #%d %q:\n got %v\nwant %v", name, i, s, got, want[i])
		}
		if d := tok.Decode(got); d != s {
			t.Errorf("%s #%d: Decode(Encode(%q)) = %q", name, i, s, d)
		}
	}
}

// tokenizerJSON is a tokenizer.json as the tokenizers library writes it
// (tokenizers/src/tokenizer/serialization.rs and the components' serde),
// filled by the tests from the shipped files.
type tokenizerJSON struct {
	Version       string         `json:"version"`
	Truncation    any            `json:"truncation"`
	Padding       any            `json:"padding"`
	AddedTokens   []addedToken   `json:"added_tokens"`
	Normalizer    any            `json:"normalizer"`
	PreTokenizer  any            `json:"pre_tokenizer"`
	PostProcessor any            `json:"post_processor"`
	Decoder       any            `json:"decoder"`
	Model         map[string]any `json:"model"`
}

type obj = map[string]any

func byteLevelPre(addPrefix, useRegex bool) obj {
	return obj{"type": "ByteLevel", "add_prefix_space": addPrefix, "trim_offsets": true, "use_regex": useRegex}
}

func splitPre(pattern string) obj {
	return obj{"type": "Split", "pattern": obj{"Regex": pattern}, "behavior": "Isolated", "invert": false}
}

func bpeModelJSON(vocab map[string]int, merges any, ignoreMerges bool) map[string]any {
	return obj{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
		"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignoreMerges,
		"vocab": vocab, "merges": merges}
}

// writeTokenizerJSON writes tj as dir/tokenizer.json (and cfg, if not nil,
// as tokenizer_config.json) and returns the tokenizer.json path.
func writeTokenizerJSON(t testing.TB, tj tokenizerJSON, cfg any) string {
	t.Helper()
	dir := t.TempDir()
	tj.Version = "1.0"
	b, err := json.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		c, _ := json.Marshal(cfg)
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// readVocabMerges reads a shipped vocab.json and merges.txt.
func readVocabMerges(t testing.TB, rel string) (map[string]int, []string) {
	t.Helper()
	var vocab map[string]int
	b, err := os.ReadFile(shareddata.Path(t, filepath.Join(rel, "vocab.json")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vocab); err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(shareddata.Path(t, filepath.Join(rel, "merges.txt")))
	if err != nil {
		t.Fatal(err)
	}
	var merges []string
	for _, l := range strings.Split(strings.TrimSuffix(string(m), "\n"), "\n") {
		if !strings.HasPrefix(l, "#version") {
			merges = append(merges, l)
		}
	}
	return vocab, merges
}

// qwen2TokenizerJSON is Qwen2's tokenizer.json layout (NFC; Split with the
// Qwen2 regex then ByteLevel without regex; ByteLevel decoder and
// post-processor; no BOS), with merges in the "a b" string form.
func qwen2TokenizerJSON(t testing.TB) string {
	vocab, merges := readVocabMerges(t, qwen2Dir)
	var cfg struct {
		Added map[string]addedToken `json:"added_tokens_decoder"`
	}
	b, err := os.ReadFile(shareddata.Path(t, filepath.Join(qwen2Dir, "tokenizer_config.json")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var added []addedToken
	for id, a := range cfg.Added {
		a.ID, _ = strconv.Atoi(id)
		added = append(added, a)
	}
	sort.Slice(added, func(i, j int) bool { return added[i].ID < added[j].ID })
	return writeTokenizerJSON(t, tokenizerJSON{
		AddedTokens:   added,
		Normalizer:    obj{"type": "NFC"},
		PreTokenizer:  obj{"type": "Sequence", "pretokenizers": []any{splitPre(PatternQwen2), byteLevelPre(false, false)}},
		PostProcessor: obj{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		Decoder:       obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		Model:         bpeModelJSON(vocab, merges, false),
	}, obj{"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|endoftext|>", "bos_token": nil})
}

// gpt2TokenizerJSON is GPT-2's tokenizer.json layout (ByteLevel with the
// GPT-2 regex; <|endoftext|> an added special token), with merges as
// [a, b] pairs.
func gpt2TokenizerJSON(t testing.TB) string {
	vocab, lines := readVocabMerges(t, gpt2Dir)
	merges := make([][2]string, len(lines))
	for i, l := range lines {
		a, b, _ := strings.Cut(l, " ")
		merges[i] = [2]string{a, b}
	}
	return writeTokenizerJSON(t, tokenizerJSON{
		AddedTokens:   []addedToken{{ID: 50256, Content: "<|endoftext|>", Special: true}},
		PreTokenizer:  byteLevelPre(false, true),
		PostProcessor: obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		Decoder:       obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		Model:         bpeModelJSON(vocab, merges, false),
	}, nil)
}

// llama3Ranks reads the tiktoken file: token bytes by rank.
func readLlama3Ranks(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(shareddata.Path(t, llama3TiktokenPath))
	if err != nil {
		t.Fatal(err)
	}
	var byRank []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		b64, r, _ := strings.Cut(l, " ")
		tok, err := base64.StdEncoding.DecodeString(b64)
		rank, err2 := strconv.Atoi(r)
		if err != nil || err2 != nil || rank != len(byRank) {
			t.Fatalf("tiktoken line %q", l)
		}
		byRank = append(byRank, string(tok))
	}
	return byRank
}

var llama3JSONOnce struct {
	sync.Once
	data []byte
}

// llama3TokenizerJSON converts the tiktoken ranks into Llama-3's
// tokenizer.json the way transformers' TikTokenConverter does
// (convert_slow_tokenizer.py): vocab = ranks in byte-level spelling; merges
// = every split of a token into two tokens, ordered by the rank of the
// merged token, then by the ranks of the two halves; ignore_merges; the
// Llama-3 Split regex then ByteLevel without regex; <|begin_of_text|> put
// in front by a TemplateProcessing; the 256 specials as added tokens.
func llama3TokenizerJSON(t testing.TB) string {
	llama3JSONOnce.Do(func() {
		byRank := readLlama3Ranks(t)
		ranks := make(map[string]int, len(byRank))
		vocab := make(map[string]int, len(byRank))
		for r, tok := range byRank {
			ranks[tok] = r
			vocab[byteLevelEncode(tok)] = r
		}
		type mg struct{ a, b string }
		var merges [][2]string
		for _, tok := range byRank {
			var local []mg
			for k := 1; k < len(tok); k++ {
				_, okA := ranks[tok[:k]]
				_, okB := ranks[tok[k:]]
				if okA && okB {
					local = append(local, mg{tok[:k], tok[k:]})
				}
			}
			sort.SliceStable(local, func(i, j int) bool {
				if ranks[local[i].a] != ranks[local[j].a] {
					return ranks[local[i].a] < ranks[local[j].a]
				}
				return ranks[local[i].b] < ranks[local[j].b]
			})
			for _, m := range local {
				merges = append(merges, [2]string{byteLevelEncode(m.a), byteLevelEncode(m.b)})
			}
		}
		var added []addedToken
		for i, s := range llama3Specials() {
			added = append(added, addedToken{ID: 128000 + i, Content: s, Special: true})
		}
		bos := obj{"id": "<|begin_of_text|>", "ids": []int{128000}, "tokens": []string{"<|begin_of_text|>"}}
		tj := tokenizerJSON{
			AddedTokens:  added,
			PreTokenizer: obj{"type": "Sequence", "pretokenizers": []any{splitPre(PatternLlama3), byteLevelPre(false, false)}},
			PostProcessor: obj{"type": "Sequence", "processors": []any{
				obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
				obj{"type": "TemplateProcessing",
					"single": []any{obj{"SpecialToken": obj{"id": "<|begin_of_text|>", "type_id": 0}}, obj{"Sequence": obj{"id": "A", "type_id": 0}}},
					"pair": []any{obj{"SpecialToken": obj{"id": "<|begin_of_text|>", "type_id": 0}}, obj{"Sequence": obj{"id": "A", "type_id": 0}},
						obj{"SpecialToken": obj{"id": "<|begin_of_text|>", "type_id": 1}}, obj{"Sequence": obj{"id": "B", "type_id": 1}}},
					"special_tokens": obj{"<|begin_of_text|>": bos}},
			}},
			Decoder: obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
			Model:   bpeModelJSON(vocab, merges, true),
		}
		tj.Version = "1.0"
		var err error
		if llama3JSONOnce.data, err = json.Marshal(tj); err != nil {
			t.Fatal(err)
		}
	})
	if llama3JSONOnce.data == nil {
		t.Fatal("Llama-3 tokenizer.json could not be built")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "tokenizer.json")
	// The tokenizer_config.json of meta-llama/Meta-Llama-3-8B, in the part
	// that matters here.
	cfg := `{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "tokenizer_class": "PreTrainedTokenizerFast"}`
	if err := os.WriteFile(p, llama3JSONOnce.data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadPath(t testing.TB, p string) Tokenizer {
	t.Helper()
	tok, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// byteBPEPaths lists every loading path of each family: name, golden,
// loader, expected kind, vocabulary size, BOS and EOS. DeepSeek-R1's Qwen
// distills use Qwen2.5's vocabulary: their goldens (inputs and ids) are
// Qwen2's, checked with Qwen2's files (DeepSeek's own added tokens are not
// in the shared data).
func byteBPEPaths() []struct {
	name, golden, kind string
	load               func(t testing.TB) Tokenizer
	vocab, bos, eos    int
} {
	return []struct {
		name, golden, kind string
		load               func(t testing.TB) Tokenizer
		vocab, bos, eos    int
	}{
		{"llama3/tiktoken", "llama-bpe", "tiktoken", func(t testing.TB) Tokenizer { return mustLoad(t, llama3TiktokenPath) }, 128256, 128000, 128001},
		{"llama3/tokenizer.json", "llama-bpe", "hf-tokenizer-json", func(t testing.TB) Tokenizer { return loadPath(t, llama3TokenizerJSON(t)) }, 128256, 128000, 128001},
		{"qwen2/vocab+merges", "qwen2", "hf-vocab-merges", func(t testing.TB) Tokenizer { return mustLoad(t, qwen2Dir) }, 151646, -1, 151645},
		{"qwen2/tokenizer.json", "qwen2", "hf-tokenizer-json", func(t testing.TB) Tokenizer { return loadPath(t, qwen2TokenizerJSON(t)) }, 151646, -1, 151643},
		{"deepseek-r1-qwen/vocab+merges", "deepseek-r1-qwen", "hf-vocab-merges", func(t testing.TB) Tokenizer { return loadByName(t, "qwen2/vocab+merges") }, 151646, -1, 151645},
		{"deepseek-r1-qwen/tokenizer.json", "deepseek-r1-qwen", "hf-tokenizer-json", func(t testing.TB) Tokenizer { return loadByName(t, "qwen2/tokenizer.json") }, 151646, -1, 151643},
		{"gpt2/vocab+merges", "gpt-2", "hf-vocab-merges", func(t testing.TB) Tokenizer { return mustLoad(t, gpt2Dir) }, 50257, -1, 50256},
		{"gpt2/tokenizer.json", "gpt-2", "hf-tokenizer-json", func(t testing.TB) Tokenizer { return loadPath(t, gpt2TokenizerJSON(t)) }, 50257, -1, -1},
	}
}

var loadedOnce sync.Map // path name -> Tokenizer, shared by the tests

// loadByName loads (once per test binary) the tokenizer of a loading path.
func loadByName(t testing.TB, name string) Tokenizer {
	t.Helper()
	if tok, ok := loadedOnce.Load(name); ok {
		return tok.(Tokenizer)
	}
	for _, c := range byteBPEPaths() {
		if c.name == name {
			tok := c.load(t)
			loadedOnce.Store(name, tok)
			return tok
		}
	}
	t.Fatalf("no loading path %q", name)
	return nil
}

// TestByteBPEGoldens: every golden, through every loading path.
func TestByteBPEGoldens(t *testing.T) {
	for _, c := range byteBPEPaths() {
		t.Run(c.name, func(t *testing.T) {
			tok := loadByName(t, c.name)
			if tok.Kind() != c.kind || tok.VocabSize() != c.vocab || tok.BOS() != c.bos || tok.EOS() != c.eos {
				t.Errorf("kind %s vocab %d bos %d eos %d, want %s %d %d %d",
					tok.Kind(), tok.VocabSize(), tok.BOS(), tok.EOS(), c.kind, c.vocab, c.bos, c.eos)
			}
			checkGoldens(t, tok, c.golden)
		})
	}
}
