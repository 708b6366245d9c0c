package model

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// writeL2C writes a tiny llama2.c v0 file with the given header; values
// are 0.001·index so offsets can be checked.
func writeL2C(t *testing.T, h [7]int32, extra int) string {
	t.Helper()
	c := &Config{Dim: int(h[0]), Hidden: int(h[1]), Layers: int(h[2]), Heads: int(h[3]), KVHeads: int(h[4]),
		Vocab: int(abs32(h[5])), MaxSeq: int(h[6]), HeadDim: int(h[0] / h[3]), TiedHead: h[5] > 0}
	lf := &llama2cFile{offsets: map[string]int64{}}
	end := lf.layout(c, 28)
	b := make([]byte, int(end)+extra)
	for i, v := range h {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	for i := 28; i+4 <= int(end); i += 4 {
		binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(i-28)/4*0.001))
	}
	p := filepath.Join(t.TempDir(), "m.bin")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func abs32(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

func TestLlama2CLayout(t *testing.T) {
	for _, vocab := range []int32{32, -32} { // shared and separate classifier
		p := writeL2C(t, [7]int32{16, 24, 2, 4, 2, vocab, 8}, 0)
		ck, err := Open(p, "")
		if err != nil {
			t.Fatal(err)
		}
		c := ck.Config
		if c.TiedHead != (vocab > 0) || c.KVDim() != 8 || !c.RopeInterleaved {
			t.Fatalf("config %+v", c)
		}
		emb, _ := ck.Read(EmbedName)
		if emb[0] != 0 || emb[5] != float32(5)*0.001 {
			t.Fatalf("embedding starts wrong: %v", emb[:6])
		}
		// wq of layer 0 follows the embedding (32·16) and rms_att (2·16).
		wq, _ := ck.Read(Target{0, Q}.TensorName())
		if want := float32(32*16+2*16) * 0.001; math.Abs(float64(wq[0]-want)) > 1e-6 {
			t.Fatalf("wq[0] = %v, want %v", wq[0], want)
		}
		_, hasHead := ck.Tensor(HeadName)
		if hasHead == c.TiedHead {
			t.Fatalf("lm_head presence %v with tied=%v", hasHead, c.TiedHead)
		}
		ck.Close()
	}
}

func TestLlama2CMalformed(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short.bin")
	os.WriteFile(short, []byte{1, 2, 3}, 0o644)
	cases := map[string]string{
		short: "shorter than the 28-byte header",
		writeL2C(t, [7]int32{16, 24, 2, 4, 2, 32, 8}, 4): "needs",          // trailing bytes
		writeL2C(t, [7]int32{16, 24, 2, 4, 3, 32, 8}, 0): "not a multiple", // GQA mismatch
		writeL2C(t, [7]int32{0, 24, 2, 4, 2, 32, 8}, 0):  "implausible",
		writeL2C(t, [7]int32{15, 24, 2, 4, 2, 32, 8}, 0): "not a multiple",
	}
	v2 := filepath.Join(t.TempDir(), "v2.bin")
	b := make([]byte, 256)
	binary.LittleEndian.PutUint32(b, 0x616b3432)
	binary.LittleEndian.PutUint32(b[4:], 2)
	os.WriteFile(v2, b, 0o644)
	cases[v2] = "version 2 is not supported"
	for p, want := range cases {
		_, err := Open(p, "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want error containing %q", filepath.Base(p), err, want)
		}
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.bin"), ""); err == nil {
		t.Error("a missing file opened")
	}
}

func TestStoriesCheckpoint(t *testing.T) {
	bin := shareddata.Path(t, "models/stories260K/stories260K.bin")
	ck, err := Open(bin, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	c := ck.Config
	if c.Dim != 64 || c.Hidden != 172 || c.Layers != 5 || c.Heads != 8 || c.KVHeads != 4 || c.Vocab != 512 || !c.TiedHead {
		t.Fatalf("stories260K config %+v", c)
	}
	if ck.TokenizerPath == "" || filepath.Base(ck.TokenizerPath) != "tok512.bin" {
		t.Fatalf("tokenizer beside the model not found: %q", ck.TokenizerPath)
	}
	hf, err := Open(shareddata.Path(t, "models/stories260K-hf"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	// v, o, gate, up, down and norms are identical in both files; q and k
	// are permuted (InterleavedToHalf).
	for _, name := range []string{Target{3, V}.TensorName(), Target{1, Down}.TensorName(), AttnNormName(4), EmbedName} {
		a, _ := ck.Read(name)
		b, _ := hf.Read(name)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s differs at %d", name, i)
			}
		}
	}
	q, _ := ck.Read(Target{2, K}.TensorName())
	qh, _ := hf.Read(Target{2, K}.TensorName())
	perm := InterleavedToHalf(q, c.KVHeads, c.HeadDim, c.Dim)
	for i := range perm {
		if perm[i] != qh[i] {
			t.Fatalf("permuted k differs at %d", i)
		}
	}
}

func TestCheckpointMissingTensor(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"architectures":["LlamaForCausalLM"],"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":10,"max_position_embeddings":8,"rms_norm_eps":1e-5,"tie_word_embeddings":true}`
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644)
	c, _ := ParseHFConfig([]byte(cfg))
	ts := []HFTensor{{Name: EmbedName, Shape: []int{10, 8}, Fill: func([]float32) error { return nil }}}
	if err := SaveHF(dir, c, ts, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, "")
	if err == nil || !strings.Contains(err.Error(), "missing tensors") {
		t.Fatalf("got %v, want missing tensors", err)
	}
}

// TestOpenLlama2CDirectory: a directory holding one llama2.c model and its
// tokenizer (as prune, extract and run write them) opens like the .bin
// itself; a directory with neither config.json nor a model, or with two
// models, is refused with the reason.
func TestOpenLlama2CDirectory(t *testing.T) {
	bin := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tok := shareddata.Path(t, "models/stories260K/tok512.bin")
	dir := t.TempDir()
	for _, f := range []string{bin, tok} {
		if err := copyFile(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	ck, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Format != FormatLlama2C || ck.Path != filepath.Join(dir, "stories260K.bin") || filepath.Base(ck.TokenizerPath) != "tok512.bin" {
		t.Fatalf("opened %s as %s with tokenizer %q", ck.Path, ck.Format, ck.TokenizerPath)
	}
	if _, err := Open(t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "neither config.json") {
		t.Fatalf("empty directory: %v", err)
	}
	if err := copyFile(bin, filepath.Join(dir, "other.bin")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, ""); err == nil || !strings.Contains(err.Error(), "several llama2.c models") {
		t.Fatalf("two models: %v", err)
	}
}
