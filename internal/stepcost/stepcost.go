// Package stepcost predicts the wall time of one search step on S shards
// with the window in C chunks (issue 16): compute per layer-chunk, the
// link between neighbouring shards (latency and bandwidth per chunk
// message), the pipeline's bubbles, and the per-step work after the
// backward (metric, AdamW, z, Γ, threshold) that each shard does for its
// own targets at the same time as the others.
//
// It replays the engine's schedule (shard/chunked.go): shard s starts the
// forward of chunk c when it has finished chunk c−1 and chunk c has
// arrived from shard s−1; the backward runs the chunks last first, shard s
// starting chunk c when it has finished c+1 and the gradient of c has
// arrived from shard s+1. Nothing else is modelled: the prediction is only
// as good as the rates it is given (Rates), which tools/pipecost measures.
package stepcost

import (
	"fmt"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

// Rates are a shard's measured speeds.
type Rates struct {
	// LayerMACs and HeadMACs: multiply-adds per second of a decoder
	// layer's forward (matrices and attention) and of the LM head's.
	LayerMACs, HeadMACs float64
	// BackwardFactor: a layer's backward (recomputation included) costs
	// this many forwards (about 3); HeadBackwardFactor the same for the
	// head (about 1: only the input gradient).
	BackwardFactor, HeadBackwardFactor float64
	// UpdatePerWeight: seconds per target weight per step for metric,
	// AdamW, z, Γ and the threshold histograms.
	UpdatePerWeight float64
	// LinkLatency (seconds per message) and LinkBandwidth (bytes per
	// second) of a neighbour-to-neighbour activation or gradient message.
	LinkLatency, LinkBandwidth float64
	// StepOverhead: fixed seconds per step (control calls, threshold
	// rounds, ledger).
	StepOverhead float64
}

// Step is the search step to predict.
type Step struct {
	Cfg    *model.Config
	Parts  []nn.Part // in layer order
	Seqlen int
	Chunk  int // 0 or ≥ Seqlen: one chunk
	Train  bool
}

// Prediction is a step's predicted time and where it goes.
type Prediction struct {
	Seconds float64 // the whole step
	Pass    float64 // forward (and backward) through the pipeline
	Update  float64 // the slowest shard's update
	// Busy is the compute of the busiest shard in the pass; Pass − Busy is
	// what the pipeline's bubbles and links cost it.
	Busy float64
	// Serial is the pass's total compute over all shards (one shard's
	// pass on one core).
	Serial float64
}

// Predict replays the step's schedule with the given rates.
func Predict(r Rates, s Step) (Prediction, error) {
	if len(s.Parts) == 0 || s.Seqlen < 1 {
		return Prediction{}, fmt.Errorf("stepcost: %d shards, seqlen %d", len(s.Parts), s.Seqlen)
	}
	chunk := s.Chunk
	if chunk <= 0 || chunk > s.Seqlen {
		chunk = s.Seqlen
	}
	nc := (s.Seqlen + chunk - 1) / chunk
	ns := len(s.Parts)
	fwd, bwd := make([][]float64, ns), make([][]float64, ns)
	var p Prediction
	for i, part := range s.Parts {
		fwd[i], bwd[i] = make([]float64, nc), make([]float64, nc)
		var busy float64
		for c := 0; c < nc; c++ {
			p0, p1 := c*chunk, min(s.Seqlen, (c+1)*chunk)
			lf, hf := ChunkMACs(s.Cfg, part, p0, p1)
			fwd[i][c] = lf/r.LayerMACs + hf/r.HeadMACs
			if s.Train {
				bwd[i][c] = r.BackwardFactor*lf/r.LayerMACs + r.HeadBackwardFactor*hf/r.HeadMACs
			}
			busy += fwd[i][c] + bwd[i][c]
		}
		p.Busy = max(p.Busy, busy)
		p.Serial += busy
		p.Update = max(p.Update, float64(targets(s.Cfg, part))*r.UpdatePerWeight)
	}
	link := func(c int) float64 {
		if ns == 1 {
			return 0
		}
		p0, p1 := c*chunk, min(s.Seqlen, (c+1)*chunk)
		return r.LinkLatency + float64((p1-p0)*s.Cfg.Dim*4)/r.LinkBandwidth
	}
	p.Pass = schedule(fwd, bwd, link, s.Train)
	p.Seconds = p.Pass + p.Update + r.StepOverhead
	return p, nil
}

// schedule returns when the last shard finishes: finish times of the
// forward in chunk order, then of the backward last chunk first.
func schedule(fwd, bwd [][]float64, link func(c int) float64, train bool) float64 {
	ns, nc := len(fwd), len(fwd[0])
	f := make([][]float64, ns)
	for s := range f {
		f[s] = make([]float64, nc)
		for c := 0; c < nc; c++ {
			start := 0.0
			if c > 0 {
				start = f[s][c-1]
			}
			if s > 0 {
				start = max(start, f[s-1][c]+link(c))
			}
			f[s][c] = start + fwd[s][c]
		}
	}
	var end float64
	if !train {
		for s := range f {
			end = max(end, f[s][nc-1])
		}
		return end
	}
	b := make([][]float64, ns)
	for s := ns - 1; s >= 0; s-- {
		b[s] = make([]float64, nc)
		for c := nc - 1; c >= 0; c-- {
			start := f[s][nc-1]
			if c < nc-1 {
				start = b[s][c+1]
			}
			if s < ns-1 {
				start = max(start, b[s+1][c]+link(c))
			}
			b[s][c] = start + bwd[s][c]
		}
		end = max(end, b[s][0])
	}
	return end
}

// ChunkMACs returns the forward multiply-adds of part's decoder layers
// (matrices and causal attention) and of its head on rows [p0, p1): the
// work Rates' MACs per second are measured against.
func ChunkMACs(c *model.Config, part nn.Part, p0, p1 int) (layers, head float64) {
	var lin float64
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		o, i := m.Shape(c)
		lin += float64(o * i)
	}
	var keys float64 // Σ over the rows of the keys each attends to
	for i := p0; i < p1; i++ {
		k := i + 1
		if c.SlidingWindow > 0 {
			k = min(k, c.SlidingWindow)
		}
		keys += float64(k)
	}
	rows := float64(p1 - p0)
	// Q·Kᵀ and P·V: hd per key per query head each.
	perLayer := rows*lin + 2*float64(c.Heads*c.HeadDim)*keys
	layers = float64(part.To-part.From) * perLayer
	if part.Head {
		head = rows * float64(c.Vocab*c.Dim)
	}
	return layers, head
}

func targets(c *model.Config, part nn.Part) int64 {
	var n int64
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		o, i := m.Shape(c)
		n += int64(o * i)
	}
	return n * int64(part.To-part.From)
}
