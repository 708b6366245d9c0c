package stepcost

import (
	"math"
	"testing"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

func filled(ns, nc int, v float64) [][]float64 {
	out := make([][]float64, ns)
	for s := range out {
		out[s] = make([]float64, nc)
		for c := range out[s] {
			out[s][c] = v
		}
	}
	return out
}

// TestScheduleEqualStages: S equal stages and C equal chunks with free
// links take (C + S − 1) chunk-times per direction, the textbook pipeline
// with its S − 1 bubbles.
func TestScheduleEqualStages(t *testing.T) {
	noLink := func(int) float64 { return 0 }
	for _, sc := range [][2]int{{1, 1}, {1, 8}, {2, 8}, {3, 5}, {4, 1}} {
		ns, nc := sc[0], sc[1]
		tf, tb := 1.0, 3.0
		got := schedule(filled(ns, nc, tf), filled(ns, nc, tb), noLink, true)
		want := float64(nc+ns-1) * (tf + tb)
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%d stages, %d chunks: %v, want %v", ns, nc, got, want)
		}
		if got := schedule(filled(ns, nc, tf), nil, noLink, false); math.Abs(got-float64(nc+ns-1)*tf) > 1e-9 {
			t.Errorf("%d stages, %d chunks, forward only: %v", ns, nc, got)
		}
	}
}

// TestScheduleLink: two stages, one chunk: every hop waits for the link.
func TestScheduleLink(t *testing.T) {
	got := schedule(filled(2, 1, 1), filled(2, 1, 2), func(int) float64 { return 0.5 }, true)
	if want := 1 + 0.5 + 1 + 2 + 0.5 + 2.0; math.Abs(got-want) > 1e-9 {
		t.Fatalf("%v, want %v", got, want)
	}
}

// TestPredictOneShard: one shard's pass is its compute; chunking it
// changes nothing but the attention's cost, which chunks do not change.
func TestPredictOneShard(t *testing.T) {
	c := &model.Config{Dim: 64, Hidden: 172, Layers: 5, Heads: 8, KVHeads: 4, HeadDim: 8, Vocab: 512, MaxSeq: 1024}
	r := Rates{LayerMACs: 1e9, HeadMACs: 2e9, BackwardFactor: 3, HeadBackwardFactor: 1, UpdatePerWeight: 1e-8,
		LinkLatency: 1e-3, LinkBandwidth: 1e8, StepOverhead: 0.01}
	whole := []nn.Part{nn.Whole(c)}
	a, err := Predict(r, Step{Cfg: c, Parts: whole, Seqlen: 256, Train: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Predict(r, Step{Cfg: c, Parts: whole, Seqlen: 256, Chunk: 64, Train: true})
	if math.Abs(a.Pass-a.Serial) > 1e-12 || math.Abs(a.Seconds-b.Seconds) > 1e-12 {
		t.Fatalf("one shard: %+v unchunked, %+v chunked", a, b)
	}
	two := []nn.Part{{From: 0, To: 3, Embed: true}, {From: 3, To: 5, Head: true}}
	p, _ := Predict(r, Step{Cfg: c, Parts: two, Seqlen: 256, Chunk: 32, Train: true})
	if !(p.Pass < a.Pass && p.Pass > p.Busy && math.Abs(p.Serial-a.Serial) < 1e-12) {
		t.Fatalf("two shards %+v against one %+v", p, a)
	}
}
