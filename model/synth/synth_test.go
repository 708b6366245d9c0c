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
// (PROVENANCE.md of the shared tokenizers gives the counts) and the files
// that go with them.
func TestTokenizerInfo(t *testing.T) {
	cases := []struct {
		dir             string
		vocab, bos, eos int
		files           []string
	}{
		{"tokenizers/llama3", 128000 + 256, 128000, 128001, []string{"tokenizer.model"}},
		// eos_token <|im_end|>; no BOS, so bos_token_id repeats the EOS
		{"tokenizers/qwen2", 151646, 151645, 151645, []string{"vocab.json", "merges.txt", "tokenizer_config.json"}},
		{"tokenizers/gpt2", 50257, 50256, 50256, []string{"vocab.json", "merges.txt"}},
		{"models/llama2-tokenizer", 32000, 1, 2, []string{"tokenizer.model"}},
	}
	for _, c := range cases {
		info, err := ReadTokenizerInfo(shareddata.Path(t, c.dir))
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, f := range info.Files {
			files = append(files, filepath.Base(f))
		}
		if info.Vocab != c.vocab || info.BOS != c.bos || info.EOS != c.eos || strings.Join(files, " ") != strings.Join(c.files, " ") {
			t.Errorf("%s: %+v (files %v), want vocab %d bos %d eos %d files %v", c.dir, info, files, c.vocab, c.bos, c.eos, c.files)
		}
	}
}

func TestTokenizerInfoErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadTokenizerInfo(dir); err == nil || !strings.Contains(err.Error(), "no tokenizer in") {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "vocab.json"), []byte(`{"a":0}`), 0o644)
	if _, err := ReadTokenizerInfo(dir); err == nil || !strings.Contains(err.Error(), "no tokenizer in") {
		t.Errorf("vocab.json without merges.txt: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\nx y\n"), 0o644)
	if _, err := ReadTokenizerInfo(dir); err == nil {
		t.Error("a malformed vocab+merges tokenizer was read")
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
