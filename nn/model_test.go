package nn

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
)

// logitsOf runs a whole model on one sequence and returns the logits of
// every position.
func logitsOf(t *testing.T, ck *model.Checkpoint, ids []int32) [][]float32 {
	t.Helper()
	w, err := Load[float32](ck, Whole(ck.Config))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStage(w)
	h, err := s.Forward(ids, nil, 1, len(ids), false)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float32, len(ids))
	for i := range ids {
		out[i] = s.Logits(h, i)
	}
	return out
}

func maxRelDiff(a, b [][]float32) float64 {
	var worst float64
	for i := range a {
		for j := range a[i] {
			d := math.Abs(float64(a[i][j]-b[i][j])) / math.Max(1, math.Abs(float64(a[i][j])))
			worst = math.Max(worst, d)
		}
	}
	return worst
}

var storyIDs = []int32{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 285, 300, 270, 263, 290}

// TestHFMatchesLlama2C: the transformers-written HF copy of stories260K
// (half-rotation RoPE, permuted q/k) computes the llama2.c model's logits.
func TestHFMatchesLlama2C(t *testing.T) {
	bin, err := model.Open(shareddata.Path(t, "models/stories260K/stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	hf, err := model.Open(shareddata.Path(t, "models/stories260K-hf"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	if d := maxRelDiff(logitsOf(t, bin, storyIDs), logitsOf(t, hf, storyIDs)); d > 1e-5 {
		t.Fatalf("HF and llama2.c logits differ by %.3g", d)
	}
}

// TestConvertRoundTrip: convert writes an HF directory that loads back to
// the same logits, byte-identical to transformers' own save_pretrained.
func TestConvertRoundTrip(t *testing.T) {
	binPath := shareddata.Path(t, "models/stories260K/stories260K.bin")
	bin, err := model.Open(binPath, "")
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	out := filepath.Join(t.TempDir(), "hf")
	if err := model.WriteDirAtomically(out, false, func(tmp string) error { return model.ConvertToHF(bin, tmp) }); err != nil {
		t.Fatal(err)
	}
	conv, err := model.Open(out, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conv.Close()
	if conv.TokenizerPath == "" {
		t.Fatal("the converted directory has no tokenizer")
	}
	if d := maxRelDiff(logitsOf(t, bin, storyIDs), logitsOf(t, conv, storyIDs)); d > 1e-5 {
		t.Fatalf("converted logits differ by %.3g", d)
	}
	ours, _ := os.ReadFile(filepath.Join(out, "model.safetensors"))
	theirs, err := os.ReadFile(shareddata.Path(t, "models/stories260K-hf/model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if string(ours) != string(theirs) {
		t.Fatal("converted model.safetensors differs from the transformers-written one")
	}
}

// TestStoriesGreedy reproduces the greedy sample llama2.c documents for
// stories260K ("Once upon a time, there was a little girl named Lily...").
func TestStoriesGreedy(t *testing.T) {
	ck, err := model.Open(shareddata.Path(t, "models/stories260K/stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	w, err := Load[float32](ck, Whole(ck.Config))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Generate(NewStage(w), []int32{1}, 10, 0, nil, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("greedy ids %v, want %v", got, want)
		}
	}
}
