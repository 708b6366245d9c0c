package coordinator

import (
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

// PlanSpec splits the model for a search of spec over n shards. Without
// chunks (spec.Chunk 0) the shards of a step run one after the other and
// Plan balances what they hold (parameters). A chunked search pipelines
// the shards (issue 16): a step takes as long as its slowest stage, so
// the ranges balance the compute of a step instead (StageCost). Γ does
// not depend on the split.
func PlanSpec(c *model.Config, n int, spec job.Spec) ([]nn.Part, error) {
	spec.Defaults()
	if spec.Chunk == 0 {
		return Plan(c, n)
	}
	parts, err := Plan(c, n) // validates n
	if err != nil {
		return nil, err
	}
	cost := func(from, to int) int64 {
		return int64(StageCost(c, nn.Part{From: from, To: to, Embed: from == 0, Head: to == c.Layers}, spec.Seqlen, spec.Trains()))
	}
	lo, hi := int64(0), cost(0, c.Layers)
	for lo < hi {
		mid := (lo + hi) / 2
		if _, ok := greedySplit(c.Layers, n, mid, cost); ok {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	bounds, _ := greedySplit(c.Layers, n, lo, cost)
	for i := range parts {
		parts[i].From, parts[i].To = bounds[i], bounds[i+1]
	}
	return parts, nil
}

// StageCost estimates the multiply-adds per token of one search step of a
// stage owning p, for windows of seqlen tokens: per decoder layer its
// seven matrices and causal attention (on average (seqlen+1)/2 keys, or
// the sliding window), the LM head when owned (the embedding is a
// lookup). With training, a layer costs four forward passes (the forward,
// its recomputation in the backward, and the two gradient products) and
// the head two (forward, input gradient; its weights are not trained).
func StageCost(c *model.Config, p nn.Part, seqlen int, train bool) float64 {
	var lin float64
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		o, i := m.Shape(c)
		lin += float64(o * i)
	}
	keys := float64(seqlen+1) / 2
	if c.SlidingWindow > 0 && float64(c.SlidingWindow) < keys {
		keys = float64(c.SlidingWindow)
	}
	layer := lin + 2*float64(c.Heads*c.HeadDim)*keys
	head := float64(c.Vocab * c.Dim)
	lf, hf := 1.0, 1.0
	if train {
		lf, hf = 4, 2
	}
	v := float64(p.To-p.From) * layer * lf
	if p.Head {
		v += head * hf
	}
	return v
}
