package nn

import (
	"math/rand/v2"
	"testing"

	"github.com/unipruning/unipruning/model"
)

func storiesShapeConfig() *model.Config {
	return &model.Config{Arch: "llama2c", Dim: 64, Hidden: 172, Layers: 5, Heads: 8, KVHeads: 4, HeadDim: 8,
		Vocab: 512, MaxSeq: 512, NormEps: 1e-5, RopeTheta: 10000, RopeInterleaved: true, TiedHead: true}
}

func benchForward(b *testing.B, c *model.Config, batch, t int) {
	w := RandomWeights[float32](c, 1)
	s := NewStage(w)
	rng := rand.New(rand.NewPCG(1, 1))
	tokens := make([]int32, batch*t)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(c.Vocab))
	}
	tg := Targets(tokens, batch, t)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h, err := s.Forward(tokens, nil, batch, t, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := s.HeadLoss(h, tg, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch*t)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkForwardStories260K(b *testing.B) { benchForward(b, storiesShapeConfig(), 16, 256) }
