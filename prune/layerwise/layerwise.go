// Package layerwise is the sequential layer-wise calibration engine of the
// Wanda/SparseGPT protocol (DESIGN §2.5): calibration windows go through
// the model one decoder layer at a time; for layer l the statistics of its
// target matrices' inputs are collected (with the layer still dense), its
// seven matrices are pruned, and its outputs are recomputed WITH the pruned
// weights to become layer l+1's inputs.
//
// Memory is one decoder layer's weights (one reused slot) plus the
// calibration activations (nsamples × seqlen × dim, once: each batch's
// outputs replace its inputs), one batch's workspace and the statistics.
package layerwise

import (
	"fmt"
	"time"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/prune"
)

// Method is a baseline pruning method.
type Method string

// The baselines.
const (
	Magnitude Method = "magnitude"
	Wanda     Method = "wanda"
	RIA       Method = "ria"
	SparseGPT Method = "sparsegpt"
)

// ParseMethod validates a method name.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case Magnitude, Wanda, RIA, SparseGPT:
		return m, nil
	}
	return "", fmt.Errorf("unknown method %q (want magnitude, wanda, ria or sparsegpt)", s)
}

// metric is the saliency metric a score-based method ranks by (false for
// SparseGPT, which selects by reconstruction error).
func (m Method) metric() (prune.Metric, bool) {
	switch m {
	case Magnitude:
		return prune.MetricMagnitude, true
	case Wanda:
		return prune.MetricWanda, true
	case RIA:
		return prune.MetricRIA, true
	}
	return "", false
}

// Comparison groups for unstructured masks.
const (
	ByMatrix = "matrix"
	ByRow    = "row"
)

// Config selects what to prune and how.
type Config struct {
	Method   Method
	Sparsity float64 // unstructured, in [0,1); ignored when M > 0
	N, M     int     // N:M: keep N of every M consecutive inputs
	// Group is the comparison group of unstructured masks: "" means the
	// method's published default (wanda: per row; magnitude, ria: per
	// matrix).
	Group     string
	BlockSize int     // SparseGPT columns per block (128)
	PercDamp  float64 // SparseGPT dampening (0.01)
	Batch     int     // windows per forward pass
	// Fixed, when set, supplies every matrix's mask (chosen elsewhere,
	// e.g. UniPruning's from Γ): Method, Sparsity, N:M and Group are not
	// used, and the kept weights are reconstructed with SparseGPT's OBS
	// solve for that mask on the layer's calibration inputs.
	Fixed FixedMask
}

// FixedMask returns the mask of a target matrix; dense (with the reason)
// marks a matrix left unpruned, which is then not reconstructed either.
type FixedMask func(t model.Target) (mask *prune.Mask, dense bool, reason string, err error)

// Validate rejects inconsistent settings.
func (c *Config) Validate() error {
	if c.Fixed != nil {
		return nil
	}
	if c.M > 0 {
		if c.N < 1 || c.N >= c.M {
			return fmt.Errorf("pattern %d:%d: need 1 ≤ N < M", c.N, c.M)
		}
	} else if !(c.Sparsity >= 0 && c.Sparsity < 1) {
		return fmt.Errorf("sparsity %v outside [0, 1)", c.Sparsity)
	}
	if c.Group != "" && c.Group != ByRow && c.Group != ByMatrix {
		return fmt.Errorf("comparison group %q (want row or matrix)", c.Group)
	}
	return nil
}

// solves reports whether matrices are solved with SparseGPT's OBS sweep
// (SparseGPT itself, or a fixed mask's reconstruction), which needs each
// layer's input Hessians.
func (c *Config) solves() bool { return c.Method == SparseGPT || c.Fixed != nil }

func (c *Config) defaults() {
	if c.BlockSize == 0 {
		c.BlockSize = 128
	}
	if c.PercDamp == 0 {
		c.PercDamp = 0.01
	}
	if c.Group == "" {
		c.Group = ByMatrix
		if c.Method == Wanda {
			c.Group = ByRow
		}
	}
	if c.Batch <= 0 {
		c.Batch = 8
	}
}

// MatrixResult reports one pruned matrix.
type MatrixResult struct {
	Name     string  `json:"name"`
	Out      int     `json:"out"`
	In       int     `json:"in"`
	Kept     int     `json:"kept"`
	Sparsity float64 `json:"sparsity"`
	Dense    bool    `json:"dense,omitempty"`
	Reason   string  `json:"reason,omitempty"`
}

// LayerResult reports one decoder layer.
type LayerResult struct {
	Layer    int            `json:"layer"`
	Seconds  float64        `json:"seconds"`
	Matrices []MatrixResult `json:"matrices"`
}

// Sink receives every pruned matrix (weights already zeroed where pruned,
// and for SparseGPT updated) with its keep-mask.
type Sink func(t model.Target, w []float32, mask *prune.Mask) error

// Run prunes every decoder layer of ck with calibration windows (all of
// the same length) and hands each pruned matrix to sink.
func Run(ck *model.Checkpoint, windows [][]int32, cfg Config, sink Sink, progress func(layer int, r LayerResult)) ([]LayerResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	if len(windows) == 0 {
		return nil, fmt.Errorf("no calibration windows")
	}
	e, err := newEngine(ck, windows, cfg)
	if err != nil {
		return nil, err
	}
	var results []LayerResult
	for l := 0; l < ck.Config.Layers; l++ {
		start := time.Now()
		r, err := e.layer(l, sink)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", l, err)
		}
		r.Seconds = time.Since(start).Seconds()
		results = append(results, r)
		if progress != nil {
			progress(l, r)
		}
	}
	return results, nil
}
