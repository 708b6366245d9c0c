package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// writeTinyHF writes a 1-layer zero-weight HF model with the given
// vocabulary size, to test how tokenizers are found and checked.
func writeTinyHF(t *testing.T, vocab int) string {
	t.Helper()
	dir := t.TempDir()
	c := &Config{Arch: "LlamaForCausalLM", Dim: 8, Hidden: 16, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 4, Vocab: vocab, MaxSeq: 16,
		NormEps: 1e-5, RopeTheta: 10000, TiedHead: true}
	zero := func([]float32) error { return nil }
	ts := []HFTensor{{Name: EmbedName, Shape: []int{vocab, 8}, Fill: zero}, {Name: NormName, Shape: []int{8}, Fill: zero},
		{Name: AttnNormName(0), Shape: []int{8}, Fill: zero}, {Name: MLPNormName(0), Shape: []int{8}, Fill: zero}}
	for m := Matrix(0); m < NumMatrices; m++ {
		o, i := m.Shape(c)
		ts = append(ts, HFTensor{Name: Target{0, m}.TensorName(), Shape: []int{o, i}, Fill: zero})
	}
	if err := SaveHF(dir, c, ts, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

func link(t *testing.T, src, dir string) {
	t.Helper()
	if err := os.Symlink(src, filepath.Join(dir, filepath.Base(src))); err != nil {
		t.Fatal(err)
	}
}

// TestTokenizerFound: each kind of tokenizer a model directory can hold is
// found and loaded; a tokenizer given apart is copied whole into outputs.
func TestTokenizerFound(t *testing.T) {
	gpt2 := shareddata.Path(t, "tokenizers/gpt2")
	llama3 := shareddata.Path(t, "tokenizers/llama3/tokenizer.model")
	for _, c := range []struct {
		name  string
		vocab int
		files []string
		kind  string
	}{
		{"vocab+merges", 50304, []string{filepath.Join(gpt2, "vocab.json"), filepath.Join(gpt2, "merges.txt")}, "hf-vocab-merges"},
		{"tiktoken", 128256, []string{llama3}, "tiktoken"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTinyHF(t, c.vocab)
			for _, f := range c.files {
				link(t, f, dir)
			}
			ck, err := Open(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			tok, err := ck.LoadTokenizer()
			if err != nil {
				t.Fatal(err)
			}
			if tok.Kind() != c.kind {
				t.Errorf("kind %s, want %s (path %s)", tok.Kind(), c.kind, ck.TokenizerPath)
			}
		})
	}
	// Given apart (--tokenizer DIR), the tokenizer's files go with the output.
	ck, err := Open(writeTinyHF(t, 50257), gpt2)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if _, err := ck.LoadTokenizer(); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := SaveLike(ck, out, func(string, []float32) (bool, error) { return false, nil }, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"vocab.json", "merges.txt"} {
		if _, err := os.Stat(filepath.Join(out, n)); err != nil {
			t.Errorf("output lacks the tokenizer's %s: %v", n, err)
		}
	}
}

// TestTokenizerLargerThanModel: a config whose vocab_size is smaller than
// the tokenizer's is an error that names both sizes.
func TestTokenizerLargerThanModel(t *testing.T) {
	for _, c := range []struct {
		model, tok string
		want       string
	}{
		{writeTinyHF(t, 50000), shareddata.Path(t, "tokenizers/gpt2"), "has 50257 tokens but the model's vocab_size is 50000"},
		{shareddata.Path(t, "models/stories260K/stories260K.bin"), shareddata.Path(t, "tokenizers/qwen2"), "has 151646 tokens but the model's vocab_size is 512"},
		{shareddata.Path(t, "models/stories260K/stories260K.bin"), shareddata.Path(t, "models/llama2-tokenizer/tokenizer.model"), "has 32000 tokens"},
	} {
		ck, err := Open(c.model, c.tok)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ck.LoadTokenizer()
		ck.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s with %s: error %v, want one containing %q", c.model, c.tok, err, c.want)
		}
	}
}
