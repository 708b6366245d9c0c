package nn

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/synth"
)

// archGolden is a golden of tools/reference/decoder_ref.py: float64 logits
// of an independent PyTorch forward on a tiny synthetic model (see
// testdata/reference/README.md).
type archGolden struct {
	SHA256    map[string]string `json:"sha256"`
	IDs       [][]int32         `json:"ids"`
	Positions []int             `json:"positions"`
	Logits    [][][]float64     `json:"logits"`
}

// goldenModel writes the synthetic model the golden was made from (the
// same settings as the `unipruning synth` command in the golden's note)
// and checks that its bytes are those the reference read.
func goldenModel(t *testing.T, file, arch string, seed uint64, edit func(c *model.Config)) (*archGolden, *model.Checkpoint) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../testdata/reference", file))
	if err != nil {
		t.Fatal(err)
	}
	var g archGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	c := &model.Config{Layers: 2, Dim: 32, Hidden: 48, Heads: 4, Vocab: 96, MaxSeq: 64, BOS: 1, EOS: 2,
		NormEps: 1e-5, RopeTheta: 10000, TiedHead: true, DType: "F32"}
	if err := synth.Configure(c, arch); err != nil {
		t.Fatal(err)
	}
	edit(c)
	dir := t.TempDir()
	if err := model.SaveHF(dir, c, synth.Tensors(c, seed), 0); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != g.SHA256["model.safetensors"] {
		t.Fatalf("the synthetic model is not the one the golden was made from (sha256 %s, golden %s): regenerate the golden (testdata/reference/README.md)", got, g.SHA256["model.safetensors"])
	}
	ck, err := model.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return &g, ck
}

func compareArchGolden[T Float](t *testing.T, g *archGolden, ck *model.Checkpoint) float64 {
	w, err := Load[T](ck, Whole(ck.Config))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStage(w)
	var worst float64
	for wi, ids := range g.IDs {
		h, err := s.Forward(ids, nil, 1, len(ids), false)
		if err != nil {
			t.Fatal(err)
		}
		for pi, pos := range g.Positions {
			got := s.Logits(h, pos)
			for j, want := range g.Logits[wi][pi] {
				worst = math.Max(worst, relErr(float64(got[j]), want, 1))
			}
		}
	}
	return worst
}

// TestGoldenQwen3Logits: a bf16 Qwen3 model (per-head q/k norms, head_dim
// 16 with hidden size 32, so the query projection is wider than the model;
// GQA, untied head) against the PyTorch reference.
func TestGoldenQwen3Logits(t *testing.T) {
	g, ck := goldenModel(t, "qwen3_golden.json", "qwen3", 3, func(c *model.Config) {
		c.KVHeads, c.HeadDim, c.TiedHead, c.DType, c.RopeTheta, c.NormEps = 2, 16, false, "BF16", 1e6, 1e-6
	})
	if !ck.Config.QKNorm || ck.Config.QDim() != 64 {
		t.Fatalf("config read back as %+v", ck.Config)
	}
	if e := compareArchGolden[float64](t, g, ck); e > 1e-10 {
		t.Errorf("float64 logits differ from the reference by %.3g (relative)", e)
	} else {
		t.Logf("float64: max relative difference %.3g", e)
	}
	if e := compareArchGolden[float32](t, g, ck); e > 1e-5 {
		t.Errorf("float32 logits differ from the reference by %.3g (relative)", e)
	} else {
		t.Logf("float32: max relative difference %.3g", e)
	}
}

// TestGoldenMistralWindowLogits: Mistral's sliding window (5 tokens on
// windows of 24) against the reference's transformers mask.
func TestGoldenMistralWindowLogits(t *testing.T) {
	g, ck := goldenModel(t, "mistral_window_golden.json", "mistral", 4, func(c *model.Config) {
		c.KVHeads, c.HeadDim, c.SlidingWindow = 1, 8, 5
	})
	if ck.Config.SlidingWindow != 5 {
		t.Fatalf("window read back as %d", ck.Config.SlidingWindow)
	}
	if e := compareArchGolden[float64](t, g, ck); e > 1e-10 {
		t.Errorf("float64 logits differ from the reference by %.3g (relative)", e)
	} else {
		t.Logf("float64: max relative difference %.3g", e)
	}
}
