package eval

import (
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

func TestStoriesLinesPerplexity(t *testing.T) {
	bin := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tokPath := shareddata.Path(t, "models/stories260K/tok512.bin")
	text := shareddata.Path(t, "text/tinystories/TinyStories-validation-head-794K.txt")
	ck, err := model.Open(bin, tokPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok, err := ck.LoadTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	ws, m, err := EvalWindows(Lines, text, tok, 256)
	if err != nil {
		t.Fatal(err)
	}
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
	t.Logf("ppl %.6f over %d predictions", res.PPL(), res.Count)
}
