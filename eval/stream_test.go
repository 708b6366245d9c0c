package eval

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/synth"
	"github.com/unipruning/unipruning/nn"
)

// streamedEqualsInMemory checks that the layer-streamed path gives the
// in-memory path's NLL bit for bit, with activations in memory and spilled,
// and that the spill file is gone afterwards.
func streamedEqualsInMemory(t *testing.T, ck *model.Checkpoint, ws [][]int32, batch int) {
	t.Helper()
	w, err := nn.Load[float32](ck, nn.Whole(ck.Config))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Perplexity(nn.NewStage(w), ws, batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, spill := range []string{"", t.TempDir()} {
		passes := 0
		got, err := PerplexityStreamed(ck, ws, StreamOptions{Batch: batch, SpillDir: spill,
			Progress: func(done, total int) { passes = done }})
		if err != nil {
			t.Fatal(err)
		}
		if got.Count != want.Count || math.Float64bits(got.Sum) != math.Float64bits(want.Sum) {
			t.Fatalf("spill %q: streamed NLL %v over %d, in memory %v over %d", spill, got.Sum, got.Count, want.Sum, want.Count)
		}
		if passes != ck.Config.Layers+2 {
			t.Fatalf("%d passes reported, want %d", passes, ck.Config.Layers+2)
		}
		if spill != "" {
			if left, _ := os.ReadDir(spill); len(left) != 0 {
				t.Fatalf("spill directory not cleaned: %v", left)
			}
		}
	}
}

func TestStreamedEqualsInMemoryStories(t *testing.T) {
	ck, ws, _ := storiesLines(t)
	// 37 windows in batches of 16: the last batch is short.
	streamedEqualsInMemory(t, ck, ws[:37], 16)
}

// TestStreamedEqualsInMemoryArchs covers untied heads, grouped-query
// attention, biases (Qwen2) and per-head q/k norms (Qwen3) on bf16
// synthetic models.
func TestStreamedEqualsInMemoryArchs(t *testing.T) {
	for _, arch := range []string{"llama", "qwen2", "qwen3"} {
		t.Run(arch, func(t *testing.T) {
			c := &model.Config{Layers: 3, Dim: 64, Hidden: 96, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 101,
				MaxSeq: 64, BOS: 1, EOS: 2, NormEps: 1e-5, RopeTheta: 10000, DType: "BF16"}
			if err := synth.Configure(c, arch); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := model.SaveHF(dir, c, synth.Tensors(c, 3), 0); err != nil {
				t.Fatal(err)
			}
			ck, err := model.Open(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			r := rand.New(rand.NewPCG(1, 2))
			ws := make([][]int32, 7)
			for i := range ws {
				ws[i] = make([]int32, 24)
				for j := range ws[i] {
					ws[i][j] = int32(r.IntN(c.Vocab))
				}
			}
			streamedEqualsInMemory(t, ck, ws, 3)
		})
	}
}

// TestFootprints checks the estimates' ordering: streaming holds less than
// the whole model, spilling less than keeping activations, and the parts
// add up.
func TestFootprints(t *testing.T) {
	c := &model.Config{Layers: 22, Dim: 2048, Hidden: 5632, Heads: 32, KVHeads: 4, HeadDim: 64, Vocab: 32000, MaxSeq: 2048}
	in := InMemoryFootprint(c, 166, 2048, 2)
	keep := StreamedFootprint(c, 166, 2048, 2, false)
	spill := StreamedFootprint(c, 166, 2048, 2, true)
	if params := c.Params(); params < 1_000_000_000 || params > 1_200_000_000 {
		t.Fatalf("TinyLlama shape has %d parameters, want ≈1.1e9", params)
	}
	if !(spill.Total() < keep.Total() && spill.Total() < in.Total()) {
		t.Fatalf("in memory %d, streamed %d, spilled %d", in.Total(), keep.Total(), spill.Total())
	}
	if in.Weights != 4*uint64(c.Params()) {
		t.Fatalf("in-memory weights %d, want 4 B × %d", in.Weights, c.Params())
	}
	if keep.Activations != 166*2048*2048*4 {
		t.Fatalf("activations %d", keep.Activations)
	}
	if s := spill.Weights + spill.Activations + spill.Workspace + spill.Fixed; s != spill.Total() {
		t.Fatalf("parts %d, total %d", s, spill.Total())
	}
}
