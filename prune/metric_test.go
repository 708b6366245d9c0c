package prune

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

// metricClose compares float32 scores with float64 expectations to a
// relative 1e-6 (the float32 rounding of a float64 result).
func metricClose(t *testing.T, name string, got []float32, want []float64) {
	t.Helper()
	for k, w := range want {
		if d := math.Abs(float64(got[k]) - w); d > 1e-6*math.Abs(w) {
			t.Fatalf("%s[%d] = %v, want %v", name, k, got[k], w)
		}
	}
}

func TestMagnitudeAndWanda(t *testing.T) {
	w := []float32{-1, 2, float32(math.Copysign(0, -1)), 3.5}
	dst := make([]float32, 4)
	Magnitude(dst, w, 2, 2)
	if !slices.Equal(dst, []float32{1, 2, 0, 3.5}) || math.Signbit(float64(dst[2])) {
		t.Fatalf("Magnitude = %v", dst)
	}
	Wanda(dst, []float32{1, -2, 3, 4}, 2, 2, []float64{2, 0.5})
	if !slices.Equal(dst, []float32{2, 1, 6, 2}) {
		t.Fatalf("Wanda = %v", dst)
	}
}

func TestRIAHandComputed(t *testing.T) {
	// |W| = [[1 2] [3 4]]: column sums 4, 6; row sums 3, 7; ‖X‖ = 4, 9 so
	// ‖X‖^0.5 = 2, 3.
	dst := make([]float32, 4)
	RIA(dst, []float32{1, -2, 3, 4}, 2, 2, []float64{4, 9}, 0.5)
	metricClose(t, "RIA", dst, []float64{
		(1.0/4 + 1.0/3) * 2, (2.0/6 + 2.0/3) * 3,
		(3.0/4 + 3.0/7) * 2, (4.0/6 + 4.0/7) * 3,
	})
	// a = 1 uses ‖X‖ itself.
	RIA(dst, []float32{1, -2, 3, 4}, 2, 2, []float64{4, 9}, 1)
	metricClose(t, "RIA a=1", dst, []float64{(1.0/4 + 1.0/3) * 4, 9, (3.0/4 + 3.0/7) * 4, (4.0/6 + 4.0/7) * 9})
}

func TestRIAZeroSums(t *testing.T) {
	// Row 1 and column 2 are all zero: their ratios are 0, never NaN.
	w := []float32{
		1, 2, 0,
		0, 0, 0,
	}
	dst := make([]float32, 6)
	RIA(dst, w, 2, 3, []float64{1, 1, 1}, 0.5)
	metricClose(t, "RIA", dst, []float64{1 + 1.0/3, 1 + 2.0/3, 0, 0, 0, 0})
	for _, v := range dst {
		if v != v {
			t.Fatal("NaN score")
		}
	}
}

func TestStochRIASampleSize(t *testing.T) {
	for _, c := range [][3]int{{4096, 4096, 819}, {4096, 11008, 819}, {11008, 4096, 819}, {1, 100, 1}, {4, 4, 1}, {5, 7, 1}, {10, 20, 2}, {15, 15, 3}, {0, 9, 1}} {
		if got := StochRIASampleSize(c[0], c[1]); got != c[2] {
			t.Errorf("StochRIASampleSize(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

func metricRandW(r *rand.Rand, n int) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	return w
}

func TestStochRIADeterminism(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	out, in := 37, 53
	w := metricRandW(r, out*in)
	ms := make([]float64, in)
	for j := range ms {
		ms[j] = r.Float64() * 3
	}
	run := func(seed uint64) []float32 {
		dst := make([]float32, out*in)
		StochRIA(dst, w, out, in, ms, rand.New(rand.NewPCG(seed, 7)))
		return dst
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Fatal("same generator state gave different scores")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds gave identical scores")
	}
	for k, v := range a {
		if !(v >= 0) || math.IsInf(float64(v), 0) {
			t.Fatalf("score %d = %v", k, v)
		}
	}
}

func TestStochRIAFormula(t *testing.T) {
	// StochRIA must equal the documented formula over the subset sums its
	// generator state draws.
	r := rand.New(rand.NewPCG(23, 24))
	out, in := 20, 31
	w := metricRandW(r, out*in)
	for k := 0; k < in; k++ {
		w[3*in+k] = 0 // a zero row: its subset sum is clamped to 1e-12
	}
	ms := make([]float64, in)
	for j := range ms {
		ms[j] = r.Float64()
	}
	ms[4] = 0
	got := make([]float32, out*in)
	StochRIA(got, w, out, in, ms, rand.New(rand.NewPCG(5, 5)))

	tt := StochRIASampleSize(out, in)
	rs, cs := make([]float64, out), make([]float64, in)
	stochRIASums(w, out, in, tt, tt, rand.New(rand.NewPCG(5, 5)), rs, cs)
	want := make([]float64, out*in)
	for i := 0; i < out; i++ {
		for j := 0; j < in; j++ {
			a := math.Abs(float64(w[i*in+j]))
			want[i*in+j] = (a/math.Max(cs[j], 1e-12) + a/math.Max(rs[i], 1e-12)) * math.Pow(ms[j], 0.35)
		}
	}
	metricClose(t, "StochRIA", got, want)
}

func TestStochRIASumsFullSubsetIsRIASums(t *testing.T) {
	// With t equal to the full width the subsets are everything, so the sums
	// are RIA's exact row and column sums (integers: exact in any order).
	r := rand.New(rand.NewPCG(25, 26))
	out, in := 13, 29
	w := make([]float32, out*in)
	for k := range w {
		w[k] = float32(r.IntN(201) - 100)
	}
	rs, cs := make([]float64, out), make([]float64, in)
	stochRIASums(w, out, in, in, out, r, rs, cs)
	wr, wc := make([]float64, out), make([]float64, in)
	absRowColSums(w, out, in, wr, wc)
	if !slices.Equal(rs, wr) || !slices.Equal(cs, wc) {
		t.Fatalf("full-subset sums differ:\n%v\n%v\n%v\n%v", rs, wr, cs, wc)
	}
}

func TestStochRIASubsetsAreDistinct(t *testing.T) {
	// W_ij = 2^j: a row's subset sum has exactly t one-bits iff its t
	// columns are distinct (and likewise 2^i for columns).
	out, in := 12, 20
	rowPow, colPow := make([]float32, out*in), make([]float32, out*in)
	for i := 0; i < out; i++ {
		for j := 0; j < in; j++ {
			rowPow[i*in+j] = float32(uint32(1) << j)
			colPow[i*in+j] = float32(uint32(1) << i)
		}
	}
	for _, tt := range []int{1, 3, 7, 12} {
		rs, cs := make([]float64, out), make([]float64, in)
		stochRIASums(rowPow, out, in, tt, tt, rand.New(rand.NewPCG(uint64(tt), 1)), rs, cs)
		for i, s := range rs {
			if bits.OnesCount64(uint64(s)) != tt {
				t.Fatalf("t=%d: row %d sum %v is not %d distinct columns", tt, i, s, tt)
			}
		}
		stochRIASums(colPow, out, in, tt, tt, rand.New(rand.NewPCG(uint64(tt), 1)), rs, cs)
		for j, s := range cs {
			if bits.OnesCount64(uint64(s)) != tt {
				t.Fatalf("t=%d: column %d sum %v is not %d distinct rows", tt, j, s, tt)
			}
		}
	}
}

func TestStochRIASubsetsAreUniform(t *testing.T) {
	// Each column is in a row's subset with probability t/in; over 20000
	// rows the counts stay within 5 standard deviations of 20000·t/in.
	out, in, tt := 20000, 10, 3
	w := make([]float32, out*in)
	for i := 0; i < out; i++ {
		for j := 0; j < in; j++ {
			w[i*in+j] = float32(uint32(1) << j)
		}
	}
	rs, cs := make([]float64, out), make([]float64, in)
	stochRIASums(w, out, in, tt, 1, rand.New(rand.NewPCG(9, 9)), rs, cs)
	counts := make([]int, in)
	for _, s := range rs {
		for j := 0; j < in; j++ {
			if uint64(s)>>j&1 == 1 {
				counts[j]++
			}
		}
	}
	p := float64(tt) / float64(in)
	mean, sd := float64(out)*p, math.Sqrt(float64(out)*p*(1-p))
	for j, c := range counts {
		if math.Abs(float64(c)-mean) > 5*sd {
			t.Fatalf("column %d drawn %d times, expected %.0f±%.0f", j, c, mean, sd)
		}
	}
}

func TestNormalizeMean(t *testing.T) {
	s := []float32{1, -3, 2, 0}
	NormalizeMean(s)
	metricClose(t, "normalized", s, []float64{2.0 / 3, -2, 4.0 / 3, 0})
	z := []float32{0, 0, 0}
	NormalizeMean(z)
	if !slices.Equal(z, []float32{0, 0, 0}) {
		t.Fatalf("zeros changed: %v", z)
	}
	inf := []float32{1, float32(math.Inf(1))}
	NormalizeMean(inf)
	if inf[0] != 1 {
		t.Fatalf("non-finite mean must leave scores: %v", inf)
	}
	NormalizeMean(nil)
	big := metricRandW(rand.New(rand.NewPCG(1, 1)), 1000)
	NormalizeMean(big)
	var sum float64
	for _, v := range big {
		sum += math.Abs(float64(v))
	}
	if math.Abs(sum/1000-1) > 1e-6 {
		t.Fatalf("mean |S| after normalising = %v", sum/1000)
	}
	if n := testing.AllocsPerRun(10, func() { NormalizeMean(big) }); n != 0 {
		t.Fatalf("NormalizeMean allocates %v times", n)
	}
}

func TestParseMetric(t *testing.T) {
	for _, s := range []string{"magnitude", "wanda", "ria", "stochria"} {
		m, err := ParseMetric(s)
		if err != nil || string(m) != s {
			t.Errorf("ParseMetric(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "RIA", "sparsegpt"} {
		if _, err := ParseMetric(s); err == nil {
			t.Errorf("ParseMetric(%q) accepted", s)
		}
	}
}

func TestMetricShapePanics(t *testing.T) {
	cases := map[string]func(){
		"magnitude": func() { Magnitude(make([]float32, 3), make([]float32, 4), 2, 2) },
		"wanda":     func() { Wanda(make([]float32, 4), make([]float32, 4), 2, 2, []float64{1}) },
		"ria":       func() { RIA(make([]float32, 4), make([]float32, 4), 2, 2, nil, 0.5) },
		"stochria": func() {
			StochRIA(make([]float32, 4), make([]float32, 4), 2, 2, []float64{1, 2, 3}, rand.New(rand.NewPCG(1, 1)))
		},
	}
	for name, f := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic on a bad shape", name)
				}
			}()
			f()
		}()
	}
}

// TestScore: Score gives bitwise what each metric's own function gives
// (RIA with exponent RIAAlpha, StochRIA on a generator of the same seed),
// and refuses an unknown metric, missing statistics and StochRIA without
// a generator instead of falling back to another metric.
func TestScore(t *testing.T) {
	const out, in = 5, 7
	r := rand.New(rand.NewPCG(1, 2))
	w := metricRandW(r, out*in)
	st := NewStats(in)
	x := make([]float32, 3*in)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	st.Add(x, 3, in)
	want := make([]float32, out*in)
	got := make([]float32, out*in)
	for _, m := range []Metric{MetricMagnitude, MetricWanda, MetricRIA, MetricStochRIA} {
		switch m {
		case MetricMagnitude:
			Magnitude(want, w, out, in)
		case MetricWanda:
			Wanda(want, w, out, in, st.Norm())
		case MetricRIA:
			RIA(want, w, out, in, st.Norm(), 0.5)
		case MetricStochRIA:
			StochRIA(want, w, out, in, st.MeanSq(), rand.New(rand.NewPCG(7, 7)))
		}
		var rng *rand.Rand
		if m.NeedsRNG() {
			rng = rand.New(rand.NewPCG(7, 7))
		}
		if err := Score(m, got, w, out, in, st, rng); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: Score differs from the metric's function", m)
		}
	}
	if err := Score("wand", got, w, out, in, st, nil); err == nil {
		t.Fatal("an unknown metric was scored")
	}
	if err := Score(MetricWanda, got, w, out, in, nil, nil); err == nil {
		t.Fatal("wanda without statistics was scored")
	}
	if err := Score(MetricStochRIA, got, w, out, in, st, nil); err == nil {
		t.Fatal("stochria without a generator was scored")
	}
	if err := Score(MetricMagnitude, got, w, out, in, nil, nil); err != nil {
		t.Fatalf("magnitude needs no statistics: %v", err)
	}
}

// TestAccumulateNormalizedIsNormalizeThenAccumulate checks the fused
// normalise + z update against NormalizeMean followed by Accumulate, bit
// for bit, over steps whose Γ is non-zero, and for all-zero and non-finite
// scores (left unnormalised), and that it leaves the scores alone.
func TestAccumulateNormalizedIsNormalizeThenAccumulate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 777
	a, b := NewMirror(n), NewMirror(n)
	inputs := [][]float32{metricRandW(r, n), make([]float32, n), metricRandW(r, n), metricRandW(r, n)}
	inputs[3][5] = float32(math.Inf(1))
	for step, s := range inputs {
		s1, s2 := append([]float32(nil), s...), append([]float32(nil), s...)
		NormalizeMean(s1)
		a.Accumulate(s1, 0.01)
		b.AccumulateNormalized(s2, 0.01)
		if !slices.Equal(s2, s) {
			t.Fatalf("step %d: scores changed", step)
		}
		for i := range a.Z {
			if math.Float32bits(a.Z[i]) != math.Float32bits(b.Z[i]) {
				t.Fatalf("step %d, element %d: z %v, fused %v", step, i, a.Z[i], b.Z[i])
			}
		}
		a.Shrink(0.002, int32(step+1))
		b.Shrink(0.002, int32(step+1))
	}
	if n := testing.AllocsPerRun(5, func() { b.AccumulateNormalized(inputs[0], 0.01) }); n != 0 {
		t.Fatalf("AccumulateNormalized allocates %v times", n)
	}
}
