package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/unipruning/unipruning/model"
)

func smallConfig() *model.Config {
	return &model.Config{Arch: "test", Dim: 16, Hidden: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4,
		Vocab: 32, MaxSeq: 16, NormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2}
}

type gradCase struct {
	name string
	edit func(c *model.Config)
}

var gradCases = []gradCase{
	{"llama2c-interleaved-tied", func(c *model.Config) { c.RopeInterleaved, c.TiedHead = true, true }},
	{"hf-halfrot-untied", func(c *model.Config) {}},
	{"hf-tied", func(c *model.Config) { c.TiedHead = true }},
	{"qwen2-bias", func(c *model.Config) { c.QKVBias = true }},
	{"obias-sliding-window", func(c *model.Config) { c.QKVBias, c.OBias, c.SlidingWindow = true, true, 3 }},
	{"qwen3-qknorm-wide-heads", func(c *model.Config) {
		// head_dim independent of hidden size: 4 heads × 6 > Dim 16
		c.QKNorm, c.HeadDim = true, 6
	}},
	{"qwen3-qknorm-bias-tied-window", func(c *model.Config) {
		c.QKNorm, c.QKVBias, c.OBias, c.TiedHead, c.SlidingWindow = true, true, true, true, 4
	}},
	{"llama3-rope-mha", func(c *model.Config) {
		c.KVHeads = 4
		c.Scaling = &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8}
	}},
}

// meanLoss runs the whole model on the batch and returns the mean NLL.
func meanLoss(s *Stage[float64], tokens []int32, b, t int) float64 {
	h, err := s.Forward(tokens, nil, b, t, false)
	if err != nil {
		panic(err)
	}
	sum, n, _, err := s.HeadLoss(h, Targets(tokens, b, t), false)
	if err != nil {
		panic(err)
	}
	return sum / float64(n)
}

// param names one parameter tensor and its gradient.
type param struct {
	name string
	w, g []float64
}

func params(w, g *Weights[float64]) []param {
	ps := []param{{"embed", w.Embed, g.Embed}, {"final_norm", w.Norm, g.Norm}}
	if !w.Cfg.TiedHead {
		ps = append(ps, param{"lm_head", w.Head, g.Head})
	}
	for l, b := range w.Blocks {
		gb := g.Blocks[l]
		ps = append(ps, param{fmt.Sprintf("%d.attn_norm", l), b.AttnNorm, gb.AttnNorm},
			param{fmt.Sprintf("%d.mlp_norm", l), b.MLPNorm, gb.MLPNorm})
		if b.QNorm != nil {
			ps = append(ps, param{fmt.Sprintf("%d.q_norm", l), b.QNorm, gb.QNorm},
				param{fmt.Sprintf("%d.k_norm", l), b.KNorm, gb.KNorm})
		}
		for m := range b.Lin {
			ps = append(ps, param{fmt.Sprintf("%d.%s", l, model.Matrix(m)), b.Lin[m].W, gb.Lin[m].W})
			if b.Lin[m].B != nil {
				ps = append(ps, param{fmt.Sprintf("%d.%s.bias", l, model.Matrix(m)), b.Lin[m].B, gb.Lin[m].B})
			}
		}
	}
	return ps
}

// TestGradientFiniteDifference checks every parameter kind's analytic
// gradient against central finite differences in float64.
func TestGradientFiniteDifference(t *testing.T) {
	for _, gc := range gradCases {
		t.Run(gc.name, func(t *testing.T) {
			c := smallConfig()
			gc.edit(c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			w := RandomWeights[float64](c, 7)
			s := NewStage(w)
			s.EnableGrad(true)
			b, tl := 2, 7
			rng := rand.New(rand.NewPCG(1, 2))
			tokens := make([]int32, b*tl)
			for i := range tokens {
				tokens[i] = int32(rng.IntN(c.Vocab))
			}
			h, err := s.Forward(tokens, nil, b, tl, true)
			if err != nil {
				t.Fatal(err)
			}
			_, _, dh, err := s.HeadLoss(h, Targets(tokens, b, tl), true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Backward(dh); err != nil {
				t.Fatal(err)
			}
			var overall float64
			for _, p := range params(w, s.G) {
				worst := checkParam(t, s, p, tokens, b, tl, rng)
				if worst > 1e-6 {
					t.Errorf("%s: max relative error %.3g > 1e-6", p.name, worst)
				}
				overall = math.Max(overall, worst)
			}
			t.Logf("max relative error over all parameter kinds: %.3g", overall)
		})
	}
}

func checkParam(t *testing.T, s *Stage[float64], p param, tokens []int32, b, tl int, rng *rand.Rand) float64 {
	const h = 1e-3
	var worst float64
	for trial := 0; trial < 12; trial++ {
		i := rng.IntN(len(p.w))
		old := p.w[i]
		at := func(d float64) float64 {
			p.w[i] = old + d
			defer func() { p.w[i] = old }()
			return meanLoss(s, tokens, b, tl)
		}
		// Fourth-order central difference: truncation error O(h⁴).
		fd := (8*(at(h)-at(-h)) - (at(2*h) - at(-2*h))) / (12 * h)
		an := p.g[i]
		// Relative to the gradient's size, with a floor well below any
		// gradient that matters so tiny entries are judged absolutely.
		rel := math.Abs(fd-an) / math.Max(math.Max(math.Abs(fd), math.Abs(an)), 1e-4)
		worst = math.Max(worst, rel)
	}
	return worst
}
