package prune

import "math"

// Mirror is the UniPruning mirror-descent state of one target matrix
// (DESIGN §2.3): the dual variable z, the saliency path Γ (a shrunk copy of
// z) and, per weight, the first step at which Γ became non-zero (−1 while
// it never has).
type Mirror struct {
	Z, Gamma []float32
	First    []int32
}

// NewMirror returns the zero state for n weights.
func NewMirror(n int) *Mirror {
	m := &Mirror{Z: make([]float32, n), Gamma: make([]float32, n), First: make([]int32, n)}
	for i := range m.First {
		m.First[i] = -1
	}
	return m
}

// Accumulate performs z ← z + κ·(S − Γ) in float32 (deterministic: one
// rounding per element, no reductions).
func (m *Mirror) Accumulate(s []float32, kappa float32) {
	for i, sv := range s {
		m.Z[i] += kappa * (sv - m.Gamma[i])
	}
}

// AccumulateNormalized is NormalizeMean(s) followed by Accumulate(s,
// kappa), fused into one pass over the state that leaves s as it was: the
// normalised score of each weight is computed, rounded to float32 exactly as
// NormalizeMean stores it, and added at once. It gives bitwise the state of
// the two calls, without writing the scores back.
func (m *Mirror) AccumulateNormalized(s []float32, kappa float32) {
	mean, ok := meanAbs(s)
	if !ok {
		m.Accumulate(s, kappa)
		return
	}
	z, g := m.Z[:len(s)], m.Gamma[:len(s)]
	for i, sv := range s {
		n := float32(float64(sv) / mean)
		z[i] += kappa * (n - g[i])
	}
}

// Shrink sets Γ ← sign(z)·max(|z| − τ, 0) and records step as the first
// step of every weight whose Γ becomes non-zero for the first time.
func (m *Mirror) Shrink(tau float32, step int32) {
	for i, z := range m.Z {
		a := float32(math.Abs(float64(z))) - tau
		var g float32
		if a > 0 {
			g = float32(math.Copysign(float64(a), float64(z)))
			if m.First[i] < 0 {
				m.First[i] = step
			}
		}
		m.Gamma[i] = g
	}
}

// AbsQuantile is torch.quantile(|v|, q) with linear interpolation between
// the order statistics at (n−1)·q — the per-matrix threshold of the
// released UniPruning code, computed exactly (no subsampling).
func AbsQuantile(v []float32, q float64) (float32, error) {
	if len(v) == 0 {
		return 0, nil
	}
	pos := float64(len(v)-1) * q
	lo := math.Floor(pos)
	part := SlicePartition{Values: [][]float32{v}}
	a, err := SelectKth([]Partition{&part}, uint64(lo)+1)
	if err != nil {
		return 0, err
	}
	frac := pos - lo
	if frac == 0 {
		return a.Value, nil
	}
	b, err := SelectKth([]Partition{&part}, uint64(lo)+2)
	if err != nil {
		return 0, err
	}
	return float32(float64(a.Value) + (float64(b.Value)-float64(a.Value))*frac), nil
}
