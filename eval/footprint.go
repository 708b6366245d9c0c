package eval

import (
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

// Footprint estimates an evaluation's resident memory in bytes, item by
// item, before anything is allocated (for the up-front "needs X, the
// machine offers Y" check and for choosing the streamed path).
type Footprint struct {
	Weights     uint64 `json:"weights"`     // float32 weights resident at once
	Activations uint64 `json:"activations"` // hidden states of all windows (streamed, not spilled)
	Workspace   uint64 `json:"workspace"`   // one batch's layer, attention and head buffers
	Fixed       uint64 `json:"fixed"`       // runtime, tokenizer, text and windows (an allowance)
}

// Total is the sum of the items.
func (f Footprint) Total() uint64 { return f.Weights + f.Activations + f.Workspace + f.Fixed }

// fixedAllowance covers the Go runtime, the tokenizer, the text and its
// windows; measured peaks of small models stay under it.
const fixedAllowance = 96 << 20

// layerParams is one decoder layer's parameter count.
func layerParams(c *model.Config) int64 {
	mat, other := c.LayerParams()
	return mat + other
}

// workspace is what the stage holds for one batch (layer, attention and
// head buffers).
func workspace(c *model.Config, b, t int) uint64 {
	return uint64(nn.PlanStageMemory[float32](c, nn.Whole(c), b, t, 0, false).Workspace)
}

// InMemoryFootprint is Perplexity's: the whole model as float32.
func InMemoryFootprint(c *model.Config, windows, t, batch int) Footprint {
	return Footprint{Weights: 4 * uint64(c.Params()), Workspace: workspace(c, batch, t), Fixed: fixedAllowance}
}

// StreamedFootprint is PerplexityStreamed's: the largest of the embedding,
// the head (with the final norm) and one decoder layer; the activations of
// all windows unless spilled (then two batch-sized transfer buffers).
func StreamedFootprint(c *model.Config, windows, t, batch int, spill bool) Footprint {
	embed := uint64(c.Vocab) * uint64(c.Dim)
	f := Footprint{Weights: 4 * max(embed+uint64(c.Dim), uint64(layerParams(c))),
		Workspace: workspace(c, batch, t), Fixed: fixedAllowance}
	acts := uint64(windows) * uint64(t) * uint64(c.Dim) * 4
	if spill {
		acts = uint64(min(batch, windows)*t*c.Dim) * 8
	}
	f.Activations = acts
	return f
}
