package prune

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
)

// Metric names a local saliency metric S(W) (DESIGN §2.2).
type Metric string

// The metrics, by their CLI names.
const (
	MetricMagnitude Metric = "magnitude"
	MetricWanda     Metric = "wanda"
	MetricRIA       Metric = "ria"
	MetricStochRIA  Metric = "stochria"
)

// Constants of the metrics (DESIGN §2.2; StochRIA's as in the released
// UniPruning code).
const (
	RIAAlpha         = 0.5   // exponent a of ‖X_j‖ in RIA (its code's default)
	StochRIAExponent = 0.35  // exponent of s_j = mean x_j² in StochRIA
	StochRIAFraction = 0.2   // t = max(1, ⌊0.2·min(out, in)⌋)
	StochRIAMinSum   = 1e-12 // clamp of StochRIA's subset sums
)

// ParseMetric maps a CLI name to its Metric.
func ParseMetric(s string) (Metric, error) {
	switch m := Metric(s); m {
	case MetricMagnitude, MetricWanda, MetricRIA, MetricStochRIA:
		return m, nil
	}
	return "", fmt.Errorf("prune: unknown metric %q (want magnitude, wanda, ria or stochria)", s)
}

// NeedsRNG reports whether the metric draws random subsets (StochRIA).
func (m Metric) NeedsRNG() bool { return m == MetricStochRIA }

// Score writes the saliency S(W) of metric m for the out×in matrix w into
// dst (DESIGN §2.2): the one place that maps a metric to its formula, for
// the search and for the layer-wise baselines. st holds the statistics of
// the matrix's inputs (unused by magnitude); rng draws StochRIA's subsets
// (unused by the others). An unknown metric is an error, never a fallback.
func Score(m Metric, dst, w []float32, out, in int, st *Stats, rng *rand.Rand) error {
	if m != MetricMagnitude && st == nil {
		return fmt.Errorf("prune: metric %s needs the input statistics", m)
	}
	switch m {
	case MetricMagnitude:
		Magnitude(dst, w, out, in)
	case MetricWanda:
		Wanda(dst, w, out, in, st.Norm())
	case MetricRIA:
		RIA(dst, w, out, in, st.Norm(), RIAAlpha)
	case MetricStochRIA:
		if rng == nil {
			return fmt.Errorf("prune: metric %s needs a random generator", m)
		}
		StochRIA(dst, w, out, in, st.MeanSq(), rng)
	default:
		_, err := ParseMetric(string(m))
		return err
	}
	return nil
}

// checkMetricArgs panics on inconsistent shapes: they are wiring errors,
// not data errors. act is the per-channel statistic, unused when withAct is
// false.
func checkMetricArgs(name string, dst, w []float32, out, in int, act []float64, withAct bool) {
	if out < 0 || in < 0 || len(w) != out*in || len(dst) != out*in {
		panic(fmt.Sprintf("prune: %s: dst %d and w %d values for a %d×%d matrix", name, len(dst), len(w), out, in))
	}
	if withAct && len(act) != in {
		panic(fmt.Sprintf("prune: %s: %d activation statistics for %d input channels", name, len(act), in))
	}
}

// Magnitude writes |W_ij| into dst.
func Magnitude(dst, w []float32, out, in int) {
	checkMetricArgs("Magnitude", dst, w, out, in, nil, false)
	for k, v := range w {
		dst[k] = float32(math.Abs(float64(v)))
	}
}

// Wanda writes |W_ij|·‖X_j‖ into dst (xnorm from Stats.Norm).
func Wanda(dst, w []float32, out, in int, xnorm []float64) {
	checkMetricArgs("Wanda", dst, w, out, in, xnorm, true)
	for i := 0; i < out; i++ {
		row, d := w[i*in:(i+1)*in], dst[i*in:(i+1)*in]
		for j, v := range row {
			d[j] = float32(math.Abs(float64(v)) * xnorm[j])
		}
	}
}

// RIA writes (|W_ij|/Σ_i'|W_i'j| + |W_ij|/Σ_j'|W_ij'|)·‖X_j‖^a into dst.
//
// Both sums are float64, the row sum in column order and the column sum in
// row order. A zero row or column sum means every |W| in it is zero; its
// ratio is then taken as 0 (not 0/0 = NaN). The ratios are computed as
// |W_ij| times the reciprocal of the sum, which is one float64 rounding away
// from the quotient and invisible after the conversion to float32.
func RIA(dst, w []float32, out, in int, xnorm []float64, a float64) {
	checkMetricArgs("RIA", dst, w, out, in, xnorm, true)
	invRow := make([]float64, out)
	invCol := make([]float64, in)
	absRowColSums(w, out, in, invRow, invCol)
	for i, s := range invRow {
		invRow[i] = reciprocalOrZero(s)
	}
	for j, s := range invCol {
		invCol[j] = reciprocalOrZero(s)
	}
	act := make([]float64, in)
	for j, v := range xnorm {
		act[j] = math.Pow(v, a)
	}
	riaScores(dst, w, out, in, invRow, invCol, act)
}

func reciprocalOrZero(s float64) float64 {
	if s == 0 {
		return 0
	}
	return 1 / s
}

// absRowColSums writes Σ_j|W_ij| into rowSum and Σ_i|W_ij| into colSum,
// both accumulated in index order in float64.
func absRowColSums(w []float32, out, in int, rowSum, colSum []float64) {
	clear(colSum)
	for i := 0; i < out; i++ {
		var rs float64
		for j, v := range w[i*in : (i+1)*in] {
			a := math.Abs(float64(v))
			rs += a
			colSum[j] += a
		}
		rowSum[i] = rs
	}
}

// riaScores writes (|W_ij|·invCol_j + |W_ij|·invRow_i)·act_j, the shared
// final step of RIA and StochRIA: the two ratios are added before the
// activation factor multiplies them, as in the formula.
func riaScores(dst, w []float32, out, in int, invRow, invCol, act []float64) {
	for i := 0; i < out; i++ {
		ir := invRow[i]
		row, d := w[i*in:(i+1)*in], dst[i*in:(i+1)*in]
		for j, v := range row {
			a := math.Abs(float64(v))
			d[j] = float32((a*invCol[j] + a*ir) * act[j])
		}
	}
}

// StochRIASampleSize returns t = max(1, ⌊0.2·min(out, in)⌋), the subset
// size of StochRIA, computed as the released code does (float64 product,
// truncated).
func StochRIASampleSize(out, in int) int {
	t := int(StochRIAFraction * float64(min(out, in)))
	return max(t, 1)
}

// StochRIA writes the stochastic RIA of the released UniPruning code:
//
//	(|W_ij|/C_j + |W_ij|/R_i) · s_j^0.35
//
// where R_i sums |W_i·| over t columns drawn at random for row i, C_j sums
// |W_·j| over t rows drawn at random for column j (t = StochRIASampleSize;
// both sums clamped to ≥ 1e-12) and s_j = mean over tokens of x_j²
// (Stats.MeanSq). Subsets are uniform and without replacement, drawn
// independently per row and per column, as the released code does with
// torch.rand + topk.
//
// The draws consume rng in this order (the result is a pure function of
// w, meanSq and rng's state):
//
//  1. rows i = 0..out−1: a partial Fisher–Yates shuffle of the identity
//     permutation p of 0..in−1: for k = 0..t−1, r = k + rng.IntN(in−k),
//     swap p[k], p[r]; the subset is p[0..t−1], R_i sums it in draw order.
//  2. columns j = 0..in−1: the same over 0..out−1, giving column j's rows;
//     C_j sums them in ascending row order.
//
// Each shuffle starts from the identity (the swaps are undone, not
// redrawn), so a row's subset depends only on its own t draws.
func StochRIA(dst, w []float32, out, in int, meanSq []float64, rng *rand.Rand) {
	checkMetricArgs("StochRIA", dst, w, out, in, meanSq, true)
	if out == 0 || in == 0 {
		return
	}
	t := StochRIASampleSize(out, in)
	invRow := make([]float64, out)
	invCol := make([]float64, in)
	stochRIASums(w, out, in, t, t, rng, invRow, invCol)
	for i, s := range invRow {
		invRow[i] = 1 / max(s, StochRIAMinSum)
	}
	for j, s := range invCol {
		invCol[j] = 1 / max(s, StochRIAMinSum)
	}
	act := make([]float64, in)
	for j, v := range meanSq {
		act[j] = math.Pow(v, StochRIAExponent)
	}
	riaScores(dst, w, out, in, invRow, invCol, act)
}

// stochRIASums writes the unclamped subset sums of StochRIA: rowSum[i] over
// tRow random columns of row i, colSum[j] over tCol random rows of column j,
// drawing in the order StochRIA documents.
func stochRIASums(w []float32, out, in, tRow, tCol int, rng *rand.Rand, rowSum, colSum []float64) {
	perm := make([]int32, max(out, in))
	for k := range perm {
		perm[k] = int32(k)
	}
	swaps := make([]int32, max(tRow, tCol))
	for i := 0; i < out; i++ {
		row := w[i*in : (i+1)*in]
		drawSubset(perm[:in], swaps[:tRow], rng)
		var s float64
		for _, j := range perm[:tRow] {
			s += math.Abs(float64(row[j]))
		}
		rowSum[i] = s
		undoSubset(perm[:in], swaps[:tRow])
	}
	// Column subsets are recorded in a bitmap and summed in one row-major
	// pass: summing them column by column would read w with a stride of a
	// whole row per element.
	sel := make([]uint64, maskWords(out*in))
	for j := 0; j < in; j++ {
		drawSubset(perm[:out], swaps[:tCol], rng)
		for _, i := range perm[:tCol] {
			k := int(i)*in + j
			sel[k>>6] |= 1 << (k & 63)
		}
		undoSubset(perm[:out], swaps[:tCol])
	}
	sumSelected(w, in, sel, colSum)
}

// drawSubset runs len(swaps) steps of a Fisher–Yates shuffle on perm,
// recording each step's partner so undoSubset can restore perm.
func drawSubset(perm, swaps []int32, rng *rand.Rand) {
	n := len(perm)
	for k := range swaps {
		r := k + rng.IntN(n-k)
		perm[k], perm[r] = perm[r], perm[k]
		swaps[k] = int32(r)
	}
}

// undoSubset reverses drawSubset's swaps, last first.
func undoSubset(perm, swaps []int32) {
	for k := len(swaps) - 1; k >= 0; k-- {
		r := swaps[k]
		perm[k], perm[r] = perm[r], perm[k]
	}
}

// sumSelected adds |w_k| for every selected flat index k into colSum of
// k's column, in ascending k, i.e. ascending row order per column.
func sumSelected(w []float32, in int, sel []uint64, colSum []float64) {
	clear(colSum)
	rowStart := 0 // start of the row holding k; bits come in ascending k
	for wi, word := range sel {
		for word != 0 {
			k := wi*64 + bits.TrailingZeros64(word)
			word &= word - 1
			for k >= rowStart+in {
				rowStart += in
			}
			colSum[k-rowStart] += math.Abs(float64(w[k]))
		}
	}
}

// NormalizeMean divides the scores by their mean absolute value (float64
// sum in index order), so that the matrix has mean 1 (DESIGN §2.2). All-zero
// scores, and scores whose mean is not finite, are left as they are, as in
// the released code. It allocates nothing.
func NormalizeMean(dst []float32) {
	mean, ok := meanAbs(dst)
	if !ok {
		return // as released: only a finite, positive mean is divided out
	}
	for k, v := range dst {
		dst[k] = float32(float64(v) / mean)
	}
}

// meanAbs is the mean |v| of NormalizeMean (float64 sum in index order) and
// whether it is one to divide by: finite and positive.
func meanAbs(v []float32) (float64, bool) {
	var s float64
	for _, x := range v {
		s += math.Abs(float64(x))
	}
	mean := s / float64(len(v))
	return mean, s != 0 && !math.IsInf(mean, 0) && !math.IsNaN(mean)
}
