package layerwise

import (
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

// Footprint estimates Run's resident memory in bytes, item by item, before
// anything is allocated: the engine holds the embedding (first pass only)
// or one decoder layer, the calibration activations of all windows, one
// batch's stage workspace, the input statistics of the layer (SparseGPT:
// four Hessians in float64) and the largest matrix's scoring or solve.
type Footprint struct {
	Embed       uint64 `json:"embed"`       // first pass: the token embedding as float32
	Layer       uint64 `json:"layer"`       // one decoder layer as float32 (the reused slot)
	Activations uint64 `json:"activations"` // nsamples × seqlen × dim float32
	Workspace   uint64 `json:"workspace"`   // one batch's forward buffers
	Statistics  uint64 `json:"statistics"`  // per-layer input statistics / Hessians
	Solve       uint64 `json:"solve"`       // scores, or SparseGPT's inverse and float64 copy
	Fixed       uint64 `json:"fixed"`       // runtime, tokenizer, calibration text (an allowance)
}

// Total is the peak: the larger of the embedding pass and a layer pass.
func (f Footprint) Total() uint64 {
	embed := f.Embed + f.Activations + f.Workspace
	layer := f.Layer + f.Activations + f.Workspace + f.Statistics + f.Solve
	return max(embed, layer) + f.Fixed
}

// EstimateFootprint is Run's footprint for windows of t tokens.
func EstimateFootprint(c *model.Config, windows, t int, cfg Config) Footprint {
	cfg.defaults()
	widths := []uint64{uint64(c.Dim), uint64(c.QDim()), uint64(c.Dim), uint64(c.Hidden)}
	var largest, largestIn uint64
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		out, in := m.Shape(c)
		largest, largestIn = max(largest, uint64(out)*uint64(in)), max(largestIn, uint64(in))
	}
	mat, other := c.LayerParams()
	layer := uint64(mat + other)
	f := Footprint{
		Embed:       4 * uint64(c.Vocab) * uint64(c.Dim),
		Layer:       4 * layer,
		Activations: 4 * uint64(windows) * uint64(t) * uint64(c.Dim),
		Workspace:   uint64(nn.PlanStageMemory[float32](c, nn.Part{From: 0, To: 1}, min(cfg.Batch, windows), t, 0, false).Workspace),
		Fixed:       96 << 20,
	}
	for _, w := range widths {
		f.Statistics += 8 * w
		if cfg.solves() {
			f.Statistics += 8 * w * w
		}
	}
	if cfg.solves() {
		// the inverse factor of the widest input, a float64 copy of the
		// matrix and per-block error buffers
		f.Solve = 8*largestIn*largestIn + 8*largest + 8*largest/4
	} else {
		f.Solve = 4*largest + largest/8 // scores and the mask bits
	}
	return f
}
