package synth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
)

// TestTokenizerInfo: vocabulary sizes and BOS/EOS of the real tokenizers
// (PROVENANCE.md of the shared tokenizers gives the counts).
func TestTokenizerInfo(t *testing.T) {
	cases := []struct {
		dir             string
		kind            string
		vocab, bos, eos int
	}{
		{"tokenizers/llama3", "tiktoken", 128000 + 256, 128000, 128001},
		{"tokenizers/qwen2", "vocab+merges", 151646, 151643, 151645}, // eos_token <|im_end|>; no BOS, configs use <|endoftext|>
		{"tokenizers/gpt2", "vocab+merges", 50257, 50256, 50256},     // GPT-2's config: both <|endoftext|>
		{"models/llama2-tokenizer", "sentencepiece", 32000, 1, 2},
	}
	for _, c := range cases {
		info, err := ReadTokenizerInfo(shareddata.Path(t, c.dir))
		if err != nil {
			t.Fatal(err)
		}
		if info.Kind != c.kind || info.Vocab != c.vocab || info.BOS != c.bos || info.EOS != c.eos {
			t.Errorf("%s: %+v, want kind %s vocab %d bos %d eos %d", c.dir, info, c.kind, c.vocab, c.bos, c.eos)
		}
	}
}

func TestTokenizerInfoErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadTokenizerInfo(dir); err == nil || !strings.Contains(err.Error(), "no tokenizer files") {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "vocab.json"), []byte(`{"a":0}`), 0o644)
	if _, err := ReadTokenizerInfo(dir); err == nil || !strings.Contains(err.Error(), "merges.txt") {
		t.Errorf("vocab.json alone: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"eos_token":"<eos>"}`), 0o644)
	if _, err := ReadTokenizerInfo(dir); err == nil || !strings.Contains(err.Error(), "not in the vocabulary") {
		t.Errorf("unknown eos: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"added_tokens_decoder":{"7":{"content":"<eos>"}},"eos_token":{"content":"<eos>"}}`), 0o644)
	info, err := ReadTokenizerInfo(dir)
	if err != nil || info.Vocab != 8 || info.EOS != 7 {
		t.Errorf("added token: %+v %v", info, err)
	}
}

// TestTensorsShapes: every architecture's tensor list is what
// model.Open expects (checkTensors), and Llama's values do not depend on
// the tensors other architectures add.
func TestTensorsShapes(t *testing.T) {
	for _, arch := range ArchNames() {
		c := &model.Config{Layers: 2, Dim: 16, Hidden: 24, Heads: 4, KVHeads: 2, HeadDim: 6, Vocab: 40, MaxSeq: 32,
			NormEps: 1e-6, RopeTheta: 1e4, BOS: 1, EOS: 2, DType: "BF16"}
		if err := Configure(c, arch); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := model.SaveHF(dir, c, Tensors(c, 1), 0); err != nil {
			t.Fatal(err)
		}
		ck, err := model.Open(dir, "")
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if ck.Config.Arch != c.Arch || ck.Config.QKNorm != c.QKNorm || ck.Config.QKVBias != c.QKVBias || ck.Config.HeadDim != 6 {
			t.Errorf("%s read back as %+v", arch, ck.Config)
		}
		ck.Close()
	}
	if err := Configure(&model.Config{SlidingWindow: 8}, "qwen3"); err == nil {
		t.Error("a Qwen3 sliding window was accepted")
	}
	if err := Configure(&model.Config{}, "gpt2"); err == nil || !strings.Contains(err.Error(), "llama, mistral, qwen2, qwen3") {
		t.Errorf("unknown arch: %v", err)
	}
	a := &model.Config{Layers: 1, Dim: 8, Hidden: 8, Heads: 2, KVHeads: 2, HeadDim: 4, Vocab: 10}
	b := *a
	Configure(a, "llama")
	Configure(&b, "qwen2")
	ta, tb := Tensors(a, 5), Tensors(&b, 5)
	va, vb := make([]float32, 8*8), make([]float32, 8*8)
	find := func(ts []model.HFTensor, name string) model.HFTensor {
		for _, x := range ts {
			if x.Name == name {
				return x
			}
		}
		t.Fatalf("no %s", name)
		return model.HFTensor{}
	}
	name := model.Target{Layer: 0, Matrix: model.Down}.TensorName()
	find(ta, name).Fill(va)
	find(tb, name).Fill(vb)
	for i := range va {
		if va[i] != vb[i] {
			t.Fatal("down_proj values depend on the biases Qwen2 adds")
		}
	}
}
