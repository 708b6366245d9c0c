package tasks

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/nn"
)

// TestEncodeMovesTrailingSpace: _encode_pair moves the context's trailing
// whitespace into the continuation, and the continuation is the whole
// encoding past the context's length, both with BOS.
func TestEncodeMovesTrailingSpace(t *testing.T) {
	s := storiesScorer(t, Options{})
	_, tok := storiesModel(t)
	ctx1, cont1, err := s.Encode(Request{"Once upon a ", "time"})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cont2, _ := s.Encode(Request{"Once upon a", " time"})
	if !slices.Equal(ctx1, ctx2) || !slices.Equal(cont1, cont2) {
		t.Fatalf("trailing space not moved: %v|%v vs %v|%v", ctx1, cont1, ctx2, cont2)
	}
	whole := tok.Encode("Once upon a time", true, false)
	if ctx1[0] != tok.BOS() || !slices.Equal(append(slices.Clone(ctx1), cont1...), whole) {
		t.Fatalf("ctx %v + cont %v, want BOS-prefixed %v", ctx1, cont1, whole)
	}
	noBOS := storiesScorer(t, Options{NoBOS: true})
	if c, _, _ := noBOS.Encode(Request{"Once upon a", " time"}); c[0] == tok.BOS() {
		t.Fatalf("NoBOS context starts with BOS: %v", c)
	}
}

// TestLeftTruncation checks the harness's input
// (ctx+cont)[-(max_length+1):][:-1] against the engine's own loss on that
// exact window (a separate code path for norm, head and log-softmax).
func TestLeftTruncation(t *testing.T) {
	const maxLen = 24
	s := storiesScorer(t, Options{MaxLength: maxLen})
	r := Request{strings.Repeat("Tom had a red ball. ", 8), " He liked to play with it."}
	res, err := s.Score([]Request{r}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cont, _ := s.Encode(r)
	all := toInt32(append(slices.Clone(ctx), cont...))
	if want := len(all) - (maxLen + 1); res[0].Truncated != want || want <= 0 {
		t.Fatalf("truncated %d tokens, want %d (> 0)", res[0].Truncated, want)
	}
	win := all[len(all)-(maxLen+1):]
	targets := make([]int32, maxLen)
	for i := range targets {
		targets[i] = -1
		if i >= maxLen-len(cont) {
			targets[i] = win[i+1]
		}
	}
	w, _ := storiesModel(t)
	st := nn.NewStage(w)
	h, err := st.Forward(win[:maxLen], nil, 1, maxLen, false)
	if err != nil {
		t.Fatal(err)
	}
	nll, n, _, err := st.HeadLoss(h, targets, false)
	if err != nil || n != len(cont) {
		t.Fatalf("HeadLoss: %v (%d targets)", err, n)
	}
	if math.Abs(res[0].LogLik+nll) > 1e-4 {
		t.Fatalf("loglik %.6f, engine loss on the truncated window %.6f", res[0].LogLik, -nll)
	}
}

func toInt32(v []int) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

// TestBatchingDoesNotChangeScores: right padding and batch composition
// must not change a request's result (causal attention), and requests
// sharing an input (one-token answers) must score as if alone. Float32
// kernels block their sums by matrix shape, so "the same" is to
// batchTolerance (observed ~2e-5 on a 36-token continuation), not bitwise.
func TestBatchingDoesNotChangeScores(t *testing.T) {
	const batchTolerance = 1e-4
	tk, docs := loadDocs(t, "piqa")
	_, bq := loadDocs(t, "boolq")
	var reqs []Request
	for _, d := range docs[:6] {
		reqs = append(reqs, d.Requests(tk.Kind)...)
	}
	reqs = append(reqs, bq[1827].Requests(MultipleChoice)...) // " no" / " yes" share their input
	base, err := storiesScorer(t, Options{Batch: 1}).Score(reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []int{0, 3, 64} {
		got, err := storiesScorer(t, Options{Batch: b}).Score(reqs, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Abs(got[i].LogLik-base[i].LogLik) > batchTolerance || got[i].Greedy != base[i].Greedy {
				t.Fatalf("batch %d, request %d: %+v, alone %+v", b, i, got[i], base[i])
			}
		}
	}
	alone, _ := storiesScorer(t, Options{}).Score(reqs[len(reqs)-1:], nil)
	if math.Abs(alone[0].LogLik-base[len(reqs)-1].LogLik) > batchTolerance {
		t.Fatalf("shared-input request %v, alone %v", base[len(reqs)-1], alone[0])
	}
}

// TestScoreErrors: requests the harness would assert on are errors, not
// scores.
func TestScoreErrors(t *testing.T) {
	s := storiesScorer(t, Options{MaxLength: 8})
	for _, c := range []struct {
		r    Request
		want string
	}{
		{Request{"Once", strings.Repeat(" upon a time", 10)}, "longer than the model's context: 30 tokens, context 8"},
		{Request{"Once upon a time", ""}, "encodes to no tokens"},
	} {
		_, err := s.Score([]Request{c.r}, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.r, err, c.want)
		}
	}
	w, tok := storiesModel(t)
	if _, err := NewScorer(w, tok, Options{MaxLength: w.Cfg.MaxSeq + 1}); err == nil {
		t.Error("max length beyond the model's context accepted")
	}
	part := *w
	part.To = 1
	if _, err := NewScorer(&part, tok, Options{}); err == nil {
		t.Error("a partial model accepted")
	}
}
