package nn

import (
	"math"
	"math/rand/v2"

	"github.com/unipruning/unipruning/model"
)

// RandomWeights makes a full model with random weights (normal, std
// 1/√fan_in; norms around 1), for format, scale, speed and gradient tests —
// never for quality claims.
func RandomWeights[T Float](c *model.Config, seed uint64) *Weights[T] {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	normal := func(n int, std float64) []T {
		v := make([]T, n)
		for i := range v {
			v[i] = T(rng.NormFloat64() * std)
		}
		return v
	}
	norm := func(n int) []T {
		v := make([]T, n)
		for i := range v {
			v[i] = T(1 + 0.1*rng.NormFloat64())
		}
		return v
	}
	w := &Weights[T]{Cfg: c, Part: Whole(c), Blocks: make([]*Block[T], c.Layers)}
	w.Embed = normal(c.Vocab*c.Dim, 1)
	for l := range w.Blocks {
		b := &Block[T]{AttnNorm: norm(c.Dim), MLPNorm: norm(c.Dim)}
		if c.QKNorm {
			b.QNorm, b.KNorm = norm(c.HeadDim), norm(c.HeadDim)
		}
		for m := model.Matrix(0); m < model.NumMatrices; m++ {
			out, in := m.Shape(c)
			b.Lin[m] = Linear[T]{W: normal(out*in, 1/math.Sqrt(float64(in))), Out: out, In: in}
			if c.HasBias(m) {
				b.Lin[m].B = normal(out, 0.1)
			}
		}
		w.Blocks[l] = b
	}
	w.Norm = norm(c.Dim)
	w.Head = w.Embed
	if !c.TiedHead {
		w.Head = normal(c.Vocab*c.Dim, 1/math.Sqrt(float64(c.Dim)))
	}
	return w
}

// SubWeights returns a view of w restricted to part p (sharing memory).
func SubWeights[T Float](w *Weights[T], p Part) *Weights[T] {
	s := &Weights[T]{Cfg: w.Cfg, Part: p, Blocks: make([]*Block[T], len(w.Blocks))}
	copy(s.Blocks[p.From:p.To], w.Blocks[p.From:p.To])
	if p.Embed || (p.Head && w.Cfg.TiedHead) {
		s.Embed = w.Embed
	}
	if p.Head {
		s.Norm, s.Head = w.Norm, w.Head
	}
	return s
}
