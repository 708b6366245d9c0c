package prune

import (
	"fmt"
	"math"
)

// Stats accumulates the activation statistics of one target matrix's input:
// for every input channel j the sum over tokens of x_j² (DESIGN §2.1).
//
// Sums are float64 and taken in the order rows are added, so feeding the
// same activations in the same order gives bitwise-identical statistics.
type Stats struct {
	In     int       // input width (number of channels)
	SumSq  []float64 // SumSq[j] = Σ over tokens of x_j²
	Tokens int       // number of token rows added
}

// NewStats returns empty statistics for an input of width in.
func NewStats(in int) *Stats {
	if in < 0 {
		panic(fmt.Sprintf("prune: NewStats: negative width %d", in))
	}
	return &Stats{In: in, SumSq: make([]float64, in)}
}

// Add accumulates rows token vectors of width cols, stored row-major in x.
// It panics if cols differs from s.In or x is shorter than rows*cols: that
// is a wiring error, not a data error. Add does not allocate.
func (s *Stats) Add(x []float32, rows, cols int) {
	if cols != s.In || rows < 0 || len(x) < rows*cols {
		panic(fmt.Sprintf("prune: Stats.Add: %d×%d input (len %d) into stats of width %d", rows, cols, len(x), s.In))
	}
	sum := s.SumSq[:cols]
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		for j, v := range row {
			f := float64(v)
			sum[j] += f * f
		}
	}
	s.Tokens += rows
}

// Reset empties the statistics, keeping the width and the storage.
func (s *Stats) Reset() {
	clear(s.SumSq)
	s.Tokens = 0
}

// Norm returns ‖X_j‖ = sqrt(Σ x_j²) per channel (Wanda's and RIA's factor).
func (s *Stats) Norm() []float64 {
	out := make([]float64, s.In)
	for j, v := range s.SumSq {
		out[j] = math.Sqrt(v)
	}
	return out
}

// MeanSq returns s_j = Σ x_j² / Tokens per channel (StochRIA's factor);
// all zeros when no token was added.
func (s *Stats) MeanSq() []float64 {
	out := make([]float64, s.In)
	if s.Tokens == 0 {
		return out
	}
	t := float64(s.Tokens)
	for j, v := range s.SumSq {
		out[j] = v / t
	}
	return out
}

// Merge adds other's sums into s. Float64 addition is not associative, so
// callers that need bitwise reproducibility merge in a fixed order.
func (s *Stats) Merge(other *Stats) error {
	if other.In != s.In || len(other.SumSq) != len(s.SumSq) {
		return fmt.Errorf("prune: merging stats of width %d into width %d", other.In, s.In)
	}
	for j, v := range other.SumSq {
		s.SumSq[j] += v
	}
	s.Tokens += other.Tokens
	return nil
}
