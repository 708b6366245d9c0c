package eval

import (
	"math"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

// storiesLines opens stories260K (closed when the test ends) and cuts the
// TinyStories validation head into Lines windows of 256 tokens.
func storiesLines(t *testing.T) (*model.Checkpoint, [][]int32, *Manifest) {
	t.Helper()
	bin := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tokPath := shareddata.Path(t, "models/stories260K/tok512.bin")
	text := shareddata.Path(t, "text/tinystories/TinyStories-validation-head-794K.txt")
	ck, err := model.Open(bin, tokPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	tok, err := ck.LoadTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	ws, m, err := EvalWindows(Lines, text, tok, 256)
	if err != nil {
		t.Fatal(err)
	}
	return ck, ws, m
}

func TestStoriesLinesPerplexity(t *testing.T) {
	ck, ws, m := storiesLines(t)
	// The stream size is pinned by the data's PROVENANCE (transformers'
	// check of the same file): 384,909 tokens, 1503 windows of 256.
	if m.Tokens != 384909 || m.Windows != 1503 {
		t.Fatalf("stream has %d tokens, %d windows; want 384909, 1503", m.Tokens, m.Windows)
	}
	w, err := nn.Load[float32](ck, nn.Whole(ck.Config))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Perplexity(nn.NewStage(w), ws, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Independent PyTorch reference (tools/reference/make_goldens.py,
	// float64): nll_sum 645299.930182012, ppl 5.385398224022035.
	const refNLL, refPPL = 645299.930182012, 5.385398224022035
	if res.Count != 383265 {
		t.Fatalf("%d predictions, want 383265", res.Count)
	}
	if d := math.Abs(res.PPL()-refPPL) / refPPL; d > 1e-4 {
		t.Fatalf("ppl %.9f differs from the reference %.9f by %.3g relative", res.PPL(), refPPL, d)
	}
	t.Logf("ppl %.9f (reference %.9f), nll sum %.4f (reference %.4f)", res.PPL(), refPPL, res.Sum, refNLL)
}
